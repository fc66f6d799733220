//! A bounded soak: 50 SIGHUPs a second for 10 seconds, each after an atomic swap of the node
//! pair, with SQL load running throughout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Node, Workspace, file_serial};
use time::OffsetDateTime;
use tumbler_pki::create::{CreateOptions, create_node};
use tumbler_pki::lifetime::DEFAULT_LEAF_LIFETIME;
use tumbler_pki::{KeyType, names};

const SIGNALS_PER_SECOND: u64 = 50;
const SOAK: Duration = Duration::from_secs(10);
/// Distinct node pairs made before the storm and swapped in, in turn, one per signal.
const PAIRS: u64 = 50;

/// A certs folder whose files are symlinks into `..data`, itself a symlink to one version
/// folder: swapping `..data` replaces every file at once, as Kubernetes secret volumes do.
struct SwappedFolder {
    mount: PathBuf,
}

impl SwappedFolder {
    /// A mount whose files link into `..data`, which points at version 0.
    fn new(mount: &Path, file_names: &[&str]) -> Self {
        for name in file_names {
            let target = Path::new("..data").join(name);
            std::os::unix::fs::symlink(target, mount.join(name)).expect("link file");
        }
        let folder = Self {
            mount: mount.to_owned(),
        };
        folder.swap_to(0);
        folder
    }

    /// Points `..data` at `version` with one rename.
    fn swap_to(&self, version: u64) {
        let link = self.mount.join("..data.next");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("..v{version}"), &link).expect("link version");
        std::fs::rename(&link, self.mount.join("..data")).expect("swap ..data");
    }
}

/// Writes version folders 0 to `PAIRS - 1` under `mount`, each with the shared files and its
/// own node pair, and returns each version's node serial.
fn make_versions(workspace: &Workspace, mount: &Path, files: &[&str]) -> Vec<String> {
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut serials = Vec::new();
    for version in 0..PAIRS {
        let dir = mount.join(format!("..v{version}"));
        std::fs::create_dir_all(&dir).expect("create version folder");
        for name in files {
            std::fs::copy(workspace.path(name), dir.join(name)).expect("copy file");
        }
        let options = CreateOptions {
            certs_dir: dir.clone(),
            ca_key: workspace.ca_key.clone(),
            overwrite: true,
            lifetime: DEFAULT_LEAF_LIFETIME,
            key_type: KeyType::EcdsaP256,
            now: OffsetDateTime::now_utc(),
        };
        create_node(&options, &hosts).expect("create node pair");
        serials.push(file_serial(&dir.join(names::NODE_CERT)));
    }
    serials
}

fn pgbench_script(dir: &Path) -> PathBuf {
    let script = dir.join("soak.sql");
    std::fs::write(
        &script,
        "INSERT INTO soak (note) VALUES ('x');\nSELECT count(*) FROM soak;\n",
    )
    .expect("write script");
    script
}

#[test]
fn sighup_storm_with_swapped_pairs() {
    let workspace = Workspace::with_certs();
    let mount = workspace.dir.path().join("mounted");
    let files = [
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    ];
    let pairs = make_versions(&workspace, &mount, &files);
    let folder = SwappedFolder::new(&mount, &files);
    let mut node = Node::start(&mount, workspace.dir.path());
    let setup = node.psql(
        "root",
        "CREATE TABLE soak (id INTEGER PRIMARY KEY, note TEXT)",
    );
    assert!(setup.status.success(), "{}", common::stderr(&setup));

    let pgbench = Command::new("pgbench")
        .args(["-n", "-c", "2", "-T", "13", "-f"])
        .arg(pgbench_script(workspace.dir.path()))
        .arg(node.conninfo("root", &mount))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgbench");

    let stop = Arc::new(AtomicBool::new(false));
    let (connections_ok, connections_failed) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let connector = {
        let (stop, ok, failed) = (
            stop.clone(),
            connections_ok.clone(),
            connections_failed.clone(),
        );
        let conninfo = node.conninfo("root", &mount);
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let output = Command::new("psql")
                    .arg(&conninfo)
                    .args(["-X", "-At", "-c", "SELECT 1"])
                    .output()
                    .expect("run psql");
                if output.status.success() {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    errors.push(common::stderr(&output));
                }
            }
            errors
        })
    };

    let pause = Duration::from_micros(1_000_000 / SIGNALS_PER_SECOND);
    let started = Instant::now();
    let mut signals = 0u64;
    let mut version = 0;
    while started.elapsed() < SOAK {
        version = signals % (PAIRS - 1) + 1;
        folder.swap_to(version);
        node.sighup();
        signals += 1;
        let next = started + pause * u32::try_from(signals).expect("signal count fits u32");
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let last_serial = pairs[usize::try_from(version).expect("version fits usize")].clone();

    std::thread::sleep(Duration::from_secs(1));
    let final_event = node.reload();
    stop.store(true, Ordering::SeqCst);
    let connect_errors = connector.join().expect("connector thread");
    let pgbench = pgbench.wait_with_output().expect("pgbench output");
    let pgbench_text = common::stdout(&pgbench);

    assert!(node.is_running(), "node exited during the storm");
    assert!(signals >= 400, "only {signals} signals were sent");
    assert_eq!(
        node.sql_serial(),
        last_serial,
        "the last pair written is not served"
    );
    assert_eq!(
        node.admin_serial(),
        last_serial,
        "the admin port serves another pair"
    );
    assert!(
        final_event.contains("result=\"unchanged\""),
        "{final_event}"
    );
    let events = node.reload_events();
    assert!(
        events.len() as u64 <= signals + 1,
        "{} events for {signals} signals",
        events.len()
    );
    let failures: Vec<&String> = events
        .iter()
        .filter(|event| event.contains("result=\"failure\""))
        .collect();
    assert!(failures.is_empty(), "failed reloads: {failures:?}");
    assert_eq!(
        connections_failed.load(Ordering::SeqCst),
        0,
        "{connect_errors:?}"
    );
    assert!(
        connections_ok.load(Ordering::SeqCst) > 20,
        "too few connections were tried"
    );
    assert!(
        pgbench.status.success(),
        "pgbench failed: {pgbench_text}{}",
        common::stderr(&pgbench)
    );
    assert!(
        !pgbench_text.contains("number of failed transactions: 1"),
        "{pgbench_text}"
    );
    let failed_line = pgbench_text
        .lines()
        .find(|line| line.starts_with("number of failed transactions"));
    if let Some(line) = failed_line {
        assert!(line.contains(": 0 "), "{line}");
    }
}
