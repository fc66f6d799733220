//! What the node logs about rejected connections: the peer and reason, rate-limited.

mod common;

use std::process::Command;

use common::Workspace;

#[test]
fn rejected_connections_are_logged_with_reason() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let conninfo = node
        .conninfo("root", &workspace.certs)
        .replace("user=root", "user=alice");

    let output = Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .expect("psql");

    assert!(!output.status.success());
    let log = node.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("connection rejected"))
        .expect("a rejection line");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(
        line.contains("user=\"alice\"") || line.contains("user=alice"),
        "{line}"
    );
    assert!(line.contains("certificate is for"), "{line}");
    assert!(
        !log.contains("PRIVATE KEY"),
        "the log contains key material"
    );
}

#[test]
fn rejections_are_rate_limited() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let plaintext = format!(
        "host=127.0.0.1 port={} user=root dbname=defaultdb sslmode=disable",
        node.sql_port
    );

    for _ in 0..30 {
        let output = Command::new("psql")
            .arg(&plaintext)
            .args(["-X", "-c", "SELECT 1"])
            .output()
            .expect("psql");
        assert!(!output.status.success());
    }

    let logged = node
        .log_text()
        .lines()
        .filter(|line| line.contains("connection rejected"))
        .count();
    assert_eq!(logged, 20, "{}", node.log_text());
}
