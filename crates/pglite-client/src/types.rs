//! Type support: which result types travel in binary, the [`Interval`] type, and
//! types for OIDs `postgres-types` does not know.

use std::error::Error as StdError;
use std::fmt;

use bytes::{BufMut, BytesMut};
use postgres_types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

/// True if this client decodes `ty`'s binary format (for `Row::to_json`/`get_text`),
/// and so asks the server for binary results of that type. Other types come as text.
pub(crate) fn binary_result_supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Array(elem) => binary_scalar_supported(elem),
        _ => binary_scalar_supported(ty),
    }
}

fn binary_scalar_supported(ty: &Type) -> bool {
    // rust_decimal compiles its ToSql/FromSql out on wasm32: there `numeric` comes as
    // text, so that it can at least be read as `String` (and parsed into a `Decimal`).
    if cfg!(target_arch = "wasm32") && *ty == Type::NUMERIC {
        return false;
    }
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::BYTEA
            | Type::JSON
            | Type::JSONB
            | Type::UUID
            | Type::DATE
            | Type::TIME
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
            | Type::INTERVAL
    )
}

/// The [`Type`] for an OID: the built-in one, or a placeholder named `oid_<n>` (schema
/// empty, kind simple) for types created in the database (enums, domains in
/// parameters, composite and extension types). Placeholder columns come as text.
pub(crate) fn type_for_oid(oid: u32) -> Type {
    Type::from_oid(oid)
        .unwrap_or_else(|| Type::new(format!("oid_{oid}"), oid, Kind::Simple, String::new()))
}

/// A PostgreSQL `interval`: months, days and microseconds, kept apart as the server
/// keeps them (a month is not a fixed number of days, nor a day of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months (a year is 12).
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub microseconds: i64,
}

impl Interval {
    /// An interval of the given parts.
    pub fn new(months: i32, days: i32, microseconds: i64) -> Interval {
        Interval {
            months,
            days,
            microseconds,
        }
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Interval, Box<dyn StdError + Send + Sync>> {
        if raw.len() != 16 {
            return Err("invalid interval: expected 16 bytes".into());
        }
        let microseconds = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
        let days = i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
        let months = i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
        Ok(Interval {
            months,
            days,
            microseconds,
        })
    }
}

impl fmt::Display for Interval {
    /// PostgreSQL's default (`IntervalStyle = postgres`) text form, e.g.
    /// `1 year 2 mons 3 days 04:05:06.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let mut part = |value: i64, unit: &str, is_zero: &mut bool, is_before: &mut bool| {
            if value == 0 {
                return;
            }
            if !*is_zero {
                out.push(' ');
            }
            if *is_before && value > 0 {
                out.push('+');
            }
            out.push_str(&format!(
                "{value} {unit}{}",
                if value != 1 { "s" } else { "" }
            ));
            *is_before = value < 0;
            *is_zero = false;
        };
        let years = i64::from(self.months / 12);
        let mons = i64::from(self.months % 12);
        part(years, "year", &mut is_zero, &mut is_before);
        part(mons, "mon", &mut is_zero, &mut is_before);
        part(i64::from(self.days), "day", &mut is_zero, &mut is_before);
        let us = self.microseconds;
        if is_zero || us != 0 {
            let minus = us < 0;
            let abs = us.unsigned_abs();
            let hours = abs / 3_600_000_000;
            let mins = (abs / 60_000_000) % 60;
            let secs = (abs / 1_000_000) % 60;
            let frac = abs % 1_000_000;
            if !is_zero {
                out.push(' ');
            }
            if minus {
                out.push('-');
            } else if is_before {
                out.push('+');
            }
            out.push_str(&format!("{hours:02}:{mins:02}:{secs:02}"));
            push_fraction(&mut out, frac);
        }
        f.write_str(&out)
    }
}

/// Appends `.ffffff` without trailing zeros (nothing for zero).
pub(crate) fn push_fraction(out: &mut String, micros: u64) {
    if micros != 0 {
        let s = format!("{micros:06}");
        out.push('.');
        out.push_str(s.trim_end_matches('0'));
    }
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Interval, Box<dyn StdError + Send + Sync>> {
        Interval::decode(raw)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Send + Sync>> {
        out.put_i64(self.microseconds);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_text() {
        let cases = [
            (Interval::new(0, 0, 0), "00:00:00"),
            (
                Interval::new(14, 3, 14_706_500_000),
                "1 year 2 mons 3 days 04:05:06.5",
            ),
            (Interval::new(0, 1, 0), "1 day"),
            (Interval::new(0, -1, 0), "-1 days"),
            (Interval::new(0, -1, 1_000_000), "-1 days +00:00:01"),
            (Interval::new(0, 0, -1_000_000), "-00:00:01"),
            (Interval::new(-13, 0, 0), "-1 years -1 mons"),
            (Interval::new(0, 0, 90_000_000_000), "25:00:00"),
        ];
        for (iv, text) in cases {
            assert_eq!(iv.to_string(), text, "{iv:?}");
        }
    }
}
