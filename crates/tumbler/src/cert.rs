//! `tumbler cert`: create-ca, create-node, create-client and list.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use time::{Duration, OffsetDateTime};
use tumbler_pki::create::{CreateOptions, CreateReport, create_ca, create_client, create_node};
use tumbler_pki::lifetime::{DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, parse_duration};
use tumbler_pki::scan::format_time;
use tumbler_pki::{CertUsage, KeyType, Scan};

/// The default certs folder: `$HOME/.tumbler-certs`.
pub(crate) fn default_certs_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("certs"), PathBuf::from)
        .join(".tumbler-certs")
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Create a CA certificate and key. With --overwrite over an existing ca.crt, writes the
    /// new CA certificate first and keeps every old one after it (the combined CA bundle).
    CreateCa {
        #[command(flatten)]
        common: CreateArgs,
        /// Sign the new CA certificate with the existing key at --ca-key instead of refusing.
        #[arg(long)]
        allow_ca_key_reuse: bool,
    },
    /// Create node.crt and node.key. Each HOST that parses as an IP address becomes an IP SAN,
    /// every other a DNS SAN.
    CreateNode {
        /// Host names and IP addresses the node is reached at.
        #[arg(required = true)]
        hosts: Vec<String>,
        #[command(flatten)]
        common: CreateArgs,
    },
    /// Create client.USER.crt and client.USER.key; the certificate's CN is the SQL user.
    CreateClient {
        /// The SQL user, normalized to lower case.
        user: String,
        #[command(flatten)]
        common: CreateArgs,
    },
    /// List the certificates in the certs folder. Exits with 1 when any row has an error.
    List {
        /// The certs folder.
        #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = default_certs_dir())]
        certs_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyTypeArg {
    /// ECDSA on P-256 (the default).
    EcdsaP256,
    /// RSA; the size comes from --key-size (2048 by default).
    Rsa,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The certs folder; created with mode 0700 if missing.
    #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = default_certs_dir())]
    certs_dir: PathBuf,
    /// The CA key, kept outside the certs folder: nodes never read it.
    #[arg(long, env = "TUMBLER_CA_KEY")]
    ca_key: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    overwrite: bool,
    /// How long the certificate is valid, e.g. 43800h or 30m (CA: 87840h, others: 43920h).
    #[arg(long)]
    lifetime: Option<String>,
    /// Kind of key to generate.
    #[arg(long, value_enum)]
    key_type: Option<KeyTypeArg>,
    /// RSA key size in bits: 2048, 3072 or 4096. Given alone, it selects RSA.
    #[arg(long)]
    key_size: Option<u32>,
}

impl CreateArgs {
    fn options(&self, default_lifetime: Duration) -> anyhow::Result<CreateOptions> {
        let lifetime = match &self.lifetime {
            Some(text) => parse_duration(text).map_err(anyhow::Error::msg)?,
            None => default_lifetime,
        };
        let key_type = match (self.key_type, self.key_size) {
            (Some(KeyTypeArg::EcdsaP256), Some(_)) => {
                anyhow::bail!("--key-size applies to RSA keys only; drop it or pass --key-type=rsa")
            }
            (Some(KeyTypeArg::EcdsaP256), None) | (None, None) => KeyType::EcdsaP256,
            (_, Some(bits)) => KeyType::rsa(bits).map_err(anyhow::Error::msg)?,
            (Some(KeyTypeArg::Rsa), None) => KeyType::Rsa(2048),
        };
        Ok(CreateOptions {
            certs_dir: self.certs_dir.clone(),
            ca_key: self.ca_key.clone(),
            overwrite: self.overwrite,
            lifetime,
            key_type,
            now: OffsetDateTime::now_utc(),
        })
    }
}

pub(crate) fn run(command: CertCommand) -> anyhow::Result<ExitCode> {
    let report = match command {
        CertCommand::CreateCa {
            common,
            allow_ca_key_reuse,
        } => create_ca(&common.options(DEFAULT_CA_LIFETIME)?, allow_ca_key_reuse)?,
        CertCommand::CreateNode { hosts, common } => {
            create_node(&common.options(DEFAULT_LEAF_LIFETIME)?, &hosts)?
        }
        CertCommand::CreateClient { user, common } => {
            create_client(&common.options(DEFAULT_LEAF_LIFETIME)?, &user)?
        }
        CertCommand::List { certs_dir } => return list(&certs_dir),
    };
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &CreateReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for path in &report.written {
        println!("wrote {}", path.display());
    }
    if let Some(cert) = &report.certificate {
        println!(
            "certificate {} (serial {}) valid until {}",
            cert.subject,
            cert.serial_hex(),
            format_time(cert.not_after)
        );
    }
}

/// One line of `cert list`.
struct Row {
    usage: String,
    cert_file: String,
    key_file: String,
    expires: String,
    notes: String,
    error: String,
}

fn list(certs_dir: &Path) -> anyhow::Result<ExitCode> {
    let scan = Scan::read(certs_dir, OffsetDateTime::now_utc())
        .with_context(|| format!("cannot list certificates in {}", certs_dir.display()))?;
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }
    let mut rows = Vec::new();
    for entry in &scan.entries {
        rows.extend(entry_rows(entry));
    }
    println!("Certificate directory: {}", certs_dir.display());
    print_table(&rows);
    Ok(if scan.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn entry_rows(entry: &tumbler_pki::CertEntry) -> Vec<Row> {
    let name = |path: &Path| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let usage = match &entry.usage {
        CertUsage::Ca => "CA",
        CertUsage::Node => "Node",
        CertUsage::Client(_) => "Client",
    };
    let cert_file = name(&entry.cert_path);
    let key_file = entry.key_path.as_deref().map(name).unwrap_or_default();
    let error = entry
        .error
        .as_ref()
        .map(|error| error.problem.to_string())
        .unwrap_or_default();
    if entry.certs.is_empty() {
        return vec![Row {
            usage: usage.to_owned(),
            cert_file,
            key_file,
            expires: String::new(),
            notes: String::new(),
            error,
        }];
    }
    let count = entry.certs.len();
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    let certs = if entry.usage == CertUsage::Ca {
        &entry.certs[..]
    } else {
        &entry.certs[..1]
    };
    for (index, cert) in certs.iter().enumerate() {
        let mut notes = match &entry.usage {
            CertUsage::Ca => format!("certificate {} of {count}", index + 1),
            CertUsage::Node => format!(
                "addresses: {}",
                cert.sans
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            CertUsage::Client(user) => format!("user: {user}"),
        };
        notes.push_str(&format!("; key: {}", cert.public_key));
        let mut row_error = if index == 0 {
            error.clone()
        } else {
            String::new()
        };
        if entry.usage == CertUsage::Ca && cert.not_after < now {
            row_error = format!("expired at {}", format_time(cert.not_after));
        }
        rows.push(Row {
            usage: usage.to_owned(),
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            expires: cert.not_after.date().to_string().replace('-', "/"),
            notes,
            error: row_error,
        });
    }
    rows
}

fn print_table(rows: &[Row]) {
    let header = Row {
        usage: "Usage".into(),
        cert_file: "Certificate File".into(),
        key_file: "Key File".into(),
        expires: "Expires".into(),
        notes: "Notes".into(),
        error: "Error".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |field: fn(&Row) -> &str| all.iter().map(|row| field(row).len()).max().unwrap_or(0);
    let widths = [
        width(|row| &row.usage),
        width(|row| &row.cert_file),
        width(|row| &row.key_file),
        width(|row| &row.expires),
        width(|row| &row.notes),
    ];
    for row in all {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            row.usage,
            row.cert_file,
            row.key_file,
            row.expires,
            row.notes,
            row.error,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        );
        println!("{}", line.trim_end());
    }
}
