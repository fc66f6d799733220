//! `tumbler`: certificate commands, the node, and the rotation demo.

mod admin_client;
mod cert;
mod demo;
mod node;
mod pgclient;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A secure cluster node whose certificates rotate without a restart.
#[derive(Debug, Parser)]
#[command(name = "tumbler", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and list certificates.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Start a node.
    Start(StartArgs),
    /// Run a live certificate rotation on a local node, in a temporary folder.
    Demo(demo::DemoArgs),
    /// Act on a running node.
    #[command(subcommand)]
    Node(node::NodeCommand),
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// Folder with ca.crt, node.crt and node.key (and client certificates).
    #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = cert::default_certs_dir())]
    certs_dir: PathBuf,
    /// Folder of the node's SQLite store; created if missing.
    #[arg(long, default_value = "tumbler-data")]
    store: PathBuf,
    /// Address of the SQL listener (PostgreSQL wire protocol over TLS).
    #[arg(long, default_value = "localhost:26257")]
    listen_addr: String,
    /// Address of the HTTPS admin listener.
    #[arg(long, default_value = "localhost:8080")]
    http_addr: String,
    /// Address other nodes and clients reach this node at (HOST or HOST:PORT); node.crt must
    /// cover its host. Defaults to the --listen-addr host unless that is a wildcard.
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Poll the certs folder at this interval and reload when its content changed: a number
    /// and a unit (h, m or s), at least 1s, for example 10s. Off by default.
    #[arg(long, value_parser = parse_interval)]
    cert_reload_interval: Option<std::time::Duration>,
    /// Keep open SQL sessions whose client certificate no longer chains to a trusted CA after
    /// a reload removed a CA. By default they are closed.
    #[arg(long)]
    keep_sessions_on_ca_removal: bool,
    /// Once listening, write the bound addresses to this file as sql=HOST:PORT and
    /// http=HOST:PORT lines (useful with port 0).
    #[arg(long)]
    listening_addrs_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("start") {
        catch_early_sighup();
    }
    let cli = Cli::parse();
    init_logging();
    // pgwire brings ring as well as aws-lc-rs into the build; with two providers compiled in,
    // rustls's builders cannot pick one, so the process default is set before anything else.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match cli.command {
        Command::Cert(command) => cert::run(command),
        Command::Start(args) => start(args),
        Command::Demo(args) => demo::run(args),
        Command::Node(command) => node::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Replaces SIGHUP's default action, which ends the process, before anything else runs. The
/// node installs its reload handler once its runtime exists; a SIGHUP that arrives before then
/// needs no reload, because the node has not read its certificates yet.
fn catch_early_sighup() {
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(error) = signal_hook::flag::register(signal_hook::consts::SIGHUP, ignored) {
        eprintln!("warning: cannot catch SIGHUP during start-up: {error}");
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUMBLER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    tumbler_pki::lifetime::parse_duration(text).map(|duration| duration.unsigned_abs())
}

fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let config = tumbler_node::NodeConfig {
        certs_dir: args.certs_dir,
        store_dir: args.store,
        listen_addr: args.listen_addr,
        http_addr: args.http_addr,
        advertise_addr: args.advertise_addr,
        cert_reload_interval: args.cert_reload_interval,
        keep_sessions_on_ca_removal: args.keep_sessions_on_ca_removal,
        listening_addrs_file: args.listening_addrs_file,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(tumbler_node::run(config))?;
    Ok(ExitCode::SUCCESS)
}
