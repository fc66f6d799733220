//! SQL through a running node over TLS with client certificates: psql and pgbench.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{Node, Workspace, file_serial, stderr, stdout};

/// Runs `sql` with psql as root and fails the test when psql fails.
fn psql_ok(node: &Node, sql: &str) -> String {
    let output = node.psql("root", sql);
    assert!(
        output.status.success(),
        "psql {sql:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Creates the table the pgbench script writes to.
fn create_bench_table(node: &Node) {
    psql_ok(
        node,
        "CREATE TABLE bench (client INTEGER NOT NULL, note TEXT)",
    );
}

/// One insert and one read per transaction. `:client_id` is pgbench's number of the client.
const BENCH_SCRIPT: &str = "INSERT INTO bench (client, note) VALUES (:client_id, 'pgbench');
SELECT count(*) FROM bench WHERE client = :client_id;
";

fn write_script(workspace: &Workspace) -> PathBuf {
    let script = workspace.dir.path().join("bench.sql");
    std::fs::write(&script, BENCH_SCRIPT).expect("write pgbench script");
    script
}

/// Builds a pgbench command for root that reads the node's address and TLS files from
/// libpq's environment variables.
fn pgbench_with_env(node: &Node, certs: &Path) -> Command {
    let mut command = Command::new("pgbench");
    command
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", node.sql_port.to_string())
        .env("PGUSER", "root")
        .env("PGDATABASE", "defaultdb")
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", certs.join("ca.crt"))
        .env("PGSSLCERT", certs.join("client.root.crt"))
        .env("PGSSLKEY", certs.join("client.root.key"))
        .env("PGCONNECT_TIMEOUT", "10");
    command
}

/// The numbers of pgbench's summary that the tests check.
#[derive(Debug)]
struct Summary {
    processed: Option<u64>,
    failed: Option<u64>,
}

/// Reads the first number after `label` on a line of the summary, such as `200` in
/// `number of transactions actually processed: 200/200`.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = text
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn summary(output: &Output) -> Summary {
    let text = stdout(output);
    Summary {
        processed: number_after(&text, "number of transactions actually processed:"),
        failed: number_after(&text, "number of failed transactions:"),
    }
}

/// Asserts that pgbench exited 0 and that no transaction failed, and returns its summary.
fn assert_pgbench_ok(output: &Output) -> Summary {
    let report = format!("{}{}", stdout(output), stderr(output));
    assert!(output.status.success(), "pgbench failed:\n{report}");
    let summary = summary(output);
    // pgbench 15.18 prints the failed count. The check is skipped for a pgbench that does not.
    if report.contains("number of failed transactions") {
        assert_eq!(summary.failed, Some(0), "failed transactions:\n{report}");
    }
    summary
}

fn count_rows(node: &Node) -> String {
    psql_ok(node, "SELECT count(*) FROM bench")
        .trim()
        .to_owned()
}

#[test]
fn psql_runs_several_statements() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let printed = psql_ok(
        &node,
        "CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
         INSERT INTO fruit (id, name) VALUES (1, 'apple'), (2, 'pear'); \
         INSERT INTO fruit (id, name) VALUES (3, 'plum'); \
         SELECT id, name FROM fruit ORDER BY id",
    );

    let rows: Vec<&str> = printed.lines().filter(|line| line.contains('|')).collect();
    assert_eq!(
        rows,
        ["1|apple", "2|pear", "3|plum"],
        "psql output:\n{printed}"
    );
}

#[test]
fn failed_statement_rolls_back_query() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    psql_ok(&node, "CREATE TABLE ids (id INTEGER PRIMARY KEY)");

    let output = node.psql(
        "root",
        "INSERT INTO ids (id) VALUES (1); INSERT INTO ids (id) VALUES (1); \
         INSERT INTO ids (id) VALUES (2)",
    );

    assert!(
        !output.status.success(),
        "duplicate key was accepted:\n{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("UNIQUE"),
        "error does not name the constraint: {}",
        stderr(&output)
    );
    // One Query message with several statements runs as one implicit transaction.
    assert_eq!(
        psql_ok(&node, "SELECT count(*) FROM ids").trim(),
        "0",
        "rows of the failed query were kept"
    );
}

#[test]
fn rows_persist_across_connections() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    psql_ok(
        &node,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    );
    psql_ok(&node, "INSERT INTO notes (id, body) VALUES (1, 'first')");
    psql_ok(&node, "INSERT INTO notes (id, body) VALUES (2, 'second')");
    let printed = psql_ok(&node, "SELECT id, body FROM notes ORDER BY id");

    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        ["1|first", "2|second"],
        "psql output:\n{printed}"
    );
}

#[test]
fn pgbench_simple_with_env_vars() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    create_bench_table(&node);
    let script = write_script(&workspace);

    let output = pgbench_with_env(&node, &workspace.certs)
        .args(["-n", "-c", "4", "-t", "50", "-f"])
        .arg(&script)
        .output()
        .expect("run pgbench");

    let summary = assert_pgbench_ok(&output);
    assert_eq!(
        summary.processed,
        Some(200),
        "processed transactions:\n{}",
        stdout(&output)
    );
    assert_eq!(count_rows(&node), "200", "rows written by pgbench");
}

#[test]
fn pgbench_modes_with_conninfo() {
    for mode in ["extended", "prepared"] {
        let workspace = Workspace::with_certs();
        let node = workspace.start_node();
        create_bench_table(&node);
        let script = write_script(&workspace);

        let output = Command::new("pgbench")
            .args(["-n", "-c", "4", "-t", "50", "-M", mode, "-f"])
            .arg(&script)
            .arg(node.conninfo("root", &workspace.certs))
            .output()
            .expect("run pgbench");

        let summary = assert_pgbench_ok(&output);
        assert_eq!(
            summary.processed,
            Some(200),
            "-M {mode} processed transactions:\n{}",
            stdout(&output)
        );
        assert_eq!(
            count_rows(&node),
            "200",
            "-M {mode} rows written by pgbench"
        );
    }
}

/// pgbench running in the background, with its output going to files so that a long error
/// report cannot fill a pipe and stall it.
struct BackgroundPgbench {
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl BackgroundPgbench {
    /// Starts pgbench for `seconds` with four clients and the flags in `extra`.
    fn spawn(workspace: &Workspace, node: &Node, seconds: u32, extra: &[&str]) -> Self {
        let script = write_script(workspace);
        let stdout_path = workspace.dir.path().join("pgbench.out");
        let stderr_path = workspace.dir.path().join("pgbench.err");
        let child = pgbench_with_env(node, &workspace.certs)
            .args(["-n", "-c", "4", "-T", &seconds.to_string()])
            .args(extra)
            .arg("-f")
            .arg(&script)
            .stdout(std::fs::File::create(&stdout_path).expect("create pgbench.out"))
            .stderr(std::fs::File::create(&stderr_path).expect("create pgbench.err"))
            .spawn()
            .expect("start pgbench");
        Self {
            child,
            stdout_path,
            stderr_path,
        }
    }

    /// Waits up to `timeout` for pgbench to exit and returns its output. When pgbench runs
    /// longer, kills it by its PID and fails the test.
    fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("query pgbench") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "pgbench still running after {timeout:?}:\n{}",
                    std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: std::fs::read(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read(&self.stderr_path).unwrap_or_default(),
        }
    }
}

impl Drop for BackgroundPgbench {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Rotates the node certificate while pgbench runs and checks that the node serves the new one.
fn rotate_node_during(workspace: &Workspace, node: &Node) {
    std::thread::sleep(Duration::from_secs(2));
    let old_serial = node.sql_serial();

    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);
    let event = node.reload();

    assert!(
        event.contains("result=\"success\""),
        "reload event: {event}"
    );
    let new_serial = file_serial(&workspace.path("node.crt"));
    assert_ne!(new_serial, old_serial, "node.crt kept its serial");
    assert_eq!(node.sql_serial(), new_serial, "serial served after reload");
}

#[test]
fn pgbench_survives_node_rotation() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    create_bench_table(&node);
    let pgbench = BackgroundPgbench::spawn(&workspace, &node, 6, &[]);

    rotate_node_during(&workspace, &node);

    let output = pgbench.wait(Duration::from_secs(60));
    let summary = assert_pgbench_ok(&output);
    assert!(
        summary.processed.is_some_and(|count| count > 0),
        "pgbench processed nothing:\n{}",
        stdout(&output)
    );
}

#[test]
fn pgbench_reconnects_across_rotation() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    create_bench_table(&node);
    // -C opens a new connection for every transaction, so handshakes span the reload.
    let pgbench = BackgroundPgbench::spawn(&workspace, &node, 6, &["-C"]);

    rotate_node_during(&workspace, &node);

    let output = pgbench.wait(Duration::from_secs(60));
    let summary = assert_pgbench_ok(&output);
    assert!(
        summary.processed.is_some_and(|count| count > 0),
        "pgbench processed nothing:\n{}",
        stdout(&output)
    );
}

#[test]
fn user_name_case_is_normalized() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    for user in ["ROOT", "Root"] {
        let conninfo = node
            .conninfo("root", &workspace.certs)
            .replace("user=root", &format!("user={user}"));

        let output = Command::new("psql")
            .arg(conninfo)
            .args(["-X", "-At", "-c", "SELECT 'connected'"])
            .output()
            .expect("run psql");

        assert!(
            output.status.success(),
            "psql as {user} failed: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output).trim(), "connected", "psql as {user}");
    }
}

#[test]
fn psql_verifies_host_name() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let by_name = node
        .conninfo("root", &workspace.certs)
        .replace("host=127.0.0.1", "host=localhost");
    let run_psql = || {
        Command::new("psql")
            .arg(&by_name)
            .args(["-X", "-At", "-c", "SELECT 'by name'"])
            .output()
            .expect("run psql")
    };

    let with_name = run_psql();
    assert!(
        with_name.status.success(),
        "psql to localhost failed: {}",
        stderr(&with_name)
    );

    workspace.cert_ok(&["create-node", "127.0.0.1", "--overwrite"]);
    let event = node.reload();
    assert!(
        event.contains("result=\"success\""),
        "reload event: {event}"
    );

    let without_name = run_psql();
    assert!(
        !without_name.status.success(),
        "psql accepted a node certificate without localhost"
    );
    assert!(
        stderr(&without_name).contains("does not match host name"),
        "psql error does not name the host mismatch: {}",
        stderr(&without_name)
    );
}
