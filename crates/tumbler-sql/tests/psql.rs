//! The handlers driven by the real psql client (/usr/bin/psql).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::{CLIENT_TIMEOUT, TestServer};
use tokio::process::Command;

const PSQL: &str = "/usr/bin/psql";

/// Runs psql with `-c sql` (and `ON_ERROR_STOP`, no psqlrc) and returns its output.
async fn psql(server: &TestServer, extra: &[&str], sql: &str) -> Output {
    let mut command = Command::new(PSQL);
    command
        .arg(server.conninfo())
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(extra)
        .args(["-c", sql])
        .kill_on_drop(true);
    tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .expect("psql finished in time")
        .expect("psql started")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_single_select() {
    let server = TestServer::start().await;
    let output = psql(
        &server,
        &["-A", "-t"],
        "SELECT 1 + 1, 'two', version() LIKE 'PostgreSQL%'",
    )
    .await;
    assert!(output.status.success(), "psql failed: {}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "2|two|1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_multi_statement_tags() {
    let server = TestServer::start().await;
    let sql = "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2); \
               UPDATE t SET a = a + 1; SELECT sum(a) AS total FROM t; DELETE FROM t; \
               BEGIN; INSERT INTO t VALUES (5); COMMIT; SET datestyle TO ISO";
    let output = psql(&server, &["-A"], sql).await;
    assert!(output.status.success(), "psql failed: {}", stderr(&output));
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            "CREATE TABLE",
            "INSERT 0 2",
            "UPDATE 2",
            "total",
            "5",
            "(1 row)",
            "DELETE 2",
            "BEGIN",
            "INSERT 0 1",
            "COMMIT",
            "SET",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_error_exit_status() {
    let server = TestServer::start().await;
    let output = psql(&server, &[], "SELECT * FROM missing").await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ERROR:  no such table: missing"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_show_and_empty_query() {
    let server = TestServer::start().await;
    let output = psql(&server, &["-A", "-t"], "SHOW server_version").await;
    assert_eq!(stdout(&output).trim(), "13.0");
    let output = psql(&server, &[], ";").await;
    assert!(output.status.success(), "psql failed: {}", stderr(&output));
}
