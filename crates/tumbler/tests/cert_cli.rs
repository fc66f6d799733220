//! `tumbler cert` as an operator runs it: the real binary, its files, and openssl reading them.

mod common;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Workspace, cert_list, file_not_after, file_serial, openssl, stderr, stdout};
use time::{Duration, OffsetDateTime};

fn mode(path: &Path) -> u32 {
    let metadata = std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("cannot stat {}: {error}", path.display()));
    metadata.permissions().mode() & 0o777
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Prints a certificate file with `openssl x509 -text`.
fn x509_text(path: &Path) -> String {
    let output = openssl([
        OsStr::new("x509"),
        OsStr::new("-text"),
        OsStr::new("-noout"),
        OsStr::new("-in"),
        path.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "openssl x509 -text failed on {}: {}",
        path.display(),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts that a create command failed and returns its stderr.
fn expect_failure(output: &std::process::Output, command: &str) -> String {
    let text = stderr(output);
    assert!(
        !output.status.success(),
        "{command} succeeded:\n{}{text}",
        stdout(output)
    );
    text
}

/// Asserts that no staged `.NAME.RANDOM.tmp` file is left in the certs folder.
fn assert_no_staged_files(workspace: &Workspace) {
    let Ok(listing) = std::fs::read_dir(&workspace.certs) else {
        return;
    };
    let staged: Vec<String> = listing
        .filter_map(Result::ok)
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
}

/// Runs `tumbler cert ARGS` for `workspace` under umask 077, through `sh`.
fn cert_with_umask_077(workspace: &Workspace, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" \"$@\"")
        .arg(common::tumbler_bin())
        .arg("cert")
        .args(args)
        .arg(format!("--certs-dir={}", workspace.certs.display()))
        .arg(format!("--ca-key={}", workspace.ca_key.display()))
        .output()
        .expect("run tumbler cert through sh")
}

/// One row of `cert list`, cut at the columns of its header line.
#[derive(Debug)]
struct ListRow {
    usage: String,
    cert_file: String,
    key_file: String,
    expires: String,
    notes: String,
    error: String,
}

const LIST_COLUMNS: [&str; 6] = [
    "Usage",
    "Certificate File",
    "Key File",
    "Expires",
    "Notes",
    "Error",
];

/// Parses the table of `cert list`: each column starts where its name starts in the header.
fn parse_list(text: &str) -> Vec<ListRow> {
    let mut lines = text.lines().skip_while(|line| !line.starts_with("Usage"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no header line:\n{text}"));
    let starts: Vec<usize> = LIST_COLUMNS
        .iter()
        .map(|name| {
            header
                .find(name)
                .unwrap_or_else(|| panic!("header lacks {name:?}: {header}"))
        })
        .collect();
    let cell = |line: &str, index: usize| {
        let start = starts[index].min(line.len());
        let end = starts
            .get(index + 1)
            .map_or(line.len(), |next| (*next).min(line.len()));
        line[start..end].trim().to_owned()
    };
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| ListRow {
            usage: cell(line, 0),
            cert_file: cell(line, 1),
            key_file: cell(line, 2),
            expires: cell(line, 3),
            notes: cell(line, 4),
            error: cell(line, 5),
        })
        .collect()
}

/// Checks that `text` is a `YYYY/MM/DD` date, the form of the Expires column of `cert list`.
fn is_list_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    parts.len() == 3
        && [4, 2, 2]
            .iter()
            .zip(&parts)
            .all(|(len, part)| part.len() == *len && part.chars().all(|c| c.is_ascii_digit()))
}

/// Splits a CA bundle file into its first PEM block and the blocks after it.
fn split_bundle(bundle: &Path) -> (String, String) {
    let text = String::from_utf8(read(bundle)).expect("CA bundle is UTF-8");
    let end_marker = "-----END CERTIFICATE-----\n";
    let end = text.find(end_marker).expect("bundle has a certificate") + end_marker.len();
    (text[..end].to_owned(), text[end..].to_owned())
}

fn verify(ca_file: &Path, cert: &Path) -> std::process::Output {
    openssl([
        OsStr::new("verify"),
        OsStr::new("-CAfile"),
        ca_file.as_os_str(),
        cert.as_os_str(),
    ])
}

#[test]
fn create_commands_print_written_files() {
    let workspace = Workspace::new();
    let commands: [(&[&str], Vec<PathBuf>); 3] = [
        (
            &["create-ca"],
            vec![workspace.ca_key.clone(), workspace.path("ca.crt")],
        ),
        (
            &["create-node", "localhost", "127.0.0.1"],
            vec![workspace.path("node.key"), workspace.path("node.crt")],
        ),
        (
            &["create-client", "root"],
            vec![
                workspace.path("client.root.key"),
                workspace.path("client.root.crt"),
            ],
        ),
    ];

    for (args, files) in commands {
        let output = workspace.cert_ok(args);

        let printed = stdout(&output);
        for file in files {
            assert!(
                printed.contains(&format!("wrote {}", file.display())),
                "{args:?} did not print {}:\n{printed}",
                file.display()
            );
            assert!(
                file.is_file(),
                "{args:?} printed {} but it is missing",
                file.display()
            );
        }
    }
}

#[test]
fn created_files_have_modes() {
    let workspace = Workspace::with_certs();
    let keys = [
        workspace.ca_key.clone(),
        workspace.path("node.key"),
        workspace.path("client.root.key"),
    ];
    let certs = [
        workspace.path("ca.crt"),
        workspace.path("node.crt"),
        workspace.path("client.root.crt"),
    ];

    for key in keys {
        assert_eq!(mode(&key), 0o600, "mode of {}", key.display());
    }
    for cert in certs {
        assert_eq!(mode(&cert), 0o644, "mode of {}", cert.display());
    }
    assert_eq!(
        mode(&workspace.certs),
        0o700,
        "mode of the new certs folder"
    );
    let key_dir = workspace.ca_key.parent().expect("CA key folder");
    assert_eq!(mode(key_dir), 0o700, "mode of the new CA key folder");
}

#[test]
fn modes_ignore_umask() {
    let workspace = Workspace::new();

    for args in [
        &["create-ca"][..],
        &["create-node", "localhost"],
        &["create-client", "root"],
    ] {
        let output = cert_with_umask_077(&workspace, args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            stderr(&output)
        );
    }

    for cert in ["ca.crt", "node.crt", "client.root.crt"] {
        assert_eq!(
            mode(&workspace.path(cert)),
            0o644,
            "mode of {cert} under umask 077"
        );
    }
    for key in ["node.key", "client.root.key"] {
        assert_eq!(
            mode(&workspace.path(key)),
            0o600,
            "mode of {key} under umask 077"
        );
    }
}

#[test]
fn keys_are_pkcs8_pem() {
    let workspace = Workspace::with_certs();
    workspace.cert_ok(&["create-client", "alice", "--key-type=rsa"]);

    for key in [
        workspace.ca_key.clone(),
        workspace.path("node.key"),
        workspace.path("client.alice.key"),
    ] {
        let text = String::from_utf8(read(&key)).expect("key is UTF-8");
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{} is not PKCS#8 PEM:\n{}",
            key.display(),
            text.lines().next().unwrap_or_default()
        );
    }
}

#[test]
fn create_client_lowercases_user() {
    let workspace = Workspace::with_certs();

    let output = workspace.cert_ok(&["create-client", "Alice"]);

    assert!(
        workspace.path("client.alice.crt").is_file(),
        "client.alice.crt missing:\n{}",
        stdout(&output)
    );
    assert!(
        !workspace.path("client.Alice.crt").exists(),
        "client.Alice.crt was written"
    );
    let subject = x509_text(&workspace.path("client.alice.crt"));
    assert!(
        subject.contains("CN = alice") || subject.contains("CN=alice"),
        "CN is not alice:\n{subject}"
    );
    assert!(
        stderr(&output).contains("alice"),
        "no warning about the normalized name: {}",
        stderr(&output)
    );
}

#[test]
fn create_node_twice_needs_overwrite() {
    let workspace = Workspace::with_certs();
    let cert_before = read(&workspace.path("node.crt"));
    let key_before = read(&workspace.path("node.key"));

    let output = workspace.cert(&["create-node", "localhost", "127.0.0.1"]);

    let text = expect_failure(&output, "second create-node");
    assert!(
        text.contains("node.crt") || text.contains("node.key"),
        "error names neither node.crt nor node.key: {text}"
    );
    assert!(
        text.contains("--overwrite"),
        "error does not mention --overwrite: {text}"
    );
    assert_eq!(
        read(&workspace.path("node.crt")),
        cert_before,
        "node.crt changed"
    );
    assert_eq!(
        read(&workspace.path("node.key")),
        key_before,
        "node.key changed"
    );
    assert_no_staged_files(&workspace);
}

#[test]
fn key_size_1024_is_rejected() {
    let workspace = Workspace::with_certs();

    let output = workspace.cert(&["create-client", "alice", "--key-size=1024"]);

    let text = expect_failure(&output, "create-client --key-size=1024");
    assert!(
        text.contains("1024"),
        "error does not name the value: {text}"
    );
    assert!(
        text.contains("at least 2048"),
        "error does not say at least 2048: {text}"
    );
    assert!(
        !workspace.path("client.alice.key").exists(),
        "a key was written"
    );
}

#[test]
fn key_size_3072_makes_rsa_key() {
    let workspace = Workspace::with_certs();

    workspace.cert_ok(&["create-client", "alice", "--key-size=3072"]);

    let key = openssl([
        OsStr::new("pkey"),
        OsStr::new("-text"),
        OsStr::new("-noout"),
        OsStr::new("-in"),
        workspace.path("client.alice.key").as_os_str(),
    ]);
    let key_text = stdout(&key);
    assert!(
        key.status.success(),
        "openssl pkey failed: {}",
        stderr(&key)
    );
    assert!(
        key_text.contains("Private-Key: (3072 bit"),
        "key is not RSA 3072:\n{key_text}"
    );
    let cert_text = x509_text(&workspace.path("client.alice.crt"));
    assert!(
        cert_text.contains("rsaEncryption"),
        "certificate key is not RSA:\n{cert_text}"
    );
    assert!(
        cert_text.contains("Public-Key: (3072 bit)"),
        "certificate key is not 3072 bits:\n{cert_text}"
    );
}

#[test]
fn ecdsa_with_key_size_is_rejected() {
    let workspace = Workspace::with_certs();

    let output = workspace.cert(&[
        "create-client",
        "alice",
        "--key-type=ecdsa-p256",
        "--key-size=2048",
    ]);

    let text = expect_failure(
        &output,
        "create-client --key-type=ecdsa-p256 --key-size=2048",
    );
    assert!(
        text.contains("--key-size"),
        "error does not name --key-size: {text}"
    );
    assert!(
        text.contains("RSA"),
        "error does not say the flag is for RSA: {text}"
    );
    assert!(
        !workspace.path("client.alice.crt").exists(),
        "a certificate was written"
    );
}

#[test]
fn lifetime_in_days_is_rejected() {
    let workspace = Workspace::with_certs();

    let output = workspace.cert(&["create-client", "alice", "--lifetime=10d"]);

    let text = expect_failure(&output, "create-client --lifetime=10d");
    assert!(
        text.contains("10d"),
        "error does not name the value: {text}"
    );
    assert!(
        !workspace.path("client.alice.crt").exists(),
        "a certificate was written"
    );
}

#[test]
fn lifetime_30m_sets_not_after() {
    let workspace = Workspace::with_certs();
    let before = OffsetDateTime::now_utc();

    workspace.cert_ok(&["create-client", "alice", "--lifetime=30m"]);

    let after = OffsetDateTime::now_utc();
    let not_after = file_not_after(&workspace.path("client.alice.crt"));
    // Certificate times have whole seconds, so allow one second on each side.
    let earliest = before + Duration::minutes(30) - Duration::seconds(1);
    let latest = after + Duration::minutes(30) + Duration::seconds(1);
    assert!(
        not_after >= earliest && not_after <= latest,
        "Not After {not_after} is not 30 minutes after {before} .. {after}"
    );
}

#[test]
fn leaf_cannot_outlive_ca() {
    let workspace = Workspace::new();
    workspace.cert_ok(&["create-ca", "--lifetime=1000h"]);

    let output = workspace.cert(&["create-node", "localhost", "--lifetime=2000h"]);

    let text = expect_failure(&output, "create-node --lifetime=2000h");
    let suggestion = text
        .split_whitespace()
        .find(|word| word.starts_with("--lifetime="))
        .unwrap_or_else(|| panic!("error suggests no --lifetime: {text}"));
    assert_eq!(suggestion, "--lifetime=999h", "suggestion in: {text}");
    assert!(!workspace.path("node.crt").exists(), "node.crt was written");
    assert_no_staged_files(&workspace);
    workspace.cert_ok(&["create-node", "localhost", suggestion]);
    assert!(
        file_not_after(&workspace.path("node.crt")) <= file_not_after(&workspace.path("ca.crt")),
        "the suggested lifetime outlives the CA"
    );
}

#[test]
fn ca_key_in_certs_folder_warns() {
    let mut workspace = Workspace::new();
    workspace.ca_key = workspace.certs.join("ca.key");
    let commands: [&[&str]; 3] = [
        &["create-ca"],
        &["create-node", "localhost"],
        &["create-client", "root"],
    ];

    for args in commands {
        let output = workspace.cert_ok(args);

        let text = stderr(&output);
        assert!(
            text.contains("warning:"),
            "{args:?} printed no warning: {text}"
        );
        assert!(
            text.contains(&workspace.ca_key.display().to_string()),
            "{args:?} warning does not name the CA key: {text}"
        );
    }
}

#[test]
fn ca_key_in_certs_subfolder_warns() {
    let mut workspace = Workspace::new();
    workspace.ca_key = workspace.certs.join("private").join("ca.key");

    let output = workspace.cert_ok(&["create-ca"]);

    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "warning: the CA key {}",
            workspace.ca_key.display()
        )),
        "no warning for a CA key below the certs folder: {text:?}"
    );
}

#[test]
fn create_ca_overwrite_needs_new_key() {
    let workspace = Workspace::with_certs();
    let bundle_before = read(&workspace.path("ca.crt"));

    let output = workspace.cert(&["create-ca", "--overwrite"]);

    let text = expect_failure(&output, "create-ca --overwrite with the old key in place");
    assert!(
        text.contains(&workspace.ca_key.display().to_string()),
        "error does not name the CA key: {text}"
    );
    assert!(
        text.contains("--allow-ca-key-reuse"),
        "error does not offer --allow-ca-key-reuse: {text}"
    );
    assert_eq!(
        read(&workspace.path("ca.crt")),
        bundle_before,
        "ca.crt changed"
    );
}

#[test]
fn ca_rotation_lists_both_cas() {
    let workspace = Workspace::with_certs();
    let old_serial = file_serial(&workspace.path("ca.crt"));
    let old_key = workspace.ca_key.with_file_name("ca.old.key");
    std::fs::rename(&workspace.ca_key, &old_key).expect("move the CA key");

    workspace.cert_ok(&["create-ca", "--overwrite"]);

    let list = cert_list(&workspace.certs);
    assert!(list.status.success(), "cert list failed: {}", stderr(&list));
    let printed = stdout(&list);
    let ca_rows: Vec<ListRow> = parse_list(&printed)
        .into_iter()
        .filter(|row| row.usage == "CA")
        .collect();
    assert_eq!(ca_rows.len(), 2, "CA rows:\n{printed}");
    for row in &ca_rows {
        assert_eq!(row.cert_file, "ca.crt", "CA row: {row:?}");
        assert!(is_list_date(&row.expires), "CA row lacks Expires: {row:?}");
        assert_eq!(row.error, "", "CA row has an error: {row:?}");
    }
    assert_ne!(
        file_serial(&workspace.path("ca.crt")),
        old_serial,
        "the new CA is not first in ca.crt"
    );

    workspace.cert_ok(&["create-node", "localhost", "127.0.0.1", "--overwrite"]);

    let new_ca = workspace.dir.path().join("new-ca.pem");
    let old_ca = workspace.dir.path().join("old-ca.pem");
    let (first_block, later_blocks) = split_bundle(&workspace.path("ca.crt"));
    std::fs::write(&new_ca, first_block).expect("write the new CA certificate");
    std::fs::write(&old_ca, later_blocks).expect("write the old CA certificate");
    let with_new = verify(&new_ca, &workspace.path("node.crt"));
    assert!(
        with_new.status.success(),
        "node.crt does not verify against the new CA: {}{}",
        stdout(&with_new),
        stderr(&with_new)
    );
    let with_old = verify(&old_ca, &workspace.path("node.crt"));
    assert!(
        !with_old.status.success(),
        "node.crt verifies against the old CA: {}",
        stdout(&with_old)
    );
}

#[test]
fn unmatched_ca_key_is_rejected() {
    let workspace = Workspace::with_certs();
    let other = Workspace::with_certs();
    std::fs::copy(&other.ca_key, &workspace.ca_key).expect("copy the other CA key");
    let cert_before = read(&workspace.path("node.crt"));

    let output = workspace.cert(&["create-node", "localhost", "--overwrite"]);

    let text = expect_failure(&output, "create-node with a foreign CA key");
    let ca_cert = workspace.path("ca.crt").display().to_string();
    let ca_key = workspace.ca_key.display().to_string();
    assert!(
        text.contains(&ca_cert),
        "error does not name {ca_cert}: {text}"
    );
    assert!(
        text.contains(&ca_key),
        "error does not name {ca_key}: {text}"
    );
    assert_eq!(
        read(&workspace.path("node.crt")),
        cert_before,
        "node.crt changed"
    );
}

#[test]
fn list_prints_every_row() {
    let workspace = Workspace::with_certs();

    let output = cert_list(&workspace.certs);

    let printed = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "cert list failed:\n{printed}{}",
        stderr(&output)
    );
    let header = printed
        .lines()
        .find(|line| line.starts_with("Usage"))
        .unwrap_or_else(|| panic!("no header:\n{printed}"));
    for name in LIST_COLUMNS {
        assert!(header.contains(name), "header lacks {name:?}: {header}");
    }
    let rows = parse_list(&printed);
    assert_eq!(rows.len(), 3, "rows:\n{printed}");
    let node = rows
        .iter()
        .find(|row| row.usage == "Node")
        .unwrap_or_else(|| panic!("no node row:\n{printed}"));
    assert_eq!(node.cert_file, "node.crt", "node row: {node:?}");
    assert_eq!(node.key_file, "node.key", "node row: {node:?}");
    assert!(
        node.notes.contains("addresses: localhost,127.0.0.1,::1"),
        "node row lacks its addresses: {node:?}"
    );
    let client = rows
        .iter()
        .find(|row| row.usage == "Client")
        .unwrap_or_else(|| panic!("no client row:\n{printed}"));
    assert_eq!(
        client.cert_file, "client.root.crt",
        "client row: {client:?}"
    );
    assert_eq!(client.key_file, "client.root.key", "client row: {client:?}");
    assert!(
        client.notes.contains("user: root"),
        "client row lacks its user: {client:?}"
    );
    for row in &rows {
        assert!(is_list_date(&row.expires), "row lacks Expires: {row:?}");
        assert_eq!(row.error, "", "row has an error: {row:?}");
    }
}

#[test]
fn list_reports_broken_file() {
    let workspace = Workspace::with_certs();
    let mut garbage = [0u8; 512];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut garbage))
        .expect("read /dev/urandom");
    std::fs::write(workspace.path("client.broken.crt"), garbage).expect("write client.broken.crt");

    let output = cert_list(&workspace.certs);

    let printed = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit code of cert list:\n{printed}{}",
        stderr(&output)
    );
    let rows = parse_list(&printed);
    for file in ["ca.crt", "node.crt", "client.root.crt"] {
        let row = rows
            .iter()
            .find(|row| row.cert_file == file)
            .unwrap_or_else(|| panic!("no row for {file}:\n{printed}"));
        assert_eq!(row.error, "", "{file} row has an error: {row:?}");
    }
    let broken = rows
        .iter()
        .find(|row| row.cert_file == "client.broken.crt")
        .unwrap_or_else(|| panic!("no row for client.broken.crt:\n{printed}"));
    assert_ne!(broken.error, "", "broken row has no error: {broken:?}");
}
