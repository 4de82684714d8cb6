//! Large values, results and inputs: past the runtime's 128 KiB stack and 2 MiB buffer.

mod common;

use std::time::Instant;

use common::{count, pseudo_random_bytes, scalar, sha256_hex, temp};

#[test]
fn bytea_of_50_mb_round_trips_intact() {
    let mut db = temp();
    let data = pseudo_random_bytes(50 * 1024 * 1024, 0x5eed);
    let expected_sha = sha256_hex(&data);
    db.batch_execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL)")
        .unwrap();

    let started = Instant::now();
    let inserted = db
        .execute("INSERT INTO blobs VALUES ($1, $2)", &[&1i32, &data])
        .unwrap();
    assert_eq!(inserted, 1);
    eprintln!("50 MB bytea insert: {:?}", started.elapsed());

    // The server sees exactly the bytes sent...
    let row = db
        .query_one(
            "SELECT length(data), encode(sha256(data), 'hex') FROM blobs WHERE id = 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0) as usize, data.len());
    assert_eq!(row.get::<_, String>(1), expected_sha);

    // ...and sends them back unchanged.
    let started = Instant::now();
    let row = db
        .query_one("SELECT data FROM blobs WHERE id = $1", &[&1i32])
        .unwrap();
    let back: &[u8] = row.get(0);
    eprintln!("50 MB bytea select: {:?}", started.elapsed());
    assert_eq!(back.len(), data.len());
    assert_eq!(sha256_hex(back), expected_sha);
    assert!(back == data.as_slice(), "the bytes differ");
    drop(row);

    // A reply near the size of the old in-memory limits, and the session still works.
    let small: Vec<u8> = db
        .query_one("SELECT substring(data FROM 1 FOR 200000) FROM blobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(small, data[..200_000]);
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);
}

#[test]
fn result_of_200000_rows_round_trips_intact() {
    let mut db = temp();
    const ROWS: i32 = 200_000;
    let sql = "SELECT n, md5(n::text) AS h FROM generate_series(1, $1::int) n ORDER BY n";
    let checksum_sql = "SELECT encode(sha256(convert_to(string_agg(n::text || ':' || md5(n::text), \
                        E'\\n' ORDER BY n), 'UTF8')), 'hex') FROM generate_series(1, $1::int) n";
    let expected: String = db.query_one(checksum_sql, &[&ROWS]).unwrap().get(0);

    // Extended protocol, binary results.
    let started = Instant::now();
    let rows = db.query(sql, &[&ROWS]).unwrap();
    eprintln!("200,000 rows (query): {:?}", started.elapsed());
    assert_eq!(rows.len(), ROWS as usize);
    let mut joined = String::with_capacity(rows.len() * 42);
    for (i, row) in rows.iter().enumerate() {
        let n: i32 = row.get(0);
        assert_eq!(n, i as i32 + 1, "row {i} is out of place");
        let h: &str = row.get(1);
        assert_eq!(h.len(), 32);
        if i > 0 {
            joined.push('\n');
        }
        joined.push_str(&format!("{n}:{h}"));
    }
    assert_eq!(sha256_hex(joined.as_bytes()), expected);
    drop(rows);

    // Simple protocol, text results: the same rows.
    let started = Instant::now();
    let results = db
        .exec(&format!(
            "SELECT n, md5(n::text) AS h FROM generate_series(1, {ROWS}) n ORDER BY n"
        ))
        .unwrap();
    eprintln!("200,000 rows (exec): {:?}", started.elapsed());
    let result = &results[0];
    assert_eq!(result.rows.len(), ROWS as usize);
    assert_eq!(result.rows_affected, Some(ROWS as u64));
    let text: Vec<String> = result
        .rows
        .iter()
        .map(|r| format!("{}:{}", r[0].as_deref().unwrap(), r[1].as_deref().unwrap()))
        .collect();
    assert_eq!(sha256_hex(text.join("\n").as_bytes()), expected);
}

#[test]
fn script_of_5_mb_of_inserts_runs_in_one_exec() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE s (id int PRIMARY KEY, label text NOT NULL)")
        .unwrap();
    let mut script = String::with_capacity(6 << 20);
    let mut statements = 0usize;
    let mut id_sum = 0i64;
    while script.len() < 5 << 20 {
        statements += 1;
        id_sum += statements as i64;
        script.push_str(&format!(
            "INSERT INTO s VALUES ({statements}, 'row {statements} {}');\n",
            "abcdefghij".repeat(8)
        ));
    }
    assert!(script.len() >= 5 << 20);

    let started = Instant::now();
    let results = db.exec(&script).unwrap();
    eprintln!(
        "{} bytes, {statements} INSERTs in one exec: {:?}",
        script.len(),
        started.elapsed()
    );
    assert_eq!(results.len(), statements);
    assert!(results.iter().all(|r| r.command_tag == "INSERT 0 1"));
    assert_eq!(count(&mut db, "s"), statements as i64);
    let sum: i64 = scalar(&mut db, "SELECT sum(id)::int8 FROM s");
    assert_eq!(sum, id_sum);
    let last: String = db
        .query_one("SELECT label FROM s WHERE id = $1", &[&(statements as i32)])
        .unwrap()
        .get(0);
    assert!(last.starts_with(&format!("row {statements} abcdefghij")));

    // The same script again fails on the first duplicate and changes nothing.
    let err = db.exec(&script).unwrap_err();
    assert_eq!(common::sqlstate(&err), "23505");
    assert_eq!(count(&mut db, "s"), statements as i64);
}

#[test]
fn text_parameter_of_3_mb_and_inputs_around_the_buffer_sizes() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE docs (id int, body text)")
        .unwrap();
    let body: String = (0..3 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    db.execute("INSERT INTO docs VALUES ($1, $2)", &[&1i32, &body])
        .unwrap();
    let row = db
        .query_one(
            "SELECT length(body), encode(sha256(convert_to(body, 'UTF8')), 'hex') FROM docs",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0) as usize, body.len());
    assert_eq!(row.get::<_, String>(1), sha256_hex(body.as_bytes()));
    let back: String = db
        .query_one("SELECT body FROM docs WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert!(back == body);

    // Inputs and replies of every size around the engine's thresholds: the 128 KiB old
    // stack, half the 2 MiB buffer (where inputs move to a file) and the buffer itself.
    const KIB: usize = 1024;
    for base in [128 * KIB, 1024 * KIB, 2048 * KIB] {
        for len in [base - 64, base - 1, base, base + 1, base + 64] {
            let text = &body[..len];
            let row = db
                .query_one("SELECT length($1::text), $1::text", &[&text])
                .unwrap_or_else(|e| panic!("parameter of {len} bytes: {e}"));
            assert_eq!(row.get::<_, i32>(0) as usize, len);
            let echoed: &str = row.get(1);
            assert!(echoed == text, "echo of {len} bytes differs");
            // The same size as SQL text through the simple protocol.
            let results = db
                .exec(&format!("SELECT '{text}'::text AS t"))
                .unwrap_or_else(|e| panic!("query text of {len} bytes: {e}"));
            assert!(results[0].rows[0][0].as_deref() == Some(text));
        }
    }
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);
}
