//! The HTTPS admin listener: `/health`, the certificates status API and the certificates page.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tumbler_pki::CertInfo;
use tumbler_tls::ReloadableTls;

use crate::ACCEPT_ERROR_PAUSE;
use crate::rejections::RejectionLog;
use crate::reload::Reloader;
use crate::status::CertificatesResponse;

/// The verified client certificate's CN, if the client sent one.
#[derive(Debug, Clone)]
struct Peer {
    user: Option<String>,
}

#[derive(Debug, Clone)]
struct AppState {
    tls: Arc<ReloadableTls>,
    reloader: Arc<Reloader>,
}

/// Accepts HTTPS connections until the task is aborted. Each connection takes the TLS
/// generation that is current when it is accepted.
pub(crate) async fn serve(listener: TcpListener, tls: Arc<ReloadableTls>, reloader: Arc<Reloader>) {
    let rejections = Arc::new(RejectionLog::new("admin"));
    let router = router(AppState {
        tls: tls.clone(),
        reloader,
    });
    loop {
        let (socket, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an admin connection failed");
                // Out of file descriptors and similar errors persist for a while, so
                // pause rather than spin on them.
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(tls.current().configs.admin.clone());
        let router = router.clone();
        let rejections = rejections.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(socket).await {
                Ok(stream) => stream,
                Err(error) => {
                    rejections.reject(&peer_addr, None, &error);
                    return;
                }
            };
            let peer = Peer {
                user: peer_user(stream.get_ref().1.peer_certificates()),
            };
            let service = TowerToHyperService::new(router.layer(Extension(peer)));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer_addr, %error, "admin connection ended with an error");
            }
        });
    }
}

fn peer_user(certs: Option<&[rustls::pki_types::CertificateDer<'static>]>) -> Option<String> {
    let leaf = certs?.first()?.clone();
    CertInfo::parse(leaf).ok()?.common_name
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/_status/certificates/local", get(certificates))
        .route("/_status/vars", get(metrics))
        .route("/_admin/v1/certificates/reload", post(reload))
        .route("/", get(page))
        .with_state(state)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn certificates(State(state): State<AppState>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(response) = require_root(&peer) {
        return response;
    }
    let published = state.tls.current();
    Json(CertificatesResponse::new(&published, &state.reloader)).into_response()
}

/// Runs a reload and returns its outcome; 200 when it succeeded or changed nothing, 422 when it
/// failed (the node keeps serving the previous certificates either way).
async fn reload(State(state): State<AppState>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(response) = require_root(&peer) {
        return response;
    }
    let outcome = state.reloader.reload("api").await;
    let status = if outcome.result == "failure" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(outcome)).into_response()
}

/// Prometheus text format: reload counters and certificate expirations.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(&state.tls.current(), &state.reloader);
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Admits only a client certificate for `root`.
fn require_root(peer: &Peer) -> Result<(), Response> {
    match peer.user.as_deref() {
        Some("root") => Ok(()),
        Some(user) => Err((
            StatusCode::FORBIDDEN,
            format!("user {user:?} is not allowed here; use a client certificate for root\n"),
        )
            .into_response()),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "a client certificate for root is required: pass --cert client.root.crt --key client.root.key\n",
        )
            .into_response()),
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("certificates.html"))
}
