//! Type conversions through parameters and `Row::get`, NULLs, arrays and `Row::to_json`.

mod common;

use std::str::FromStr;

use common::{scalar, temp};
use pglite::client::chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use pglite::client::rust_decimal::Decimal;
use pglite::client::uuid::Uuid;
use pglite::{Interval, Pglite, ToSql, Type};
use serde_json::json;

/// Send `value` as the parameter of `SELECT $1::<cast>` and read it back.
fn echo<T>(db: &mut Pglite, cast: &str, value: &T) -> T
where
    T: ToSql + Sync + for<'a> pglite::FromSql<'a>,
{
    let sql = format!("SELECT $1::{cast}");
    db.query_one(sql.as_str(), &[value])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn time(h: u32, m: u32, s: u32, micro: u32) -> NaiveTime {
    NaiveTime::from_hms_micro_opt(h, m, s, micro).unwrap()
}

#[test]
fn scalar_types_round_trip_through_parameters() {
    let mut db = temp();
    for v in [i16::MIN, -1, 0, 1, i16::MAX] {
        assert_eq!(echo(&mut db, "int2", &v), v);
    }
    for v in [i32::MIN, -1, 0, 1, i32::MAX] {
        assert_eq!(echo(&mut db, "int4", &v), v);
    }
    for v in [i64::MIN, -1, 0, 1, i64::MAX] {
        assert_eq!(echo(&mut db, "int8", &v), v);
    }
    for v in [
        0.0f32,
        -1.5,
        3.25,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::INFINITY,
    ] {
        assert_eq!(echo(&mut db, "float4", &v), v);
    }
    for v in [
        0.0f64,
        -1.5,
        std::f64::consts::PI,
        f64::MAX,
        f64::NEG_INFINITY,
    ] {
        assert_eq!(echo(&mut db, "float8", &v), v);
    }
    assert!(echo(&mut db, "float8", &f64::NAN).is_nan());
    for s in [
        "0",
        "1.5",
        "-123.456",
        "79228162514264337593543950335",
        "0.0000000001",
        "12345678901234.5678901234",
        "100.000",
    ] {
        let v = Decimal::from_str(s).unwrap();
        let back = echo(&mut db, "numeric", &v);
        assert_eq!(back, v);
        assert_eq!(back.to_string(), s, "the scale is kept");
    }
    for v in [true, false] {
        assert_eq!(echo(&mut db, "bool", &v), v);
    }
    for s in [
        "",
        "plain",
        "héllo wörld ✓ 🐘",
        "quotes ' \" and \\ backslash",
        "line\nbreak\ttab",
    ] {
        assert_eq!(echo(&mut db, "text", &s.to_string()), s);
        assert_eq!(echo(&mut db, "varchar", &s.to_string()), s);
    }
    let short: String = db
        .query_one("SELECT $1::varchar(3)", &[&"abcdef"])
        .unwrap()
        .get(0);
    assert_eq!(short, "abc");
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    assert_eq!(echo(&mut db, "bytea", &all_bytes), all_bytes);
    assert_eq!(echo(&mut db, "bytea", &Vec::<u8>::new()), Vec::<u8>::new());

    let doc = json!({"name": "pglite", "tags": ["a", "b"], "n": 1.5, "nested": {"ok": true, "none": null}});
    assert_eq!(echo(&mut db, "json", &doc), doc);
    assert_eq!(echo(&mut db, "jsonb", &doc), doc);
    let scalar_json = json!("just a string");
    assert_eq!(echo(&mut db, "jsonb", &scalar_json), scalar_json);

    let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    assert_eq!(echo(&mut db, "uuid", &id), id);
    assert_eq!(echo(&mut db, "uuid", &Uuid::nil()), Uuid::nil());

    for d in [
        date(2024, 2, 29),
        date(1970, 1, 1),
        date(1, 1, 1),
        date(9999, 12, 31),
    ] {
        assert_eq!(echo(&mut db, "date", &d), d);
    }
    for t in [
        time(0, 0, 0, 0),
        time(13, 14, 15, 123_456),
        time(23, 59, 59, 999_999),
    ] {
        assert_eq!(echo(&mut db, "time", &t), t);
    }
    let ts: NaiveDateTime = date(2024, 2, 29).and_time(time(13, 14, 15, 123_456));
    assert_eq!(echo(&mut db, "timestamp", &ts), ts);
    let old: NaiveDateTime = date(1900, 1, 1).and_time(time(0, 0, 0, 1));
    assert_eq!(echo(&mut db, "timestamp", &old), old);
    let tstz: DateTime<Utc> = ts.and_utc();
    assert_eq!(echo(&mut db, "timestamptz", &tstz), tstz);

    for iv in [
        Interval::new(14, 3, 14_706_500_000),
        Interval::new(0, 0, 0),
        Interval::new(-1, -2, -3),
        Interval::new(0, 1, 1),
    ] {
        assert_eq!(echo(&mut db, "interval", &iv), iv);
    }
}

#[test]
fn values_written_in_sql_read_as_rust_types() {
    let mut db = temp();
    let row = db
        .query_one(
            "SELECT 32767::int2 AS a, 2147483647 AS b, 9223372036854775807 AS c, \
             1.5::float4 AS d, 0.1::float8 AS e, 3.14159::numeric(10,3) AS f, \
             'yes'::bool AS g, 'text'::text AS h, 'vc'::varchar(5) AS i, 'pad'::char(5) AS j, \
             '\\x00ff10'::bytea AS k, '[1, {\"a\": null}]'::json AS l, \
             '{\"b\": 1, \"a\": [true]}'::jsonb AS m, \
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS n, \
             '2024-02-29'::date AS o, '13:14:15.5'::time AS p, \
             '2024-02-29 13:14:15.25'::timestamp AS q, \
             '2024-02-29 13:14:15+02'::timestamptz AS r, \
             '1 year 2 mons 3 days 04:05:06.5'::interval AS s, \
             'pg'::name AS t, 42::oid AS u",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i16>("a"), i16::MAX);
    assert_eq!(row.get::<_, i32>("b"), i32::MAX);
    assert_eq!(row.get::<_, i64>("c"), i64::MAX);
    assert_eq!(row.get::<_, f32>("d"), 1.5);
    assert_eq!(row.get::<_, f64>("e"), 0.1);
    assert_eq!(
        row.get::<_, Decimal>("f"),
        Decimal::from_str("3.142").unwrap()
    );
    assert!(row.get::<_, bool>("g"));
    assert_eq!(row.get::<_, &str>("h"), "text");
    assert_eq!(row.get::<_, String>("i"), "vc");
    assert_eq!(row.get::<_, String>("j"), "pad  ");
    assert_eq!(row.get::<_, Vec<u8>>("k"), [0x00, 0xff, 0x10]);
    assert_eq!(row.get::<_, &[u8]>("k"), [0x00, 0xff, 0x10]);
    assert_eq!(
        row.get::<_, serde_json::Value>("l"),
        json!([1, {"a": null}])
    );
    assert_eq!(
        row.get::<_, serde_json::Value>("m"),
        json!({"a": [true], "b": 1})
    );
    assert_eq!(
        row.get::<_, Uuid>("n"),
        Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()
    );
    assert_eq!(row.get::<_, NaiveDate>("o"), date(2024, 2, 29));
    assert_eq!(row.get::<_, NaiveTime>("p"), time(13, 14, 15, 500_000));
    assert_eq!(
        row.get::<_, NaiveDateTime>("q"),
        date(2024, 2, 29).and_time(time(13, 14, 15, 250_000))
    );
    let r: DateTime<Utc> = row.get("r");
    assert_eq!(r, date(2024, 2, 29).and_time(time(11, 14, 15, 0)).and_utc());
    let r: DateTime<FixedOffset> = row.get("r");
    assert_eq!(
        r.naive_utc(),
        date(2024, 2, 29).and_time(time(11, 14, 15, 0))
    );
    let s: Interval = row.get("s");
    assert_eq!(s, Interval::new(14, 3, 14_706_500_000));
    assert_eq!(s.to_string(), "1 year 2 mons 3 days 04:05:06.5");
    assert_eq!(row.get::<_, &str>("t"), "pg");
    assert_eq!(row.get::<_, u32>("u"), 42);

    // The column metadata names the types.
    let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types[0], Type::INT2);
    assert_eq!(types[12], Type::JSONB);
    assert_eq!(types[17], Type::TIMESTAMPTZ);
    assert_eq!(types[18], Type::INTERVAL);
}

#[test]
fn null_reads_as_none_and_none_is_sent_as_null() {
    let mut db = temp();
    let row = db
        .query_one(
            "SELECT NULL::int2, NULL::int4, NULL::int8, NULL::float4, NULL::float8, \
             NULL::numeric, NULL::bool, NULL::text, NULL::varchar, NULL::bytea, NULL::json, \
             NULL::jsonb, NULL::uuid, NULL::date, NULL::time, NULL::timestamp, \
             NULL::timestamptz, NULL::interval, NULL::int4[]",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i16>>(0), None);
    assert_eq!(row.get::<_, Option<i32>>(1), None);
    assert_eq!(row.get::<_, Option<i64>>(2), None);
    assert_eq!(row.get::<_, Option<f32>>(3), None);
    assert_eq!(row.get::<_, Option<f64>>(4), None);
    assert_eq!(row.get::<_, Option<Decimal>>(5), None);
    assert_eq!(row.get::<_, Option<bool>>(6), None);
    assert_eq!(row.get::<_, Option<String>>(7), None);
    assert_eq!(row.get::<_, Option<&str>>(8), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(9), None);
    assert_eq!(row.get::<_, Option<serde_json::Value>>(10), None);
    assert_eq!(row.get::<_, Option<serde_json::Value>>(11), None);
    assert_eq!(row.get::<_, Option<Uuid>>(12), None);
    assert_eq!(row.get::<_, Option<NaiveDate>>(13), None);
    assert_eq!(row.get::<_, Option<NaiveTime>>(14), None);
    assert_eq!(row.get::<_, Option<NaiveDateTime>>(15), None);
    assert_eq!(row.get::<_, Option<DateTime<Utc>>>(16), None);
    assert_eq!(row.get::<_, Option<Interval>>(17), None);
    assert_eq!(row.get::<_, Option<Vec<i32>>>(18), None);
    // A NULL read as a non-Option type is an error, not a default value.
    assert!(row.try_get::<_, i32>(1).is_err());
    assert_eq!(
        row.to_json(),
        json!({"int2": null, "int4": null, "int8": null,
        "float4": null, "float8": null, "numeric": null, "bool": null, "text": null,
        "varchar": null, "bytea": null, "json": null, "jsonb": null, "uuid": null,
        "date": null, "time": null, "timestamp": null, "timestamptz": null,
        "interval": null})
    );

    // Option parameters: None is NULL, Some is the value.
    let none: Option<i32> = None;
    let row = db
        .query_one(
            "SELECT $1::int4 IS NULL, $2::text IS NULL, $3::int4",
            &[&none, &None::<String>, &Some(7i32)],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Option<i32>>(2), Some(7));

    db.batch_execute("CREATE TABLE maybe (id int, note text, at timestamptz)")
        .unwrap();
    db.execute(
        "INSERT INTO maybe VALUES ($1, $2, $3), ($4, $5, $6)",
        &[
            &1i32,
            &Some("present"),
            &Some(Utc::now()),
            &2i32,
            &None::<&str>,
            &None::<DateTime<Utc>>,
        ],
    )
    .unwrap();
    let rows = db
        .query("SELECT note, at FROM maybe ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, Option<&str>>(0), Some("present"));
    assert!(rows[0].get::<_, Option<DateTime<Utc>>>(1).is_some());
    assert_eq!(rows[1].get::<_, Option<&str>>(0), None);
    assert_eq!(rows[1].get::<_, Option<DateTime<Utc>>>(1), None);
}

#[test]
fn arrays_round_trip() {
    let mut db = temp();
    let ints = vec![1i32, -2, 3, i32::MAX];
    assert_eq!(echo(&mut db, "int4[]", &ints), ints);
    let bigs = vec![i64::MIN, 0, i64::MAX];
    assert_eq!(echo(&mut db, "int8[]", &bigs), bigs);
    let with_nulls = vec![Some(1i32), None, Some(3)];
    assert_eq!(echo(&mut db, "int4[]", &with_nulls), with_nulls);
    let texts = vec![
        "plain".to_string(),
        "with, comma".into(),
        "{braces}".into(),
        "\"quoted\"".into(),
        "NULL".into(),
        String::new(),
        "ünïcödé".into(),
    ];
    assert_eq!(echo(&mut db, "text[]", &texts), texts);
    let floats = vec![0.5f64, -1e300, f64::INFINITY];
    assert_eq!(echo(&mut db, "float8[]", &floats), floats);
    let bools = vec![true, false, true];
    assert_eq!(echo(&mut db, "bool[]", &bools), bools);
    let ids = vec![Uuid::from_u128(1), Uuid::from_u128(u128::MAX)];
    assert_eq!(echo(&mut db, "uuid[]", &ids), ids);
    let blobs = vec![vec![0u8, 1, 2], vec![], vec![255]];
    assert_eq!(echo(&mut db, "bytea[]", &blobs), blobs);
    let decimals = vec![
        Decimal::from_str("1.10").unwrap(),
        Decimal::from_str("-0.001").unwrap(),
    ];
    assert_eq!(echo(&mut db, "numeric[]", &decimals), decimals);
    let dates = vec![date(2000, 1, 1), date(2024, 12, 31)];
    assert_eq!(echo(&mut db, "date[]", &dates), dates);
    let docs = vec![json!({"a": 1}), json!([1, 2]), json!(null)];
    assert_eq!(echo(&mut db, "jsonb[]", &docs), docs);
    let empty: Vec<i32> = Vec::new();
    assert_eq!(echo(&mut db, "int4[]", &empty), empty);

    // Arrays built in SQL, and array columns.
    let built: Vec<String> = scalar(&mut db, "SELECT ARRAY['x', 'y', 'z']");
    assert_eq!(built, ["x", "y", "z"]);
    db.batch_execute("CREATE TABLE tagged (id int, tags text[], scores int4[])")
        .unwrap();
    db.execute(
        "INSERT INTO tagged VALUES ($1, $2, $3)",
        &[&1i32, &vec!["red", "green"], &vec![10i32, 20]],
    )
    .unwrap();
    let row = db
        .query_one(
            "SELECT tags, scores FROM tagged WHERE $1 = ANY(tags)",
            &[&"green"],
        )
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["red", "green"]);
    assert_eq!(row.get::<_, Vec<i32>>(1), [10, 20]);
    let grid = db
        .query_one("SELECT ARRAY[[1, 2], [3, 4]] AS grid", &[])
        .unwrap();
    assert_eq!(grid.to_json(), json!({"grid": [[1, 2], [3, 4]]}));
}

#[test]
fn row_to_json_renders_every_type() {
    let mut db = temp();
    let row = db
        .query_one(
            "SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float4 AS f4, \
             2.25::float8 AS f8, 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, \
             12.340::numeric AS num, true AS flag, 'hi'::text AS txt, 'vc'::varchar AS vc, \
             '\\x0102ff'::bytea AS bin, '{\"k\": [1, 2]}'::json AS js, \
             '{\"b\": 1, \"a\": 2}'::jsonb AS jb, \
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '2024-02-29'::date AS day, \
             '13:14:15.5'::time AS t, '2024-02-29 13:14:15.123456'::timestamp AS ts, \
             '2024-02-29 13:14:15+02'::timestamptz AS tstz, \
             '1 year 2 mons 3 days 04:05:06.5'::interval AS iv, ARRAY[1, NULL, 3] AS arr, \
             ARRAY['a', 'b'] AS words, NULL::text AS nothing, point(1, 2) AS pt",
            &[],
        )
        .unwrap();
    let expected = json!({
        "i2": 1, "i4": 2, "i8": 3, "f4": 1.5, "f8": 2.25, "nan": "NaN", "inf": "Infinity",
        "num": "12.340", "flag": true, "txt": "hi", "vc": "vc", "bin": "\\x0102ff",
        "js": {"k": [1, 2]}, "jb": {"a": 2, "b": 1},
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "day": "2024-02-29",
        "t": "13:14:15.5", "ts": "2024-02-29T13:14:15.123456",
        "tstz": "2024-02-29T11:14:15+00:00", "iv": "1 year 2 mons 3 days 04:05:06.5",
        "arr": [1, null, 3], "words": ["a", "b"], "nothing": null, "pt": "(1,2)"
    });
    assert_eq!(row.to_json(), expected);
    // Column order is kept.
    let keys: Vec<String> = row.to_json().as_object().unwrap().keys().cloned().collect();
    let names: Vec<String> = row.columns().iter().map(|c| c.name().to_string()).collect();
    assert_eq!(keys, names);
    assert_eq!(
        row.get_text("tstz").as_deref(),
        Some("2024-02-29 11:14:15+00")
    );
    assert_eq!(row.get_text("nothing"), None);
}

#[test]
fn database_defined_types_read_and_write_as_text() {
    let mut db = temp();
    db.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE people (name text, mood mood, score positive);",
    )
    .unwrap();
    // A parameter whose inferred type is a domain takes the base type's Rust value only
    // with a cast (as in tokio-postgres); enums take text.
    db.execute(
        "INSERT INTO people VALUES ($1, $2, $3::int)",
        &[&"ann", &"happy", &5i32],
    )
    .unwrap();
    let row = db
        .query_one(
            "SELECT mood, score, mood > 'sad' AS cheerful FROM people",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>("mood"), "happy");
    assert_eq!(row.get::<_, i32>("score"), 5);
    assert!(row.get::<_, bool>("cheerful"));
    let err = db
        .execute(
            "INSERT INTO people VALUES ('bob', 'ok', $1::int)",
            &[&-1i32],
        )
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "23514");
    let err = db
        .execute("INSERT INTO people VALUES ('bob', $1, 1)", &[&"furious"])
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "22P02");
}
