//! Certificate reload: read the certs folder once, check it, build the TLS configs, publish.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tumbler_tls::{Published, ReloadableTls};

use crate::load_generation;

/// What one reload did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadOutcome {
    /// `success`, `unchanged` or `failure`.
    pub result: &'static str,
    /// What asked for the reload (`SIGHUP`, `api`).
    pub trigger: String,
    /// When the reload ran, as RFC 3339.
    pub at: String,
    /// The error of a failed reload, naming the file.
    pub error: Option<String>,
    /// Serials of certificates that are new in this generation.
    pub serials_added: Vec<String>,
    /// Serials of certificates that are gone.
    pub serials_removed: Vec<String>,
    /// Number of CA certificates trusted after the reload.
    pub ca_count: usize,
}

/// Runs reloads one at a time and remembers the last one.
#[derive(Debug)]
pub struct Reloader {
    certs_dir: PathBuf,
    tls: Arc<ReloadableTls>,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReloadOutcome>>,
    last_success: Mutex<Option<String>>,
}

impl Reloader {
    /// A reloader for the generation slot `tls`, reading `certs_dir`.
    pub fn new(certs_dir: PathBuf, tls: Arc<ReloadableTls>) -> Self {
        Self {
            certs_dir,
            tls,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            last_success: Mutex::new(None),
        }
    }

    /// Reads the certs folder and publishes it if every check passes; otherwise the current
    /// generation keeps serving. Logs one event with the outcome.
    pub async fn reload(&self, trigger: &str) -> ReloadOutcome {
        let _one_at_a_time = self.running.lock().await;
        let certs_dir = self.certs_dir.clone();
        let candidate = tokio::task::spawn_blocking(move || load_generation(&certs_dir)).await;
        let at = tumbler_pki::scan::format_time(OffsetDateTime::now_utc());
        let current = self.tls.current();
        let outcome = match candidate {
            Ok(Ok(next)) if next.certs.scan.digest == current.certs.scan.digest => {
                self.outcome("unchanged", trigger, at, None, &current, &current)
            }
            Ok(Ok(next)) => {
                let outcome = self.outcome("success", trigger, at.clone(), None, &current, &next);
                self.tls.publish(next);
                *lock(&self.last_success) = Some(at);
                outcome
            }
            Ok(Err(error)) => self.outcome(
                "failure",
                trigger,
                at,
                Some(error.to_string()),
                &current,
                &current,
            ),
            Err(error) => self.outcome(
                "failure",
                trigger,
                at,
                Some(format!("the reload task failed: {error}")),
                &current,
                &current,
            ),
        };
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

    fn outcome(
        &self,
        result: &'static str,
        trigger: &str,
        at: String,
        error: Option<String>,
        before: &Published,
        after: &Published,
    ) -> ReloadOutcome {
        let old = serials(before);
        let new = serials(after);
        ReloadOutcome {
            result,
            trigger: trigger.to_owned(),
            at,
            error,
            serials_added: new.difference(&old).cloned().collect(),
            serials_removed: old.difference(&new).cloned().collect(),
            ca_count: after.certs.ca_certs.len(),
        }
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

fn log_outcome(outcome: &ReloadOutcome) {
    let added = outcome.serials_added.join(",");
    let removed = outcome.serials_removed.join(",");
    match outcome.error.as_deref() {
        None => tracing::info!(
            event = "certs_reload",
            result = outcome.result,
            trigger = %outcome.trigger,
            serials_added = %added,
            serials_removed = %removed,
            ca_count = outcome.ca_count,
            "certificate reload finished"
        ),
        Some(error) => tracing::error!(
            event = "certs_reload",
            result = outcome.result,
            trigger = %outcome.trigger,
            error = %error,
            "certificate reload failed, still serving the previous certificates"
        ),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
