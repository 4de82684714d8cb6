//! Just enough SQL scanning for the server: split a query string into statements and
//! recognise the few statements the server must treat specially (COPY FROM STDIN,
//! LISTEN/UNLISTEN, DISCARD/RESET/DEALLOCATE ALL). Strings, quoted identifiers,
//! dollar quotes and comments are skipped correctly; everything else is left to
//! PostgreSQL.

/// A lexical token of a statement (only what the server needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An unquoted word, lowercased.
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A string literal (content not kept).
    Str,
    /// Any other character.
    Sym(char),
}

/// What a statement does to the client's LISTEN set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenOp {
    /// `LISTEN channel`.
    Listen(String),
    /// `UNLISTEN channel`.
    Unlisten(String),
    /// `UNLISTEN *`.
    UnlistenAll,
}

/// A `COPY ... FROM STDIN` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyIn {
    /// The statement's text.
    pub text: String,
    /// Binary format was requested.
    pub binary: bool,
    /// Number of columns in an explicit column list (0 when there is none).
    pub columns: usize,
}

/// Split `sql` into statements at top-level semicolons (empty statements dropped).
pub(crate) fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b';' => {
                push_nonempty(&mut out, &sql[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i = skip_lexeme(bytes, i),
        }
    }
    push_nonempty(&mut out, &sql[start..]);
    out
}

fn push_nonempty<'a>(out: &mut Vec<&'a str>, stmt: &'a str) {
    if content_start(stmt).is_some() {
        out.push(stmt);
    }
}

/// Index of the first byte of `stmt` outside whitespace and comments (where its first
/// token starts), if there is one.
fn content_start(stmt: &str) -> Option<usize> {
    let b = stmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let comment = matches!(
            (b[i], b.get(i + 1)),
            (b'-', Some(b'-')) | (b'/', Some(b'*'))
        );
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if comment {
            i = skip_lexeme(b, i);
        } else {
            return Some(i);
        }
    }
    None
}

/// True when the statement's first token is one of `words` (lowercase ASCII), without
/// tokenizing it: the cheap test in front of [`tokens`] on every statement of a query.
/// Whenever `tokens(stmt)` starts with `Word(w)` for `w` in `words`, this is true.
fn starts_with_word(stmt: &str, words: &[&str]) -> bool {
    let Some(start) = content_start(stmt) else {
        return false;
    };
    let b = stmt.as_bytes();
    let mut end = start;
    while end < b.len() && (is_word_byte(b[end]) || (end > start && b[end] == b'$')) {
        end += 1;
    }
    let first = &stmt[start..end];
    words.iter().any(|w| first.eq_ignore_ascii_case(w))
}

/// Case-insensitive (ASCII) substring test, without copying `haystack`.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    h.iter().enumerate().any(|(i, &c)| {
        c.eq_ignore_ascii_case(&first)
            && h.get(i..i + n.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// Skip one lexeme starting at `i` (a string, identifier, comment, dollar quote or a
/// single byte) and return the index after it.
fn skip_lexeme(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'\'' => {
            let escapes = i > 0 && matches!(b[i - 1], b'e' | b'E') && !is_ident(b, i - 1);
            skip_quoted(b, i, b'\'', escapes)
        }
        b'"' => skip_quoted(b, i, b'"', false),
        b'-' if b.get(i + 1) == Some(&b'-') => {
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\n' {
                j += 1;
            }
            j
        }
        b'/' if b.get(i + 1) == Some(&b'*') => {
            let mut depth = 1;
            let mut j = i + 2;
            while j < b.len() && depth > 0 {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            j
        }
        b'$' if i == 0 || !is_word_byte(b[i - 1]) => match dollar_tag(b, i) {
            Some(tag_end) => {
                let tag = &b[i..tag_end];
                let mut j = tag_end;
                while j < b.len() {
                    if b[j..].starts_with(tag) {
                        return j + tag.len();
                    }
                    j += 1;
                }
                b.len()
            }
            None => i + 1,
        },
        _ => i + 1,
    }
}

/// True when the byte before a quote belongs to an identifier (so `xe'...'` is not an
/// escape string prefix).
fn is_ident(b: &[u8], e: usize) -> bool {
    e > 0 && is_word_byte(b[e - 1])
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// If a dollar-quote tag (`$$` or `$tag$`) starts at `i`, the index after it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len()
        && (b[j].is_ascii_alphabetic()
            || b[j] == b'_'
            || b[j] >= 0x80
            || (j > i + 1 && b[j].is_ascii_digit()))
    {
        j += 1;
    }
    (j < b.len() && b[j] == b'$').then_some(j + 1)
}

fn skip_quoted(b: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The tokens of one statement.
pub(crate) fn tokens(stmt: &str) -> Vec<Token> {
    let b = stmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if is_word_byte(c) && !c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (is_word_byte(b[i]) || b[i] == b'$') {
                i += 1;
            }
            // An escape-string or bit-string prefix directly followed by a quote.
            if i < b.len() && b[i] == b'\'' {
                i = skip_lexeme(b, i);
                out.push(Token::Str);
                continue;
            }
            out.push(Token::Word(stmt[start..i].to_lowercase()));
        } else if c == b'"' {
            let end = skip_lexeme(b, i);
            let inner = &stmt[i + 1..end.saturating_sub(1).max(i + 1)];
            out.push(Token::Quoted(inner.replace("\"\"", "\"")));
            i = end;
        } else if c == b'\'' {
            i = skip_lexeme(b, i);
            out.push(Token::Str);
        } else {
            let end = skip_lexeme(b, i);
            if end == i + 1 {
                out.push(Token::Sym(c as char));
            } else if c == b'$' {
                out.push(Token::Str);
            }
            // Comments produce no token.
            i = end;
        }
    }
    out
}

fn word(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    }
}

/// Recognise `COPY ... FROM STDIN`.
pub(crate) fn copy_in(stmt: &str) -> Option<CopyIn> {
    if !starts_with_word(stmt, &["copy"]) {
        return None;
    }
    let toks = tokens(stmt);
    if word(toks.first()) != Some("copy") {
        return None;
    }
    let mut depth = 0i32;
    let mut columns = 0usize;
    let mut in_columns = false;
    let mut from_stdin = false;
    for (k, t) in toks.iter().enumerate() {
        match t {
            Token::Sym('(') => {
                depth += 1;
                // `COPY table (a, b)`: a column list right after the table name.
                if depth == 1 && !from_stdin && k >= 2 && columns == 0 {
                    in_columns = true;
                    columns = 1;
                }
            }
            Token::Sym(')') => {
                depth -= 1;
                in_columns = false;
            }
            Token::Sym(',') if depth == 1 && in_columns => columns += 1,
            Token::Word(w)
                if depth == 0 && w == "from" && word(toks.get(k + 1)) == Some("stdin") =>
            {
                from_stdin = true;
            }
            _ => {}
        }
    }
    if !from_stdin {
        return None;
    }
    let binary = toks.iter().any(|t| word(Some(t)) == Some("binary"));
    Some(CopyIn {
        text: stmt.to_string(),
        binary,
        columns,
    })
}

/// Recognise `LISTEN ch`, `UNLISTEN ch` and `UNLISTEN *`.
pub(crate) fn listen_op(stmt: &str) -> Option<ListenOp> {
    if !starts_with_word(stmt, &["listen", "unlisten"]) {
        return None;
    }
    let toks = tokens(stmt);
    let channel = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.clone()),
        Some(Token::Quoted(q)) => Some(q.clone()),
        _ => None,
    };
    match word(toks.first())? {
        "listen" => channel(toks.get(1)).map(ListenOp::Listen),
        "unlisten" => match toks.get(1) {
            Some(Token::Sym('*')) => Some(ListenOp::UnlistenAll),
            t => channel(t).map(ListenOp::Unlisten),
        },
        _ => None,
    }
}

/// True when `sql` is exactly the statement `words` (case-insensitive, optional `;`).
pub(crate) fn is_exactly(sql: &str, words: &[&str]) -> bool {
    let stmts = statements(sql);
    if stmts.len() != 1 {
        return false;
    }
    let toks = tokens(stmts[0]);
    toks.len() == words.len()
        && toks
            .iter()
            .zip(words)
            .all(|(t, w)| matches!(t, Token::Word(x) if x == w))
}

/// True when the text may change session settings in a way no command tag shows
/// (`set_config(...)` calls).
pub(crate) fn mentions_set_config(sql: &str) -> bool {
    contains_ignore_case(sql, "set_config")
}

/// Names of custom (dotted) settings the text sets: `set_config('a.b', ...)` and
/// `SET [SESSION|LOCAL] a.b ...`. PostgreSQL does not list such placeholder settings
/// in `pg_settings`, so the server remembers their names to track them.
pub(crate) fn custom_settings(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = if mentions_set_config(sql) {
        sql.to_ascii_lowercase()
    } else {
        String::new()
    };
    let mut from = 0;
    while let Some(pos) = lower[from..].find("set_config") {
        let rest = lower[from + pos + "set_config".len()..].trim_start();
        if let Some(rest) = rest.strip_prefix('(')
            && let Some(rest) = rest.trim_start().strip_prefix('\'')
            && let Some(end) = rest.find('\'')
            && rest[..end].contains('.')
        {
            out.push(rest[..end].to_string());
        }
        from += pos + 1;
    }
    for stmt in statements(sql) {
        if !starts_with_word(stmt, &["set"]) {
            continue;
        }
        let toks = tokens(stmt);
        if word(toks.first()) != Some("set") {
            continue;
        }
        let mut k = 1;
        if matches!(word(toks.get(1)), Some("session" | "local")) {
            k = 2;
        }
        let part = |t: Option<&Token>| match t {
            Some(Token::Word(w)) => Some(w.clone()),
            Some(Token::Quoted(q)) => Some(q.to_lowercase()),
            _ => None,
        };
        if let (Some(a), Some(Token::Sym('.')), Some(b)) =
            (part(toks.get(k)), toks.get(k + 1), part(toks.get(k + 2)))
        {
            out.push(format!("{a}.{b}"));
        }
    }
    out
}

/// Quote an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string literal for SQL, whatever `standard_conforming_strings` is.
pub(crate) fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_quotes_and_comments() {
        let sql = "select ';' as a; select $$;$$; -- c;\n select \"x;\" /* ; /* ; */ */ ;  ;";
        assert_eq!(statements(sql).len(), 3);
        assert_eq!(statements("select E'\\';'; select 2").len(), 2);
        assert_eq!(statements("   ; -- only a comment").len(), 0);
    }

    #[test]
    fn first_word_filter_agrees_with_tokens() {
        for stmt in [
            "COPY t FROM STDIN",
            " -- c\n /* x /* y */ */ Listen a",
            "copy'x'",
            "e'copy'",
            "copying t",
            "$$copy$$",
            "1copy",
            "\"copy\" t",
            "",
            "set a.b = 1",
        ] {
            let first = tokens(stmt).into_iter().next();
            for word in ["copy", "listen", "set"] {
                // The filter may pass more than `tokens` matches, never less.
                if first == Some(Token::Word(word.into())) {
                    assert!(starts_with_word(stmt, &[word]), "{stmt:?} {word}");
                }
            }
        }
        assert!(starts_with_word(
            " -- c\n /* x /* y */ */ Listen a",
            &["listen"]
        ));
        for stmt in [
            "copying t",
            "$$copy$$",
            "1copy",
            "\"copy\" t",
            "",
            "e'copy'",
        ] {
            assert!(!starts_with_word(stmt, &["copy"]), "{stmt:?}");
        }
        assert!(contains_ignore_case(
            "SELECT Set_Config('a', 'b', false)",
            "set_config"
        ));
        assert!(!contains_ignore_case("select setconfig", "set_config"));
        assert!(!contains_ignore_case("set_confi", "set_config"));
    }

    #[test]
    fn recognises_copy_from_stdin() {
        let c = copy_in("COPY t (a, b) FROM STDIN WITH (FORMAT csv)").unwrap();
        assert_eq!(c.columns, 2);
        assert!(!c.binary);
        assert!(
            copy_in("/* x */ copy \"T\" from stdin binary")
                .unwrap()
                .binary
        );
        assert_eq!(copy_in("copy t from stdin").unwrap().columns, 0);
        assert!(copy_in("copy t to stdout").is_none());
        assert!(copy_in("copy (select 1 from stdin) to stdout").is_none());
        assert!(copy_in("copy t from '/tmp/x'").is_none());
        assert!(copy_in("select 'copy t from stdin'").is_none());
    }

    #[test]
    fn recognises_listen() {
        assert_eq!(
            listen_op("LISTEN Foo"),
            Some(ListenOp::Listen("foo".into()))
        );
        assert_eq!(
            listen_op("listen \"Foo\"\"x\""),
            Some(ListenOp::Listen("Foo\"x".into()))
        );
        assert_eq!(listen_op("unlisten *"), Some(ListenOp::UnlistenAll));
        assert_eq!(
            listen_op("UNLISTEN a"),
            Some(ListenOp::Unlisten("a".into()))
        );
        assert_eq!(listen_op("select 1"), None);
        assert!(is_exactly(" DISCARD all ; ", &["discard", "all"]));
        assert_eq!(
            custom_settings("select set_config( 'App.Tenant', 'x', false); SET SESSION my.var = 1"),
            ["app.tenant", "my.var"]
        );
        assert!(!is_exactly("discard all; select 1", &["discard", "all"]));
    }
}
