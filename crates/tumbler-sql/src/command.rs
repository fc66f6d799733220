//! Classification of one statement: the PostgreSQL commands that tumbler handles itself
//! (`SET`, `SHOW`, `RESET`, transaction control) and the SQL that it passes to SQLite.

use crate::error::QueryError;
use crate::lexer::{Statement, Token, TokenKind, unquote};

/// One classified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `BEGIN` or `START TRANSACTION`.
    Begin(Begin),
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK` or `ABORT` without `TO SAVEPOINT`.
    Rollback,
    /// `SAVEPOINT`, `RELEASE` or `ROLLBACK TO SAVEPOINT`.
    Savepoint(Savepoint),
    /// `SET name = value` and its variants.
    Set(Set),
    /// `RESET name`, or `RESET ALL` when the name is `None`.
    Reset(Option<String>),
    /// `SHOW name`, or `SHOW ALL` when the name is `None`.
    Show(Option<String>),
    /// Any other statement, run by SQLite.
    Sql(Sql),
}

impl Command {
    /// Returns whether the command starts or ends a transaction or works on savepoints.
    pub(crate) fn controls_transaction(&self) -> bool {
        matches!(
            self,
            Command::Begin(_) | Command::Commit | Command::Rollback | Command::Savepoint(_)
        )
    }

    /// Returns whether the command may run in a transaction that an error aborted.
    pub(crate) fn runs_when_aborted(&self) -> bool {
        match self {
            Command::Commit | Command::Rollback => true,
            Command::Savepoint(savepoint) => savepoint.kind == SavepointKind::RollbackTo,
            _ => false,
        }
    }
}

/// SQLite lock that a transaction takes when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Take locks when the first statement needs them.
    Deferred,
    /// Take the write lock now, waiting for other writers.
    Immediate,
    /// Take the write lock now. With a rollback journal it also locks out readers, but in
    /// WAL mode it is the same as `Immediate`.
    Exclusive,
}

impl LockMode {
    /// Returns the SQLite statement that begins a transaction in this mode.
    pub(crate) fn begin_sql(self) -> &'static str {
        match self {
            LockMode::Deferred => "BEGIN DEFERRED",
            LockMode::Immediate => "BEGIN IMMEDIATE",
            LockMode::Exclusive => "BEGIN EXCLUSIVE",
        }
    }
}

/// A parsed `BEGIN` or `START TRANSACTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Begin {
    /// Command tag that PostgreSQL sends for the spelling used.
    pub(crate) tag: &'static str,
    pub(crate) lock: LockMode,
    /// Whether the client asked for `READ ONLY`.
    pub(crate) read_only: bool,
}

/// Kind of a [`Savepoint`] command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SavepointKind {
    Create,
    Release,
    RollbackTo,
}

/// A savepoint command, rewritten in the spelling that SQLite accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Savepoint {
    pub(crate) kind: SavepointKind,
    pub(crate) sql: String,
}

impl Savepoint {
    /// Returns the PostgreSQL command tag.
    pub(crate) fn tag(&self) -> &'static str {
        match self.kind {
            SavepointKind::Create => "SAVEPOINT",
            SavepointKind::Release => "RELEASE",
            SavepointKind::RollbackTo => "ROLLBACK",
        }
    }
}

/// A parsed `SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Set {
    /// `SET name = value`, where a value of `None` is `DEFAULT`.
    Value { name: String, value: Option<String> },
    /// `SET TRANSACTION ...` or `SET SESSION CHARACTERISTICS AS TRANSACTION ...` with an
    /// isolation level only. SQLite transactions are always serializable.
    TransactionIsolation,
}

/// Kind of SQL statement that SQLite runs, for the PostgreSQL command tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlKind {
    Select,
    Insert,
    Update,
    Delete,
    /// Any other statement, with its tag such as `CREATE TABLE`.
    Other(String),
}

/// A statement for SQLite, with `$n` placeholders rewritten to `?n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    pub(crate) sql: String,
    pub(crate) kind: SqlKind,
}

/// Classifies one statement.
///
/// # Errors
///
/// Returns [`QueryError::Syntax`] or [`QueryError::Unsupported`] for malformed or
/// unsupported transaction, `SET` and `SHOW` commands. SQL for SQLite is never rejected here.
pub(crate) fn classify(statement: &Statement<'_>) -> Result<Command, QueryError> {
    let mut words = Words::new(&statement.tokens);
    let Some(first) = words.next() else {
        return Err(QueryError::Syntax("empty statement".to_owned()));
    };
    let verb = first.text.to_ascii_uppercase();
    match verb.as_str() {
        "BEGIN" => parse_begin(&mut words, "BEGIN"),
        "START" => {
            words.expect("TRANSACTION")?;
            parse_begin(&mut words, "START TRANSACTION")
        }
        "COMMIT" | "END" => parse_end(&mut words, Command::Commit),
        "ROLLBACK" | "ABORT" => parse_rollback(&mut words),
        "SAVEPOINT" => parse_savepoint(&mut words, SavepointKind::Create),
        "RELEASE" => {
            words.eat("SAVEPOINT");
            parse_savepoint(&mut words, SavepointKind::Release)
        }
        "SET" => parse_set(&mut words),
        "RESET" => parse_reset(&mut words),
        "SHOW" => parse_show(&mut words),
        _ => Ok(Command::Sql(Sql {
            sql: rewrite_placeholders(statement),
            kind: sql_kind(&statement.tokens),
        })),
    }
}

/// Cursor over a statement's tokens for the small grammars in this module.
struct Words<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
}

impl<'t, 'a> Words<'t, 'a> {
    fn new(tokens: &'t [Token<'a>]) -> Self {
        Words { tokens, pos: 0 }
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'t Token<'a>> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    /// Consumes the next token if it is the keyword `keyword`.
    fn eat(&mut self, keyword: &str) -> bool {
        self.eat_if(|token| token.is_word(keyword))
    }

    /// Consumes the next token if it is the punctuation `punct`.
    fn eat_punct(&mut self, punct: &str) -> bool {
        self.eat_if(|token| token.is_punct(punct))
    }

    fn eat_if(&mut self, test: impl Fn(&Token<'a>) -> bool) -> bool {
        let found = self.peek().is_some_and(test);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, keyword: &str) -> Result<(), QueryError> {
        if self.eat(keyword) {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    fn expect_end(&self) -> Result<(), QueryError> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    fn rest(&self) -> &'t [Token<'a>] {
        self.tokens.get(self.pos..).unwrap_or_default()
    }

    /// Returns a PostgreSQL-style syntax error that names the current token.
    fn syntax_error(&self) -> QueryError {
        match self.peek() {
            Some(token) => {
                QueryError::Syntax(format!("syntax error at or near \"{}\"", token.text))
            }
            None => QueryError::Syntax("syntax error at end of input".to_owned()),
        }
    }
}

fn parse_begin(words: &mut Words<'_, '_>, tag: &'static str) -> Result<Command, QueryError> {
    let explicit_lock = if words.eat("DEFERRED") {
        Some(LockMode::Deferred)
    } else if words.eat("IMMEDIATE") {
        Some(LockMode::Immediate)
    } else if words.eat("EXCLUSIVE") {
        Some(LockMode::Exclusive)
    } else {
        None
    };
    if !words.eat("TRANSACTION") {
        words.eat("WORK");
    }
    let read_only = parse_transaction_modes(words)?;
    let default_lock = if read_only {
        LockMode::Deferred
    } else {
        LockMode::Immediate
    };
    Ok(Command::Begin(Begin {
        tag,
        lock: explicit_lock.unwrap_or(default_lock),
        read_only,
    }))
}

/// Parses PostgreSQL transaction modes and returns whether `READ ONLY` was among them.
fn parse_transaction_modes(words: &mut Words<'_, '_>) -> Result<bool, QueryError> {
    let mut read_only = false;
    while words.peek().is_some() {
        words.eat_punct(",");
        if words.eat("ISOLATION") {
            words.expect("LEVEL")?;
            parse_isolation_level(words)?;
        } else if words.eat("READ") {
            if words.eat("ONLY") {
                read_only = true;
            } else {
                words.expect("WRITE")?;
                read_only = false;
            }
        } else if words.eat("NOT") {
            words.expect("DEFERRABLE")?;
        } else if !words.eat("DEFERRABLE") {
            return Err(words.syntax_error());
        }
    }
    Ok(read_only)
}

fn parse_isolation_level(words: &mut Words<'_, '_>) -> Result<(), QueryError> {
    if words.eat("SERIALIZABLE") {
        return Ok(());
    }
    if words.eat("REPEATABLE") {
        return words.expect("READ");
    }
    words.expect("READ")?;
    if words.eat("COMMITTED") {
        return Ok(());
    }
    words.expect("UNCOMMITTED")
}

/// Parses the rest of `COMMIT`, `END`, `ROLLBACK` or `ABORT`.
fn parse_end(words: &mut Words<'_, '_>, command: Command) -> Result<Command, QueryError> {
    if !words.eat("TRANSACTION") {
        words.eat("WORK");
    }
    if words.eat("AND") {
        if !words.eat("NO") {
            return Err(QueryError::Unsupported(
                "COMMIT AND CHAIN and ROLLBACK AND CHAIN are not supported; end the transaction \
                 and run BEGIN"
                    .to_owned(),
            ));
        }
        words.expect("CHAIN")?;
    }
    words.expect_end()?;
    Ok(command)
}

fn parse_rollback(words: &mut Words<'_, '_>) -> Result<Command, QueryError> {
    let rest = words.rest();
    let to_savepoint = rest.iter().take(2).any(|token| token.is_word("TO"));
    if !to_savepoint {
        return parse_end(words, Command::Rollback);
    }
    if !words.eat("TRANSACTION") {
        words.eat("WORK");
    }
    words.expect("TO")?;
    words.eat("SAVEPOINT");
    parse_savepoint(words, SavepointKind::RollbackTo)
}

fn parse_savepoint(words: &mut Words<'_, '_>, kind: SavepointKind) -> Result<Command, QueryError> {
    let name = match words.next() {
        Some(token) if token.is_identifier() => token.text,
        _ => return Err(QueryError::Syntax("savepoint name expected".to_owned())),
    };
    words.expect_end()?;
    let sql = match kind {
        SavepointKind::Create => format!("SAVEPOINT {name}"),
        SavepointKind::Release => format!("RELEASE SAVEPOINT {name}"),
        SavepointKind::RollbackTo => format!("ROLLBACK TO SAVEPOINT {name}"),
    };
    Ok(Command::Savepoint(Savepoint { kind, sql }))
}

fn parse_set(words: &mut Words<'_, '_>) -> Result<Command, QueryError> {
    if !words.eat("SESSION") {
        words.eat("LOCAL");
    }
    if words.eat("CHARACTERISTICS") {
        words.expect("AS")?;
        words.expect("TRANSACTION")?;
        return parse_set_transaction(words);
    }
    if words.eat("TRANSACTION") {
        return parse_set_transaction(words);
    }
    let name = if words.eat("TIME") {
        words.expect("ZONE")?;
        "timezone".to_owned()
    } else if words.eat("NAMES") {
        "client_encoding".to_owned()
    } else {
        let name = parse_setting_name(words)?;
        if !words.eat("TO") && !words.eat_punct("=") {
            return Err(words.syntax_error());
        }
        name
    };
    let value = parse_setting_value(words.rest())?;
    Ok(Command::Set(Set::Value { name, value }))
}

fn parse_set_transaction(words: &mut Words<'_, '_>) -> Result<Command, QueryError> {
    if parse_transaction_modes(words)? {
        return Err(QueryError::Unsupported(
            "SET TRANSACTION READ ONLY is not supported; start the transaction with BEGIN READ \
             ONLY"
                .to_owned(),
        ));
    }
    Ok(Command::Set(Set::TransactionIsolation))
}

/// Parses a setting name such as `search_path` or `myapp.mode`, lowercased like PostgreSQL.
fn parse_setting_name(words: &mut Words<'_, '_>) -> Result<String, QueryError> {
    let mut name = String::new();
    loop {
        match words.next() {
            Some(token) if token.is_identifier() => name.push_str(&token.identifier()),
            _ => {
                return Err(QueryError::Syntax(
                    "configuration parameter name expected".into(),
                ));
            }
        }
        if !words.eat_punct(".") {
            return Ok(name.to_lowercase());
        }
        name.push('.');
    }
}

/// Parses the value list of `SET`. Returns `None` for `DEFAULT`.
fn parse_setting_value(tokens: &[Token<'_>]) -> Result<Option<String>, QueryError> {
    if let [only] = tokens
        && only.is_word("DEFAULT")
    {
        return Ok(None);
    }
    let parts: Vec<String> = tokens
        .split(|token| token.is_punct(","))
        .map(setting_value_part)
        .collect();
    if parts.iter().any(String::is_empty) {
        return Err(QueryError::Syntax("value expected in SET".to_owned()));
    }
    Ok(Some(parts.join(", ")))
}

fn setting_value_part(tokens: &[Token<'_>]) -> String {
    match tokens {
        [string] if string.kind == TokenKind::String => unquote(string.text),
        _ => tokens.iter().map(|token| token.text).collect(),
    }
}

fn parse_reset(words: &mut Words<'_, '_>) -> Result<Command, QueryError> {
    if words.eat("ALL") {
        words.expect_end()?;
        return Ok(Command::Reset(None));
    }
    let name = parse_setting_name(words)?;
    words.expect_end()?;
    Ok(Command::Reset(Some(name)))
}

fn parse_show(words: &mut Words<'_, '_>) -> Result<Command, QueryError> {
    let name = if words.eat("ALL") {
        None
    } else if words.eat("TRANSACTION") {
        words.expect("ISOLATION")?;
        words.expect("LEVEL")?;
        Some("transaction_isolation".to_owned())
    } else if words.eat("TIME") {
        words.expect("ZONE")?;
        Some("timezone".to_owned())
    } else {
        Some(parse_setting_name(words)?)
    };
    words.expect_end()?;
    Ok(Command::Show(name))
}

/// Rewrites PostgreSQL placeholders `$n` to SQLite's `?n`, which binds by number. SQLite
/// would read `$1` as a named parameter and number it by first appearance instead.
fn rewrite_placeholders(statement: &Statement<'_>) -> String {
    let mut sql = String::with_capacity(statement.text.len());
    let mut copied = 0;
    for token in &statement.tokens {
        let is_numbered = token.kind == TokenKind::Param
            && token.text.strip_prefix('$').is_some_and(is_all_digits);
        if !is_numbered {
            continue;
        }
        sql.push_str(statement.text.get(copied..token.start).unwrap_or_default());
        sql.push('?');
        sql.push_str(token.text.get(1..).unwrap_or_default());
        copied = token.end();
    }
    sql.push_str(statement.text.get(copied..).unwrap_or_default());
    sql
}

fn is_all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// Derives the statement kind from its leading keywords.
fn sql_kind(tokens: &[Token<'_>]) -> SqlKind {
    let Some(first) = tokens.first().filter(|token| token.kind == TokenKind::Word) else {
        return SqlKind::Select;
    };
    let verb = first.text.to_ascii_uppercase();
    match verb.as_str() {
        "WITH" => main_verb_after_with(tokens),
        "CREATE" | "DROP" | "ALTER" => SqlKind::Other(object_tag(&verb, tokens)),
        _ => verb_kind(&verb).unwrap_or(SqlKind::Other(verb)),
    }
}

fn verb_kind(verb: &str) -> Option<SqlKind> {
    match verb {
        "SELECT" | "VALUES" => Some(SqlKind::Select),
        "INSERT" | "REPLACE" => Some(SqlKind::Insert),
        "UPDATE" => Some(SqlKind::Update),
        "DELETE" => Some(SqlKind::Delete),
        _ => None,
    }
}

/// Finds the statement that follows a `WITH` clause: the first of its verbs outside brackets.
fn main_verb_after_with(tokens: &[Token<'_>]) -> SqlKind {
    let mut depth = 0usize;
    for token in tokens.iter().skip(1) {
        if token.is_punct("(") {
            depth += 1;
        } else if token.is_punct(")") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && token.kind == TokenKind::Word {
            if let Some(kind) = verb_kind(&token.text.to_ascii_uppercase()) {
                return kind;
            }
        }
    }
    SqlKind::Select
}

/// Builds tags such as `CREATE TABLE` or `DROP INDEX`, skipping modifiers like `TEMP`.
fn object_tag(verb: &str, tokens: &[Token<'_>]) -> String {
    const MODIFIERS: [&str; 4] = ["TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL"];
    let object = tokens
        .iter()
        .skip(1)
        .find(|token| !MODIFIERS.iter().any(|modifier| token.is_word(modifier)))
        .filter(|token| token.kind == TokenKind::Word);
    match object {
        Some(object) => format!("{verb} {}", object.text.to_ascii_uppercase()),
        None => verb.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;

    fn command(sql: &str) -> Result<Command, QueryError> {
        let statements = split_statements(sql);
        let statement = statements.first().expect("one statement");
        classify(statement)
    }

    fn sql_of(sql: &str) -> Sql {
        match command(sql) {
            Ok(Command::Sql(sql)) => sql,
            other => panic!("expected SQL, got {other:?}"),
        }
    }

    #[test]
    fn begin_takes_write_lock() {
        let Ok(Command::Begin(begin)) = command("BEGIN") else {
            panic!("not BEGIN")
        };
        assert_eq!(begin.lock, LockMode::Immediate);
    }

    #[test]
    fn begin_read_only_defers_lock() {
        let sql = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        let Ok(Command::Begin(begin)) = command(sql) else {
            panic!("not BEGIN")
        };
        assert_eq!(begin.lock, LockMode::Deferred);
    }

    #[test]
    fn start_transaction_tag() {
        let Ok(Command::Begin(begin)) = command("start transaction") else {
            panic!("not BEGIN")
        };
        assert_eq!(begin.tag, "START TRANSACTION");
    }

    #[test]
    fn begin_rejects_unknown_mode() {
        assert!(matches!(command("BEGIN FOO"), Err(QueryError::Syntax(_))));
    }

    #[test]
    fn commit_variants() {
        for sql in [
            "COMMIT",
            "commit work",
            "END TRANSACTION",
            "COMMIT AND NO CHAIN",
        ] {
            assert_eq!(command(sql).ok(), Some(Command::Commit), "{sql}");
        }
    }

    #[test]
    fn rollback_to_savepoint() {
        let Ok(Command::Savepoint(savepoint)) = command("ROLLBACK WORK TO SAVEPOINT s1") else {
            panic!("not a savepoint command")
        };
        assert_eq!(savepoint.sql, "ROLLBACK TO SAVEPOINT s1");
    }

    #[test]
    fn set_equals_and_to() {
        let expected = Command::Set(Set::Value {
            name: "application_name".to_owned(),
            value: Some("bench".to_owned()),
        });
        assert_eq!(
            command("SET application_name = 'bench'").ok(),
            Some(expected.clone())
        );
        assert_eq!(
            command("set SESSION Application_Name TO bench").ok(),
            Some(expected)
        );
    }

    #[test]
    fn set_value_list() {
        let Ok(Command::Set(Set::Value { value, .. })) = command("SET search_path TO a, b") else {
            panic!("not SET")
        };
        assert_eq!(value.as_deref(), Some("a, b"));
    }

    #[test]
    fn set_negative_number() {
        let Ok(Command::Set(Set::Value { value, .. })) = command("SET extra_float_digits = -1")
        else {
            panic!("not SET")
        };
        assert_eq!(value.as_deref(), Some("-1"));
    }

    #[test]
    fn set_default_clears() {
        let Ok(Command::Set(Set::Value { value, .. })) = command("SET datestyle TO DEFAULT") else {
            panic!("not SET")
        };
        assert_eq!(value, None);
    }

    #[test]
    fn set_without_value_fails() {
        assert!(command("SET x").is_err());
    }

    #[test]
    fn show_isolation_level() {
        let expected = Command::Show(Some("transaction_isolation".to_owned()));
        assert_eq!(
            command("SHOW TRANSACTION ISOLATION LEVEL").ok(),
            Some(expected)
        );
    }

    #[test]
    fn placeholders_become_numbered() {
        let sql = sql_of("SELECT $2, '$1', $1 FROM t WHERE a = $10");
        assert_eq!(sql.sql, "SELECT ?2, '$1', ?1 FROM t WHERE a = ?10");
    }

    #[test]
    fn kind_of_with_insert() {
        let sql = sql_of("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x");
        assert_eq!(sql.kind, SqlKind::Insert);
    }

    #[test]
    fn kind_of_create_temp_table() {
        assert_eq!(
            sql_of("CREATE TEMP TABLE t (a)").kind,
            SqlKind::Other("CREATE TABLE".into())
        );
    }

    #[test]
    fn kind_of_unique_index() {
        let sql = sql_of("create unique index i on t (a)");
        assert_eq!(sql.kind, SqlKind::Other("CREATE INDEX".into()));
    }
}
