//! What the pglite-client fuzz targets run, kept apart from libFuzzer so that the seed
//! recorder (`record-seeds`) runs the very same client calls against a real server.
//!
//! - [`session`]: a fixed script of client calls (start-up, simple and extended
//!   queries over every supported type, COPY both ways, errors, notifications,
//!   transactions) over any [`Transport`]. The `backend_messages` target runs it over
//!   [`Replay`], which hands the fuzz input out as the server's output; the recorder
//!   runs it over a real connection and saves what the server sent as a seed.
//! - [`check_value`]: one binary value of a selected type, put into a `DataRow` and
//!   read back through every `FromSql` conversion, `Row::get_text` and the JSON
//!   rendering, with cross-checks between them.

use std::fmt::Write as _;

use pglite_client::bytes::BytesMut;
use pglite_client::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use pglite_client::rust_decimal::Decimal;
use pglite_client::serde_json::Value;
use pglite_client::uuid::Uuid;
use pglite_client::{
    Client, Error, ErrorKind, FromSql, Interval, Json, Row, StartupConfig, Transport, Type,
};

/// Chunk sizes [`Replay`] hands out in turn, so that messages arrive split at many
/// different places.
const CHUNKS: [usize; 6] = [3, 1, 4096, 17, 65536, 255];

/// A transport that discards what the client sends and answers with `data`, in
/// chunks of varying size; at its end every `receive` fails (as a closed socket).
#[derive(Debug)]
pub struct Replay<'a> {
    data: &'a [u8],
    pos: usize,
    receives: usize,
    /// Hand everything out at the first `receive` instead of in chunks.
    whole: bool,
}

impl<'a> Replay<'a> {
    /// Replays `data` in [`CHUNKS`].
    pub fn new(data: &'a [u8]) -> Replay<'a> {
        Replay {
            data,
            pos: 0,
            receives: 0,
            whole: false,
        }
    }

    /// Replays `data` all at once.
    pub fn whole(data: &'a [u8]) -> Replay<'a> {
        Replay {
            whole: true,
            ..Replay::new(data)
        }
    }
}

impl Transport for Replay<'_> {
    fn send(&mut self, _bytes: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Err(Error::new(
                ErrorKind::Io,
                "end of the replayed server output",
            ));
        }
        let n = if self.whole {
            rest.len()
        } else {
            CHUNKS[self.receives % CHUNKS.len()].min(rest.len())
        };
        self.receives += 1;
        buf.extend_from_slice(&rest[..n]);
        self.pos += n;
        Ok(())
    }
}

/// The role and password the session logs in with (the recorder creates this MD5
/// user, so the recorded authentication exchange replays).
pub const USER: &str = "fuzz_md5";
/// [`USER`]'s password.
pub const PASSWORD: &str = "fuzz secret";

/// The start-up settings of [`session`].
pub fn startup_config() -> StartupConfig {
    StartupConfig::new(USER, "postgres")
        .password(PASSWORD)
        .param("application_name", "fuzz")
}

/// A query returning every type the client reads in binary, with edge values and
/// NULLs, an array of each, a text-format type and a database-defined enum
/// (`fuzz_mood`, created by the recorder).
pub const TYPES_SQL: &str = "SELECT true AS b, 32767::int2 AS i2, (-2147483648)::int4 AS i4, \
    9223372036854775807::int8 AS i8, 4294967295::oid AS o, 'NaN'::float4 AS f4, \
    '-1.5e-300'::float8 AS f8, '-123456789.000123456789'::numeric AS n, 'Infinity'::numeric AS ninf, \
    'héllo \"{}\"'::text AS t, 'v'::varchar(3) AS vc, 'c'::char(3) AS bp, 'nm'::name AS nm, \
    '\\x00ff10'::bytea AS by, '{\"a\": [1, 2.5, null]}'::json AS j, '{\"k\": \"v\"}'::jsonb AS jb, \
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '4713-01-01 BC'::date AS d, \
    'infinity'::date AS dinf, '23:59:59.999999'::time AS tm, '2024-02-29 12:34:56.789'::timestamp AS ts, \
    '1999-12-31 23:59:59+00'::timestamptz AS tstz, '-1 year 2 days -03:04:05.6'::interval AS iv, \
    ARRAY[1, NULL, 3]::int4[] AS ai4, '[0:1][1:2]={{a,\"b c\"},{NULL,\"\"}}'::text[] AS at, \
    ARRAY[1.5, NULL]::numeric[] AS an, ARRAY['2020-01-01'::date] AS ad, '{}'::int8[] AS aempty, \
    ARRAY['\\x01'::bytea] AS aby, ARRAY['{}'::jsonb] AS ajb, ARRAY[interval '1 day'] AS aiv, \
    ARRAY[true, false] AS ab, ARRAY[now()::timestamptz] AS atstz, ARRAY[1.25::float8] AS af8, \
    '192.168.0.1/24'::inet AS inet, 'happy'::fuzz_mood AS mood, NULL::int4 AS nul";

/// Runs the fixed script of client calls over `transport`. SQL errors are expected
/// and ignored; the script stops when the connection is closed (the replayed output
/// ran out, or the client found it invalid). Every row and error is looked at.
/// Returns true if the whole script ran on an open connection.
pub fn session<T: Transport>(transport: T) -> bool {
    let Ok(mut client) = Client::connect(transport, &startup_config()) else {
        return false;
    };
    client.set_notice_handler(|notice| {
        let _ = notice.to_string();
    });
    let _ = client.parameter("server_version");
    let _ = client.backend_key();

    macro_rules! step {
        ($result:expr) => {{
            let result = $result;
            if let Err(e) = &result {
                look_at_error(e);
            }
            if client.is_closed() {
                return false;
            }
            result
        }};
    }

    if let Ok(results) =
        step!(client.simple_query("SELECT 1 AS one, 'a' AS a, NULL AS n; SELECT 2"))
    {
        for r in results {
            let _ = (
                r.columns.len(),
                r.rows.len(),
                r.command_tag,
                r.rows_affected,
            );
        }
    }
    let _ = step!(client.batch_execute("LISTEN fuzz; NOTIFY fuzz, 'payload'"));
    for n in client.notifications() {
        let _ = (n.process_id(), n.channel(), n.payload());
    }
    if let Ok(rows) = step!(client.query(TYPES_SQL, &[])) {
        rows.iter().for_each(exercise_row);
    }
    if let Ok(stmt) = step!(client.prepare("SELECT $1::int4 + 1 AS next, $2::text AS t"))
        && let Ok(rows) = step!(client.query(&stmt, &[&41i32, &"x"]))
    {
        rows.iter().for_each(exercise_row);
    }
    if let Ok(row) = step!(client.query_one("SELECT $1::fuzz_mood AS mood", &[&"sad"])) {
        exercise_row(&row);
    }
    let _ = step!(client.query_opt("SELECT g FROM generate_series(1, 3) g", &[]));
    let _ = step!(client.execute("CREATE TEMP TABLE fz (id int4, t text, v numeric)", &[]));
    let _ = step!(client.copy_in(
        "COPY fz FROM STDIN",
        &b"1\ta\t1.5\n2\t\\N\t-3\n3\tc\tNaN\n"[..]
    ));
    let mut out = Vec::new();
    let _ = step!(client.copy_out("COPY fz TO STDOUT (FORMAT csv)", &mut out));
    let _ = step!(client.execute("INSERT INTO fz VALUES ($1, $2, 1)", &[&4i32, &"d"]));
    if let Ok(rows) = step!(client.query("SELECT * FROM fz ORDER BY id", &[])) {
        rows.iter().for_each(exercise_row);
    }
    let _ = step!(client.query("COPY fz FROM STDIN", &[]));
    let _ = step!(client.batch_execute("SELECT 1/0"));
    let _ = step!(client.query("SELECT * FROM no_such_table", &[]));
    match client.transaction() {
        Ok(mut tx) => {
            let _ = tx.execute("INSERT INTO fz VALUES (5, 'e', 2)", &[]);
            let _ = tx.batch_execute("SELECT x");
            if let Err(e) = tx.commit() {
                look_at_error(&e);
            }
        }
        Err(e) => look_at_error(&e),
    }
    if client.is_closed() {
        return false;
    }
    let _ = step!(client.batch_execute("DEALLOCATE ALL"));
    let _ = step!(client.poll_notifications());
    let _ = client.transaction_status();
    client.close().is_ok()
}

/// [`session`] over the fuzz input as the server's output.
pub fn replay_session(data: &[u8]) {
    session(Replay::new(data));
}

fn look_at_error(e: &Error) {
    let _ = (e.kind(), e.to_string(), format!("{e:?}"), e.code());
    if let Some(db) = e.as_db_error() {
        let _ = (
            db.severity(),
            db.message(),
            db.detail(),
            db.hint(),
            db.position(),
        );
    }
}

/// Every result type [`check_value`] can select (the first input byte, modulo the
/// length): the binary-format scalars, their arrays, and two text-format types.
pub const VALUE_TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::BYTEA,
    Type::JSON,
    Type::JSONB,
    Type::UUID,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::OID_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::TEXT_ARRAY,
    Type::VARCHAR_ARRAY,
    Type::BPCHAR_ARRAY,
    Type::NAME_ARRAY,
    Type::BYTEA_ARRAY,
    Type::JSON_ARRAY,
    Type::JSONB_ARRAY,
    Type::UUID_ARRAY,
    Type::DATE_ARRAY,
    Type::TIME_ARRAY,
    Type::TIMESTAMP_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::INTERVAL_ARRAY,
    Type::INET,
    Type::INT4_RANGE,
];

/// A backend message: tag, length, body.
fn message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

/// What a server sends for start-up, then for `query("SELECT v")`: the statement's
/// description (one column of type `oid`) and one row with `value`.
pub fn one_value_reply(oid: u32, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, b'R', &0i32.to_be_bytes());
    message(&mut out, b'Z', b"I");
    // Parse + Describe + Sync.
    message(&mut out, b'1', &[]);
    message(&mut out, b't', &0i16.to_be_bytes());
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(b"v\0");
    body.extend_from_slice(&0i32.to_be_bytes()); // table
    body.extend_from_slice(&0i16.to_be_bytes()); // column
    body.extend_from_slice(&oid.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes()); // typlen
    body.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
    body.extend_from_slice(&0i16.to_be_bytes()); // format
    message(&mut out, b'T', &body);
    message(&mut out, b'Z', b"I");
    // Bind + Execute + Sync.
    message(&mut out, b'2', &[]);
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    match value {
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v);
        }
    }
    message(&mut out, b'D', &body);
    message(&mut out, b'C', b"SELECT 1\0");
    message(&mut out, b'Z', b"I");
    out
}

/// Reads one value, `data[1..]`, of type `VALUE_TYPES[data[0] % len]` through a real
/// client and [`exercise_row`]. Panics if the client fails to produce the row (the
/// reply is well-formed) or a cross-check fails.
pub fn check_value(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let ty = &VALUE_TYPES[usize::from(selector) % VALUE_TYPES.len()];
    let reply = one_value_reply(ty.oid(), Some(raw));
    let mut client =
        Client::connect(Replay::whole(&reply), &StartupConfig::new("u", "d")).expect("start-up");
    let rows = client
        .query("SELECT v", &[])
        .expect("the canned reply is valid");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].columns()[0].type_(), ty);
    exercise_row(&rows[0]);
}

/// Reads `T` from column `i`; a successful read must also work as `Option<T>`.
fn read<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Option<T> {
    let value = row.try_get::<_, T>(i);
    if let Err(e) = &value {
        look_at_error(e);
    }
    let optional = row.try_get::<_, Option<T>>(i);
    assert_eq!(value.is_ok(), matches!(optional, Ok(Some(_))));
    value.ok()
}

/// Reads every column of `row` in every way the client offers, and checks that the
/// text rendering agrees with the typed value where both exist.
pub fn exercise_row(row: &Row) {
    let _ = format!("{row:?}");
    let _ = row.to_json();
    for i in 0..row.len() {
        let text = row.get_text(i);
        let _ = row.get_json(i);
        let raw = row.raw(i);
        assert_eq!(raw.is_none(), text.is_none(), "NULL in one view only");

        macro_rules! read_all {
            ($($t:ty),*) => {$(
                let _ = read::<$t>(row, i);
                let _ = read::<Vec<Option<$t>>>(row, i);
            )*};
        }
        read_all!(
            f32,
            f64,
            Decimal,
            Value,
            NaiveDate,
            NaiveTime,
            NaiveDateTime,
            DateTime<Utc>,
            Json<Value>,
            &[u8]
        );

        // Cross-checks: the typed value and PostgreSQL's text output agree.
        if let Some(v) = read::<bool>(row, i) {
            assert_eq!(text.as_deref(), Some(if v { "t" } else { "f" }));
        }
        macro_rules! integer {
            ($($t:ty),*) => {$(
                if let Some(v) = read::<$t>(row, i) {
                    assert_eq!(text.as_deref(), Some(v.to_string().as_str()));
                }
                let _ = read::<Vec<Option<$t>>>(row, i);
            )*};
        }
        integer!(i16, i32, i64, u32);
        if let Some(s) = read::<&str>(row, i) {
            // Text types, and text-format columns of any type.
            assert_eq!(text.as_deref(), Some(s));
            assert_eq!(read::<String>(row, i).as_deref(), Some(s));
        }
        let _ = read::<Vec<Option<String>>>(row, i);
        if let Some(v) = read::<Vec<u8>>(row, i)
            && row.columns()[i].type_() == &Type::BYTEA
        {
            let mut hex = String::from("\\x");
            for b in &v {
                write!(hex, "{b:02x}").unwrap();
            }
            assert_eq!(text.as_deref(), Some(hex.as_str()));
        }
        if let Some(v) = read::<Uuid>(row, i) {
            assert_eq!(text, Some(v.hyphenated().to_string()));
        }
        let _ = read::<Vec<Option<Uuid>>>(row, i);
        if let Some(v) = read::<Interval>(row, i) {
            assert_eq!(text, Some(v.to_string()));
        }
        let _ = read::<Vec<Option<Interval>>>(row, i);
        let _ = read::<Vec<Option<Vec<u8>>>>(row, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../seeds/").to_owned() + target;
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// The recorded session replays to its end, so the fuzzer starts from inputs that
    /// reach every step of the script.
    #[test]
    fn recorded_session_replays_completely() {
        let seeds = seeds("backend_messages");
        let (_, full) = seeds.iter().find(|(n, _)| n == "md5-session").unwrap();
        assert!(session(Replay::new(full)));
        assert!(session(Replay::whole(full)));
        for (name, data) in &seeds {
            if name != "md5-session" {
                assert!(!session(Replay::new(data)), "{name} is a cut session");
            }
        }
    }

    #[test]
    fn value_seeds_pass_the_checks() {
        let seeds = seeds("values");
        assert!(seeds.len() > 30);
        for (name, data) in &seeds {
            check_value(data);
            let _ = name;
        }
    }
}
