//! Reload that never takes a node down: every trigger, the checks before a swap, what the node
//! reports, and withdrawn trust.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Node, PsqlSession, Workspace, file_serial, stderr, stdout};

/// `curl` against the admin port as `user`, returning the HTTP status and the body.
fn admin_request(node: &Node, method: &str, path: &str, user: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "15",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(node.certs.join("ca.crt"))
        .arg("--cert")
        .arg(node.certs.join(format!("client.{user}.crt")))
        .arg("--key")
        .arg(node.certs.join(format!("client.{user}.key")))
        .arg(format!("https://127.0.0.1:{}{path}", node.http_port))
        .output()
        .expect("run curl");
    let text = stdout(&output);
    let (body, status) = text.rsplit_once('\n').expect("curl status line");
    (status.trim().parse().expect("HTTP status"), body.to_owned())
}

fn reload_via_api(node: &Node) -> (u16, serde_json::Value) {
    let (status, body) = admin_request(node, "POST", "/_admin/v1/certificates/reload", "root");
    (
        status,
        serde_json::from_str(&body).expect("reload verdict is JSON"),
    )
}

fn reload_certs_command(node: &Node) -> Output {
    Command::new(common::tumbler_bin())
        .args(["node", "reload-certs"])
        .arg(format!("--host=127.0.0.1:{}", node.http_port))
        .arg(format!("--certs-dir={}", node.certs.display()))
        .output()
        .expect("run tumbler node reload-certs")
}

fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn rotate_node(workspace: &Workspace) {
    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
}

#[test]
fn api_reload_returns_verdict() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    rotate_node(&workspace);

    let (status, verdict) = reload_via_api(&node);

    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["result"], "success", "{verdict}");
    assert_eq!(verdict["trigger"], "api", "{verdict}");
    let new_serial = file_serial(&workspace.path("node.crt"));
    let added = verdict["serialsAdded"].as_array().expect("serialsAdded");
    assert!(
        added.iter().any(|serial| serial == new_serial.as_str()),
        "{verdict}"
    );
    assert_eq!(node.sql_serial(), new_serial);
}

#[test]
fn api_reload_reports_failure_and_file() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let serial = node.sql_serial();
    std::fs::write(workspace.path("node.crt"), b"").expect("truncate node.crt");

    let (status, verdict) = reload_via_api(&node);

    assert_eq!(status, 422, "{verdict}");
    assert_eq!(verdict["result"], "failure", "{verdict}");
    assert!(
        verdict["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("node.crt"),
        "{verdict}"
    );
    assert!(
        verdict["error"]
            .as_str()
            .unwrap_or_default()
            .contains("empty"),
        "{verdict}"
    );
    assert_eq!(node.sql_serial(), serial);
    let reload = &node.status()["reload"];
    assert_eq!(reload["lastAttempt"]["result"], "failure", "{reload}");
    assert!(reload["lastSuccessAt"].is_null(), "{reload}");
}

#[test]
fn api_reload_requires_root() {
    let workspace = Workspace::with_certs();
    workspace.cert_ok(&["create-client", "alice"]);
    let node = workspace.start_node();

    let (status, body) = admin_request(&node, "POST", "/_admin/v1/certificates/reload", "alice");

    assert_eq!(status, 403, "{body}");
    assert!(node.reload_events().is_empty(), "a reload ran for alice");
}

#[test]
fn reload_certs_command_exit_codes() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    rotate_node(&workspace);

    let success = reload_certs_command(&node);
    assert!(
        success.status.success(),
        "{}{}",
        stdout(&success),
        stderr(&success)
    );
    assert!(
        stdout(&success).contains("reload success"),
        "{}",
        stdout(&success)
    );

    let other = Workspace::with_certs();
    std::fs::copy(other.path("node.key"), workspace.path("node.key")).expect("copy key");
    let failure = reload_certs_command(&node);
    assert_eq!(failure.status.code(), Some(1), "{}", stdout(&failure));
    assert!(
        stderr(&failure).contains("does not match"),
        "{}",
        stderr(&failure)
    );
}

#[test]
fn unchanged_content_is_reported_unchanged() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let event = node.reload();

    assert!(event.contains("result=\"unchanged\""), "{event}");
}

#[test]
fn change_is_detected_by_content_not_mtime() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let other = Workspace::new();
    std::fs::create_dir_all(&other.certs).expect("create folder");
    for name in ["ca.crt", "node.crt", "node.key"] {
        std::fs::copy(workspace.path(name), other.path(name)).expect("copy");
    }
    std::fs::create_dir_all(other.ca_key.parent().expect("safe folder")).expect("create safe");
    std::fs::copy(&workspace.ca_key, &other.ca_key).expect("copy CA key");
    other.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    for name in ["node.key", "node.crt"] {
        let status = Command::new("cp")
            .arg("-p")
            .arg(other.path(name))
            .arg(workspace.path(name))
            .status()
            .expect("run cp -p");
        assert!(status.success());
    }

    let event = node.reload();

    assert!(event.contains("result=\"success\""), "{event}");
    assert_eq!(node.sql_serial(), file_serial(&other.path("node.crt")));
}

#[test]
fn metrics_count_reloads() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    rotate_node(&workspace);
    node.reload();
    std::fs::write(workspace.path("node.crt"), b"junk").expect("break node.crt");
    node.reload();

    let (status, text) = admin_request(&node, "GET", "/_status/vars", "root");

    assert_eq!(status, 200);
    assert!(
        text.contains("tumbler_cert_reload_total{result=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tumbler_cert_reload_total{result=\"failure\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tumbler_cert_reload_last_success_timestamp_seconds "),
        "{text}"
    );
    assert!(
        !text.contains("tumbler_cert_reload_last_success_timestamp_seconds 0\n"),
        "{text}"
    );
    assert!(
        text.contains("tumbler_cert_expiration_timestamp_seconds{type=\"node\"}"),
        "{text}"
    );
}

#[test]
fn ui_certificate_serves_admin_port() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let node_serial = node.sql_serial();

    workspace.cert_ok(&["create-ui", "127.0.0.1", "localhost"]);
    let event = node.reload();
    assert!(event.contains("result=\"success\""), "{event}");
    let ui_serial = file_serial(&workspace.path("ui.crt"));
    assert_eq!(node.admin_serial(), ui_serial);
    assert_eq!(node.sql_serial(), node_serial);

    std::fs::remove_file(workspace.path("ui.crt")).expect("remove ui.crt");
    std::fs::remove_file(workspace.path("ui.key")).expect("remove ui.key");
    let event = node.reload();
    assert!(event.contains("result=\"failure\""), "{event}");
    assert!(event.contains("would lose"), "{event}");
    assert_eq!(node.admin_serial(), ui_serial);
}

#[test]
fn advertise_address_must_stay_covered() {
    let workspace = Workspace::with_certs();
    workspace.cert_ok(&[
        "create-node",
        "localhost",
        "127.0.0.1",
        "node1.example",
        "--overwrite",
    ]);
    let node = Node::start_with(
        &workspace.certs,
        workspace.dir.path(),
        &["--advertise-addr=node1.example:26257"],
    );
    let serial = node.sql_serial();

    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let event = node.reload();
    assert!(event.contains("result=\"failure\""), "{event}");
    assert!(event.contains("node1.example"), "{event}");
    assert_eq!(node.sql_serial(), serial);

    workspace.cert_ok(&[
        "create-node",
        "localhost",
        "127.0.0.1",
        "node1.example",
        "lb.example",
        "--overwrite",
    ]);
    let event = node.reload();
    assert!(event.contains("result=\"success\""), "{event}");
    let addresses = node.status_fields("NODE")[0]["addresses"].clone();
    assert!(
        addresses
            .as_array()
            .expect("addresses")
            .iter()
            .any(|a| a == "lb.example"),
        "{addresses}"
    );
}

#[test]
fn start_rejects_uncovered_advertise_address() {
    let workspace = Workspace::with_certs();
    let (status, log) = common::spawn_and_wait_exit(
        &workspace.certs,
        workspace.dir.path(),
        &["--advertise-addr=db.example:26257"],
    );
    assert!(!status.success());
    assert!(log.contains("db.example"), "{log}");
}

#[test]
fn poll_interval_reloads_changed_content() {
    let workspace = Workspace::with_certs();
    let node = Node::start_with(
        &workspace.certs,
        workspace.dir.path(),
        &["--cert-reload-interval=1s"],
    );
    let old_serial = node.sql_serial();

    rotate_node(&workspace);

    let new_serial = file_serial(&workspace.path("node.crt"));
    wait_for(
        "the poll to pick up the new node.crt",
        Duration::from_secs(10),
        || node.sql_serial() == new_serial,
    );
    assert_ne!(new_serial, old_serial);
    let events = node.reload_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("trigger=poll"), "{events:?}");
}

#[test]
fn poll_follows_swapped_symlink_folder() {
    let workspace = Workspace::with_certs();
    let mounted = workspace.dir.path().join("mounted");
    std::fs::create_dir_all(&mounted).expect("create mount");
    let first = mounted.join("..v1");
    copy_folder(&workspace.certs, &first);
    std::os::unix::fs::symlink("..v1", mounted.join("..data")).expect("link data");
    for name in [
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    ] {
        std::os::unix::fs::symlink(format!("..data/{name}"), mounted.join(name))
            .expect("link file");
    }
    let node = Node::start_with(
        &mounted,
        workspace.dir.path(),
        &["--cert-reload-interval=1s"],
    );

    rotate_node(&workspace);
    let second = mounted.join("..v2");
    copy_folder(&workspace.certs, &second);
    std::os::unix::fs::symlink("..v2", mounted.join("..data.tmp")).expect("link new data");
    std::fs::rename(mounted.join("..data.tmp"), mounted.join("..data")).expect("swap data");

    let new_serial = file_serial(&workspace.path("node.crt"));
    wait_for(
        "the poll to follow the swapped folder",
        Duration::from_secs(10),
        || node.sql_serial() == new_serial,
    );
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

#[test]
fn ca_removal_closes_untrusted_sessions() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let old_ca = std::fs::read_to_string(workspace.path("ca.crt")).expect("read ca.crt");
    std::fs::rename(
        &workspace.ca_key,
        workspace.ca_key.with_file_name("ca.old.key"),
    )
    .expect("rename");
    workspace.cert_ok(&["create-ca", "--overwrite"]);
    node.reload();
    rotate_node(&workspace);
    workspace.cert_ok(&["create-client", "alice"]);
    node.reload();
    let mut old_session = PsqlSession::open(&node, "root");
    let mut new_session = PsqlSession::open(&node, "alice");
    assert_eq!(old_session.query("SELECT 1;"), "1");
    assert_eq!(new_session.query("SELECT 1;"), "1");

    let combined = std::fs::read_to_string(workspace.path("ca.crt")).expect("read ca.crt");
    let new_only = combined.replace(&old_ca, "");
    std::fs::write(workspace.path("ca.crt"), new_only).expect("write ca.crt");
    let event = node.reload();

    assert!(event.contains("result=\"success\""), "{event}");
    assert!(event.contains("sessions_closed=1"), "{event}");
    assert_eq!(
        old_session.query("SELECT 2;"),
        "",
        "the old-CA session still answers"
    );
    assert_eq!(new_session.query("SELECT 2;"), "2");
    assert!(
        node.log_text().contains("closing SQL session"),
        "{}",
        node.log_text()
    );
    let refused = node.psql("root", "SELECT 3");
    assert!(
        !refused.status.success(),
        "an old-CA client connected after its CA was removed"
    );
}

#[test]
fn keep_sessions_flag_keeps_them() {
    let workspace = Workspace::with_certs();
    let node = Node::start_with(
        &workspace.certs,
        workspace.dir.path(),
        &["--keep-sessions-on-ca-removal"],
    );
    let old_ca = std::fs::read_to_string(workspace.path("ca.crt")).expect("read ca.crt");
    std::fs::rename(
        &workspace.ca_key,
        workspace.ca_key.with_file_name("ca.old.key"),
    )
    .expect("rename");
    workspace.cert_ok(&["create-ca", "--overwrite"]);
    node.reload();
    rotate_node(&workspace);
    node.reload();
    let mut old_session = PsqlSession::open(&node, "root");
    assert_eq!(old_session.query("SELECT 1;"), "1");

    let combined = std::fs::read_to_string(workspace.path("ca.crt")).expect("read ca.crt");
    std::fs::write(workspace.path("ca.crt"), combined.replace(&old_ca, "")).expect("write ca.crt");
    let event = node.reload();

    assert!(event.contains("sessions_closed=0"), "{event}");
    assert_eq!(old_session.query("SELECT 2;"), "2");
}
