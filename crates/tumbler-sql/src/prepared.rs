//! Prepared statements of the extended query protocol: Parse, and the result types that
//! Describe reports and Execute follows.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;
use rusqlite::types::Value;

use crate::command::{Command, classify};
use crate::error::QueryError;
use crate::handler::{run_blocking, session_for};
use crate::lexer::{split_statements, tokenize};
use crate::session::{SessionState, Shape, show_columns};
use crate::store::Store;
use crate::types::{declared_or_text, field_infos, resolve_types};

/// A statement that a client prepared with Parse.
///
/// It stores the classified command, the parameter types sent in ParameterDescription and
/// the result column types, chosen once at the first Describe or Execute and then kept, so
/// that every Execute encodes rows the way Describe described them.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    inner: Arc<Prepared>,
}

#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) command: Command,
    pub(crate) shape: Shape,
    result_types: OnceLock<Vec<Type>>,
}

impl PreparedStatement {
    pub(crate) fn prepared(&self) -> &Arc<Prepared> {
        &self.inner
    }
}

impl Prepared {
    /// Returns the result types, choosing them from `rows` if no Describe chose them before.
    pub(crate) fn result_types_from(&self, rows: &[Vec<Value>]) -> Vec<Type> {
        self.result_types
            .get_or_init(|| resolve_types(&self.shape.columns, rows))
            .clone()
    }

    /// Returns the result types if Describe or Execute already chose them.
    fn chosen_result_types(&self) -> Option<Vec<Type>> {
        self.result_types.get().cloned()
    }

    /// Returns whether Describe may run the statement to learn the types of its undeclared
    /// columns: only read-only SQL statements run.
    fn can_probe(&self) -> bool {
        matches!(self.command, Command::Sql(_)) && self.shape.read_only
    }

    fn all_declared(&self) -> bool {
        self.shape
            .columns
            .iter()
            .all(|column| column.declared.is_some())
    }
}

/// Chooses and stores the result types of `prepared` for Describe.
///
/// Declared columns keep their types. If some column is undeclared and the statement is
/// read-only, the statement runs once and its first row decides, with the portal's
/// `parameters` or, for a statement Describe, with every parameter NULL (which still types
/// aggregates such as `count(*) ... WHERE id = $1`). Columns that stay unknown are TEXT.
pub(crate) async fn describe_result_types<C>(
    store: &Store,
    client: &C,
    prepared: &Arc<Prepared>,
    parameters: Option<Vec<Value>>,
) -> Result<Vec<Type>, QueryError>
where
    C: ClientInfo + ?Sized,
{
    if let Some(types) = prepared.chosen_result_types() {
        return Ok(types);
    }
    let types = if prepared.all_declared() || !prepared.can_probe() {
        declared_or_text(&prepared.shape.columns)
    } else {
        let session = session_for(store, client)?;
        let probed = Arc::clone(prepared);
        let count = prepared.shape.parameter_types.len();
        let parameters = parameters.unwrap_or_else(|| vec![Value::Null; count]);
        let row = run_blocking(session, move |state, _| {
            first_row(state, &probed, &parameters)
        })
        .await?;
        match row {
            Some(row) => resolve_types(&prepared.shape.columns, &[row]),
            None => declared_or_text(&prepared.shape.columns),
        }
    };
    Ok(prepared.result_types.get_or_init(|| types).clone())
}

/// Runs the statement for its first row. A failure only leaves the undeclared types TEXT.
fn first_row(
    state: &SessionState,
    prepared: &Prepared,
    parameters: &[Value],
) -> Option<Vec<Value>> {
    let Command::Sql(sql) = &prepared.command else {
        return None;
    };
    if state.is_aborted() {
        return None;
    }
    match state.first_row(sql, parameters) {
        Ok(row) => row,
        Err(error) => {
            tracing::debug!(%error, "statement failed while Describe typed its columns");
            None
        }
    }
}

/// Returns the RowDescription fields of `prepared` with `types` in `format`.
pub(crate) fn describe_fields(
    prepared: &Prepared,
    types: &[Type],
    format: &Format,
) -> Vec<FieldInfo> {
    field_infos(&prepared.shape.columns, types, format)
}

/// pgwire's [`QueryParser`] for tumbler: classifies the statement and prepares it on the
/// session's connection, so that syntax errors and unknown tables fail at Parse as they do in
/// PostgreSQL.
#[derive(Debug)]
pub struct StatementParser {
    store: Arc<Store>,
}

impl StatementParser {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        StatementParser { store }
    }
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = PreparedStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PreparedStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = split_statements(sql);
        let statement = match statements.as_slice() {
            [] => return Ok(None),
            [statement] => statement,
            _ => return Err(QueryError::MultipleStatements.into()),
        };
        let command = classify(statement)?;
        let shape = match &command {
            Command::Sql(sql) => {
                let session = session_for(&self.store, client)?;
                let sql = sql.clone();
                let text = statement.text.to_owned();
                let client_types = types.to_vec();
                run_blocking(session, move |state, _| {
                    state.shape_of(&sql, &tokenize(&text), &client_types)
                })
                .await??
            }
            Command::Show(name) => fixed_shape(types, show_columns(name.as_deref())),
            _ => fixed_shape(types, Vec::new()),
        };
        let prepared = Prepared {
            command,
            shape,
            result_types: OnceLock::new(),
        };
        Ok(Some(PreparedStatement {
            inner: Arc::new(prepared),
        }))
    }

    fn get_parameter_types(&self, statement: &PreparedStatement) -> PgWireResult<Vec<Type>> {
        Ok(statement.inner.shape.parameter_types.clone())
    }

    fn get_result_schema(
        &self,
        statement: &PreparedStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let prepared = &statement.inner;
        let types = prepared
            .chosen_result_types()
            .unwrap_or_else(|| declared_or_text(&prepared.shape.columns));
        let format = column_format.cloned().unwrap_or_default();
        Ok(describe_fields(prepared, &types, &format))
    }
}

/// Shape of a command that tumbler handles itself, with parameters as the client typed them.
fn fixed_shape(client_types: &[Option<Type>], columns: Vec<crate::types::ColumnDecl>) -> Shape {
    let parameter_types = client_types
        .iter()
        .map(|ty| ty.clone().unwrap_or(Type::TEXT))
        .collect();
    Shape {
        parameter_types,
        columns,
        read_only: true,
    }
}
