//! Rotations under load: each step changes files, triggers a reload, and checks the served
//! serial, the status API, the reload event and that no handshake or query failed.

mod common;

use common::{ReloadHarness, Workspace, file_serial};

/// Checks one reload step: the event's result, and that both ports and the status API serve
/// `serial`.
fn assert_step(harness: &ReloadHarness, event: &str, result: &str, serial: &str) {
    assert!(event.contains(&format!("result=\"{result}\"")), "{event}");
    assert_eq!(harness.node.sql_serial(), serial, "SQL port after: {event}");
    assert_eq!(
        harness.node.admin_serial(),
        serial,
        "admin port after: {event}"
    );
    let status = harness.node.status_fields("NODE");
    assert_eq!(status[0]["serial"], serial, "status API after: {event}");
}

#[test]
fn full_rotation_under_load() {
    let workspace = Workspace::with_certs();
    let mut harness = ReloadHarness::start(&workspace.certs, workspace.dir.path(), &[]);

    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let event = harness.node.reload();
    assert_step(
        &harness,
        &event,
        "success",
        &file_serial(&workspace.path("node.crt")),
    );

    let served = file_serial(&workspace.path("node.crt"));
    std::fs::write(workspace.path("node.key"), b"not a key").expect("break node.key");
    let event = harness.node.reload();
    assert_step(&harness, &event, "failure", &served);

    std::fs::rename(
        &workspace.ca_key,
        workspace.ca_key.with_file_name("ca.old.key"),
    )
    .expect("rename");
    workspace.cert_ok(&["create-ca", "--overwrite"]);
    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let event = harness.node.reload();
    assert_step(
        &harness,
        &event,
        "success",
        &file_serial(&workspace.path("node.crt")),
    );
    assert!(event.contains("ca_count=2"), "{event}");

    workspace.cert_ok(&["create-client", "root", "--overwrite"]);
    let event = harness.node.reload();
    assert!(event.contains("result=\"success\""), "{event}");

    let report = harness.finish();
    assert!(
        report.session_ok,
        "the long-lived session stopped answering"
    );
    assert!(
        report.connection_errors.is_empty(),
        "{:?}",
        report.connection_errors
    );
    assert!(
        report.connections_ok > 5,
        "only {} connections were made",
        report.connections_ok
    );
}
