//! PostgreSQL-wire query handlers over the node's embedded SQLite database.
//!
//! This crate owns the node's storage folder ([`Store`]) and runs SQL sent over the
//! PostgreSQL protocol ([`QueryHandler`], for both the simple and the extended query
//! protocol), with one SQLite connection per client session. It never does TLS and never
//! authenticates anyone: the node crate accepts the connection, runs the TLS handshake and
//! certificate authentication in its own pgwire `StartupHandler`, and only then hands the
//! session's queries to these handlers.
//!
//! # Composing with the node
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use pgwire::api::PgWireServerHandlers;
//! use pgwire::api::NoopHandler;
//! use pgwire::api::auth::StartupHandler;
//! use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
//! use tumbler_sql::{QueryHandler, Store};
//!
//! struct Handlers {
//!     queries: Arc<QueryHandler>,
//! }
//!
//! impl PgWireServerHandlers for Handlers {
//!     fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
//!         Arc::clone(&self.queries)
//!     }
//!
//!     fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
//!         Arc::clone(&self.queries)
//!     }
//!
//!     fn startup_handler(&self) -> Arc<impl StartupHandler> {
//!         // The node returns its certificate-checking startup handler here.
//!         Arc::new(NoopHandler)
//!     }
//! }
//!
//! # fn main() -> Result<(), tumbler_sql::StoreError> {
//! let store = Arc::new(Store::open(std::path::Path::new("/var/lib/tumbler"))?);
//! let handlers = Arc::new(Handlers { queries: Arc::new(QueryHandler::new(store)) });
//! // For each accepted socket:
//! // tokio::spawn(pgwire::tokio::process_socket(socket, tls_acceptor, Arc::clone(&handlers)));
//! # Ok(())
//! # }
//! ```
//!
//! # SQL dialect
//!
//! Statements are SQLite SQL with PostgreSQL's `$1` placeholders. The handlers run the
//! commands that drivers send but SQLite lacks: `SET`, `SHOW`, `RESET`, `BEGIN` and
//! `START TRANSACTION` with PostgreSQL's transaction modes, `COMMIT`/`END`,
//! `ROLLBACK`/`ABORT` and savepoints, and `SELECT version()`. Result columns are typed INT8,
//! FLOAT8, TEXT, VARCHAR, BYTEA or BOOL from their declared SQLite type, or from their values
//! where the declaration gives none. Errors carry PostgreSQL
//! SQLSTATE codes and SQLite's message, and an error inside a transaction block aborts the
//! block until ROLLBACK, as in PostgreSQL.

mod command;
mod error;
mod handler;
mod lexer;
mod params;
mod prepared;
mod response;
mod session;
mod settings;
mod store;
mod types;

pub use error::{BoxedError, StoreError};
pub use handler::QueryHandler;
pub use prepared::{PreparedStatement, StatementParser};
pub use settings::{SERVER_VERSION, version_string};
pub use store::{DATABASE_FILE, DEFAULT_BUSY_TIMEOUT, Store};
