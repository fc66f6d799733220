//! The certificates a node serves with, proven consistent.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;

use crate::cert::CertInfo;
use crate::names::{CA_CERT, CertUsage};
use crate::scan::{CertEntry, FileError, Problem, Scan};

/// The node's trust and identity, built from a [`Scan`] whose CA and node entries are valid and
/// whose `node.crt` chains to a CA certificate in `ca.crt`. A value of this type has passed
/// every check, so the TLS layer uses it without checking again.
#[derive(Debug)]
pub struct NodeCerts {
    /// Every CA certificate in `ca.crt` that is valid now, in file order.
    pub ca_certs: Vec<CertInfo>,
    /// `node.crt`: the leaf first, then any intermediates.
    pub node_chain: Vec<CertInfo>,
    node_key: PrivateKeyDer<'static>,
    /// The CA certificate that signed `node.crt`'s chain.
    pub node_issuer: CertInfo,
    /// The scan this was built from, kept for reports.
    pub scan: Scan,
}

impl NodeCerts {
    /// Reads `dir` and checks what a node needs.
    ///
    /// # Errors
    ///
    /// Returns the first [`FileError`] about the CA bundle or the node pair.
    pub fn load(dir: &Path, now: OffsetDateTime) -> Result<Self, FileError> {
        let scan = Scan::read(dir, now)?;
        Self::from_scan(scan, now)
    }

    /// Checks a scan: `ca.crt` and the node pair are valid, and the node chain verifies
    /// against the CA bundle for both server and client authentication.
    ///
    /// # Errors
    ///
    /// Returns the first [`FileError`] about the CA bundle or the node pair.
    pub fn from_scan(scan: Scan, now: OffsetDateTime) -> Result<Self, FileError> {
        let ca = required_entry(
            &scan,
            &CertUsage::Ca,
            "create it with 'tumbler cert create-ca'",
        )?;
        let node = required_entry(
            &scan,
            &CertUsage::Node,
            "create it with 'tumbler cert create-node HOST...'",
        )?;
        let ca_certs: Vec<CertInfo> = ca
            .certs
            .iter()
            .filter(|cert| cert.is_valid_at(now))
            .cloned()
            .collect();
        let node_key = node
            .key
            .as_ref()
            .map(|key| key.der().clone_key())
            .ok_or_else(|| FileError {
                path: node.cert_path.clone(),
                problem: Problem::Missing,
                hint: None,
            })?;
        let node_chain = node.certs.clone();
        let node_issuer =
            verify_chain(&node_chain, &ca_certs, now).map_err(|reason| FileError {
                path: node.cert_path.clone(),
                problem: Problem::Untrusted {
                    ca_file: CA_CERT.to_owned(),
                    reason,
                },
                hint: Some(
                    "sign node.crt with the CA key of a certificate in ca.crt, or add its CA \
                 certificate to ca.crt"
                        .to_owned(),
                ),
            })?;
        Ok(Self {
            ca_certs,
            node_chain,
            node_key,
            node_issuer,
            scan,
        })
    }

    /// The node's private key.
    pub fn node_key(&self) -> PrivateKeyDer<'static> {
        self.node_key.clone_key()
    }

    /// The node chain as rustls takes it.
    pub fn node_chain_der(&self) -> Vec<CertificateDer<'static>> {
        self.node_chain
            .iter()
            .map(|cert| cert.der.clone())
            .collect()
    }

    /// The CA certificates as rustls takes them.
    pub fn ca_der(&self) -> Vec<CertificateDer<'static>> {
        self.ca_certs.iter().map(|cert| cert.der.clone()).collect()
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
    match &entry.error {
        Some(error) => Err(error.clone()),
        None => Ok(entry),
    }
}

/// Verifies `chain` (leaf first) against `anchors` for both TLS server and client use, and
/// returns the anchor that signed it. Issuers are matched by key through webpki's path
/// building, so two CAs with the same subject are never confused.
fn verify_chain(
    chain: &[CertInfo],
    anchors: &[CertInfo],
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
    let mut issuer_spki = Vec::new();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        let path = end_entity
            .verify_for_usage(
                algorithms.all,
                &trust_anchors,
                &intermediates,
                time,
                usage,
                None,
                None,
            )
            .map_err(|error| format!("{error:?}"))?;
        issuer_spki = path.anchor().subject_public_key_info.as_ref().to_vec();
    }
    anchors
        .iter()
        .find(|ca| spki_body_matches(&ca.spki, &issuer_spki))
        .cloned()
        .ok_or_else(|| "the signing CA was not found in the bundle".to_owned())
}

/// webpki's trust anchor keeps the SubjectPublicKeyInfo without its outer SEQUENCE header;
/// compare the bodies.
fn spki_body_matches(full_spki: &[u8], anchor_spki: &[u8]) -> bool {
    full_spki.ends_with(anchor_spki)
}
