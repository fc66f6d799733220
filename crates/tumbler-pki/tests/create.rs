//! The create commands, checked with the real `openssl`: certificate contents, file modes,
//! existing files kept unless `overwrite` is set, and the rule that a certificate never outlives
//! its CA.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use std::fs;

use common::{Folder, NOW, file_names, hosts, key_types, mode, openssl_date, openssl_ok, verify};
use time::Duration;
use tumbler_pki::create::{CreateError, CreateOptions, create_ca, create_client, create_node};
use tumbler_pki::lifetime::{BACKDATE, DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, parse_duration};
use tumbler_pki::{KeyType, PrivateKey};

#[test]
fn create_ca_is_signing_ca() {
    for key_type in key_types() {
        let folder = Folder::new();
        create_ca(&folder.ca_options(key_type), false).unwrap();

        let text = openssl_ok(&folder.certs, &["x509", "-in", "ca.crt", "-text", "-noout"]);
        assert!(
            text.contains("CA:TRUE"),
            "{key_type}: no CA:TRUE in\n{text}"
        );
        assert!(
            text.contains("Certificate Sign"),
            "{key_type}: no Certificate Sign in\n{text}"
        );
    }
}

#[test]
fn create_node_verifies_for_server_and_client() {
    for key_type in key_types() {
        let folder = Folder::new();
        folder.create_all(key_type, "alice");

        for purpose in ["sslserver", "sslclient"] {
            let output = verify(&folder.certs, "ca.crt", purpose, "node.crt");
            assert!(
                output.status.success(),
                "{key_type}: node.crt fails -purpose {purpose}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn create_node_shows_subject_usages_and_sans() {
    for key_type in key_types() {
        let folder = Folder::new();
        folder.create_all(key_type, "alice");

        let subject = openssl_ok(
            &folder.certs,
            &["x509", "-in", "node.crt", "-noout", "-subject"],
        );
        assert!(subject.contains("CN = node"), "{key_type}: {subject}");
        assert!(subject.contains("O = Tumbler"), "{key_type}: {subject}");

        let text = openssl_ok(
            &folder.certs,
            &["x509", "-in", "node.crt", "-text", "-noout"],
        );
        let expected = [
            "TLS Web Server Authentication",
            "TLS Web Client Authentication",
            "DNS:localhost",
            "DNS:node1.example",
            "IP Address:127.0.0.1",
            "IP Address:0:0:0:0:0:0:0:1",
        ];
        for part in expected {
            assert!(text.contains(part), "{key_type}: no {part:?} in\n{text}");
        }
    }
}

#[test]
fn create_client_verifies_only_for_client() {
    for key_type in key_types() {
        let folder = Folder::new();
        folder.create_all(key_type, "alice");

        let as_client = verify(&folder.certs, "ca.crt", "sslclient", "client.alice.crt");
        assert!(
            as_client.status.success(),
            "{key_type}: client.alice.crt fails -purpose sslclient: {}",
            String::from_utf8_lossy(&as_client.stderr)
        );
        let as_server = verify(&folder.certs, "ca.crt", "sslserver", "client.alice.crt");
        assert!(
            !as_server.status.success(),
            "{key_type}: client.alice.crt passes sslserver"
        );

        let cert = "client.alice.crt";
        let subject = openssl_ok(&folder.certs, &["x509", "-in", cert, "-noout", "-subject"]);
        assert!(subject.contains("CN = alice"), "{key_type}: {subject}");
        let text = openssl_ok(&folder.certs, &["x509", "-in", cert, "-text", "-noout"]);
        assert!(
            text.contains("TLS Web Client Authentication"),
            "{key_type}:\n{text}"
        );
        assert!(
            !text.contains("TLS Web Server Authentication"),
            "{key_type}:\n{text}"
        );
    }
}

#[test]
fn create_backdates_not_before_one_day() {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "alice");

    let expected_start = format!("notBefore={}\n", openssl_date(NOW - Duration::hours(24)));
    for cert in ["ca.crt", "node.crt", "client.alice.crt"] {
        let start = openssl_ok(
            &folder.certs,
            &["x509", "-in", cert, "-noout", "-startdate"],
        );
        assert_eq!(start, expected_start, "{cert}");
    }
    let expected_end = format!("notAfter={}\n", openssl_date(NOW + DEFAULT_LEAF_LIFETIME));
    let end = openssl_ok(
        &folder.certs,
        &["x509", "-in", "node.crt", "-noout", "-enddate"],
    );
    assert_eq!(end, expected_end);
    assert_eq!(BACKDATE, Duration::hours(24));
}

#[test]
fn create_gives_random_serials() {
    let folder = Folder::new();
    let mut ca_options = folder.ca_options(KeyType::EcdsaP256);
    let first_ca = create_ca(&ca_options, false).unwrap().certificate.unwrap();
    ca_options.overwrite = true;
    let second_ca = create_ca(&ca_options, true).unwrap().certificate.unwrap();
    assert_eq!(
        first_ca.spki, second_ca.spki,
        "the second CA must reuse the key"
    );
    assert_ne!(
        first_ca.serial, second_ca.serial,
        "two CA certificates of one key"
    );

    let mut node_options = folder.leaf_options(KeyType::EcdsaP256);
    create_node(&node_options, &hosts()).unwrap();
    let serial_args = ["x509", "-in", "node.crt", "-noout", "-serial"];
    let first_node = openssl_ok(&folder.certs, &serial_args);
    node_options.overwrite = true;
    create_node(&node_options, &hosts()).unwrap();
    let second_node = openssl_ok(&folder.certs, &serial_args);
    assert_ne!(
        first_node, second_node,
        "two node certificates with the same options"
    );
}

#[test]
fn create_writes_keys_openssl_reads() {
    for key_type in key_types() {
        let folder = Folder::new();
        folder.create_all(key_type, "alice");

        for key in ["node.key", "client.alice.key"] {
            openssl_ok(&folder.certs, &["pkey", "-in", key, "-noout"]);
        }
        openssl_ok(
            &folder.certs,
            &["pkey", "-in", folder.ca_key.to_str().unwrap(), "-noout"],
        );
    }
}

#[test]
fn create_sets_file_modes() {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "alice");

    assert_eq!(mode(&folder.ca_key), 0o600, "CA key");
    for key in ["node.key", "client.alice.key"] {
        assert_eq!(mode(&folder.cert_file(key)), 0o600, "{key}");
    }
    for cert in ["ca.crt", "node.crt", "client.alice.crt"] {
        assert_eq!(mode(&folder.cert_file(cert)), 0o644, "{cert}");
    }
    assert_eq!(mode(&folder.certs), 0o700, "certs folder");
    assert_eq!(
        mode(folder.ca_key.parent().unwrap()),
        0o700,
        "CA key folder"
    );
}

#[test]
fn create_keeps_ca_key_out_of_certs() {
    let folder = Folder::new();
    let ca_report = create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    let options = folder.leaf_options(KeyType::EcdsaP256);
    let node_report = create_node(&options, &hosts()).unwrap();
    let client_report = create_client(&options, "alice").unwrap();

    let expected = [
        "ca.crt",
        "client.alice.crt",
        "client.alice.key",
        "node.crt",
        "node.key",
    ];
    assert_eq!(file_names(&folder.certs), expected);
    assert!(
        folder.ca_key.is_file(),
        "no CA key at {}",
        folder.ca_key.display()
    );
    assert_eq!(
        ca_report.written,
        [folder.ca_key.clone(), folder.cert_file("ca.crt")]
    );
    assert!(ca_report.warnings.is_empty(), "{:?}", ca_report.warnings);
    assert!(
        node_report.warnings.is_empty(),
        "{:?}",
        node_report.warnings
    );
    assert!(
        client_report.warnings.is_empty(),
        "{:?}",
        client_report.warnings
    );
}

#[test]
fn create_warns_about_ca_key_in_certs() {
    let mut folder = Folder::new();
    folder.ca_key = folder.cert_file("ca.key");
    let key_name = folder.ca_key.display().to_string();

    let ca_report = create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    assert_eq!(ca_report.warnings.len(), 1, "{:?}", ca_report.warnings);
    assert!(
        ca_report.warnings[0].contains(&key_name),
        "{:?}",
        ca_report.warnings
    );

    let node_report = create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap();
    assert_eq!(node_report.warnings.len(), 1, "{:?}", node_report.warnings);
    assert!(
        node_report.warnings[0].contains(&key_name),
        "{:?}",
        node_report.warnings
    );
}

/// Runs in a child process whose working folder is the certs folder, because `--ca-key=ca.key`
/// names a file relative to the working folder.
#[test]
fn create_warns_about_bare_ca_key_name() {
    if !common::in_child() {
        let folder = Folder::new();
        fs::create_dir(&folder.certs).unwrap();
        common::run_test_in_child("create_warns_about_bare_ca_key_name", |child| {
            child.current_dir(&folder.certs);
        });
        assert!(
            folder.cert_file("ca.key").is_file(),
            "the child wrote no ca.key"
        );
        return;
    }
    let options = CreateOptions {
        certs_dir: ".".into(),
        ca_key: "ca.key".into(),
        overwrite: false,
        lifetime: DEFAULT_CA_LIFETIME,
        key_type: KeyType::EcdsaP256,
        now: NOW,
    };

    let report = create_ca(&options, false).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("ca.key"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn create_node_refuses_existing_files() {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "alice");
    let cert_before = fs::read(folder.cert_file("node.crt")).unwrap();
    let key_before = fs::read(folder.cert_file("node.key")).unwrap();

    let error = create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap_err();
    assert!(
        matches!(&error, CreateError::Exists(path) if *path == folder.cert_file("node.crt")),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("node.crt already exists"), "{message}");
    assert!(message.contains("--overwrite"), "{message}");
    assert_eq!(fs::read(folder.cert_file("node.crt")).unwrap(), cert_before);
    assert_eq!(fs::read(folder.cert_file("node.key")).unwrap(), key_before);
}

#[test]
fn create_node_refuses_existing_key() {
    let folder = Folder::new();
    folder.create_all(KeyType::EcdsaP256, "alice");
    fs::remove_file(folder.cert_file("node.crt")).unwrap();
    let key_before = fs::read(folder.cert_file("node.key")).unwrap();

    let error = create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap_err();
    assert!(
        matches!(&error, CreateError::Exists(path) if *path == folder.cert_file("node.key")),
        "{error:?}"
    );
    assert_eq!(fs::read(folder.cert_file("node.key")).unwrap(), key_before);
    assert!(
        !folder.cert_file("node.crt").exists(),
        "node.crt was written"
    );
}

#[test]
fn create_node_overwrite_replaces_pair() {
    for key_type in key_types() {
        let folder = Folder::new();
        folder.create_all(key_type, "alice");
        let cert_before = fs::read(folder.cert_file("node.crt")).unwrap();
        let key_before = fs::read(folder.cert_file("node.key")).unwrap();

        let mut options = folder.leaf_options(key_type);
        options.overwrite = true;
        let report = create_node(&options, &hosts()).unwrap();
        let expected_written = [folder.cert_file("node.key"), folder.cert_file("node.crt")];
        assert_eq!(report.written, expected_written, "{key_type}");

        let cert_after = fs::read(folder.cert_file("node.crt")).unwrap();
        let key_after = fs::read(folder.cert_file("node.key")).unwrap();
        assert_ne!(cert_after, cert_before, "{key_type}: node.crt unchanged");
        assert_ne!(key_after, key_before, "{key_type}: node.key unchanged");

        let cert_public = openssl_ok(
            &folder.certs,
            &["x509", "-in", "node.crt", "-noout", "-pubkey"],
        );
        let key_public = openssl_ok(&folder.certs, &["pkey", "-in", "node.key", "-pubout"]);
        assert_eq!(
            cert_public, key_public,
            "{key_type}: new key does not match new cert"
        );
        let key = PrivateKey::from_pem(&key_after).unwrap();
        key.check_matches(report.certificate.as_ref().unwrap())
            .unwrap();
    }
}

#[test]
fn create_node_rejects_lifetime_past_ca() {
    let folder = Folder::new();
    let mut ca_options = folder.ca_options(KeyType::EcdsaP256);
    ca_options.lifetime = Duration::hours(48);
    create_ca(&ca_options, false).unwrap();

    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.lifetime = Duration::hours(100);
    let error = create_node(&options, &hosts()).unwrap_err();
    assert!(
        matches!(error, CreateError::OutlivesCa { ref max_lifetime, .. } if max_lifetime == "48h"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("--lifetime=48h"), "{message}");
    assert!(
        !folder.cert_file("node.crt").exists(),
        "node.crt was written"
    );
    assert!(
        !folder.cert_file("node.key").exists(),
        "node.key was written"
    );
}

#[test]
fn create_node_suggests_usable_lifetime() {
    let folder = Folder::new();
    let mut ca_options = folder.ca_options(KeyType::EcdsaP256);
    ca_options.lifetime = Duration::minutes(30);
    create_ca(&ca_options, false).unwrap();

    let error = create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap_err();
    assert!(matches!(error, CreateError::OutlivesCa { .. }), "{error:?}");
    let message = error.to_string();
    let suggested = message
        .split("--lifetime=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no --lifetime suggestion in {message:?}"));
    let parsed = parse_duration(suggested);
    assert!(
        parsed.is_ok(),
        "--lifetime={suggested} is rejected: {parsed:?}\n{message}"
    );
    let suggested_lifetime = parsed.unwrap();
    assert!(
        suggested_lifetime <= Duration::minutes(30),
        "{suggested} outlives the CA"
    );
}

#[test]
fn create_node_accepts_lifetime_equal_to_ca() {
    let folder = Folder::new();
    let mut ca_options = folder.ca_options(KeyType::EcdsaP256);
    ca_options.lifetime = Duration::hours(48);
    let ca = create_ca(&ca_options, false).unwrap().certificate.unwrap();

    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.lifetime = Duration::hours(48);
    let node = create_node(&options, &hosts())
        .unwrap()
        .certificate
        .unwrap();
    assert_eq!(node.not_after, ca.not_after);
}

#[test]
fn create_node_rejects_expired_ca() {
    let folder = Folder::new();
    let mut ca_options = folder.ca_options(KeyType::EcdsaP256);
    ca_options.now = NOW - Duration::days(10);
    ca_options.lifetime = Duration::hours(24);
    create_ca(&ca_options, false).unwrap();

    let mut options = folder.leaf_options(KeyType::EcdsaP256);
    options.lifetime = Duration::hours(1);
    let error = create_node(&options, &hosts()).unwrap_err();
    assert!(
        matches!(&error, CreateError::CaNotValid { path, .. } if *path == folder.cert_file("ca.crt")),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("not valid now"), "{message}");
    assert!(
        message.contains("2026-02-20T12:00:00Z"),
        "the message lacks the CA expiry: {message}"
    );
    assert!(
        !folder.cert_file("node.crt").exists(),
        "node.crt was written"
    );
    assert!(
        !folder.cert_file("node.key").exists(),
        "node.key was written"
    );
}

#[test]
fn create_client_normalizes_user_name() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();

    let report = create_client(&folder.leaf_options(KeyType::EcdsaP256), "Alice").unwrap();
    let cert = report.certificate.unwrap();
    assert_eq!(cert.common_name.as_deref(), Some("alice"));
    assert!(
        folder.cert_file("client.alice.crt").is_file(),
        "no client.alice.crt"
    );
    assert!(
        folder.cert_file("client.alice.key").is_file(),
        "no client.alice.key"
    );
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("\"alice\""),
        "{:?}",
        report.warnings
    );
}

#[test]
fn create_client_rejects_invalid_user() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();

    let error = create_client(&folder.leaf_options(KeyType::EcdsaP256), "bob smith").unwrap_err();
    assert!(matches!(error, CreateError::InvalidInput(_)), "{error:?}");
    assert!(error.to_string().contains("\"bob smith\""), "{error}");
    assert_eq!(file_names(&folder.certs), ["ca.crt"]);
}

#[test]
fn create_node_rejects_invalid_host() {
    let mut accepted = Vec::new();
    for host in ["", "bad host", "node1.example:26257", "a..b"] {
        let folder = Folder::new();
        create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();

        let hosts = ["localhost".to_owned(), host.to_owned()];
        match create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts) {
            Err(CreateError::InvalidInput(message)) => {
                assert!(message.contains(&format!("{host:?}")), "{message}");
                assert_eq!(file_names(&folder.certs), ["ca.crt"], "host {host:?}");
            }
            Err(error) => panic!("host {host:?} gave {error:?}"),
            Ok(_) => accepted.push(host),
        }
    }
    assert!(
        accepted.is_empty(),
        "these hosts became DNS names: {accepted:?}"
    );
}

#[test]
fn create_node_needs_ca_key() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();
    fs::remove_file(&folder.ca_key).unwrap();

    let error = create_node(&folder.leaf_options(KeyType::EcdsaP256), &hosts()).unwrap_err();
    assert!(
        matches!(&error, CreateError::CaKeyMissing(path) if *path == folder.ca_key),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&folder.ca_key.display().to_string()),
        "{error}"
    );
    assert_eq!(file_names(&folder.certs), ["ca.crt"]);
}

#[test]
fn create_node_needs_host() {
    let folder = Folder::new();
    create_ca(&folder.ca_options(KeyType::EcdsaP256), false).unwrap();

    let error = create_node(&folder.leaf_options(KeyType::EcdsaP256), &[]).unwrap_err();
    assert!(matches!(error, CreateError::InvalidInput(_)), "{error:?}");
    assert_eq!(file_names(&folder.certs), ["ca.crt"]);
}

#[test]
fn create_node_mixes_key_types() {
    let [ecdsa, rsa] = key_types();
    for (ca_type, node_type) in [(rsa, ecdsa), (ecdsa, rsa)] {
        let folder = Folder::new();
        create_ca(&folder.ca_options(ca_type), false).unwrap();
        create_node(&folder.leaf_options(node_type), &hosts()).unwrap();

        let output = verify(&folder.certs, "ca.crt", "sslserver", "node.crt");
        assert!(
            output.status.success(),
            "{node_type} node under {ca_type} CA: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn key_type_rejects_rsa_sizes() {
    assert_eq!(KeyType::rsa(3072), Ok(KeyType::Rsa(3072)));
    let too_small = KeyType::rsa(1024).unwrap_err();
    assert!(too_small.contains("at least 2048"), "{too_small}");
    let unsupported = KeyType::rsa(8192).unwrap_err();
    assert!(unsupported.contains("2048, 3072 or 4096"), "{unsupported}");
}
