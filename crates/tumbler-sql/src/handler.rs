//! The pgwire query handlers: simple and extended query protocol over per-session SQLite
//! connections.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, Response,
};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, METADATA_APPLICATION_NAME, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Describe, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use rusqlite::types::Value;

use crate::command::classify;
use crate::error::QueryError;
use crate::lexer::split_statements;
use crate::params::decode_parameters;
use crate::prepared::{
    Prepared, PreparedStatement, StatementParser, describe_fields, describe_result_types,
};
use crate::response::{done_response, error_response, log_error, rows_response, simple_response};
use crate::session::{CancelGuard, Outcome, Session, SessionState};
use crate::store::Store;

/// Simple and extended query handler over the node's [`Store`].
///
/// # Sessions
///
/// Each client connection gets its own SQLite connection, opened at its first statement and
/// kept in pgwire's per-connection `session_extensions()`. It closes when pgwire drops the
/// client connection, and SQLite then rolls back any open transaction. Transactions of
/// different clients never mix.
///
/// # Concurrency
///
/// SQLite in WAL mode lets any number of sessions read while one writes. Writers take turns
/// on a single write lock:
///
/// - A statement outside a transaction takes the lock for its own duration.
/// - `BEGIN` (and `START TRANSACTION`) becomes `BEGIN IMMEDIATE`, which takes the write lock
///   at once and holds it until COMMIT or ROLLBACK. Taking it late would let a transaction
///   that read an older snapshot fail with "database is locked" when it first writes.
///   `BEGIN READ ONLY` takes no lock and turns on SQLite's `query_only` instead.
/// - A session that needs the lock while another holds it waits up to the store's busy
///   timeout ([`Store::busy_timeout`], 10 s by default), then fails with SQLSTATE 55P03.
///   Short statements therefore wait instead of failing, unless a client keeps a write
///   transaction open for longer than the timeout, which makes the waiting writers fail.
/// - A simple Query string with two or more SQL statements outside a transaction block runs
///   as one implicit transaction, as in PostgreSQL, so it also takes the write lock at once.
///
/// Statements run on tokio's blocking thread pool, so a session that waits for the lock
/// never stalls the async workers that carry the other sessions' messages.
#[derive(Debug)]
pub struct QueryHandler {
    store: Arc<Store>,
    parser: Arc<StatementParser>,
}

impl QueryHandler {
    /// Creates a handler whose sessions open connections on `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let parser = Arc::new(StatementParser::new(Arc::clone(&store)));
        QueryHandler { store, parser }
    }
}

/// Returns the session of `client`, opening its connection on the first call.
pub(crate) fn session_for<C>(store: &Store, client: &C) -> Result<Arc<Session>, QueryError>
where
    C: ClientInfo + ?Sized,
{
    let extensions = client.session_extensions();
    if let Some(session) = extensions.get::<Session>() {
        return Ok(session);
    }
    let application_name = client.metadata().get(METADATA_APPLICATION_NAME).cloned();
    let session = Session::open(store, application_name).map_err(|error| {
        tracing::warn!(%error, peer = %client.socket_addr(), "cannot open a session connection");
        error
    })?;
    tracing::debug!(peer = %client.socket_addr(), "opened a session connection");
    extensions.insert(session);
    extensions
        .get::<Session>()
        .ok_or_else(|| QueryError::Internal("the session was not stored".to_owned()))
}

/// Runs `work` on the session's state on a blocking thread.
///
/// If the caller's future is dropped first (the client cancelled the query or disconnected),
/// the running statement is interrupted and `work` finds the cancellation flag set.
///
/// # Errors
///
/// Returns [`QueryError::Internal`] when the blocking task panicked.
pub(crate) async fn run_blocking<T, F>(session: Arc<Session>, work: F) -> Result<T, QueryError>
where
    T: Send + 'static,
    F: FnOnce(&mut SessionState, &AtomicBool) -> T + Send + 'static,
{
    let cancelled = Arc::new(AtomicBool::new(false));
    let guard = CancelGuard::new(Arc::clone(&session), Arc::clone(&cancelled));
    let task = tokio::task::spawn_blocking(move || {
        let mut state = session.lock();
        work(&mut state, &cancelled)
    });
    let joined = task.await;
    guard.disarm();
    joined.map_err(|error| QueryError::Internal(format!("the statement thread failed: {error}")))
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = split_statements(query);
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        // PostgreSQL parses the whole string before it runs any of it, so a malformed
        // command fails the string without running the statements before it.
        let commands = match statements
            .iter()
            .map(classify)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(commands) => commands,
            Err(error) => return Ok(vec![error_response(&error)]),
        };
        let session = session_for(&self.store, client)?;
        let responses = run_blocking(session, move |state, cancelled| {
            let results = state.run_batch(&commands, cancelled);
            results.into_iter().map(simple_response).collect()
        })
        .await?;
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = PreparedStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PreparedStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = Arc::clone(portal.statement.statement.prepared());
        let parameters = bound_parameters(portal, &prepared)?;
        let format = portal.result_column_format.clone();
        let session = session_for(&self.store, client)?;
        let result = run_blocking(session, move |state, cancelled| {
            execute_portal(state, cancelled, &prepared, &parameters, &format)
        })
        .await?;
        result.map_err(|error| {
            log_error(&error);
            error.into()
        })
    }

    /// Sends ParameterDescription and then RowDescription, or NoData for a statement without
    /// result columns. pgwire's default sends an empty RowDescription instead of NoData when
    /// the statement has parameters but no columns.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let fields = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let response = match client.portal_store().get_statement(name) {
                    Some(Entry::Value(statement)) => {
                        self.do_describe_statement(client, &statement).await?
                    }
                    Some(Entry::Empty) => DescribeStatementResponse::no_data(),
                    None => return Err(PgWireError::StatementNotFound(name.to_owned())),
                };
                send_parameter_description(client, &response.parameters).await?;
                response.fields
            }
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    self.do_describe_portal(client, &portal).await?.fields
                }
                Some(Entry::Empty) => Vec::new(),
                None => return Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        send_row_description(client, &fields).await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<PreparedStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = target.statement.prepared();
        let types = describe_result_types(&self.store, client, prepared, None).await?;
        let fields = describe_fields(prepared, &types, &Format::UnifiedText);
        let parameters = prepared.shape.parameter_types.clone();
        Ok(DescribeStatementResponse::new(parameters, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<PreparedStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = target.statement.statement.prepared();
        let parameters = bound_parameters(target, prepared)?;
        let types = describe_result_types(&self.store, client, prepared, Some(parameters)).await?;
        let fields = describe_fields(prepared, &types, &target.result_column_format);
        Ok(DescribePortalResponse::new(fields))
    }
}

fn bound_parameters(
    portal: &Portal<PreparedStatement>,
    prepared: &Prepared,
) -> Result<Vec<Value>, QueryError> {
    let types = &prepared.shape.parameter_types;
    decode_parameters(&portal.parameters, &portal.parameter_format, types)
}

/// Runs a portal's statement and builds its response. Rows follow the types that Describe
/// reported, or, without an earlier Describe, types chosen from these rows.
fn execute_portal(
    state: &mut SessionState,
    cancelled: &AtomicBool,
    prepared: &Prepared,
    parameters: &[Value],
    format: &Format,
) -> Result<Response, QueryError> {
    if cancelled.load(std::sync::atomic::Ordering::Acquire) {
        return Err(QueryError::Cancelled);
    }
    match state.run(&prepared.command, parameters)? {
        Outcome::Rows { columns, rows, tag } => {
            let types = prepared.result_types_from(&rows);
            rows_response(&columns, &types, rows, tag, format)
        }
        Outcome::Done { tag, transition } => Ok(done_response(tag, transition)),
    }
}

async fn send_parameter_description<C>(client: &mut C, types: &[Type]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let oids = types.iter().map(Type::oid).collect();
    let message = PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids));
    client.feed(message).await?;
    Ok(())
}

async fn send_row_description<C>(client: &mut C, fields: &[FieldInfo]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let message = if fields.is_empty() {
        PgWireBackendMessage::NoData(NoData::new())
    } else {
        let descriptions = fields.iter().map(FieldDescription::from).collect();
        PgWireBackendMessage::RowDescription(RowDescription::new(descriptions))
    };
    client.feed(message).await?;
    Ok(())
}
