//! Test harness: a certs folder made with the real `tumbler cert`, a node started as a child
//! process on free loopback ports, and the real clients (psql, openssl, curl) pointed at it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// A temporary folder with `certs/` and a separate `safe/ca.key`.
pub struct Workspace {
    pub dir: TempDir,
    pub certs: PathBuf,
    pub ca_key: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let certs = dir.path().join("certs");
        let ca_key = dir.path().join("safe").join("ca.key");
        Self { dir, certs, ca_key }
    }

    /// A workspace with a CA, a node certificate for loopback, and a root client certificate.
    pub fn with_certs() -> Self {
        let workspace = Self::new();
        workspace.cert_ok(&["create-ca"]);
        workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "::1"]);
        workspace.cert_ok(&["create-client", "root"]);
        workspace
    }

    /// Runs `tumbler cert ARGS --certs-dir --ca-key`.
    pub fn cert(&self, args: &[&str]) -> Output {
        Command::new(tumbler_bin())
            .arg("cert")
            .args(args)
            .arg(format!("--certs-dir={}", self.certs.display()))
            .arg(format!("--ca-key={}", self.ca_key.display()))
            .output()
            .expect("run tumbler cert")
    }

    /// Runs `tumbler cert ARGS` and fails the test when it fails.
    pub fn cert_ok(&self, args: &[&str]) -> Output {
        let output = self.cert(args);
        assert!(
            output.status.success(),
            "tumbler cert {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.certs.join(name)
    }

    /// Starts a node on this workspace's certs folder.
    pub fn start_node(&self) -> Node {
        Node::start(&self.certs, self.dir.path())
    }
}

pub fn tumbler_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tumbler")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A node child process, stopped by its PID when dropped.
pub struct Node {
    pub child: Child,
    pub sql_port: u16,
    pub http_port: u16,
    pub certs: PathBuf,
    pub log: PathBuf,
}

impl Node {
    /// Starts a node and waits until `/health` responds.
    pub fn start(certs: &Path, scratch: &Path) -> Self {
        Self::start_with(certs, scratch, &[])
    }

    /// Starts a node with extra `tumbler start` flags and waits until `/health` responds. The
    /// node binds port 0 and reports the ports the kernel gave it, so parallel tests never
    /// race for a port.
    pub fn start_with(certs: &Path, scratch: &Path, flags: &[&str]) -> Self {
        let spawned = spawn_node_with(certs, scratch, flags);
        let mut node = Self {
            child: spawned.child,
            sql_port: 0,
            http_port: 0,
            certs: certs.to_owned(),
            log: spawned.log,
        };
        node.wait_for_addrs(&spawned.addrs_file);
        node.wait_ready();
        node
    }

    fn wait_for_addrs(&mut self, addrs_file: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("query child") {
                panic!(
                    "node exited during start-up ({status}); log:\n{}",
                    self.log_text()
                );
            }
            if let Ok(text) = std::fs::read_to_string(addrs_file) {
                let port = |key: &str| {
                    text.lines()
                        .find_map(|line| line.strip_prefix(key))
                        .and_then(|addr| addr.rsplit_once(':'))
                        .and_then(|(_, port)| port.parse().ok())
                };
                if let (Some(sql), Some(http)) = (port("sql="), port("http=")) {
                    self.sql_port = sql;
                    self.http_port = http;
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node did not report its ports; log:\n{}", self.log_text());
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    pub fn sighup(&self) {
        kill(self.pid(), Signal::SIGHUP).expect("send SIGHUP");
    }

    /// Sends SIGHUP and waits until the log shows one more reload event than before.
    pub fn reload(&self) -> String {
        let before = self.reload_events().len();
        self.sighup();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let events = self.reload_events();
            if events.len() > before {
                return events[before].clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no reload event within 10 s; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn reload_events(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|line| {
                line.contains("event=\"certs_reload\"") || line.contains("event=certs_reload")
            })
            .map(str::to_owned)
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query child").is_none()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("query child") {
                panic!(
                    "node exited during start-up ({status}); log:\n{}",
                    self.log_text()
                );
            }
            let ok = Command::new("curl")
                .args(["-sf", "--max-time", "2", "--cacert"])
                .arg(self.certs.join("ca.crt"))
                .arg(format!("https://127.0.0.1:{}/health", self.http_port))
                .output()
                .is_ok_and(|output| output.status.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node did not become ready; log:\n{}", self.log_text());
    }

    /// `psql` connection string for `user` with that user's files in `certs`.
    pub fn conninfo(&self, user: &str, certs: &Path) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=defaultdb sslmode=verify-full \
             sslrootcert={} sslcert={} sslkey={} connect_timeout=10",
            self.sql_port,
            certs.join("ca.crt").display(),
            certs.join(format!("client.{user}.crt")).display(),
            certs.join(format!("client.{user}.key")).display(),
        )
    }

    /// Runs one psql command as `user` with the files in the node's certs folder.
    pub fn psql(&self, user: &str, sql: &str) -> Output {
        self.psql_with(user, &self.certs, sql)
    }

    pub fn psql_with(&self, user: &str, certs: &Path, sql: &str) -> Output {
        Command::new("psql")
            .arg(self.conninfo(user, certs))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql")
    }

    /// The serial of the certificate the SQL port serves, read with `openssl s_client`.
    pub fn sql_serial(&self) -> String {
        served_serial(self.sql_port, &["-starttls", "postgres"])
    }

    /// The serial of the certificate the admin port serves.
    pub fn admin_serial(&self) -> String {
        served_serial(self.http_port, &[])
    }

    /// `GET path` on the admin port with curl and root's client certificate; fails the test
    /// unless the response is a success.
    pub fn root_get(&self, path: &str) -> Vec<u8> {
        let output = Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(self.certs.join("ca.crt"))
            .arg("--cert")
            .arg(self.certs.join("client.root.crt"))
            .arg("--key")
            .arg(self.certs.join("client.root.key"))
            .arg(format!("https://127.0.0.1:{}{path}", self.http_port))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "GET {path} failed: {}",
            stderr(&output)
        );
        output.stdout
    }

    /// `GET /_status/certificates/local` as root, parsed.
    pub fn status(&self) -> serde_json::Value {
        let body = self.root_get("/_status/certificates/local");
        serde_json::from_slice(&body).expect("status API returns JSON")
    }

    /// The certificates of one type in the status API.
    pub fn status_fields(&self, kind: &str) -> Vec<serde_json::Value> {
        let status = self.status();
        status["certificates"]
            .as_array()
            .expect("certificates list")
            .iter()
            .filter(|entry| entry["type"] == kind)
            .flat_map(|entry| entry["fields"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid(), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `tumbler start` process that was just spawned.
pub struct Spawned {
    pub child: Child,
    pub log: PathBuf,
    /// Where the node writes its bound addresses once it listens.
    pub addrs_file: PathBuf,
}

/// Spawns `tumbler start` on port 0 for both listeners without waiting for it.
pub fn spawn_node(certs: &Path, scratch: &Path) -> Spawned {
    spawn_node_with(certs, scratch, &[])
}

/// Spawns `tumbler start` with extra flags without waiting for it.
pub fn spawn_node_with(certs: &Path, scratch: &Path, flags: &[&str]) -> Spawned {
    spawn_node_configured(certs, scratch, flags, &[])
}

/// Spawns `tumbler start` with extra flags and environment variables, both listeners on port 0,
/// without waiting for it.
fn spawn_node_configured(
    certs: &Path,
    scratch: &Path,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Spawned {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let log = scratch.join(format!("node-{id}.log"));
    let addrs_file = scratch.join(format!("node-{id}.addrs"));
    let log_file = std::fs::File::create(&log).expect("create node log");
    let child = Command::new(tumbler_bin())
        .arg("start")
        .arg(format!("--certs-dir={}", certs.display()))
        .arg(format!(
            "--store={}",
            scratch.join(format!("store-{id}")).display()
        ))
        .arg("--listen-addr=127.0.0.1:0")
        .arg("--http-addr=127.0.0.1:0")
        .arg(format!("--listening-addrs-file={}", addrs_file.display()))
        .args(flags)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start node");
    Spawned {
        child,
        log,
        addrs_file,
    }
}

/// Runs `tumbler start` expecting it to fail, and returns its exit status and stderr.
pub fn start_expecting_failure(certs: &Path, scratch: &Path) -> (std::process::ExitStatus, String) {
    spawn_and_wait_exit(certs, scratch, &[])
}

pub fn served_serial(port: u16, extra: &[&str]) -> String {
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(&s_client.stdout)
        .expect("write certificate");
    let output = x509.wait_with_output().expect("openssl x509 output");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .strip_prefix("serial=")
        .unwrap_or_default()
        .to_uppercase()
}

/// The serial of a certificate file, read with `openssl x509`.
pub fn file_serial(path: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .expect("run openssl x509");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .strip_prefix("serial=")
        .unwrap_or_default()
        .to_uppercase()
}

/// A long-lived psql session that reads statements from its stdin.
pub struct PsqlSession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PsqlSession {
    pub fn open(node: &Node, user: &str) -> Self {
        let mut child = Command::new("psql")
            .arg(node.conninfo(user, &node.certs))
            .args(["-X", "-At", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start psql");
        let stdin = child.stdin.take().expect("psql stdin");
        let stdout = BufReader::new(child.stdout.take().expect("psql stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one statement and returns the first line of its output.
    pub fn query(&mut self, sql: &str) -> String {
        writeln!(self.stdin, "{sql}").expect("write to psql");
        self.stdin.flush().expect("flush psql");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from psql");
        line.trim().to_owned()
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "\\q");
        let _ = self.child.wait();
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `tumbler cert list --certs-dir=CERTS`, which takes no `--ca-key`.
pub fn cert_list(certs: &Path) -> Output {
    Command::new(tumbler_bin())
        .args(["cert", "list"])
        .arg(format!("--certs-dir={}", certs.display()))
        .output()
        .expect("run tumbler cert list")
}

/// Runs `openssl ARGS` and returns its output, whatever its exit status.
pub fn openssl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

/// Reads a certificate file's Not After with `openssl x509 -enddate`.
pub fn file_not_after(path: &Path) -> time::OffsetDateTime {
    file_date(path, "-enddate", "notAfter=")
}

/// Reads a certificate file's Not Before with `openssl x509 -startdate`.
pub fn file_not_before(path: &Path) -> time::OffsetDateTime {
    file_date(path, "-startdate", "notBefore=")
}

/// Reads one date of the first certificate in `path`. With `-dateopt iso_8601`, OpenSSL
/// 3.0.19 prints it as `2026-03-01 12:00:00Z`.
fn file_date(path: &Path, flag: &str, prefix: &str) -> time::OffsetDateTime {
    let output = Command::new("openssl")
        .args(["x509", "-noout", flag, "-dateopt", "iso_8601", "-in"])
        .arg(path)
        .output()
        .expect("run openssl x509");
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "openssl x509 {flag} failed on {}: {}",
        path.display(),
        stderr(&output)
    );
    let value = text
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("openssl printed no {prefix}: {text}"));
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(value, &format)
        .unwrap_or_else(|error| panic!("cannot parse {value:?}: {error}"))
        .assume_utc()
}

/// Spawns `tumbler start` with `flags`, expecting it to exit, and returns its status and log.
pub fn spawn_and_wait_exit(
    certs: &Path,
    scratch: &Path,
    flags: &[&str],
) -> (std::process::ExitStatus, String) {
    let Spawned { mut child, log, .. } = spawn_node_with(certs, scratch, flags);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("query child") {
            return (status, std::fs::read_to_string(log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node under load for reload tests: a loop of new TLS connections (psql, each one a full
/// handshake and a query) and a long-lived SQL session run while the test changes files and
/// triggers reloads. [`ReloadHarness::finish`] stops the load and returns what it saw.
pub struct ReloadHarness {
    pub node: Node,
    pub session: PsqlSession,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connector: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

/// What the load saw between start and finish.
pub struct LoadReport {
    pub connections_ok: u64,
    pub connection_errors: Vec<String>,
    pub session_ok: bool,
}

impl ReloadHarness {
    /// Starts a node on `certs` with `flags` and the load against it, as user `root`.
    pub fn start(certs: &Path, scratch: &Path, flags: &[&str]) -> Self {
        let node = Node::start_with(certs, scratch, flags);
        let mut session = PsqlSession::open(&node, "root");
        assert_eq!(
            session.query("SELECT 1;"),
            "1",
            "the long-lived session does not answer"
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conninfo = node.conninfo("root", certs);
        let flag = stop.clone();
        let connector = std::thread::spawn(move || {
            let (mut ok, mut errors) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let output = Command::new("psql")
                    .arg(&conninfo)
                    .args(["-X", "-At", "-c", "SELECT 1"])
                    .output()
                    .expect("run psql");
                if output.status.success() {
                    ok += 1;
                } else {
                    errors.push(stderr(&output));
                }
            }
            (ok, errors)
        });
        Self {
            node,
            session,
            stop,
            connector: Some(connector),
        }
    }

    /// Stops the load and reports it; the long-lived session must still respond.
    pub fn finish(&mut self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (connections_ok, connection_errors) = self
            .connector
            .take()
            .map(|thread| thread.join().expect("load thread"))
            .unwrap_or_default();
        let session_ok = self.session.query("SELECT 42;") == "42";
        LoadReport {
            connections_ok,
            connection_errors,
            session_ok,
        }
    }
}

impl Drop for ReloadHarness {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.connector.take() {
            let _ = thread.join();
        }
    }
}

impl Node {
    /// Spawns `tumbler start` with extra environment variables and returns at once, before the
    /// node listens; call [`Node::wait_until_ready`] before using its ports.
    pub fn spawn(certs: &Path, scratch: &Path, env: &[(&str, &str)]) -> Self {
        let spawned = spawn_node_with_env(certs, scratch, env);
        Self {
            child: spawned.child,
            sql_port: 0,
            http_port: 0,
            certs: certs.to_owned(),
            log: spawned.log,
        }
    }

    /// Waits until a node from [`Node::spawn`] reports its ports and `/health` responds, and
    /// fails the test if the node exits first.
    pub fn wait_until_ready(&mut self) {
        let addrs_file = self.log.with_extension("addrs");
        self.wait_for_addrs(&addrs_file);
        self.wait_ready();
    }

    /// Returns whether `GET /health` succeeds within 2 s.
    pub fn health_ok(&self) -> bool {
        Command::new("curl")
            .args(["-sf", "--max-time", "2", "--cacert"])
            .arg(self.certs.join("ca.crt"))
            .arg(format!("https://127.0.0.1:{}/health", self.http_port))
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// `GET /_status/vars` as root: the metrics in Prometheus text form.
    pub fn metrics(&self) -> String {
        String::from_utf8_lossy(&self.root_get("/_status/vars")).into_owned()
    }
}

/// Spawns `tumbler start` on port 0 with extra environment variables without waiting for it.
pub fn spawn_node_with_env(certs: &Path, scratch: &Path, env: &[(&str, &str)]) -> Spawned {
    spawn_node_configured(certs, scratch, &[], env)
}

/// Runs `tumbler cert list --format=json` and returns its exit code and rows.
pub fn cert_list_json(certs: &Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let output = Command::new(tumbler_bin())
        .args(["cert", "list", "--format=json"])
        .arg(format!("--certs-dir={}", certs.display()))
        .output()
        .expect("run tumbler cert list");
    let rows = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "cert list printed no JSON ({error}):\n{}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output.status.code(), rows)
}
