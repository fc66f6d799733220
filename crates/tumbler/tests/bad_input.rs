//! Invalid certificates at start-up and on SIGHUP: a clear error, and a running node keeps
//! serving its old certificate.

mod common;

use std::time::Duration;

use common::{Workspace, start_expecting_failure};

/// Each case breaks the certs folder in one way, and names the file and reason the error gives.
struct Case {
    name: &'static str,
    expected: &'static [&'static str],
    break_folder: fn(&Workspace),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "mismatched key",
            expected: &["node.key", "does not match", "node.crt"],
            break_folder: |workspace| {
                let other = Workspace::with_certs();
                std::fs::copy(other.path("node.key"), workspace.path("node.key"))
                    .expect("copy key");
            },
        },
        Case {
            name: "foreign CA",
            expected: &[
                "node.crt",
                "not signed by any valid CA certificate in ca.crt",
            ],
            break_folder: |workspace| {
                let other = Workspace::with_certs();
                std::fs::copy(other.path("node.crt"), workspace.path("node.crt"))
                    .expect("copy cert");
                std::fs::copy(other.path("node.key"), workspace.path("node.key"))
                    .expect("copy key");
            },
        },
        Case {
            name: "empty node.crt",
            expected: &["node.crt", "empty"],
            break_folder: |workspace| {
                std::fs::write(workspace.path("node.crt"), b"").expect("truncate");
            },
        },
        Case {
            name: "expired node.crt",
            expected: &["node.crt", "expired at"],
            break_folder: |workspace| {
                workspace.cert_ok(&[
                    "create-node",
                    "localhost",
                    "127.0.0.1",
                    "--overwrite",
                    "--lifetime=1s",
                ]);
                std::thread::sleep(Duration::from_millis(2100));
            },
        },
    ]
}

#[test]
fn start_rejects_invalid_certificates() {
    for case in cases() {
        let workspace = Workspace::with_certs();
        (case.break_folder)(&workspace);

        let (status, log) = start_expecting_failure(&workspace.certs, workspace.dir.path());

        assert!(!status.success(), "{}: node started", case.name);
        for text in case.expected {
            assert!(
                log.contains(text),
                "{}: log lacks {text:?}:\n{log}",
                case.name
            );
        }
    }
}

#[test]
fn sighup_keeps_old_certificate_on_invalid_input() {
    for case in cases() {
        let workspace = Workspace::with_certs();
        let mut node = workspace.start_node();
        let serial = node.sql_serial();
        (case.break_folder)(&workspace);

        let event = node.reload();

        assert!(
            event.contains("result=\"failure\""),
            "{}: {event}",
            case.name
        );
        for text in case.expected {
            assert!(
                event.contains(text),
                "{}: event lacks {text:?}: {event}",
                case.name
            );
        }
        assert!(node.is_running(), "{}: node exited", case.name);
        assert_eq!(
            node.sql_serial(),
            serial,
            "{}: served certificate changed",
            case.name
        );
        assert_eq!(
            node.admin_serial(),
            serial,
            "{}: admin certificate changed",
            case.name
        );
        let output = node.psql("root", "SELECT 1");
        assert!(
            output.status.success(),
            "{}: psql failed: {}",
            case.name,
            common::stderr(&output)
        );
    }
}
