//! The demo: a live rotation of client, node and CA certificates with zero failed queries.

mod common;

use std::process::Command;

#[test]
fn demo_rotates_without_failed_queries() {
    let output = Command::new(common::tumbler_bin())
        .arg("demo")
        .output()
        .expect("run demo");
    let text = common::stdout(&output);

    assert!(
        output.status.success(),
        "demo failed:\n{text}\n{}",
        common::stderr(&output)
    );
    assert!(text.contains("queries failed:       0"), "{text}");
    assert!(text.contains("connections refused:  0"), "{text}");
    assert!(text.contains("(never changed)"), "{text}");
    let ca_rows = text
        .lines()
        .filter(|line| line.trim_start().starts_with("CA "))
        .count();
    // One CA row after start and after the node rotation, two after each CA rotation step.
    assert_eq!(ca_rows, 6, "{text}");
}
