//! Tokenizer and statement splitter for the SQL text that clients send.
//!
//! The tokenizer follows the lexical rules that SQLite and PostgreSQL share (quoted strings and
//! identifiers, comments, numbers, parameter placeholders). It never decides whether a
//! statement is valid: SQLite does that when it prepares the statement.

/// Kind of a [`Token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Unquoted identifier or keyword.
    Word,
    /// Identifier in double quotes, backticks or square brackets.
    QuotedIdent,
    /// String literal in single quotes.
    String,
    /// Blob literal such as `x'00ff'`.
    Blob,
    /// Numeric literal.
    Number,
    /// Parameter placeholder: `$1`, `?1`, `?`, `:name`, `@name` or `$name`.
    Param,
    /// Operator or punctuation other than `;`.
    Punct,
    /// Statement separator.
    Semicolon,
}

/// One token, borrowed from the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: TokenKind,
    pub(crate) text: &'a str,
    /// Byte offset of the token in the text that was tokenized.
    pub(crate) start: usize,
}

impl Token<'_> {
    /// Byte offset just past the token.
    pub(crate) fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Returns whether the token is the unquoted keyword `keyword` (ASCII case-insensitive).
    pub(crate) fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// Returns whether the token is the punctuation `punct`.
    pub(crate) fn is_punct(&self, punct: &str) -> bool {
        self.kind == TokenKind::Punct && self.text == punct
    }

    /// Returns whether the token names something: an unquoted word or a quoted identifier.
    pub(crate) fn is_identifier(&self) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::QuotedIdent)
    }

    /// Returns the identifier with its quotes removed and doubled quotes collapsed.
    pub(crate) fn identifier(&self) -> String {
        match self.kind {
            TokenKind::QuotedIdent => unquote(self.text),
            _ => self.text.to_owned(),
        }
    }
}

/// Removes the outer quotes of a quoted identifier or string literal.
pub(crate) fn unquote(text: &str) -> String {
    let Some(open) = text.chars().next() else {
        return String::new();
    };
    let close = match open {
        '[' => ']',
        other => other,
    };
    let inner = text.strip_prefix(open).unwrap_or(text);
    let inner = inner.strip_suffix(close).unwrap_or(inner);
    if open == '[' {
        return inner.to_owned();
    }
    let doubled = format!("{close}{close}");
    inner.replace(&doubled, &close.to_string())
}

/// Operators of two or three characters, longest first.
const MULTI_CHAR_PUNCT: [&str; 11] = [
    "->>", "<=", ">=", "<>", "!=", "==", "||", "<<", ">>", "::", "->",
];

/// Splits `sql` into tokens, skipping whitespace and comments.
pub(crate) fn tokenize(sql: &str) -> Vec<Token<'_>> {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token() {
        tokens.push(token);
    }
    tokens
}

struct Lexer<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Returns the byte `offset` bytes ahead, or 0 past the end of the text.
    fn peek(&self, offset: usize) -> u8 {
        self.sql
            .as_bytes()
            .get(self.pos + offset)
            .copied()
            .unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.sql.len()
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        self.skip_space_and_comments();
        if self.at_end() {
            return None;
        }
        let start = self.pos;
        let kind = self.scan_token();
        let text = self.sql.get(start..self.pos).unwrap_or_default();
        Some(Token { kind, text, start })
    }

    fn skip_space_and_comments(&mut self) {
        loop {
            let byte = self.peek(0);
            if byte.is_ascii_whitespace() {
                self.pos += 1;
            } else if byte == b'-' && self.peek(1) == b'-' {
                self.skip_until(b"\n");
            } else if byte == b'/' && self.peek(1) == b'*' {
                self.pos += 2;
                self.skip_until(b"*/");
            } else {
                return;
            }
        }
    }

    /// Moves past the next occurrence of `terminator`, or to the end of the text.
    fn skip_until(&mut self, terminator: &[u8]) {
        let rest = self.sql.as_bytes().get(self.pos..).unwrap_or_default();
        match rest
            .windows(terminator.len())
            .position(|window| window == terminator)
        {
            Some(index) => self.pos += index + terminator.len(),
            None => self.pos = self.sql.len(),
        }
    }

    /// Scans one token that starts at the current position and returns its kind.
    fn scan_token(&mut self) -> TokenKind {
        let byte = self.peek(0);
        match byte {
            b';' => {
                self.pos += 1;
                TokenKind::Semicolon
            }
            b'\'' => {
                self.scan_quoted(b'\'');
                TokenKind::String
            }
            b'"' | b'`' => {
                self.scan_quoted(byte);
                TokenKind::QuotedIdent
            }
            b'[' => {
                self.pos += 1;
                self.skip_until(b"]");
                TokenKind::QuotedIdent
            }
            b'x' | b'X' if self.peek(1) == b'\'' => {
                self.pos += 1;
                self.scan_quoted(b'\'');
                TokenKind::Blob
            }
            b'0'..=b'9' => self.scan_number(),
            b'.' if self.peek(1).is_ascii_digit() => self.scan_number(),
            b'?' => {
                self.pos += 1;
                self.skip_while(|b| b.is_ascii_digit());
                TokenKind::Param
            }
            b'$' | b':' | b'@' if is_word_byte(self.peek(1)) => {
                self.pos += 1;
                self.skip_while(is_word_byte);
                TokenKind::Param
            }
            _ if is_word_start(byte) => {
                self.skip_while(is_word_byte);
                TokenKind::Word
            }
            _ => self.scan_punct(),
        }
    }

    /// Moves past a literal that opens with `quote` and escapes it by doubling.
    fn scan_quoted(&mut self, quote: u8) {
        self.pos += 1;
        while !self.at_end() {
            if self.peek(0) == quote {
                if self.peek(1) == quote {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                return;
            }
            self.pos += 1;
        }
    }

    fn scan_number(&mut self) -> TokenKind {
        loop {
            let byte = self.peek(0);
            let exponent_sign = matches!(byte, b'+' | b'-')
                && matches!(
                    self.sql.as_bytes().get(self.pos.wrapping_sub(1)),
                    Some(b'e' | b'E')
                )
                && !self.is_hex_number();
            if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_' || exponent_sign {
                self.pos += 1;
            } else {
                return TokenKind::Number;
            }
        }
    }

    /// Returns whether the number being scanned started with `0x`.
    fn is_hex_number(&self) -> bool {
        let rest = self.sql.as_bytes();
        let mut start = self.pos;
        while start > 0
            && rest
                .get(start - 1)
                .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            start -= 1;
        }
        matches!(rest.get(start..start + 2), Some([b'0', b'x' | b'X']))
    }

    fn scan_punct(&mut self) -> TokenKind {
        let rest = self.sql.get(self.pos..).unwrap_or_default();
        let length = MULTI_CHAR_PUNCT
            .iter()
            .find(|op| rest.starts_with(**op))
            .map_or(1, |op| op.len());
        self.pos += length;
        TokenKind::Punct
    }

    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        while !self.at_end() && keep(self.peek(0)) {
            self.pos += 1;
        }
    }
}

/// Returns whether `byte` can start an unquoted word. Bytes of multi-byte UTF-8 characters
/// count as letters, as they do in SQLite.
fn is_word_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_word_byte(byte: u8) -> bool {
    is_word_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

/// One statement of a query string, without its terminating semicolon.
#[derive(Debug, Clone)]
pub(crate) struct Statement<'a> {
    /// The statement's text, from its first token to its last.
    pub(crate) text: &'a str,
    /// The statement's tokens, with offsets relative to `text`.
    pub(crate) tokens: Vec<Token<'a>>,
}

/// Splits a query string into statements at top-level semicolons.
///
/// Semicolons inside the body of `CREATE TRIGGER ... BEGIN ... END` do not split, because
/// the body ends only at an `END` that closes no `CASE`. Empty statements (`;;`) are dropped.
pub(crate) fn split_statements(sql: &str) -> Vec<Statement<'_>> {
    let mut statements = Vec::new();
    let mut current: Vec<Token<'_>> = Vec::new();
    let mut trigger = TriggerTracker::default();
    for token in tokenize(sql) {
        let ends_statement = token.kind == TokenKind::Semicolon && trigger.accepts_end();
        if ends_statement {
            push_statement(sql, &mut current, &mut statements);
            trigger = TriggerTracker::default();
            continue;
        }
        trigger.observe(&token, &current);
        current.push(token);
    }
    push_statement(sql, &mut current, &mut statements);
    statements
}

fn push_statement<'a>(sql: &'a str, tokens: &mut Vec<Token<'a>>, out: &mut Vec<Statement<'a>>) {
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return;
    };
    let offset = first.start;
    let text = sql.get(offset..last.end()).unwrap_or_default();
    let tokens = tokens
        .drain(..)
        .map(|token| Token {
            start: token.start - offset,
            ..token
        })
        .collect();
    out.push(Statement { text, tokens });
}

/// Tracks whether the statement being split is a `CREATE TRIGGER` and, inside its body,
/// whether the latest `END` closed a `CASE` expression or the body itself.
#[derive(Debug, Default)]
struct TriggerTracker {
    in_trigger: bool,
    case_depth: usize,
    body_closed: bool,
}

impl TriggerTracker {
    fn observe(&mut self, token: &Token<'_>, previous: &[Token<'_>]) {
        if token.is_word("TRIGGER") && starts_create_trigger(previous) {
            self.in_trigger = true;
        } else if !self.in_trigger {
            return;
        }
        self.body_closed = false;
        if token.is_word("CASE") {
            self.case_depth += 1;
        } else if token.is_word("END") {
            match self.case_depth.checked_sub(1) {
                Some(depth) => self.case_depth = depth,
                None => self.body_closed = true,
            }
        }
    }

    /// Returns whether a semicolon at this point ends the statement.
    fn accepts_end(&self) -> bool {
        !self.in_trigger || self.body_closed
    }
}

/// Returns whether the tokens so far are `CREATE` or `CREATE TEMP`/`TEMPORARY`.
fn starts_create_trigger(previous: &[Token<'_>]) -> bool {
    match previous {
        [create] => create.is_word("CREATE"),
        [create, temp] => {
            create.is_word("CREATE") && (temp.is_word("TEMP") || temp.is_word("TEMPORARY"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<TokenKind> {
        tokenize(sql).iter().map(|token| token.kind).collect()
    }

    fn texts(sql: &str) -> Vec<&str> {
        split_statements(sql)
            .iter()
            .map(|statement| statement.text)
            .collect()
    }

    #[test]
    fn tokenize_skips_comments() {
        assert_eq!(
            kinds("SELECT -- note\n 1 /* block */"),
            [TokenKind::Word, TokenKind::Number]
        );
    }

    #[test]
    fn tokenize_keeps_semicolon_inside_string() {
        assert_eq!(kinds("'a;''b'"), [TokenKind::String]);
    }

    #[test]
    fn tokenize_reads_parameters() {
        let tokens = tokenize("$1 ?2 ? :name");
        assert!(tokens.iter().all(|token| token.kind == TokenKind::Param));
        assert_eq!(tokens.len(), 4);
    }

    #[test]
    fn tokenize_reads_cast_operator() {
        let tokens = tokenize("1::int");
        assert_eq!(tokens.get(1).map(|token| token.text), Some("::"));
    }

    #[test]
    fn tokenize_reads_exponent() {
        assert_eq!(kinds("1.5e-3"), [TokenKind::Number]);
    }

    #[test]
    fn tokenize_survives_unterminated_string() {
        assert_eq!(kinds("'open"), [TokenKind::String]);
    }

    #[test]
    fn tokenize_keeps_multibyte_words() {
        assert_eq!(
            texts("SELECT 'é'; SELECT ñame"),
            ["SELECT 'é'", "SELECT ñame"]
        );
    }

    #[test]
    fn split_drops_empty_statements() {
        assert_eq!(
            texts("BEGIN;; INSERT INTO t VALUES (1) ; COMMIT;"),
            ["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"]
        );
    }

    #[test]
    fn split_keeps_trigger_body() {
        let sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN \
                   UPDATE c SET n = CASE WHEN n IS NULL THEN 1 ELSE n + 1 END; \
                   DELETE FROM d; END; SELECT 1";
        assert_eq!(split_statements(sql).len(), 2);
    }

    #[test]
    fn split_offsets_are_relative() {
        let statements = split_statements("SELECT 1; SELECT $1");
        let param = statements
            .get(1)
            .and_then(|statement| statement.tokens.get(1));
        assert_eq!(param.map(|token| token.start), Some(7));
    }

    #[test]
    fn unquote_collapses_doubled_quotes() {
        assert_eq!(unquote("\"a\"\"b\""), "a\"b");
    }
}
