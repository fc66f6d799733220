//! Property tests of the loader on arbitrary bytes and on mutations of valid files:
//! truncations, flipped bytes, added whitespace and junk lines, duplicated or reordered blocks
//! and changed labels. Each property runs a bounded number of cases, so this file finishes in
//! seconds. The `loader` fuzz target in `fuzz/` explores the same entry points for longer.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on errors, as tests do"
)]

mod common;

use std::fs;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use common::{Folder, NOW};
use proptest::prelude::*;
use proptest::sample::select;
use rustls::pki_types::CertificateDer;
use tempfile::TempDir;
use tumbler_pki::create::{
    CaBundle, CaOptions, create_ca, create_ca_bundle, create_client, create_node, create_ui,
};
use tumbler_pki::files::{CERT_MODE, KEY_MODE};
use tumbler_pki::key::KeyError;
use tumbler_pki::pem::{PemError, parse_blocks};
use tumbler_pki::scan::parse_certificates;
use tumbler_pki::{CertInfo, CertUsage, KeyType, NodeCerts, PrivateKey, Problem, Scan};

/// The user of the client pair in the valid folder.
const USER: &str = "x";

/// Every file of the valid folder. Each property replaces at most one of them.
const FILES: [&str; 10] = [
    "ca.crt",
    "ca-client.crt",
    "node.crt",
    "node.key",
    "ui.crt",
    "ui.key",
    "client.x.crt",
    "client.x.key",
    "client.node.crt",
    "client.node.key",
];

/// The start of every BEGIN line. A file cut inside it has no block at all.
const BEGIN_PREFIX: &str = "-----BEGIN ";

/// Labels that mean something to rustls or to `PrivateKey::from_pem`, and a lower-case
/// spelling that must not be taken for `CERTIFICATE`.
const KNOWN_LABELS: [&str; 11] = [
    "PUBLIC KEY",
    "RSA PRIVATE KEY",
    "PRIVATE KEY",
    "EC PRIVATE KEY",
    "X509 CRL",
    "CERTIFICATE REQUEST",
    "ECHCONFIG",
    "EC PARAMETERS",
    "ENCRYPTED PRIVATE KEY",
    "CERTIFICATE",
    "certificate",
];

/// Returns the content of every file of a valid certs folder, created once per test binary.
///
/// `ca-client.crt` is a second CA certificate for the same CA key, so `ca.crt` followed by it is
/// a valid bundle of two. Because `ca-client.crt` exists, the node needs `client.node.crt`. Both
/// client pairs are signed by the client CA, the node and UI pairs by `ca.crt`.
fn valid_files() -> &'static [(&'static str, Vec<u8>)] {
    static VALID: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    VALID.get_or_init(|| {
        let folder = Folder::new();
        let key_type = KeyType::EcdsaP256;
        let reuse_key = CaOptions {
            allow_key_reuse: true,
            ..CaOptions::default()
        };
        create_ca(&folder.ca_options(key_type), false).unwrap();
        create_node(&folder.leaf_options(key_type), &common::hosts()).unwrap();
        create_ui(&folder.leaf_options(key_type), &common::hosts()).unwrap();
        create_ca_bundle(&folder.ca_options(key_type), CaBundle::Client, reuse_key).unwrap();
        create_client(&folder.leaf_options(key_type), USER).unwrap();
        create_client(&folder.leaf_options(key_type), "node").unwrap();
        FILES
            .iter()
            .map(|name| (*name, fs::read(folder.cert_file(name)).unwrap()))
            .collect()
    })
}

/// Returns the valid content of `name`.
fn valid(name: &str) -> Vec<u8> {
    let (_, bytes) = valid_files()
        .iter()
        .find(|(file, _)| *file == name)
        .unwrap_or_else(|| panic!("{name} is not a file of the valid folder"));
    bytes.clone()
}

/// Returns `ca.crt` followed by `ca-client.crt`: two CA certificates of one key.
fn ca_bundle() -> Vec<u8> {
    [valid("ca.crt"), valid("ca-client.crt")].concat()
}

/// Returns the DER of every block of a file that must parse.
fn ders(text: &[u8]) -> Vec<Vec<u8>> {
    parse_blocks(text)
        .unwrap()
        .into_iter()
        .map(|block| block.der)
        .collect()
}

/// Returns the byte range of each block of a valid file, from the start of its BEGIN line
/// through the newline that ends its END line.
fn block_ranges(text: &[u8]) -> Vec<Range<usize>> {
    parse_blocks(text)
        .unwrap()
        .iter()
        .map(|block| {
            let end_line = find(text, b"-----END ", block.offset).unwrap();
            let end = find(text, b"\n", end_line).map_or(text.len(), |newline| newline + 1);
            block.offset..end
        })
        .collect()
}

fn find(text: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    text[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| from + position)
}

/// Returns every offset at which a line starts, including the end of a file that ends with a
/// newline.
fn line_starts(text: &[u8]) -> Vec<usize> {
    let after_newlines = text
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .map(|(index, _)| index + 1);
    std::iter::once(0).chain(after_newlines).collect()
}

/// Returns the index of the block whose interior contains `offset`: after the start of its
/// BEGIN line and before the end of its END line.
fn block_containing(ranges: &[Range<usize>], offset: usize) -> Option<usize> {
    ranges
        .iter()
        .position(|range| range.start < offset && offset < range.end)
}

/// Inserts `inserted` into `text` at `offset`.
fn insert(text: &[u8], offset: usize, inserted: &[u8]) -> Vec<u8> {
    [&text[..offset], inserted, &text[offset..]].concat()
}

/// Replaces the label of every BEGIN and END line of a file that contains one kind of block.
fn relabel(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.replace(
        &format!("-----BEGIN {from}-----"),
        &format!("-----BEGIN {to}-----"),
    )
    .replace(
        &format!("-----END {from}-----"),
        &format!("-----END {to}-----"),
    )
    .into_bytes()
}

/// Returns whether `problem` is an error about block `block` (1-based) that names the block or a byte
/// offset inside `range`, as an error about a truncated block must. A cut inside the BEGIN
/// prefix of a block after the first leaves that prefix as data after the last block, so
/// `TrailingData` at the block's start counts too.
fn names_block(problem: &Problem, block: usize, range: &Range<usize>) -> bool {
    match problem {
        Problem::Pem(PemError::Truncated {
            block: index,
            offset,
            ..
        })
        | Problem::Pem(PemError::InvalidBase64 {
            block: index,
            offset,
            ..
        }) => *index == block && *offset == range.start,
        Problem::Pem(PemError::MalformedLine { offset, .. }) => range.contains(offset),
        Problem::Pem(PemError::TrailingData { offset }) => block > 1 && *offset == range.start,
        Problem::Certificate { block: index, .. } => *index == block,
        _ => false,
    }
}

/// Returns the error `PrivateKey::from_pem` must return for a valid PKCS#8 key file whose only block is
/// relabelled `label`, or `None` for another key label. The caller then accepts success or
/// `KeyError::Unsupported`, because aws-lc-rs reads some PKCS#8 keys under an SEC1 label.
fn expected_key_error(label: &str) -> Option<KeyError> {
    if label.contains("Proc-Type: 4,ENCRYPTED") {
        return Some(KeyError::Encrypted);
    }
    match label {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => None,
        "ENCRYPTED PRIVATE KEY" => Some(KeyError::Encrypted),
        "EC PARAMETERS" => Some(KeyError::NoKey),
        _ => Some(KeyError::UnexpectedBlock {
            block: 1,
            label: label.to_owned(),
        }),
    }
}

/// Runs every parser on `bytes` and checks the invariants of any input: no panic, an `Ok` has at
/// least one block, and each block's offset points at its BEGIN line.
fn check_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let block_count = match parse_blocks(bytes) {
        Ok(blocks) => {
            prop_assert!(!blocks.is_empty(), "parse_blocks returned no block");
            for block in &blocks {
                let at_begin = bytes[block.offset..].starts_with(BEGIN_PREFIX.as_bytes());
                prop_assert!(at_begin, "offset {} is not a BEGIN line", block.offset);
                let _ = CertInfo::parse(CertificateDer::from(block.der.clone()));
            }
            Some(blocks.len())
        }
        Err(_) => None,
    };
    if let Ok(certs) = parse_certificates(bytes) {
        prop_assert!(!certs.is_empty(), "parse_certificates returned nothing");
        prop_assert_eq!(Some(certs.len()), block_count);
    }
    let _ = PrivateKey::from_pem(bytes);
    let _ = CertInfo::parse(CertificateDer::from(bytes.to_vec()));
    Ok(())
}

/// Generates one line of text that looks like part of a PEM file.
fn pem_like_line() -> impl Strategy<Value = String> {
    let node_lines: Vec<String> = String::from_utf8(valid("node.crt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let label = select(&KNOWN_LABELS[..]);
    prop_oneof![
        label
            .clone()
            .prop_map(|label| format!("-----BEGIN {label}-----")),
        label.prop_map(|label| format!("-----END {label}-----")),
        "[A-Za-z0-9+/=]{0,64}",
        select(node_lines),
        "[ \t\r]{0,3}",
        "[ -~]{0,20}",
    ]
}

/// Generates a line of junk that is not whitespace and cannot be base64, so it fails inside a block.
fn junk_line() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{0,8}[!#$%&*:;?@~][ -~]{0,16}"
}

/// Generates a label other than `CERTIFICATE`: a known one or any printable ASCII.
fn other_label() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&KNOWN_LABELS[..]).prop_map(str::to_owned),
        "[ -~]{1,24}",
    ]
    .prop_filter("the label must differ", |label| label != "CERTIFICATE")
}

/// Generates whitespace to put before a BEGIN line: empty, or ending with a newline so that the BEGIN
/// line still starts a line.
fn whitespace_line() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,6}".prop_map(|mut gap| {
        if !gap.is_empty() && !gap.ends_with('\n') {
            gap.push('\n');
        }
        gap
    })
}

/// Generates a mutation of the valid file `name`: a truncation, a flipped byte, an inserted junk or
/// whitespace line, the file twice, or its labels changed.
fn mutated(name: &'static str) -> BoxedStrategy<Vec<u8>> {
    let text = valid(name);
    let len = text.len();
    let starts = line_starts(&text);
    let label = if name.ends_with(".key") {
        "PRIVATE KEY"
    } else {
        "CERTIFICATE"
    };
    let truncated = {
        let text = text.clone();
        (0..len).prop_map(move |cut| text[..cut].to_vec())
    };
    let flipped = {
        let text = text.clone();
        (0..len, 1..=u8::MAX).prop_map(move |(index, mask)| {
            let mut text = text.clone();
            text[index] ^= mask;
            text
        })
    };
    let with_line = {
        let text = text.clone();
        let line = prop_oneof![junk_line(), whitespace_line()];
        (select(starts), line)
            .prop_map(move |(offset, line)| insert(&text, offset, format!("{line}\n").as_bytes()))
    };
    let relabelled = {
        let text = text.clone();
        other_label().prop_map(move |to| relabel(&text, label, &to))
    };
    prop_oneof![
        truncated,
        flipped,
        with_line,
        Just(text.repeat(2)),
        relabelled,
    ]
    .boxed()
}

/// Generates a file name of the valid folder with content to replace it: arbitrary bytes, a mutation of
/// its valid content, or the valid content of another file.
fn broken_file() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    select(&FILES[..]).prop_flat_map(|name| {
        let content = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            mutated(name),
            select(&FILES[..]).prop_map(valid),
        ];
        (Just(name), content)
    })
}

/// Writes the valid folder into a new temporary folder, with `name` holding `content`.
fn folder_with(name: &str, content: &[u8]) -> TempDir {
    let temp = TempDir::new().unwrap();
    for (file, bytes) in valid_files() {
        let path = temp.path().join(file);
        let bytes = if *file == name { content } else { bytes };
        fs::write(&path, bytes).unwrap();
        let mode = if file.ends_with(".key") {
            KEY_MODE
        } else {
            CERT_MODE
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    temp
}

/// Returns the usage of the scan entry that reads `name`. A key belongs to the entry of its
/// certificate.
fn usage_of(name: &str) -> CertUsage {
    let cert_name = name.replace(".key", ".crt");
    CertUsage::from_file_name(&cert_name).unwrap()
}

/// Runs the own parser of the file `name` on `content` and returns its problem, if it rejects
/// the content.
fn own_parser_problem(name: &str, content: &[u8]) -> Option<Problem> {
    if name.ends_with(".key") {
        PrivateKey::from_pem(content).err().map(Problem::Key)
    } else {
        parse_certificates(content).err()
    }
}

/// Returns 256 cases per property, or the count in `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are printed with their shrunk input; nothing is written beside this file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parsers_accept_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_parsers(&bytes)?;
    }

    #[test]
    fn parsers_accept_pem_like_text(
        lines in proptest::collection::vec(pem_like_line(), 0..24),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        check_parsers(text.as_bytes())?;
    }

    #[test]
    fn truncated_certificate_is_error(cut in 0..valid("node.crt").len() - 1) {
        // Cutting the last byte only drops the final newline, which leaves a valid file.
        let text = valid("node.crt");
        let result = parse_certificates(&text[..cut]);
        let problem = result.err();
        prop_assert!(problem.is_some(), "cut at {} parsed", cut);
        let problem = problem.unwrap();
        if cut <= BEGIN_PREFIX.len() {
            let no_block = matches!(problem, Problem::Pem(PemError::Empty | PemError::NotPem));
            prop_assert!(no_block, "cut at {}: {:?}", cut, problem);
        } else {
            let range = 0..text.len();
            prop_assert!(names_block(&problem, 1, &range), "cut at {}: {:?}", cut, problem);
        }
    }

    #[test]
    fn truncated_key_is_error(cut in 0..valid("node.key").len() - 1) {
        let text = valid("node.key");
        let error = PrivateKey::from_pem(&text[..cut]).err();
        prop_assert!(error.is_some(), "cut at {} parsed", cut);
        let KeyError::Pem(error) = error.unwrap() else {
            return Err(TestCaseError::fail(format!("cut at {cut}: not a PEM error")));
        };
        let problem = Problem::Pem(error);
        if cut > BEGIN_PREFIX.len() {
            let range = 0..text.len();
            prop_assert!(names_block(&problem, 1, &range), "cut at {}: {:?}", cut, problem);
        }
    }

    #[test]
    fn truncated_bundle_names_cut_block(cut in 0..ca_bundle().len() - 1) {
        let text = ca_bundle();
        let ranges = block_ranges(&text);
        let result = parse_certificates(&text[..cut]);
        if cut <= BEGIN_PREFIX.len() {
            prop_assert!(result.is_err(), "cut at {} parsed", cut);
        } else if cut + 1 >= ranges[0].end && cut <= ranges[1].start {
            // The first block is whole: only its final newline may be missing.
            let certs = result.unwrap();
            prop_assert_eq!(certs.len(), 1);
            prop_assert_eq!(certs[0].der.to_vec(), ders(&text)[0].clone());
        } else {
            let block = if cut < ranges[0].end { 1 } else { 2 };
            let problem = result.err();
            prop_assert!(problem.is_some(), "cut at {} parsed", cut);
            let problem = problem.unwrap();
            let named = names_block(&problem, block, &ranges[block - 1]);
            prop_assert!(named, "cut at {} in block {}: {:?}", cut, block, problem);
        }
    }

    #[test]
    fn flipped_byte_is_one_cert_or_error(
        index in 0..valid("node.crt").len(),
        mask in 1..=u8::MAX,
    ) {
        let original = valid("node.crt");
        let mut text = original.clone();
        text[index] ^= mask;
        let result = parse_certificates(&text);
        if let Ok(certs) = &result {
            prop_assert_eq!(certs.len(), 1);
        }
        let _ = PrivateKey::from_pem(&text);

        // A base64 character of the body turned into neither base64 nor whitespace cannot
        // decode. Newlines are left out: one turned into junk can hide the END line. The
        // decoder skips the bytes from \t to \r and spaces.
        let body_start = find(&original, b"\n", 0).unwrap() + 1;
        let body_end = find(&original, b"-----END ", 0).unwrap();
        let in_body = (body_start..body_end).contains(&index) && original[index] != b'\n';
        let byte = text[index];
        let base64_or_space = byte.is_ascii_alphanumeric()
            || b"+/=".contains(&byte)
            || matches!(byte, b'\t'..=b'\r' | b' ');
        if in_body && !base64_or_space {
            let invalid = matches!(
                result,
                Err(Problem::Pem(PemError::InvalidBase64 { block: 1, offset: 0, .. }))
            );
            prop_assert!(invalid, "byte {:#04x} at {}: {:?}", byte, index, result.err());
        }
    }

    #[test]
    fn whitespace_between_blocks_keeps_der(
        before in whitespace_line(),
        between in whitespace_line(),
        after in "[ \t\r\n]{0,6}",
    ) {
        let ca = valid("ca.crt");
        let client_ca = valid("ca-client.crt");
        let text = [before.as_bytes(), &ca, between.as_bytes(), &client_ca, after.as_bytes()]
            .concat();
        let blocks = parse_blocks(&text).unwrap();
        let offsets: Vec<usize> = blocks.iter().map(|block| block.offset).collect();
        let second = before.len() + ca.len() + between.len();
        prop_assert_eq!(offsets, vec![before.len(), second]);
        let found: Vec<Vec<u8>> = blocks.into_iter().map(|block| block.der).collect();
        prop_assert_eq!(found, ders(&ca_bundle()));
        prop_assert_eq!(parse_certificates(&text).unwrap().len(), 2);
    }

    #[test]
    fn trailing_whitespace_on_markers_keeps_der(
        // NOTE: a tab after a BEGIN line is rejected (see tab_after_begin_line_is_accepted), so
        // BEGIN lines get only spaces and carriage returns here.
        begin_pad in "[ \r]{0,4}",
        end_pad in "[ \t\r]{0,4}",
    ) {
        let original = valid("node.crt");
        let text = String::from_utf8(original.clone()).unwrap()
            .replacen("CERTIFICATE-----\n", &format!("CERTIFICATE-----{begin_pad}\n"), 1)
            .replace("-----END CERTIFICATE-----\n", &format!("-----END CERTIFICATE-----{end_pad}\n"));
        prop_assert_eq!(ders(text.as_bytes()), ders(&original));
    }

    #[test]
    fn junk_line_fails_unless_before_block(
        line in select(line_starts(&ca_bundle())),
        junk in junk_line(),
    ) {
        let original = ca_bundle();
        let ranges = block_ranges(&original);
        let text = insert(&original, line, format!("{junk}\n").as_bytes());
        let result = parse_blocks(&text);
        let last_end = ranges[ranges.len() - 1].end;
        if let Some(index) = block_containing(&ranges, line) {
            let invalid = matches!(
                &result,
                Err(PemError::InvalidBase64 { block, offset, .. })
                    if *block == index + 1 && *offset == ranges[index].start
            );
            prop_assert!(invalid, "junk at {} in block {}: {:?}", line, index + 1, result);
        } else if line >= last_end {
            prop_assert_eq!(result, Err(PemError::TrailingData { offset: line }));
        } else {
            // Text before a BEGIN line is allowed, as OpenSSL writes "Bag Attributes" there.
            let found: Vec<Vec<u8>> = result.unwrap().into_iter().map(|block| block.der).collect();
            prop_assert_eq!(found, ders(&original));
        }
    }

    #[test]
    fn blocks_parse_in_file_order(picks in proptest::collection::vec(0..4usize, 1..6)) {
        let pool = ["ca.crt", "ca-client.crt", "node.crt", "ui.crt"].map(valid);
        let text: Vec<u8> = picks.iter().flat_map(|pick| pool[*pick].clone()).collect();
        let blocks = parse_blocks(&text).unwrap();
        let mut offset = 0;
        for (block, pick) in blocks.iter().zip(&picks) {
            prop_assert_eq!(block.offset, offset);
            prop_assert_eq!(&block.der, &ders(&pool[*pick])[0]);
            offset += pool[*pick].len();
        }
        prop_assert_eq!(blocks.len(), picks.len());
        prop_assert_eq!(parse_certificates(&text).unwrap().len(), picks.len());
    }

    #[test]
    fn ca_bundle_order_keeps_node_trusted(picks in proptest::collection::vec(0..2usize, 1..5)) {
        let pool = ["ca.crt", "ca-client.crt"].map(valid);
        let bundle: Vec<u8> = picks.iter().flat_map(|pick| pool[*pick].clone()).collect();
        let temp = folder_with("ca.crt", &bundle);
        let scan = Scan::read(temp.path(), NOW).unwrap();
        prop_assert!(!scan.has_errors(), "{:?}", scan);

        // node.crt is signed by the certificate of ca.crt, not by the client CA.
        let loaded = NodeCerts::from_scan(scan, NOW);
        if picks.contains(&0) {
            let certs = loaded.unwrap();
            prop_assert_eq!(certs.ca_certs.len(), picks.len());
            // NOTE: both CA certificates share one key, and the issuer is matched by key alone,
            // so it may be either of them (see node_issuer_is_signing_ca).
            let issuer = certs.node.issuer.der.to_vec();
            prop_assert!(ders(&bundle).contains(&issuer), "the issuer is not in ca.crt");
        } else {
            let error = loaded.unwrap_err();
            prop_assert_eq!(error.path, temp.path().join("node.crt"));
            let untrusted = matches!(error.problem, Problem::Untrusted { .. });
            prop_assert!(untrusted, "{:?}", error.problem);
        }
    }

    #[test]
    fn changed_label_is_not_certificate(label in other_label()) {
        let original = valid("node.crt");
        let text = relabel(&original, "CERTIFICATE", &label);
        let blocks = parse_blocks(&text).unwrap();
        prop_assert_eq!(blocks.len(), 1);
        prop_assert_eq!(&blocks[0].label, &label);
        prop_assert_eq!(&blocks[0].der, &ders(&original)[0]);
        let expected = Problem::NotCertificate { block: 1, label: label.clone() };
        prop_assert_eq!(parse_certificates(&text).err(), Some(expected));
    }

    #[test]
    fn changed_begin_label_is_mismatched_end(label in other_label()) {
        let text = String::from_utf8(valid("node.crt")).unwrap()
            .replacen("BEGIN CERTIFICATE", &format!("BEGIN {label}"), 1);
        let expected = PemError::MismatchedEnd {
            block: 1,
            offset: 0,
            begin: label.clone(),
            end: "CERTIFICATE".to_owned(),
        };
        prop_assert_eq!(parse_blocks(text.as_bytes()).err(), Some(expected));
    }

    #[test]
    fn changed_key_label_is_rejected(
        label in other_label().prop_filter("the key's own label", |label| label != "PRIVATE KEY"),
    ) {
        let text = relabel(&valid("node.key"), "PRIVATE KEY", &label);
        let result = PrivateKey::from_pem(&text);
        match expected_key_error(&label) {
            Some(expected) => prop_assert_eq!(result.err(), Some(expected)),
            None => {
                let allowed = matches!(result, Ok(_) | Err(KeyError::Unsupported(_)));
                prop_assert!(allowed, "{:?}: {:?}", label, result);
            }
        }
    }

    #[test]
    fn scan_confines_broken_file((name, content) in broken_file()) {
        let temp = folder_with(name, &content);
        let scan = Scan::read(temp.path(), NOW).unwrap();
        let broken = usage_of(name);
        for entry in scan.entries.iter().filter(|entry| entry.usage != broken) {
            prop_assert!(
                entry.error.is_none(),
                "{:?} failed although only {} changed: {:?}",
                entry.usage,
                name,
                entry.error
            );
        }
        let entry = scan.entry(&broken);
        prop_assert!(entry.is_some(), "no entry for {}", name);
        let entry = entry.unwrap();
        if let Some(problem) = own_parser_problem(name, &content) {
            let error = entry.error.as_ref();
            prop_assert!(error.is_some(), "{} is rejected by its parser but loads", name);
            let error = error.unwrap();
            prop_assert_eq!(&error.problem, &problem);
            prop_assert_eq!(&error.path, &temp.path().join(name));
        }
        if content == valid(name) {
            prop_assert!(!scan.has_errors(), "{:?}", scan);
        }

        // A node never uses client.x.*, so a broken pair of that user only adds a warning.
        let loaded = NodeCerts::from_scan(scan, NOW);
        if name.starts_with("client.x.") {
            prop_assert!(loaded.is_ok(), "{} stopped the node: {:?}", name, loaded.err());
        }
    }
}

/// A `\r` inside a block line could hide a second END marker and the text after it, because a
/// decoder that splits lines at `\r` stops at that marker. Such a block must be rejected.
#[test]
fn carriage_return_cannot_hide_data() {
    for (name, label) in [("node.crt", "CERTIFICATE"), ("node.key", "PRIVATE KEY")] {
        let original = String::from_utf8(valid(name)).unwrap();
        let end_line = format!("-----END {label}-----\n");
        let hidden =
            format!("\r-----END {label}-----\rthis text is not part of the key or certificate\n");
        let text = original.replacen(&format!("\n{end_line}"), &format!("{hidden}{end_line}"), 1);
        assert_ne!(text, original, "the END line of {name} was not found");

        let blocks = parse_blocks(text.as_bytes()).map(|blocks| blocks.len());
        assert!(
            blocks.is_err(),
            "{name} with hidden data parsed: {blocks:?} block(s)"
        );
    }
}

/// A tab after a BEGIN line is whitespace, as a space is, and leaves the DER unchanged.
#[test]
fn tab_after_begin_line_is_accepted() {
    let original = valid("node.crt");
    let text = String::from_utf8(original.clone()).unwrap().replacen(
        "CERTIFICATE-----\n",
        "CERTIFICATE-----\t\n",
        1,
    );
    let blocks = parse_blocks(text.as_bytes());
    assert!(blocks.is_ok(), "{blocks:?}");
    assert_eq!(ders(text.as_bytes()), ders(&original));
}

/// The issuer reported for `node.crt` is the CA certificate that signed it, even when another
/// CA certificate in `ca.crt` has the same key and comes first.
#[test]
fn node_issuer_is_signing_ca() {
    let bundle = [valid("ca-client.crt"), valid("ca.crt")].concat();
    let temp = folder_with("ca.crt", &bundle);
    let scan = Scan::read(temp.path(), NOW).unwrap();
    let certs = NodeCerts::from_scan(scan, NOW).unwrap();
    assert_eq!(certs.node.issuer.subject, certs.node.leaf().issuer);
    assert_eq!(certs.node.issuer.der.to_vec(), ders(&valid("ca.crt"))[0]);
}

#[test]
fn crlf_line_endings_keep_der() {
    let bundle = String::from_utf8(ca_bundle()).unwrap();
    let crlf = bundle.replace('\n', "\r\n");
    assert_eq!(ders(crlf.as_bytes()), ders(bundle.as_bytes()));
    let key = String::from_utf8(valid("node.key")).unwrap();
    let key_crlf = key.replace('\n', "\r\n");
    assert!(PrivateKey::from_pem(key_crlf.as_bytes()).is_ok());
}
