//! Errors and notices on stderr, laid out like psql's (with the SQLSTATE, as psql's
//! `VERBOSITY verbose` shows it).

use pglite::{DbError, Error, ErrorPosition};

/// Longest excerpt of a query line shown under an error, in characters.
const EXCERPT: usize = 60;

/// The text for a failed statement. `sql` is the text that was sent, to point at the
/// error position.
pub fn error(e: &Error, sql: &str) -> String {
    match e.as_db_error() {
        Some(db) => db_error(db, sql, false),
        None => format!("pglite: {e}"),
    }
}

/// The text for an error, or a notice (no SQLSTATE and no CONTEXT, as psql shows
/// them), from PostgreSQL.
pub fn db_error(db: &DbError, sql: &str, notice: bool) -> String {
    let mut text = if notice {
        format!("{}:  {}", db.severity(), db.message())
    } else {
        format!("{}:  {}: {}", db.severity(), db.code().code(), db.message())
    };
    if let Some(ErrorPosition::Original(position)) = db.position() {
        text.push_str(&excerpt(sql, *position as usize));
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!("\nDETAIL:  {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("\nHINT:  {hint}"));
    }
    if let Some(ErrorPosition::Internal { position, query }) = db.position() {
        text.push_str(&format!("\nQUERY:  {query}"));
        text.push_str(&excerpt(query, *position as usize));
    }
    if let Some(context) = db.where_().filter(|_| !notice) {
        text.push_str(&format!("\nCONTEXT:  {context}"));
    }
    text
}

/// `LINE n: <the line>` and a caret under the 1-based character `position`, shortened
/// around the caret when the line is long.
fn excerpt(sql: &str, position: usize) -> String {
    let chars: Vec<char> = sql.chars().collect();
    if position == 0 || position > chars.len() + 1 {
        return String::new();
    }
    let at = position - 1;
    let start = chars[..at.min(chars.len())]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let end = chars[start..]
        .iter()
        .position(|&c| c == '\n' || c == '\r')
        .map_or(chars.len(), |i| start + i);
    let line_no = chars[..start].iter().filter(|&&c| c == '\n').count() + 1;
    let line: Vec<char> = chars[start..end]
        .iter()
        .map(|&c| if c == '\t' { ' ' } else { c })
        .collect();
    let mut caret = at - start;
    let (mut from, mut to) = (0, line.len());
    if line.len() > EXCERPT {
        // Keep the caret in view with some context on its right, as psql does.
        from = (caret + 10)
            .saturating_sub(EXCERPT)
            .min(line.len() - EXCERPT);
        to = from + EXCERPT;
    }
    let mut shown: String = line[from..to].iter().collect();
    caret -= from;
    if from > 0 {
        shown.insert_str(0, "...");
        caret += 3;
    }
    if to < line.len() {
        shown.push_str("...");
    }
    let prefix = format!("LINE {line_no}: ");
    format!("\n{prefix}{shown}\n{}^", " ".repeat(prefix.len() + caret))
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn caret() {
        assert_eq!(excerpt("SELEC 1", 1), "\nLINE 1: SELEC 1\n        ^");
        assert_eq!(
            excerpt("select 1;\nselect nosuch", 18),
            "\nLINE 2: select nosuch\n               ^"
        );
        let long = format!("select {} nosuch", "x, ".repeat(40));
        let shown = excerpt(&long, long.len() - 5);
        assert!(shown.starts_with("\nLINE 1: ..."), "{shown}");
        let lines: Vec<&str> = shown.lines().collect();
        let caret = lines[2].len() - 1;
        assert_eq!(&lines[1][caret..caret + 6], "nosuch");
    }
}
