//! `tumbler cert remove-ca`: taking one CA certificate out of a CA bundle, the step after a CA
//! key is compromised or a rotation has finished.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::cert::CertInfo;
use crate::create::{CaBundle, CreateError, CreateReport};
use crate::files::{CERT_MODE, write_atomic};
use crate::names::{CA_CERT, CLIENT_CA_CERT, NODE_CERT};
use crate::node_certs::{BOTH_USAGES, CLIENT, verify_chain};
use crate::pem::encode_block;
use crate::scan::{Problem, parse_certificates};

/// Minimum number of hex digits in a fingerprint prefix that `remove_ca` accepts.
pub const MIN_FINGERPRINT_PREFIX: usize = 16;

/// Removes the certificate whose SHA-256 fingerprint is `fingerprint` from `ca.crt`, or from
/// `ca-client.crt` when `ca.crt` does not contain it.
///
/// The fingerprint may be written in upper or lower case, with or without colons, and may be
/// shortened to a prefix of at least [`MIN_FINGERPRINT_PREFIX`] hex digits that only one
/// certificate has (`cert list` shows such prefixes). Unless `force` is set, the command
/// refuses to remove the CA that signed the current `node.crt` (for `ca.crt`) or
/// `client.node.crt` (for `ca-client.crt`). Without that CA the node could no longer prove its
/// identity to peers that trust the new bundle. It also refuses to remove the last certificate.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn remove_ca(
    certs_dir: &std::path::Path,
    fingerprint: &str,
    force: bool,
    now: OffsetDateTime,
) -> Result<CreateReport, CreateError> {
    let wanted = normalize_fingerprint(fingerprint);
    if wanted.len() < MIN_FINGERPRINT_PREFIX {
        return Err(CreateError::InvalidInput(format!(
            "--fingerprint={fingerprint} is too short: give at least {MIN_FINGERPRINT_PREFIX} hex \
             digits of the SHA-256 fingerprint ('tumbler cert list' or 'cert inspect' prints them)"
        )));
    }
    let mut known = Vec::new();
    for bundle in [CaBundle::Server, CaBundle::Client] {
        let path = certs_dir.join(bundle_file(bundle));
        if bundle == CaBundle::Client && !path.exists() {
            continue;
        }
        let certs = read_certs(&path)?;
        let matching: Vec<usize> = (0..certs.len())
            .filter(|&index| certs[index].fingerprint_sha256.starts_with(&wanted))
            .collect();
        if matching.len() > 1 {
            return Err(CreateError::InvalidInput(format!(
                "--fingerprint={fingerprint} matches {} certificates in {}; give more digits",
                matching.len(),
                path.display()
            )));
        }
        match matching.first().copied() {
            Some(index) => return remove_at(certs_dir, bundle, certs, index, force, now),
            None => known.extend(certs.iter().map(|cert| {
                format!(
                    "{} ({}, in {})",
                    cert.fingerprint_sha256,
                    cert.subject,
                    bundle_file(bundle)
                )
            })),
        }
    }
    Err(CreateError::InvalidInput(format!(
        "no CA certificate in {} has the SHA-256 fingerprint {fingerprint}; the bundles hold: {}",
        certs_dir.display(),
        known.join(", ")
    )))
}

fn bundle_file(bundle: CaBundle) -> &'static str {
    match bundle {
        CaBundle::Server => CA_CERT,
        CaBundle::Client => CLIENT_CA_CERT,
    }
}

fn remove_at(
    certs_dir: &std::path::Path,
    bundle: CaBundle,
    certs: Vec<CertInfo>,
    index: usize,
    force: bool,
    now: OffsetDateTime,
) -> Result<CreateReport, CreateError> {
    let path = certs_dir.join(bundle_file(bundle));
    let signed_file = match bundle {
        CaBundle::Server => NODE_CERT,
        CaBundle::Client => "client.node.crt",
    };
    if certs.len() == 1 {
        return Err(CreateError::InvalidInput(format!(
            "{} contains only this certificate; removing it would leave no trusted CA",
            path.display()
        )));
    }
    let removed = &certs[index];
    if !force {
        refuse_if_signer(certs_dir, signed_file, removed, bundle, now)?;
    }

    let mut text = String::new();
    for (position, cert) in certs.iter().enumerate() {
        if position != index {
            text.push_str(&encode_block("CERTIFICATE", &cert.der));
        }
    }
    write_atomic(&path, text.as_bytes(), CERT_MODE).map_err(|error| CreateError::Write {
        path: path.clone(),
        error,
    })?;
    Ok(CreateReport {
        written: vec![path],
        warnings: Vec::new(),
        certificate: Some(removed.clone()),
    })
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertInfo>, CreateError> {
    let bytes = std::fs::read(path).map_err(|error| CreateError::Input {
        path: path.to_owned(),
        problem: if error.kind() == std::io::ErrorKind::NotFound {
            Problem::Missing
        } else {
            Problem::Read(error.to_string())
        },
    })?;
    parse_certificates(&bytes).map_err(|problem| CreateError::Input {
        path: path.to_owned(),
        problem,
    })
}

/// Fails when `ca` is the certificate that `signed_file` verifies against.
fn refuse_if_signer(
    certs_dir: &std::path::Path,
    signed_file: &str,
    ca: &CertInfo,
    bundle: CaBundle,
    now: OffsetDateTime,
) -> Result<(), CreateError> {
    let signed_path: PathBuf = certs_dir.join(signed_file);
    let Ok(chain) = read_certs(&signed_path) else {
        return Ok(());
    };
    let usages: &[fn() -> webpki::KeyUsage] = match bundle {
        CaBundle::Server => &BOTH_USAGES,
        CaBundle::Client => &CLIENT,
    };
    if verify_chain(&chain, std::slice::from_ref(ca), usages, now).is_ok() {
        return Err(CreateError::InvalidInput(format!(
            "the CA certificate {} signed the current {signed_file}; rotate {signed_file} to a \
             certificate from another CA in the bundle first, or pass --force to remove it anyway",
            ca.fingerprint_sha256
        )));
    }
    Ok(())
}

/// Upper-case hex without separators, the form [`CertInfo::fingerprint_sha256`] uses.
fn normalize_fingerprint(text: &str) -> String {
    text.trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_uppercase()
}
