//! Rendering binary-format values as PostgreSQL's text output (`Row::get_text`), and
//! the scalar decoders shared with the JSON conversion.

use std::error::Error as StdError;
use std::fmt::Write as _;

use fallible_iterator::FallibleIterator;
use postgres_protocol::types as pt;
use postgres_types::{Kind, Type};

use crate::types::{Interval, push_fraction};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// PostgreSQL's epoch (2000-01-01) as days since 1970-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// Formats a float the way PostgreSQL 12+ does (shortest exact digits, exponent when
/// the decimal exponent is below -4 or at least `max_exp`).
pub(crate) fn format_float(v: f64, shortest: String, max_exp: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // `shortest` is Rust's `{:e}` form: "-1.2345e-7".
    let (mantissa, exp) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= max_exp {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        // Fixed notation with the same digits.
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
        let mut out = String::new();
        if negative {
            out.push('-');
        }
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
        out
    }
}

pub(crate) fn float4_text(v: f32) -> String {
    format_float(f64::from(v), format!("{v:e}"), 6)
}

pub(crate) fn float8_text(v: f64) -> String {
    format_float(v, format!("{v:e}"), 15)
}

/// Decodes a binary `numeric` to its exact text form (`NaN`, `Infinity` included).
pub(crate) fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return Err("invalid numeric: too short".into());
    }
    let be16 = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let ndigits = be16(0) as usize;
    let weight = be16(2) as i16 as i64;
    let sign = be16(4);
    let dscale = be16(6) as i64;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err("invalid numeric sign".into()),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err("invalid numeric: wrong length".into());
    }
    let digit = |k: i64| -> u16 {
        if k >= 0 && (k as usize) < ndigits {
            be16(8 + 2 * k as usize)
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight {
            let d = digit(k);
            if d > 9999 {
                return Err("invalid numeric digit".into());
            }
            if k == 0 {
                write!(out, "{d}").expect("write to string");
            } else {
                write!(out, "{d:04}").expect("write to string");
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut j = 1;
        while (frac.len() as i64) < dscale {
            write!(frac, "{:04}", digit(weight + j)).expect("write to string");
            j += 1;
        }
        frac.truncate(dscale as usize);
        out.push_str(&frac);
    }
    Ok(out)
}

/// Checks that a binary `numeric` (or every element of a `numeric[]`) can be given to
/// `rust_decimal`'s `FromSql`, which panics instead of failing for some values
/// (rust_decimal 1.43 multiplies the digits it read by 10^(4·z), z = weight + 1 −
/// digit count, through `from_i128_with_scale`, which panics for 10^32 and 10^36).
/// Refused: a weight of 8 or more — at least 10^32, beyond `Decimal::MAX` (about
/// 7.9·10^28), so no value `Decimal` could hold is lost — and z ≥ 8 with fewer
/// digits (only a malformed zero, which PostgreSQL never sends).
pub(crate) fn check_decimal_range(ty: &Type, raw: &[u8]) -> Result<(), BoxError> {
    let check = |raw: &[u8]| -> Result<(), BoxError> {
        let Some(&[n0, n1, w0, w1, s0, s1]) = raw.get(..6) else {
            return Ok(()); // too short: rust_decimal reports that itself
        };
        let digits = i32::from(u16::from_be_bytes([n0, n1]));
        let weight = i32::from(i16::from_be_bytes([w0, w1]));
        let sign = u16::from_be_bytes([s0, s1]);
        if sign & 0xC000 == 0xC000 {
            return Ok(()); // NaN, ±Infinity: rust_decimal refuses them itself
        }
        if weight >= 8 {
            return Err(format!(
                "numeric value out of range for rust_decimal::Decimal: {} (read it as text)",
                numeric_text(raw).unwrap_or_else(|_| "invalid numeric".into())
            )
            .into());
        }
        if weight + 1 - digits >= 8 {
            return Err(
                format!("invalid numeric: weight {weight} with {digits} digit groups").into(),
            );
        }
        Ok(())
    };
    if *ty == Type::NUMERIC_ARRAY {
        for element in decode_array(raw)?.elements.into_iter().flatten() {
            check(element)?;
        }
        Ok(())
    } else {
        check(raw)
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (with ` BC` for years before 1) of days since 2000-01-01;
/// returns the date part and the BC suffix separately.
fn date_parts(pg_days: i64) -> (String, &'static str) {
    let (y, m, d) = civil_from_days(pg_days + PG_EPOCH_DAYS);
    if y <= 0 {
        (format!("{:04}-{m:02}-{d:02}", 1 - y), " BC")
    } else {
        (format!("{y:04}-{m:02}-{d:02}"), "")
    }
}

pub(crate) fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => {
            let (date, bc) = date_parts(i64::from(d));
            format!("{date}{bc}")
        }
    }
}

pub(crate) fn time_text(micros: i64) -> String {
    let micros = micros.max(0) as u64;
    let secs = micros / 1_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    push_fraction(&mut out, micros % 1_000_000);
    out
}

/// Timestamp text; `sep` is `' '` (PostgreSQL text) or `'T'` (JSON), `tz` the zone
/// suffix (`""`, `"+00"` or `"+00:00"`).
pub(crate) fn timestamp_text(micros: i64, sep: char, tz: &str) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(USECS_PER_DAY);
    let time = micros.rem_euclid(USECS_PER_DAY);
    let (date, bc) = date_parts(days);
    format!("{date}{sep}{}{tz}{bc}", time_text(time))
}

pub(crate) fn bytea_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for b in bytes {
        write!(out, "{b:02x}").expect("write to string");
    }
    out
}

pub(crate) fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    Ok(uuid::Uuid::from_bytes(pt::uuid_from_sql(raw)?)
        .hyphenated()
        .to_string())
}

pub(crate) fn jsonb_text(raw: &[u8]) -> Result<&str, BoxError> {
    match raw.split_first() {
        Some((1, rest)) => Ok(std::str::from_utf8(rest)?),
        _ => Err("unsupported jsonb binary version".into()),
    }
}

/// Renders a binary-format scalar or array value as PostgreSQL's text output.
pub(crate) fn binary_to_text(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    if let Kind::Array(elem) = ty.kind() {
        return array_text(elem, raw);
    }
    Ok(match *ty {
        Type::BOOL => if pt::bool_from_sql(raw)? { "t" } else { "f" }.into(),
        Type::INT2 => pt::int2_from_sql(raw)?.to_string(),
        Type::INT4 => pt::int4_from_sql(raw)?.to_string(),
        Type::INT8 => pt::int8_from_sql(raw)?.to_string(),
        Type::OID => pt::oid_from_sql(raw)?.to_string(),
        Type::FLOAT4 => float4_text(pt::float4_from_sql(raw)?),
        Type::FLOAT8 => float8_text(pt::float8_from_sql(raw)?),
        Type::NUMERIC => numeric_text(raw)?,
        Type::BYTEA => bytea_hex(raw),
        Type::JSONB => jsonb_text(raw)?.to_owned(),
        Type::UUID => uuid_text(raw)?,
        Type::DATE => date_text(pt::date_from_sql(raw)?),
        Type::TIME => time_text(pt::time_from_sql(raw)?),
        Type::TIMESTAMP => timestamp_text(pt::timestamp_from_sql(raw)?, ' ', ""),
        Type::TIMESTAMPTZ => timestamp_text(pt::timestamp_from_sql(raw)?, ' ', "+00"),
        Type::INTERVAL => Interval::decode(raw)?.to_string(),
        // text, varchar, bpchar, name, json and anything else textual.
        _ => std::str::from_utf8(raw)?.to_owned(),
    })
}

/// A decoded array: its dimensions (length, lower bound) and elements in row-major order.
pub(crate) struct DecodedArray<'a> {
    pub dims: Vec<(i32, i32)>,
    pub elements: Vec<Option<&'a [u8]>>,
}

/// PostgreSQL's limit on array dimensions (`MAXDIM`).
const MAX_ARRAY_DIMS: usize = 6;

/// Checks a binary array's header against its length before anything decodes it.
///
/// Decoders — ours and `postgres-types`' `Vec<T>` — reserve room for the element
/// count the header claims; every element takes at least 4 bytes (its length), so a
/// claim the value cannot hold is refused here instead of allocating tens of GiB for
/// a 20-byte value. Also refused, as PostgreSQL never sends them: more than 6
/// dimensions, and zero-length dimensions (an empty array has no dimensions), which
/// would make the renderers loop over the other dimensions' lengths.
pub(crate) fn check_array_header(raw: &[u8]) -> Result<(), BoxError> {
    let word = |i: usize| -> Result<i32, BoxError> {
        raw.get(i..i + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "invalid array: too short".into())
    };
    let dims = word(0)?;
    word(8)?; // flags and element type
    let dims = usize::try_from(dims).map_err(|_| "invalid array: negative dimension count")?;
    if dims > MAX_ARRAY_DIMS {
        return Err(format!("invalid array: {dims} dimensions (at most {MAX_ARRAY_DIMS})").into());
    }
    let mut elements: u64 = if dims == 0 { 0 } else { 1 };
    for d in 0..dims {
        let len = word(12 + 8 * d)?;
        word(16 + 8 * d)?;
        if len <= 0 {
            return Err("invalid array: a dimension of length zero or less".into());
        }
        elements = elements.saturating_mul(len as u64);
    }
    let body = (raw.len() - (12 + 8 * dims)) as u64;
    if elements.saturating_mul(4) > body {
        return Err(format!(
            "invalid array: {elements} elements claimed in {body} bytes of element data"
        )
        .into());
    }
    Ok(())
}

pub(crate) fn decode_array(raw: &[u8]) -> Result<DecodedArray<'_>, BoxError> {
    check_array_header(raw)?;
    let array = pt::array_from_sql(raw)?;
    let dims: Vec<(i32, i32)> = array
        .dimensions()
        .map(|d| Ok((d.len, d.lower_bound)))
        .collect()?;
    let elements: Vec<Option<&[u8]>> = array.values().collect()?;
    let expected: i64 = dims.iter().map(|d| i64::from(d.0)).product();
    if !dims.is_empty() && expected != elements.len() as i64 {
        return Err("invalid array: element count does not match dimensions".into());
    }
    Ok(DecodedArray { dims, elements })
}

fn quote_array_element(out: &mut String, s: &str) {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("NULL")
        || s.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !needs_quotes {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn array_text(elem: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let array = decode_array(raw)?;
    if array.dims.is_empty() {
        return Ok("{}".into());
    }
    let mut out = String::new();
    if array.dims.iter().any(|d| d.1 != 1) {
        for &(len, lower) in &array.dims {
            let upper = i64::from(lower) + i64::from(len) - 1;
            write!(out, "[{lower}:{upper}]").expect("write to string");
        }
        out.push('=');
    }
    let mut rendered = Vec::with_capacity(array.elements.len());
    for e in &array.elements {
        rendered.push(match e {
            None => None,
            Some(raw) => Some(binary_to_text(elem, raw)?),
        });
    }
    let mut iter = rendered.into_iter();
    write_level(&mut out, &array.dims, &mut iter);
    Ok(out)
}

fn write_level(
    out: &mut String,
    dims: &[(i32, i32)],
    iter: &mut impl Iterator<Item = Option<String>>,
) {
    out.push('{');
    let (len, _) = dims[0];
    for i in 0..len {
        if i > 0 {
            out.push(',');
        }
        if dims.len() > 1 {
            write_level(out, &dims[1..], iter);
        } else {
            match iter.next().flatten() {
                None => out.push_str("NULL"),
                Some(s) => quote_array_element(out, &s),
            }
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(float8_text(1.5), "1.5");
        assert_eq!(float8_text(1e15), "1e+15");
        assert_eq!(float8_text(1e14), "100000000000000");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(0.00001), "1e-05");
        assert_eq!(float8_text(-1.25e-7), "-1.25e-07");
        assert_eq!(float8_text(123.456), "123.456");
        assert_eq!(float8_text(f64::NAN), "NaN");
        assert_eq!(float8_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float4_text(1.1), "1.1");
        assert_eq!(float4_text(1_000_000.0), "1e+06");
        assert_eq!(float4_text(100_000.0), "100000");
        assert_eq!(float4_text(123_456_790.0), "1.2345679e+08");
    }

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        assert_eq!(numeric_text(&numeric(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&numeric(0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(
            numeric_text(&numeric(1, 0x4000, 3, &[12, 3456, 7800])).unwrap(),
            "-123456.780"
        );
        assert_eq!(
            numeric_text(&numeric(-2, 0, 6, &[1200])).unwrap(),
            "0.000012"
        );
        assert_eq!(numeric_text(&numeric(2, 0, 0, &[1])).unwrap(), "100000000");
        assert_eq!(numeric_text(&numeric(0, 0xC000, 0, &[])).unwrap(), "NaN");
    }

    /// A binary array header: dimensions (length, lower bound), then element data.
    fn array(dims: &[(i32, i32)], elements: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(dims.len() as i32).to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&Type::INT4.oid().to_be_bytes());
        for (len, lower) in dims {
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&lower.to_be_bytes());
        }
        for e in elements {
            v.extend_from_slice(&(e.len() as i32).to_be_bytes());
            v.extend_from_slice(e);
        }
        v
    }

    /// Found by fuzzing: a header claiming 2^31 - 1 elements made the decoder reserve
    /// 32 GiB; zero-length dimensions beside a huge one made the renderers loop (and
    /// allocate) that many times; an upper bound past i32::MAX overflowed.
    #[test]
    fn arrays_that_claim_more_than_they_hold_are_refused() {
        let four = 4i32.to_be_bytes();
        let huge = array(&[(i32::MAX, 1)], &[&four]);
        assert!(binary_to_text(&Type::INT4_ARRAY, &huge).is_err());
        assert!(crate::json::binary_to_json(&Type::INT4_ARRAY, &huge).is_err());
        let hollow = array(&[(i32::MAX, 1), (0, 1)], &[]);
        assert!(binary_to_text(&Type::INT4_ARRAY, &hollow).is_err());
        assert!(crate::json::binary_to_json(&Type::INT4_ARRAY, &hollow).is_err());
        let deep = array(&[(1, 1); 7], &[&four]);
        assert!(binary_to_text(&Type::INT4_ARRAY, &deep).is_err());
        assert!(check_array_header(&[0, 0, 0]).is_err());
        assert!(check_array_header(&[0, 0, 0, 0, 0]).is_err());

        // Well-formed arrays still render, bounds beyond i32 included.
        let high = array(&[(2, i32::MAX)], &[&four, &four]);
        assert_eq!(
            binary_to_text(&Type::INT4_ARRAY, &high).unwrap(),
            "[2147483647:2147483648]={4,4}"
        );
        let empty = array(&[], &[]);
        assert_eq!(binary_to_text(&Type::INT4_ARRAY, &empty).unwrap(), "{}");
        let square = array(&[(2, 1), (1, 1)], &[&four, &four]);
        assert_eq!(
            binary_to_text(&Type::INT4_ARRAY, &square).unwrap(),
            "{{4},{4}}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(date_text(8766), "2024-01-01");
        assert_eq!(date_text(-730_120), "0001-12-31 BC");
        assert_eq!(date_text(-730_119), "0001-01-01");
        assert_eq!(timestamp_text(-1, ' ', ""), "1999-12-31 23:59:59.999999");
        assert_eq!(
            timestamp_text(86_400_000_000 + 3_723_500_000, 'T', "+00:00"),
            "2000-01-02T01:02:03.5+00:00"
        );
        assert_eq!(time_text(0), "00:00:00");
    }
}
