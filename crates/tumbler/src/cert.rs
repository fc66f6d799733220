//! `tumbler cert`: the create commands and remove-ca; listing and inspecting live in `list`.

pub(crate) mod list;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use time::{Duration, OffsetDateTime};
use tumbler_pki::KeyType;
use tumbler_pki::bundle::remove_ca;
use tumbler_pki::create::{
    CaBundle, CaOptions, CreateOptions, CreateReport, create_ca_bundle, create_client_with,
    create_node, create_ui,
};
use tumbler_pki::lifetime::{DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, parse_duration};
use tumbler_pki::scan::format_time;

/// The default certs folder: `$HOME/.tumbler-certs`.
pub(crate) fn default_certs_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("certs"), PathBuf::from)
        .join(".tumbler-certs")
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Create a CA certificate and key. With --overwrite over an existing ca.crt, writes the
    /// new CA certificate first and keeps the old ones after it (the combined CA bundle).
    CreateCa {
        #[command(flatten)]
        common: CreateArgs,
        #[command(flatten)]
        ca: CaArgs,
    },
    /// Create a client CA (ca-client.crt). Once it exists, nodes check client certificates
    /// against it instead of ca.crt, and create-client signs with it.
    CreateClientCa {
        #[command(flatten)]
        common: CreateArgs,
        #[command(flatten)]
        ca: CaArgs,
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
    /// Create ui.crt and ui.key, which the HTTPS admin listener serves instead of node.crt.
    CreateUi {
        /// Host names and IP addresses the admin UI is reached at; the first is the CN.
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
        /// Also write client.USER.key.pk8, the key as DER PKCS#8 (mode 0600), which JDBC reads.
        #[arg(long)]
        also_generate_pkcs8_key: bool,
    },
    /// List the certificates in the certs folder, one row per certificate. Exits with 1 when
    /// any row has an error, 0 otherwise.
    List {
        /// The certs folder.
        #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = default_certs_dir())]
        certs_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = list::Format::Table)]
        format: list::Format,
    },
    /// Print every certificate of a PEM file with its fields, SHA-256 fingerprint and key
    /// identifiers.
    Inspect {
        /// The PEM file.
        file: PathBuf,
    },
    /// Remove one CA certificate, named by its SHA-256 fingerprint, from ca.crt (or from
    /// ca-client.crt when ca.crt does not hold it).
    RemoveCa {
        /// The certs folder.
        #[arg(long, env = "TUMBLER_CERTS_DIR", default_value_os_t = default_certs_dir())]
        certs_dir: PathBuf,
        /// SHA-256 fingerprint of the certificate, as 'cert list --format=json' or 'cert inspect'
        /// print it; colons and case do not matter.
        #[arg(long)]
        fingerprint: String,
        /// Remove it even when it signed the current node.crt (or client.node.crt).
        #[arg(long)]
        force: bool,
    },
}

/// Flags of the CA commands.
#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    /// Sign the new CA certificate with the existing key at --ca-key instead of refusing.
    #[arg(long)]
    allow_ca_key_reuse: bool,
    /// Keep expired CA certificates in the combined bundle (by default they are dropped).
    #[arg(long)]
    keep_expired: bool,
}

impl CaArgs {
    fn options(&self) -> CaOptions {
        CaOptions {
            allow_key_reuse: self.allow_ca_key_reuse,
            keep_expired: self.keep_expired,
        }
    }
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
    /// How long the certificate is valid: a number and a unit (h, m or s, combinable as in
    /// 1h30m), at least 1s. Default: 87840h for a CA, 43920h for other certificates.
    #[arg(long, value_parser = parse_duration)]
    lifetime: Option<Duration>,
    /// Kind of key to generate.
    #[arg(long, value_enum)]
    key_type: Option<KeyTypeArg>,
    /// RSA key size in bits: 2048, 3072 or 4096. Given alone, it selects RSA.
    #[arg(long)]
    key_size: Option<u32>,
}

impl CreateArgs {
    fn options(&self, default_lifetime: Duration) -> anyhow::Result<CreateOptions> {
        let lifetime = self.lifetime.unwrap_or(default_lifetime);
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
        CertCommand::CreateCa { common, ca } => create_ca_bundle(
            &common.options(DEFAULT_CA_LIFETIME)?,
            CaBundle::Server,
            ca.options(),
        )?,
        CertCommand::CreateClientCa { common, ca } => create_ca_bundle(
            &common.options(DEFAULT_CA_LIFETIME)?,
            CaBundle::Client,
            ca.options(),
        )?,
        CertCommand::CreateNode { hosts, common } => {
            create_node(&common.options(DEFAULT_LEAF_LIFETIME)?, &hosts)?
        }
        CertCommand::CreateUi { hosts, common } => {
            create_ui(&common.options(DEFAULT_LEAF_LIFETIME)?, &hosts)?
        }
        CertCommand::CreateClient {
            user,
            common,
            also_generate_pkcs8_key,
        } => create_client_with(
            &common.options(DEFAULT_LEAF_LIFETIME)?,
            &user,
            also_generate_pkcs8_key,
        )?,
        CertCommand::List { certs_dir, format } => return list::run(&certs_dir, format),
        CertCommand::Inspect { file } => return list::inspect(&file),
        CertCommand::RemoveCa {
            certs_dir,
            fingerprint,
            force,
        } => {
            let report = remove_ca(&certs_dir, &fingerprint, force, OffsetDateTime::now_utc())?;
            if let (Some(cert), Some(path)) = (&report.certificate, report.written.first()) {
                println!(
                    "removed {} (serial {}) from {}",
                    cert.subject,
                    cert.serial_hex(),
                    path.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
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
