//! A client-side reloader: a rustls client config that follows the client's certificate files.
//!
//! Long-running clients of tumbler (the demo's workload, an application pool) build every new
//! connection with [`ClientCertReloader::config`]. When `ca.crt`, `client.<user>.crt` or
//! `client.<user>.key` change on disk, the next call rebuilds the config from the new bytes;
//! open connections keep the config they were made with. A broken file never replaces a
//! working config: the reloader keeps the last good one and reports the error.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};
use tumbler_pki::names::{CA_CERT, CertUsage, PairPaths};
use tumbler_pki::scan::parse_certificates;
use tumbler_pki::{CertInfo, PrivateKey};

use crate::configs::provider;

/// Errors reading or using a client's certificate files.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ClientTlsError {
    /// The file concerned.
    pub path: PathBuf,
    /// The problem.
    pub reason: String,
}

/// The client identity currently in use.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The config for new connections.
    pub config: Arc<ClientConfig>,
    /// The client certificate (leaf first).
    pub cert: CertInfo,
    /// Number of CA certificates trusted.
    pub ca_count: usize,
}

#[derive(Debug)]
struct Loaded {
    bytes: Vec<Vec<u8>>,
    identity: ClientIdentity,
}

/// Builds client configs from `ca.crt` and `client.<user>.crt`/`.key` in a certs folder,
/// rebuilding when their content changes.
#[derive(Debug)]
pub struct ClientCertReloader {
    ca_path: PathBuf,
    pair: PairPaths,
    loaded: Mutex<Option<Loaded>>,
}

impl ClientCertReloader {
    /// A reloader for `user`'s files in `certs_dir`. Nothing is read until the first call.
    pub fn new(certs_dir: &Path, user: &str) -> Self {
        Self {
            ca_path: certs_dir.join(CA_CERT),
            pair: PairPaths::new(certs_dir, &CertUsage::Client(user.to_owned())),
            loaded: Mutex::new(None),
        }
    }

    /// Returns the identity for a new connection, rebuilt if the files changed since the last
    /// call.
    ///
    /// # Errors
    ///
    /// Returns a [`ClientTlsError`] naming the file when the files cannot be read or used and
    /// no earlier identity exists. With an earlier identity, the error is returned too, so the
    /// caller can log it, and [`ClientCertReloader::last_good`] still gives the old identity.
    pub fn identity(&self) -> Result<ClientIdentity, ClientTlsError> {
        let bytes = self.read_files()?;
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(current) = loaded.as_ref().filter(|current| current.bytes == bytes) {
            return Ok(current.identity.clone());
        }
        let identity = self.build(&bytes)?;
        *loaded = Some(Loaded {
            bytes,
            identity: identity.clone(),
        });
        Ok(identity)
    }

    /// The config for a new connection; see [`ClientCertReloader::identity`].
    ///
    /// # Errors
    ///
    /// As [`ClientCertReloader::identity`].
    pub fn config(&self) -> Result<Arc<ClientConfig>, ClientTlsError> {
        self.identity().map(|identity| identity.config)
    }

    /// The last identity that loaded, if any.
    pub fn last_good(&self) -> Option<ClientIdentity> {
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        loaded.as_ref().map(|current| current.identity.clone())
    }

    fn read_files(&self) -> Result<Vec<Vec<u8>>, ClientTlsError> {
        [&self.ca_path, &self.pair.cert, &self.pair.key]
            .into_iter()
            .map(|path| {
                fs::read(path).map_err(|error| ClientTlsError {
                    path: path.clone(),
                    reason: error.to_string(),
                })
            })
            .collect()
    }

    fn build(&self, bytes: &[Vec<u8>]) -> Result<ClientIdentity, ClientTlsError> {
        let fail = |path: &Path, reason: String| ClientTlsError {
            path: path.to_owned(),
            reason,
        };
        let cas = parse_certificates(&bytes[0])
            .map_err(|error| fail(&self.ca_path, error.to_string()))?;
        let chain = parse_certificates(&bytes[1])
            .map_err(|error| fail(&self.pair.cert, error.to_string()))?;
        let key = PrivateKey::from_pem(&bytes[2])
            .map_err(|error| fail(&self.pair.key, error.to_string()))?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| fail(&self.pair.cert, "no certificate".into()))?;
        key.check_matches(&leaf)
            .map_err(|error| fail(&self.pair.key, error.to_string()))?;

        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots
                .add(ca.der.clone())
                .map_err(|error| fail(&self.ca_path, error.to_string()))?;
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|error| fail(&self.ca_path, error.to_string()))?;
        let der_chain = chain.iter().map(|cert| cert.der.clone()).collect();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_webpki_verifier(verifier)
                    .with_client_auth_cert(der_chain, key.der().clone_key())
            })
            .map_err(|error| fail(&self.pair.cert, error.to_string()))?;
        Ok(ClientIdentity {
            config: Arc::new(config),
            cert: leaf,
            ca_count: cas.len(),
        })
    }
}
