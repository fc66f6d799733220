//! The harness of the `loader` fuzz target: a valid certs folder made once per process, and the
//! checks run on every input.
//!
//! An input's first byte selects the file of the folder it replaces ([`FileKind`]), and the rest
//! is that file's content. [`check_input`] feeds the content to the PEM, certificate and key
//! parsers directly, then writes it into the folder beside valid copies of every other file and
//! reads the folder as a node does, with `Scan::read` and `NodeCerts::from_scan`. Beyond "no
//! panic", it asserts that a broken file breaks only the entry that reads it, and that the
//! entry reports the error the file's own parser returns.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use time::macros::datetime;
use tumbler_pki::create::{self, CaBundle, CaOptions, CreateOptions};
use tumbler_pki::lifetime::{DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME};
use tumbler_pki::pem::parse_blocks;
use tumbler_pki::scan::parse_certificates;
use tumbler_pki::{CertInfo, CertUsage, KeyType, NodeCerts, PrivateKey, Problem, Scan};

/// The fixed clock at which the folder is created and read.
pub const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// The user of the client pair in the folder.
pub const CLIENT_USER: &str = "x";

/// A file of the certs folder that an input can replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `ca.crt`.
    CaCert,
    /// `node.crt`.
    NodeCert,
    /// `node.key`.
    NodeKey,
    /// `client.x.crt`.
    ClientCert,
    /// `client.x.key`.
    ClientKey,
    /// `ca-client.crt`.
    ClientCaCert,
    /// `ui.crt`.
    UiCert,
    /// `ui.key`.
    UiKey,
    /// `client.node.crt`, which the node presents to other nodes.
    NodeClientCert,
    /// `client.node.key`.
    NodeClientKey,
}

impl FileKind {
    /// Every kind, in selector order.
    pub const ALL: [Self; 10] = [
        Self::CaCert,
        Self::NodeCert,
        Self::NodeKey,
        Self::ClientCert,
        Self::ClientKey,
        Self::ClientCaCert,
        Self::UiCert,
        Self::UiKey,
        Self::NodeClientCert,
        Self::NodeClientKey,
    ];

    /// Maps an input's first byte to a kind: `byte % 10` indexes [`FileKind::ALL`].
    pub fn from_selector(byte: u8) -> Self {
        Self::ALL[usize::from(byte) % Self::ALL.len()]
    }

    /// Returns the first byte that selects this kind.
    pub fn selector(self) -> u8 {
        let index = Self::ALL.iter().position(|kind| *kind == self);
        index
            .and_then(|index| u8::try_from(index).ok())
            .unwrap_or(0)
    }

    /// Returns the file's name in the certs folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::CaCert => "ca.crt",
            Self::NodeCert => "node.crt",
            Self::NodeKey => "node.key",
            Self::ClientCert => "client.x.crt",
            Self::ClientKey => "client.x.key",
            Self::ClientCaCert => "ca-client.crt",
            Self::UiCert => "ui.crt",
            Self::UiKey => "ui.key",
            Self::NodeClientCert => "client.node.crt",
            Self::NodeClientKey => "client.node.key",
        }
    }

    /// Returns the usage of the scan entry that reads this file.
    pub fn usage(self) -> CertUsage {
        match self {
            Self::CaCert => CertUsage::Ca,
            Self::NodeCert | Self::NodeKey => CertUsage::Node,
            Self::ClientCert | Self::ClientKey => CertUsage::Client(CLIENT_USER.to_owned()),
            Self::ClientCaCert => CertUsage::ClientCa,
            Self::UiCert | Self::UiKey => CertUsage::Ui,
            Self::NodeClientCert | Self::NodeClientKey => CertUsage::Client("node".to_owned()),
        }
    }

    /// Returns whether the file is a private key.
    pub fn is_key(self) -> bool {
        matches!(
            self,
            Self::NodeKey | Self::ClientKey | Self::UiKey | Self::NodeClientKey
        )
    }
}

/// The valid certs folder of this process, with the original content of every file.
#[derive(Debug)]
pub struct Fixture {
    /// The certs folder.
    pub certs: PathBuf,
    files: Vec<(FileKind, Vec<u8>)>,
}

impl Fixture {
    /// Returns the process's fixture, creating it on first use.
    ///
    /// # Panics
    ///
    /// Panics when the folder cannot be created: the harness cannot run without it.
    pub fn get() -> &'static Self {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Self::create)
    }

    fn create() -> Self {
        // The name carries the process id, which keeps the jobs of `-fork` or `-jobs` apart.
        // NOTE: libFuzzer exits without running destructors, so the folders of the last
        // processes of a run stay in the temporary folder until the next run removes them.
        remove_dead_fixtures();
        let root = std::env::temp_dir().join(format!("{FIXTURE_PREFIX}{}", std::process::id()));
        if root.exists() {
            // Left by an earlier process that had the same id.
            fs::remove_dir_all(&root).expect("remove the stale fixture folder");
        }
        let certs = root.join("certs");
        let files = create_valid_set(&certs, &root.join("ca.key"));
        Self { certs, files }
    }

    /// Returns the original content of the file of `kind`.
    pub fn original(&self, kind: FileKind) -> &[u8] {
        self.files
            .iter()
            .find(|(file_kind, _)| *file_kind == kind)
            .map(|(_, bytes)| bytes.as_slice())
            .unwrap_or_default()
    }

    /// Writes `content` as the file of `kind`, runs `check` on the certs folder, then restores
    /// the original file. Overwriting in place keeps a key file's mode 0600.
    fn with_replaced(&self, kind: FileKind, content: &[u8], check: impl FnOnce(&Path)) {
        let path = self.certs.join(kind.file_name());
        fs::write(&path, content).expect("write the fuzzed file");
        check(&self.certs);
        fs::write(&path, self.original(kind)).expect("restore the original file");
    }
}

/// The start of the name of each process's fixture folder; the process id follows it.
const FIXTURE_PREFIX: &str = "tumbler-fuzz-";

/// Removes the fixture folders of processes that no longer run, as `/proc` shows them.
fn remove_dead_fixtures() {
    let Ok(listing) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(FIXTURE_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Another process may remove the same folder at the same time, which is fine.
            let _ = fs::remove_dir_all(item.path());
        }
    }
}

/// Creates a valid certs folder at `certs` and returns the content of every file in it.
///
/// The folder contains `ca.crt`, a client CA `ca-client.crt` signed with the same key, a node
/// pair, a UI pair, a client pair for [`CLIENT_USER`] and the node's client pair
/// `client.node.*`, which a node requires once `ca-client.crt` exists. All are ECDSA P-256 and
/// created at [`NOW`]. Both client pairs are signed by the client CA, the others by `ca.crt`.
///
/// # Panics
///
/// Panics when a create command fails.
pub fn create_valid_set(certs: &Path, ca_key: &Path) -> Vec<(FileKind, Vec<u8>)> {
    let options = |lifetime| CreateOptions {
        certs_dir: certs.to_owned(),
        ca_key: ca_key.to_owned(),
        overwrite: false,
        lifetime,
        key_type: KeyType::EcdsaP256,
        now: NOW,
    };
    let ca = options(DEFAULT_CA_LIFETIME);
    let leaf = options(DEFAULT_LEAF_LIFETIME);
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let reuse_key = CaOptions {
        allow_key_reuse: true,
        ..CaOptions::default()
    };

    create::create_ca(&ca, false).expect("create-ca");
    create::create_node(&leaf, &hosts).expect("create-node");
    create::create_ui(&leaf, &hosts).expect("create-ui");
    create::create_ca_bundle(&ca, CaBundle::Client, reuse_key).expect("create-client-ca");
    create::create_client(&leaf, CLIENT_USER).expect("create-client");
    create::create_client(&leaf, "node").expect("create-client node");

    FileKind::ALL
        .iter()
        .map(|kind| {
            let bytes = fs::read(certs.join(kind.file_name())).expect("read a created file");
            (*kind, bytes)
        })
        .collect()
}

/// Checks one fuzz input.
///
/// # Panics
///
/// Panics when a parser or the loader panics, or when a loader invariant breaks.
pub fn check_input(data: &[u8]) {
    let Some((&selector, content)) = data.split_first() else {
        return;
    };
    let kind = FileKind::from_selector(selector);
    check_parsers(content);
    let fixture = Fixture::get();
    fixture.with_replaced(kind, content, |certs| {
        check_folder(fixture, certs, kind, content);
    });
}

/// Runs every parser on `content` alone, including `CertInfo::parse` on the raw bytes so that
/// the fuzzer reaches the X.509 parser without getting through base64 first.
fn check_parsers(content: &[u8]) {
    if let Ok(blocks) = parse_blocks(content) {
        assert!(!blocks.is_empty(), "parse_blocks returned no block");
        let mut previous_offset = None;
        for block in blocks {
            let at_begin = content
                .get(block.offset..)
                .is_some_and(|rest| rest.starts_with(b"-----BEGIN "));
            assert!(
                at_begin,
                "block offset {} is not a BEGIN line",
                block.offset
            );
            assert!(
                previous_offset < Some(block.offset),
                "block offsets do not increase"
            );
            previous_offset = Some(block.offset);
            let _ = CertInfo::parse(CertificateDer::from(block.der));
        }
    }
    if let Ok(certs) = parse_certificates(content) {
        assert!(
            !certs.is_empty(),
            "parse_certificates returned no certificate"
        );
    }
    let _ = PrivateKey::from_pem(content);
    let _ = CertInfo::parse(CertificateDer::from(content.to_vec()));
}

/// Reads the folder with the fuzzed file in place and checks what the loader reports.
fn check_folder(fixture: &Fixture, certs: &Path, kind: FileKind, content: &[u8]) {
    let scan = Scan::read(certs, NOW).expect("the fixture folder can be listed");
    let fuzzed = kind.usage();
    for entry in &scan.entries {
        if entry.usage != fuzzed {
            assert!(
                entry.error.is_none(),
                "{:?} has an error although only {} changed: {:?}",
                entry.usage,
                kind.file_name(),
                entry.error
            );
        }
    }

    let entry = scan
        .entry(&fuzzed)
        .expect("the fuzzed file's entry is listed");
    if let Some(problem) = own_parser_problem(kind, content) {
        let Some(error) = &entry.error else {
            panic!(
                "{} is rejected by its parser ({problem}) but its entry has no error",
                kind.file_name()
            );
        };
        assert_eq!(
            error.problem, problem,
            "entry error differs from the parser's"
        );
        assert_eq!(error.path, certs.join(kind.file_name()));
    }
    let unchanged = content == fixture.original(kind);
    if unchanged {
        assert!(!scan.has_errors(), "the valid folder has errors: {scan:?}");
    }

    let loaded = NodeCerts::from_scan(scan, NOW);
    let client_file = matches!(kind, FileKind::ClientCert | FileKind::ClientKey);
    if client_file || unchanged {
        assert!(
            loaded.is_ok(),
            "{} stopped the node: {:?}",
            kind.file_name(),
            loaded.err()
        );
    }
}

/// Runs the file's own parser on `content` and returns its problem, if it rejects the content.
/// The loader must report the same problem, because the other file of a pair is valid.
fn own_parser_problem(kind: FileKind, content: &[u8]) -> Option<Problem> {
    if kind.is_key() {
        PrivateKey::from_pem(content).err().map(Problem::Key)
    } else {
        parse_certificates(content).err()
    }
}

/// Writes the seed corpus of the `loader` target into `dir`: every file of a fresh valid
/// folder, a CA bundle of two certificates and a node certificate as raw DER.
///
/// # Errors
///
/// Returns the I/O error of the first file that cannot be written.
///
/// # Panics
///
/// Panics when a create command fails.
pub fn write_seeds(dir: &Path) -> io::Result<()> {
    let root = std::env::temp_dir().join(format!("tumbler-fuzz-seeds-{}", std::process::id()));
    let files = create_valid_set(&root.join("certs"), &root.join("ca.key"));
    fs::remove_dir_all(&root)?;
    fs::create_dir_all(dir)?;
    let content = |kind: FileKind| {
        files
            .iter()
            .find(|(file_kind, _)| *file_kind == kind)
            .map(|(_, bytes)| bytes.clone())
            .unwrap_or_default()
    };

    for kind in FileKind::ALL {
        write_seed(dir, kind.file_name(), kind, &content(kind))?;
    }
    let bundle = [content(FileKind::CaCert), content(FileKind::ClientCaCert)].concat();
    write_seed(dir, "ca.crt-bundle-of-two", FileKind::CaCert, &bundle)?;
    let node_der = parse_blocks(&content(FileKind::NodeCert))
        .ok()
        .and_then(|blocks| blocks.into_iter().next())
        .map(|block| block.der)
        .unwrap_or_default();
    write_seed(dir, "node.crt-der", FileKind::NodeCert, &node_der)
}

fn write_seed(dir: &Path, name: &str, kind: FileKind, content: &[u8]) -> io::Result<()> {
    let mut bytes = vec![kind.selector()];
    bytes.extend_from_slice(content);
    fs::write(dir.join(name), bytes)
}
