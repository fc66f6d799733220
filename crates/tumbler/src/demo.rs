//! `tumbler demo`: the documented rotation, run live against a local node.
//!
//! The demo creates a CA, node and client certificates in a temporary folder, starts a node as
//! a child process on free loopback ports, and keeps a SQL workload running while it rotates
//! the client certificate, the node certificate (SIGHUP), and the CA (combined `ca.crt`,
//! SIGHUP, new leaves, SIGHUP). The workload's new connections pick up rotated files through
//! [`ClientCertReloader`]; open connections keep working throughout.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::task::JoinSet;
use tumbler_tls::client::ClientCertReloader;

use crate::admin_client::AdminClient;
use crate::pgclient::ReloadingConnector;

/// Persistent SQL sessions the workload keeps busy.
const SESSIONS: usize = 4;
/// Pause between two statements of one session.
const STATEMENT_PAUSE: Duration = Duration::from_millis(25);
/// Pause between two short-lived connections.
const NEW_CONNECTION_PAUSE: Duration = Duration::from_millis(300);
/// How long the workload runs between rotation steps.
const STEP_PAUSE: Duration = Duration::from_secs(4);
/// The workload's SQL user.
const APP_USER: &str = "app";

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Leave the node running at the end and print the psql command line to reach it.
    #[arg(long)]
    keep: bool,
}

/// Counters of the workload.
#[derive(Debug, Default)]
struct Stats {
    queries_ok: AtomicU64,
    queries_failed: AtomicU64,
    connections_ok: AtomicU64,
    connections_refused: AtomicU64,
}

/// Paths of the demo's folders and files.
#[derive(Debug)]
struct Layout {
    root: PathBuf,
    certs: PathBuf,
    ca_key: PathBuf,
    store: PathBuf,
    /// File the node writes the ports of its listeners to.
    addrs_file: PathBuf,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let root = std::env::temp_dir().join(format!("tumbler-demo-{}", std::process::id()));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let layout = Layout {
        certs: root.join("certs"),
        ca_key: root.join("my-safe-directory").join("ca.key"),
        store: root.join("data"),
        addrs_file: root.join("node.addrs"),
        root,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(&layout, args.keep))
}

async fn demo(layout: &Layout, keep: bool) -> anyhow::Result<ExitCode> {
    println!("== tumbler demo in {}", layout.root.display());
    step("Create the CA, node and client certificates");
    cert(layout, &["create-ca"])?;
    cert(layout, &["create-node", "localhost", "127.0.0.1"])?;
    cert(layout, &["create-client", "root"])?;
    cert(layout, &["create-client", APP_USER])?;

    step("Start a node");
    let mut node = start_node(layout)?;
    let pid = node.id();
    let ports = wait_for_ports(layout, &mut node).await?;
    let status = StatusClient::new(layout, ports.http);
    wait_until_ready(&status, &mut node).await?;
    println!(
        "node PID {pid}, SQL on 127.0.0.1:{}, admin on https://127.0.0.1:{}",
        ports.sql, ports.http
    );
    print_served(&status).await?;

    step("Start the workload");
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let reloader = Arc::new(ClientCertReloader::new(&layout.certs, APP_USER));
    let workload = start_workload(ports.sql, reloader.clone(), stats.clone(), stop.clone()).await?;
    println!(
        "{SESSIONS} sessions issuing SQL, plus a new connection every {NEW_CONNECTION_PAUSE:?}"
    );
    tokio::time::sleep(STEP_PAUSE).await;

    step("Rotate the client certificate");
    cert(layout, &["create-client", APP_USER, "--overwrite"])?;
    tokio::time::sleep(STEP_PAUSE).await;
    if let Some(identity) = reloader.last_good() {
        println!(
            "workload now connects with client serial {}",
            identity.cert.serial_hex()
        );
    }

    step("Rotate the node certificate");
    cert(
        layout,
        &["create-node", "localhost", "127.0.0.1", "--overwrite"],
    )?;
    sighup(pid)?;
    tokio::time::sleep(STEP_PAUSE).await;
    print_served(&status).await?;

    step("Rotate the CA: combined ca.crt, then new node and client certificates");
    let old_key = layout.ca_key.with_file_name("ca.old.key");
    println!("$ mv {} {}", layout.ca_key.display(), old_key.display());
    std::fs::rename(&layout.ca_key, &old_key).context("renaming the CA key failed")?;
    cert(layout, &["create-ca", "--overwrite"])?;
    sighup(pid)?;
    tokio::time::sleep(STEP_PAUSE).await;
    print_served(&status).await?;
    cert(
        layout,
        &["create-node", "localhost", "127.0.0.1", "--overwrite"],
    )?;
    cert(layout, &["create-client", APP_USER, "--overwrite"])?;
    cert(layout, &["create-client", "root", "--overwrite"])?;
    sighup(pid)?;
    tokio::time::sleep(STEP_PAUSE).await;
    print_served(&status).await?;

    stop.store(true, Ordering::SeqCst);
    workload.join_all().await;
    let served_pid = status.node_pid().await?;
    let still_running = node.try_wait()?.is_none();
    summary(&stats, pid, served_pid, still_running);

    if keep {
        println!();
        println!("The node keeps running (PID {pid}); stop it with: kill {pid}");
        println!(
            "psql \"host=localhost port={} user=root dbname=defaultdb sslmode=verify-full \
             sslrootcert={certs}/ca.crt sslcert={certs}/client.root.crt sslkey={certs}/client.root.key\"",
            ports.sql,
            certs = layout.certs.display()
        );
    } else {
        stop_node(&mut node)?;
        std::fs::remove_dir_all(&layout.root).ok();
    }
    let failed = stats.queries_failed.load(Ordering::SeqCst);
    let refused = stats.connections_refused.load(Ordering::SeqCst);
    let ok = failed == 0 && refused == 0 && still_running && served_pid == pid;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn step(title: &str) {
    println!();
    println!("== {title}");
}

/// Runs `tumbler cert ...` with the demo's folders, echoing the command as an operator types it.
fn cert(layout: &Layout, args: &[&str]) -> anyhow::Result<()> {
    let certs_dir = format!("--certs-dir={}", layout.certs.display());
    let ca_key = format!("--ca-key={}", layout.ca_key.display());
    println!("$ tumbler cert {} {certs_dir} {ca_key}", args.join(" "));
    let output = Command::new(std::env::current_exe()?)
        .arg("cert")
        .args(args)
        .arg(&certs_dir)
        .arg(&ca_key)
        .output()
        .context("running tumbler cert failed")?;
    print!("{}", indent(&String::from_utf8_lossy(&output.stdout)));
    eprint!("{}", indent(&String::from_utf8_lossy(&output.stderr)));
    if !output.status.success() {
        bail!("tumbler cert {} failed", args.join(" "));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

fn start_node(layout: &Layout) -> anyhow::Result<Child> {
    let log_path = layout.root.join("node.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    println!(
        "$ tumbler start --certs-dir={} ... (log: {})",
        layout.certs.display(),
        log_path.display()
    );
    Command::new(std::env::current_exe()?)
        .arg("start")
        .arg(format!("--certs-dir={}", layout.certs.display()))
        .arg(format!("--store={}", layout.store.display()))
        .arg("--listen-addr=127.0.0.1:0")
        .arg("--http-addr=127.0.0.1:0")
        .arg(format!(
            "--listening-addrs-file={}",
            layout.addrs_file.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the node failed")
}

/// The ports the node's listeners were given.
#[derive(Debug, Clone, Copy)]
struct Ports {
    sql: u16,
    http: u16,
}

/// Waits until the node reports the ports it bound (it listens on port 0, so no other program
/// can take its port between the choice and the bind).
async fn wait_for_ports(layout: &Layout, node: &mut Child) -> anyhow::Result<Ports> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(exit) = node.try_wait()? {
            bail!("the node exited during start-up ({exit}); see node.log in the demo folder");
        }
        if let Ok(text) = std::fs::read_to_string(&layout.addrs_file) {
            let port = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(key))
                    .and_then(|addr| addr.rsplit_once(':'))
                    .and_then(|(_, port)| port.parse().ok())
            };
            if let (Some(sql), Some(http)) = (port("sql="), port("http=")) {
                return Ok(Ports { sql, http });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the node did not report its listening ports within 20 s")
}

async fn wait_until_ready(status: &StatusClient, node: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(exit) = node.try_wait()? {
            bail!("the node exited during start-up ({exit}); see node.log in the demo folder");
        }
        if status.get("/health").await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the node did not respond to /health within 20 s")
}

fn sighup(pid: u32) -> anyhow::Result<()> {
    println!("$ kill -HUP {pid}");
    let pid = Pid::from_raw(i32::try_from(pid)?);
    kill(pid, Signal::SIGHUP).context("sending SIGHUP to the node failed")
}

fn stop_node(node: &mut Child) -> anyhow::Result<()> {
    let pid = Pid::from_raw(i32::try_from(node.id())?);
    kill(pid, Signal::SIGTERM).context("sending SIGTERM to the node failed")?;
    node.wait()?;
    Ok(())
}

async fn start_workload(
    sql_port: u16,
    reloader: Arc<ClientCertReloader>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinSet<()>> {
    let config = connection_config(sql_port);
    let setup = connect(&config, &reloader)
        .await
        .context("the workload cannot connect")?;
    setup
        .batch_execute("CREATE TABLE IF NOT EXISTS demo (id INTEGER PRIMARY KEY, note TEXT)")
        .await
        .context("creating the demo table failed")?;
    let mut tasks = JoinSet::new();
    for session in 0..SESSIONS {
        let client = connect(&config, &reloader)
            .await
            .context("the workload cannot connect")?;
        stats.connections_ok.fetch_add(1, Ordering::SeqCst);
        let (stats, stop) = (stats.clone(), stop.clone());
        tasks.spawn(async move { run_session(client, session, &stats, &stop).await });
    }
    let (stats, stop) = (stats.clone(), stop.clone());
    tasks.spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            match connect(&config, &reloader).await {
                Ok(client) => {
                    stats.connections_ok.fetch_add(1, Ordering::SeqCst);
                    count(
                        &stats,
                        client
                            .simple_query("SELECT count(*) FROM demo")
                            .await
                            .is_ok(),
                    );
                }
                Err(error) => {
                    stats.connections_refused.fetch_add(1, Ordering::SeqCst);
                    eprintln!("    new connection refused: {error}");
                }
            }
            tokio::time::sleep(NEW_CONNECTION_PAUSE).await;
        }
    });
    Ok(tasks)
}

async fn run_session(
    client: tokio_postgres::Client,
    session: usize,
    stats: &Stats,
    stop: &AtomicBool,
) {
    let mut sequence = 0u64;
    while !stop.load(Ordering::SeqCst) {
        sequence += 1;
        let insert =
            format!("INSERT INTO demo (note) VALUES ('session {session} statement {sequence}')");
        count(stats, client.simple_query(&insert).await.is_ok());
        count(
            stats,
            client
                .simple_query("SELECT count(*) FROM demo")
                .await
                .is_ok(),
        );
        tokio::time::sleep(STATEMENT_PAUSE).await;
    }
}

fn count(stats: &Stats, ok: bool) {
    let counter = if ok {
        &stats.queries_ok
    } else {
        &stats.queries_failed
    };
    counter.fetch_add(1, Ordering::SeqCst);
}

fn connection_config(port: u16) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(APP_USER)
        .dbname("defaultdb")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(5));
    config
}

async fn connect(
    config: &tokio_postgres::Config,
    reloader: &Arc<ClientCertReloader>,
) -> anyhow::Result<tokio_postgres::Client> {
    let connector = ReloadingConnector::new(reloader.clone());
    let (client, connection) = config.connect(connector).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("    connection ended with an error: {error}");
        }
    });
    Ok(client)
}

fn summary(stats: &Stats, pid: u32, served_pid: u32, still_running: bool) {
    step("Summary");
    println!(
        "queries succeeded:    {}",
        stats.queries_ok.load(Ordering::SeqCst)
    );
    println!(
        "queries failed:       {}",
        stats.queries_failed.load(Ordering::SeqCst)
    );
    println!(
        "connections opened:   {}",
        stats.connections_ok.load(Ordering::SeqCst)
    );
    println!(
        "connections refused:  {}",
        stats.connections_refused.load(Ordering::SeqCst)
    );
    let same = if served_pid == pid && still_running {
        "never changed"
    } else {
        "CHANGED"
    };
    println!("node PID:             {pid} at start, {served_pid} now ({same})");
}

/// Reads the node's status API over HTTPS with the root client certificate.
struct StatusClient {
    admin: AdminClient,
}

impl StatusClient {
    fn new(layout: &Layout, http_port: u16) -> Self {
        Self {
            admin: AdminClient::new(&layout.certs, "127.0.0.1", http_port),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<String> {
        self.admin.get(path).await
    }

    async fn certificates(&self) -> anyhow::Result<serde_json::Value> {
        let body = self.get("/_status/certificates/local").await?;
        serde_json::from_str(&body).context("the status API returned invalid JSON")
    }

    async fn node_pid(&self) -> anyhow::Result<u32> {
        let status = self.certificates().await?;
        let pid = status["pid"]
            .as_u64()
            .context("the status API has no pid")?;
        Ok(u32::try_from(pid)?)
    }
}

async fn print_served(status: &StatusClient) -> anyhow::Result<()> {
    let report = status.certificates().await?;
    println!("the node serves (from /_status/certificates/local):");
    for entry in report["certificates"].as_array().into_iter().flatten() {
        let kind = entry["type"].as_str().unwrap_or_default();
        if kind == "CLIENT" {
            continue;
        }
        for cert in entry["fields"].as_array().into_iter().flatten() {
            let text = |field: &str| cert[field].as_str().unwrap_or_default().to_owned();
            let key_id = if kind == "CA" {
                text("subjectKeyId")
            } else {
                text("authorityKeyId")
            };
            let key_label = if kind == "CA" {
                "key id"
            } else {
                "signed by key id"
            };
            println!(
                "    {kind:<4} serial {}  issuer {} ({key_label} {})  valid until {}",
                text("serial"),
                text("issuer"),
                short(&key_id),
                valid_until(cert),
            );
        }
    }
    Ok(())
}

/// The first 8 hex digits of a key identifier: enough to tell two CAs apart on screen.
fn short(key_id: &str) -> &str {
    key_id.get(..8).unwrap_or(key_id)
}

fn valid_until(cert: &serde_json::Value) -> String {
    let nanos: i128 = cert["validUntil"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(tumbler_pki::scan::format_time)
        .unwrap_or_default()
}
