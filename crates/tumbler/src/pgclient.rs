//! A tokio-postgres TLS connector whose client certificate and CA follow the files on disk.
//!
//! Each new connection takes the current config from [`ClientCertReloader`], so a rotated
//! `client.<user>.crt` or `ca.crt` is used from the next connection on, without restarting the
//! client. Open connections keep the config they were made with.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;
use tumbler_tls::client::ClientCertReloader;

/// Makes TLS connections with the reloader's current client config.
#[derive(Debug, Clone)]
pub(crate) struct ReloadingConnector {
    reloader: Arc<ClientCertReloader>,
}

impl ReloadingConnector {
    pub(crate) fn new(reloader: Arc<ClientCertReloader>) -> Self {
        Self { reloader }
    }

    /// The current config, or the last good one when the files are mid-rotation (for example a
    /// new certificate already written and its key not yet).
    fn config(&self) -> io::Result<Arc<ClientConfig>> {
        match self.reloader.config() {
            Ok(config) => Ok(config),
            Err(error) => match self.reloader.last_good() {
                Some(identity) => {
                    tracing::warn!(%error, "client certificate files unusable, using the previous ones");
                    Ok(identity.config)
                }
                None => Err(io::Error::other(error.to_string())),
            },
        }
    }
}

impl<S> MakeTlsConnect<S> for ReloadingConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let server_name = ServerName::try_from(domain.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        Ok(Connect {
            config: self.config()?,
            server_name,
        })
    }
}

/// One pending TLS connection.
#[derive(Debug)]
pub(crate) struct Connect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = TlsConnector::from(self.config);
            let tls = connector.connect(self.server_name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

/// A rustls client stream that tokio-postgres can use.
#[derive(Debug)]
pub(crate) struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // Certificate authentication needs no SCRAM channel binding.
        ChannelBinding::none()
    }
}
