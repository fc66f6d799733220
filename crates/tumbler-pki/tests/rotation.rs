//! CA rotation: create-ca over an existing `ca.crt` writes a combined bundle, new certificate
//! first, and create-node and create-client sign with whichever CA in it matches `--ca-key`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Folder, NOW, file_names, hosts, verify};
use tumbler_pki::create::{CreateError, create_ca, create_client, create_node};
use tumbler_pki::pem::parse_blocks;
use tumbler_pki::{CertInfo, KeyType, NodeCerts};

/// A folder after one CA rotation: the old CA key moved to `ca.old.key`, a new CA key at the
/// original path, and `ca.crt` containing the new CA then the old one.
struct Rotated {
    folder: Folder,
    old_ca_key: PathBuf,
    old_bundle: String,
    new_ca: CertInfo,
}

/// Creates a CA and a node pair, then rotates the CA: moves the key aside and runs create-ca
/// with `overwrite` to the original key path.
fn rotate() -> Rotated {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap();
    let old_bundle = fs::read_to_string(folder.cert_file("ca.crt")).unwrap();
    let old_ca_key = folder.ca_key.with_file_name("ca.old.key");
    fs::rename(&folder.ca_key, &old_ca_key).unwrap();

    let mut options = folder.ca_options(KeyType::EcdsaP256);
    options.overwrite = true;
    let new_ca = create_ca(&options, false).unwrap().certificate.unwrap();
    Rotated {
        folder,
        old_ca_key,
        old_bundle,
        new_ca,
    }
}

/// Writes the `index`-th certificate of `ca.crt` alone to `name` in the certs folder.
fn write_single_ca(folder: &Folder, index: usize, name: &str) {
    let bundle = fs::read(folder.cert_file("ca.crt")).unwrap();
    let block = &parse_blocks(&bundle).unwrap()[index];
    let pem = tumbler_pki::pem::encode_block("CERTIFICATE", &block.der);
    fs::write(folder.cert_file(name), pem).unwrap();
}

#[test]
fn rotate_ca_puts_new_cert_first() {
    let rotated = rotate();
    let bundle = fs::read(rotated.folder.cert_file("ca.crt")).unwrap();
    let blocks = parse_blocks(&bundle).unwrap();
    assert_eq!(
        blocks.len(),
        2,
        "ca.crt holds {} certificates",
        blocks.len()
    );

    let first = CertInfo::parse(blocks[0].der.clone().into()).unwrap();
    assert_eq!(
        first.fingerprint_sha256, rotated.new_ca.fingerprint_sha256,
        "first is not new"
    );
    let old_blocks = parse_blocks(rotated.old_bundle.as_bytes()).unwrap();
    assert_eq!(
        blocks[1].der, old_blocks[0].der,
        "second is not the old CA certificate"
    );
    let bundle_text = String::from_utf8(bundle).unwrap();
    assert!(
        bundle_text.ends_with(&rotated.old_bundle),
        "old PEM text changed:\n{bundle_text}"
    );
}

#[test]
fn rotate_ca_signs_with_new_key() {
    let rotated = rotate();
    let folder = &rotated.folder;
    create_client(&folder.leaf_options(KeyType::EcdsaP256), "alice").unwrap();

    write_single_ca(folder, 0, "new-ca.pem");
    write_single_ca(folder, 1, "old-ca.pem");
    let by_new = verify(&folder.certs, "new-ca.pem", "sslclient", "client.alice.crt");
    assert!(
        by_new.status.success(),
        "{}",
        String::from_utf8_lossy(&by_new.stderr)
    );
    let by_old = verify(&folder.certs, "old-ca.pem", "sslclient", "client.alice.crt");
    assert!(
        !by_old.status.success(),
        "the old CA verifies a certificate of the new key"
    );
}

#[test]
fn rotate_ca_signs_with_old_key() {
    let rotated = rotate();
    let folder = &rotated.folder;
    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.ca_key = rotated.old_ca_key.clone();
    create_client(&options, "bob").unwrap();

    write_single_ca(folder, 0, "new-ca.pem");
    write_single_ca(folder, 1, "old-ca.pem");
    let by_old = verify(&folder.certs, "old-ca.pem", "sslclient", "client.bob.crt");
    assert!(
        by_old.status.success(),
        "{}",
        String::from_utf8_lossy(&by_old.stderr)
    );
    let by_new = verify(&folder.certs, "new-ca.pem", "sslclient", "client.bob.crt");
    assert!(
        !by_new.status.success(),
        "the new CA verifies a certificate of the old key"
    );
}

#[test]
fn rotate_ca_keeps_old_node_trusted() {
    let rotated = rotate();
    let certs = NodeCerts::load(&rotated.folder.certs, NOW).unwrap();
    assert_eq!(certs.ca_certs.len(), 2);
    let old_ca = &certs.ca_certs[1];
    assert_eq!(
        certs.node.issuer.fingerprint_sha256,
        old_ca.fingerprint_sha256
    );
}

#[test]
fn create_client_rejects_unknown_ca_key() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    let other = Folder::new();
    create_ca(&other.ca_options(KeyType::EcdsaP256), false).unwrap();

    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.ca_key = other.ca_key.clone();
    let error = create_client(&options, "alice").unwrap_err();
    let ca_file = folder.cert_file("ca.crt");
    assert!(
        matches!(&error, CreateError::NoMatchingCa { ca_cert, ca_key }
            if *ca_cert == ca_file && *ca_key == other.ca_key),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&ca_file.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&other.ca_key.display().to_string()),
        "{message}"
    );
    assert_eq!(file_names(&folder.certs), ["ca.crt"]);
}

#[test]
fn create_ca_refuses_existing_key() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    let key_before = fs::read(&folder.ca_key).unwrap();
    let bundle_before = fs::read(folder.cert_file("ca.crt")).unwrap();

    let mut options = folder.ca_options(KeyType::EcdsaP256);
    options.overwrite = true;
    let error = create_ca(&options, false).unwrap_err();
    assert!(
        matches!(&error, CreateError::CaKeyExists(path) if *path == folder.ca_key),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("--allow-ca-key-reuse"),
        "{error}"
    );
    assert_eq!(
        fs::read(&folder.ca_key).unwrap(),
        key_before,
        "CA key changed"
    );
    assert_eq!(
        fs::read(folder.cert_file("ca.crt")).unwrap(),
        bundle_before,
        "ca.crt changed"
    );
}

#[test]
fn create_ca_refuses_key_without_bundle() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    fs::remove_file(folder.cert_file("ca.crt")).unwrap();

    let error = create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap_err();
    assert!(matches!(error, CreateError::CaKeyExists(_)), "{error:?}");
    assert!(
        file_names(&folder.certs).is_empty(),
        "{:?}",
        file_names(&folder.certs)
    );
}

#[test]
fn create_ca_refuses_existing_bundle() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    let bundle_before = fs::read(folder.cert_file("ca.crt")).unwrap();

    let error = create_ca(&folder.ca_options(KeyType::EcdsaP256), true).unwrap_err();
    assert!(
        matches!(&error, CreateError::Exists(path) if *path == folder.cert_file("ca.crt")),
        "{error:?}"
    );
    assert_eq!(
        fs::read(folder.cert_file("ca.crt")).unwrap(),
        bundle_before,
        "ca.crt changed"
    );
}

#[test]
fn create_ca_reuses_key_when_allowed() {
    let folder = Folder::new();
    let first = create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    let key_before = fs::read(&folder.ca_key).unwrap();

    let mut options = folder.ca_options(KeyType::EcdsaP256);
    options.overwrite = true;
    let second = create_ca(&options, true).unwrap();
    assert_eq!(
        second.written,
        [folder.cert_file("ca.crt")],
        "only ca.crt is written"
    );
    assert_eq!(
        fs::read(&folder.ca_key).unwrap(),
        key_before,
        "CA key changed"
    );
    let first_ca = first.certificate.unwrap();
    let second_ca = second.certificate.unwrap();
    assert_eq!(first_ca.spki, second_ca.spki);

    let bundle = fs::read(folder.cert_file("ca.crt")).unwrap();
    assert_eq!(parse_blocks(&bundle).unwrap().len(), 2);
    create_client(&folder.leaf_options(KeyType::EcdsaP256), "alice").unwrap();
}
