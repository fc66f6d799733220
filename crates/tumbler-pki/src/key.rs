//! Private keys: reading them from PEM, matching them to certificates, and generating new ones.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use crate::cert::CertInfo;
use crate::pem::{PemError, parse_blocks};

/// A private key as read from a PEM file.
#[derive(Debug)]
pub struct PrivateKey {
    der: PrivateKeyDer<'static>,
}

/// Reasons a key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM framing is wrong.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The key is encrypted with a passphrase.
    #[error(
        "the key is encrypted; encrypted keys are not supported, decrypt it with 'openssl pkey'"
    )]
    Encrypted,
    /// No private key block was found.
    #[error(
        "no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoKey,
    /// More than one private key block was found.
    #[error("the file holds {0} private keys; keep exactly one")]
    SeveralKeys(usize),
    /// A block is neither a key nor EC parameters.
    #[error("unexpected PEM block {block} ({label}) in a key file")]
    UnexpectedBlock {
        /// 1-based index of the block.
        block: usize,
        /// Its label.
        label: String,
    },
    /// rustls cannot use the key.
    #[error("unsupported or invalid private key: {0}")]
    Unsupported(String),
    /// The key does not belong to the certificate.
    #[error("the key does not match the certificate (public keys differ)")]
    Mismatch,
}

impl PrivateKey {
    /// Reads a key in PKCS#1, PKCS#8 or SEC1 form. An `EC PARAMETERS` block before an EC key is
    /// allowed, as `openssl ecparam -genkey` writes one.
    ///
    /// # Errors
    ///
    /// Returns a [`KeyError`] for bad framing, encrypted keys, or anything but exactly one key.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, KeyError> {
        if is_legacy_encrypted(bytes) {
            return Err(KeyError::Encrypted);
        }
        let blocks = parse_blocks(bytes)?;
        let mut keys = Vec::new();
        for (index, block) in blocks.into_iter().enumerate() {
            let der: PrivateKeyDer<'static> = match block.label.as_str() {
                "PRIVATE KEY" => PrivatePkcs8KeyDer::from(block.der).into(),
                "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(block.der).into(),
                "EC PRIVATE KEY" => PrivateSec1KeyDer::from(block.der).into(),
                "EC PARAMETERS" => continue,
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                _ => {
                    return Err(KeyError::UnexpectedBlock {
                        block: index + 1,
                        label: block.label,
                    });
                }
            };
            keys.push(der);
        }
        match keys.len() {
            0 => Err(KeyError::NoKey),
            1 => {
                let key = Self {
                    der: keys.remove(0),
                };
                key.public_key_spki()?;
                Ok(key)
            }
            count => Err(KeyError::SeveralKeys(count)),
        }
    }

    /// Returns the key in the form rustls takes.
    pub fn der(&self) -> &PrivateKeyDer<'static> {
        &self.der
    }

    /// Returns the DER SubjectPublicKeyInfo of the key's public half.
    ///
    /// # Errors
    ///
    /// Returns [`KeyError::Unsupported`] when rustls's aws-lc-rs provider cannot load the key.
    pub fn public_key_spki(&self) -> Result<Vec<u8>, KeyError> {
        let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&self.der)
            .map_err(|error| KeyError::Unsupported(error.to_string()))?;
        let spki = signing_key
            .public_key()
            .ok_or_else(|| KeyError::Unsupported("no public key available".to_owned()))?;
        Ok(spki.as_ref().to_vec())
    }

    /// Checks that this key is the private half of `cert`'s public key.
    ///
    /// # Errors
    ///
    /// Returns [`KeyError::Mismatch`] when the public keys differ.
    pub fn check_matches(&self, cert: &CertInfo) -> Result<(), KeyError> {
        if self.public_key_spki()? == cert.spki {
            Ok(())
        } else {
            Err(KeyError::Mismatch)
        }
    }

    /// Converts the key into an rcgen signing key.
    ///
    /// # Errors
    ///
    /// Returns [`KeyError::Unsupported`] when rcgen cannot sign with it.
    pub fn to_signing_key(&self) -> Result<KeyPair, KeyError> {
        KeyPair::try_from(&self.der).map_err(|error| KeyError::Unsupported(error.to_string()))
    }
}

/// Legacy OpenSSL encryption puts `Proc-Type: 4,ENCRYPTED` inside an RSA or EC block.
fn is_legacy_encrypted(bytes: &[u8]) -> bool {
    bytes
        .windows(b"Proc-Type: 4,ENCRYPTED".len())
        .any(|window| window == b"Proc-Type: 4,ENCRYPTED")
}

/// The kind of key `tumbler cert` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256, the default: its handshakes cost a fraction of RSA's.
    EcdsaP256,
    /// RSA with the given modulus size in bits (2048, 3072 or 4096).
    Rsa(u32),
}

impl KeyType {
    /// Smallest RSA key accepted.
    pub const MIN_RSA_BITS: u32 = 2048;

    /// Builds an RSA key type, checking the size.
    ///
    /// # Errors
    ///
    /// Returns a message naming the value when the size is not 2048, 3072 or 4096.
    pub fn rsa(bits: u32) -> Result<Self, String> {
        match bits {
            2048 | 3072 | 4096 => Ok(Self::Rsa(bits)),
            bits if bits < Self::MIN_RSA_BITS => Err(format!(
                "--key-size={bits} is too small: RSA keys must have at least {} bits",
                Self::MIN_RSA_BITS
            )),
            bits => Err(format!(
                "--key-size={bits} is not supported: use 2048, 3072 or 4096"
            )),
        }
    }

    /// Generates a new key pair of this type.
    ///
    /// # Errors
    ///
    /// Returns a message when the crypto provider fails.
    pub fn generate(self) -> Result<KeyPair, String> {
        let result = match self {
            Self::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            Self::Rsa(bits) => {
                let size = match bits {
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    _ => RsaKeySize::_2048,
                };
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size)
            }
        };
        result.map_err(|error| format!("key generation failed: {error}"))
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
        }
    }
}
