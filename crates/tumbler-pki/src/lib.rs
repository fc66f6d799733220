//! The certs folder of a tumbler node: file names, PEM, creating and checking certificates.
//!
//! This crate owns everything a node or an operator knows about certificate files: which names
//! mean what ([`names`]), how PEM is framed ([`pem`]), what a certificate says ([`cert`]), how
//! keys are read and matched ([`key`]), how a folder is read and checked in one pass ([`scan`],
//! [`node_certs`]) and how `tumbler cert create-*` writes new files ([`create`]). It does no
//! networking. A node never reads a CA key: only [`create`] does, from the path given as
//! `--ca-key`.

pub mod bundle;
pub mod cert;
pub mod create;
pub mod files;
pub mod key;
pub mod lifetime;
pub mod names;
pub mod node_certs;
pub mod pem;
pub mod scan;

pub use cert::{CertInfo, San};
pub use key::{KeyType, PrivateKey};
pub use names::CertUsage;
pub use node_certs::NodeCerts;
pub use scan::{CertEntry, FileError, Problem, Scan};
