//! `tumbler cert create-*`: new CA, node and client certificates.
//!
//! Every file is staged beside its destination and renamed into place only after every
//! certificate and key of the command has been built, so a failed command writes nothing.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::cert::CertInfo;
use crate::files::{self, CERT_MODE, KEY_MODE};
use crate::key::{KeyType, PrivateKey};
use crate::lifetime::BACKDATE;
use crate::names::{CA_CERT, CLIENT_CA_CERT, CertUsage, PairPaths, normalize_user};
use crate::pem::encode_block;
use crate::scan::{Problem, format_time, parse_certificates};

/// Organization written into every certificate tumbler creates.
pub const ORGANIZATION: &str = "Tumbler";
/// Common name of CA certificates, as CockroachDB writes it.
pub const CA_COMMON_NAME: &str = "Cockroach CA";
/// Common name of client CA certificates, as CockroachDB writes it.
pub const CLIENT_CA_COMMON_NAME: &str = "Cockroach Client CA";
/// Common name of node certificates.
pub const NODE_COMMON_NAME: &str = "node";

/// Errors of the create commands. Each is reported before any file is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// A destination exists and `--overwrite` was not given.
    #[error("{} already exists; pass --overwrite to replace it", .0.display())]
    Exists(PathBuf),
    /// The CA key exists and key reuse was not allowed.
    #[error(
        "CA key {} already exists; pass --allow-ca-key-reuse to sign a new CA certificate with \
         it, or move it away to create a new key",
        .0.display()
    )]
    CaKeyExists(PathBuf),
    /// The CA key is missing.
    #[error("CA key {} not found; create a CA with 'tumbler cert create-ca' or pass the right --ca-key", .0.display())]
    CaKeyMissing(PathBuf),
    /// A file cannot be read or parsed.
    #[error("{}: {problem}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// The problem.
        problem: Problem,
    },
    /// No CA certificate in the bundle belongs to the CA key.
    #[error(
        "no CA certificate in {} matches the CA key {}; pass the --ca-key that belongs to \
         {}, or sign a new CA certificate with this key ('tumbler cert create-ca' for ca.crt, \
         'create-client-ca' for ca-client.crt, with --allow-ca-key-reuse --overwrite)",
        ca_cert.display(), ca_key.display(), ca_cert.display()
    )]
    NoMatchingCa {
        /// The CA bundle.
        ca_cert: PathBuf,
        /// The CA key.
        ca_key: PathBuf,
    },
    /// The signing CA certificate has expired or is not yet valid.
    #[error("the CA certificate in {} that matches the CA key is not valid now (valid {} to {}); rotate the CA with 'tumbler cert create-ca --overwrite'", path.display(), not_before, not_after)]
    CaNotValid {
        /// The CA bundle.
        path: PathBuf,
        /// Start of its validity.
        not_before: String,
        /// End of its validity.
        not_after: String,
    },
    /// The requested lifetime ends after the CA certificate.
    #[error(
        "the certificate would expire at {requested}, after its CA certificate ({ca_expires}); \
         a certificate never outlives its CA: pass --lifetime={max_lifetime} or less, or rotate the CA"
    )]
    OutlivesCa {
        /// Requested expiry.
        requested: String,
        /// The CA's expiry.
        ca_expires: String,
        /// The maximum lifetime that fits, as a `--lifetime` value.
        max_lifetime: String,
    },
    /// A value given on the command line is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// Building or signing a certificate failed.
    #[error("creating the certificate failed: {0}")]
    Generate(String),
    /// Writing a file failed.
    #[error("writing {} failed: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// Options every create command shares.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The certs folder.
    pub certs_dir: PathBuf,
    /// The CA key file, outside the certs folder.
    pub ca_key: PathBuf,
    /// Replace existing files.
    pub overwrite: bool,
    /// How long the new certificate is valid.
    pub lifetime: Duration,
    /// Kind of key to generate.
    pub key_type: KeyType,
    /// The current time; tests pass a fixed clock.
    pub now: OffsetDateTime,
}

/// The result of a create command.
#[derive(Debug, Default)]
pub struct CreateReport {
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// Warnings for the operator.
    pub warnings: Vec<String>,
    /// The new certificate.
    pub certificate: Option<CertInfo>,
}

/// The CA bundle a create command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaBundle {
    /// `ca.crt`: signs node certificates, and client certificates unless a client CA exists.
    Server,
    /// `ca-client.crt`: signs client certificates; nodes then check client certificates
    /// against it instead of `ca.crt`.
    Client,
}

impl CaBundle {
    fn file(self) -> &'static str {
        match self {
            Self::Server => CA_CERT,
            Self::Client => CLIENT_CA_CERT,
        }
    }

    fn common_name(self) -> &'static str {
        match self {
            Self::Server => CA_COMMON_NAME,
            Self::Client => CLIENT_CA_COMMON_NAME,
        }
    }
}

/// Settings of `create-ca` and `create-client-ca`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaOptions {
    /// Sign the new CA certificate with the existing key at `--ca-key`.
    pub allow_key_reuse: bool,
    /// Keep expired CA certificates in the combined bundle instead of dropping them.
    pub keep_expired: bool,
}

/// Creates a CA certificate for `ca.crt` and, unless it exists and may be reused, its key.
/// See [`create_ca_bundle`].
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_ca(
    options: &CreateOptions,
    allow_key_reuse: bool,
) -> Result<CreateReport, CreateError> {
    let ca = CaOptions {
        allow_key_reuse,
        ..CaOptions::default()
    };
    create_ca_bundle(options, CaBundle::Server, ca)
}

/// Creates a CA certificate and, unless it exists and may be reused, its key.
///
/// When the bundle exists and `overwrite` is set, the new certificate is written first and the
/// certificates already there follow it: the combined CA bundle that keeps certificates signed
/// by the old CA trusted while a rotation rolls out. Expired ones are dropped, and named in
/// the report's warnings, unless `keep_expired` is set.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_ca_bundle(
    options: &CreateOptions,
    bundle_kind: CaBundle,
    ca: CaOptions,
) -> Result<CreateReport, CreateError> {
    let mut report = CreateReport {
        warnings: ca_key_warnings(options),
        ..CreateReport::default()
    };
    let ca_path = options.certs_dir.join(bundle_kind.file());
    if ca_path.exists() && !options.overwrite {
        return Err(CreateError::Exists(ca_path));
    }
    let (key, key_is_new) = match read_optional(&options.ca_key)? {
        Some(bytes) if ca.allow_key_reuse => (load_signing_key(&options.ca_key, &bytes)?, false),
        Some(_) => return Err(CreateError::CaKeyExists(options.ca_key.clone())),
        None => (
            options.key_type.generate().map_err(CreateError::Generate)?,
            true,
        ),
    };
    let old_bundle = match read_optional(&ca_path)? {
        Some(bytes) => parse_certificates(&bytes).map_err(|problem| CreateError::Input {
            path: ca_path.clone(),
            problem,
        })?,
        None => Vec::new(),
    };

    let mut params = base_params(options, bundle_kind.common_name(), options.lifetime)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|error| CreateError::Generate(error.to_string()))?;

    let mut bundle = cert.pem();
    for old in old_bundle {
        if old.not_after < options.now && !ca.keep_expired {
            report.warnings.push(format!(
                "dropped the CA certificate {} (serial {}), which expired at {}; pass \
                 --keep-expired to keep expired CA certificates",
                old.subject,
                old.serial_hex(),
                format_time(old.not_after)
            ));
            continue;
        }
        bundle.push_str(&encode_block("CERTIFICATE", &old.der));
    }
    let mut writes = Vec::new();
    if key_is_new {
        writes.push((
            options.ca_key.clone(),
            key.serialize_pem().into_bytes(),
            KEY_MODE,
        ));
    }
    writes.push((ca_path, bundle.into_bytes(), CERT_MODE));
    report.certificate = Some(parsed(cert.der().clone())?);
    write_all(&writes, &mut report)?;
    Ok(report)
}

/// Creates `node.crt` and `node.key` for `hosts`: each host that parses as an IP address
/// becomes an IP SAN, every other a DNS SAN.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_node(options: &CreateOptions, hosts: &[String]) -> Result<CreateReport, CreateError> {
    if hosts.is_empty() {
        return Err(CreateError::InvalidInput(
            "create-node needs at least one host name or IP address".to_owned(),
        ));
    }
    let sans = hosts
        .iter()
        .map(|host| to_san(host))
        .collect::<Result<Vec<_>, _>>()?;
    let eku = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf = Leaf {
        usage: CertUsage::Node,
        common_name: NODE_COMMON_NAME.to_owned(),
        sans,
        eku,
        signer: CA_CERT,
        also_pkcs8: false,
    };
    create_leaf(options, &leaf)
}

/// Creates `client.<user>.crt` and `client.<user>.key`, with CN `<user>` and EKU clientAuth.
/// The user name is normalized to lower case, as SQL identifiers are.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_client(options: &CreateOptions, user: &str) -> Result<CreateReport, CreateError> {
    create_client_with(options, user, false)
}

/// Creates a client pair as [`create_client`] does and, with `also_pkcs8`, a DER PKCS#8 copy
/// of the key at `client.<user>.key.pk8` (mode 0600), the form JDBC drivers read. When
/// `ca-client.crt` exists, the certificate is signed by the client CA that matches the CA key.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_client_with(
    options: &CreateOptions,
    user: &str,
    also_pkcs8: bool,
) -> Result<CreateReport, CreateError> {
    let normalized = normalize_user(user).map_err(CreateError::InvalidInput)?;
    let client_ca = options.certs_dir.join(CLIENT_CA_CERT);
    let leaf = Leaf {
        usage: CertUsage::Client(normalized.clone()),
        common_name: normalized.clone(),
        sans: Vec::new(),
        eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
        signer: if client_ca.exists() {
            CLIENT_CA_CERT
        } else {
            CA_CERT
        },
        also_pkcs8,
    };
    let mut report = create_leaf(options, &leaf)?;
    if normalized != user {
        report.warnings.push(format!(
            "user name {user:?} was normalized to {normalized:?}"
        ));
    }
    Ok(report)
}

/// Creates `ui.crt` and `ui.key` for the admin listener: CN is the first host, every host a
/// SAN, EKU serverAuth, signed by the CA in `ca.crt` that matches the CA key.
///
/// # Errors
///
/// Returns a [`CreateError`]; nothing is written then.
pub fn create_ui(options: &CreateOptions, hosts: &[String]) -> Result<CreateReport, CreateError> {
    let Some(first) = hosts.first() else {
        return Err(CreateError::InvalidInput(
            "create-ui needs at least one host name or IP address".to_owned(),
        ));
    };
    let leaf = Leaf {
        usage: CertUsage::Ui,
        common_name: first.clone(),
        sans: hosts
            .iter()
            .map(|host| to_san(host))
            .collect::<Result<Vec<_>, _>>()?,
        eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
        signer: CA_CERT,
        also_pkcs8: false,
    };
    create_leaf(options, &leaf)
}

/// The contents of a leaf certificate and the bundle that signs it.
#[derive(Debug)]
struct Leaf {
    usage: CertUsage,
    common_name: String,
    sans: Vec<SanType>,
    eku: Vec<ExtendedKeyUsagePurpose>,
    /// File name of the CA bundle that contains the signing CA certificate.
    signer: &'static str,
    also_pkcs8: bool,
}

fn create_leaf(options: &CreateOptions, leaf: &Leaf) -> Result<CreateReport, CreateError> {
    let mut report = CreateReport {
        warnings: ca_key_warnings(options),
        ..CreateReport::default()
    };
    let paths = PairPaths::new(&options.certs_dir, &leaf.usage);
    let pkcs8_path = leaf.also_pkcs8.then(|| paths.key.with_extension("key.pk8"));
    for path in [Some(&paths.cert), Some(&paths.key), pkcs8_path.as_ref()]
        .into_iter()
        .flatten()
    {
        if path.exists() && !options.overwrite {
            return Err(CreateError::Exists(path.clone()));
        }
    }
    let (ca_cert, ca_key) = load_ca(options, leaf.signer)?;
    let not_after = options.now + options.lifetime;
    if not_after > ca_cert.not_after {
        return Err(CreateError::OutlivesCa {
            requested: format_time(not_after),
            ca_expires: format_time(ca_cert.not_after),
            max_lifetime: max_lifetime(ca_cert.not_after - options.now),
        });
    }

    let key = options.key_type.generate().map_err(CreateError::Generate)?;
    let mut params = base_params(options, &leaf.common_name, options.lifetime)?;
    params.subject_alt_names = leaf.sans.clone();
    params.extended_key_usages = leaf.eku.clone();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(options.key_type, KeyType::Rsa(_)) {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(&ca_cert.der, &ca_key)
        .map_err(|error| CreateError::Generate(error.to_string()))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|error| CreateError::Generate(error.to_string()))?;

    report.certificate = Some(parsed(cert.der().clone())?);
    let mut writes = vec![(paths.key, key.serialize_pem().into_bytes(), KEY_MODE)];
    if let Some(path) = pkcs8_path {
        writes.push((path, key.serialize_der(), KEY_MODE));
    }
    writes.push((paths.cert, cert.pem().into_bytes(), CERT_MODE));
    write_all(&writes, &mut report)?;
    Ok(report)
}

/// Loads the CA key and picks the certificate in the bundle `bundle_file` whose public key it
/// matches, so that signing works whatever the order of a combined bundle.
fn load_ca(options: &CreateOptions, bundle_file: &str) -> Result<(CertInfo, KeyPair), CreateError> {
    let bytes = read_optional(&options.ca_key)?
        .ok_or_else(|| CreateError::CaKeyMissing(options.ca_key.clone()))?;
    let private_key = PrivateKey::from_pem(&bytes).map_err(|error| CreateError::Input {
        path: options.ca_key.clone(),
        problem: error.into(),
    })?;
    let spki = private_key
        .public_key_spki()
        .map_err(|error| CreateError::Input {
            path: options.ca_key.clone(),
            problem: error.into(),
        })?;
    let signing_key = load_signing_key(&options.ca_key, &bytes)?;

    let ca_path = options.certs_dir.join(bundle_file);
    let bundle = read_optional(&ca_path)?.ok_or_else(|| CreateError::Input {
        path: ca_path.clone(),
        problem: Problem::Missing,
    })?;
    let certs = parse_certificates(&bundle).map_err(|problem| CreateError::Input {
        path: ca_path.clone(),
        problem,
    })?;
    let ca_cert = certs
        .into_iter()
        .find(|cert| cert.spki == spki)
        .ok_or_else(|| CreateError::NoMatchingCa {
            ca_cert: ca_path.clone(),
            ca_key: options.ca_key.clone(),
        })?;
    if !ca_cert.is_valid_at(options.now) {
        return Err(CreateError::CaNotValid {
            path: ca_path,
            not_before: format_time(ca_cert.not_before),
            not_after: format_time(ca_cert.not_after),
        });
    }
    Ok((ca_cert, signing_key))
}

fn load_signing_key(path: &Path, bytes: &[u8]) -> Result<KeyPair, CreateError> {
    let key = PrivateKey::from_pem(bytes).map_err(|error| CreateError::Input {
        path: path.to_owned(),
        problem: error.into(),
    })?;
    key.to_signing_key().map_err(|error| CreateError::Input {
        path: path.to_owned(),
        problem: error.into(),
    })
}

fn base_params(
    options: &CreateOptions,
    common_name: &str,
    lifetime: Duration,
) -> Result<CertificateParams, CreateError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = options.now - BACKDATE;
    params.not_after = options.now + lifetime;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A random positive 128-bit serial. rcgen's default derives the serial from the key, which
/// would repeat across certificates that reuse a key.
fn random_serial() -> Result<SerialNumber, CreateError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CreateError::Generate("the random source failed".to_owned()))?;
    // Clear the top bit so the DER integer is positive without a leading zero byte, and set the
    // next one so the serial never shrinks to fewer bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The maximum whole-unit `--lifetime` value that fits in `remaining`: hours when at least one
/// hour is left, seconds otherwise.
fn max_lifetime(remaining: Duration) -> String {
    if remaining.whole_hours() >= 1 {
        format!("{}h", remaining.whole_hours())
    } else {
        format!("{}s", remaining.whole_seconds().max(1))
    }
}

fn to_san(host: &str) -> Result<SanType, CreateError> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(address));
    }
    if !is_valid_dns_name(host) {
        return Err(CreateError::InvalidInput(format!(
            "invalid host {host:?}: give an IP address or a DNS name such as node1.example.com \
             (a leading '*.' wildcard is allowed; no port, spaces or empty labels)"
        )));
    }
    let name = host
        .to_owned()
        .try_into()
        .map_err(|_| CreateError::InvalidInput(format!("invalid host name {host:?}")))?;
    Ok(SanType::DnsName(name))
}

/// Whether `host` is a DNS name of 1 to 63 character labels of letters, digits, `-` and `_`,
/// at most 253 characters long, optionally starting with a `*` wildcard label.
fn is_valid_dns_name(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !name.is_empty() && host.len() <= 253 && name.split('.').all(label_ok)
}

fn parsed(der: rustls::pki_types::CertificateDer<'static>) -> Result<CertInfo, CreateError> {
    CertInfo::parse(der).map_err(|error| CreateError::Generate(error.to_string()))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CreateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CreateError::Input {
            path: path.to_owned(),
            problem: Problem::Read(error.to_string()),
        }),
    }
}

fn ca_key_warnings(options: &CreateOptions) -> Vec<String> {
    // A bare file name has an empty parent, which is the current folder.
    let key_dir = match options.ca_key.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => absolute(parent),
        _ => absolute(Path::new(".")),
    };
    let certs_dir = absolute(&options.certs_dir);
    if key_dir.starts_with(&certs_dir) {
        vec![format!(
            "the CA key {} is inside the certs folder {}; move it to a separate, safer place, \
             because nodes and clients never need it",
            options.ca_key.display(),
            options.certs_dir.display()
        )]
    } else {
        Vec::new()
    }
}

fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_default())
}

/// Stages every file, then renames them in order. The key of a pair is renamed before its
/// certificate, so a node that reads between the two renames finds a mismatched pair and
/// keeps its old one: its loader checks that every key matches its certificate.
fn write_all(
    writes: &[(PathBuf, Vec<u8>, u32)],
    report: &mut CreateReport,
) -> Result<(), CreateError> {
    let mut staged = Vec::with_capacity(writes.len());
    for (path, contents, mode) in writes {
        if let Some(dir) = path.parent() {
            files::create_dir(dir).map_err(|error| CreateError::Write {
                path: dir.to_owned(),
                error,
            })?;
        }
        let file = files::stage(path, contents, *mode).map_err(|error| CreateError::Write {
            path: path.clone(),
            error,
        })?;
        staged.push((file, path));
    }
    for (file, path) in &staged {
        files::commit(file, path).map_err(|error| CreateError::Write {
            path: (*path).clone(),
            error,
        })?;
        report.written.push((*path).clone());
    }
    Ok(())
}
