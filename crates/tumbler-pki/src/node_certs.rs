//! The certificates a node serves with, proven consistent.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;

use crate::cert::CertInfo;
use crate::names::{CA_CERT, CLIENT_CA_CERT, CertUsage};
use crate::scan::{CertEntry, FileError, Problem, Scan};

/// A certificate chain (leaf first) with its private key.
#[derive(Debug)]
pub struct Identity {
    /// The certificates of the file: the leaf first, then any intermediates.
    pub chain: Vec<CertInfo>,
    key: PrivateKeyDer<'static>,
    /// The CA certificate the chain verified against.
    pub issuer: CertInfo,
}

impl Identity {
    /// The private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The chain as rustls takes it.
    pub fn chain_der(&self) -> Vec<CertificateDer<'static>> {
        self.chain.iter().map(|cert| cert.der.clone()).collect()
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertInfo {
        &self.chain[0]
    }
}

/// The node's trust and identities, built from a [`Scan`] whose entries the node uses are
/// valid and chain to the right CA bundle. A value of this type has passed every check, so the
/// TLS layer uses it without checking again.
#[derive(Debug)]
pub struct NodeCerts {
    /// Every CA certificate in `ca.crt` that is valid now, in file order. Expired ones are
    /// left out: rustls would otherwise still accept leaves they signed.
    pub ca_certs: Vec<CertInfo>,
    /// Every valid CA certificate in `ca-client.crt`, when that file exists. Client
    /// certificates are then checked against these instead of `ca.crt`.
    pub client_ca_certs: Option<Vec<CertInfo>>,
    /// `node.crt`, which verifies against `ca.crt` for server and client authentication.
    pub node: Identity,
    /// `ui.crt`, served by the admin listener instead of `node.crt` when present.
    pub ui: Option<Identity>,
    /// `client.node.crt`, the node's client certificate to other nodes when present.
    pub node_client: Option<Identity>,
    /// Problems that do not stop the node, for the log.
    pub warnings: Vec<String>,
    /// The scan this was built from, kept for reports.
    pub scan: Scan,
}

impl NodeCerts {
    /// Reads `dir` until two reads agree (see [`Scan::read_stable`]) and checks what a node
    /// needs.
    ///
    /// # Errors
    ///
    /// Returns the first [`FileError`] about a file the node uses.
    pub fn load(dir: &Path, now: OffsetDateTime) -> Result<Self, FileError> {
        let scan = Scan::read_stable(dir, now)?;
        Self::from_scan(scan, now)
    }

    /// Checks a scan. `ca.crt` and the node pair must be valid, and `node.crt` must verify
    /// against `ca.crt` for both server and client authentication. `ui.crt`, when present, must
    /// verify for server authentication. `client.node.crt`, when present, must verify against
    /// the client CA (`ca-client.crt`, else `ca.crt`) for client authentication.
    ///
    /// # Errors
    ///
    /// Returns the first [`FileError`] about a file the node uses.
    pub fn from_scan(scan: Scan, now: OffsetDateTime) -> Result<Self, FileError> {
        let ca = required_entry(
            &scan,
            &CertUsage::Ca,
            "create it with 'tumbler cert create-ca'",
        )?;
        let ca_certs = valid_certs(ca, now);
        let client_ca_certs = match scan.entry(&CertUsage::ClientCa) {
            Some(entry) => Some(valid_certs(checked(entry)?, now)),
            None => None,
        };
        let node_entry = required_entry(
            &scan,
            &CertUsage::Node,
            "create it with 'tumbler cert create-node HOST...'",
        )?;
        let node = identity(node_entry, &ca_certs, CA_CERT, &BOTH_USAGES, now)?;
        let ui = match scan.entry(&CertUsage::Ui) {
            Some(entry) => Some(identity(checked(entry)?, &ca_certs, CA_CERT, &SERVER, now)?),
            None => None,
        };
        let (client_trust, client_trust_file) = match &client_ca_certs {
            Some(certs) => (certs, CLIENT_CA_CERT),
            None => (&ca_certs, CA_CERT),
        };
        let node_client = match scan.entry(&CertUsage::Client("node".to_owned())) {
            Some(entry) => Some(identity(
                checked(entry)?,
                client_trust,
                client_trust_file,
                &CLIENT,
                now,
            )?),
            None => None,
        };
        let mut warnings: Vec<String> = scan.warnings.clone();
        for entry in &scan.entries {
            if let (CertUsage::Client(_), Some(error)) = (&entry.usage, &entry.error) {
                warnings.push(format!("client certificate not usable: {error}"));
            }
        }
        Ok(Self {
            ca_certs,
            client_ca_certs,
            node,
            ui,
            node_client,
            warnings,
            scan,
        })
    }

    /// The CA certificates of `ca.crt` as rustls takes them.
    pub fn ca_der(&self) -> Vec<CertificateDer<'static>> {
        self.ca_certs.iter().map(|cert| cert.der.clone()).collect()
    }

    /// The CA certificates client certificates are checked against: `ca-client.crt` when it
    /// exists, else `ca.crt`.
    pub fn client_ca_der(&self) -> Vec<CertificateDer<'static>> {
        let certs = self.client_ca_certs.as_ref().unwrap_or(&self.ca_certs);
        certs.iter().map(|cert| cert.der.clone()).collect()
    }

    /// The identity the admin listener serves: `ui.crt` when present, else `node.crt`.
    pub fn admin_identity(&self) -> &Identity {
        self.ui.as_ref().unwrap_or(&self.node)
    }

    /// The identity the node presents to other nodes: `client.node.crt` when present, else
    /// `node.crt`.
    pub fn outgoing_identity(&self) -> &Identity {
        self.node_client.as_ref().unwrap_or(&self.node)
    }
}

pub(crate) const SERVER: [fn() -> webpki::KeyUsage; 1] = [webpki::KeyUsage::server_auth];
pub(crate) const CLIENT: [fn() -> webpki::KeyUsage; 1] = [webpki::KeyUsage::client_auth];
pub(crate) const BOTH_USAGES: [fn() -> webpki::KeyUsage; 2] =
    [webpki::KeyUsage::server_auth, webpki::KeyUsage::client_auth];

fn valid_certs(entry: &CertEntry, now: OffsetDateTime) -> Vec<CertInfo> {
    entry
        .certs
        .iter()
        .filter(|cert| cert.is_valid_at(now))
        .cloned()
        .collect()
}

fn checked(entry: &CertEntry) -> Result<&CertEntry, FileError> {
    match &entry.error {
        Some(error) => Err(error.clone()),
        None => Ok(entry),
    }
}

fn required_entry<'a>(
    scan: &'a Scan,
    usage: &CertUsage,
    create_hint: &str,
) -> Result<&'a CertEntry, FileError> {
    let Some(entry) = scan.entry(usage) else {
        return Err(FileError {
            path: scan.dir.join(usage.cert_file()),
            problem: Problem::Missing,
            hint: Some(create_hint.to_owned()),
        });
    };
    checked(entry)
}

fn identity(
    entry: &CertEntry,
    anchors: &[CertInfo],
    anchors_file: &str,
    usages: &[fn() -> webpki::KeyUsage],
    now: OffsetDateTime,
) -> Result<Identity, FileError> {
    let key = entry
        .key
        .as_ref()
        .map(|key| key.der().clone_key())
        .ok_or_else(|| FileError {
            path: entry
                .key_path
                .clone()
                .unwrap_or_else(|| entry.cert_path.clone()),
            problem: Problem::Missing,
            hint: None,
        })?;
    let file = entry.usage.cert_file();
    let issuer = verify_chain(&entry.certs, anchors, usages, now).map_err(|reason| FileError {
        path: entry.cert_path.clone(),
        problem: Problem::Untrusted {
            ca_file: anchors_file.to_owned(),
            reason,
        },
        hint: Some(format!(
            "sign {file} with the CA key of a certificate in {anchors_file}, or add its CA \
             certificate to {anchors_file}"
        )),
    })?;
    Ok(Identity {
        chain: entry.certs.clone(),
        key,
        issuer,
    })
}

/// Verifies `chain` (leaf first) against `anchors` for each of `usages`, and returns the
/// anchor that signed it. Issuers are matched by key through webpki's path building, so two
/// CAs with the same subject are never confused.
pub(crate) fn verify_chain(
    chain: &[CertInfo],
    anchors: &[CertInfo],
    usages: &[fn() -> webpki::KeyUsage],
    now: OffsetDateTime,
) -> Result<CertInfo, String> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("the file holds no certificate".to_owned());
    };
    if anchors.is_empty() {
        return Err("no CA certificate in it is valid now".to_owned());
    }
    let trust_anchors = anchors
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(&ca.der).map(|anchor| anchor.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("a CA certificate cannot be used as trust anchor: {error}"))?;
    let intermediates: Vec<CertificateDer<'_>> =
        intermediates.iter().map(|cert| cert.der.clone()).collect();
    let end_entity =
        webpki::EndEntityCert::try_from(&leaf.der).map_err(|error| format!("{error}"))?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let algorithms =
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    let mut issuer = (Vec::new(), Vec::new());
    for usage in usages {
        let path = end_entity
            .verify_for_usage(
                algorithms.all,
                &trust_anchors,
                &intermediates,
                time,
                usage(),
                None,
                None,
            )
            .map_err(|error| format!("{error:?}"))?;
        let anchor = path.anchor();
        issuer = (
            anchor.subject.as_ref().to_vec(),
            anchor.subject_public_key_info.as_ref().to_vec(),
        );
    }
    // Two CA certificates may share a key (a CA re-issued with --allow-ca-key-reuse, or a
    // client CA made with the same key), so the subject must match as well.
    anchors
        .iter()
        .find(|ca| {
            der_body_matches(&ca.subject_der, &issuer.0) && der_body_matches(&ca.spki, &issuer.1)
        })
        .cloned()
        .ok_or_else(|| "the signing CA was not found in the bundle".to_owned())
}

/// webpki's trust anchor keeps the subject and the SubjectPublicKeyInfo without their outer
/// SEQUENCE header; compare the bodies.
fn der_body_matches(full: &[u8], anchor_part: &[u8]) -> bool {
    full.ends_with(anchor_part)
}

/// Verifies the chain of every pair in `scan` that has no error of its own against the bundle
/// the node would check it with: `node.crt` and `ui.crt` against `ca.crt`, client
/// certificates against the client CA (`ca-client.crt`, else `ca.crt`). Returns one error per
/// pair that fails, so `cert list` reports what start-up and reload would reject.
pub fn chain_errors(scan: &Scan, now: OffsetDateTime) -> Vec<FileError> {
    let valid_bundle = |usage: &CertUsage| {
        scan.entry(usage)
            .filter(|entry| entry.error.is_none())
            .map(|entry| valid_certs(entry, now))
    };
    let Some(ca_certs) = valid_bundle(&CertUsage::Ca) else {
        return Vec::new();
    };
    let client_ca_certs = valid_bundle(&CertUsage::ClientCa);
    let (client_trust, client_trust_file) = match &client_ca_certs {
        Some(certs) => (certs, CLIENT_CA_CERT),
        None => (&ca_certs, CA_CERT),
    };
    let mut errors = Vec::new();
    for entry in scan.entries.iter().filter(|entry| entry.error.is_none()) {
        let checked = match &entry.usage {
            CertUsage::Node => identity(entry, &ca_certs, CA_CERT, &BOTH_USAGES, now),
            CertUsage::Ui => identity(entry, &ca_certs, CA_CERT, &SERVER, now),
            CertUsage::Client(_) => identity(entry, client_trust, client_trust_file, &CLIENT, now),
            CertUsage::Ca | CertUsage::ClientCa => continue,
        };
        if let Err(error) = checked {
            errors.push(error);
        }
    }
    errors
}

/// The CA certificate of `ca.crt` that `node.crt` verifies against, if it does.
pub fn node_issuer(scan: &Scan, now: OffsetDateTime) -> Option<CertInfo> {
    let ca = scan
        .entry(&CertUsage::Ca)
        .filter(|entry| entry.error.is_none())?;
    let node = scan
        .entry(&CertUsage::Node)
        .filter(|entry| entry.error.is_none())?;
    let anchors = valid_certs(ca, now);
    verify_chain(&node.certs, &anchors, &BOTH_USAGES, now).ok()
}

impl NodeCerts {
    /// Checks that `node.crt` covers `host`, the address other nodes and clients use to reach
    /// this node: an IP address must be an IP SAN, a name must match a DNS SAN (a `*.` wildcard
    /// covers one label).
    ///
    /// # Errors
    ///
    /// Returns a [`FileError`] on `node.crt` that names the host and the SANs.
    pub fn check_covers(&self, host: &str) -> Result<(), FileError> {
        let leaf = self.node.leaf();
        if leaf.sans.iter().any(|san| san_covers(san, host)) {
            return Ok(());
        }
        let sans: Vec<String> = leaf.sans.iter().map(ToString::to_string).collect();
        Err(FileError {
            path: self.scan.dir.join(CertUsage::Node.cert_file()),
            problem: Problem::AddressNotCovered {
                host: host.to_owned(),
                sans: sans.join(", "),
            },
            hint: Some(format!(
                "create the node certificate with every address it is reached at, including \
                 {host}: 'tumbler cert create-node {host} ... --overwrite'"
            )),
        })
    }

    /// Checks that this generation keeps every optional certificate that `previous` had in a
    /// valid state: a `ui.crt`, `ca-client.crt` or `client.node.crt` that disappears or breaks
    /// must not silently fall back to another certificate.
    ///
    /// # Errors
    ///
    /// Returns a [`FileError`] naming the file that would be lost.
    pub fn check_keeps_slots(&self, previous: &NodeCerts) -> Result<(), FileError> {
        let slots = [
            CertUsage::ClientCa,
            CertUsage::Ui,
            CertUsage::Client("node".to_owned()),
        ];
        for usage in slots {
            let was_valid = previous
                .scan
                .entry(&usage)
                .is_some_and(|entry| entry.error.is_none());
            if !was_valid {
                continue;
            }
            let reason = match self.scan.entry(&usage) {
                None => "it is missing".to_owned(),
                Some(CertEntry {
                    error: Some(error), ..
                }) => error.to_string(),
                Some(_) => continue,
            };
            return Err(FileError {
                path: self.scan.dir.join(usage.cert_file()),
                problem: Problem::WouldLoseSlot { reason },
                hint: Some(format!(
                    "restore a valid {}, or restart the node to stop using it",
                    usage.cert_file()
                )),
            });
        }
        Ok(())
    }
}

fn san_covers(san: &crate::cert::San, host: &str) -> bool {
    use crate::cert::San;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match (san, host.parse::<std::net::IpAddr>()) {
        (San::Ip(address), Ok(wanted)) => *address == wanted,
        (San::Dns(name), Err(_)) => dns_matches(name, host),
        _ => false,
    }
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}
