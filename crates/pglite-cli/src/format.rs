//! Printing query results the way `psql` does: aligned tables, CSV and JSON.
//!
//! The table and CSV output follow psql's defaults byte for byte (`\pset format
//! aligned`, `border 1`, `linestyle ascii`, and `--csv`): centred headers, numbers
//! right-aligned, NULL as an empty cell, `+` marking a value that continues on the next
//! line, `(n rows)` footers, and the command tag of every statement that returns no
//! rows (and of `INSERT`/`UPDATE`/`DELETE`/`MERGE ... RETURNING`).

use std::io::{self, Write};

use pglite::{SimpleResult, Type};
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header and a row count, like psql.
    Table,
    /// A header line, then one line per row, like `psql --csv`.
    Csv,
    /// One JSON array of row objects per statement that returned rows.
    Json,
}

/// Output options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The output format.
    pub format: Format,
    /// No headers and no row-count footers (`psql -t`).
    pub tuples_only: bool,
    /// No command tags (`psql -q`).
    pub quiet: bool,
}

/// Print one statement's result.
pub fn write_result(out: &mut impl Write, result: &SimpleResult, opts: Options) -> io::Result<()> {
    // A statement that sent a RowDescription has columns; the others only have a tag.
    let has_rows = !result.columns.is_empty();
    if opts.format == Format::Json {
        return if has_rows {
            write_json(out, result)
        } else {
            Ok(())
        };
    }
    if has_rows {
        match opts.format {
            Format::Table => write_table(out, result, opts.tuples_only)?,
            _ => write_csv(out, result, opts.tuples_only)?,
        }
    }
    // psql prints the tag of commands without rows, and of DML with RETURNING.
    let tag = &result.command_tag;
    let dml = ["INSERT", "UPDATE", "DELETE", "MERGE"]
        .iter()
        .any(|c| tag.starts_with(c));
    if !opts.quiet && !tag.is_empty() && (!has_rows || dml) {
        writeln!(out, "{tag}")?;
    }
    Ok(())
}

/// True for the types psql right-aligns.
fn is_numeric(oid: u32) -> bool {
    // int8, int2, int4, oid, xid, cid, float4, float8, money, numeric, xid8
    matches!(
        oid,
        20 | 21 | 23 | 26 | 28 | 29 | 700 | 701 | 790 | 1700 | 5069
    )
}

/// Terminal columns taken by `c`: 0 for combining marks, 2 for East Asian wide and
/// fullwidth characters and emoji, 1 otherwise (an approximation of psql's table).
fn char_width(c: char) -> usize {
    const ZERO: &[(u32, u32)] = &[
        (0x0300, 0x036F),
        (0x0483, 0x0489),
        (0x0591, 0x05BD),
        (0x05BF, 0x05BF),
        (0x05C1, 0x05C2),
        (0x05C4, 0x05C5),
        (0x05C7, 0x05C7),
        (0x0610, 0x061A),
        (0x064B, 0x065F),
        (0x0670, 0x0670),
        (0x06D6, 0x06DC),
        (0x06DF, 0x06E4),
        (0x06E7, 0x06E8),
        (0x06EA, 0x06ED),
        (0x0E31, 0x0E31),
        (0x0E34, 0x0E3A),
        (0x0E47, 0x0E4E),
        (0x1160, 0x11FF),
        (0x1AB0, 0x1AFF),
        (0x1DC0, 0x1DFF),
        (0x20D0, 0x20FF),
        (0xFE00, 0xFE0F),
        (0xFE20, 0xFE2F),
        (0xE0100, 0xE01EF),
    ];
    const WIDE: &[(u32, u32)] = &[
        (0x1100, 0x115F),
        (0x231A, 0x231B),
        (0x2329, 0x232A),
        (0x23E9, 0x23EC),
        (0x23F0, 0x23F0),
        (0x23F3, 0x23F3),
        (0x25FD, 0x25FE),
        (0x2614, 0x2615),
        (0x2648, 0x2653),
        (0x267F, 0x267F),
        (0x2693, 0x2693),
        (0x26A1, 0x26A1),
        (0x26AA, 0x26AB),
        (0x26BD, 0x26BE),
        (0x26C4, 0x26C5),
        (0x26CE, 0x26CE),
        (0x26D4, 0x26D4),
        (0x26EA, 0x26EA),
        (0x26F2, 0x26F3),
        (0x26F5, 0x26F5),
        (0x26FA, 0x26FA),
        (0x26FD, 0x26FD),
        (0x2705, 0x2705),
        (0x270A, 0x270B),
        (0x2728, 0x2728),
        (0x274C, 0x274C),
        (0x274E, 0x274E),
        (0x2753, 0x2755),
        (0x2757, 0x2757),
        (0x2795, 0x2797),
        (0x27B0, 0x27B0),
        (0x27BF, 0x27BF),
        (0x2B1B, 0x2B1C),
        (0x2B50, 0x2B50),
        (0x2B55, 0x2B55),
        (0x2E80, 0x303E),
        (0x3041, 0x33FF),
        (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF),
        (0xA000, 0xA4CF),
        (0xA960, 0xA97F),
        (0xAC00, 0xD7A3),
        (0xF900, 0xFAFF),
        (0xFE10, 0xFE19),
        (0xFE30, 0xFE6F),
        (0xFF00, 0xFF60),
        (0xFFE0, 0xFFE6),
        (0x16FE0, 0x18AFF),
        (0x1B000, 0x1B2FF),
        (0x1F004, 0x1F004),
        (0x1F0CF, 0x1F0CF),
        (0x1F18E, 0x1F18E),
        (0x1F191, 0x1F19A),
        (0x1F200, 0x1F2FF),
        (0x1F300, 0x1F64F),
        (0x1F680, 0x1F6FF),
        (0x1F7E0, 0x1F7EB),
        (0x1F90C, 0x1F9FF),
        (0x1FA70, 0x1FAFF),
        (0x20000, 0x2FFFD),
        (0x30000, 0x3FFFD),
    ];
    let cp = c as u32;
    let within = |table: &[(u32, u32)]| {
        table
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    std::cmp::Ordering::Less
                } else if lo > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    };
    if within(ZERO) {
        0
    } else if within(WIDE) {
        2
    } else {
        1
    }
}

/// One display line of a cell and its width in terminal columns.
struct Line {
    text: String,
    width: usize,
}

/// Split a value into display lines as psql does: newlines start a new line, tabs
/// advance to the next multiple of 8, other control characters are shown escaped.
fn display_lines(value: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut line = Line {
        text: String::new(),
        width: 0,
    };
    for c in value.chars() {
        match c {
            '\n' => lines.push(std::mem::replace(
                &mut line,
                Line {
                    text: String::new(),
                    width: 0,
                },
            )),
            '\t' => {
                let spaces = 8 - line.width % 8;
                line.text.extend(std::iter::repeat_n(' ', spaces));
                line.width += spaces;
            }
            '\r' => {
                line.text.push_str("\\r");
                line.width += 2;
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                let escaped = format!("\\x{:02X}", c as u32);
                line.width += escaped.len();
                line.text.push_str(&escaped);
            }
            c if (0x80..=0x9F).contains(&(c as u32)) => {
                let escaped = format!("\\u{:04X}", c as u32);
                line.width += escaped.len();
                line.text.push_str(&escaped);
            }
            c => {
                line.text.push(c);
                line.width += char_width(c);
            }
        }
    }
    lines.push(line);
    lines
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_table(out: &mut impl Write, result: &SimpleResult, tuples_only: bool) -> io::Result<()> {
    let columns = &result.columns;
    let last = columns.len() - 1;
    let right: Vec<bool> = columns.iter().map(|c| is_numeric(c.type_oid)).collect();
    let headers: Vec<Vec<Line>> = columns.iter().map(|c| display_lines(&c.name)).collect();
    let rows: Vec<Vec<Vec<Line>>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| display_lines(v.as_deref().unwrap_or("")))
                .collect()
        })
        .collect();
    // psql sizes columns by their headers even when it does not print them.
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|h| h.iter().map(|l| l.width).max().unwrap_or(0))
        .collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = cell.iter().map(|l| l.width).fold(*w, usize::max);
        }
    }

    let mut text = String::new();
    if !tuples_only {
        let height = headers.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            for (j, header) in headers.iter().enumerate() {
                text.push(' ');
                match header.get(i) {
                    Some(line) => {
                        let space = widths[j] - line.width;
                        pad(&mut text, space / 2);
                        text.push_str(&line.text);
                        pad(&mut text, space - space / 2);
                    }
                    None => pad(&mut text, widths[j]),
                }
                text.push(if header.len() > i + 1 { '+' } else { ' ' });
                if j < last {
                    text.push('|');
                }
            }
            text.push('\n');
        }
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
        text.push_str(&rule.join("+"));
        text.push('\n');
    }
    for row in &rows {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            for (j, cell) in row.iter().enumerate() {
                let more = cell.len() > i + 1;
                text.push(' ');
                match cell.get(i) {
                    Some(line) if right[j] => {
                        pad(&mut text, widths[j] - line.width);
                        text.push_str(&line.text);
                    }
                    Some(line) => {
                        text.push_str(&line.text);
                        if j < last || more {
                            pad(&mut text, widths[j] - line.width);
                        }
                    }
                    // Past the end of this cell's lines: only inner columns are padded.
                    None if j < last => pad(&mut text, widths[j]),
                    None => {}
                }
                if more {
                    text.push('+');
                } else if j < last {
                    text.push(' ');
                }
                if j < last {
                    text.push('|');
                }
            }
            text.push('\n');
        }
    }
    if !tuples_only {
        let n = rows.len();
        text.push_str(&format!("({n} {})\n", if n == 1 { "row" } else { "rows" }));
    }
    text.push('\n');
    out.write_all(text.as_bytes())
}

/// A CSV field as psql writes it: quoted when it holds a comma, a quote, a line
/// break, or is exactly `\.` (which COPY would read as the end of data).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) || value == "\\." {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn write_csv(out: &mut impl Write, result: &SimpleResult, tuples_only: bool) -> io::Result<()> {
    let mut text = String::new();
    if !tuples_only {
        let header: Vec<String> = result.columns.iter().map(|c| csv_field(&c.name)).collect();
        text.push_str(&header.join(","));
        text.push('\n');
    }
    for row in &result.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    out.write_all(text.as_bytes())
}

/// A value in PostgreSQL's text form as JSON, typed by its column: booleans,
/// integers, finite floats, json/jsonb and arrays of those become JSON values; numeric
/// (to keep its precision), dates, times and everything else stay strings.
fn json_value(text: Option<&str>, oid: u32) -> Value {
    let Some(text) = text else { return Value::Null };
    let Some(ty) = Type::from_oid(oid) else {
        return Value::String(text.into());
    };
    if let pglite::client::Kind::Array(element) = ty.kind() {
        let element = element.oid();
        return parse_array(text, &|item| json_value(item, element))
            .unwrap_or_else(|| Value::String(text.into()));
    }
    let typed = match ty {
        Type::BOOL => match text {
            "t" => Some(Value::Bool(true)),
            "f" => Some(Value::Bool(false)),
            _ => None,
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            text.parse::<i64>().ok().map(Value::from)
        }
        Type::FLOAT4 | Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Type::JSON | Type::JSONB => serde_json::from_str(text).ok(),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::String(text.into()))
}

/// Parse PostgreSQL's array output (`{1,2}`, `{{"a b",NULL},{c,d}}`, with an optional
/// `[1:2]=` bounds prefix) into nested JSON arrays; `None` if it is not one.
fn parse_array(text: &str, element: &dyn Fn(Option<&str>) -> Value) -> Option<Value> {
    let body = match text.strip_prefix('[') {
        Some(_) => &text[text.find('=')? + 1..],
        None => text,
    };
    let mut chars = body.chars().peekable();
    let value = parse_array_level(&mut chars, element)?;
    chars.next().is_none().then_some(value)
}

fn parse_array_level(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element: &dyn Fn(Option<&str>) -> Value,
) -> Option<Value> {
    if chars.next()? != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(Value::Array(items));
    }
    loop {
        match chars.peek()? {
            '{' => items.push(parse_array_level(chars, element)?),
            '"' => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                items.push(element(Some(&item)));
            }
            _ => {
                let mut item = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    item.push(c);
                    chars.next();
                }
                items.push(if item == "NULL" {
                    Value::Null
                } else {
                    element(Some(&item))
                });
            }
        }
        match chars.next()? {
            ',' => continue,
            '}' => return Some(Value::Array(items)),
            _ => return None,
        }
    }
}

fn write_json(out: &mut impl Write, result: &SimpleResult) -> io::Result<()> {
    // Written by hand to keep the column order (and repeated column names) as they are.
    let mut text = String::from("[");
    for (i, row) in result.rows.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('{');
        for (j, (column, value)) in result.columns.iter().zip(row).enumerate() {
            if j > 0 {
                text.push(',');
            }
            text.push_str(&Value::String(column.name.clone()).to_string());
            text.push(':');
            text.push_str(&json_value(value.as_deref(), column.type_oid).to_string());
        }
        text.push('}');
    }
    text.push_str("]\n");
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(display_lines("日本語")[0].width, 6);
        assert_eq!(display_lines("e\u{301}")[0].width, 1);
        assert_eq!(display_lines("😀")[0].width, 2);
        assert_eq!(display_lines("\tx\tyy")[0].width, 18);
        assert_eq!(display_lines("a\x01\x7f")[0].text, "a\\x01\\x7F");
        assert_eq!(display_lines("a\nbc").len(), 2);
    }

    #[test]
    fn arrays() {
        let int = |t: Option<&str>| json_value(t, 23);
        let text = |t: Option<&str>| json_value(t, 25);
        assert_eq!(
            parse_array("{1,2,NULL}", &int),
            Some(serde_json::json!([1, 2, null]))
        );
        assert_eq!(
            parse_array("{{1,2},{3,4}}", &int),
            Some(serde_json::json!([[1, 2], [3, 4]]))
        );
        assert_eq!(
            parse_array(r#"{"a b","c\"d",NULL,"NULL",e}"#, &text),
            Some(serde_json::json!(["a b", "c\"d", null, "NULL", "e"]))
        );
        assert_eq!(
            parse_array("[0:1]={7,8}", &int),
            Some(serde_json::json!([7, 8]))
        );
        assert_eq!(parse_array("{}", &int), Some(serde_json::json!([])));
        assert_eq!(parse_array("{1,2", &int), None);
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a b"), "a b");
        assert_eq!(csv_field("x,y"), "\"x,y\"");
        assert_eq!(csv_field("q\""), "\"q\"\"\"");
        assert_eq!(csv_field("\\."), "\"\\.\"");
    }
}
