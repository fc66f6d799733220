//! Building a generation of certificates and TLS configs, checked before any listener uses it.

use std::path::PathBuf;

use time::OffsetDateTime;
use tumbler_pki::{CertInfo, NodeCerts, San};
use tumbler_tls::{Published, TlsConfigs};

use crate::NodeError;

/// The rules every generation must satisfy, at start-up and on each reload.
#[derive(Debug, Clone)]
pub(crate) struct GenerationRules {
    /// The certs folder.
    pub(crate) certs_dir: PathBuf,
    /// The host other nodes and clients reach this node at, which `node.crt` must cover.
    pub(crate) advertise_host: Option<String>,
}

impl GenerationRules {
    /// Reads the certs folder once and builds a generation, in the order of a reload's recipe:
    /// read and check the files, check the advertised address, refuse to lose a certificate
    /// `previous` had, build the TLS configs, prove them with a handshake in memory.
    ///
    /// # Errors
    ///
    /// Returns the first failed check, naming the file where there is one.
    pub(crate) fn load(&self, previous: Option<&Published>) -> Result<Published, NodeError> {
        let now = OffsetDateTime::now_utc();
        let certs = NodeCerts::load(&self.certs_dir, now)?;

        if let Some(host) = &self.advertise_host {
            certs.check_covers(host)?;
        }
        if let Some(previous) = previous {
            certs.check_keeps_slots(&previous.certs)?;
        }

        let configs = TlsConfigs::build(&certs)?;
        let sql_name = self
            .advertise_host
            .clone()
            .unwrap_or_else(|| first_name(certs.node.leaf()));
        configs.self_test(&sql_name, &first_name(certs.admin_identity().leaf()))?;
        Ok(Published {
            certs,
            configs,
            loaded_at: now,
        })
    }
}

/// The first SAN of a certificate, as a name a client can verify; `localhost` when it has none,
/// which then fails the handshake with rustls's reason.
fn first_name(cert: &CertInfo) -> String {
    match cert.sans.first() {
        Some(San::Dns(name)) => name.trim_start_matches("*.").to_owned(),
        Some(San::Ip(address)) => address.to_string(),
        None => "localhost".to_owned(),
    }
}

/// The host part of `HOST:PORT`, `[IPV6]:PORT` or a bare host; `None` for a wildcard address,
/// which names no host a certificate could cover.
pub(crate) fn host_of(addr: &str) -> Option<String> {
    let host = if let Some(rest) = addr.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(host, _)| host)
    } else if addr.matches(':').count() == 1 {
        addr.split_once(':').map_or(addr, |(host, _)| host)
    } else {
        addr
    };
    match host {
        "" | "0.0.0.0" | "::" => None,
        host => Some(host.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("localhost:26257").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:26257").as_deref(), Some("::1"));
        assert_eq!(host_of("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of("::1").as_deref(), Some("::1"));
        assert_eq!(host_of("0.0.0.0:26257"), None);
        assert_eq!(host_of("[::]:26257"), None);
        assert_eq!(host_of(":26257"), None);
    }
}
