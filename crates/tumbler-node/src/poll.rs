//! `--cert-reload-interval`: reload when the content of the certs folder changes.
//!
//! Change is detected by the digest of the files' bytes, not by modification times, so a copy
//! with `cp -p` and a folder of symlinks swapped as a whole (as Kubernetes mounts secrets) are
//! both seen. A content that failed to load is not retried until it changes again.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tumbler_pki::Scan;

use crate::reload::Reloader;

/// Polls every `interval` until the task is aborted.
pub(crate) async fn run(reloader: Arc<Reloader>, interval: Duration) {
    tracing::info!(interval = ?interval, "polling the certs folder for changes");
    let mut last_seen = reloader.current_digest();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let dir = reloader.certs_dir().to_owned();
        let scanned =
            tokio::task::spawn_blocking(move || Scan::read(&dir, OffsetDateTime::now_utc())).await;
        let digest = match scanned {
            Ok(Ok(scan)) => scan.digest,
            Ok(Err(error)) => {
                tracing::warn!(%error, "polling the certs folder failed");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "polling the certs folder failed");
                continue;
            }
        };
        if digest != last_seen {
            last_seen = digest;
            reloader.reload("poll").await;
        }
    }
}
