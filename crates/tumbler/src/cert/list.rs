//! `tumbler cert list` and `tumbler cert inspect`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::json;
use time::OffsetDateTime;
use tumbler_pki::scan::{format_time, parse_certificates};
use tumbler_pki::{CertEntry, CertInfo, CertUsage, FileError, Scan};

/// Output format of `cert list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// An aligned table.
    Table,
    /// A JSON array with one object per row.
    Json,
}

/// One row of `cert list`: one certificate, or a file that yielded none.
struct Row<'a> {
    entry: &'a CertEntry,
    cert: Option<&'a CertInfo>,
    position: usize,
    error: String,
}

pub(crate) fn run(certs_dir: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let scan = Scan::read(certs_dir, now)
        .map_err(|error| anyhow::anyhow!("cannot list certificates: {error}"))?;
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }
    // The chain checks of start-up and reload, so the list flags what the node would reject.
    let chain_errors = tumbler_pki::node_certs::chain_errors(&scan, now);
    let node_issuer =
        tumbler_pki::node_certs::node_issuer(&scan, now).map(|issuer| issuer.fingerprint_sha256);
    let rows: Vec<Row<'_>> = scan
        .entries
        .iter()
        .flat_map(|entry| {
            let chain_error = chain_errors
                .iter()
                .find(|error| error.path == entry.cert_path);
            rows(entry, chain_error, now)
        })
        .collect();
    let notes_of = |row: &Row<'_>| {
        let mut text = notes(row);
        let signed_node = row.entry.usage == CertUsage::Ca
            && row.cert.map(|cert| &cert.fingerprint_sha256) == node_issuer.as_ref();
        if signed_node {
            text.push_str("; signed node.crt");
        }
        text
    };
    match format {
        Format::Table => {
            println!("Certificate directory: {}", certs_dir.display());
            print_table(&rows, notes_of);
        }
        Format::Json => {
            let values: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| row_json(row, notes_of(row)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&values)?);
        }
    }
    let failed = rows.iter().any(|row| !row.error.is_empty());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A CA bundle gives one row per certificate, each with its own expiry; a pair gives one row
/// for its leaf. A file whose error left no certificate still gets its row.
fn rows<'a>(
    entry: &'a CertEntry,
    chain_error: Option<&FileError>,
    now: OffsetDateTime,
) -> Vec<Row<'a>> {
    let entry_error = entry
        .error
        .as_ref()
        .or(chain_error)
        .map(|error| error.problem.to_string())
        .unwrap_or_default();
    if entry.certs.is_empty() {
        return vec![Row {
            entry,
            cert: None,
            position: 0,
            error: entry_error,
        }];
    }
    let shown = if entry.usage.is_ca() {
        entry.certs.len()
    } else {
        1
    };
    entry.certs[..shown]
        .iter()
        .enumerate()
        .map(|(position, cert)| {
            let error = if position == 0 && !entry_error.is_empty() {
                entry_error.clone()
            } else if entry.usage.is_ca() && cert.not_after < now {
                format!("expired at {}", format_time(cert.not_after))
            } else {
                String::new()
            };
            Row {
                entry,
                cert: Some(cert),
                position,
                error,
            }
        })
        .collect()
}

fn usage_name(usage: &CertUsage) -> &'static str {
    match usage {
        CertUsage::Ca => "CA",
        CertUsage::ClientCa => "Client CA",
        CertUsage::Node => "Node",
        CertUsage::Ui => "UI",
        CertUsage::Client(_) => "Client",
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn notes(row: &Row<'_>) -> String {
    let Some(cert) = row.cert else {
        return String::new();
    };
    let mut notes = match &row.entry.usage {
        CertUsage::Ca | CertUsage::ClientCa => {
            // The fingerprint prefix distinguishes CAs of the same name, and remove-ca accepts it.
            let prefix = cert.fingerprint_sha256.get(..16).unwrap_or_default();
            format!(
                "certificate {} of {}; SHA-256 {prefix}...",
                row.position + 1,
                row.entry.certs.len()
            )
        }
        CertUsage::Node | CertUsage::Ui => format!("addresses: {}", addresses(cert).join(",")),
        CertUsage::Client(user) => format!("user: {user}"),
    };
    notes.push_str(&format!("; key: {}", cert.public_key));
    notes
}

fn addresses(cert: &CertInfo) -> Vec<String> {
    cert.sans.iter().map(ToString::to_string).collect()
}

fn print_table(rows: &[Row<'_>], notes: impl Fn(&Row<'_>) -> String) {
    let header = [
        "Usage",
        "Certificate File",
        "Key File",
        "Expires",
        "Notes",
        "Error",
    ];
    let mut lines: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    for row in rows {
        lines.push([
            usage_name(&row.entry.usage).to_owned(),
            file_name(&row.entry.cert_path),
            row.entry
                .key_path
                .as_deref()
                .map(file_name)
                .unwrap_or_default(),
            row.cert
                .map(|cert| cert.not_after.date().to_string().replace('-', "/"))
                .unwrap_or_default(),
            notes(row),
            row.error.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn row_json(row: &Row<'_>, notes: String) -> serde_json::Value {
    let user = match &row.entry.usage {
        CertUsage::Client(user) => Some(user.clone()),
        _ => None,
    };
    json!({
        "usage": usage_name(&row.entry.usage),
        "certificateFile": file_name(&row.entry.cert_path),
        "keyFile": row.entry.key_path.as_deref().map(file_name),
        "expires": row.cert.map(|cert| format_time(cert.not_after)),
        "notes": notes,
        "user": user,
        "subject": row.cert.map(|cert| cert.subject.clone()),
        "serial": row.cert.map(CertInfo::serial_hex),
        "fingerprintSha256": row.cert.map(|cert| cert.fingerprint_sha256.clone()),
        "addresses": row.cert.map(addresses),
        "error": row.error,
    })
}

pub(crate) fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let certs = parse_certificates(&bytes)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", file.display()))?;
    for (index, cert) in certs.iter().enumerate() {
        if index > 0 {
            println!();
        }
        println!(
            "Certificate {} of {} in {}",
            index + 1,
            certs.len(),
            file.display()
        );
        let fields = [
            ("Subject", cert.subject.clone()),
            ("Issuer", cert.issuer.clone()),
            ("Serial", cert.serial_hex()),
            ("Valid From", format_time(cert.not_before)),
            ("Valid Until", format_time(cert.not_after)),
            ("CA", if cert.is_ca { "yes" } else { "no" }.to_owned()),
            ("Addresses", addresses(cert).join(", ")),
            ("Signature Algorithm", cert.signature_algorithm.clone()),
            ("Public Key", cert.public_key.clone()),
            ("Key Usage", cert.key_usage.join(", ")),
            ("Extended Key Usage", cert.extended_key_usage.join(", ")),
            ("SHA-256 Fingerprint", cert.fingerprint_sha256.clone()),
            (
                "Subject Key ID",
                cert.subject_key_id.clone().unwrap_or_default(),
            ),
            (
                "Authority Key ID",
                cert.authority_key_id.clone().unwrap_or_default(),
            ),
        ];
        for (label, value) in fields {
            println!("  {label:<21} {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
