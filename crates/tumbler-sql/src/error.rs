//! Errors of the storage folder and of query execution, and their PostgreSQL SQLSTATE codes.

use std::path::PathBuf;

use pgwire::error::{ErrorInfo, PgWireError, SEVERITY_ERROR};
use rusqlite::ErrorCode;
use rusqlite::ffi;

/// Boxed error from a dependency, kept out of the public API as a concrete type.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failure to open or configure the node's storage folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage folder does not exist and could not be created.
    #[error(
        "cannot create the storage folder {dir}: {source}; create it by hand or choose a \
         folder that the node's user can write"
    )]
    CreateDir {
        /// Folder that was requested.
        dir: PathBuf,
        /// Error from the file system.
        source: std::io::Error,
    },
    /// SQLite could not open the database file or read its header.
    #[error(
        "cannot open the SQLite database {path}: {source}; check that the file is a SQLite \
         database and that the node's user can read and write it and its folder"
    )]
    Open {
        /// Database file.
        path: PathBuf,
        /// Error from SQLite.
        source: BoxedError,
    },
    /// SQLite opened the file but rejected a setting that the node needs.
    #[error(
        "cannot set {setting} on the SQLite database {path}: {source}; the folder must be on \
         a local file system that supports shared memory (WAL mode does not work over NFS)"
    )]
    Configure {
        /// Database file.
        path: PathBuf,
        /// Setting that failed, such as `journal_mode=WAL`.
        setting: &'static str,
        /// Error from SQLite.
        source: BoxedError,
    },
}

/// Failure of one statement. Each variant maps to a SQLSTATE code in [`QueryError::sqlstate`];
/// the session stays usable after any of them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    /// SQLite rejected or failed the statement.
    #[error("{}", sqlite_message(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// The session's database connection could not be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The statement text is not valid SQL for tumbler.
    #[error("{0}")]
    Syntax(String),
    /// A Parse message contained more than one statement.
    #[error("cannot insert multiple commands into a prepared statement")]
    MultipleStatements,
    /// A statement ran inside a transaction that an earlier error aborted.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// A transaction command that needs an open transaction ran outside one.
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(&'static str),
    /// `SHOW` named a setting that tumbler does not know.
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    /// `SET` requested a value that tumbler cannot honour.
    #[error("invalid value for parameter \"{name}\": \"{value}\"; {reason}")]
    InvalidSetting {
        /// Setting name.
        name: String,
        /// Requested value.
        value: String,
        /// Reason, with the value that tumbler supports instead.
        reason: &'static str,
    },
    /// A feature of PostgreSQL that tumbler does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// A bound parameter could not be decoded as its declared type.
    #[error("invalid value for parameter ${index} of type {type_name}: {reason}")]
    Parameter {
        /// One-based parameter number.
        index: usize,
        /// PostgreSQL type name.
        type_name: String,
        /// Reason that decoding failed.
        reason: String,
    },
    /// The statement uses a parameter number for which no value was bound.
    #[error("there is no parameter ${0}")]
    MissingParameter(usize),
    /// A Bind message did not match the prepared statement.
    #[error("{0}")]
    Protocol(String),
    /// A result value does not fit the type that Describe reported for its column.
    #[error(
        "column \"{column}\" was described as {type_name} but a row contains {found}; cast the \
         column in the query, for example CAST({column} AS TEXT), so that every row has one type"
    )]
    ResultType {
        /// Column name.
        column: String,
        /// PostgreSQL type name that Describe sent.
        type_name: String,
        /// The value that does not fit.
        found: String,
    },
    /// The statement's result columns changed between Describe and Execute.
    #[error("cached plan must not change result type; prepare the statement again")]
    ResultShapeChanged,
    /// The statement was cancelled before or while it ran.
    #[error("canceling statement due to user request")]
    Cancelled,
    /// A worker thread failed. The message names the step.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// Returns the PostgreSQL SQLSTATE code for the error.
    pub(crate) fn sqlstate(&self) -> &'static str {
        match self {
            QueryError::Sqlite(error) => sqlite_sqlstate(error),
            QueryError::Store(_) => "58030",
            QueryError::Syntax(_) | QueryError::MultipleStatements => "42601",
            QueryError::TransactionAborted => "25P02",
            QueryError::NoTransaction(_) => "25P01",
            QueryError::UnknownSetting(_) => "42704",
            QueryError::InvalidSetting { .. } => "22023",
            QueryError::Unsupported(_) | QueryError::ResultShapeChanged => "0A000",
            QueryError::Parameter { .. } => "22P02",
            QueryError::MissingParameter(_) => "42P02",
            QueryError::Protocol(_) => "08P01",
            QueryError::ResultType { .. } => "42804",
            QueryError::Cancelled => "57014",
            QueryError::Internal(_) => "XX000",
        }
    }

    /// Converts the error into the fields of a PostgreSQL ErrorResponse.
    pub(crate) fn to_error_info(&self) -> ErrorInfo {
        ErrorInfo::new(
            SEVERITY_ERROR.to_owned(),
            self.sqlstate().to_owned(),
            self.to_string(),
        )
    }
}

impl From<QueryError> for PgWireError {
    fn from(error: QueryError) -> Self {
        PgWireError::UserError(Box::new(error.to_error_info()))
    }
}

/// Returns SQLite's own message for the error, without rusqlite's wrapping.
fn sqlite_message(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqliteFailure(failure, None) => failure.to_string(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// Maps a SQLite error to SQLSTATE. SQLite reports most statement errors with the generic
/// code `SQLITE_ERROR`, so those are distinguished by their message text (SQLite 3.x wording).
fn sqlite_sqlstate(error: &rusqlite::Error) -> &'static str {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            failure_sqlstate(failure, message.as_deref().unwrap_or_default())
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => failure_sqlstate(error, msg),
        rusqlite::Error::MultipleStatement => "42601",
        rusqlite::Error::InvalidParameterCount(..) | rusqlite::Error::InvalidParameterName(_) => {
            "08P01"
        }
        rusqlite::Error::Utf8Error(..) => "22021",
        _ => "XX000",
    }
}

fn failure_sqlstate(failure: &ffi::Error, message: &str) -> &'static str {
    match failure.code {
        ErrorCode::ConstraintViolation => constraint_sqlstate(failure.extended_code),
        ErrorCode::DatabaseBusy if failure.extended_code == ffi::SQLITE_BUSY_SNAPSHOT => "40001",
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "55P03",
        ErrorCode::ReadOnly => "25006",
        ErrorCode::OperationInterrupted => "57014",
        ErrorCode::TypeMismatch => "42804",
        ErrorCode::TooBig => "54000",
        ErrorCode::DiskFull => "53100",
        ErrorCode::OutOfMemory => "53200",
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => "58030",
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => "XX001",
        ErrorCode::ParameterOutOfRange => "08P01",
        ErrorCode::Unknown => message_sqlstate(message),
        _ => "XX000",
    }
}

fn constraint_sqlstate(extended_code: i32) -> &'static str {
    match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "23505",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "23502",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "23503",
        ffi::SQLITE_CONSTRAINT_CHECK => "23514",
        _ => "23000",
    }
}

/// Message prefixes of `SQLITE_ERROR` and their SQLSTATE codes.
const MESSAGE_SQLSTATES: [(&str, &str); 12] = [
    ("no such table", "42P01"),
    ("no such column", "42703"),
    ("no such function", "42883"),
    ("wrong number of arguments to function", "42883"),
    ("no such index", "42704"),
    ("no such savepoint", "3B001"),
    ("table ", "42P07"),
    ("index ", "42P07"),
    ("cannot start a transaction within a transaction", "25001"),
    ("cannot commit - no transaction is active", "25P01"),
    ("cannot rollback - no transaction is active", "25P01"),
    ("too many attached databases", "0A000"),
];

fn message_sqlstate(message: &str) -> &'static str {
    if is_syntax_message(message) {
        return "42601";
    }
    let already_exists = message.ends_with("already exists");
    MESSAGE_SQLSTATES
        .iter()
        .find(|(prefix, _)| {
            let needs_exists = *prefix == "table " || *prefix == "index ";
            message.starts_with(prefix) && (!needs_exists || already_exists)
        })
        .map_or("XX000", |(_, code)| code)
}

fn is_syntax_message(message: &str) -> bool {
    message.contains("syntax error")
        || message.starts_with("incomplete input")
        || message.starts_with("unrecognized token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(sql: &str) -> QueryError {
        let conn = rusqlite::Connection::open_in_memory().expect("open in-memory database");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .expect("create table");
        let error = conn.execute_batch(sql).expect_err("statement should fail");
        QueryError::Sqlite(error)
    }

    #[test]
    fn sqlstate_syntax_error() {
        assert_eq!(sqlite_error("SELEC 1").sqlstate(), "42601");
    }

    #[test]
    fn sqlstate_undefined_table() {
        assert_eq!(sqlite_error("SELECT * FROM missing").sqlstate(), "42P01");
    }

    #[test]
    fn sqlstate_undefined_column() {
        assert_eq!(sqlite_error("SELECT nope FROM t").sqlstate(), "42703");
    }

    #[test]
    fn sqlstate_unique_violation() {
        let sql = "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (1, 'b')";
        assert_eq!(sqlite_error(sql).sqlstate(), "23505");
    }

    #[test]
    fn sqlstate_not_null_violation() {
        assert_eq!(
            sqlite_error("INSERT INTO t VALUES (1, NULL)").sqlstate(),
            "23502"
        );
    }

    #[test]
    fn sqlstate_duplicate_table() {
        assert_eq!(sqlite_error("CREATE TABLE t (x)").sqlstate(), "42P07");
    }

    #[test]
    fn message_is_sqlite_text() {
        assert_eq!(
            sqlite_error("SELECT * FROM missing").to_string(),
            "no such table: missing"
        );
    }
}
