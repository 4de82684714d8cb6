//! Result rows: typed [`Row`]s of the extended protocol and text [`SimpleResult`]s of
//! the simple-query protocol.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::DataRowBody;
use postgres_types::{FromSql, Type, WasNull, WrongType};
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::json::binary_to_json;
use crate::statement::Column;
use crate::text::binary_to_text;

/// Something that picks a column of a [`Row`]: a `usize` index or a column name.
pub trait RowIndex: fmt::Display {
    /// The index of the column in `columns`, if there is one.
    #[doc(hidden)]
    fn index(&self, columns: &[Column]) -> Option<usize>;
}

impl RowIndex for usize {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl RowIndex for str {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name() == self).or_else(|| {
            columns
                .iter()
                .position(|c| c.name().eq_ignore_ascii_case(self))
        })
    }
}

impl RowIndex for String {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        self.as_str().index(columns)
    }
}

impl<T: RowIndex + ?Sized> RowIndex for &T {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        (**self).index(columns)
    }
}

/// One row of a query result.
///
/// Values of types listed in the crate docs arrive in PostgreSQL's binary format and
/// convert to any Rust type whose [`FromSql`] accepts the column type. Values of
/// other types arrive as text and can be read as `String`/`&str`.
#[derive(Clone)]
pub struct Row {
    columns: Arc<[Column]>,
    data: Bytes,
    ranges: Vec<Option<Range<usize>>>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Column]>, body: DataRowBody) -> Result<Row, Error> {
        let ranges: Vec<Option<Range<usize>>> = body
            .ranges()
            .collect()
            .map_err(|e| Error::with_source(ErrorKind::Protocol, "invalid DataRow", e))?;
        if ranges.len() != columns.len() {
            return Err(Error::protocol(format!(
                "DataRow has {} values but the statement has {} columns",
                ranges.len(),
                columns.len()
            )));
        }
        Ok(Row {
            columns,
            data: body.buffer_bytes().clone(),
            ranges,
        })
    }

    /// The row's columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if the row has no values.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The raw wire bytes of value `idx` (`None` for NULL), in the column's format.
    pub fn raw(&self, idx: usize) -> Option<&[u8]> {
        self.ranges
            .get(idx)
            .and_then(|r| r.clone())
            .map(|r| &self.data[r])
    }

    /// Reads a value, converting it to `T`.
    ///
    /// # Panics
    /// If the column does not exist, the value is NULL and `T` is not an `Option`, or
    /// the value does not convert to `T`; the message names the column and the types.
    /// Use [`Row::try_get`] to get an error instead.
    #[track_caller]
    pub fn get<'a, I, T>(&'a self, idx: I) -> T
    where
        I: RowIndex,
        T: FromSql<'a>,
    {
        match self.try_get(&idx) {
            Ok(v) => v,
            Err(e) => panic!("error retrieving column {idx}: {e}"),
        }
    }

    /// Reads a value, converting it to `T`, or returns an error saying why it cannot.
    pub fn try_get<'a, I, T>(&'a self, idx: I) -> Result<T, Error>
    where
        I: RowIndex,
        T: FromSql<'a>,
    {
        let i = idx.index(&self.columns).ok_or_else(|| {
            Error::new(
                ErrorKind::ColumnNotFound,
                format!("no column {idx} in a row of {} columns", self.columns.len()),
            )
        })?;
        let column = &self.columns[i];
        let raw = self.raw(i);
        let ty: &Type = if column.is_binary() {
            if !T::accepts(column.type_()) {
                return Err(Error::conversion(
                    format!("cannot read column {idx} (\"{}\")", column.name()),
                    Box::new(WrongType::new::<T>(column.type_().clone())),
                ));
            }
            column.type_()
        } else {
            // Text format: only text-accepting Rust types can take it.
            if !T::accepts(&Type::TEXT) {
                return Err(Error::new(
                    ErrorKind::Conversion,
                    format!(
                        "cannot read column {idx} (\"{}\") of type {} as {}: values of this \
                         type arrive in text format and can only be read as String/&str \
                         (or cast the column in SQL to a supported type)",
                        column.name(),
                        column.type_().name(),
                        std::any::type_name::<T>()
                    ),
                ));
            }
            &Type::TEXT
        };
        T::from_sql_nullable(ty, raw).map_err(|e| {
            let what = if e.is::<WasNull>() {
                format!(
                    "column {idx} (\"{}\") is NULL; read it as Option<{}>",
                    column.name(),
                    std::any::type_name::<T>()
                )
            } else {
                format!(
                    "cannot convert column {idx} (\"{}\", {}) to {}",
                    column.name(),
                    column.type_().name(),
                    std::any::type_name::<T>()
                )
            };
            Error::conversion(what, e)
        })
    }

    /// The value as PostgreSQL's text output (as psql would show it), or `None` for
    /// NULL or a column that does not exist. `timestamptz` values are shown in UTC.
    pub fn get_text<I: RowIndex>(&self, idx: I) -> Option<String> {
        let i = idx.index(&self.columns)?;
        let raw = self.raw(i)?;
        let column = &self.columns[i];
        if column.is_binary() {
            binary_to_text(column.type_(), raw)
                .ok()
                .or_else(|| Some(String::from_utf8_lossy(raw).into_owned()))
        } else {
            Some(String::from_utf8_lossy(raw).into_owned())
        }
    }

    /// The value of column `i` as JSON (see [`Row::to_json`]).
    pub fn get_json<I: RowIndex>(&self, idx: I) -> Option<Value> {
        let i = idx.index(&self.columns)?;
        Some(self.value_json(i))
    }

    fn value_json(&self, i: usize) -> Value {
        let column = &self.columns[i];
        match self.raw(i) {
            None => Value::Null,
            Some(raw) if column.is_binary() => binary_to_json(column.type_(), raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned())),
            Some(raw) => Value::String(String::from_utf8_lossy(raw).into_owned()),
        }
    }

    /// The row as a JSON object, column name → value. NULL → `null`; bool; integers →
    /// numbers; floats → numbers (`"NaN"`, `"Infinity"`, `"-Infinity"` as strings);
    /// numeric → exact decimal string; text → string; json/jsonb → embedded JSON;
    /// uuid → string; date/time/timestamp(tz) → ISO-8601 strings (timestamptz in UTC,
    /// `+00:00`); interval → PostgreSQL text; bytea → `"\\x…"` hex; arrays → JSON
    /// arrays; other types → their text form. With duplicate column names the last wins.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            map.insert(column.name().to_owned(), self.value_json(i));
        }
        Value::Object(map)
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (i, column) in self.columns.iter().enumerate() {
            m.entry(&column.name(), &self.get_text(i));
        }
        m.finish()
    }
}

/// A column of a [`SimpleResult`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleColumn {
    /// The column name.
    pub name: String,
    /// The OID of the column's type.
    pub type_oid: u32,
}

impl SimpleColumn {
    /// The column's type, if it is a built-in one.
    pub fn type_(&self) -> Option<Type> {
        Type::from_oid(self.type_oid)
    }
}

/// The result of one statement run through [`Client::simple_query`]: all values in
/// text form.
///
/// [`Client::simple_query`]: crate::Client::simple_query
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleResult {
    /// The result columns (empty for statements that return no rows).
    pub columns: Vec<SimpleColumn>,
    /// The rows; each value is PostgreSQL's text output or `None` for NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag, e.g. `SELECT 2`, `INSERT 0 1`, `CREATE TABLE`.
    pub command_tag: String,
    /// The row count from the command tag, for commands that report one.
    pub rows_affected: Option<u64>,
}

/// The row count in a command tag (`INSERT 0 5` → 5, `UPDATE 3` → 3, `SELECT 2` → 2),
/// for the commands that report one.
pub(crate) fn rows_affected(tag: &str) -> Option<u64> {
    let mut words = tag.split_whitespace();
    let command = words.next()?;
    if !matches!(
        command,
        "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "MOVE" | "FETCH" | "COPY" | "MERGE"
    ) {
        return None;
    }
    words.next_back()?.parse().ok()
}
