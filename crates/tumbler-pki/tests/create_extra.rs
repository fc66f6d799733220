//! `create-ui`, `create-client-ca` and the PKCS#8 copy of a client key, each for ECDSA and
//! RSA keys, checked with the real `openssl`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use common::{Folder, hosts, key_types, mode, openssl, openssl_ok, verify};
use tumbler_pki::create::{
    CaBundle, CaOptions, create_ca, create_ca_bundle, create_client_with, create_ui,
};
use tumbler_pki::{NodeCerts, PrivateKey};

#[test]
fn create_ui_serves_only() {
    for key_type in key_types() {
        let folder = Folder::new();
        create_ca(&folder.ca_options(key_type), false).unwrap();

        create_ui(&folder.leaf_options(key_type), &hosts()).unwrap();

        let server = verify(&folder.certs, "ca.crt", "sslserver", "ui.crt");
        assert!(
            server.status.success(),
            "{key_type}: ui.crt fails sslserver"
        );
        let text = openssl_ok(&folder.certs, &["x509", "-in", "ui.crt", "-text", "-noout"]);
        assert!(
            text.contains("TLS Web Server Authentication"),
            "{key_type}: {text}"
        );
        assert!(
            !text.contains("TLS Web Client Authentication"),
            "{key_type}: {text}"
        );
        assert!(
            text.contains(&format!("CN = {}", hosts()[0])),
            "{key_type}: {text}"
        );
        assert_eq!(mode(&folder.cert_file("ui.key")), 0o600, "{key_type}");
    }
}

#[test]
fn client_ca_signs_clients() {
    for key_type in key_types() {
        let folder = Folder::new();
        create_ca(&folder.ca_options(key_type), false).unwrap();
        let mut client_ca = folder.ca_options(key_type);
        client_ca.ca_key = folder
            .certs
            .parent()
            .unwrap()
            .join("safe")
            .join("ca-client.key");

        create_ca_bundle(&client_ca, CaBundle::Client, CaOptions::default()).unwrap();
        let mut client = folder.leaf_options(key_type);
        client.ca_key = client_ca.ca_key.clone();
        create_client_with(&client, "alice", false).unwrap();

        let text = openssl_ok(
            &folder.certs,
            &["x509", "-in", "ca-client.crt", "-text", "-noout"],
        );
        assert!(
            text.contains("CN = Cockroach Client CA"),
            "{key_type}: {text}"
        );
        let output = verify(
            &folder.certs,
            "ca-client.crt",
            "sslclient",
            "client.alice.crt",
        );
        assert!(
            output.status.success(),
            "{key_type}: alice fails against ca-client.crt"
        );
        let output = verify(&folder.certs, "ca.crt", "sslclient", "client.alice.crt");
        assert!(
            !output.status.success(),
            "{key_type}: alice verifies against ca.crt"
        );
    }
}

#[test]
fn node_needs_client_cert_with_client_ca() {
    let folder = Folder::new();
    folder.create_all(tumbler_pki::KeyType::EcdsaP256, "root");
    let mut client_ca = folder.ca_options(tumbler_pki::KeyType::EcdsaP256);
    client_ca.ca_key = folder
        .certs
        .parent()
        .unwrap()
        .join("safe")
        .join("ca-client.key");
    create_ca_bundle(&client_ca, CaBundle::Client, CaOptions::default()).unwrap();

    let error = NodeCerts::load(&folder.certs, common::NOW).unwrap_err();
    assert!(error.path.ends_with("client.node.crt"), "{error}");
    assert!(error.to_string().contains("create-client node"), "{error}");

    let mut node_client = folder.leaf_options(tumbler_pki::KeyType::EcdsaP256);
    node_client.ca_key = client_ca.ca_key.clone();
    create_client_with(&node_client, "node", false).unwrap();
    let certs = NodeCerts::load(&folder.certs, common::NOW).unwrap();
    let outgoing = certs.outgoing_identity().leaf();
    assert_eq!(
        outgoing.issuer,
        "CommonName=Cockroach Client CA, Organization=Tumbler"
    );
}

#[test]
fn pkcs8_copy_is_der_of_same_key() {
    for key_type in key_types() {
        let folder = Folder::new();
        create_ca(&folder.ca_options(key_type), false).unwrap();

        create_client_with(&folder.leaf_options(key_type), "jdbc", true).unwrap();

        let pk8 = folder.cert_file("client.jdbc.key.pk8");
        assert_eq!(mode(&pk8), 0o600, "{key_type}");
        let der = std::fs::read(&pk8).unwrap();
        assert_eq!(der.first(), Some(&0x30), "{key_type}: not DER");
        let from_der = openssl(
            &folder.certs,
            &[
                "pkey",
                "-inform",
                "DER",
                "-in",
                "client.jdbc.key.pk8",
                "-pubout",
            ],
        );
        let from_pem = openssl(
            &folder.certs,
            &["pkey", "-in", "client.jdbc.key", "-pubout"],
        );
        assert!(
            from_der.status.success(),
            "{key_type}: openssl cannot read the .pk8"
        );
        assert_eq!(
            from_der.stdout, from_pem.stdout,
            "{key_type}: the two keys differ"
        );
        let pem =
            PrivateKey::from_pem(&std::fs::read(folder.cert_file("client.jdbc.key")).unwrap());
        assert!(pem.is_ok(), "{key_type}");
    }
}
