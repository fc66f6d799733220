//! The fields of one X.509 certificate, read once with x509-parser.

use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

/// A subject alternative name that tumbler writes or checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(address) => write!(f, "{address}"),
        }
    }
}

/// A parsed certificate: its DER bytes and the fields tumbler reports and checks.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate as it was read.
    pub der: CertificateDer<'static>,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Subject, as `CommonName=..., Organization=...`.
    pub subject: String,
    /// Issuer, in the same form as `subject`.
    pub issuer: String,
    /// Serial number as colon-separated hex, as `openssl x509 -serial` shows it without colons.
    pub serial: String,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    pub not_after: OffsetDateTime,
    /// DNS and IP subject alternative names, DNS names first.
    pub sans: Vec<San>,
    /// Whether basic constraints set CA:TRUE.
    pub is_ca: bool,
    /// Key usage names (`DigitalSignature`, `CertSign`, ...).
    pub key_usage: Vec<String>,
    /// Extended key usage names (`ServerAuth`, `ClientAuth`, ...).
    pub extended_key_usage: Vec<String>,
    /// Signature algorithm, for example `SHA256-RSA` or `ECDSA-SHA256`.
    pub signature_algorithm: String,
    /// Public key description, for example `2048 bit RSA` or `256 bit ECDSA`.
    pub public_key: String,
    /// DER of the SubjectPublicKeyInfo, used to match keys and issuers.
    pub spki: Vec<u8>,
    /// DER of the subject name, used with `spki` to identify an issuer.
    pub subject_der: Vec<u8>,
    /// SHA-256 fingerprint of the DER, as upper-case hex.
    pub fingerprint_sha256: String,
    /// Subject key identifier, as upper-case hex, if the certificate carries one.
    pub subject_key_id: Option<String>,
    /// Authority key identifier (the issuer's subject key identifier), if present.
    pub authority_key_id: Option<String>,
}

/// The reason a certificate could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid X.509 certificate: {0}")]
pub struct CertParseError(String);

impl CertInfo {
    /// Parses a DER certificate.
    ///
    /// # Errors
    ///
    /// Returns [`CertParseError`] when the bytes are not a well-formed X.509 certificate or
    /// carry trailing bytes.
    pub fn parse(der: CertificateDer<'static>) -> Result<Self, CertParseError> {
        let (rest, cert) =
            X509Certificate::from_der(&der).map_err(|error| CertParseError(error.to_string()))?;
        if !rest.is_empty() {
            return Err(CertParseError(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        Ok(Self {
            common_name: common_name(cert.subject()),
            subject: format_name(cert.subject()),
            issuer: format_name(cert.issuer()),
            serial: cert.raw_serial_as_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sans: sans(&cert)?,
            is_ca: cert.is_ca(),
            key_usage: key_usage(&cert)?,
            extended_key_usage: extended_key_usage(&cert)?,
            signature_algorithm: signature_algorithm(&cert),
            public_key: public_key(&cert),
            spki: cert.public_key().raw.to_vec(),
            subject_der: cert.subject().as_raw().to_vec(),
            fingerprint_sha256: hex_upper(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref(),
            ),
            subject_key_id: subject_key_id(&cert),
            authority_key_id: authority_key_id(&cert),
            // Moved last: every field above borrows from `der` through `cert`.
            der,
        })
    }

    /// Whether `now` lies within the validity period.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Whether the extended key usage allows TLS server authentication.
    pub fn has_server_auth(&self) -> bool {
        self.extended_key_usage
            .iter()
            .any(|usage| usage == "ServerAuth")
    }

    /// Whether the extended key usage allows TLS client authentication.
    pub fn has_client_auth(&self) -> bool {
        self.extended_key_usage
            .iter()
            .any(|usage| usage == "ClientAuth")
    }

    /// Serial number as plain upper-case hex, the form `openssl x509 -noout -serial` prints.
    pub fn serial_hex(&self) -> String {
        self.serial.replace(':', "").to_uppercase()
    }
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// Formats a name as CockroachDB's status API does: `CommonName=node, Organization=Cockroach`.
fn format_name(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    if let Some(cn) = common_name(name) {
        parts.push(format!("CommonName={cn}"));
    }
    let organizations: Vec<&str> = name
        .iter_organization()
        .filter_map(|org| org.as_str().ok())
        .collect();
    if !organizations.is_empty() {
        parts.push(format!("Organization={}", organizations.join(",")));
    }
    if parts.is_empty() {
        name.to_string()
    } else {
        parts.join(", ")
    }
}

fn sans(cert: &X509Certificate<'_>) -> Result<Vec<San>, CertParseError> {
    let extension = cert
        .subject_alternative_name()
        .map_err(|error| CertParseError(error.to_string()))?;
    let Some(extension) = extension else {
        return Ok(Vec::new());
    };
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &extension.value.general_names {
        match name {
            GeneralName::DNSName(host) => dns.push(San::Dns((*host).to_owned())),
            GeneralName::IPAddress(bytes) => {
                if let Some(address) = ip_from_bytes(bytes) {
                    ips.push(San::Ip(address));
                }
            }
            _ => {}
        }
    }
    dns.extend(ips);
    Ok(dns)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn key_usage(cert: &X509Certificate<'_>) -> Result<Vec<String>, CertParseError> {
    let extension = cert
        .key_usage()
        .map_err(|error| CertParseError(error.to_string()))?;
    let Some(extension) = extension else {
        return Ok(Vec::new());
    };
    let usage = extension.value;
    let names = [
        (usage.digital_signature(), "DigitalSignature"),
        (usage.non_repudiation(), "ContentCommitment"),
        (usage.key_encipherment(), "KeyEncipherment"),
        (usage.data_encipherment(), "DataEncipherment"),
        (usage.key_agreement(), "KeyAgreement"),
        (usage.key_cert_sign(), "CertSign"),
        (usage.crl_sign(), "CRLSign"),
        (usage.encipher_only(), "EncipherOnly"),
        (usage.decipher_only(), "DecipherOnly"),
    ];
    Ok(names
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| (*name).to_owned())
        .collect())
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> Result<Vec<String>, CertParseError> {
    let extension = cert
        .extended_key_usage()
        .map_err(|error| CertParseError(error.to_string()))?;
    let Some(extension) = extension else {
        return Ok(Vec::new());
    };
    let usage = extension.value;
    let names = [
        (usage.any, "Any"),
        (usage.server_auth, "ServerAuth"),
        (usage.client_auth, "ClientAuth"),
        (usage.code_signing, "CodeSigning"),
        (usage.email_protection, "EmailProtection"),
        (usage.time_stamping, "TimeStamping"),
        (usage.ocsp_signing, "OCSPSigning"),
    ];
    Ok(names
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| (*name).to_owned())
        .collect())
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(hex_upper(id.0)),
            _ => None,
        })
}

fn authority_key_id(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| hex_upper(id.0))
            }
            _ => None,
        })
}

fn signature_algorithm(cert: &X509Certificate<'_>) -> String {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        "1.3.101.112" => "Ed25519",
        _ => return oid,
    };
    name.to_owned()
}

fn public_key(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("{} bit RSA", rsa.key_size()),
        Ok(PublicKey::EC(point)) => format!("{} bit ECDSA", point.key_size()),
        Ok(key) => format!("{} bit key", key.key_size()),
        Err(_) => "unknown key type".to_owned(),
    }
}

/// Formats bytes as upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}
