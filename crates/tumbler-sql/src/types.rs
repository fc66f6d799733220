//! PostgreSQL types of result columns, and the encoding of SQLite values as those types.
//!
//! A column with a declared type gets the PostgreSQL type that SQLite's affinity rules give
//! it. A column without one (an expression such as `count(*)`, or a column declared with a
//! numeric or date type) gets a type from the values that it holds. Once a statement's types
//! are chosen, every value is converted to them, so that the RowDescription a client read is
//! the one that its DataRows follow.

use std::sync::Arc;

use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;
use rusqlite::types::Value;

use crate::error::QueryError;

/// A result column as SQLite prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnDecl {
    pub(crate) name: String,
    /// Type from the column's declaration, or `None` when the values decide.
    pub(crate) declared: Option<Type>,
}

/// Maps a declared SQLite column type to a PostgreSQL type.
///
/// Follows SQLite's affinity rules (INT, then CHAR/CLOB/TEXT, then BLOB, then REAL/FLOA/DOUB)
/// with `BOOL...` and `BYTEA` recognised first. Returns `None` for numeric affinity (such as
/// `NUMERIC`, `DECIMAL` or `DATE`) and for an empty declaration, whose values may be of any
/// storage class.
pub(crate) fn type_for_declared(declared: &str) -> Option<Type> {
    let upper = declared.trim().to_ascii_uppercase();
    if upper.starts_with("BOOL") {
        Some(Type::BOOL)
    } else if upper == "BYTEA" {
        Some(Type::BYTEA)
    } else if upper.contains("INT") {
        Some(Type::INT8)
    } else if upper.starts_with("VARCHAR") || upper.starts_with("CHARACTER VARYING") {
        Some(Type::VARCHAR)
    } else if ["CHAR", "CLOB", "TEXT"]
        .iter()
        .any(|word| upper.contains(word))
    {
        Some(Type::TEXT)
    } else if upper.contains("BLOB") {
        Some(Type::BYTEA)
    } else if ["REAL", "FLOA", "DOUB"]
        .iter()
        .any(|word| upper.contains(word))
    {
        Some(Type::FLOAT8)
    } else {
        None
    }
}

/// Picks one type for values of mixed SQLite storage classes: integers alone are INT8,
/// numbers with any real are FLOAT8, blobs make BYTEA, and everything else is TEXT.
fn infer_type<'v>(values: impl Iterator<Item = &'v Value>) -> Type {
    let (mut integer, mut real, mut text, mut blob) = (false, false, false, false);
    for value in values {
        match value {
            Value::Null => {}
            Value::Integer(_) => integer = true,
            Value::Real(_) => real = true,
            Value::Text(_) => text = true,
            Value::Blob(_) => blob = true,
        }
    }
    if blob {
        Type::BYTEA
    } else if text {
        Type::TEXT
    } else if real {
        Type::FLOAT8
    } else if integer {
        Type::INT8
    } else {
        Type::TEXT
    }
}

/// Returns the type of each column: the declared one if every value in `rows` converts to it
/// without loss, else one inferred from the values. SQLite lets a column declared INTEGER
/// store text, for example, and such a column is sent as TEXT instead of failing.
pub(crate) fn resolve_types(columns: &[ColumnDecl], rows: &[Vec<Value>]) -> Vec<Type> {
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let values = || rows.iter().filter_map(move |row| row.get(index));
            match &column.declared {
                Some(declared) if values().all(|value| fits(value, declared)) => declared.clone(),
                _ => infer_type(values()),
            }
        })
        .collect()
}

/// Returns whether `value` converts to `ty` without loss.
fn fits(value: &Value, ty: &Type) -> bool {
    if *value == Value::Null || *ty == Type::BYTEA {
        true
    } else if *ty == Type::INT8 {
        to_integer(value).is_some()
    } else if *ty == Type::FLOAT8 {
        to_float(value).is_some()
    } else if *ty == Type::BOOL {
        to_bool(value).is_some()
    } else {
        !matches!(value, Value::Blob(blob) if std::str::from_utf8(blob).is_err())
    }
}

/// Returns the type of each column without looking at values: undeclared columns are TEXT.
pub(crate) fn declared_or_text(columns: &[ColumnDecl]) -> Vec<Type> {
    columns
        .iter()
        .map(|column| column.declared.clone().unwrap_or(Type::TEXT))
        .collect()
}

/// Builds the RowDescription fields for `columns` typed as `types`, in the formats that the
/// client requested.
pub(crate) fn field_infos(
    columns: &[ColumnDecl],
    types: &[Type],
    format: &Format,
) -> Vec<FieldInfo> {
    columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(index, (column, ty))| {
            FieldInfo::new(
                column.name.clone(),
                None,
                None,
                ty.clone(),
                format_for(format, index),
            )
        })
        .collect()
}

/// Returns the format of column `index`. Unlike `Format::format_for`, it cannot panic on a
/// list of format codes that is shorter than the list of columns.
pub(crate) fn format_for(format: &Format, index: usize) -> FieldFormat {
    match format {
        Format::UnifiedText => FieldFormat::Text,
        Format::UnifiedBinary => FieldFormat::Binary,
        Format::Individual(codes) => codes
            .get(index)
            .map_or(FieldFormat::Text, |code| FieldFormat::from(*code)),
    }
}

/// Encodes rows as DataRow messages that follow `fields`.
///
/// # Errors
///
/// Returns [`QueryError::ResultType`] when a value cannot be converted to its column's type
/// without loss.
pub(crate) fn encode_rows(
    fields: &Arc<Vec<FieldInfo>>,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<DataRow>, QueryError> {
    let mut encoder = DataRowEncoder::new(Arc::clone(fields));
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        for (value, field) in row.into_iter().zip(fields.iter()) {
            let cell = convert(value, field)?;
            encode_cell(&mut encoder, cell)?;
        }
        encoded.push(encoder.take_row());
    }
    Ok(encoded)
}

/// A value converted to the Rust type that encodes its column's PostgreSQL type.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

fn encode_cell(encoder: &mut DataRowEncoder, cell: Cell) -> Result<(), QueryError> {
    let result = match cell {
        Cell::Null => encoder.encode_field(&None::<i64>),
        Cell::Int(value) => encoder.encode_field(&value),
        Cell::Float(value) => encoder.encode_field(&value),
        Cell::Bool(value) => encoder.encode_field(&value),
        Cell::Text(value) => encoder.encode_field(&value),
        Cell::Bytes(value) => encoder.encode_field(&value),
    };
    result.map_err(|error| QueryError::Internal(format!("encoding a result value: {error}")))
}

fn convert(value: Value, field: &FieldInfo) -> Result<Cell, QueryError> {
    if value == Value::Null {
        return Ok(Cell::Null);
    }
    let ty = field.datatype();
    let converted = if *ty == Type::INT8 {
        to_integer(&value).map(Cell::Int)
    } else if *ty == Type::FLOAT8 {
        to_float(&value).map(Cell::Float)
    } else if *ty == Type::BOOL {
        to_bool(&value).map(Cell::Bool)
    } else if *ty == Type::BYTEA {
        Some(Cell::Bytes(to_bytes(value.clone())))
    } else {
        to_text(value.clone()).map(Cell::Text)
    };
    converted.ok_or_else(|| QueryError::ResultType {
        column: field.name().to_owned(),
        type_name: ty.name().to_owned(),
        found: describe_value(&value),
    })
}

/// Largest magnitude below which every integral `f64` converts to `i64` exactly (2^63).
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

fn to_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(integer) => Some(*integer),
        Value::Real(real) if real.fract() == 0.0 && real.abs() < I64_LIMIT => Some(*real as i64),
        Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn to_float(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(integer) => Some(*integer as f64),
        Value::Real(real) => Some(*real),
        Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Converts SQLite's 0/1 (or any integer, which SQLite treats as true unless 0) and the text
/// spellings that PostgreSQL accepts for booleans.
fn to_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Integer(integer) => Some(*integer != 0),
        Value::Real(real) => Some(*real != 0.0),
        Value::Text(text) => parse_bool(text),
        _ => None,
    }
}

/// Parses the boolean spellings that PostgreSQL accepts: `t`, `true`, `yes`, `on`, `1` and
/// their opposites, in any case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn to_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Integer(integer) => Some(integer.to_string()),
        Value::Real(real) => Some(real.to_string()),
        Value::Text(text) => Some(text),
        Value::Blob(blob) => String::from_utf8(blob).ok(),
    }
}

fn to_bytes(value: Value) -> Vec<u8> {
    match value {
        Value::Blob(blob) => blob,
        Value::Text(text) => text.into_bytes(),
        other => to_text(other).unwrap_or_default().into_bytes(),
    }
}

/// Describes a value for an error message, shortening long text.
fn describe_value(value: &Value) -> String {
    const SHOWN_CHARS: usize = 40;
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(integer) => format!("the integer {integer}"),
        Value::Real(real) => format!("the real {real}"),
        Value::Text(text) => {
            let prefix: String = text.chars().take(SHOWN_CHARS).collect();
            format!("the text '{prefix}'")
        }
        Value::Blob(blob) => format!("a blob of {} bytes", blob.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(declared: Option<Type>) -> ColumnDecl {
        ColumnDecl {
            name: "c".to_owned(),
            declared,
        }
    }

    fn field(ty: Type) -> Arc<Vec<FieldInfo>> {
        Arc::new(vec![FieldInfo::new(
            "c".to_owned(),
            None,
            None,
            ty,
            FieldFormat::Text,
        )])
    }

    #[test]
    fn declared_integer_is_int8() {
        assert_eq!(type_for_declared("INTEGER"), Some(Type::INT8));
    }

    #[test]
    fn declared_boolean_is_bool() {
        assert_eq!(type_for_declared("boolean"), Some(Type::BOOL));
    }

    #[test]
    fn declared_varchar_is_varchar() {
        assert_eq!(type_for_declared("varchar(20)"), Some(Type::VARCHAR));
    }

    #[test]
    fn declared_double_is_float8() {
        assert_eq!(type_for_declared("DOUBLE PRECISION"), Some(Type::FLOAT8));
    }

    #[test]
    fn declared_numeric_is_inferred() {
        assert_eq!(type_for_declared("NUMERIC(10,2)"), None);
    }

    #[test]
    fn inferred_integers_are_int8() {
        let rows = vec![vec![Value::Integer(1)], vec![Value::Null]];
        assert_eq!(resolve_types(&[column(None)], &rows), [Type::INT8]);
    }

    #[test]
    fn inferred_mixed_numbers_are_float8() {
        let rows = vec![vec![Value::Integer(1)], vec![Value::Real(2.5)]];
        assert_eq!(resolve_types(&[column(None)], &rows), [Type::FLOAT8]);
    }

    #[test]
    fn declared_integer_holding_text_is_text() {
        let rows = vec![vec![Value::Integer(1)], vec![Value::Text("n/a".to_owned())]];
        assert_eq!(
            resolve_types(&[column(Some(Type::INT8))], &rows),
            [Type::TEXT]
        );
    }

    #[test]
    fn inferred_empty_column_is_text() {
        assert_eq!(resolve_types(&[column(None)], &[]), [Type::TEXT]);
    }

    #[test]
    fn encode_integral_real_as_int8() {
        let rows = vec![vec![Value::Real(3.0)]];
        assert!(encode_rows(&field(Type::INT8), rows).is_ok());
    }

    #[test]
    fn encode_fraction_as_int8_fails() {
        let rows = vec![vec![Value::Real(3.5)]];
        let error = encode_rows(&field(Type::INT8), rows).err();
        assert!(matches!(error, Some(QueryError::ResultType { .. })));
    }

    #[test]
    fn encode_text_in_integer_column_fails() {
        let rows = vec![vec![Value::Text("abc".to_owned())]];
        assert!(encode_rows(&field(Type::INT8), rows).is_err());
    }

    #[test]
    fn format_for_short_code_list() {
        let format = Format::Individual(vec![1]);
        assert_eq!(format_for(&format, 3), FieldFormat::Text);
    }
}
