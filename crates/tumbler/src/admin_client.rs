//! A small HTTPS client for the node's admin API, authenticating as `root` with the client
//! certificate in a certs folder.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tumbler_tls::client::ClientCertReloader;

/// Sends requests to one node's admin listener.
pub(crate) struct AdminClient {
    reloader: ClientCertReloader,
    host: String,
    port: u16,
}

/// An HTTP response: status code and body.
pub(crate) struct AdminResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl AdminClient {
    /// A client for `host:port` using `ca.crt` and `client.root.*` in `certs_dir`. `host` is
    /// also the name the node's certificate must cover.
    pub(crate) fn new(certs_dir: &Path, host: &str, port: u16) -> Self {
        Self {
            reloader: ClientCertReloader::new(certs_dir, "root"),
            host: host.to_owned(),
            port,
        }
    }

    /// Sends `method path` with an empty body and reads the whole response. Each request uses
    /// a new connection with the current files, so a rotated root certificate is picked up.
    pub(crate) async fn request(&self, method: &str, path: &str) -> anyhow::Result<AdminResponse> {
        let config = match self.reloader.config() {
            Ok(config) => config,
            Err(error) => self
                .reloader
                .last_good()
                .map(|identity| identity.config)
                .ok_or(error)?,
        };
        let address = (
            self.host.trim_start_matches('[').trim_end_matches(']'),
            self.port,
        );
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
        let name = rustls::pki_types::ServerName::try_from(
            self.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {}:{} failed", self.host, self.port))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.host
        );
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        // The server closes after the response; a missing TLS close_notify is not an error here.
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("malformed HTTP status line")?;
        Ok(AdminResponse {
            status,
            body: body.to_owned(),
        })
    }

    /// `GET path`, failing unless the status is 200.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<String> {
        let response = self.request("GET", path).await?;
        if response.status != 200 {
            anyhow::bail!(
                "GET {path} returned {}: {}",
                response.status,
                response.body.trim()
            );
        }
        Ok(response.body)
    }
}
