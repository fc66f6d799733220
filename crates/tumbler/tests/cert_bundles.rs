//! `cert list --format=json`, `cert inspect`, `remove-ca` and expired CAs in combined bundles.

mod common;

use std::process::{Command, Output};

use common::{Workspace, file_serial, stderr, stdout};

fn tumbler(args: &[&str]) -> Output {
    Command::new(common::tumbler_bin())
        .args(args)
        .output()
        .expect("run tumbler")
}

fn list_json(workspace: &Workspace) -> Vec<serde_json::Value> {
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());
    let output = tumbler(&["cert", "list", "--format=json", &certs_dir]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("cert list prints JSON")
}

fn ca_fingerprints(workspace: &Workspace) -> Vec<String> {
    list_json_allowing_errors(workspace)
        .iter()
        .filter(|row| row["usage"] == "CA")
        .map(|row| {
            row["fingerprintSha256"]
                .as_str()
                .expect("fingerprint")
                .to_owned()
        })
        .collect()
}

/// Moves the CA key aside and creates a new CA with `--overwrite`, giving a combined bundle.
fn rotate_ca(workspace: &Workspace, extra: &[&str]) -> Output {
    let old = workspace
        .ca_key
        .with_file_name(format!("ca.{}.key", ca_fingerprints(workspace).len()));
    std::fs::rename(&workspace.ca_key, old).expect("move CA key");
    let mut args = vec!["create-ca", "--overwrite"];
    args.extend_from_slice(extra);
    workspace.cert_ok(&args)
}

#[test]
fn list_json_has_one_row_per_certificate() {
    let workspace = Workspace::with_certs();
    rotate_ca(&workspace, &[]);

    let rows = list_json(&workspace);

    let usages: Vec<&str> = rows
        .iter()
        .map(|row| row["usage"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(usages, ["CA", "CA", "Node", "Client"]);
    let node = &rows[2];
    assert_eq!(
        node["serial"],
        file_serial(&workspace.path("node.crt")).as_str()
    );
    assert_eq!(
        node["addresses"],
        serde_json::json!(["localhost", "127.0.0.1", "::1"])
    );
    assert_eq!(rows[3]["user"], "root");
    assert!(rows.iter().all(|row| row["error"] == ""), "{rows:?}");
}

#[test]
fn list_json_reports_errors_with_exit_one() {
    let workspace = Workspace::with_certs();
    std::fs::write(workspace.path("client.broken.crt"), b"not a certificate").expect("write");
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());

    let output = tumbler(&["cert", "list", "--format=json", &certs_dir]);

    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let broken = rows
        .iter()
        .find(|row| row["certificateFile"] == "client.broken.crt")
        .expect("row");
    assert!(
        broken["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not PEM"),
        "{broken}"
    );
    let node = rows
        .iter()
        .find(|row| row["usage"] == "Node")
        .expect("node row");
    assert_eq!(node["error"], "", "{node}");
}

#[test]
fn inspect_prints_every_certificate() {
    let workspace = Workspace::with_certs();
    rotate_ca(&workspace, &[]);
    let fingerprints = ca_fingerprints(&workspace);
    let file = workspace.path("ca.crt");

    let output = tumbler(&["cert", "inspect", file.to_str().expect("path")]);

    let text = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(text.contains("Certificate 1 of 2"), "{text}");
    assert!(text.contains("Certificate 2 of 2"), "{text}");
    for fingerprint in &fingerprints {
        assert!(text.contains(fingerprint.as_str()), "{text}");
    }
    assert!(text.contains("Subject Key ID"), "{text}");
    assert!(text.contains("CommonName=Cockroach CA"), "{text}");
}

#[test]
fn inspect_names_broken_file() {
    let workspace = Workspace::with_certs();
    let file = workspace.path("node.key");

    let output = tumbler(&["cert", "inspect", file.to_str().expect("path")]);

    assert!(!output.status.success());
    assert!(stderr(&output).contains("node.key"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not CERTIFICATE"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn remove_ca_drops_one_certificate() {
    let workspace = Workspace::with_certs();
    rotate_ca(&workspace, &[]);
    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let fingerprints = ca_fingerprints(&workspace);
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());
    let old = format!("--fingerprint={}", fingerprints[1].to_lowercase());

    let output = tumbler(&["cert", "remove-ca", &certs_dir, &old]);

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(ca_fingerprints(&workspace), [fingerprints[0].clone()]);
}

#[test]
fn remove_ca_refuses_signer_of_node_certificate() {
    let workspace = Workspace::with_certs();
    rotate_ca(&workspace, &[]);
    let fingerprints = ca_fingerprints(&workspace);
    let before = std::fs::read(workspace.path("ca.crt")).expect("read ca.crt");
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());
    let signer = format!("--fingerprint={}", fingerprints[1]);

    let refused = tumbler(&["cert", "remove-ca", &certs_dir, &signer]);

    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("signed the current node.crt"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_eq!(
        std::fs::read(workspace.path("ca.crt")).expect("read"),
        before
    );

    let forced = tumbler(&["cert", "remove-ca", &certs_dir, &signer, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(ca_fingerprints(&workspace), [fingerprints[0].clone()]);
}

#[test]
fn remove_ca_unknown_fingerprint_lists_bundle() {
    let workspace = Workspace::with_certs();
    let fingerprint = ca_fingerprints(&workspace).remove(0);
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());

    let output = tumbler(&[
        "cert",
        "remove-ca",
        &certs_dir,
        "--fingerprint=00AA00AA00AA00AA00",
    ]);

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&fingerprint),
        "{}",
        stderr(&output)
    );
}

#[test]
fn remove_ca_takes_listed_prefix() {
    let workspace = Workspace::with_certs();
    rotate_ca(&workspace, &[]);
    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let fingerprints = ca_fingerprints(&workspace);
    let listed = common::cert_list(&workspace.certs);
    let old_prefix = &fingerprints[1][..16];
    assert!(stdout(&listed).contains(old_prefix), "{}", stdout(&listed));
    let signer_row = stdout(&listed)
        .lines()
        .find(|line| line.contains(&fingerprints[0][..16]))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(signer_row.contains("signed node.crt"), "{signer_row}");
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());

    let output = tumbler(&[
        "cert",
        "remove-ca",
        &certs_dir,
        &format!("--fingerprint={old_prefix}"),
    ]);

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(ca_fingerprints(&workspace), [fingerprints[0].clone()]);
}

#[test]
fn remove_ca_rejects_short_prefix() {
    let workspace = Workspace::with_certs();
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());

    let output = tumbler(&["cert", "remove-ca", &certs_dir, "--fingerprint=AB"]);

    assert!(!output.status.success());
    assert!(stderr(&output).contains("too short"), "{}", stderr(&output));
}

#[test]
fn create_ca_drops_expired_certificates() {
    let workspace = Workspace::new();
    workspace.cert_ok(&["create-ca", "--lifetime=1s"]);
    let expired = ca_fingerprints(&workspace).remove(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let output = rotate_ca(&workspace, &[]);

    assert!(
        stderr(&output).contains("dropped the CA certificate"),
        "{}",
        stderr(&output)
    );
    let fingerprints = ca_fingerprints(&workspace);
    assert_eq!(fingerprints.len(), 1, "{fingerprints:?}");
    assert_ne!(fingerprints[0], expired);
}

#[test]
fn create_ca_keep_expired_keeps_them() {
    let workspace = Workspace::new();
    workspace.cert_ok(&["create-ca", "--lifetime=1s"]);
    let expired = ca_fingerprints(&workspace).remove(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));

    rotate_ca(&workspace, &["--keep-expired"]);

    let rows = list_json_allowing_errors(&workspace);
    let kept = rows
        .iter()
        .find(|row| row["fingerprintSha256"] == expired.as_str())
        .expect("kept");
    assert!(
        kept["error"]
            .as_str()
            .unwrap_or_default()
            .contains("expired at"),
        "{kept}"
    );
}

fn list_json_allowing_errors(workspace: &Workspace) -> Vec<serde_json::Value> {
    let certs_dir = format!("--certs-dir={}", workspace.certs.display());
    let output = tumbler(&["cert", "list", "--format=json", &certs_dir]);
    serde_json::from_slice(&output.stdout).expect("cert list prints JSON")
}

#[test]
fn client_ca_signs_client_certificates() {
    let workspace = Workspace::with_certs();
    let client_key = workspace.dir.path().join("safe").join("ca-client.key");
    let client_ca_args = |args: &[&str]| {
        Command::new(common::tumbler_bin())
            .arg("cert")
            .args(args)
            .arg(format!("--certs-dir={}", workspace.certs.display()))
            .arg(format!("--ca-key={}", client_key.display()))
            .output()
            .expect("run tumbler cert")
    };

    let created = client_ca_args(&["create-client-ca"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let alice = client_ca_args(&["create-client", "alice"]);
    assert!(alice.status.success(), "{}", stderr(&alice));

    let verified = common::openssl([
        "verify".as_ref(),
        "-CAfile".as_ref(),
        workspace.path("ca-client.crt").as_os_str(),
        workspace.path("client.alice.crt").as_os_str(),
    ]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    let wrong_key = workspace.cert(&["create-client", "bob"]);
    assert!(
        !wrong_key.status.success(),
        "create-client signed with the ca.crt key"
    );
    assert!(
        stderr(&wrong_key).contains("ca-client.crt"),
        "{}",
        stderr(&wrong_key)
    );
}
