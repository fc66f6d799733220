//! End-to-end rotation against the real binary, psql, openssl and curl.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{PsqlSession, Workspace, file_serial, stderr, stdout};

#[test]
fn psql_connects_with_client_certificate() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let output = node.psql("root", "SELECT 40 + 2");

    assert!(output.status.success(), "psql failed: {}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "42");
}

#[test]
fn psql_user_must_match_certificate() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let conninfo = node
        .conninfo("root", &workspace.certs)
        .replace("user=root", "user=alice");

    let output = std::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .expect("run psql");

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(r#"certificate is for "root", not "alice""#),
        "{}",
        stderr(&output)
    );
}

#[test]
fn plaintext_connection_is_rejected() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=root dbname=defaultdb sslmode=disable",
        node.sql_port
    );

    let output = std::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .expect("run psql");

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("sslmode=verify-full"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn connection_without_client_certificate_is_rejected() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=root dbname=defaultdb sslmode=verify-full sslrootcert={} sslcert=/nonexistent sslkey=/nonexistent",
        node.sql_port,
        workspace.path("ca.crt").display()
    );

    let output = std::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .expect("run psql");

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no client certificate was presented"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn node_rotation_keeps_open_session() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let mut session = PsqlSession::open(&node, "root");
    assert_eq!(session.query("SELECT 1;"), "1");
    let old_serial = node.sql_serial();
    assert_eq!(old_serial, file_serial(&workspace.path("node.crt")));
    let old_until = node.status_fields("NODE")[0]["validUntil"].clone();

    workspace.cert_ok(&[
        "create-node",
        "localhost",
        "127.0.0.1",
        "--overwrite",
        "--lifetime=1000h",
    ]);
    let event = node.reload();

    assert!(event.contains("result=\"success\""), "{event}");
    assert_eq!(session.query("SELECT 2;"), "2");
    let new_serial = node.sql_serial();
    assert_ne!(new_serial, old_serial);
    assert_eq!(new_serial, file_serial(&workspace.path("node.crt")));
    assert_eq!(node.admin_serial(), new_serial);
    let node_fields = node.status_fields("NODE");
    assert_eq!(node_fields[0]["serial"], new_serial.as_str());
    assert_ne!(node_fields[0]["validUntil"], old_until);
    let output = node.psql("root", "SELECT 3");
    assert!(
        output.status.success(),
        "new connection failed: {}",
        stderr(&output)
    );
}

#[test]
fn ca_rotation_trusts_old_and_new_clients() {
    let workspace = Workspace::with_certs();
    workspace.cert_ok(&["create-client", "alice"]);
    let node = workspace.start_node();
    let old_ca_key = workspace.ca_key.with_file_name("ca.old.key");
    std::fs::rename(&workspace.ca_key, &old_ca_key).expect("rename CA key");

    workspace.cert_ok(&["create-ca", "--overwrite"]);
    let event = node.reload();
    assert!(event.contains("result=\"success\""), "{event}");
    assert_eq!(node.status_fields("CA").len(), 2);
    workspace.cert_ok(&["create-client", "bob"]);

    let alice = node.psql("alice", "SELECT 'old CA'");
    assert!(
        alice.status.success(),
        "old-CA client failed: {}",
        stderr(&alice)
    );
    let bob = node.psql("bob", "SELECT 'new CA'");
    assert!(
        bob.status.success(),
        "new-CA client failed: {}",
        stderr(&bob)
    );

    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let event = node.reload();
    assert!(event.contains("result=\"success\""), "{event}");
    let node_fields = node.status_fields("NODE");
    let ca_fields = node.status_fields("CA");
    assert_eq!(node_fields[0]["issuer"], ca_fields[0]["subject"]);
    let alice = node.psql("alice", "SELECT 'old CA, new node'");
    assert!(
        alice.status.success(),
        "old-CA client failed: {}",
        stderr(&alice)
    );
}

#[test]
fn node_starts_on_cockroach_fixtures() {
    let workspace = Workspace::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/cockroach-certs");
    std::fs::create_dir_all(&workspace.certs).expect("create certs folder");
    for name in [
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    ] {
        let target = workspace.path(name);
        std::fs::copy(fixtures.join(name), &target).expect("copy fixture");
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let listed = common::cert_list(&workspace.certs);
    assert!(
        listed.status.success(),
        "cert list failed: {}",
        stdout(&listed)
    );
    assert!(
        stdout(&listed).contains("user: root"),
        "{}",
        stdout(&listed)
    );
    let node = workspace.start_node();

    let output = node.psql("root", "SELECT 'cockroach certs'");

    assert!(output.status.success(), "psql failed: {}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "cockroach certs");
    assert_eq!(
        node.status_fields("CA")[0]["subject"],
        "CommonName=Cockroach CA, Organization=Cockroach"
    );
}
