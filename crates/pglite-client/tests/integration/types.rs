use std::fmt::Debug;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use pglite_client::rust_decimal::Decimal;
use pglite_client::{Client, ErrorKind, FromSql, Interval, ToSql, Transport};
use serde_json::json;

/// `value` goes in as a parameter of `sql_type` and must come back equal; NULL comes
/// back as `None`; and `Row::get_text` must render it exactly as the server's own
/// text output does.
fn round_trip<R: Transport, T>(client: &mut Client<R>, sql_type: &str, value: T)
where
    T: ToSql + Sync + for<'a> FromSql<'a> + PartialEq + Debug,
{
    let sql = format!("SELECT $1::{sql_type}, format('%s', $1::{sql_type})");
    let row = client
        .query_one(&*sql, &[&value])
        .unwrap_or_else(|e| panic!("{sql_type}: {e}"));
    assert!(
        row.columns()[0].is_binary(),
        "{sql_type} should travel in binary"
    );
    assert_eq!(row.get::<_, T>(0), value, "{sql_type}");
    assert_eq!(
        row.get_text(0),
        row.get::<_, Option<String>>(1),
        "get_text of {sql_type}"
    );
    let none: Option<T> = None;
    let row = client.query_one(&*sql, &[&none]).unwrap();
    assert_eq!(row.get::<_, Option<T>>(0), None, "{sql_type} NULL");
    assert_eq!(row.get_text(0), None);
    let err = row.try_get::<_, T>(0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion);
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn scalar_round_trips() {
    let mut c = crate::connect();
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    round_trip(&mut c, "bool", true);
    round_trip(&mut c, "bool", false);
    round_trip(&mut c, "int2", -12345i16);
    round_trip(&mut c, "int4", i32::MAX);
    round_trip(&mut c, "int8", i64::MIN);
    round_trip(&mut c, "oid", 4_000_000_000u32);
    round_trip(&mut c, "float4", 1.5f32);
    round_trip(&mut c, "float4", -3.25e-10f32);
    round_trip(&mut c, "float8", -2.25e300f64);
    round_trip(&mut c, "float8", 0.1f64);
    round_trip(&mut c, "float8", 123456.789f64);
    round_trip(&mut c, "numeric", d("12345678901234567890.123456789"));
    round_trip(&mut c, "numeric", d("-0.000001"));
    round_trip(&mut c, "numeric", d("0"));
    round_trip(&mut c, "numeric(10,4)", d("3.1400"));
    round_trip(&mut c, "text", "héllo, wörld ✓".to_owned());
    round_trip(&mut c, "text", String::new());
    round_trip(&mut c, "varchar", "varchar value".to_owned());
    round_trip(&mut c, "char(5)", "abcde".to_owned());
    round_trip(&mut c, "name", "pg_name".to_owned());
    round_trip(&mut c, "bytea", vec![0u8, 1, 2, 127, 128, 255]);
    round_trip(&mut c, "bytea", Vec::<u8>::new());
    round_trip(&mut c, "json", json!({"a": [1, 2, null], "b": "x"}));
    round_trip(&mut c, "jsonb", json!({"nested": {"k": true}, "n": 1.5}));
    round_trip(
        &mut c,
        "uuid",
        uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
    );
    round_trip(
        &mut c,
        "date",
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
    );
    round_trip(&mut c, "date", NaiveDate::from_ymd_opt(1900, 1, 1).unwrap());
    round_trip(
        &mut c,
        "time",
        NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap(),
    );
    round_trip(&mut c, "time", NaiveTime::from_hms_opt(0, 0, 0).unwrap());
    let ts: NaiveDateTime = NaiveDate::from_ymd_opt(1999, 12, 31)
        .unwrap()
        .and_hms_micro_opt(23, 59, 59, 500_000)
        .unwrap();
    round_trip(&mut c, "timestamp", ts);
    let tstz: DateTime<Utc> = DateTime::from_naive_utc_and_offset(ts, Utc);
    round_trip(&mut c, "timestamptz", tstz);
    round_trip(&mut c, "interval", Interval::new(14, 3, 14_706_500_000));
    round_trip(&mut c, "interval", Interval::new(0, -1, 1_000_000));
    round_trip(&mut c, "interval", Interval::default());
}

#[test]
fn array_round_trips() {
    let mut c = crate::connect();
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    round_trip(&mut c, "bool[]", vec![true, false]);
    round_trip(&mut c, "int2[]", vec![1i16, -2]);
    round_trip(&mut c, "int4[]", vec![Some(1i32), None, Some(3)]);
    round_trip(&mut c, "int4[]", Vec::<i32>::new());
    round_trip(&mut c, "int8[]", vec![i64::MAX]);
    round_trip(&mut c, "oid[]", vec![1u32, 2]);
    round_trip(&mut c, "float4[]", vec![0.5f32]);
    round_trip(&mut c, "float8[]", vec![1.0f64, -0.25, 1e20]);
    round_trip(&mut c, "numeric[]", vec![d("1.50"), d("-2")]);
    round_trip(
        &mut c,
        "text[]",
        vec![
            "plain".to_owned(),
            "a b".to_owned(),
            String::new(),
            "NULL".to_owned(),
            "q\"uote".to_owned(),
            "back\\slash".to_owned(),
            "{braces},comma".to_owned(),
        ],
    );
    round_trip(&mut c, "varchar[]", vec!["x".to_owned()]);
    round_trip(&mut c, "bpchar[]", vec!["ab".to_owned()]);
    round_trip(&mut c, "name[]", vec!["n1".to_owned()]);
    round_trip(&mut c, "bytea[]", vec![vec![0u8, 255], vec![]]);
    round_trip(&mut c, "json[]", vec![json!({"a": 1}), json!([1])]);
    round_trip(&mut c, "jsonb[]", vec![json!({"a": 1}), json!("s")]);
    round_trip(&mut c, "uuid[]", vec![uuid::Uuid::nil()]);
    round_trip(
        &mut c,
        "date[]",
        vec![NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()],
    );
    round_trip(
        &mut c,
        "time[]",
        vec![NaiveTime::from_hms_opt(12, 0, 1).unwrap()],
    );
    let ts = NaiveDate::from_ymd_opt(2030, 6, 1)
        .unwrap()
        .and_hms_opt(1, 2, 3)
        .unwrap();
    round_trip(&mut c, "timestamp[]", vec![ts]);
    round_trip(
        &mut c,
        "timestamptz[]",
        vec![DateTime::<Utc>::from_naive_utc_and_offset(ts, Utc)],
    );
    round_trip(&mut c, "interval[]", vec![Interval::new(1, 2, 3)]);

    // Multi-dimensional arrays and non-default bounds render like the server does.
    let row = c
        .query_one(
            "SELECT a, a::text FROM (VALUES ('{{1,2},{3,NULL}}'::int4[]), ('[0:1]={5,6}'::int4[])) v(a)
             LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.get_text(0), row.get::<_, Option<String>>(1));
    let row = c
        .query_one(
            "SELECT '[0:1]={5,6}'::int4[], '[0:1]={5,6}'::int4[]::text",
            &[],
        )
        .unwrap();
    assert_eq!(row.get_text(0), row.get::<_, Option<String>>(1));
}

#[test]
fn special_values_render_like_the_server() {
    let mut c = crate::connect();
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    for (value, ty) in [
        ("NaN", "float8"),
        ("Infinity", "float8"),
        ("-Infinity", "float4"),
        ("-0", "float8"),
        ("1e-7", "float8"),
        ("123456789", "float4"),
        ("NaN", "numeric"),
        ("Infinity", "numeric"),
        ("0.0000000000000000000000000000001", "numeric"),
        ("-99999999999999999999999999999999999999.5", "numeric"),
        ("infinity", "date"),
        ("-infinity", "timestamp"),
        ("infinity", "timestamptz"),
        ("0044-03-15 BC", "date"),
        ("4713-01-01 BC", "date"),
        ("294276-12-31", "date"),
        ("0001-01-01 00:00:00 BC", "timestamp"),
        ("24:00:00", "time"),
        ("-1 year -2 mons +3 days -04:05:06.000001", "interval"),
        ("178000000 years", "interval"),
    ] {
        let sql = format!("SELECT '{value}'::{ty}, format('%s', '{value}'::{ty})");
        let row = c.query_one(&*sql, &[]).unwrap();
        assert_eq!(
            row.get_text(0),
            row.get::<_, Option<String>>(1),
            "{value}::{ty}"
        );
    }
}

#[test]
fn text_format_columns() {
    let mut c = crate::connect();
    c.batch_execute("DROP TYPE IF EXISTS mood CASCADE; CREATE TYPE mood AS ENUM ('sad', 'happy');")
        .unwrap_or(());
    let row = c
        .query_one(
            "SELECT '10.1.2.3/8'::inet AS net, 'happy'::mood AS m, point(1,2) AS p, '[1,3)'::int4range AS r",
            &[],
        )
        .unwrap();
    assert!(!row.columns()[0].is_binary());
    // Types created in the database are looked up by OID.
    let mood = row.columns()[1].type_();
    assert_eq!(mood.name(), "mood");
    assert_eq!(mood.schema(), "public");
    assert_eq!(
        mood.kind(),
        &pglite_client::Kind::Enum(vec!["sad".to_owned(), "happy".to_owned()])
    );
    assert_eq!(row.columns()[3].type_(), &pglite_client::Type::INT4_RANGE);
    assert_eq!(row.get::<_, String>("net"), "10.1.2.3/8");
    assert_eq!(row.get::<_, &str>("m"), "happy");
    assert_eq!(row.get::<_, String>("p"), "(1,2)");
    assert_eq!(row.get_text("r").as_deref(), Some("[1,3)"));
    let err = row.try_get::<_, i32>("net").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion);
    assert!(err.to_string().contains("text format"), "{err}");
    let err = row.try_get::<_, i32>("nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ColumnNotFound);

    // Text values are accepted for parameters of other types and parsed by the server.
    let row = c
        .query_one(
            "SELECT $1::inet = '10.0.0.1', $2::mood, $3::json",
            &[&"10.0.0.1", &"sad", &r#"{"k":1}"#],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "sad");
    assert_eq!(row.get::<_, serde_json::Value>(2), json!({"k": 1}));
    // A NULL of an unknown type.
    let row = c
        .query_one("SELECT $1::mood IS NULL", &[&None::<String>])
        .unwrap();
    assert!(row.get::<_, bool>(0));
}

#[test]
#[should_panic(expected = "is NULL")]
fn get_panics_clearly_on_null() {
    let mut c = crate::connect();
    let row = c.query_one("SELECT NULL::int4", &[]).unwrap();
    let _: i32 = row.get(0);
}

#[test]
fn user_defined_types_are_described() {
    let mut c = crate::connect();
    c.batch_execute(
        "CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
         CREATE TYPE pair AS (a int4, b text);
         CREATE TYPE color AS ENUM ('red', 'green');",
    )
    .unwrap();
    let stmt = c
        .prepare("SELECT $1::posint AS p, ROW(1, 'x')::pair AS pr, ARRAY['red'::color] AS colors")
        .unwrap();
    let posint = &stmt.params()[0];
    assert_eq!(posint.name(), "posint");
    assert_eq!(
        posint.kind(),
        &pglite_client::Kind::Domain(pglite_client::Type::INT4)
    );
    // Domain columns are described with their base type.
    assert_eq!(stmt.columns()[0].type_(), &pglite_client::Type::INT4);
    let pair = stmt.columns()[1].type_();
    assert_eq!(pair.name(), "pair");
    match pair.kind() {
        pglite_client::Kind::Composite(fields) => {
            assert_eq!(fields.len(), 2);
            assert_eq!(fields[1].name(), "b");
            assert_eq!(fields[1].type_(), &pglite_client::Type::TEXT);
        }
        other => panic!("{other:?}"),
    }
    let colors = stmt.columns()[2].type_();
    assert_eq!(colors.name(), "_color");
    match colors.kind() {
        pglite_client::Kind::Array(elem) => assert_eq!(elem.name(), "color"),
        other => panic!("{other:?}"),
    }
    // A text value for the domain parameter; its CHECK runs on the server.
    let row = c.query_one(&stmt, &[&"5"]).unwrap();
    assert_eq!(row.get::<_, i32>("p"), 5);
    assert_eq!(row.get::<_, String>("pr"), "(1,x)");
    assert_eq!(row.get::<_, String>("colors"), "{red}");
    assert_eq!(row.to_json()["colors"], "{red}");
    let err = c.query_one(&stmt, &[&"-5"]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23514");
}
