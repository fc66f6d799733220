//! Writing and reading files in the certs folder.
//!
//! Every write goes to a temporary file in the destination folder, is flushed to disk, then
//! renamed over the destination. A reader sees the old file or the new one, never a part.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of private key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of folders tumbler creates.
pub const DIR_MODE: u32 = 0o700;
/// Environment variable that turns the key permission check off.
pub const SKIP_KEY_PERMISSION_CHECK: &str = "TUMBLER_SKIP_KEY_PERMISSION_CHECK";

/// Creates `dir` and its missing parents with mode 0700.
///
/// # Errors
///
/// Returns the I/O error of the first folder that cannot be created.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Writes `contents` to a temporary file beside `path` with `mode`, then renames it to `path`.
///
/// # Errors
///
/// Returns the I/O error; the destination is then unchanged and the temporary file removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = stage(path, contents, mode)?;
    commit(&temporary, path)
}

/// A file written beside its destination, not yet renamed into place.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // A staged file that was never committed is removed; after a rename this fails harmlessly.
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `contents` to a new temporary file beside `path`, created with `mode` so that a key
/// is never readable by others, even for an instant.
///
/// # Errors
///
/// Returns the I/O error of creating, writing or syncing the temporary file.
pub fn stage(path: &Path, contents: &[u8], mode: u32) -> io::Result<Staged> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let mut random = [0u8; 6];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| io::Error::other("random source failed"))?;
    let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let staged = Staged {
        path: dir.join(format!(".{name}.{suffix}.tmp")),
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged.path)?;
    // The umask may have narrowed `mode`; set it exactly.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(staged)
}

/// Renames a staged file over its destination and syncs the folder.
///
/// # Errors
///
/// Returns the I/O error of the rename.
pub fn commit(staged: &Staged, path: &Path) -> io::Result<()> {
    fs::rename(&staged.path, path)?;
    if let Some(dir) = path.parent() {
        // Syncing the folder makes the rename durable; some file systems refuse, which is fine.
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    Ok(())
}

/// Checks that a private key file is not readable by group or others.
///
/// The allowed modes are 0700 and narrower. A key owned by root may also be readable by the
/// process's own group (up to 0740), which is how container secret mounts look. The mode checked
/// is the symlink target's. Setting `TUMBLER_SKIP_KEY_PERMISSION_CHECK=true` turns the check off.
///
/// # Errors
///
/// Returns a message naming the mode and the allowed modes.
pub fn check_key_permissions(metadata: &fs::Metadata) -> Result<(), String> {
    if skip_key_permission_check() {
        return Ok(());
    }
    let mode = metadata.mode() & 0o777;
    let own_gid = process_gid();
    let root_group_readable = metadata.uid() == 0 && metadata.gid() == own_gid && mode & 0o037 == 0;
    if mode & 0o077 == 0 || root_group_readable {
        return Ok(());
    }
    Err(format!(
        "mode {mode:04o} (owner uid {}, gid {}) lets group or others read it; the key must be \
         0600 or 0400 (0740 is allowed when root owns it and its group is the node's group): run \
         'chmod 0600' on it, or set {SKIP_KEY_PERMISSION_CHECK}=true to skip this check",
        metadata.uid(),
        metadata.gid()
    ))
}

/// Whether the key permission check is turned off by the environment.
pub fn skip_key_permission_check() -> bool {
    std::env::var(SKIP_KEY_PERMISSION_CHECK).is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// The process's real group id, read from `/proc/self/status` so that no `unsafe` call is needed.
fn process_gid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Gid:"))
                .and_then(|ids| {
                    ids.split_whitespace()
                        .next()
                        .and_then(|gid| gid.parse().ok())
                })
        })
        .unwrap_or(u32::MAX)
}
