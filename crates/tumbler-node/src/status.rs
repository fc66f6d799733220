//! The certificates status API, in the shape of CockroachDB's `/_status/certificates/local`.

use serde::Serialize;
use tumbler_pki::{CertEntry, CertInfo, San};
use tumbler_tls::Published;

use crate::reload::{ReloadOutcome, Reloader};

/// Response of `GET /_status/certificates/local`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificatesResponse {
    /// One entry per certificate file of the generation in use.
    certificates: Vec<CertificateDetails>,
    /// When the generation in use was loaded, RFC 3339.
    loaded_at: String,
    /// The last reload attempt and success.
    reload: ReloadStatus,
    /// The node's process id, which stays the same across reloads.
    pid: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReloadStatus {
    last_attempt: Option<ReloadOutcome>,
    last_success_at: Option<String>,
}

/// One certificate file, as CockroachDB's `CertificateDetails`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateDetails {
    /// `CA`, `NODE` or `CLIENT`.
    r#type: &'static str,
    /// The file name inside the certs folder.
    file: String,
    /// Empty unless the file has an error.
    error_message: String,
    /// One entry per certificate in file order.
    fields: Vec<CertificateFields>,
}

/// The fields of one certificate. Times are Unix nanoseconds written as strings, as
/// CockroachDB's JSON gateway writes int64 values.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateFields {
    issuer: String,
    subject: String,
    valid_from: String,
    valid_until: String,
    addresses: Vec<String>,
    signature_algorithm: String,
    public_key: String,
    key_usage: Vec<String>,
    extended_key_usage: Vec<String>,
    serial: String,
    fingerprint_sha256: String,
    subject_key_id: String,
    authority_key_id: String,
}

impl CertificatesResponse {
    pub(crate) fn new(published: &Published, reloader: &Reloader) -> Self {
        Self {
            certificates: published.certs.scan.entries.iter().map(details).collect(),
            loaded_at: tumbler_pki::scan::format_time(published.loaded_at),
            reload: ReloadStatus {
                last_attempt: reloader.last(),
                last_success_at: reloader.last_success(),
            },
            pid: std::process::id(),
        }
    }
}

fn details(entry: &CertEntry) -> CertificateDetails {
    let file = entry
        .cert_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    CertificateDetails {
        r#type: entry.usage.label(),
        file,
        error_message: entry
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        fields: entry.certs.iter().map(fields).collect(),
    }
}

fn fields(cert: &CertInfo) -> CertificateFields {
    CertificateFields {
        issuer: cert.issuer.clone(),
        subject: cert.subject.clone(),
        valid_from: cert.not_before.unix_timestamp_nanos().to_string(),
        valid_until: cert.not_after.unix_timestamp_nanos().to_string(),
        addresses: cert.sans.iter().map(San::to_string).collect(),
        signature_algorithm: cert.signature_algorithm.clone(),
        public_key: cert.public_key.clone(),
        key_usage: cert.key_usage.clone(),
        extended_key_usage: cert.extended_key_usage.clone(),
        serial: cert.serial_hex(),
        fingerprint_sha256: cert.fingerprint_sha256.clone(),
        subject_key_id: cert.subject_key_id.clone().unwrap_or_default(),
        authority_key_id: cert.authority_key_id.clone().unwrap_or_default(),
    }
}
