//! Converting result values to JSON (`Row::to_json`).

use postgres_protocol::types as pt;
use postgres_types::{Kind, Type};
use serde_json::{Number, Value};

use crate::text::{
    self, BoxError, bytea_hex, date_text, decode_array, jsonb_text, numeric_text, time_text,
    timestamp_text, uuid_text,
};
use crate::types::Interval;

fn float_json(v: f64, text: String) -> Value {
    match Number::from_f64(v) {
        Some(n) if v.is_finite() => Value::Number(n),
        _ => Value::String(text),
    }
}

/// Converts a binary-format value to JSON:
/// null → null, bool → bool, integers → numbers, floats → numbers (`NaN`/`Infinity`
/// as strings), numeric → exact string, text → string, json/jsonb → embedded JSON,
/// uuid → string, date/time types → ISO-8601 strings, bytea → `"\\x..."`, interval →
/// PostgreSQL text, arrays → (nested) arrays.
pub(crate) fn binary_to_json(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    if let Kind::Array(elem) = ty.kind() {
        return array_json(elem, raw);
    }
    Ok(match *ty {
        Type::BOOL => Value::Bool(pt::bool_from_sql(raw)?),
        Type::INT2 => Value::from(pt::int2_from_sql(raw)?),
        Type::INT4 => Value::from(pt::int4_from_sql(raw)?),
        Type::INT8 => Value::from(pt::int8_from_sql(raw)?),
        Type::OID => Value::from(pt::oid_from_sql(raw)?),
        Type::FLOAT4 => {
            let v = pt::float4_from_sql(raw)?;
            // Go through the shortest decimal form so 1.1f32 becomes 1.1, not 1.100000023841858.
            let text = text::float4_text(v);
            match text.parse::<f64>() {
                Ok(d) if v.is_finite() => float_json(d, text),
                _ => Value::String(text),
            }
        }
        Type::FLOAT8 => {
            let v = pt::float8_from_sql(raw)?;
            float_json(v, text::float8_text(v))
        }
        Type::NUMERIC => Value::String(numeric_text(raw)?),
        Type::BYTEA => Value::String(bytea_hex(raw)),
        Type::JSON => serde_json::from_slice(raw)?,
        Type::JSONB => serde_json::from_str(jsonb_text(raw)?)?,
        Type::UUID => Value::String(uuid_text(raw)?),
        Type::DATE => Value::String(date_text(pt::date_from_sql(raw)?)),
        Type::TIME => Value::String(time_text(pt::time_from_sql(raw)?)),
        Type::TIMESTAMP => Value::String(timestamp_text(pt::timestamp_from_sql(raw)?, 'T', "")),
        Type::TIMESTAMPTZ => {
            Value::String(timestamp_text(pt::timestamp_from_sql(raw)?, 'T', "+00:00"))
        }
        Type::INTERVAL => Value::String(Interval::decode(raw)?.to_string()),
        _ => Value::String(std::str::from_utf8(raw)?.to_owned()),
    })
}

fn array_json(elem: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let array = decode_array(raw)?;
    if array.dims.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let mut values = Vec::with_capacity(array.elements.len());
    for e in &array.elements {
        values.push(match e {
            None => Value::Null,
            Some(raw) => binary_to_json(elem, raw)?,
        });
    }
    let mut iter = values.into_iter();
    Ok(nest(&array.dims, &mut iter))
}

fn nest(dims: &[(i32, i32)], iter: &mut impl Iterator<Item = Value>) -> Value {
    let len = dims[0].0.max(0) as usize;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        if dims.len() > 1 {
            out.push(nest(&dims[1..], iter));
        } else {
            out.push(iter.next().unwrap_or(Value::Null));
        }
    }
    Value::Array(out)
}
