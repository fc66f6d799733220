//! One client session: its own SQLite connection, transaction state and settings.
//!
//! Statements run on a blocking thread, never on the async runtime, because SQLite blocks
//! while it waits for another session's write lock (see [`crate::QueryHandler`] for the
//! concurrency rules).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pgwire::api::Type;
use pgwire::api::results::Tag;
use rusqlite::types::Value;
use rusqlite::{Connection, InterruptHandle};

use crate::command::{Begin, Command, Savepoint, SavepointKind, Set, Sql, SqlKind};
use crate::error::{QueryError, StoreError};
use crate::lexer::Token;
use crate::params::{Catalog, parameter_types};
use crate::settings::{SettingRow, Settings, show_column};
use crate::store::Store;
use crate::types::{ColumnDecl, type_for_declared};

/// A session's connection and state, shared between the async handler and the blocking
/// thread that runs its statements. The mutex is uncontended: a session runs one message at a
/// time.
pub(crate) struct Session {
    state: Mutex<SessionState>,
    interrupt: InterruptHandle,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a connection on `store` for a new session.
    pub(crate) fn open(
        store: &Store,
        application_name: Option<String>,
    ) -> Result<Self, StoreError> {
        let conn = store.connect()?;
        let interrupt = conn.get_interrupt_handle();
        let state = SessionState {
            conn,
            aborted: false,
            read_only: false,
            settings: Settings::new(application_name),
        };
        Ok(Session {
            state: Mutex::new(state),
            interrupt,
        })
    }

    /// Locks the session state. A panic on an earlier statement leaves the connection
    /// consistent (SQLite rolls back what it did not finish), so a poisoned lock is reused.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the statement that is running on this session fail with SQLITE_INTERRUPT.
    pub(crate) fn interrupt(&self) {
        self.interrupt.interrupt();
    }
}

/// Change that a statement made to the session's transaction, for the ReadyForQuery status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Unchanged,
    Started,
    Ended,
}

/// Result of one statement.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The statement returned rows (possibly none).
    Rows {
        columns: Vec<ColumnDecl>,
        rows: Vec<Vec<Value>>,
        /// Command tag before the row count, such as `SELECT` or `INSERT 0`.
        tag: &'static str,
    },
    /// The statement returned no rows.
    Done { tag: Tag, transition: Transition },
}

/// Parameter and column information that Parse collects about a statement.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Type of each parameter for ParameterDescription and Bind.
    pub(crate) parameter_types: Vec<Type>,
    pub(crate) columns: Vec<ColumnDecl>,
    /// Whether SQLite reports that the statement does not write.
    pub(crate) read_only: bool,
}

/// A session's connection and the state that PostgreSQL keeps per session.
#[derive(Debug)]
pub(crate) struct SessionState {
    conn: Connection,
    /// Whether an error aborted the open transaction, so that only ROLLBACK may follow.
    aborted: bool,
    /// Whether the open transaction began with READ ONLY (SQLite's `query_only` is on).
    read_only: bool,
    settings: Settings,
}

impl SessionState {
    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Returns whether an error aborted the open transaction.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Runs the statements of one simple Query message with PostgreSQL's rules: outside a
    /// transaction block, several SQL statements run as one implicit transaction, and the
    /// first error stops the rest.
    pub(crate) fn run_batch(
        &mut self,
        commands: &[Command],
        cancelled: &AtomicBool,
    ) -> Vec<Result<Outcome, QueryError>> {
        let sql_count = commands
            .iter()
            .filter(|command| matches!(command, Command::Sql(_)))
            .count();
        let implicit = sql_count > 1
            && !self.in_transaction()
            && !self.aborted
            && !commands.iter().any(Command::controls_transaction);
        if implicit && let Err(error) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            return vec![Err(error.into())];
        }
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            if cancelled.load(Ordering::Acquire) {
                results.push(Err(QueryError::Cancelled));
                break;
            }
            let result = self.run(command, &[]);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        if implicit {
            self.end_implicit_transaction(&mut results);
        }
        results
    }

    fn end_implicit_transaction(&mut self, results: &mut Vec<Result<Outcome, QueryError>>) {
        let failed = results.last().is_some_and(Result::is_err);
        if !failed && let Err(error) = self.conn.execute_batch("COMMIT") {
            results.push(Err(error.into()));
        }
        if self.in_transaction() {
            self.rollback_quietly();
        }
        self.aborted = false;
        self.end_read_only_if_closed();
    }

    /// Runs one statement with bound parameters.
    ///
    /// # Errors
    ///
    /// Returns the statement's error. An error inside a transaction block aborts the block,
    /// as in PostgreSQL: later statements fail with 25P02 until ROLLBACK.
    pub(crate) fn run(
        &mut self,
        command: &Command,
        params: &[Value],
    ) -> Result<Outcome, QueryError> {
        if self.aborted && !command.runs_when_aborted() {
            return Err(QueryError::TransactionAborted);
        }
        let was_open = self.in_transaction();
        let result = self.dispatch(command, params);
        if result.is_err() && (was_open || self.in_transaction()) {
            self.aborted = true;
        }
        self.end_read_only_if_closed();
        result
    }

    fn dispatch(&mut self, command: &Command, params: &[Value]) -> Result<Outcome, QueryError> {
        match command {
            Command::Begin(begin) => self.begin(begin),
            Command::Commit => self.commit(),
            Command::Rollback => self.rollback(),
            Command::Savepoint(savepoint) => self.savepoint(savepoint),
            Command::Set(set) => self.set(set),
            Command::Reset(name) => {
                self.settings.reset(name.as_deref());
                Ok(done(Tag::new("RESET")))
            }
            Command::Show(name) => self.show(name.as_deref()),
            Command::Sql(sql) => self.run_sql(sql, params),
        }
    }

    /// Begins a transaction. `BEGIN` inside a transaction only warns in PostgreSQL, so it
    /// succeeds here without effect.
    fn begin(&mut self, begin: &Begin) -> Result<Outcome, QueryError> {
        if !self.in_transaction() {
            self.conn.execute_batch(begin.lock.begin_sql())?;
            if begin.read_only {
                self.conn.pragma_update(None, "query_only", true)?;
                self.read_only = true;
            }
        }
        Ok(Outcome::Done {
            tag: Tag::new(begin.tag),
            transition: Transition::Started,
        })
    }

    /// Commits, or rolls back when an error aborted the transaction (PostgreSQL then sends
    /// the tag ROLLBACK). Outside a transaction it succeeds without effect, as in PostgreSQL.
    fn commit(&mut self) -> Result<Outcome, QueryError> {
        if self.aborted {
            return self.rollback();
        }
        if self.in_transaction() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(ended("COMMIT"))
    }

    fn rollback(&mut self) -> Result<Outcome, QueryError> {
        if self.in_transaction() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.aborted = false;
        Ok(ended("ROLLBACK"))
    }

    fn savepoint(&mut self, savepoint: &Savepoint) -> Result<Outcome, QueryError> {
        if !self.in_transaction() {
            return Err(QueryError::NoTransaction(match savepoint.kind {
                SavepointKind::Create => "SAVEPOINT",
                SavepointKind::Release => "RELEASE SAVEPOINT",
                SavepointKind::RollbackTo => "ROLLBACK TO SAVEPOINT",
            }));
        }
        self.conn.execute_batch(&savepoint.sql)?;
        if savepoint.kind == SavepointKind::RollbackTo {
            self.aborted = false;
        }
        Ok(done(Tag::new(savepoint.tag())))
    }

    fn set(&mut self, set: &Set) -> Result<Outcome, QueryError> {
        if let Set::Value { name, value } = set {
            self.settings.set(name, value.clone())?;
        }
        Ok(done(Tag::new("SET")))
    }

    fn show(&self, name: Option<&str>) -> Result<Outcome, QueryError> {
        let Some(name) = name else {
            let rows = self.settings.show_all(self.read_only);
            return Ok(show_all_rows(rows));
        };
        let (column, value) = self.settings.show(name, self.read_only)?;
        Ok(Outcome::Rows {
            columns: vec![ColumnDecl {
                name: column,
                declared: Some(Type::TEXT),
            }],
            rows: vec![vec![Value::Text(value)]],
            tag: "SHOW",
        })
    }

    fn run_sql(&mut self, sql: &Sql, params: &[Value]) -> Result<Outcome, QueryError> {
        let mut statement = self.conn.prepare_cached(&sql.sql)?;
        let expected = statement.parameter_count();
        if params.len() < expected {
            return Err(QueryError::MissingParameter(params.len() + 1));
        }
        bind_parameters(&mut statement, params)?;
        let columns = column_decls(&statement);

        // NOTE: the whole result is collected before anything is sent, so a query that returns
        // millions of rows keeps them all in memory. Streaming would need the statement to
        // stay borrowed from the connection across pgwire's Execute messages.
        let mut rows = Vec::new();
        let mut cursor = statement.raw_query();
        while let Some(row) = cursor.next()? {
            rows.push(row_values(row, columns.len())?);
        }
        drop(cursor);
        drop(statement);

        if columns.is_empty() {
            let changes = usize::try_from(self.conn.changes()).unwrap_or(usize::MAX);
            return Ok(done(completion_tag(&sql.kind, changes)));
        }
        let tag = rows_tag(&sql.kind);
        Ok(Outcome::Rows { columns, rows, tag })
    }

    /// Prepares `sql` without running it, for a Parse message.
    ///
    /// # Errors
    ///
    /// Returns SQLite's error when the statement does not compile.
    pub(crate) fn shape_of(
        &self,
        sql: &Sql,
        tokens: &[Token<'_>],
        client_types: &[Option<Type>],
    ) -> Result<Shape, QueryError> {
        let statement = self.conn.prepare_cached(&sql.sql)?;
        let count = statement.parameter_count();
        let columns = column_decls(&statement);
        let read_only = statement.readonly();
        drop(statement);
        let mut catalog = Catalog::new(&self.conn);
        let parameter_types = parameter_types(tokens, count, client_types, &mut catalog);
        Ok(Shape {
            parameter_types,
            columns,
            read_only,
        })
    }

    /// Runs a read-only statement and returns its first row, or `None` when it returns no
    /// rows. Describe uses it to type columns that have no declared type.
    ///
    /// # Errors
    ///
    /// Returns SQLite's error.
    pub(crate) fn first_row(
        &self,
        sql: &Sql,
        params: &[Value],
    ) -> Result<Option<Vec<Value>>, QueryError> {
        let mut statement = self.conn.prepare_cached(&sql.sql)?;
        bind_parameters(&mut statement, params)?;
        let count = statement.column_count();
        let mut cursor = statement.raw_query();
        match cursor.next()? {
            Some(row) => Ok(Some(row_values(row, count)?)),
            None => Ok(None),
        }
    }

    /// Turns SQLite's `query_only` off once a READ ONLY transaction has ended.
    fn end_read_only_if_closed(&mut self) {
        if !self.read_only || self.in_transaction() {
            return;
        }
        match self.conn.pragma_update(None, "query_only", false) {
            Ok(()) => self.read_only = false,
            Err(error) => {
                tracing::warn!(%error, "cannot turn query_only off after a read-only transaction")
            }
        }
    }

    fn rollback_quietly(&mut self) {
        if let Err(error) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!(%error, "rollback of an implicit transaction failed");
        }
    }
}

fn done(tag: Tag) -> Outcome {
    Outcome::Done {
        tag,
        transition: Transition::Unchanged,
    }
}

fn ended(tag: &str) -> Outcome {
    Outcome::Done {
        tag: Tag::new(tag),
        transition: Transition::Ended,
    }
}

/// Binds `params` to the statement's parameters by number; extra values are ignored.
fn bind_parameters(
    statement: &mut rusqlite::Statement<'_>,
    params: &[Value],
) -> rusqlite::Result<()> {
    let expected = statement.parameter_count();
    for (index, value) in params.iter().take(expected).enumerate() {
        statement.raw_bind_parameter(index + 1, value)?;
    }
    Ok(())
}

fn row_values(row: &rusqlite::Row<'_>, count: usize) -> rusqlite::Result<Vec<Value>> {
    (0..count).map(|index| row.get::<_, Value>(index)).collect()
}

fn column_decls(statement: &rusqlite::Statement<'_>) -> Vec<ColumnDecl> {
    statement
        .columns()
        .map(|column| ColumnDecl {
            name: column.name().to_owned(),
            declared: column.decl_type().and_then(type_for_declared),
        })
        .collect()
}

/// Returns the tag that PostgreSQL sends for a statement that returned no rows.
fn completion_tag(kind: &SqlKind, changes: usize) -> Tag {
    match kind {
        SqlKind::Insert => Tag::new("INSERT").with_oid(0).with_rows(changes),
        SqlKind::Update => Tag::new("UPDATE").with_rows(changes),
        SqlKind::Delete => Tag::new("DELETE").with_rows(changes),
        SqlKind::Select => Tag::new("SELECT").with_rows(0),
        SqlKind::Other(tag) => Tag::new(tag),
    }
}

/// Returns the tag before the row count for a statement that returned rows, such as
/// `INSERT ... RETURNING`.
fn rows_tag(kind: &SqlKind) -> &'static str {
    match kind {
        SqlKind::Insert => "INSERT 0",
        SqlKind::Update => "UPDATE",
        SqlKind::Delete => "DELETE",
        SqlKind::Select | SqlKind::Other(_) => "SELECT",
    }
}

fn show_all_rows(rows: Vec<SettingRow>) -> Outcome {
    let text_column = |name: &str| ColumnDecl {
        name: name.to_owned(),
        declared: Some(Type::TEXT),
    };
    Outcome::Rows {
        columns: vec![
            text_column("name"),
            text_column("setting"),
            text_column("description"),
        ],
        rows: rows
            .into_iter()
            .map(|row| {
                vec![
                    Value::Text(row.name),
                    Value::Text(row.value),
                    Value::Text(row.description),
                ]
            })
            .collect(),
        tag: "SHOW",
    }
}

/// Returns the result columns of `SHOW name` or `SHOW ALL`, for Describe.
pub(crate) fn show_columns(name: Option<&str>) -> Vec<ColumnDecl> {
    let text_column = |name: String| ColumnDecl {
        name,
        declared: Some(Type::TEXT),
    };
    match name {
        Some(name) => vec![text_column(show_column(name))],
        None => ["name", "setting", "description"]
            .map(|name| text_column(name.to_owned()))
            .to_vec(),
    }
}

/// Guard that cancels a request's blocking work if the request's future is dropped. It sets a
/// flag that stops the task before its next statement and interrupts the running statement.
#[derive(Debug)]
pub(crate) struct CancelGuard {
    session: Arc<Session>,
    cancelled: Arc<AtomicBool>,
    armed: bool,
}

impl CancelGuard {
    pub(crate) fn new(session: Arc<Session>, cancelled: Arc<AtomicBool>) -> Self {
        CancelGuard {
            session,
            cancelled,
            armed: true,
        }
    }

    /// Marks the request as finished, so that dropping the guard does nothing.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard {
    /// Runs when the request's future is dropped before its blocking task finished: the
    /// client cancelled the query or disconnected.
    fn drop(&mut self) {
        if self.armed {
            self.cancelled.store(true, Ordering::Release);
            self.session.interrupt();
        }
    }
}
