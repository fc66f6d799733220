//! The SQL listener: PostgreSQL wire protocol over TLS, clients authenticated by certificate.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tumbler_pki::CertInfo;
use tumbler_pki::names::normalize_user;
use tumbler_sql::{QueryHandler, Store};
use tumbler_tls::ReloadableTls;

use crate::ACCEPT_ERROR_PAUSE;
use crate::rejections::RejectionLog;
use crate::sessions::{Session, Sessions};

/// SQLSTATE `invalid_authorization_specification`.
const INVALID_AUTHORIZATION: &str = "28000";

/// Accepts SQL connections until the task is aborted. Each connection takes the TLS generation
/// that is current when it is accepted.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
    store: Arc<Store>,
    sessions: Arc<Sessions>,
) {
    let queries = Arc::new(QueryHandler::new(store));
    let rejections = Arc::new(RejectionLog::new("SQL"));
    let shared = Arc::new(SharedStartup {
        parameters: server_parameters(),
        pids: RandomPidSecretKeyGenerator::default(),
        rejections: rejections.clone(),
    });
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a SQL connection failed");
                // Out of file descriptors and similar errors persist for a while, so
                // pause rather than spin on them.
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(tls.current().configs.sql.clone());
        let guard = sessions.open(peer);
        let handlers = Arc::new(Handlers {
            queries: queries.clone(),
            startup: Arc::new(CertificateAuth {
                shared: shared.clone(),
                session: guard.session.clone(),
            }),
        });
        let rejections = rejections.clone();
        tokio::spawn(async move {
            let connection = pgwire::tokio::process_socket(socket, Some(acceptor), handlers);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        rejections.reject(&peer, None, &error);
                    }
                }
                () = guard.session.close.notified() => {}
            }
            drop(guard);
        });
    }
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = tumbler_sql::SERVER_VERSION.to_owned();
    parameters
}

#[derive(Debug)]
struct Handlers {
    queries: Arc<QueryHandler>,
    startup: Arc<CertificateAuth>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Startup that admits a client only over TLS, with a verified client certificate whose CN is
/// the requested user. rustls has already checked the chain to `ca.crt` and the clientAuth
/// EKU during the handshake; this checks who the certificate is for.
#[derive(Debug)]
struct CertificateAuth {
    shared: Arc<SharedStartup>,
    session: Arc<Session>,
}

/// Startup state shared by every connection.
#[derive(Debug)]
struct SharedStartup {
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    rejections: Arc<RejectionLog>,
}

#[async_trait]
impl StartupHandler for CertificateAuth {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let requested = client.metadata().get("user").cloned().unwrap_or_default();
        let chain = match authenticate(client, &requested) {
            Ok(chain) => chain,
            Err(reason) => {
                self.shared
                    .rejections
                    .reject(&client.socket_addr(), Some(&requested), &reason);
                return Err(fatal(reason));
            }
        };
        self.session.authenticated(requested, chain);
        let (pid, secret_key) = self.shared.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, secret_key);
        finish_authentication(client, &self.shared.parameters).await
    }
}

/// Checks the connection and returns the client's certificate chain.
fn authenticate<C: ClientInfo>(
    client: &C,
    requested: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    if !client.is_secure() {
        return Err(
            "tumbler accepts only TLS connections: connect with sslmode=verify-full, \
                    sslrootcert=ca.crt, sslcert=client.<user>.crt and sslkey=client.<user>.key"
                .to_owned(),
        );
    }
    let chain: Vec<CertificateDer<'static>> = client
        .client_certificates()
        .map(|certs| certs.iter().map(|cert| cert.clone().into_owned()).collect())
        .unwrap_or_default();
    let Some(leaf) = chain.first().cloned() else {
        return Err(format!(
            "no client certificate was presented; connect with sslcert=client.{requested}.crt \
             and sslkey=client.{requested}.key"
        ));
    };
    let cert = CertInfo::parse(leaf)
        .map_err(|error| format!("the client certificate cannot be read: {error}"))?;
    let common_name = cert.common_name.unwrap_or_default();
    let user = normalize_user(requested)?;
    if normalize_user(&common_name).ok().as_deref() != Some(user.as_str()) {
        return Err(format!(
            "certificate is for {common_name:?}, not {requested:?}"
        ));
    }
    Ok(chain)
}

fn fatal(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        INVALID_AUTHORIZATION.to_owned(),
        message,
    )))
}
