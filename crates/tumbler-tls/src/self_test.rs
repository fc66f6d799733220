//! A TLS handshake in memory between a candidate's server config and its own client config.
//!
//! The loader's checks look at certificates one at a time; the handshake proves that rustls
//! accepts the whole set together (chain, key, signature algorithms, client verification)
//! before any listener uses it.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Upper bound on flights; a TLS 1.3 handshake with client authentication needs three.
const MAX_FLIGHTS: usize = 10;

/// Runs one handshake between `client` and `server`, with `server_name` as SNI and the name
/// the client verifies.
///
/// # Errors
///
/// Returns what rustls reported on either side.
pub(crate) fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    server_name: &str,
) -> Result<(), String> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|error| format!("invalid server name {server_name:?}: {error}"))?;
    let client = ClientConnection::new(client, name).map_err(|error| error.to_string())?;
    let server = ServerConnection::new(server).map_err(|error| error.to_string())?;
    let mut client = Connection::Client(client);
    let mut server = Connection::Server(server);
    for _ in 0..MAX_FLIGHTS {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        transfer(&mut client, &mut server).map_err(|error| format!("server side: {error}"))?;
        transfer(&mut server, &mut client).map_err(|error| format!("client side: {error}"))?;
    }
    Err("the handshake did not finish".to_owned())
}

/// Moves every pending TLS record from `from` to `to` and lets `to` process them.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut buffer = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buffer)
            .map_err(|error| rustls::Error::General(error.to_string()))?;
    }
    let mut slice = buffer.as_slice();
    while !slice.is_empty() {
        to.read_tls(&mut slice)
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        to.process_new_packets()?;
    }
    Ok(())
}
