//! Helpers shared by the integration tests: temporary folders, create options at a fixed clock,
//! and the real `openssl` binary.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime};
use tumbler_pki::KeyType;
use tumbler_pki::create::{self, CreateOptions};
use tumbler_pki::lifetime::{DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME};

/// The fixed clock of every test that creates certificates.
pub const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// The OpenSSL binary every cross-check runs.
pub const OPENSSL: &str = "/usr/bin/openssl";

/// The host names and addresses node certificates are created for.
pub const HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "::1", "node1.example"];

/// A temporary folder with a certs folder and, beside it, a separate folder for the CA key.
#[derive(Debug)]
pub struct Folder {
    /// Removes everything when dropped.
    pub temp: TempDir,
    /// The certs folder, created by the first create command.
    pub certs: PathBuf,
    /// The CA key path, outside the certs folder.
    pub ca_key: PathBuf,
}

impl Folder {
    /// Creates an empty temporary folder. Neither the certs folder nor the CA key exists yet.
    pub fn new() -> Self {
        let temp = TempDir::new().expect("create a temporary folder");
        let certs = temp.path().join("certs");
        let ca_key = temp.path().join("safe").join("ca.key");
        Self {
            temp,
            certs,
            ca_key,
        }
    }

    /// Returns the path of `name` inside the certs folder.
    pub fn cert_file(&self, name: &str) -> PathBuf {
        self.certs.join(name)
    }

    /// Builds options for create-ca with the default CA lifetime.
    pub fn ca_options(&self, key_type: KeyType) -> CreateOptions {
        self.options(key_type, DEFAULT_CA_LIFETIME)
    }

    /// Builds options for create-node and create-client with the default leaf lifetime.
    pub fn leaf_options(&self, key_type: KeyType) -> CreateOptions {
        self.options(key_type, DEFAULT_LEAF_LIFETIME)
    }

    fn options(&self, key_type: KeyType, lifetime: Duration) -> CreateOptions {
        CreateOptions {
            certs_dir: self.certs.clone(),
            ca_key: self.ca_key.clone(),
            overwrite: false,
            lifetime,
            key_type,
            now: NOW,
        }
    }

    /// Creates a CA, a node pair for [`HOSTS`] and a client pair for `user`, all at [`NOW`].
    pub fn create_all(&self, key_type: KeyType, user: &str) {
        create::create_ca(&self.ca_options(key_type), false).expect("create-ca");
        create::create_node(&self.leaf_options(key_type), &hosts()).expect("create-node");
        create::create_client(&self.leaf_options(key_type), user).expect("create-client");
    }
}

/// Environment variable that marks a test process started by [`run_test_in_child`].
pub const CHILD_MARKER: &str = "TUMBLER_PKI_TEST_CHILD";

/// Returns whether this process is a child started by [`run_test_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// Runs the test `name` of this test binary alone in a child process, after `configure` has set
/// its environment or working folder, and asserts that it passed. Tests use this for state that
/// is global to a process.
pub fn run_test_in_child(name: &str, configure: impl FnOnce(&mut Command)) {
    let mut command = Command::new(std::env::current_exe().expect("find the test binary"));
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1");
    configure(&mut command);
    let output = command.output().expect("start the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed in the child:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
}

/// Returns [`HOSTS`] as the owned strings create-node takes.
pub fn hosts() -> Vec<String> {
    HOSTS.iter().map(|host| (*host).to_owned()).collect()
}

/// Returns both key types tumbler generates: ECDSA P-256 and RSA 2048.
pub fn key_types() -> [KeyType; 2] {
    [
        KeyType::EcdsaP256,
        KeyType::rsa(2048).expect("2048 is a valid RSA size"),
    ]
}

/// Runs `openssl ARGS` in `dir` and returns its output, whatever the exit status.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("{OPENSSL} could not be started: {error}"))
}

/// Runs `openssl ARGS` in `dir`, asserts that it exits with status 0 and returns its stdout.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let output = openssl(dir, args);
    assert!(
        output.status.success(),
        "openssl {} failed with {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("openssl prints UTF-8")
}

/// Runs `openssl verify` of `cert` against `ca_file` for `purpose` at [`NOW`].
pub fn verify(dir: &Path, ca_file: &str, purpose: &str, cert: &str) -> Output {
    let at_time = NOW.unix_timestamp().to_string();
    openssl(
        dir,
        &[
            "verify", "-attime", &at_time, "-CAfile", ca_file, "-purpose", purpose, cert,
        ],
    )
}

/// Formats a time as `openssl x509 -startdate` and `-enddate` print it: `Mar  1 12:00:00 2026 GMT`.
pub fn openssl_date(time: OffsetDateTime) -> String {
    let format = format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time.format(&format).expect("format an OpenSSL date")
}

/// Returns the permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("read file metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("set file mode");
}

/// Returns the sorted names of the files in `dir`.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list folder")
        .map(|item| {
            item.expect("read folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
