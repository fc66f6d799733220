//! Metrics in the Prometheus text format, served at `/_status/vars`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use tumbler_pki::CertInfo;
use tumbler_tls::Published;

use crate::reload::Reloader;

/// Renders the reload counters, the time of the last successful reload, and the expiration of
/// each certificate the node uses (Unix seconds of the first certificate of each file, as
/// CockroachDB's `security.certificate.expiration.*` gauges report it).
pub(crate) fn render(published: &Published, reloader: &Reloader) -> String {
    let metrics = &reloader.metrics;
    let mut text = String::new();
    text.push_str("# HELP tumbler_cert_reload_total Certificate reloads by result.\n");
    text.push_str("# TYPE tumbler_cert_reload_total counter\n");
    for (result, counter) in [
        ("success", &metrics.success),
        ("failure", &metrics.failure),
        ("unchanged", &metrics.unchanged),
    ] {
        let value = counter.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "tumbler_cert_reload_total{{result=\"{result}\"}} {value}"
        );
    }
    text.push_str(
        "# HELP tumbler_cert_reload_last_success_timestamp_seconds Unix time of the last \
         successful reload, 0 before the first.\n",
    );
    text.push_str("# TYPE tumbler_cert_reload_last_success_timestamp_seconds gauge\n");
    let last = metrics.last_success_unix.load(Ordering::Relaxed);
    let _ = writeln!(
        text,
        "tumbler_cert_reload_last_success_timestamp_seconds {last}"
    );

    text.push_str(
        "# HELP tumbler_cert_expiration_timestamp_seconds Unix time at which the first \
         certificate of each file the node uses expires.\n",
    );
    text.push_str("# TYPE tumbler_cert_expiration_timestamp_seconds gauge\n");
    let certs = &published.certs;
    let mut expiration = |kind: &str, cert: Option<&CertInfo>| {
        if let Some(cert) = cert {
            let seconds = cert.not_after.unix_timestamp();
            let _ = writeln!(
                text,
                "tumbler_cert_expiration_timestamp_seconds{{type=\"{kind}\"}} {seconds}"
            );
        }
    };
    expiration("ca", certs.ca_certs.first());
    expiration(
        "client-ca",
        certs.client_ca_certs.as_ref().and_then(|cas| cas.first()),
    );
    expiration("node", Some(certs.node.leaf()));
    expiration("ui", certs.ui.as_ref().map(|ui| ui.leaf()));
    expiration(
        "node-client",
        certs.node_client.as_ref().map(|client| client.leaf()),
    );
    text
}
