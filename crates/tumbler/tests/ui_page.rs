//! The Admin UI certificates page in headless Chromium, opened with root's client certificate
//! by `ui-tests/certificates-page.mjs` (Playwright), and compared with the status API and with
//! what `openssl x509` reads from the files.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{Node, Workspace, file_not_after, file_serial};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The browser the script launches; scripts/test installs it from Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one page load may take, Chromium's start-up included.
const RENDER_TIMEOUT: Duration = Duration::from_secs(90);

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Returns the folder with the browser script and its `node_modules`.
fn ui_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui-tests")
}

/// Fails the test, naming the fix, when a tool the browser script needs is missing.
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "node did not run ({node:?}); install Node.js 20 or newer, then run scripts/test"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found; run scripts/test, which installs Debian's chromium package"
    );
    let playwright = ui_tests_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} not found; run scripts/test, which runs npm ci in ui-tests",
        playwright.display()
    );
}

/// The browser script, running with one page open, stopped by its PID when dropped.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Browser {
    /// Starts the script on the node's certificates page with `client.root.*`, trusting the
    /// node's `ca.crt`, and saves a screenshot of the first load to `screenshot` if given.
    fn open(node: &Node, scratch: &Path, screenshot: Option<&Path>) -> Self {
        require_browser_tools();

        let url = format!(
            "https://127.0.0.1:{}/#/reports/certificates/local",
            node.http_port
        );
        let ca = node.certs.join("ca.crt");
        let stderr = scratch.join("browser.stderr");
        let stderr_file = std::fs::File::create(&stderr).expect("create browser stderr file");
        let mut command = Command::new("node");
        command
            .arg(ui_tests_dir().join("certificates-page.mjs"))
            .arg("--url")
            .arg(&url)
            .arg("--cert")
            .arg(node.certs.join("client.root.crt"))
            .arg("--key")
            .arg(node.certs.join("client.root.key"))
            .arg("--ca")
            .arg(&ca);
        if let Some(screenshot) = screenshot {
            command.arg("--screenshot").arg(screenshot);
        }
        // Playwright's client-certificate proxy checks the node's certificate against Node.js's
        // trust store, which takes the test CA from this variable at start-up.
        let mut child = command
            .env("NODE_EXTRA_CA_CERTS", &ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .expect("start node ui-tests/certificates-page.mjs");

        // A thread reads stdout, so `rendered` can time out on a script that hangs.
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("browser script stdout"));
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });

        Self {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Waits for the next page the script prints and parses it.
    fn rendered(&mut self) -> Value {
        let line = match self.lines.recv_timeout(RENDER_TIMEOUT) {
            Ok(line) => line,
            Err(error) => panic!(
                "browser script printed no page within {RENDER_TIMEOUT:?} ({error}); \
                 exit status {:?}; stderr:\n{}",
                self.child.try_wait(),
                self.stderr_text()
            ),
        };
        serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("browser script printed invalid JSON ({error}): {line}"))
    }

    /// Reloads the page in the same browser and returns what it shows then.
    fn reload(&mut self) -> Value {
        let stdin = self.stdin.as_mut().expect("browser script stdin");
        writeln!(stdin, "reload").expect("write to browser script");
        stdin.flush().expect("flush browser script stdin");
        self.rendered()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Browser {
    /// Closing stdin makes the script close Chromium and exit. If it does not, SIGTERM lets
    /// Playwright close Chromium before Node.js exits; SIGKILL is the last resort.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.wait_exit(Duration::from_secs(10)) {
            return;
        }
        let _ = kill(self.pid(), Signal::SIGTERM);
        if self.wait_exit(Duration::from_secs(5)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Formats a time as the page shows Valid From and Valid Until: UTC, to the second.
fn page_time(time: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("format a time")
}

/// Formats a status API time (Unix nanoseconds as a string) as the page shows it.
fn status_time(nanos: &Value) -> String {
    let nanos: i128 = nanos
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("status API time is not a nanosecond string: {nanos}"));
    page_time(time::OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("time in range"))
}

/// Returns the certificate tables of the section whose heading is `heading`.
fn section<'a>(page: &'a Value, heading: &str) -> &'a [Value] {
    let sections = page["sections"].as_array().expect("sections list");
    let found = sections
        .iter()
        .find(|section| section["heading"] == heading);
    let found = found.unwrap_or_else(|| panic!("page has no section {heading:?}: {page}"));
    found["certificates"].as_array().expect("certificates list")
}

/// Fails the test when the page shows an error, a red message, a script error or a failed
/// request.
fn assert_page_clean(page: &Value) {
    assert!(page["error"].is_null(), "page shows an error: {page}");
    assert_eq!(
        page["alerts"],
        serde_json::json!([]),
        "page shows alerts: {page}"
    );
    assert_eq!(
        page["pageErrors"],
        serde_json::json!([]),
        "page logged errors: {page}"
    );
    assert_eq!(
        page["failedRequests"],
        serde_json::json!([]),
        "page had failed requests: {page}"
    );
}

/// Checks that the one certificate in `section` is the one in `file`, as `openssl x509` reads
/// it: same serial, and Valid Until equal to its Not After.
fn assert_shows_file(section: &[Value], file: &Path) {
    assert_eq!(section.len(), 1, "expected one certificate: {section:?}");
    let table = &section[0];
    assert_eq!(
        table["Serial"],
        file_serial(file).as_str(),
        "serial of {}: {table}",
        file.display()
    );
    assert_eq!(
        table["Valid Until"],
        page_time(file_not_after(file)).as_str(),
        "Valid Until of {}: {table}",
        file.display()
    );
}

#[test]
fn page_matches_status_api() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let mut browser = Browser::open(&node, workspace.dir.path(), None);

    let page = browser.rendered();
    let status = node.status();

    assert_page_clean(&page);
    assert_eq!(page["title"], "Local Node certificates", "{page}");
    let entries = status["certificates"]
        .as_array()
        .expect("certificates list");
    let sections = page["sections"].as_array().expect("sections list");
    assert_eq!(
        sections.len(),
        entries.len(),
        "one section per certificate file; page: {page}; status: {status}"
    );
    for (section, entry) in sections.iter().zip(entries) {
        let heading = section["heading"].as_str().expect("heading text");
        let file = entry["file"].as_str().expect("file name");
        assert!(
            heading.ends_with(&format!(" ({file})")),
            "section {heading:?} for {file}"
        );
        let tables = section["certificates"]
            .as_array()
            .expect("certificates list");
        let certificates = entry["fields"].as_array().expect("fields list");
        assert_eq!(
            tables.len(),
            certificates.len(),
            "certificates of {file}: {section}"
        );
        for (table, fields) in tables.iter().zip(certificates) {
            assert_eq!(
                table["Serial"], fields["serial"],
                "serial in {file}: {table}"
            );
            assert_eq!(
                table["Valid Until"],
                status_time(&fields["validUntil"]).as_str(),
                "Valid Until in {file}: {table}; validUntil {}",
                fields["validUntil"]
            );
            assert_eq!(
                table["Valid From"],
                status_time(&fields["validFrom"]).as_str(),
                "Valid From in {file}: {table}; validFrom {}",
                fields["validFrom"]
            );
        }
    }
}

#[test]
fn page_matches_openssl() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let screenshot = workspace.dir.path().join("certificates.png");
    let mut browser = Browser::open(&node, workspace.dir.path(), Some(&screenshot));

    let page = browser.rendered();

    assert_page_clean(&page);
    assert_shows_file(
        section(&page, "Certificate Authority (ca.crt)"),
        &workspace.path("ca.crt"),
    );
    assert_shows_file(
        section(&page, "Node Certificate (node.crt)"),
        &workspace.path("node.crt"),
    );
    assert_shows_file(
        section(&page, "Client Certificate (client.root.crt)"),
        &workspace.path("client.root.crt"),
    );
    let png = std::fs::read(&screenshot).expect("read the screenshot");
    assert!(
        png.len() > PNG_SIGNATURE.len(),
        "screenshot {} has {} bytes",
        screenshot.display(),
        png.len()
    );
    assert!(
        png.starts_with(PNG_SIGNATURE),
        "screenshot {} is not a PNG; first bytes {:?}",
        screenshot.display(),
        &png[..png.len().min(8)]
    );
}

#[test]
fn page_shows_rotated_node_cert() {
    let workspace = Workspace::with_certs();
    let node = workspace.start_node();
    let mut browser = Browser::open(&node, workspace.dir.path(), None);
    let before = browser.rendered();
    assert_page_clean(&before);
    let old_node = section(&before, "Node Certificate (node.crt)")[0].clone();
    let old_ca = section(&before, "Certificate Authority (ca.crt)").to_vec();

    // A shorter lifetime than the first certificate's, so Valid Until changes too.
    workspace.cert_ok(&[
        "create-node",
        "localhost",
        "127.0.0.1",
        "::1",
        "--lifetime=8760h",
        "--overwrite",
    ]);
    let event = node.reload();
    let after = browser.reload();

    assert!(event.contains("result=\"success\""), "{event}");
    assert_page_clean(&after);
    let new_node = section(&after, "Node Certificate (node.crt)");
    assert_shows_file(new_node, &workspace.path("node.crt"));
    assert_ne!(new_node[0]["Serial"], old_node["Serial"], "{after}");
    assert_ne!(
        new_node[0]["Valid Until"], old_node["Valid Until"],
        "{after}"
    );
    assert_eq!(
        section(&after, "Certificate Authority (ca.crt)"),
        old_ca.as_slice(),
        "CA section changed: {after}"
    );
}
