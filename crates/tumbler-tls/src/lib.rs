//! rustls configurations built from a checked certs snapshot, and the slot that swaps them.
//!
//! [`TlsConfigs`] turns a [`tumbler_pki::NodeCerts`] into the server configs of the SQL and
//! HTTPS admin listeners and the client config of outgoing node connections.
//! [`ReloadableTls`] publishes one [`Published`] value at a time: a listener takes the current
//! value when a connection starts and keeps it for that connection, so a reload changes what
//! new handshakes see and never touches open connections. [`client::ClientCertReloader`] is the
//! client side: it rebuilds a client config when the client's certificate files change.
//!
//! This crate never reads files itself except through `tumbler-pki`, and never reads a CA key.

pub mod client;
mod client_auth;
mod configs;
mod reloadable;
mod self_test;

pub use configs::{TlsConfigs, TlsError, provider};
pub use reloadable::{Published, ReloadableTls};
