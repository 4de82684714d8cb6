//! COPY in binary format: rows of many types written with `copy_in_binary`, checked
//! by the server and read back with `copy_out_binary`.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use pglite_client::rust_decimal::Decimal;
use pglite_client::{BinaryRow, ErrorKind, Interval, ToSql, TransactionStatus, Type};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::connect;

const COLUMNS: &str = "id int4, b bool, s int2, l int8, f4 float4, f8 float8, n numeric, \
                       t text, v varchar(40), by bytea, j jsonb, u uuid, d date, tm time, \
                       ts timestamp, tz timestamptz, iv interval, ai int4[], at text[]";

fn types() -> Vec<Type> {
    vec![
        Type::INT4,
        Type::BOOL,
        Type::INT2,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BYTEA,
        Type::JSONB,
        Type::UUID,
        Type::DATE,
        Type::TIME,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::INTERVAL,
        Type::INT4_ARRAY,
        Type::TEXT_ARRAY,
    ]
}

/// One row of the test table; every column but `id` is NULL when `id % 7 == 0`.
#[derive(Debug, PartialEq)]
struct Record {
    id: i32,
    b: Option<bool>,
    s: Option<i16>,
    l: Option<i64>,
    f4: Option<f32>,
    f8: Option<f64>,
    n: Option<Decimal>,
    t: Option<String>,
    v: Option<String>,
    by: Option<Vec<u8>>,
    j: Option<Value>,
    u: Option<Uuid>,
    d: Option<NaiveDate>,
    tm: Option<NaiveTime>,
    ts: Option<NaiveDateTime>,
    tz: Option<DateTime<Utc>>,
    iv: Option<Interval>,
    ai: Option<Vec<Option<i32>>>,
    at: Option<Vec<String>>,
}

fn record(id: i32) -> Record {
    let some = id % 7 != 0;
    let i = i64::from(id);
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap() + Duration::days(i);
    let time =
        NaiveTime::from_num_seconds_from_midnight_opt((id as u32 * 37) % 86400, id as u32 * 1000)
            .unwrap();
    let ts = date.and_time(time);
    Record {
        id,
        b: some.then_some(id % 2 == 0),
        s: some.then_some((id % 30000) as i16 - 15000),
        l: some.then_some(i * 1_000_000_007 - 5),
        f4: some.then_some(id as f32 / 8.0),
        f8: some.then_some(-(id as f64) * 1.000001),
        n: some.then(|| Decimal::new(i * 12345 - 7, 3)),
        t: some.then(|| format!("text {id} ünïcode 'quoted' \\ tab\t")),
        v: some.then(|| format!("v{id}")),
        by: some.then(|| (0..(id % 50) as u8).collect()),
        j: some.then(|| json!({"id": id, "tags": ["a", id % 3], "nested": {"x": null}})),
        u: some.then(|| Uuid::from_u128(u128::from(id as u32) << 64 | 0xabc)),
        d: some.then_some(date),
        tm: some.then_some(time),
        ts: some.then_some(ts),
        tz: some.then(|| ts.and_utc()),
        iv: some.then(|| Interval::new(id % 13, -(id % 40), i * 1_000_001)),
        ai: some.then(|| vec![Some(id), None, Some(-id)]),
        at: some.then(|| vec![format!("a{id}"), "with,comma".to_owned(), String::new()]),
    }
}

fn values(r: &Record) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &r.id, &r.b, &r.s, &r.l, &r.f4, &r.f8, &r.n, &r.t, &r.v, &r.by, &r.j, &r.u, &r.d, &r.tm,
        &r.ts, &r.tz, &r.iv, &r.ai, &r.at,
    ]
}

fn from_binary(row: &BinaryRow) -> Record {
    Record {
        id: row.get(0),
        b: row.get(1),
        s: row.get(2),
        l: row.get(3),
        f4: row.get(4),
        f8: row.get(5),
        n: row.get(6),
        t: row.get(7),
        v: row.get(8),
        by: row.get(9),
        j: row.get(10),
        u: row.get(11),
        d: row.get(12),
        tm: row.get(13),
        ts: row.get(14),
        tz: row.get(15),
        iv: row.get(16),
        ai: row.get(17),
        at: row.get(18),
    }
}

#[test]
fn many_types_round_trip_through_the_server() {
    let mut client = connect();
    client.batch_execute("SET TimeZone = 'UTC'").unwrap();
    client
        .batch_execute(&format!("CREATE TEMP TABLE bc ({COLUMNS})"))
        .unwrap();
    let types = types();
    const ROWS: i32 = 5000;
    let mut writer = client
        .copy_in_binary("COPY bc FROM STDIN (FORMAT binary)", &types)
        .unwrap();
    for id in 1..=ROWS {
        writer.write(&values(&record(id))).unwrap();
    }
    assert_eq!(writer.rows(), ROWS as u64);
    assert_eq!(writer.finish().unwrap(), ROWS as u64);

    // The server understood the values: its own text output of some of them.
    let row = client
        .query_one(
            "SELECT t, n::text, d::text, ts::text, tz::text, iv::text, ai::text, at::text, \
                    j->>'id', u::text, by::text, l::text \
             FROM bc WHERE id = 3",
            &[],
        )
        .unwrap();
    let texts: Vec<String> = (0..row.len()).map(|i| row.get(i)).collect();
    assert_eq!(
        texts,
        [
            "text 3 ünïcode 'quoted' \\ tab\t",
            "37.028",
            "2000-01-03",
            "2000-01-03 00:01:51.000003",
            "2000-01-03 00:01:51.000003+00",
            "3 mons -3 days +00:00:03.000003",
            "{3,NULL,-3}",
            "{a3,\"with,comma\",\"\"}",
            "3",
            "00000000-0000-0003-0000-000000000abc",
            "\\x000102",
            "3000000016",
        ]
    );
    let nulls: i64 = client
        .query_one(
            "SELECT count(*) FROM bc WHERE b IS NULL AND at IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nulls, i64::from(ROWS / 7));

    // Read back in binary: every row equal to what was written.
    let mut reader = client
        .copy_out_binary(
            "COPY (SELECT * FROM bc ORDER BY id) TO STDOUT (FORMAT binary)",
            &types,
        )
        .unwrap();
    let mut id = 0;
    for row in reader.by_ref() {
        id += 1;
        assert_eq!(from_binary(&row.unwrap()), record(id));
    }
    assert_eq!(id, ROWS);
    assert_eq!(reader.rows_affected(), Some(ROWS as u64));
    drop(reader);

    // Server-made data read in binary.
    let rows: Vec<(i64, String, Option<f64>)> = client
        .copy_out_binary(
            "COPY (SELECT g::int8, 'n' || g, CASE WHEN g % 2 = 0 THEN g / 4.0 END::float8 \
                   FROM generate_series(1, 20000) g) TO STDOUT (FORMAT binary)",
            &[Type::INT8, Type::TEXT, Type::FLOAT8],
        )
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.get(0), r.get(1), r.get(2))
        })
        .collect();
    assert_eq!(rows.len(), 20000);
    assert_eq!(rows[9], (10, "n10".to_owned(), Some(2.5)));
    assert_eq!(rows[10].2, None);
}

#[test]
fn binary_copy_errors_leave_the_connection_usable() {
    let mut client = connect();
    client
        .batch_execute("CREATE TEMP TABLE bce (id int4, name text)")
        .unwrap();
    let types = [Type::INT4, Type::TEXT];

    // A wrong value count or type is refused before anything is sent; the COPY goes on.
    let mut writer = client
        .copy_in_binary("COPY bce FROM STDIN (FORMAT binary)", &types)
        .unwrap();
    assert_eq!(writer.write(&[&1i32]).unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(
        writer.write(&[&"one", &"x"]).unwrap_err().kind(),
        ErrorKind::Conversion
    );
    writer.write(&[&1i32, &"one"]).unwrap();
    assert_eq!(writer.finish().unwrap(), 1);

    // Dropped before finish: aborted, nothing copied.
    {
        let mut writer = client
            .copy_in_binary("COPY bce FROM STDIN (FORMAT binary)", &types)
            .unwrap();
        for i in 0..20000i32 {
            writer.write(&[&i, &"dropped"]).unwrap();
        }
    }
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    let count: i64 = client
        .query_one("SELECT count(*) FROM bce", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    // Types that do not match the table: the server refuses the data.
    let mut writer = client
        .copy_in_binary(
            "COPY bce FROM STDIN (FORMAT binary)",
            &[Type::INT8, Type::TEXT],
        )
        .unwrap();
    writer.write(&[&5i64, &"wrong width"]).unwrap();
    let err = writer.finish().unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22P03", "{err}");

    // Not a COPY, a missing table, text format, wrong column count.
    let err = client
        .copy_in_binary("SELECT 1", &types)
        .unwrap()
        .finish()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = client
        .copy_in_binary("COPY nope FROM STDIN (FORMAT binary)", &types)
        .unwrap()
        .finish()
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let err = client
        .copy_out_binary("COPY bce TO STDOUT", &types)
        .unwrap()
        .last()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = client
        .copy_out_binary("COPY bce TO STDOUT (FORMAT binary)", &[Type::INT4])
        .unwrap()
        .last()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = client
        .copy_out_binary("SELECT 1", &types)
        .unwrap()
        .last()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);

    // A reader dropped early.
    {
        let mut reader = client
            .copy_out_binary(
                "COPY (SELECT g, 'x' FROM generate_series(1, 100000) g) TO STDOUT (FORMAT binary)",
                &types,
            )
            .unwrap();
        reader.next().unwrap().unwrap();
    }
    let row = client.query_one("SELECT count(*) FROM bce", &[]).unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}
