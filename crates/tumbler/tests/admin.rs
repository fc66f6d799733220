//! The HTTPS admin port of a running node, read with curl and openssl.

mod common;

use std::process::Command;

use common::{Node, Workspace, file_not_after, file_not_before, file_serial, stderr};

/// The status code, content type and body of one curl request.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// Separates the body from the values that `curl -w` appends after it.
const TRAILER: &str = "\n--curl-write-out--\n";

/// Sends `GET path` to the node's admin port, with the client pair `client.USER.*` if given.
fn get(node: &Node, path: &str, user: Option<&str>) -> Response {
    let mut command = Command::new("curl");
    command
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(node.certs.join("ca.crt"))
        .arg("-w")
        .arg(format!("{TRAILER}%{{http_code}} %{{content_type}}"));
    if let Some(user) = user {
        command
            .arg("--cert")
            .arg(node.certs.join(format!("client.{user}.crt")))
            .arg("--key")
            .arg(node.certs.join(format!("client.{user}.key")));
    }
    let output = command
        .arg(format!("https://127.0.0.1:{}{path}", node.http_port))
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl GET {path} failed: {}",
        stderr(&output)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, trailer) = text
        .rsplit_once(TRAILER)
        .unwrap_or_else(|| panic!("curl printed no trailer: {text}"));
    let (code, content_type) = trailer.split_once(' ').unwrap_or((trailer, ""));
    Response {
        status: code.parse().expect("curl printed an HTTP status"),
        content_type: content_type.to_owned(),
        body: body.to_owned(),
    }
}

/// Unix nanoseconds as a decimal string, the form the status API writes times in.
fn unix_nanos(time: time::OffsetDateTime) -> String {
    time.unix_timestamp_nanos().to_string()
}

/// Finds the only entry of `kind` in a status response.
fn entry<'a>(status: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let matching: Vec<&serde_json::Value> = status["certificates"]
        .as_array()
        .expect("certificates list")
        .iter()
        .filter(|entry| entry["type"] == kind)
        .collect();
    assert_eq!(matching.len(), 1, "{kind} entries in {status:#}");
    matching[0]
}

const FIELD_NAMES: [&str; 10] = [
    "issuer",
    "subject",
    "validFrom",
    "validUntil",
    "addresses",
    "signatureAlgorithm",
    "publicKey",
    "keyUsage",
    "extendedKeyUsage",
    "serial",
];

/// Fields that are JSON strings. Times are strings too, because they are int64 nanoseconds.
const STRING_FIELDS: [&str; 7] = [
    "issuer",
    "subject",
    "validFrom",
    "validUntil",
    "signatureAlgorithm",
    "publicKey",
    "serial",
];

const LIST_FIELDS: [&str; 3] = ["addresses", "keyUsage", "extendedKeyUsage"];

#[test]
fn health_needs_no_client_certificate() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let response = get(&node, "/health", None);

    assert_eq!(response.status, 200, "GET /health: {response:?}");
    assert_eq!(response.body.trim(), "ok", "GET /health: {response:?}");
}

#[test]
fn status_without_certificate_is_401() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let response = get(&node, "/_status/certificates/local", None);

    assert_eq!(
        response.status, 401,
        "GET without a certificate: {response:?}"
    );
    assert!(
        response.body.contains("root"),
        "401 body does not say which user is needed: {response:?}"
    );
}

#[test]
fn status_for_other_user_is_403() {
    let workspace = Workspace::with_certs();
    workspace.cert_ok(&["create-client", "alice"]);
    let node = workspace.start_node();

    let response = get(&node, "/_status/certificates/local", Some("alice"));

    assert_eq!(response.status, 403, "GET as alice: {response:?}");
    assert!(
        response.body.contains("alice"),
        "403 body does not name the user: {response:?}"
    );
}

#[test]
fn status_lists_certificate_fields() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let response = get(&node, "/_status/certificates/local", Some("root"));

    assert_eq!(response.status, 200, "GET as root: {response:?}");
    assert!(
        response.content_type.starts_with("application/json"),
        "content type: {response:?}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&response.body).expect("status API returns JSON");
    for kind in ["CA", "NODE", "CLIENT"] {
        let entry = entry(&status, kind);
        assert_eq!(
            entry["errorMessage"], "",
            "{kind} entry has an error: {entry:#}"
        );
        let fields = entry["fields"].as_array().expect("fields list");
        assert_eq!(fields.len(), 1, "{kind} fields: {entry:#}");
        for name in FIELD_NAMES {
            assert!(
                fields[0].get(name).is_some(),
                "{kind} fields lack {name}: {entry:#}"
            );
        }
        for name in STRING_FIELDS {
            assert!(
                fields[0][name].is_string(),
                "{kind} {name} is not a string: {entry:#}"
            );
        }
        for name in LIST_FIELDS {
            assert!(
                fields[0][name].is_array(),
                "{kind} {name} is not a list: {entry:#}"
            );
        }
    }
}

#[test]
fn status_node_matches_node_crt() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let node_crt = workspace.path("node.crt");

    let status = node.status();

    let fields = &entry(&status, "NODE")["fields"][0];
    assert_eq!(
        fields["serial"],
        file_serial(&node_crt).as_str(),
        "serial: {fields:#}"
    );
    assert_eq!(
        fields["validUntil"],
        unix_nanos(file_not_after(&node_crt)).as_str(),
        "validUntil is not Not After in Unix nanoseconds: {fields:#}"
    );
    assert_eq!(
        fields["validFrom"],
        unix_nanos(file_not_before(&node_crt)).as_str(),
        "validFrom is not Not Before in Unix nanoseconds: {fields:#}"
    );
    let addresses = fields["addresses"].as_array().expect("addresses list");
    for address in ["localhost", "127.0.0.1", "::1"] {
        assert!(
            addresses.iter().any(|value| value == address),
            "addresses lack {address}: {fields:#}"
        );
    }
    assert_eq!(
        fields["extendedKeyUsage"],
        serde_json::json!(["ServerAuth", "ClientAuth"]),
        "extendedKeyUsage: {fields:#}"
    );
}

#[test]
fn status_ca_matches_ca_crt() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let ca_crt = workspace.path("ca.crt");

    let status = node.status();

    let ca = &entry(&status, "CA")["fields"][0];
    let node_fields = &entry(&status, "NODE")["fields"][0];
    assert_eq!(
        ca["serial"],
        file_serial(&ca_crt).as_str(),
        "serial: {ca:#}"
    );
    assert_eq!(
        ca["validUntil"],
        unix_nanos(file_not_after(&ca_crt)).as_str(),
        "validUntil: {ca:#}"
    );
    assert_eq!(
        node_fields["issuer"], ca["subject"],
        "node issuer is not the CA subject: {status:#}"
    );
}

#[test]
fn root_page_serves_html() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();

    let response = get(&node, "/", None);

    assert_eq!(response.status, 200, "GET /: {response:?}");
    assert!(
        response.content_type.starts_with("text/html"),
        "content type: {response:?}"
    );
    assert!(
        response.body.contains("reports/certificates"),
        "page does not link the certificates report: {}",
        response.body
    );
}

#[test]
fn admin_serves_node_certificate() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let expected = file_serial(&workspace.path("node.crt"));
    assert!(!expected.is_empty(), "node.crt has no serial");

    let served = node.admin_serial();

    assert_eq!(served, expected, "serial served on the admin port");
}
