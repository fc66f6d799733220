use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tumbler_pki::NodeCerts;

use crate::client_auth::ClientAuthVerifier;
use tumbler_pki::node_certs::Identity;

/// ALPN protocol id PostgreSQL clients offer (libpq 17 and later).
const POSTGRESQL_ALPN: &[u8] = b"postgresql";
/// ALPN protocol id of the admin listener.
const HTTP1_ALPN: &[u8] = b"http/1.1";

/// Errors building rustls configs from certificates that passed the loader's checks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls rejected a certificate, key or trust store.
    #[error("building the TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("building the client certificate verifier failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A handshake between the new server and client configs failed in memory.
    #[error(
        "a test handshake with the new certificates failed on the {listener} listener: {reason}"
    )]
    SelfTest {
        /// `SQL` or `admin`.
        listener: &'static str,
        /// The reason rustls gave.
        reason: String,
    },
}

/// The aws-lc-rs crypto provider every tumbler config is built with. Naming it explicitly
/// keeps the configs independent of the process default, which other crates may race to set.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configs of one node, all built from the same [`NodeCerts`].
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    /// SQL listener: serves `node.crt`, requests a client certificate and verifies any that is
    /// sent against the client CA (`ca-client.crt`, else `ca.crt`). A connection without one reaches the SQL layer, which rejects it
    /// with a message saying that no client certificate was presented.
    pub sql: Arc<ServerConfig>,
    /// HTTPS admin listener: serves `ui.crt` when present, else `node.crt`; the same client
    /// verification; ALPN `http/1.1`.
    pub admin: Arc<ServerConfig>,
    /// Outgoing connections to other nodes: presents `client.node.crt` when present, else
    /// `node.crt`, and trusts `ca.crt`.
    pub node_client: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// Builds every config from `certs`.
    ///
    /// # Errors
    ///
    /// Returns a [`TlsError`] when rustls rejects the material.
    pub fn build(certs: &NodeCerts) -> Result<Self, TlsError> {
        let roots = Arc::new(root_store(certs.ca_der())?);
        let client_roots = Arc::new(root_store(certs.client_ca_der())?);
        let sql = server_config(&certs.node, &client_roots, POSTGRESQL_ALPN)?;
        let admin = server_config(certs.admin_identity(), &client_roots, HTTP1_ALPN)?;
        let outgoing = certs.outgoing_identity();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|error| TlsError::Rustls(rustls::Error::General(error.to_string())))?;
        let node_client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(outgoing.chain_der(), outgoing.key())?;
        Ok(Self {
            sql: Arc::new(sql),
            admin: Arc::new(admin),
            node_client: Arc::new(node_client),
        })
    }
}

impl TlsConfigs {
    /// Runs a handshake in memory between each listener's server config and the node's own
    /// client config, which presents the node's outgoing certificate. `sql_name` and
    /// `admin_name` are the names the client verifies.
    ///
    /// # Errors
    ///
    /// Returns [`TlsError::SelfTest`] naming the listener and rustls's reason.
    pub fn self_test(&self, sql_name: &str, admin_name: &str) -> Result<(), TlsError> {
        let run = |listener, server: &Arc<ServerConfig>, name: &str| {
            crate::self_test::handshake(self.node_client.clone(), server.clone(), name)
                .map_err(|reason| TlsError::SelfTest { listener, reason })
        };
        run("SQL", &self.sql, sql_name)?;
        run("admin", &self.admin, admin_name)
    }
}

fn root_store(cas: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca)?;
    }
    Ok(roots)
}

fn server_config(
    identity: &Identity,
    roots: &Arc<RootCertStore>,
    alpn: &[u8],
) -> Result<ServerConfig, TlsError> {
    let webpki = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .allow_unauthenticated()
        .build()?;
    let verifier = Arc::new(ClientAuthVerifier::new(webpki));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain_der(), identity.key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}
