//! Printing query results: psql-like aligned tables, CSV and JSON.

use std::io::{self, Write};

use pglite::{SimpleResult, Type};

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

/// Print every statement's result in `format`.
pub fn write_results(
    out: &mut impl Write,
    results: &[SimpleResult],
    format: Format,
    tuples_only: bool,
) -> io::Result<()> {
    for result in results {
        let has_rows = !result.columns.is_empty();
        match format {
            Format::Table if has_rows => write_table(out, result, tuples_only)?,
            Format::Table if !tuples_only => writeln!(out, "{}", result.command_tag)?,
            Format::Csv if has_rows => write_csv(out, result, tuples_only)?,
            Format::Json if has_rows => write_json(out, result)?,
            _ => {}
        }
    }
    Ok(())
}

fn is_numeric(oid: u32) -> bool {
    Type::from_oid(oid).is_some_and(|t| {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::OID,
            Type::MONEY,
        ]
        .contains(&t)
    })
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn write_table(out: &mut impl Write, result: &SimpleResult, tuples_only: bool) -> io::Result<()> {
    let columns = &result.columns;
    let mut widths: Vec<usize> = if tuples_only {
        vec![0; columns.len()]
    } else {
        columns.iter().map(|c| width(&c.name)).collect()
    };
    for row in &result.rows {
        for (w, value) in widths.iter_mut().zip(row) {
            *w = (*w).max(value.as_deref().map_or(0, width));
        }
    }
    if !tuples_only {
        let header: Vec<String> = columns
            .iter()
            .zip(&widths)
            .map(|(c, &w)| {
                let pad = w - width(&c.name);
                let left = pad / 2;
                format!("{}{}{}", " ".repeat(left), c.name, " ".repeat(pad - left))
            })
            .collect();
        writeln!(out, " {} ", header.join(" | "))?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
        writeln!(out, "{}", rule.join("+"))?;
    }
    for row in &result.rows {
        let cells: Vec<String> = row
            .iter()
            .zip(columns)
            .zip(&widths)
            .map(|((value, column), &w)| {
                let text = value.as_deref().unwrap_or("");
                let pad = " ".repeat(w - width(text));
                if is_numeric(column.type_oid) {
                    format!("{pad}{text}")
                } else {
                    format!("{text}{pad}")
                }
            })
            .collect();
        let line = format!(" {} ", cells.join(" | "));
        writeln!(
            out,
            "{}",
            if tuples_only {
                line.trim_end()
            } else {
                line.as_str()
            }
        )?;
    }
    if !tuples_only {
        let n = result.rows.len();
        writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" })?;
        writeln!(out)?;
    }
    Ok(())
}

fn csv_field(value: &str) -> String {
    if value.is_empty() || value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn write_csv(out: &mut impl Write, result: &SimpleResult, tuples_only: bool) -> io::Result<()> {
    if !tuples_only {
        let header: Vec<String> = result.columns.iter().map(|c| csv_field(&c.name)).collect();
        writeln!(out, "{}", header.join(","))?;
    }
    for row in &result.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// A text value as JSON, typed by its column: numbers, booleans and JSON stay typed.
fn json_value(text: Option<&str>, oid: u32) -> serde_json::Value {
    use serde_json::Value;
    let Some(text) = text else { return Value::Null };
    match Type::from_oid(oid) {
        Some(t) if t == Type::BOOL => Value::Bool(text == "t"),
        Some(t) if t == Type::JSON || t == Type::JSONB => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(&t) => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some(t) if t == Type::FLOAT4 || t == Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.into())),
        _ => Value::String(text.into()),
    }
}

fn write_json(out: &mut impl Write, result: &SimpleResult) -> io::Result<()> {
    let rows: Vec<serde_json::Value> = result
        .rows
        .iter()
        .map(|row| {
            let object = result
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), json_value(v.as_deref(), c.type_oid)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::to_writer(&mut *out, &rows)?;
    writeln!(out)
}
