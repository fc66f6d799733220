//! Conversion of statement outcomes into pgwire responses.

use std::sync::Arc;

use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response, Tag};
use rusqlite::types::Value;

use crate::error::QueryError;
use crate::session::{Outcome, Transition};
use crate::types::{ColumnDecl, encode_rows, field_infos, resolve_types};

/// Builds the response to one statement of a simple Query message, where the row
/// description travels with the rows, so column types come from the values themselves.
pub(crate) fn simple_response(result: Result<Outcome, QueryError>) -> Response {
    let response = result.and_then(|outcome| match outcome {
        Outcome::Rows { columns, rows, tag } => {
            let types = resolve_types(&columns, &rows);
            rows_response(&columns, &types, rows, tag, &Format::UnifiedText)
        }
        Outcome::Done { tag, transition } => Ok(done_response(tag, transition)),
    });
    response.unwrap_or_else(|error| error_response(&error))
}

/// Builds a response whose rows follow `types`, in the formats that the client requested.
///
/// # Errors
///
/// Returns [`QueryError::ResultShapeChanged`] when the statement now returns a different
/// number of columns than `types` describes, and [`QueryError::ResultType`] when a value does
/// not fit its column's type.
pub(crate) fn rows_response(
    columns: &[ColumnDecl],
    types: &[Type],
    rows: Vec<Vec<Value>>,
    tag: &str,
    format: &Format,
) -> Result<Response, QueryError> {
    if types.len() != columns.len() {
        return Err(QueryError::ResultShapeChanged);
    }
    let fields = Arc::new(field_infos(columns, types, format));
    let data_rows = encode_rows(&fields, rows)?;
    let mut response = QueryResponse::new(fields, stream::iter(data_rows.into_iter().map(Ok)));
    response.set_command_tag(tag);
    Ok(Response::Query(response))
}

/// Builds the response to a statement that returned no rows. The variant selects how pgwire
/// updates the transaction status in ReadyForQuery.
pub(crate) fn done_response(tag: Tag, transition: Transition) -> Response {
    match transition {
        Transition::Unchanged => Response::Execution(tag),
        Transition::Started => Response::TransactionStart(tag),
        Transition::Ended => Response::TransactionEnd(tag),
    }
}

/// Builds an ErrorResponse and logs the errors that are the server's fault.
pub(crate) fn error_response(error: &QueryError) -> Response {
    log_error(error);
    Response::Error(Box::new(error.to_error_info()))
}

/// Logs an error that is sent to the client: failures of the server at warn level, errors in
/// the client's SQL at debug level.
pub(crate) fn log_error(error: &QueryError) {
    match error {
        QueryError::Internal(_) | QueryError::Store(_) => {
            tracing::warn!(%error, sqlstate = error.sqlstate(), "statement failed");
        }
        _ => tracing::debug!(%error, sqlstate = error.sqlstate(), "statement failed"),
    }
}
