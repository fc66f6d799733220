//! Certificate reload: read the certs folder once, check it, build the TLS configs, prove them,
//! publish. A failed check leaves the current generation serving.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock;
use time::OffsetDateTime;
use tumbler_tls::{Published, ReloadableTls};

use crate::NodeError;
use crate::generation::GenerationRules;
use crate::sessions::Sessions;

/// The result of one reload.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadOutcome {
    /// `success`, `unchanged` or `failure`.
    pub result: &'static str,
    /// The trigger of the reload: `SIGHUP`, `api` or `poll`.
    pub trigger: String,
    /// When the reload ran, as RFC 3339.
    pub at: String,
    /// The error of a failed reload.
    pub error: Option<String>,
    /// The file the error concerns, when it concerns one.
    pub file: Option<String>,
    /// Serials of certificates that are new in this generation.
    pub serials_added: Vec<String>,
    /// Serials of certificates that are gone.
    pub serials_removed: Vec<String>,
    /// SHA-256 fingerprints of trusted CA certificates that are new.
    pub ca_fingerprints_added: Vec<String>,
    /// SHA-256 fingerprints of CA certificates no longer trusted.
    pub ca_fingerprints_removed: Vec<String>,
    /// Number of CA certificates trusted after the reload.
    pub ca_count: usize,
    /// SQL sessions closed because their client certificate is no longer trusted.
    pub sessions_closed: usize,
}

/// Reload counters, in the form the metrics endpoint exports.
#[derive(Debug, Default)]
pub(crate) struct ReloadMetrics {
    pub(crate) success: AtomicU64,
    pub(crate) failure: AtomicU64,
    pub(crate) unchanged: AtomicU64,
    /// Unix seconds of the last successful reload, 0 before the first.
    pub(crate) last_success_unix: AtomicI64,
}

/// Runs reloads one at a time and remembers the last one.
#[derive(Debug)]
pub struct Reloader {
    rules: GenerationRules,
    tls: Arc<ReloadableTls>,
    sessions: Option<Arc<Sessions>>,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReloadOutcome>>,
    last_success: Mutex<Option<String>>,
    pub(crate) metrics: ReloadMetrics,
}

impl Reloader {
    /// A reloader for the generation slot `tls`, building generations with `rules`. With
    /// `sessions`, a reload that removes a CA closes the sessions it no longer trusts.
    pub(crate) fn new(
        rules: GenerationRules,
        tls: Arc<ReloadableTls>,
        sessions: Option<Arc<Sessions>>,
    ) -> Self {
        Self {
            rules,
            tls,
            sessions,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            last_success: Mutex::new(None),
            metrics: ReloadMetrics::default(),
        }
    }

    /// The digest of the content the current generation was built from.
    pub(crate) fn current_digest(&self) -> String {
        self.tls.current().certs.scan.digest.clone()
    }

    /// The certs folder this reloader reads.
    pub(crate) fn certs_dir(&self) -> &std::path::Path {
        &self.rules.certs_dir
    }

    /// Reads the certs folder and publishes it if every check passes; otherwise the current
    /// generation keeps serving. Reloads never overlap: a caller waits for the running one.
    /// Logs one event with the outcome.
    pub async fn reload(&self, trigger: &str) -> ReloadOutcome {
        let _one_at_a_time = self.running.lock().await;
        let rules = self.rules.clone();
        let current = self.tls.current();
        let previous = current.clone();
        let candidate = tokio::task::spawn_blocking(move || rules.load(Some(&previous))).await;
        let now = OffsetDateTime::now_utc();
        let at = tumbler_pki::scan::format_time(now);
        let mut outcome = match candidate {
            Ok(Ok(next)) if next.certs.scan.digest == current.certs.scan.digest => {
                self.metrics.unchanged.fetch_add(1, Ordering::Relaxed);
                describe("unchanged", trigger, at, &current, &current)
            }
            Ok(Ok(next)) => {
                self.metrics.success.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .last_success_unix
                    .store(now.unix_timestamp(), Ordering::Relaxed);
                let outcome = describe("success", trigger, at.clone(), &current, &next);
                for warning in &next.certs.warnings {
                    tracing::warn!(%warning, "certificate warning");
                }
                self.tls.publish(next);
                *lock(&self.last_success) = Some(at);
                outcome
            }
            Ok(Err(error)) => {
                self.metrics.failure.fetch_add(1, Ordering::Relaxed);
                let mut outcome = describe("failure", trigger, at, &current, &current);
                outcome.file = failed_file(&error);
                outcome.error = Some(error.to_string());
                outcome
            }
            Err(error) => {
                self.metrics.failure.fetch_add(1, Ordering::Relaxed);
                let mut outcome = describe("failure", trigger, at, &current, &current);
                outcome.error = Some(format!("the reload task failed: {error}"));
                outcome
            }
        };
        if outcome.result == "success" && !outcome.ca_fingerprints_removed.is_empty() {
            if let Some(sessions) = &self.sessions {
                outcome.sessions_closed = sessions.close_untrusted(&self.tls.current());
            }
        }
        log_outcome(&outcome);
        *lock(&self.last) = Some(outcome.clone());
        outcome
    }

    /// The last reload, if any ran.
    pub fn last(&self) -> Option<ReloadOutcome> {
        lock(&self.last).clone()
    }

    /// When the last successful reload ran, if any did.
    pub fn last_success(&self) -> Option<String> {
        lock(&self.last_success).clone()
    }
}

fn describe(
    result: &'static str,
    trigger: &str,
    at: String,
    before: &Published,
    after: &Published,
) -> ReloadOutcome {
    let (old_serials, new_serials) = (serials(before), serials(after));
    let (old_cas, new_cas) = (ca_fingerprints(before), ca_fingerprints(after));
    ReloadOutcome {
        result,
        trigger: trigger.to_owned(),
        at,
        error: None,
        file: None,
        serials_added: new_serials.difference(&old_serials).cloned().collect(),
        serials_removed: old_serials.difference(&new_serials).cloned().collect(),
        ca_fingerprints_added: new_cas.difference(&old_cas).cloned().collect(),
        ca_fingerprints_removed: old_cas.difference(&new_cas).cloned().collect(),
        ca_count: after.certs.ca_certs.len(),
        sessions_closed: 0,
    }
}

fn failed_file(error: &NodeError) -> Option<String> {
    match error {
        NodeError::Certificates(file_error) => Some(file_error.path.display().to_string()),
        _ => None,
    }
}

fn serials(published: &Published) -> BTreeSet<String> {
    published
        .certs
        .scan
        .entries
        .iter()
        .flat_map(|entry| entry.certs.iter().map(|cert| cert.serial_hex()))
        .collect()
}

/// Fingerprints of every trusted CA certificate: `ca.crt` and `ca-client.crt`.
fn ca_fingerprints(published: &Published) -> BTreeSet<String> {
    let certs = &published.certs;
    certs
        .ca_certs
        .iter()
        .chain(certs.client_ca_certs.iter().flatten())
        .map(|cert| cert.fingerprint_sha256.clone())
        .collect()
}

fn log_outcome(outcome: &ReloadOutcome) {
    let added = outcome.serials_added.join(",");
    let removed = outcome.serials_removed.join(",");
    let cas_added = outcome.ca_fingerprints_added.join(",");
    let cas_removed = outcome.ca_fingerprints_removed.join(",");
    match outcome.error.as_deref() {
        None => tracing::info!(
            event = "certs_reload",
            result = outcome.result,
            trigger = %outcome.trigger,
            serials_added = %added,
            serials_removed = %removed,
            ca_fingerprints_added = %cas_added,
            ca_fingerprints_removed = %cas_removed,
            ca_count = outcome.ca_count,
            sessions_closed = outcome.sessions_closed,
            "certificate reload finished"
        ),
        Some(error) => tracing::error!(
            event = "certs_reload",
            result = outcome.result,
            trigger = %outcome.trigger,
            file = outcome.file.as_deref().unwrap_or_default(),
            error = %error,
            "certificate reload failed, still serving the previous certificates"
        ),
    }
}
