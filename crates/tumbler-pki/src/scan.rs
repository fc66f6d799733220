//! The loader: one read of a certs folder into checked entries.
//!
//! Node start-up, reload and `cert list` all go through [`Scan::read`], so they apply the same
//! rules and print the same messages. A broken file gives an error on its own entry; only an
//! unreadable folder fails the whole scan.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cert::{CertInfo, CertParseError, hex_upper};
use crate::files::check_key_permissions;
use crate::key::{KeyError, PrivateKey};
use crate::names::{CertUsage, normalize_user};
use crate::pem::{PemError, parse_blocks};

/// A problem with one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file does not exist.
    #[error("not found")]
    Missing,
    /// The file exists but cannot be read.
    #[error("cannot be read: {0}")]
    Read(String),
    /// The PEM framing is wrong.
    #[error("{0}")]
    Pem(#[from] PemError),
    /// A PEM block is not a certificate.
    #[error("PEM block {block} is {label}, not CERTIFICATE")]
    NotCertificate {
        /// 1-based index of the block.
        block: usize,
        /// The block's label.
        label: String,
    },
    /// A certificate block does not parse.
    #[error("certificate {block}: {error}")]
    Certificate {
        /// 1-based index of the certificate.
        block: usize,
        /// The parser's reason.
        error: CertParseError,
    },
    /// A certificate in a CA file lacks CA:TRUE.
    #[error(
        "certificate {block} ({subject}) is not a CA certificate (basic constraints lack CA:TRUE)"
    )]
    NotCa {
        /// 1-based index of the certificate.
        block: usize,
        /// Its subject.
        subject: String,
    },
    /// A certificate in a CA file has a key usage without keyCertSign.
    #[error(
        "certificate {block} ({subject}) may not sign certificates: its key usage lacks keyCertSign"
    )]
    CaWithoutCertSign {
        /// 1-based index of the certificate.
        block: usize,
        /// Its subject.
        subject: String,
    },
    /// The key file is readable by others.
    #[error("{0}")]
    Permissions(String),
    /// The key cannot be used.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The key does not belong to the certificate.
    #[error("{key} does not match {cert} (public keys differ)")]
    KeyMismatch {
        /// The key file name.
        key: String,
        /// The certificate file name.
        cert: String,
    },
    /// Every certificate of a CA bundle has expired.
    #[error("every CA certificate in the file has expired, the last at {0}")]
    AllExpired(String),
    /// The leaf certificate has expired.
    #[error("the certificate expired at {0}")]
    Expired(String),
    /// The leaf certificate is not valid yet.
    #[error("the certificate is not valid until {0}")]
    NotYetValid(String),
    /// The certificate's common name is not the one its file name requires.
    #[error("the certificate's CN is {found:?}, but {file} requires CN {expected:?}")]
    WrongCommonName {
        /// The file name.
        file: String,
        /// The CN the file name requires.
        expected: String,
        /// The CN found, or an empty string.
        found: String,
    },
    /// An extended key usage the role needs is missing.
    #[error("the certificate lacks the {usage} extended key usage, which {role}")]
    MissingUsage {
        /// `serverAuth` or `clientAuth`.
        usage: &'static str,
        /// The role that needs it.
        role: &'static str,
    },
    /// The node certificate's SANs do not cover the node's advertised address.
    #[error("the certificate's SANs ({sans}) do not cover the advertised address {host}")]
    AddressNotCovered {
        /// The advertised host.
        host: String,
        /// The SANs the certificate has.
        sans: String,
    },
    /// A reload would drop a certificate that was valid before.
    #[error("the reload would lose this valid certificate: {reason}")]
    WouldLoseSlot {
        /// The reason the new file is unusable.
        reason: String,
    },
    /// The node certificate does not chain to a CA in `ca.crt`.
    #[error("is not signed by any valid CA certificate in {ca_file} ({reason})")]
    Untrusted {
        /// The CA file name.
        ca_file: String,
        /// The reason chain verification gave.
        reason: String,
    },
}

/// A problem together with the file it concerns and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}{}", path.display(), hint.as_ref().map(|hint| format!("; {hint}")).unwrap_or_default())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The problem.
    pub problem: Problem,
    /// The fix, when there is a clear one.
    pub hint: Option<String>,
}

impl FileError {
    fn new(path: &Path, problem: Problem, hint: Option<String>) -> Self {
        Self {
            path: path.to_owned(),
            problem,
            hint,
        }
    }
}

/// Reads of a folder [`Scan::read_stable`] makes before it settles for the last one.
pub const MAX_STABLE_READS: usize = 10;

/// One certificate file of the certs folder and, for a pair, its key.
#[derive(Debug)]
pub struct CertEntry {
    /// The file's role.
    pub usage: CertUsage,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The key file, for pairs.
    pub key_path: Option<PathBuf>,
    /// Every certificate that parsed, in file order.
    pub certs: Vec<CertInfo>,
    /// The key, when it was read and matched.
    pub key: Option<PrivateKey>,
    /// The first problem found, if any.
    pub error: Option<FileError>,
}

impl CertEntry {
    /// The leaf (first) certificate, if one parsed.
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.certs.first()
    }
}

/// A checked read of a certs folder: every certificate file tumbler recognizes, one entry each.
#[derive(Debug)]
pub struct Scan {
    /// The folder that was read.
    pub dir: PathBuf,
    /// Entries in the order CA, node, then clients by user.
    pub entries: Vec<CertEntry>,
    /// Warnings about files that were ignored.
    pub warnings: Vec<String>,
    /// SHA-256 over the names and bytes of every file read, as hex. Two scans with the same
    /// digest read the same content.
    pub digest: String,
}

impl Scan {
    /// Reads every `*.crt` file tumbler recognizes in `dir` once, with its key, and checks each
    /// entry as of `now`.
    ///
    /// # Errors
    ///
    /// Returns a [`FileError`] only when the folder itself cannot be listed.
    pub fn read(dir: &Path, now: OffsetDateTime) -> Result<Self, FileError> {
        let mut usages = BTreeMap::new();
        let mut warnings = Vec::new();
        for name in list_dir(dir)? {
            if !name.ends_with(".crt") {
                continue;
            }
            match CertUsage::from_file_name(&name) {
                Some(usage) => {
                    usages.insert(usage, name);
                }
                None => warnings.push(format!(
                    "ignoring {}: not a certificate file name tumbler knows (ca.crt, \
                     ca-client.crt, node.crt, ui.crt, client.<user>.crt)",
                    dir.join(&name).display()
                )),
            }
        }
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut entries: Vec<CertEntry> = usages
            .into_keys()
            .map(|usage| read_entry(dir, usage, now, &mut digest))
            .collect();
        require_node_client_cert(dir, &mut entries);
        Ok(Self {
            dir: dir.to_owned(),
            entries,
            warnings,
            digest: hex_upper(digest.finish().as_ref()),
        })
    }

    /// Reads `dir` as [`Scan::read`] does, then again, until two reads in a row see the same
    /// bytes. A rotation that replaces files while the folder is read (a certificate renamed
    /// into place between the reads of it and of its key) then yields the old or the new set
    /// whole, never a mix. Gives up after [`MAX_STABLE_READS`] reads and returns the last one,
    /// whose own checks then report any mismatch.
    ///
    /// # Errors
    ///
    /// Returns a [`FileError`] only when the folder itself cannot be listed.
    pub fn read_stable(dir: &Path, now: OffsetDateTime) -> Result<Self, FileError> {
        let mut scan = Self::read(dir, now)?;
        for _ in 1..MAX_STABLE_READS {
            let again = Self::read(dir, now)?;
            if again.digest == scan.digest {
                return Ok(scan);
            }
            scan = again;
        }
        Ok(scan)
    }

    /// The entry for `usage`, if its certificate file exists.
    pub fn entry(&self, usage: &CertUsage) -> Option<&CertEntry> {
        self.entries.iter().find(|entry| &entry.usage == usage)
    }

    /// Whether any entry has an error.
    pub fn has_errors(&self) -> bool {
        self.entries.iter().any(|entry| entry.error.is_some())
    }
}

/// With a client CA, other nodes check this node's client certificate against
/// `ca-client.crt`, which did not sign `node.crt`: `client.node.crt` is then required, and its
/// absence is an error on an entry of its own, so start-up, reload and `cert list` all show it.
fn require_node_client_cert(dir: &Path, entries: &mut Vec<CertEntry>) {
    let node_client = CertUsage::Client("node".to_owned());
    let has_client_ca = entries
        .iter()
        .any(|entry| entry.usage == CertUsage::ClientCa);
    if !has_client_ca || entries.iter().any(|entry| entry.usage == node_client) {
        return;
    }
    let cert_path = dir.join(node_client.cert_file());
    let error = FileError::new(
        &cert_path,
        Problem::Missing,
        Some(
            "ca-client.crt exists, so the node needs a client certificate signed by it: create \
             it with 'tumbler cert create-client node'"
                .to_owned(),
        ),
    );
    entries.push(CertEntry {
        key_path: node_client.key_file().map(|name| dir.join(name)),
        usage: node_client,
        cert_path,
        certs: Vec::new(),
        key: None,
        error: Some(error),
    });
}

fn list_dir(dir: &Path) -> Result<Vec<String>, FileError> {
    let listing = fs::read_dir(dir).map_err(|error| {
        let hint = match error.kind() {
            io::ErrorKind::NotFound => Some("create it with 'tumbler cert create-ca'".to_owned()),
            io::ErrorKind::PermissionDenied => {
                Some("give the node's user read and execute permission on it".to_owned())
            }
            _ => None,
        };
        FileError::new(dir, Problem::Read(error.to_string()), hint)
    })?;
    let mut names = Vec::new();
    for item in listing {
        let item =
            item.map_err(|error| FileError::new(dir, Problem::Read(error.to_string()), None))?;
        // Folders are skipped; symlinks are followed by the reads below.
        if item.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        if let Some(name) = item.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn read_entry(
    dir: &Path,
    usage: CertUsage,
    now: OffsetDateTime,
    digest: &mut aws_lc_rs::digest::Context,
) -> CertEntry {
    let cert_path = dir.join(usage.cert_file());
    let key_path = usage.key_file().map(|name| dir.join(name));
    let mut entry = CertEntry {
        usage,
        cert_path,
        key_path,
        certs: Vec::new(),
        key: None,
        error: None,
    };
    if let Err(error) = fill_entry(&mut entry, now, digest) {
        entry.error = Some(error);
    }
    entry
}

fn fill_entry(
    entry: &mut CertEntry,
    now: OffsetDateTime,
    digest: &mut aws_lc_rs::digest::Context,
) -> Result<(), FileError> {
    let hint = regenerate_hint(&entry.usage);
    let bytes = read_file(&entry.cert_path, digest)?;
    entry.certs = parse_certificates(&bytes)
        .map_err(|problem| FileError::new(&entry.cert_path, problem, hint.clone()))?;
    match &entry.usage {
        CertUsage::Ca | CertUsage::ClientCa => check_ca_bundle(entry, now),
        _ => {
            check_leaf(entry, now)?;
            read_key(entry, digest)
        }
    }
}

fn read_file(path: &Path, digest: &mut aws_lc_rs::digest::Context) -> Result<Vec<u8>, FileError> {
    let bytes = fs::read(path).map_err(|error| {
        let problem = if error.kind() == io::ErrorKind::NotFound {
            Problem::Missing
        } else {
            Problem::Read(error.to_string())
        };
        FileError::new(path, problem, None)
    })?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    digest.update(name.as_bytes());
    digest.update(&(bytes.len() as u64).to_be_bytes());
    digest.update(&bytes);
    Ok(bytes)
}

/// Parses a file of `CERTIFICATE` blocks; an empty file or any other block is an error.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertInfo>, Problem> {
    let blocks = parse_blocks(bytes)?;
    let mut certs = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.into_iter().enumerate() {
        if block.label != "CERTIFICATE" {
            return Err(Problem::NotCertificate {
                block: index + 1,
                label: block.label,
            });
        }
        let info = CertInfo::parse(CertificateDer::from(block.der)).map_err(|error| {
            Problem::Certificate {
                block: index + 1,
                error,
            }
        })?;
        certs.push(info);
    }
    Ok(certs)
}

fn check_ca_bundle(entry: &CertEntry, now: OffsetDateTime) -> Result<(), FileError> {
    for (index, cert) in entry.certs.iter().enumerate() {
        let block = index + 1;
        let subject = cert.subject.clone();
        if !cert.is_ca {
            let problem = Problem::NotCa { block, subject };
            return Err(FileError::new(&entry.cert_path, problem, None));
        }
        // RFC 5280 4.2.1.3: a CA whose key usage is present but lacks keyCertSign must not sign
        // certificates. OpenSSL and libpq reject its leaves; webpki does not check anchors.
        let without_cert_sign =
            !cert.key_usage.is_empty() && !cert.key_usage.iter().any(|usage| usage == "CertSign");
        if without_cert_sign {
            let problem = Problem::CaWithoutCertSign { block, subject };
            return Err(FileError::new(&entry.cert_path, problem, None));
        }
    }
    // Expired CA certificates are left out of the trust store; a bundle with nothing left
    // cannot verify anything.
    if let Some(newest) = entry.certs.iter().map(|cert| cert.not_after).max()
        && newest < now
    {
        let hint = "rotate the CA with 'tumbler cert create-ca --overwrite'".to_owned();
        let problem = Problem::AllExpired(format_time(newest));
        return Err(FileError::new(&entry.cert_path, problem, Some(hint)));
    }
    Ok(())
}

fn check_leaf(entry: &CertEntry, now: OffsetDateTime) -> Result<(), FileError> {
    let Some(leaf) = entry.leaf() else {
        return Ok(());
    };
    let fail = |problem| {
        Err(FileError::new(
            &entry.cert_path,
            problem,
            regenerate_hint(&entry.usage),
        ))
    };
    if now > leaf.not_after {
        return fail(Problem::Expired(format_time(leaf.not_after)));
    }
    if now < leaf.not_before {
        return fail(Problem::NotYetValid(format_time(leaf.not_before)));
    }
    let file = entry.usage.cert_file();
    let found = leaf.common_name.clone().unwrap_or_default();
    match &entry.usage {
        CertUsage::Ca | CertUsage::ClientCa => Ok(()),
        CertUsage::Ui => {
            if !leaf.has_server_auth() {
                return fail(Problem::MissingUsage {
                    usage: "serverAuth",
                    role: "the admin listener needs to serve TLS",
                });
            }
            Ok(())
        }
        CertUsage::Node => {
            if found != "node" {
                return fail(Problem::WrongCommonName {
                    file,
                    expected: "node".to_owned(),
                    found,
                });
            }
            if !leaf.has_server_auth() {
                return fail(Problem::MissingUsage {
                    usage: "serverAuth",
                    role: "the node needs to serve TLS",
                });
            }
            if !leaf.has_client_auth() {
                return fail(Problem::MissingUsage {
                    usage: "clientAuth",
                    role: "the node needs for mutual TLS to other nodes",
                });
            }
            Ok(())
        }
        CertUsage::Client(user) => {
            let matches = normalize_user(&found).is_ok_and(|cn| &cn == user);
            if !matches {
                return fail(Problem::WrongCommonName {
                    file,
                    expected: user.clone(),
                    found,
                });
            }
            if !leaf.has_client_auth() {
                return fail(Problem::MissingUsage {
                    usage: "clientAuth",
                    role: "a client certificate needs",
                });
            }
            Ok(())
        }
    }
}

fn read_key(
    entry: &mut CertEntry,
    digest: &mut aws_lc_rs::digest::Context,
) -> Result<(), FileError> {
    let Some(key_path) = entry.key_path.clone() else {
        return Ok(());
    };
    let hint = regenerate_hint(&entry.usage);
    let metadata = fs::metadata(&key_path).map_err(|error| {
        let problem = if error.kind() == io::ErrorKind::NotFound {
            Problem::Missing
        } else {
            Problem::Read(error.to_string())
        };
        FileError::new(&key_path, problem, hint.clone())
    })?;
    check_key_permissions(&metadata)
        .map_err(|message| FileError::new(&key_path, Problem::Permissions(message), None))?;
    let bytes = read_file(&key_path, digest)?;
    let key = PrivateKey::from_pem(&bytes)
        .map_err(|error| FileError::new(&key_path, Problem::Key(error), hint.clone()))?;
    if let Some(leaf) = entry.leaf() {
        key.check_matches(leaf).map_err(|_| {
            let problem = Problem::KeyMismatch {
                key: entry.usage.key_file().unwrap_or_default(),
                cert: entry.usage.cert_file(),
            };
            FileError::new(&key_path, problem, hint.clone())
        })?;
    }
    entry.key = Some(key);
    Ok(())
}

fn regenerate_hint(usage: &CertUsage) -> Option<String> {
    match usage {
        CertUsage::Ca | CertUsage::ClientCa => None,
        CertUsage::Ui => {
            Some("regenerate the pair with 'tumbler cert create-ui HOST... --overwrite'".to_owned())
        }
        CertUsage::Node => {
            Some("regenerate the pair with 'tumbler cert create-node --overwrite'".to_owned())
        }
        CertUsage::Client(user) => Some(format!(
            "regenerate the pair with 'tumbler cert create-client {user} --overwrite'"
        )),
    }
}

/// Formats a time as RFC 3339 in UTC to the second, the form tumbler prints everywhere.
pub fn format_time(time: OffsetDateTime) -> String {
    // Certificates carry whole seconds; so do tumbler's messages.
    let seconds = time.replace_nanosecond(0).unwrap_or(time);
    seconds
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}
