//! Result rows: typed [`Row`]s of the extended protocol and text [`SimpleResult`]s of
//! the simple-query protocol.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::DataRowBody;
use postgres_types::{FromSql, Kind, Type, WasNull, WrongType};
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::json::binary_to_json;
use crate::statement::Column;
use crate::text::{binary_to_text, check_array_header, check_decimal_range};

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
    /// The `DataRow` itself (kept whole: taking its bytes out would cost a reference
    /// count increment and decrement per row).
    body: DataRowBody,
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
            body,
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
            .map(|r| &self.body.buffer()[r])
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
            let refuse = |e| {
                Error::conversion(
                    format!("cannot read column {idx} (\"{}\")", column.name()),
                    e,
                )
            };
            if let (Kind::Array(_), Some(raw)) = (column.type_().kind(), raw) {
                check_array_header(raw).map_err(refuse)?;
            }
            // rust_decimal's FromSql panics on some out-of-range values: refuse those
            // first. (Its impl cannot be replaced, so it is recognised by name.)
            if let Some(raw) = raw
                && matches!(*column.type_(), Type::NUMERIC | Type::NUMERIC_ARRAY)
                && std::any::type_name::<T>().contains("rust_decimal::")
            {
                check_decimal_range(column.type_(), raw).map_err(refuse)?;
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use postgres_protocol::message::backend::Message;

    use super::*;

    /// A row of one column of type `ty` holding `value`, decoded from a `DataRow`.
    fn row_of(ty: Type, value: &[u8]) -> Row {
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(b"D");
        bytes.extend_from_slice(&(4 + 2 + 4 + value.len() as i32).to_be_bytes());
        bytes.extend_from_slice(&1i16.to_be_bytes());
        bytes.extend_from_slice(&(value.len() as i32).to_be_bytes());
        bytes.extend_from_slice(value);
        let Ok(Some(Message::DataRow(body))) = Message::parse(&mut bytes) else {
            panic!("not a DataRow");
        };
        let columns: Arc<[Column]> = vec![Column::new("v".into(), ty, 0, 0)].into();
        Row::new(columns, body).unwrap()
    }

    /// Found by fuzzing: rust_decimal's `FromSql` panics ("Number exceeds maximum
    /// value that can be represented") on numerics such as 1e32, which PostgreSQL
    /// sends as one digit group of weight 8; also inside a `numeric[]`.
    #[test]
    fn numerics_beyond_decimal_are_an_error_not_a_panic() {
        use rust_decimal::Decimal;
        // numeric_send(1e32) and numeric_send(1e36); a zero with weight 7 and no
        // digits (which PostgreSQL never sends) made rust_decimal panic the same way.
        let big = [0, 1, 0, 8, 0, 0, 0, 0, 0, 1];
        let bigger = [0, 1, 0, 9, 0, 0, 0, 0, 0, 1];
        let hollow = [0, 0, 0, 7, 0, 0, 0, 1];
        let err = row_of(Type::NUMERIC, &hollow)
            .try_get::<_, Decimal>(0)
            .unwrap_err();
        assert!(format!("{err}").contains("invalid numeric"), "{err}");
        for raw in [&big[..], &bigger[..]] {
            let row = row_of(Type::NUMERIC, raw);
            let err = row.try_get::<_, Decimal>(0).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Conversion);
            assert!(
                format!("{err}").contains("out of range for rust_decimal"),
                "{err}"
            );
            assert!(row.try_get::<_, Option<Decimal>>(0).is_err());
        }
        assert_eq!(
            row_of(Type::NUMERIC, &big).get_text(0).as_deref(),
            Some("100000000000000000000000000000000")
        );
        let mut array = Vec::new();
        for word in [1, 0, Type::NUMERIC.oid() as i32, 1, 1, big.len() as i32] {
            array.extend_from_slice(&word.to_be_bytes());
        }
        array.extend_from_slice(&big);
        let row = row_of(Type::NUMERIC_ARRAY, &array);
        assert!(row.try_get::<_, Vec<Decimal>>(0).is_err());
        // The largest weight Decimal can hold still reads: 10^28.
        let row = row_of(Type::NUMERIC, &[0, 1, 0, 7, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            row.get::<_, Decimal>(0).to_string(),
            "10000000000000000000000000000"
        );
    }

    /// Found by fuzzing: `postgres-types`' `Vec<T>` reserves room for the element
    /// count an array's header claims, so a 24-byte value claiming 2^31 - 1 elements
    /// allocated 32 GiB or more.
    #[test]
    fn arrays_claiming_more_elements_than_they_hold_are_refused() {
        let mut value = Vec::new();
        for word in [1, 0, 23, i32::MAX, 1, 4, 7] {
            value.extend_from_slice(&word.to_be_bytes());
        }
        let row = row_of(Type::INT4_ARRAY, &value);
        let err = row.try_get::<_, Vec<i32>>(0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conversion);
        assert!(format!("{err}").contains("elements claimed"), "{err}");
        assert!(row.try_get::<_, Vec<Option<String>>>(0).is_err());
        // get_text falls back to the raw bytes, as for any value it cannot decode.
        assert!(row.get_text(0).is_some());
        // The same array holding its one element reads fine.
        value[12..16].copy_from_slice(&1i32.to_be_bytes());
        let row = row_of(Type::INT4_ARRAY, &value);
        assert_eq!(row.get::<_, Vec<i32>>(0), vec![7]);
        assert_eq!(row.get_text(0).as_deref(), Some("{7}"));
    }
}
