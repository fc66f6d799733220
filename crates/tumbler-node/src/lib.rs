//! The tumbler node: a PostgreSQL-wire SQL listener and an HTTPS admin listener, both over TLS
//! from the certs folder, with certificate reload on SIGHUP.
//!
//! Where things live:
//! - [`run`] starts a node: signal handlers first, then the certificates, the store and the
//!   listeners.
//! - `reload` reads the certs folder into a new generation, checks it, and publishes it to
//!   every listener at once; `signals` turns SIGHUP into reloads and SIGTERM/SIGINT into a
//!   clean shutdown.
//! - `sql` accepts SQL connections and authenticates clients by their certificate's CN.
//! - `admin` serves `/health`, the certificates status API and the certificates page.
//!
//! The node reads only the certs folder (never a CA key) and its store.

mod admin;
mod generation;
mod metrics;
mod poll;
mod rejections;
mod reload;
mod sessions;
mod signals;
mod sql;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use generation::GenerationRules;
use tokio::net::TcpListener;
use tumbler_pki::FileError;
use tumbler_tls::{Published, ReloadableTls, TlsError};

pub use reload::{ReloadOutcome, Reloader};

/// Settings of `tumbler start`.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The certs folder.
    pub certs_dir: PathBuf,
    /// The store folder.
    pub store_dir: PathBuf,
    /// Address of the SQL listener, `HOST:PORT`.
    pub listen_addr: String,
    /// Address of the HTTPS admin listener, `HOST:PORT`.
    pub http_addr: String,
    /// Address other nodes and clients use to reach this node; `node.crt` must cover its host.
    /// Without it, the listen host is used unless it is a wildcard.
    pub advertise_addr: Option<String>,
    /// Poll the certs folder at this interval and reload when its content changed.
    pub cert_reload_interval: Option<std::time::Duration>,
    /// Keep open SQL sessions whose client certificate no longer chains to the trusted CAs
    /// after a reload removed a CA.
    pub keep_sessions_on_ca_removal: bool,
    /// Write the bound addresses here once both listeners are open, as `sql=HOST:PORT` and
    /// `http=HOST:PORT` lines, so that a caller can pass port 0 and learn the ports.
    pub listening_addrs_file: Option<PathBuf>,
}

/// Errors that stop a node from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The certificates are invalid. The file error is part of the message, not a separate
    /// source, so that an error chain does not print it twice.
    #[error("invalid certificates: {0}")]
    Certificates(FileError),
    /// rustls rejected the certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] tumbler_sql::StoreError),
    /// A listener cannot be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The listening addresses file cannot be written.
    #[error("writing the listening addresses to {} failed: {error}", path.display())]
    AddrsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A signal handler cannot be installed.
    #[error("installing the signal handlers failed: {0}")]
    Signals(std::io::Error),
}

impl From<FileError> for NodeError {
    fn from(error: FileError) -> Self {
        Self::Certificates(error)
    }
}

/// Runs a node until SIGTERM or SIGINT.
///
/// # Errors
///
/// Returns a [`NodeError`] when start-up fails; once serving, errors are logged, not returned.
pub async fn run(config: NodeConfig) -> Result<(), NodeError> {
    // Signals first: a SIGHUP that arrives while the node starts must never end the process.
    let signals = signals::Signals::install().map_err(NodeError::Signals)?;
    tracing::info!(
        pid = std::process::id(),
        certs_dir = %config.certs_dir.display(),
        store = %config.store_dir.display(),
        "starting node"
    );

    let advertise = config
        .advertise_addr
        .as_deref()
        .unwrap_or(&config.listen_addr);
    let rules = GenerationRules {
        certs_dir: config.certs_dir.clone(),
        advertise_host: generation::host_of(advertise),
    };
    let first = rules.load(None)?;
    log_generation(&first);
    let tls = Arc::new(ReloadableTls::new(first));
    let sessions = Arc::new(sessions::Sessions::default());
    let closer = (!config.keep_sessions_on_ca_removal).then(|| sessions.clone());
    let reloader = Arc::new(Reloader::new(rules, tls.clone(), closer));
    let store = Arc::new(tumbler_sql::Store::open(&config.store_dir)?);

    let sql_listener = bind(&config.listen_addr).await?;
    let admin_listener = bind(&config.http_addr).await?;
    let sql_addr = local_addr(&sql_listener);
    let admin_addr = local_addr(&admin_listener);
    tracing::info!(sql = %sql_addr, admin = %admin_addr, "listening");
    if let Some(path) = &config.listening_addrs_file {
        let text = format!("sql={sql_addr}\nhttp={admin_addr}\n");
        tumbler_pki::files::write_atomic(path, text.as_bytes(), tumbler_pki::files::CERT_MODE)
            .map_err(|error| NodeError::AddrsFile {
                path: path.clone(),
                error,
            })?;
    }

    let sql_task = tokio::spawn(sql::serve(sql_listener, tls.clone(), store, sessions));
    let poll_task = config
        .cert_reload_interval
        .map(|interval| tokio::spawn(poll::run(reloader.clone(), interval)));
    let admin_task = tokio::spawn(admin::serve(admin_listener, tls, reloader.clone()));
    signals.run(reloader).await;
    sql_task.abort();
    admin_task.abort();
    if let Some(task) = poll_task {
        task.abort();
    }
    tracing::info!("node stopped");
    Ok(())
}

async fn bind(addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| NodeError::Bind {
            addr: addr.to_owned(),
            error,
        })
}

fn local_addr(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(
        |_| "unknown".to_owned(),
        |addr: SocketAddr| addr.to_string(),
    )
}

/// How long a listener waits after a failed `accept` before it tries again.
pub(crate) const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Locks `mutex`, taking the value even if a thread panicked while holding it. Every value
/// guarded this way changes by one assignment, insert or removal at a time, so a panic cannot
/// leave it inconsistent.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn log_generation(published: &Published) {
    if tumbler_pki::files::skip_key_permission_check() {
        tracing::warn!(
            variable = tumbler_pki::files::SKIP_KEY_PERMISSION_CHECK,
            "the key permission check is off: keys readable by others are accepted"
        );
    }
    for warning in &published.certs.warnings {
        tracing::warn!(%warning, "certificate warning");
    }
    let node = Some(published.certs.node.leaf());
    tracing::info!(
        node_serial = node.map(|cert| cert.serial_hex()).unwrap_or_default(),
        node_valid_until = node
            .map(|cert| tumbler_pki::scan::format_time(cert.not_after))
            .unwrap_or_default(),
        ca_count = published.certs.ca_certs.len(),
        "certificates loaded"
    );
}
