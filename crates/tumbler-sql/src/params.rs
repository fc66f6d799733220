//! Parameter types for ParameterDescription, and decoding of the values that Bind carries.
//!
//! SQLite does not type its parameters, but drivers such as tokio-postgres encode each value
//! for the type that the server describes. Where the client leaves a type open, it is
//! inferred from the statement's text. A parameter compared with, assigned to or inserted
//! into a column gets the column's declared type. A parameter after `LIMIT` or `OFFSET` is
//! `INT8`, and `CAST($n AS type)` gives the cast's type. Any other parameter is `TEXT`, which
//! SQLite converts by the affinity of the column or operator that it meets.

use std::collections::HashMap;

use pgwire::api::Type;
use pgwire::api::portal::Format;
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::error::QueryError;
use crate::lexer::{Token, TokenKind};
use crate::types::{parse_bool, type_for_declared};

/// Column of a table, read from `pragma_table_xinfo`.
#[derive(Debug, Clone)]
struct TableColumn {
    name: String,
    declared: Option<Type>,
    /// Whether `INSERT INTO t VALUES (...)` fills the column (generated and hidden columns
    /// are skipped).
    positional: bool,
}

/// Table columns looked up on a connection, cached for one statement.
#[derive(Debug)]
pub(crate) struct Catalog<'c> {
    conn: &'c Connection,
    tables: HashMap<String, Vec<TableColumn>>,
}

impl<'c> Catalog<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Catalog {
            conn,
            tables: HashMap::new(),
        }
    }

    /// Returns the columns of `table`, or none when the table does not exist. Inference is
    /// best effort, so a failed lookup only leaves parameters as TEXT.
    fn columns(&mut self, table: &str) -> &[TableColumn] {
        let key = table.to_lowercase();
        let conn = self.conn;
        self.tables
            .entry(key)
            .or_insert_with(|| read_columns(conn, table).unwrap_or_default())
    }
}

fn read_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<TableColumn>> {
    let mut statement =
        conn.prepare_cached("SELECT name, type, hidden FROM pragma_table_xinfo(?1)")?;
    let rows = statement.query_map([table], |row| {
        let declared: String = row.get(1)?;
        let hidden: i64 = row.get(2)?;
        Ok(TableColumn {
            name: row.get(0)?,
            declared: type_for_declared(&declared),
            positional: hidden == 0,
        })
    })?;
    rows.collect()
}

/// Returns the type of every parameter: the client's type where it sent one, else the
/// inferred type, else TEXT. The list is as long as the larger of `count` (parameters that
/// SQLite found) and the client's list.
pub(crate) fn parameter_types(
    tokens: &[Token<'_>],
    count: usize,
    client_types: &[Option<Type>],
    catalog: &mut Catalog<'_>,
) -> Vec<Type> {
    let inferred = infer_types(tokens, count, catalog);
    (0..count.max(client_types.len()))
        .map(|index| {
            let client = client_types.get(index).cloned().flatten();
            client
                .filter(|ty| *ty != Type::UNKNOWN)
                .or_else(|| inferred.get(index).cloned().flatten())
                .unwrap_or(Type::TEXT)
        })
        .collect()
}

/// Infers a type for each of `count` parameters, by zero-based index.
fn infer_types(tokens: &[Token<'_>], count: usize, catalog: &mut Catalog<'_>) -> Vec<Option<Type>> {
    let mut types = vec![None; count];
    let scope = tables_in_scope(tokens);
    let insert_columns = insert_targets(tokens, &scope, catalog);
    for (position, number) in parameter_numbers(tokens) {
        let Some(slot) = number.checked_sub(1).and_then(|index| types.get_mut(index)) else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        *slot = insert_columns
            .get(&position)
            .cloned()
            .or_else(|| infer_at(tokens, position, &scope, catalog));
    }
    types
}

/// Returns `(token position, parameter number)` for each placeholder, numbered the way SQLite
/// numbers them: `?NNN` and `$NNN` by their digits, `?` one past the largest number so far,
/// and each distinct named parameter one past the largest number when it first appears.
fn parameter_numbers(tokens: &[Token<'_>]) -> Vec<(usize, usize)> {
    let mut largest = 0;
    let mut named: HashMap<&str, usize> = HashMap::new();
    let mut numbers = Vec::new();
    for (position, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Param {
            continue;
        }
        let digits = token.text.get(1..).unwrap_or_default();
        let explicit = matches!(token.text.as_bytes().first(), Some(b'?' | b'$'))
            .then(|| digits.parse::<usize>().ok())
            .flatten();
        let number = match explicit {
            Some(number) => number,
            None if token.text == "?" => largest + 1,
            None => *named.entry(token.text).or_insert(largest + 1),
        };
        largest = largest.max(number);
        numbers.push((position, number));
    }
    numbers
}

/// A table named in `FROM`, `JOIN`, `UPDATE` or `INTO`, with its alias.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableRef {
    name: String,
    alias: Option<String>,
}

/// Keywords that end a table reference, so they are never read as an alias.
const CLAUSE_KEYWORDS: [&str; 30] = [
    "WHERE",
    "SET",
    "ON",
    "USING",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "CROSS",
    "NATURAL",
    "FULL",
    "GROUP",
    "ORDER",
    "LIMIT",
    "HAVING",
    "WINDOW",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "VALUES",
    "SELECT",
    "DEFAULT",
    "RETURNING",
    "INDEXED",
    "NOT",
    "OFFSET",
    "FROM",
    "DO",
    "AS",
];

fn is_clause_keyword(token: &Token<'_>) -> bool {
    CLAUSE_KEYWORDS.iter().any(|keyword| token.is_word(keyword))
}

fn tables_in_scope(tokens: &[Token<'_>]) -> Vec<TableRef> {
    let mut tables = Vec::new();
    for (position, token) in tokens.iter().enumerate() {
        let introduces_table = ["FROM", "JOIN", "UPDATE", "INTO"]
            .iter()
            .any(|kw| token.is_word(kw));
        if introduces_table {
            read_table_list(tokens, position + 1, &mut tables);
        }
    }
    tables
}

/// Reads `table [AS alias] [, table [AS alias]]...` starting at `position`.
fn read_table_list(tokens: &[Token<'_>], mut position: usize, tables: &mut Vec<TableRef>) {
    if tokens
        .get(position)
        .is_some_and(|token| token.is_word("OR"))
    {
        position += 2;
    }
    while let Some((table, next)) = read_table_ref(tokens, position) {
        tables.push(table);
        if !tokens.get(next).is_some_and(|token| token.is_punct(",")) {
            return;
        }
        position = next + 1;
    }
}

fn read_table_ref(tokens: &[Token<'_>], position: usize) -> Option<(TableRef, usize)> {
    let (name, mut next) = read_qualified_name(tokens, position)?;
    if tokens.get(next).is_some_and(|token| token.is_word("AS")) {
        next += 1;
    }
    let alias = tokens
        .get(next)
        .filter(|token| token.is_identifier() && !is_clause_keyword(token))
        .map(Token::identifier);
    if alias.is_some() {
        next += 1;
    }
    Some((TableRef { name, alias }, next))
}

/// Reads `name` or `schema.name` and returns the last part and the position after it.
fn read_qualified_name(tokens: &[Token<'_>], position: usize) -> Option<(String, usize)> {
    let first = tokens.get(position).filter(|token| token.is_identifier())?;
    if is_clause_keyword(first) {
        return None;
    }
    let dotted = tokens
        .get(position + 1)
        .is_some_and(|token| token.is_punct("."));
    match tokens
        .get(position + 2)
        .filter(|token| dotted && token.is_identifier())
    {
        Some(second) => Some((second.identifier(), position + 3)),
        None => Some((first.identifier(), position + 1)),
    }
}

/// Maps each placeholder that is a whole element of an `INSERT ... VALUES` tuple to the type
/// of the column that it fills.
fn insert_targets(
    tokens: &[Token<'_>],
    scope: &[TableRef],
    catalog: &mut Catalog<'_>,
) -> HashMap<usize, Type> {
    let mut targets = HashMap::new();
    let Some(into) = tokens.iter().position(|token| token.is_word("INTO")) else {
        return targets;
    };
    let Some((table, after_table)) = read_table_ref(tokens, into + 1) else {
        return targets;
    };
    let (listed, after_list) = read_column_list(tokens, after_table);
    if !tokens
        .get(after_list)
        .is_some_and(|token| token.is_word("VALUES"))
    {
        return targets;
    }
    let columns = target_column_types(&table.name, listed, catalog);
    for (position, element) in tuple_elements(tokens, after_list + 1) {
        if let Some(Some(ty)) = columns.get(element) {
            targets.insert(position, ty.clone());
        }
    }
    let _ = scope;
    targets
}

/// Reads an optional `(a, b, c)` column list and returns the names and the position after it.
fn read_column_list(tokens: &[Token<'_>], position: usize) -> (Option<Vec<String>>, usize) {
    if !tokens
        .get(position)
        .is_some_and(|token| token.is_punct("("))
    {
        return (None, position);
    }
    let mut names = Vec::new();
    let mut next = position + 1;
    while let Some(token) = tokens.get(next) {
        next += 1;
        if token.is_punct(")") {
            return (Some(names), next);
        }
        if token.is_identifier() {
            names.push(token.identifier());
        }
    }
    (Some(names), next)
}

fn target_column_types(
    table: &str,
    listed: Option<Vec<String>>,
    catalog: &mut Catalog<'_>,
) -> Vec<Option<Type>> {
    let columns = catalog.columns(table);
    match listed {
        Some(names) => names
            .iter()
            .map(|name| find_column(columns, name).and_then(|column| column.declared.clone()))
            .collect(),
        None => columns
            .iter()
            .filter(|column| column.positional)
            .map(|column| column.declared.clone())
            .collect(),
    }
}

/// Returns `(token position, element index)` for each placeholder that forms a whole element
/// of the tuples that follow `VALUES`.
fn tuple_elements(tokens: &[Token<'_>], start: usize) -> Vec<(usize, usize)> {
    let mut elements = Vec::new();
    let mut depth = 0usize;
    let mut element = 0;
    for (offset, token) in tokens.iter().skip(start).enumerate() {
        let position = start + offset;
        if token.is_punct("(") {
            depth += 1;
            if depth == 1 {
                element = 0;
            }
        } else if token.is_punct(")") {
            depth = depth.saturating_sub(1);
        } else if depth == 1 && token.is_punct(",") {
            element += 1;
        } else if depth == 0 && !token.is_punct(",") {
            break;
        } else if depth == 1 && token.kind == TokenKind::Param && is_whole_element(tokens, position)
        {
            elements.push((position, element));
        }
    }
    elements
}

fn is_whole_element(tokens: &[Token<'_>], position: usize) -> bool {
    let before = position.checked_sub(1).and_then(|index| tokens.get(index));
    let after = tokens.get(position + 1);
    let opens = before.is_some_and(|token| token.is_punct("(") || token.is_punct(","));
    let closes = after.is_some_and(|token| token.is_punct(")") || token.is_punct(","));
    opens && closes
}

/// Operators after which a parameter takes the type of the column before the operator.
const OPERATORS: [&str; 13] = [
    "=", "==", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%",
];

fn is_operator(token: &Token<'_>) -> bool {
    let punct = token.kind == TokenKind::Punct && OPERATORS.contains(&token.text);
    punct
        || ["LIKE", "GLOB", "IS"]
            .iter()
            .any(|keyword| token.is_word(keyword))
}

/// Infers the type of the placeholder at `position` from the tokens around it.
fn infer_at(
    tokens: &[Token<'_>],
    position: usize,
    scope: &[TableRef],
    catalog: &mut Catalog<'_>,
) -> Option<Type> {
    let before = |distance: usize| position.checked_sub(distance).and_then(|i| tokens.get(i));
    if let Some(ty) = cast_target(tokens, position) {
        return Some(ty);
    }
    if before(1).is_some_and(|token| token.is_word("LIMIT") || token.is_word("OFFSET")) {
        return Some(Type::INT8);
    }
    let column = column_before_operator(tokens, position)
        .or_else(|| column_after_operator(tokens, position))
        .or_else(|| column_before_between(tokens, position))
        .or_else(|| column_before_in_list(tokens, position))?;
    resolve_column(&column, scope, catalog)
}

/// A column reference: `column` or `qualifier.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnRef {
    qualifier: Option<String>,
    column: String,
}

/// Words that can stand where a column would but never name one.
const NOT_COLUMNS: [&str; 8] = ["NULL", "TRUE", "FALSE", "AND", "OR", "NOT", "WHERE", "SET"];

fn column_ref_ending_at(tokens: &[Token<'_>], end: usize) -> Option<ColumnRef> {
    let last = tokens.get(end).filter(|token| token.is_identifier())?;
    if NOT_COLUMNS.iter().any(|word| last.is_word(word)) {
        return None;
    }
    let dot = end.checked_sub(1).and_then(|index| tokens.get(index));
    let qualifier = dot
        .filter(|token| token.is_punct("."))
        .and_then(|_| end.checked_sub(2).and_then(|index| tokens.get(index)))
        .filter(|token| token.is_identifier())
        .map(Token::identifier);
    Some(ColumnRef {
        qualifier,
        column: last.identifier(),
    })
}

fn column_ref_starting_at(tokens: &[Token<'_>], start: usize) -> Option<ColumnRef> {
    let first = tokens.get(start).filter(|token| token.is_identifier())?;
    if NOT_COLUMNS.iter().any(|word| first.is_word(word)) {
        return None;
    }
    let dotted = tokens
        .get(start + 1)
        .is_some_and(|token| token.is_punct("."));
    match tokens
        .get(start + 2)
        .filter(|token| dotted && token.is_identifier())
    {
        Some(column) => Some(ColumnRef {
            qualifier: Some(first.identifier()),
            column: column.identifier(),
        }),
        None => Some(ColumnRef {
            qualifier: None,
            column: first.identifier(),
        }),
    }
}

/// Returns the position before `position`, skipping one `NOT` (as in `NOT LIKE`, `IS NOT`).
fn skip_not_backward(tokens: &[Token<'_>], position: usize) -> Option<usize> {
    let previous = position.checked_sub(1)?;
    if tokens
        .get(previous)
        .is_some_and(|token| token.is_word("NOT"))
    {
        previous.checked_sub(1)
    } else {
        Some(previous)
    }
}

/// `column = $n`, `column + $n`, `column NOT LIKE $n`, `column IS NOT $n`.
fn column_before_operator(tokens: &[Token<'_>], position: usize) -> Option<ColumnRef> {
    let operator = skip_not_backward(tokens, position)?;
    if !tokens.get(operator).is_some_and(is_operator) {
        return None;
    }
    let end = skip_not_backward(tokens, operator)?;
    column_ref_ending_at(tokens, end)
}

/// `$n = column`.
fn column_after_operator(tokens: &[Token<'_>], position: usize) -> Option<ColumnRef> {
    let operator = tokens.get(position + 1)?;
    if operator.kind != TokenKind::Punct || !is_operator(operator) {
        return None;
    }
    column_ref_starting_at(tokens, position + 2)
}

/// `column BETWEEN $a AND $b`, for either placeholder.
fn column_before_between(tokens: &[Token<'_>], position: usize) -> Option<ColumnRef> {
    let before = |distance: usize| position.checked_sub(distance).and_then(|i| tokens.get(i));
    let between = if before(1).is_some_and(|token| token.is_word("BETWEEN")) {
        position - 1
    } else if before(1).is_some_and(|token| token.is_word("AND"))
        && before(3).is_some_and(|token| token.is_word("BETWEEN"))
    {
        position - 3
    } else {
        return None;
    };
    column_ref_ending_at(tokens, skip_not_backward(tokens, between)?)
}

/// `column IN ($1, $2, ...)` and `column NOT IN (...)`.
fn column_before_in_list(tokens: &[Token<'_>], position: usize) -> Option<ColumnRef> {
    let mut index = position.checked_sub(1)?;
    loop {
        let token = tokens.get(index)?;
        if token.is_punct("(") {
            break;
        }
        let in_list = token.is_punct(",")
            || matches!(
                token.kind,
                TokenKind::Param | TokenKind::Number | TokenKind::String
            );
        if !in_list {
            return None;
        }
        index = index.checked_sub(1)?;
    }
    let in_keyword = index.checked_sub(1)?;
    if !tokens
        .get(in_keyword)
        .is_some_and(|token| token.is_word("IN"))
    {
        return None;
    }
    column_ref_ending_at(tokens, skip_not_backward(tokens, in_keyword)?)
}

/// `CAST($n AS type)`.
fn cast_target(tokens: &[Token<'_>], position: usize) -> Option<Type> {
    let open = position
        .checked_sub(1)
        .and_then(|index| tokens.get(index))?;
    let cast = position
        .checked_sub(2)
        .and_then(|index| tokens.get(index))?;
    let as_keyword = tokens.get(position + 1)?;
    if !(cast.is_word("CAST") && open.is_punct("(") && as_keyword.is_word("AS")) {
        return None;
    }
    let type_name: Vec<&str> = tokens
        .iter()
        .skip(position + 2)
        .take_while(|token| !token.is_punct(")"))
        .map(|token| token.text)
        .collect();
    type_for_declared(&type_name.join(" "))
}

fn resolve_column(
    column: &ColumnRef,
    scope: &[TableRef],
    catalog: &mut Catalog<'_>,
) -> Option<Type> {
    let matches_qualifier = |table: &&TableRef| match &column.qualifier {
        Some(qualifier) => {
            let alias = table.alias.as_deref().unwrap_or(&table.name);
            alias.eq_ignore_ascii_case(qualifier) || table.name.eq_ignore_ascii_case(qualifier)
        }
        None => true,
    };
    for table in scope.iter().filter(matches_qualifier) {
        if let Some(found) = find_column(catalog.columns(&table.name), &column.column) {
            return found.declared.clone();
        }
    }
    None
}

fn find_column<'t>(columns: &'t [TableColumn], name: &str) -> Option<&'t TableColumn> {
    columns
        .iter()
        .find(|column| column.name.eq_ignore_ascii_case(name))
}

/// Decodes the values of a Bind message for a statement whose parameters have `types`.
///
/// # Errors
///
/// Returns [`QueryError::Protocol`] when the number of values or format codes does not match
/// the statement, and [`QueryError::Parameter`] or [`QueryError::Unsupported`] when a value
/// cannot be decoded as its type.
pub(crate) fn decode_parameters(
    values: &[Option<impl AsRef<[u8]>>],
    format: &Format,
    types: &[Type],
) -> Result<Vec<Value>, QueryError> {
    if values.len() != types.len() {
        return Err(QueryError::Protocol(format!(
            "bind message supplies {} parameters, but prepared statement requires {}",
            values.len(),
            types.len()
        )));
    }
    if let Format::Individual(codes) = format
        && codes.len() != values.len()
    {
        return Err(QueryError::Protocol(format!(
            "bind message has {} parameter formats but {} parameters",
            codes.len(),
            values.len()
        )));
    }
    values
        .iter()
        .zip(types)
        .enumerate()
        .map(|(index, (value, ty))| {
            let binary = crate::types::format_for(format, index)
                == pgwire::api::results::FieldFormat::Binary;
            let bytes = value.as_ref().map(AsRef::as_ref);
            decode_parameter(bytes, ty, binary).map_err(|reason| QueryError::Parameter {
                index: index + 1,
                type_name: ty.name().to_owned(),
                reason,
            })
        })
        .collect()
}

/// Decodes one value, returning the reason when it is invalid.
fn decode_parameter(bytes: Option<&[u8]>, ty: &Type, binary: bool) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    if binary {
        decode_binary(bytes, ty)
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| "the text is not valid UTF-8")?;
        decode_text(text, ty)
    }
}

fn decode_binary(bytes: &[u8], ty: &Type) -> Result<Value, String> {
    let value = if *ty == Type::BOOL {
        let [byte] = fixed::<1>(bytes)?;
        Value::Integer(i64::from(byte != 0))
    } else if *ty == Type::INT2 {
        Value::Integer(i16::from_be_bytes(fixed(bytes)?).into())
    } else if *ty == Type::INT4 {
        Value::Integer(i32::from_be_bytes(fixed(bytes)?).into())
    } else if *ty == Type::INT8 {
        Value::Integer(i64::from_be_bytes(fixed(bytes)?))
    } else if *ty == Type::OID {
        Value::Integer(u32::from_be_bytes(fixed(bytes)?).into())
    } else if *ty == Type::FLOAT4 {
        Value::Real(f32::from_be_bytes(fixed(bytes)?).into())
    } else if *ty == Type::FLOAT8 {
        Value::Real(f64::from_be_bytes(fixed(bytes)?))
    } else if *ty == Type::BYTEA {
        Value::Blob(bytes.to_vec())
    } else if is_text_type(ty) {
        let text = std::str::from_utf8(bytes).map_err(|_| "the text is not valid UTF-8")?;
        Value::Text(text.to_owned())
    } else {
        return Err(
            "binary format is supported for bool, int2, int4, int8, oid, float4, \
                    float8, bytea and text types only; send this parameter in text format"
                .to_owned(),
        );
    };
    Ok(value)
}

fn is_text_type(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::JSON,
    ]
    .contains(ty)
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes in binary format, got {}", bytes.len()))
}

fn decode_text(text: &str, ty: &Type) -> Result<Value, String> {
    let invalid = || format!("invalid input syntax: \"{text}\"");
    let trimmed = text.trim();
    let value = if *ty == Type::BOOL {
        Value::Integer(i64::from(parse_bool(text).ok_or_else(invalid)?))
    } else if *ty == Type::INT2 {
        Value::Integer(trimmed.parse::<i16>().map_err(|_| invalid())?.into())
    } else if *ty == Type::INT4 {
        Value::Integer(trimmed.parse::<i32>().map_err(|_| invalid())?.into())
    } else if *ty == Type::INT8 {
        Value::Integer(trimmed.parse::<i64>().map_err(|_| invalid())?)
    } else if *ty == Type::OID {
        Value::Integer(trimmed.parse::<u32>().map_err(|_| invalid())?.into())
    } else if *ty == Type::FLOAT4 || *ty == Type::FLOAT8 {
        Value::Real(trimmed.parse::<f64>().map_err(|_| invalid())?)
    } else if *ty == Type::BYTEA {
        Value::Blob(parse_bytea(text).ok_or_else(invalid)?)
    } else {
        Value::Text(text.to_owned())
    };
    Ok(value)
}

/// Parses PostgreSQL's text forms of bytea: hex (`\x0aff`) or escape (`a\\b\001`).
fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        return parse_hex(hex);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte != b'\\' {
            out.push(byte);
            index += 1;
        } else if bytes.get(index + 1) == Some(&b'\\') {
            out.push(b'\\');
            index += 2;
        } else {
            let octal = text.get(index + 1..index + 4)?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            index += 4;
        }
    }
    Some(out)
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn connection() -> Connection {
        let conn = Connection::open_in_memory().expect("open in-memory database");
        conn.execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance REAL, \
             active BOOLEAN, photo BLOB, opened DATE)",
        )
        .expect("create table");
        conn
    }

    fn types_of(sql: &str, count: usize) -> Vec<Type> {
        let conn = connection();
        let mut catalog = Catalog::new(&conn);
        parameter_types(&tokenize(sql), count, &[], &mut catalog)
    }

    #[test]
    fn infer_comparison() {
        assert_eq!(
            types_of("SELECT * FROM accounts WHERE id = $1", 1),
            [Type::INT8]
        );
    }

    #[test]
    fn infer_reversed_comparison() {
        assert_eq!(
            types_of("SELECT * FROM accounts a WHERE $1 < a.balance", 1),
            [Type::FLOAT8]
        );
    }

    #[test]
    fn infer_update_set_and_arithmetic() {
        let sql = "UPDATE accounts SET balance = balance + $1, owner = $2 WHERE id = $3";
        assert_eq!(types_of(sql, 3), [Type::FLOAT8, Type::TEXT, Type::INT8]);
    }

    #[test]
    fn infer_insert_with_column_list() {
        let sql = "INSERT INTO accounts (active, id, photo) VALUES ($1, $2, $3)";
        assert_eq!(types_of(sql, 3), [Type::BOOL, Type::INT8, Type::BYTEA]);
    }

    #[test]
    fn infer_insert_without_column_list() {
        let sql = "INSERT INTO accounts VALUES ($1, $2, $3, $4, NULL, NULL)";
        assert_eq!(
            types_of(sql, 4),
            [Type::INT8, Type::TEXT, Type::FLOAT8, Type::BOOL]
        );
    }

    #[test]
    fn infer_between_and_in() {
        let sql = "SELECT 1 FROM accounts WHERE id BETWEEN $1 AND $2 OR balance IN ($3, $4)";
        assert_eq!(
            types_of(sql, 4),
            [Type::INT8, Type::INT8, Type::FLOAT8, Type::FLOAT8]
        );
    }

    #[test]
    fn infer_limit_and_cast() {
        let sql = "SELECT CAST($1 AS INTEGER) FROM accounts LIMIT $2";
        assert_eq!(types_of(sql, 2), [Type::INT8, Type::INT8]);
    }

    #[test]
    fn infer_falls_back_to_text() {
        assert_eq!(
            types_of("SELECT $1 || 'x', opened = $2 FROM accounts", 2),
            [Type::TEXT, Type::TEXT]
        );
    }

    #[test]
    fn client_type_wins() {
        let conn = connection();
        let mut catalog = Catalog::new(&conn);
        let tokens = tokenize("SELECT * FROM accounts WHERE id = $1");
        let types = parameter_types(&tokens, 1, &[Some(Type::INT4)], &mut catalog);
        assert_eq!(types, [Type::INT4]);
    }

    #[test]
    fn numbering_follows_sqlite() {
        let numbers = parameter_numbers(&tokenize("?3 ? :a :a ?"));
        let numbers: Vec<usize> = numbers.into_iter().map(|(_, number)| number).collect();
        assert_eq!(numbers, [3, 4, 5, 5, 6]);
    }

    #[test]
    fn decode_binary_int4() {
        let value = decode_parameter(Some(&7i32.to_be_bytes()), &Type::INT4, true);
        assert_eq!(value, Ok(Value::Integer(7)));
    }

    #[test]
    fn decode_binary_wrong_length() {
        assert!(decode_parameter(Some(&[0, 1]), &Type::INT8, true).is_err());
    }

    #[test]
    fn decode_text_bool() {
        assert_eq!(
            decode_parameter(Some(b"true"), &Type::BOOL, false),
            Ok(Value::Integer(1))
        );
    }

    #[test]
    fn decode_text_bad_integer() {
        assert!(decode_parameter(Some(b"12x"), &Type::INT8, false).is_err());
    }

    #[test]
    fn decode_text_bytea_hex() {
        let value = decode_parameter(Some(b"\\x00ff"), &Type::BYTEA, false);
        assert_eq!(value, Ok(Value::Blob(vec![0, 255])));
    }

    #[test]
    fn decode_text_bytea_escape() {
        let value = decode_parameter(Some(b"a\\\\\\001"), &Type::BYTEA, false);
        assert_eq!(value, Ok(Value::Blob(vec![b'a', b'\\', 1])));
    }

    #[test]
    fn inference_survives_every_prefix() {
        let conn = connection();
        let sql = "INSERT INTO accounts (id, owner) VALUES ($1, 'é''x' || $2) ON CONFLICT (id) \
                   DO UPDATE SET owner = excluded.owner WHERE accounts.id BETWEEN $3 AND ?4 \
                   /* c */ -- d\n; SELECT CAST($5 AS INT) IN ($6, :n) [q] `r` x'0";
        let boundaries = sql
            .char_indices()
            .map(|(index, _)| index)
            .chain([sql.len()]);
        for end in boundaries {
            let prefix = sql.get(..end).unwrap_or_default();
            for statement in crate::lexer::split_statements(prefix) {
                let _ = crate::command::classify(&statement);
                let mut catalog = Catalog::new(&conn);
                let types = parameter_types(&statement.tokens, 8, &[], &mut catalog);
                assert_eq!(types.len(), 8, "prefix {prefix:?}");
            }
        }
    }

    #[test]
    fn decode_count_mismatch() {
        let values: Vec<Option<Vec<u8>>> = vec![None];
        let result = decode_parameters(&values, &Format::UnifiedText, &[]);
        assert!(matches!(result, Err(QueryError::Protocol(_))));
    }
}
