//! The loader: `Scan::read` lists every entry with its own error, and `NodeCerts::load`
//! rejects a folder whose CA bundle or node pair is broken.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use common::{Folder, NOW, set_mode};
use time::{Duration, OffsetDateTime};
use tumbler_pki::create::{create_ca, create_client, create_node};
use tumbler_pki::files::SKIP_KEY_PERMISSION_CHECK;
use tumbler_pki::key::KeyError;
use tumbler_pki::pem::PemError;
use tumbler_pki::{CertUsage, FileError, KeyType, NodeCerts, Problem, Scan};

const COCKROACH_FIXTURES: &str = "/work/shared/fixtures/cockroach-certs";

/// Creates a CA, a node pair and a client pair for `root`.
fn fresh_folder() -> Folder {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "root");
    folder
}

/// Creates a second, unrelated CA with its own node and client pairs.
fn other_ca_folder() -> Folder {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "other");
    folder
}

/// Returns the error of the entry for `usage`, panicking when the entry is missing.
fn entry_error<'a>(scan: &'a Scan, usage: &CertUsage) -> Option<&'a FileError> {
    let entry = scan
        .entry(usage)
        .unwrap_or_else(|| panic!("no {usage:?} entry in {scan:?}"));
    entry.error.as_ref()
}

/// Asserts that the CA, node and `root` entries are all listed, and that every entry except
/// `broken` read without error.
fn assert_others_clean(scan: &Scan, broken: &CertUsage) {
    for usage in [CertUsage::Ca, CertUsage::Node, root()] {
        assert!(
            scan.entry(&usage).is_some(),
            "no {usage:?} entry in {scan:?}"
        );
    }
    for entry in scan.entries.iter().filter(|entry| &entry.usage != broken) {
        assert!(
            entry.error.is_none(),
            "{:?}: {:?}",
            entry.usage,
            entry.error
        );
    }
}

/// Asserts that `error` is about `path` and that its message names it.
fn assert_names_file(error: &FileError, path: &Path) {
    assert_eq!(error.path, path);
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

fn root() -> CertUsage {
    CertUsage::Client("root".to_owned())
}

#[test]
fn load_accepts_fresh_folder() {
    let folder = fresh_folder();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let usages: Vec<&CertUsage> = scan.entries.iter().map(|entry| &entry.usage).collect();
    assert_eq!(usages, [&CertUsage::Ca, &CertUsage::Node, &root()]);
    assert!(!scan.has_errors(), "{scan:?}");
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);

    let certs = NodeCerts::load(&folder.certs, NOW).unwrap();
    assert_eq!(certs.ca_certs.len(), 1);
    assert_eq!(certs.node.chain.len(), 1);
    assert_eq!(certs.node.chain[0].common_name.as_deref(), Some("node"));
    assert_eq!(
        certs.node.issuer.fingerprint_sha256,
        certs.ca_certs[0].fingerprint_sha256
    );
}

#[test]
fn load_rejects_mismatched_key() {
    let folder = fresh_folder();
    let other = Folder::new();
    fs::create_dir(&other.certs).unwrap();
    fs::copy(folder.cert_file("ca.crt"), other.cert_file("ca.crt")).unwrap();
    let mut options = other.leaf_options(KeyType::EcdsaP256);
    options.ca_key = folder.ca_key.clone();
    create_node(&options, &common::hosts()).unwrap();
    fs::copy(other.cert_file("node.key"), folder.cert_file("node.key")).unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.key"));
    assert!(
        matches!(error.problem, Problem::KeyMismatch { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("node.key does not match node.crt"),
        "{error}"
    );
    assert_others_clean(&scan, &CertUsage::Node);

    let load_error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&load_error, &folder.cert_file("node.key"));
}

#[test]
fn load_rejects_node_of_unknown_ca() {
    let folder = fresh_folder();
    let other = other_ca_folder();
    for name in ["node.crt", "node.key"] {
        fs::copy(other.cert_file(name), folder.cert_file(name)).unwrap();
    }

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    assert_eq!(scan.entries.len(), 3);
    assert!(
        !scan.has_errors(),
        "a pair that matches reads cleanly: {scan:?}"
    );

    let error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&error, &folder.cert_file("node.crt"));
    assert!(
        matches!(error.problem, Problem::Untrusted { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("CA certificate in ca.crt"),
        "{error}"
    );
}

#[test]
fn load_rejects_empty_node_cert() {
    let folder = fresh_folder();
    fs::write(folder.cert_file("node.crt"), b"").unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.crt"));
    assert_eq!(error.problem, Problem::Pem(PemError::Empty));
    assert!(error.to_string().contains("empty"), "{error}");
    assert_others_clean(&scan, &CertUsage::Node);

    let load_error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&load_error, &folder.cert_file("node.crt"));
}

#[test]
fn load_rejects_expired_node_cert() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    create_client(&folder.leaf_options(KeyType::EcdsaP256), "root").unwrap();
    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.lifetime = Duration::hours(48);
    create_node(&options, &common::hosts()).unwrap();

    let later = NOW + Duration::hours(72);
    let scan = Scan::read(&folder.certs, later).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.crt"));
    let expiry = "2026-03-03T12:00:00Z";
    assert_eq!(error.problem, Problem::Expired(expiry.to_owned()));
    assert!(
        error.to_string().contains(&format!("expired at {expiry}")),
        "{error}"
    );
    assert_others_clean(&scan, &CertUsage::Node);

    let load_error = NodeCerts::load(&folder.certs, later).unwrap_err();
    assert_names_file(&load_error, &folder.cert_file("node.crt"));
}

#[test]
fn load_rejects_open_node_key() {
    if std::env::var_os(SKIP_KEY_PERMISSION_CHECK).is_some() {
        panic!("unset {SKIP_KEY_PERMISSION_CHECK} to run this test");
    }
    let folder = fresh_folder();
    set_mode(&folder.cert_file("node.key"), 0o644);

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.key"));
    assert!(
        matches!(error.problem, Problem::Permissions(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("mode 0644"), "{error}");
    assert_others_clean(&scan, &CertUsage::Node);

    let load_error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&load_error, &folder.cert_file("node.key"));
}

/// Runs in a child process, because the variable is global to a process and the other tests
/// in this binary expect the check on.
#[test]
fn load_skips_key_check_when_set() {
    if !common::in_child() {
        common::run_test_in_child("load_skips_key_check_when_set", |child| {
            child.env(SKIP_KEY_PERMISSION_CHECK, "true");
        });
        return;
    }
    let folder = fresh_folder();
    set_mode(&folder.cert_file("node.key"), 0o644);

    let certs = NodeCerts::load(&folder.certs, NOW).unwrap();
    assert!(!certs.scan.has_errors(), "{:?}", certs.scan);
}

#[test]
fn load_isolates_broken_client_cert() {
    let folder = fresh_folder();
    let mut random = [0u8; 512];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut random)
        .unwrap();
    let broken = folder.cert_file("client.broken.crt");
    fs::write(&broken, random).unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let usage = CertUsage::Client("broken".to_owned());
    let error = entry_error(&scan, &usage).expect("client.broken entry has no error");
    assert_names_file(error, &broken);
    assert_eq!(error.problem, Problem::Pem(PemError::NotPem));
    assert_others_clean(&scan, &usage);

    let certs = NodeCerts::load(&folder.certs, NOW).unwrap();
    assert_eq!(certs.scan.entries.len(), 4);
}

#[test]
fn scan_warns_about_unknown_name() {
    let folder = fresh_folder();
    fs::copy(folder.cert_file("node.crt"), folder.cert_file("server.crt")).unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
    assert!(
        scan.warnings[0].contains("server.crt"),
        "{:?}",
        scan.warnings
    );
    assert_eq!(scan.entries.len(), 3);
    assert!(!scan.has_errors(), "{scan:?}");
    NodeCerts::load(&folder.certs, NOW).unwrap();
}

#[test]
fn load_rejects_node_cert_not_yet_valid() {
    let folder = fresh_folder();

    let earlier = NOW - Duration::days(2);
    let scan = Scan::read(&folder.certs, earlier).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.crt"));
    let start = "2026-02-28T12:00:00Z";
    assert_eq!(error.problem, Problem::NotYetValid(start.to_owned()));
    assert!(
        error
            .to_string()
            .contains(&format!("not valid until {start}")),
        "{error}"
    );
}

#[test]
fn load_rejects_client_cert_as_node() {
    let folder = fresh_folder();
    fs::copy(
        folder.cert_file("client.root.crt"),
        folder.cert_file("node.crt"),
    )
    .unwrap();
    fs::copy(
        folder.cert_file("client.root.key"),
        folder.cert_file("node.key"),
    )
    .unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_names_file(error, &folder.cert_file("node.crt"));
    let expected = Problem::WrongCommonName {
        file: "node.crt".to_owned(),
        expected: "node".to_owned(),
        found: "root".to_owned(),
    };
    assert_eq!(error.problem, expected);
    assert_others_clean(&scan, &CertUsage::Node);
}

#[test]
fn scan_rejects_client_cert_of_other_user() {
    let folder = fresh_folder();
    fs::copy(
        folder.cert_file("client.root.crt"),
        folder.cert_file("client.bob.crt"),
    )
    .unwrap();
    fs::copy(
        folder.cert_file("client.root.key"),
        folder.cert_file("client.bob.key"),
    )
    .unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let bob = CertUsage::Client("bob".to_owned());
    let error = entry_error(&scan, &bob).expect("client.bob entry has no error");
    assert_names_file(error, &folder.cert_file("client.bob.crt"));
    assert!(matches!(&error.problem, Problem::WrongCommonName { found, .. } if found == "root"));
    assert_others_clean(&scan, &bob);
}

#[test]
fn load_rejects_leaf_in_ca_bundle() {
    let folder = fresh_folder();
    let ca = fs::read_to_string(folder.cert_file("ca.crt")).unwrap();
    let node = fs::read_to_string(folder.cert_file("node.crt")).unwrap();
    fs::write(folder.cert_file("ca.crt"), format!("{ca}{node}")).unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Ca).expect("CA entry has no error");
    assert_names_file(error, &folder.cert_file("ca.crt"));
    assert!(
        matches!(error.problem, Problem::NotCa { block: 2, .. }),
        "{error:?}"
    );
    assert_others_clean(&scan, &CertUsage::Ca);

    let load_error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&load_error, &folder.cert_file("ca.crt"));
}

#[test]
fn scan_digest_follows_content() {
    let folder = fresh_folder();
    let first = Scan::read(&folder.certs, NOW).unwrap().digest;
    let second = Scan::read(&folder.certs, NOW).unwrap().digest;
    assert_eq!(first, second, "two scans of the same files");

    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.overwrite = true;
    create_node(&options, &common::hosts()).unwrap();
    let third = Scan::read(&folder.certs, NOW).unwrap().digest;
    assert_ne!(first, third, "a new node pair");
}

#[test]
fn load_rejects_missing_node_key() {
    let folder = fresh_folder();
    fs::remove_file(folder.cert_file("node.key")).unwrap();

    let error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&error, &folder.cert_file("node.key"));
    assert_eq!(error.problem, Problem::Missing);
}

#[test]
fn load_rejects_missing_ca_bundle() {
    let folder = fresh_folder();
    fs::remove_file(folder.cert_file("ca.crt")).unwrap();

    let error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&error, &folder.cert_file("ca.crt"));
    assert_eq!(error.problem, Problem::Missing);
    assert!(error.to_string().contains("create-ca"), "{error}");
}

#[test]
fn load_rejects_key_file_with_two_keys() {
    let folder = fresh_folder();
    let key = fs::read_to_string(folder.cert_file("node.key")).unwrap();
    fs::write(folder.cert_file("node.key"), format!("{key}{key}")).unwrap();

    let scan = Scan::read(&folder.certs, NOW).unwrap();
    let error = entry_error(&scan, &CertUsage::Node).expect("node entry has no error");
    assert_eq!(error.problem, Problem::Key(KeyError::SeveralKeys(2)));
}

#[test]
fn scan_rejects_missing_folder() {
    let folder = Folder::new();

    let error = Scan::read(&folder.certs, NOW).unwrap_err();
    assert_names_file(&error, &folder.certs);
    assert!(error.to_string().contains("create-ca"), "{error}");
}

/// Moves the files of the certs folder into a versioned subfolder and replaces each with a
/// symlink through `..data`, as a Kubernetes secret volume lays them out.
fn link_like_secret_volume(certs: &Path, version: &str) {
    let versioned = certs.join(version);
    fs::create_dir(&versioned).unwrap();
    for name in common::file_names(certs) {
        if name.starts_with("..") {
            continue;
        }
        fs::rename(certs.join(&name), versioned.join(&name)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), certs.join(&name)).unwrap();
    }
    let data = certs.join("..data");
    let staged = certs.join("..data.new");
    std::os::unix::fs::symlink(version, &staged).unwrap();
    fs::rename(&staged, &data).unwrap();
}

#[test]
fn load_follows_secret_volume_symlinks() {
    let folder = fresh_folder();
    link_like_secret_volume(&folder.certs, "..2026_03_01_v1");

    let certs = NodeCerts::load(&folder.certs, NOW).unwrap();
    assert!(!certs.scan.has_errors(), "{:?}", certs.scan);
    assert!(certs.scan.warnings.is_empty(), "{:?}", certs.scan.warnings);

    // The volume update: a second version of every file, then one rename of `..data`.
    let replacement = fresh_folder();
    let version = folder.certs.join("..2026_03_01_v2");
    fs::create_dir(&version).unwrap();
    for name in common::file_names(&replacement.certs) {
        fs::copy(replacement.cert_file(&name), version.join(&name)).unwrap();
    }
    let staged = folder.certs.join("..data.new");
    std::os::unix::fs::symlink("..2026_03_01_v2", &staged).unwrap();
    fs::rename(&staged, folder.certs.join("..data")).unwrap();

    let reloaded = NodeCerts::load(&folder.certs, NOW).unwrap();
    assert!(!reloaded.scan.has_errors(), "{:?}", reloaded.scan);
    assert_ne!(
        reloaded.scan.digest, certs.scan.digest,
        "the new version reads the same"
    );
    let expected = NodeCerts::load(&replacement.certs, NOW).unwrap();
    let issuer = &reloaded.node.issuer.fingerprint_sha256;
    assert_eq!(
        issuer, &expected.node.issuer.fingerprint_sha256,
        "the old CA is still read"
    );
}

#[test]
fn load_checks_mode_of_symlink_target() {
    let folder = fresh_folder();
    link_like_secret_volume(&folder.certs, "..2026_03_01_v1");
    set_mode(
        &folder.certs.join("..2026_03_01_v1").join("node.key"),
        0o644,
    );

    let error = NodeCerts::load(&folder.certs, NOW).unwrap_err();
    assert_names_file(&error, &folder.cert_file("node.key"));
    assert!(
        matches!(error.problem, Problem::Permissions(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("mode 0644"), "{error}");
}

/// Copies the CockroachDB fixtures into `dir` with key modes of 0600.
fn copy_cockroach_fixtures(dir: &Path) {
    for name in [
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    ] {
        let target = dir.join(name);
        fs::copy(Path::new(COCKROACH_FIXTURES).join(name), &target).unwrap();
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        set_mode(&target, mode);
    }
}

/// Rewrites every file in `dir` with `rewrite` applied to its text.
fn rewrite_files(dir: &Path, rewrite: impl Fn(&str) -> String) {
    for name in common::file_names(dir) {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, rewrite(&text)).unwrap();
    }
}

#[test]
fn load_accepts_crlf_line_endings() {
    let temp = tempfile::TempDir::new().unwrap();
    copy_cockroach_fixtures(temp.path());
    rewrite_files(temp.path(), |text| text.replace('\n', "\r\n"));

    let certs = NodeCerts::load(temp.path(), OffsetDateTime::now_utc()).unwrap();
    let root_error = entry_error(&certs.scan, &root());
    assert!(root_error.is_none(), "{root_error:?}");
}

#[test]
fn load_accepts_missing_final_newline() {
    let folder = fresh_folder();
    rewrite_files(&folder.certs, |text| text.trim_end().to_owned());

    let certs = NodeCerts::load(&folder.certs, NOW).unwrap();
    let root_error = entry_error(&certs.scan, &root());
    assert!(root_error.is_none(), "{root_error:?}");
}

#[test]
fn load_accepts_cockroach_fixtures() {
    let temp = tempfile::TempDir::new().unwrap();
    copy_cockroach_fixtures(temp.path());

    let certs = NodeCerts::load(temp.path(), OffsetDateTime::now_utc()).unwrap();
    assert_eq!(certs.node.chain[0].common_name.as_deref(), Some("node"));
    let ca_subject = "CommonName=Cockroach CA, Organization=Cockroach";
    assert_eq!(certs.node.issuer.subject, ca_subject);
    assert_eq!(certs.ca_certs[0].subject, ca_subject);
    let root_error = entry_error(&certs.scan, &root());
    assert!(root_error.is_none(), "{root_error:?}");
    assert!(certs.scan.warnings.is_empty(), "{:?}", certs.scan.warnings);
}
