use std::sync::Arc;

use arc_swap::ArcSwap;
use time::OffsetDateTime;
use tumbler_pki::NodeCerts;

use crate::configs::TlsConfigs;

/// One generation of certificates and the TLS configs built from them.
#[derive(Debug)]
pub struct Published {
    /// The certificates, as checked by the loader.
    pub certs: NodeCerts,
    /// The configs built from `certs`.
    pub configs: TlsConfigs,
    /// When this generation was loaded.
    pub loaded_at: OffsetDateTime,
}

/// The current [`Published`] generation, shared by every listener.
///
/// Readers call [`ReloadableTls::current`] once per connection and keep the `Arc` they get.
/// A reload builds a complete new generation first and then replaces the pointer in one
/// atomic store (`ArcSwap`), so a reader sees either the whole old generation or the whole
/// new one, never configs from one and certificates from the other.
#[derive(Debug)]
pub struct ReloadableTls {
    current: ArcSwap<Published>,
}

impl ReloadableTls {
    /// Publishes the first generation.
    pub fn new(first: Published) -> Self {
        Self {
            current: ArcSwap::from_pointee(first),
        }
    }

    /// The generation new connections use.
    pub fn current(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// Replaces the current generation and returns the previous one.
    pub fn publish(&self, next: Published) -> Arc<Published> {
        self.current.swap(Arc::new(next))
    }
}
