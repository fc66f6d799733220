//! Certificates and keys made by the `openssl` command line, in each key format an operator
//! may bring: PKCS#1, PKCS#8, SEC1 with its parameters block, and encrypted PKCS#8.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::openssl_ok;
use tempfile::TempDir;
use time::OffsetDateTime;
use tumbler_pki::create::{CreateOptions, create_node};
use tumbler_pki::key::KeyError;
use tumbler_pki::{CertUsage, KeyType, NodeCerts, Problem, Scan};

const NODE_EXTENSIONS: &str = "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,DNS:node1.example,IP:127.0.0.1,IP:::1
";

const NODE_SERVER_ONLY_EXTENSIONS: &str = "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
";

const CLIENT_EXTENSIONS: &str = "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
";

/// How a key file is encoded.
#[derive(Debug, Clone, Copy)]
enum KeyFormat {
    /// RSA 2048 as `BEGIN RSA PRIVATE KEY`.
    Pkcs1Rsa,
    /// ECDSA P-256 as `BEGIN PRIVATE KEY`.
    Pkcs8Ec,
    /// RSA 2048 as `BEGIN PRIVATE KEY`.
    Pkcs8Rsa,
    /// ECDSA P-256 as `BEGIN EC PARAMETERS` followed by `BEGIN EC PRIVATE KEY`.
    Sec1EcWithParameters,
    /// ECDSA P-256 as `BEGIN ENCRYPTED PRIVATE KEY`, AES-256 with passphrase `x`.
    EncryptedPkcs8,
    /// RSA 2048 as `BEGIN RSA PRIVATE KEY` with `Proc-Type: 4,ENCRYPTED` headers.
    LegacyEncryptedPkcs1,
}

impl KeyFormat {
    /// The first line the key file must start with.
    fn first_line(self) -> &'static str {
        match self {
            Self::Pkcs1Rsa | Self::LegacyEncryptedPkcs1 => "-----BEGIN RSA PRIVATE KEY-----",
            Self::Pkcs8Ec | Self::Pkcs8Rsa => "-----BEGIN PRIVATE KEY-----",
            Self::Sec1EcWithParameters => "-----BEGIN EC PARAMETERS-----",
            Self::EncryptedPkcs8 => "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        }
    }
}

/// A temporary folder with an OpenSSL-made CA: `ca.key` beside `certs/ca.crt`.
struct OpensslCa {
    temp: TempDir,
    certs: PathBuf,
}

impl OpensslCa {
    fn new() -> Self {
        let temp = TempDir::new().unwrap();
        let certs = temp.path().join("certs");
        fs::create_dir(&certs).unwrap();
        let ca = Self { temp, certs };
        ca.run(&["genrsa", "-traditional", "-out", "ca.key", "2048"]);
        ca.run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/O=Example/CN=Example CA",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "certs/ca.crt",
        ]);
        ca
    }

    fn dir(&self) -> &Path {
        self.temp.path()
    }

    fn run(&self, args: &[&str]) -> String {
        openssl_ok(self.dir(), args)
    }

    /// Writes `certs/<name>.key` in `format` and `certs/<name>.crt` for `subject`, signed by
    /// the CA with `extensions`.
    fn issue(&self, name: &str, subject: &str, extensions: &str, format: KeyFormat) {
        let key = format!("certs/{name}.key");
        let plain_key = format!("{name}.plain.key");
        write_key(self, &plain_key, format);
        let csr = format!("{name}.csr");
        self.run(&[
            "req", "-new", "-key", &plain_key, "-subj", subject, "-out", &csr,
        ]);

        let extensions_file = format!("{name}.ext");
        fs::write(self.dir().join(&extensions_file), extensions).unwrap();
        let cert = format!("certs/{name}.crt");
        self.run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "certs/ca.crt",
            "-CAkey",
            "ca.key",
            "-days",
            "365",
            "-extfile",
            &extensions_file,
            "-out",
            &cert,
        ]);

        match format {
            KeyFormat::EncryptedPkcs8 => {
                let encrypt = ["pkcs8", "-topk8", "-v2", "aes256", "-passout", "pass:x"];
                self.run(&[&encrypt[..], &["-in", &plain_key, "-out", &key]].concat());
            }
            KeyFormat::LegacyEncryptedPkcs1 => {
                let encrypt = ["rsa", "-traditional", "-aes256", "-passout", "pass:x"];
                self.run(&[&encrypt[..], &["-in", &plain_key, "-out", &key]].concat());
            }
            _ => {
                fs::copy(self.dir().join(&plain_key), self.dir().join(&key)).unwrap();
            }
        }
        common::set_mode(&self.dir().join(&key), 0o600);
        let text = fs::read_to_string(self.dir().join(&key)).unwrap();
        assert!(
            text.starts_with(format.first_line()),
            "{format:?} key starts with:\n{text}"
        );
    }

    /// Writes the node pair and the client pair for `root`.
    fn issue_node_and_root(&self, node: KeyFormat, root: KeyFormat) {
        self.issue("node", "/O=Example/CN=node", NODE_EXTENSIONS, node);
        self.issue("client.root", "/O=Example/CN=root", CLIENT_EXTENSIONS, root);
    }
}

/// Writes an unencrypted key for `format` to `path` inside the CA folder.
fn write_key(ca: &OpensslCa, path: &str, format: KeyFormat) {
    match format {
        KeyFormat::Pkcs1Rsa | KeyFormat::LegacyEncryptedPkcs1 => {
            ca.run(&["genrsa", "-traditional", "-out", path, "2048"]);
        }
        KeyFormat::Pkcs8Rsa => {
            ca.run(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                path,
            ]);
        }
        KeyFormat::Pkcs8Ec | KeyFormat::EncryptedPkcs8 => {
            ca.run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                path,
            ]);
        }
        KeyFormat::Sec1EcWithParameters => {
            ca.run(&["ecparam", "-genkey", "-name", "prime256v1", "-out", path]);
        }
    }
}

fn root() -> CertUsage {
    CertUsage::Client("root".to_owned())
}

/// Loads the folder as of now and asserts that the node and the `root` client pass.
fn assert_loads(ca: &OpensslCa) {
    let certs = NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(certs.node.chain[0].common_name.as_deref(), Some("node"));
    assert_eq!(
        certs.node.issuer.subject,
        "CommonName=Example CA, Organization=Example"
    );
    let root_entry = certs.scan.entry(&root()).expect("no client.root entry");
    assert!(root_entry.error.is_none(), "{:?}", root_entry.error);
    assert!(root_entry.key.is_some(), "client.root.key was not kept");
}

#[test]
fn load_accepts_pkcs1_keys() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::Pkcs1Rsa, KeyFormat::Pkcs1Rsa);
    assert_loads(&ca);
}

#[test]
fn load_accepts_pkcs8_keys() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::Pkcs8Ec, KeyFormat::Pkcs8Rsa);
    assert_loads(&ca);
}

#[test]
fn load_accepts_sec1_keys_with_parameters() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(
        KeyFormat::Sec1EcWithParameters,
        KeyFormat::Sec1EcWithParameters,
    );
    assert_loads(&ca);
}

#[test]
fn load_rejects_encrypted_pkcs8_key() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::EncryptedPkcs8, KeyFormat::Pkcs8Ec);

    // A loader that waited for a passphrase would hang here, so the bound only has to be far
    // above the few milliseconds the load takes.
    let started = Instant::now();
    let error = NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.path, ca.certs.join("node.key"));
    assert_eq!(error.problem, Problem::Key(KeyError::Encrypted));
    assert!(error.to_string().contains("encrypted"), "{error}");
    assert!(
        elapsed < Duration::from_secs(5),
        "the load took {elapsed:?}"
    );
}

#[test]
fn load_rejects_legacy_encrypted_key() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::LegacyEncryptedPkcs1, KeyFormat::Pkcs8Ec);

    let error = NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(error.path, ca.certs.join("node.key"));
    assert_eq!(error.problem, Problem::Key(KeyError::Encrypted));
}

#[test]
fn scan_rejects_only_encrypted_client_key() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::Pkcs8Ec, KeyFormat::EncryptedPkcs8);

    let scan = Scan::read(&ca.certs, OffsetDateTime::now_utc()).unwrap();
    let root_entry = scan.entry(&root()).expect("no client.root entry");
    let error = root_entry.error.as_ref().expect("client.root has no error");
    assert_eq!(error.path, ca.certs.join("client.root.key"));
    assert_eq!(error.problem, Problem::Key(KeyError::Encrypted));
    NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap();
}

#[test]
fn load_rejects_node_without_client_auth() {
    let ca = OpensslCa::new();
    ca.issue(
        "node",
        "/O=Example/CN=node",
        NODE_SERVER_ONLY_EXTENSIONS,
        KeyFormat::Pkcs8Ec,
    );

    let error = NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(error.path, ca.certs.join("node.crt"));
    let expected = Problem::MissingUsage {
        usage: "clientAuth",
        role: "the node needs for mutual TLS to other nodes",
    };
    assert_eq!(error.problem, expected);
}

/// Replaces `certs/<name>.crt` and `certs/<name>.key` with what `openssl pkcs12` prints for
/// them after a round trip through a PKCS#12 file: each block preceded by "Bag Attributes".
fn round_trip_pkcs12(ca: &OpensslCa, name: &str) {
    let cert = format!("certs/{name}.crt");
    let key = format!("certs/{name}.key");
    let bundle = format!("{name}.p12");
    let export = [
        "pkcs12", "-export", "-in", &cert, "-inkey", &key, "-passout", "pass:",
    ];
    ca.run(&[&export[..], &["-out", &bundle]].concat());
    let cert_text = ca.run(&[
        "pkcs12", "-in", &bundle, "-passin", "pass:", "-nokeys", "-clcerts",
    ]);
    let key_text = ca.run(&[
        "pkcs12", "-in", &bundle, "-passin", "pass:", "-nocerts", "-nodes",
    ]);
    assert!(cert_text.starts_with("Bag Attributes"), "{cert_text}");
    assert!(
        key_text.starts_with("Bag Attributes"),
        "the key output starts otherwise"
    );
    fs::write(ca.dir().join(&cert), cert_text).unwrap();
    fs::write(ca.dir().join(&key), key_text).unwrap();
}

#[test]
fn load_accepts_pkcs12_output() {
    let ca = OpensslCa::new();
    ca.issue_node_and_root(KeyFormat::Pkcs8Ec, KeyFormat::Pkcs1Rsa);
    round_trip_pkcs12(&ca, "node");
    round_trip_pkcs12(&ca, "client.root");
    assert_loads(&ca);
}

/// Creates a node pair with tumbler, signed by the OpenSSL-made CA and its PKCS#1 key.
fn create_node_with_openssl_ca(ca: &OpensslCa, key_type: KeyType) {
    let options = CreateOptions {
        certs_dir: ca.certs.clone(),
        ca_key: ca.dir().join("ca.key"),
        overwrite: false,
        lifetime: time::Duration::days(30),
        key_type,
        now: OffsetDateTime::now_utc(),
    };
    create_node(&options, &common::hosts()).unwrap();
}

#[test]
fn create_node_signs_with_openssl_ca() {
    for key_type in common::key_types() {
        let ca = OpensslCa::new();
        create_node_with_openssl_ca(&ca, key_type);

        let purposes = ["sslserver", "sslclient"];
        for purpose in purposes {
            let args = [
                "verify", "-CAfile", "ca.crt", "-purpose", purpose, "node.crt",
            ];
            let output = common::openssl(&ca.certs, &args);
            assert!(
                output.status.success(),
                "{key_type}: node.crt fails -purpose {purpose}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        NodeCerts::load(&ca.certs, OffsetDateTime::now_utc()).unwrap();
    }
}
