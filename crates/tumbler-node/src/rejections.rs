//! Rate-limited logging of rejected connections.
//!
//! A client stuck on an untrusted certificate, or a scan of the port, can fail thousands of
//! handshakes a minute. Each rejection is logged with its peer and reason until a window's
//! budget is spent; the rest of the window is counted and reported in one line when the next
//! window opens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of one logging window.
const WINDOW: Duration = Duration::from_secs(10);
/// Rejections logged one by one per window.
const LOGGED_PER_WINDOW: u32 = 20;

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// A logging budget shared by one listener's connections.
#[derive(Debug)]
pub(crate) struct RejectionLog {
    listener: &'static str,
    window: Mutex<Window>,
}

impl RejectionLog {
    /// A budget for the listener named `listener` (`SQL` or `admin`).
    pub(crate) fn new(listener: &'static str) -> Self {
        let window = Window {
            started: Instant::now(),
            logged: 0,
            suppressed: 0,
        };
        Self {
            listener,
            window: Mutex::new(window),
        }
    }

    /// Logs a rejected connection from `peer` unless this window's budget is spent.
    pub(crate) fn reject(
        &self,
        peer: &dyn std::fmt::Display,
        user: Option<&str>,
        reason: &dyn std::fmt::Display,
    ) {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if window.started.elapsed() >= WINDOW {
            if window.suppressed > 0 {
                tracing::warn!(
                    listener = self.listener,
                    suppressed = window.suppressed,
                    window_seconds = WINDOW.as_secs(),
                    "more connections were rejected than logged"
                );
            }
            *window = Window {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            };
        }
        if window.logged >= LOGGED_PER_WINDOW {
            window.suppressed += 1;
            return;
        }
        window.logged += 1;
        drop(window);
        tracing::warn!(
            listener = self.listener,
            peer = %peer,
            user = user.unwrap_or_default(),
            reason = %reason,
            "connection rejected"
        );
    }
}
