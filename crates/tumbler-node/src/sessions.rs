//! Open SQL sessions and the client certificates they authenticated with, so that a reload
//! that withdraws trust in a CA can close the sessions that relied on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::lock;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::sync::Notify;
use tumbler_tls::Published;

/// One SQL connection.
#[derive(Debug)]
pub(crate) struct Session {
    peer: SocketAddr,
    /// The authenticated user and the client's certificate chain, set once the startup
    /// handler admitted it.
    identity: OnceLock<(String, Vec<CertificateDer<'static>>)>,
    /// Notified when the session must end.
    pub(crate) close: Notify,
}

impl Session {
    /// Records who the session authenticated as.
    pub(crate) fn authenticated(&self, user: String, chain: Vec<CertificateDer<'static>>) {
        let _ = self.identity.set((user, chain));
    }
}

/// Every open SQL session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Session>>>,
}

/// Removes its session from the registry when the connection ends.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
    pub(crate) session: Arc<Session>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.sessions.open).remove(&self.id);
    }
}

impl Sessions {
    /// Registers a new connection from `peer`.
    pub(crate) fn open(self: &Arc<Self>, peer: SocketAddr) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session {
            peer,
            identity: OnceLock::new(),
            close: Notify::new(),
        });
        lock(&self.open).insert(id, session.clone());
        SessionGuard {
            sessions: self.clone(),
            id,
            session,
        }
    }

    /// Closes every authenticated session whose client certificate no longer verifies against
    /// the client CA of `published`, logging each, and returns how many it closed.
    pub(crate) fn close_untrusted(&self, published: &Published) -> usize {
        let verifier = match client_verifier(published) {
            Ok(verifier) => verifier,
            Err(error) => {
                tracing::error!(%error, "cannot check open sessions against the new CA bundle");
                return 0;
            }
        };
        let sessions: Vec<Arc<Session>> = lock(&self.open).values().cloned().collect();
        let mut closed = 0;
        for session in sessions {
            let Some((user, chain)) = session.identity.get() else {
                continue;
            };
            let Some((leaf, intermediates)) = chain.split_first() else {
                continue;
            };
            if let Err(error) = verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
                tracing::warn!(
                    peer = %session.peer,
                    user = %user,
                    reason = %error,
                    "closing SQL session: its client certificate is no longer trusted"
                );
                session.close.notify_one();
                closed += 1;
            }
        }
        closed
    }
}

fn client_verifier(published: &Published) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in published.certs.client_ca_der() {
        roots.add(ca).map_err(|error| error.to_string())?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tumbler_tls::provider())
        .build()
        .map_err(|error| error.to_string())
}
