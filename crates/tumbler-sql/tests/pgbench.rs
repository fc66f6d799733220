//! The handlers under load from the real pgbench client (/usr/bin/pgbench) with a custom
//! script, in each of pgbench's query modes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{CLIENT_TIMEOUT, TestServer};
use tokio::process::Command;

const PGBENCH: &str = "/usr/bin/pgbench";

const ACCOUNTS: i64 = 100;

/// One transfer: a read-modify-write transaction like pgbench's built-in TPC-B script.
const SCRIPT: &str = "\\set id random(1, 100)
\\set delta random(-500, 500)
BEGIN;
UPDATE accounts SET balance = balance + :delta WHERE id = :id;
SELECT balance FROM accounts WHERE id = :id;
INSERT INTO history (account, delta) VALUES (:id, :delta);
END;
";

/// pgbench's summary lines that the tests read.
#[derive(Debug)]
struct Report {
    processed: i64,
    failed: Option<i64>,
    tps: String,
    text: String,
}

fn parse_report(text: &str) -> Report {
    let number_after = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.split('/').next())
            .and_then(|value| value.parse::<i64>().ok())
    };
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps ="))
        .unwrap_or("tps not reported")
        .to_owned();
    Report {
        processed: number_after("number of transactions actually processed:").unwrap_or(0),
        failed: number_after("number of failed transactions:"),
        tps,
        text: text.to_owned(),
    }
}

async fn prepare_tables(server: &TestServer) {
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE history (id INTEGER PRIMARY KEY, account INTEGER NOT NULL,
                                   delta INTEGER NOT NULL);",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO accounts (id, balance) VALUES ($1, 0)")
        .await
        .unwrap();
    for id in 1..=ACCOUNTS {
        client.execute(&insert, &[&id]).await.unwrap();
    }
}

/// Runs pgbench for three seconds with four clients in `mode` and returns its report.
async fn run_pgbench(server: &TestServer, mode: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("transfer.sql");
    std::fs::write(&script, SCRIPT).unwrap();
    let port = server.port.to_string();
    let mut command = Command::new(PGBENCH);
    command
        .args(["-n", "-c", "4", "-j", "2", "-T", "3", "-M", mode])
        .arg("-f")
        .arg(&script)
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "bench", "defaultdb"])
        .env("PGSSLMODE", "disable")
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .expect("pgbench finished in time")
        .expect("pgbench started");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pgbench failed:\n{text}");
    parse_report(&text)
}

async fn check_mode(mode: &str) {
    let server = TestServer::start().await;
    prepare_tables(&server).await;
    let report = run_pgbench(&server, mode).await;
    eprintln!(
        "pgbench -M {mode}, 4 clients, 3 s: {} transactions, {}",
        report.processed, report.tps
    );
    assert!(report.processed > 0, "no transactions:\n{}", report.text);
    assert_eq!(
        report.failed,
        Some(0),
        "failed transactions:\n{}",
        report.text
    );

    let client = server.connect().await;
    let history: i64 = client
        .query_one("SELECT count(*) FROM history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        history, report.processed,
        "one history row per committed transaction"
    );
    let balance: i64 = client
        .query_one(
            "SELECT (SELECT total(balance) FROM accounts) = (SELECT total(delta) FROM history)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(balance, 1, "balances add up to the recorded deltas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_simple_protocol() {
    check_mode("simple").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_extended_protocol() {
    check_mode("extended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_statements() {
    check_mode("prepared").await;
}
