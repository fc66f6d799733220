//! `tumbler node`: commands that act on a running node through its admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::admin_client::AdminClient;
use crate::cert::default_certs_dir;

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Ask a node to reload its certs folder, as SIGHUP does, and print the verdict. Exits with
    /// 1 when the reload failed (the node then keeps serving its previous certificates).
    ReloadCerts {
        /// The node's HTTPS admin address, HOST:PORT; HOST must be covered by its certificate.
        #[arg(long, default_value = "localhost:8080")]
        host: String,
        /// Folder with ca.crt and client.root.crt/.key to authenticate with.
        #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = default_certs_dir())]
        certs_dir: PathBuf,
    },
}

pub(crate) fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::ReloadCerts { host, certs_dir } => reload_certs(&host, &certs_dir),
    }
}

fn reload_certs(host: &str, certs_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    if host.contains("://") {
        anyhow::bail!(
            "invalid --host {host:?}: give HOST:PORT without a scheme, e.g. localhost:8080"
        );
    }
    let (name, port) = host
        .rsplit_once(':')
        .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
        .with_context(|| {
            format!("invalid --host {host:?}: write HOST:PORT, e.g. localhost:8080")
        })?;
    let client = AdminClient::new(certs_dir, name, port);
    let runtime = tokio::runtime::Runtime::new()?;
    let response = runtime
        .block_on(client.request("POST", "/_admin/v1/certificates/reload"))
        .with_context(|| format!("no reload verdict from {host}; is it the node's --http-addr?"))?;
    if response.status != 200 && response.status != 422 {
        anyhow::bail!(
            "the node returned {}: {}",
            response.status,
            response.body.trim()
        );
    }
    let outcome: serde_json::Value =
        serde_json::from_str(&response.body).context("the node returned invalid JSON")?;
    let result = outcome["result"].as_str().unwrap_or("unknown");
    println!(
        "reload {result} at {}",
        outcome["at"].as_str().unwrap_or_default()
    );
    for (label, field) in [
        ("serials added", "serialsAdded"),
        ("serials removed", "serialsRemoved"),
        ("CA fingerprints added", "caFingerprintsAdded"),
        ("CA fingerprints removed", "caFingerprintsRemoved"),
    ] {
        let values: Vec<&str> = outcome[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|value| value.as_str())
            .collect();
        if !values.is_empty() {
            println!("{label}: {}", values.join(", "));
        }
    }
    if let Some(error) = outcome["error"].as_str() {
        eprintln!("error: {error}");
    }
    Ok(if result == "failure" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
