//! Looking up types created in the database (enums, domains, composites, ranges,
//! extension types) by OID, so statements describe them with their real name, schema
//! and kind. Results are cached per client.

use postgres_types::{Field, Kind, Type};

use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::io::Io;

/// Nesting limit for element/base/field types (PostgreSQL types cannot be cyclic;
/// this only guards against a confused catalog).
const MAX_DEPTH: u32 = 16;

fn lookup_sql(oid: u32) -> String {
    format!(
        "SELECT t.typname::text, n.nspname::text, t.typtype::text, t.typcategory::text, \
                t.typelem::int8, t.typbasetype::int8, \
                coalesce((SELECT r.rngsubtype::int8 FROM pg_catalog.pg_range r \
                          WHERE r.rngtypid = t.oid), 0), \
                coalesce((SELECT r.rngsubtype::int8 FROM pg_catalog.pg_range r \
                          WHERE r.rngmultitypid = t.oid), 0), \
                coalesce((SELECT json_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '[]')::text, \
                coalesce((SELECT json_agg(json_build_array(a.attname::text, a.atttypid::int8) \
                                          ORDER BY a.attnum) \
                          FROM pg_catalog.pg_attribute a \
                          WHERE a.attrelid = t.typrelid AND t.typrelid <> 0 \
                            AND a.attnum > 0 AND NOT a.attisdropped), '[]')::text \
         FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         WHERE t.oid = {oid}"
    )
}

fn bad(what: &str) -> Error {
    Error::protocol(format!("unexpected pg_type lookup result: {what}"))
}

impl<I: Io> Core<I> {
    /// The [`Type`] for `oid`: built-in, cached, or looked up in the catalog. A type
    /// that cannot be found gets a placeholder named `oid_<n>`.
    pub(crate) async fn resolve_type(&mut self, oid: u32) -> Result<Type, Error> {
        self.resolve_type_depth(oid, 0).await
    }

    async fn resolve_type_depth(&mut self, oid: u32, depth: u32) -> Result<Type, Error> {
        if let Some(ty) = Type::from_oid(oid) {
            return Ok(ty);
        }
        if let Some(ty) = self.types.get(&oid) {
            return Ok(ty.clone());
        }
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("type {oid} nests more than {MAX_DEPTH} levels"),
            ));
        }
        let results = self.simple_query(&lookup_sql(oid)).await?;
        let Some(row) = results.first().and_then(|r| r.rows.first()) else {
            // Not in the catalog (dropped concurrently?): keep a placeholder.
            return Ok(crate::types::type_for_oid(oid));
        };
        let text = |i: usize| -> Result<String, Error> {
            row.get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| bad("missing column"))
        };
        let number = |i: usize| -> Result<u32, Error> {
            text(i)?.parse::<u32>().map_err(|_| bad("bad oid"))
        };
        let name = text(0)?;
        let schema = text(1)?;
        let typtype = text(2)?;
        let category = text(3)?;
        let elem = number(4)?;
        let base = number(5)?;
        let range_sub = number(6)?;
        let multirange_sub = number(7)?;
        let labels: Vec<String> =
            serde_json::from_str(&text(8)?).map_err(|_| bad("bad enum labels"))?;
        let attributes: Vec<(String, u32)> =
            serde_json::from_str(&text(9)?).map_err(|_| bad("bad attributes"))?;

        let kind = match typtype.as_str() {
            "e" => Kind::Enum(labels),
            "p" => Kind::Pseudo,
            "d" if base != 0 => {
                Kind::Domain(Box::pin(self.resolve_type_depth(base, depth + 1)).await?)
            }
            "r" if range_sub != 0 => {
                Kind::Range(Box::pin(self.resolve_type_depth(range_sub, depth + 1)).await?)
            }
            "m" if multirange_sub != 0 => Kind::Multirange(
                Box::pin(self.resolve_type_depth(multirange_sub, depth + 1)).await?,
            ),
            "c" => {
                let mut fields = Vec::with_capacity(attributes.len());
                for (field, field_oid) in attributes {
                    fields.push(Field::new(
                        field,
                        Box::pin(self.resolve_type_depth(field_oid, depth + 1)).await?,
                    ));
                }
                Kind::Composite(fields)
            }
            _ if category == "A" && elem != 0 => {
                Kind::Array(Box::pin(self.resolve_type_depth(elem, depth + 1)).await?)
            }
            _ => Kind::Simple,
        };
        let ty = Type::new(name, oid, kind, schema);
        self.types.insert(oid, ty.clone());
        Ok(ty)
    }
}
