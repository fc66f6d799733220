//! The node's storage folder and the SQLite connections opened on it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::settings::version_string;

/// Name of the database file inside the storage folder.
pub const DATABASE_FILE: &str = "tumbler.db";

/// Default time that a statement waits for another session's write lock before it fails
/// with SQLSTATE 55P03.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements that each session keeps compiled.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The node's storage folder, holding one SQLite database in WAL mode.
///
/// A `Store` that exists has created its folder, opened the database file and switched it to
/// WAL mode. Each client session opens its own connection on it.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    database: PathBuf,
    busy_timeout: Duration,
}

impl Store {
    /// Opens the storage folder `dir`, creating it and its database file
    /// ([`DATABASE_FILE`]) if they are missing.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::CreateDir`] when the folder cannot be created,
    /// [`StoreError::Open`] when the database file cannot be opened or is not a SQLite
    /// database, and [`StoreError::Configure`] when WAL mode cannot be enabled.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        // The data is readable by the node's user only, as the certs folder is.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        let store = Store {
            dir: dir.to_path_buf(),
            database: dir.join(DATABASE_FILE),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        };
        // SQLite gives its WAL and shared-memory files the database file's mode, so creating
        // the file 0600 first keeps all three private.
        if !store.database.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&store.database)
                .map_err(|source| StoreError::CreateDir {
                    dir: store.database.clone(),
                    source,
                })?;
        }
        let conn = store.connect()?;
        store.enable_wal(&conn)?;
        Ok(store)
    }

    /// Sets how long a statement waits for another session's write lock (default
    /// [`DEFAULT_BUSY_TIMEOUT`]). Applies to sessions that start afterwards.
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Store {
        self.busy_timeout = timeout;
        self
    }

    /// Returns the storage folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the path of the database file.
    pub fn database_path(&self) -> &Path {
        &self.database
    }

    /// Returns how long a statement waits for another session's write lock.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Opens a new connection for one session, configured for tumbler's SQL dialect.
    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.database, flags).map_err(|source| {
            StoreError::Open {
                path: self.database.clone(),
                source: Box::new(source),
            }
        })?;
        self.configure(&conn)?;
        Ok(conn)
    }

    /// Applies the per-connection settings. Each names itself in the error if it fails.
    fn configure(&self, conn: &Connection) -> Result<(), StoreError> {
        let fail = |setting: &'static str| {
            move |source: rusqlite::Error| StoreError::Configure {
                path: self.database.clone(),
                setting,
                source: Box::new(source),
            }
        };
        conn.busy_timeout(self.busy_timeout)
            .map_err(fail("busy_timeout"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(fail("foreign_keys=ON"))?;
        // Double quotes name identifiers, as in PostgreSQL, instead of falling back to
        // string literals.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
            .map_err(fail("DQS_DML=off"))?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)
            .map_err(fail("DQS_DDL=off"))?;
        // ATTACH (and VACUUM INTO, which attaches its target) would let a client open or
        // write any file that the node's user can reach.
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(fail("attached limit 0"))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        register_functions(conn).map_err(fail("version() function"))?;
        Ok(())
    }

    fn enable_wal(&self, conn: &Connection) -> Result<(), StoreError> {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|source| self.open_error(source))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        Err(StoreError::Configure {
            path: self.database.clone(),
            setting: "journal_mode=WAL",
            source: format!("SQLite kept journal mode {mode}").into(),
        })
    }

    fn open_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Open {
            path: self.database.clone(),
            source: Box::new(source),
        }
    }
}

/// Registers the PostgreSQL functions that drivers call on connect.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let version = version_string();
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("version", 0, flags, move |_| Ok(version.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_folder_and_file() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let dir = temp.path().join("nested").join("store");
        let store = Store::open(&dir).expect("open store");
        assert!(store.database_path().is_file());
    }

    #[test]
    fn open_enables_wal() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(temp.path()).expect("open store");
        let conn = store.connect().expect("connect");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn open_rejects_file_as_folder() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let file = temp.path().join("plain-file");
        fs::write(&file, b"x").expect("write file");
        let error = Store::open(&file).expect_err("a file is not a folder");
        assert!(error.to_string().contains("plain-file"));
    }

    #[test]
    fn open_rejects_non_database() {
        let temp = tempfile::tempdir().expect("temporary folder");
        fs::write(temp.path().join(DATABASE_FILE), vec![7u8; 4096]).expect("write garbage");
        let error = Store::open(temp.path()).expect_err("garbage is not a database");
        assert!(matches!(error, StoreError::Open { .. }));
    }

    #[test]
    fn connection_rejects_attach() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(temp.path()).expect("open store");
        let conn = store.connect().expect("connect");
        let other = temp.path().join("other.db");
        let sql = format!("ATTACH '{}' AS other", other.display());
        assert!(conn.execute_batch(&sql).is_err());
    }

    #[test]
    fn connection_rejects_vacuum_into() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(temp.path()).expect("open store");
        let conn = store.connect().expect("connect");
        let copy = temp.path().join("copy.db");
        let sql = format!("VACUUM INTO '{}'", copy.display());
        let result = conn.execute_batch(&sql);
        assert!(result.is_err());
        assert!(!copy.exists());
    }

    #[test]
    fn version_function_registered() {
        let temp = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(temp.path()).expect("open store");
        let conn = store.connect().expect("connect");
        let version: String = conn
            .query_row("SELECT version()", [], |row| row.get(0))
            .expect("version()");
        assert!(version.starts_with("PostgreSQL 13.0 (tumbler"));
    }
}
