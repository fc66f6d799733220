//! Signal handling: SIGHUP reloads the certificates, SIGTERM and SIGINT stop the node.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::reload::Reloader;

/// The node's signal streams, installed before any listener opens.
#[derive(Debug)]
pub(crate) struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers. From here on SIGHUP no longer has its default action of ending
    /// the process.
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Reloads on each SIGHUP until SIGTERM or SIGINT arrives.
    ///
    /// Reloads run one at a time in this loop. tokio keeps one pending notification per signal,
    /// so any number of SIGHUPs that arrive during a reload cause exactly one more reload.
    pub(crate) async fn run(mut self, reloader: Arc<Reloader>) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => {
                    tracing::info!(signal = "SIGHUP", "signal received, reloading certificates");
                    reloader.reload("SIGHUP").await;
                }
                _ = self.terminate.recv() => {
                    tracing::info!(signal = "SIGTERM", "signal received, shutting down");
                    return;
                }
                _ = self.interrupt.recv() => {
                    tracing::info!(signal = "SIGINT", "signal received, shutting down");
                    return;
                }
            }
        }
    }
}
