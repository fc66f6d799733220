//! A real pgwire server over a temporary store, for the integration tests.
//!
//! Each test starts its own server on a port that the kernel picks, on 127.0.0.1 only, and
//! stops it when the returned [`TestServer`] is dropped.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use pgwire::tokio::process_socket;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tumbler_sql::{QueryHandler, Store};

/// Handlers as the node composes them, with pgwire's startup handler that authenticates no
/// one in place of the node's certificate check. Connections register with a
/// [`ConnectionManager`] so that cancel requests reach them.
struct Handlers {
    queries: Arc<QueryHandler>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

/// Startup without authentication that registers each connection for cancel requests.
struct Startup {
    manager: Arc<ConnectionManager>,
}

impl NoopStartupHandler for Startup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.manager))
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// A running server. Dropping it stops accepting connections and removes the store.
pub struct TestServer {
    pub port: u16,
    accept_loop: JoinHandle<()>,
    _dir: TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl TestServer {
    /// Starts a server over a new store in a temporary folder.
    pub async fn start() -> TestServer {
        Self::start_with_busy_timeout(tumbler_sql::DEFAULT_BUSY_TIMEOUT).await
    }

    /// Starts a server whose sessions wait at most `busy_timeout` for the write lock.
    pub async fn start_with_busy_timeout(busy_timeout: Duration) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let store = Arc::new(store.with_busy_timeout(busy_timeout));
        let manager = Arc::new(ConnectionManager::new());
        let handlers = Arc::new(Handlers {
            queries: Arc::new(QueryHandler::new(store)),
            startup: Arc::new(Startup {
                manager: Arc::clone(&manager),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(manager)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept_loop = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handlers = Arc::clone(&handlers);
                tokio::spawn(async move {
                    let _ = process_socket(socket, None, handlers).await;
                });
            }
        });
        TestServer {
            port,
            accept_loop,
            _dir: dir,
        }
    }

    /// Returns a libpq connection string for this server.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=tester dbname=defaultdb sslmode=disable \
             connect_timeout=5",
            self.port
        )
    }

    /// Connects a tokio-postgres client and drives its connection in the background.
    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.conninfo(), NoTls)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

/// Returns the SQLSTATE of a server error, or "none" for other errors.
pub fn sqlstate(error: &tokio_postgres::Error) -> String {
    error.as_db_error().map_or_else(
        || format!("none: {error}"),
        |db| db.code().code().to_owned(),
    )
}

/// Maximum time that a test waits for an external client such as psql or pgbench.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
