//! File names in the certs folder, as CockroachDB names them.

use std::path::{Path, PathBuf};

/// The CA bundle: every CA certificate the node trusts, newest first after a rotation.
pub const CA_CERT: &str = "ca.crt";
/// The client CA bundle: when present, client certificates are checked against it instead of
/// `ca.crt`.
pub const CLIENT_CA_CERT: &str = "ca-client.crt";
/// The admin UI certificate, served by the HTTPS listener instead of `node.crt` when present.
pub const UI_CERT: &str = "ui.crt";
/// The admin UI certificate's private key.
pub const UI_KEY: &str = "ui.key";
/// The node certificate, used as TLS server certificate and as client certificate to other nodes.
pub const NODE_CERT: &str = "node.crt";
/// The node certificate's private key.
pub const NODE_KEY: &str = "node.key";

/// The role of a certificate file in the certs folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertUsage {
    /// `ca.crt`.
    Ca,
    /// `ca-client.crt`.
    ClientCa,
    /// `node.crt` with `node.key`.
    Node,
    /// `ui.crt` with `ui.key`.
    Ui,
    /// `client.<user>.crt` with `client.<user>.key`.
    Client(String),
}

impl CertUsage {
    /// Classifies a file name, or returns `None` for a name tumbler does not know.
    pub fn from_file_name(name: &str) -> Option<Self> {
        match name {
            CA_CERT => return Some(Self::Ca),
            CLIENT_CA_CERT => return Some(Self::ClientCa),
            NODE_CERT => return Some(Self::Node),
            UI_CERT => return Some(Self::Ui),
            _ => {}
        }
        let user = name.strip_prefix("client.")?.strip_suffix(".crt")?;
        (!user.is_empty()).then(|| Self::Client(user.to_owned()))
    }

    /// The certificate file name.
    pub fn cert_file(&self) -> String {
        match self {
            Self::Ca => CA_CERT.to_owned(),
            Self::ClientCa => CLIENT_CA_CERT.to_owned(),
            Self::Node => NODE_CERT.to_owned(),
            Self::Ui => UI_CERT.to_owned(),
            Self::Client(user) => format!("client.{user}.crt"),
        }
    }

    /// The key file name, or `None` for a CA bundle (CA keys never live in the certs folder).
    pub fn key_file(&self) -> Option<String> {
        match self {
            Self::Ca | Self::ClientCa => None,
            Self::Node => Some(NODE_KEY.to_owned()),
            Self::Ui => Some(UI_KEY.to_owned()),
            Self::Client(user) => Some(format!("client.{user}.key")),
        }
    }

    /// The label the status API shows, as CockroachDB names the types: `CA`, `CLIENT_CA`,
    /// `NODE`, `UI` or `CLIENT`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ca => "CA",
            Self::ClientCa => "CLIENT_CA",
            Self::Node => "NODE",
            Self::Ui => "UI",
            Self::Client(_) => "CLIENT",
        }
    }

    /// Whether the file is a CA bundle (no key in the certs folder).
    pub fn is_ca(&self) -> bool {
        matches!(self, Self::Ca | Self::ClientCa)
    }
}

/// Paths of one certificate and its key inside a certs folder.
#[derive(Debug, Clone)]
pub struct PairPaths {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
}

impl PairPaths {
    /// The paths for `usage` inside `certs_dir`.
    pub fn new(certs_dir: &Path, usage: &CertUsage) -> Self {
        let key = usage.key_file().unwrap_or_default();
        Self {
            cert: certs_dir.join(usage.cert_file()),
            key: certs_dir.join(key),
        }
    }
}

/// Normalizes a SQL user name as identifiers are: lower case.
///
/// # Errors
///
/// Returns a message naming the value when it is empty, longer than 63 bytes, or contains a
/// character other than letters, digits, `_`, `.` and `-`.
pub fn normalize_user(user: &str) -> Result<String, String> {
    let normalized = user.to_lowercase();
    let valid_chars = normalized
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    let starts_well = normalized.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    if normalized.is_empty() || normalized.len() > 63 || !valid_chars || !starts_well {
        return Err(format!(
            "invalid user name {user:?}: use 1 to 63 letters, digits, '_', '.' or '-', \
             starting with a letter or '_'"
        ));
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_known_names() {
        assert_eq!(CertUsage::from_file_name("ca.crt"), Some(CertUsage::Ca));
        assert_eq!(CertUsage::from_file_name("node.crt"), Some(CertUsage::Node));
        assert_eq!(
            CertUsage::from_file_name("ca-client.crt"),
            Some(CertUsage::ClientCa)
        );
        assert_eq!(CertUsage::from_file_name("ui.crt"), Some(CertUsage::Ui));
        assert_eq!(
            CertUsage::from_file_name("client.root.crt"),
            Some(CertUsage::Client("root".to_owned()))
        );
        assert_eq!(
            CertUsage::from_file_name("client.a.b.crt"),
            Some(CertUsage::Client("a.b".to_owned()))
        );
    }

    #[test]
    fn classify_unknown_names() {
        assert_eq!(CertUsage::from_file_name("client..crt"), None);
        assert_eq!(CertUsage::from_file_name("server.crt"), None);
        assert_eq!(CertUsage::from_file_name("node.key"), None);
    }

    #[test]
    fn pair_file_names() {
        let alice = CertUsage::Client("alice".to_owned());
        assert_eq!(alice.cert_file(), "client.alice.crt");
        assert_eq!(alice.key_file().as_deref(), Some("client.alice.key"));
        assert_eq!(CertUsage::Ca.key_file(), None);
    }

    #[test]
    fn user_names_normalize_to_lower_case() {
        assert_eq!(normalize_user("Alice").unwrap(), "alice");
        assert!(normalize_user("").is_err());
        assert!(normalize_user("bob smith").is_err());
        assert!(normalize_user("1abc").is_err());
    }
}
