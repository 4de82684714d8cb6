//! Row streaming (`query_raw`, `simple_query_raw`) and cursors (`cursor`).

use pglite_client::{ErrorKind, SimpleQueryMessage, TransactionStatus};

use crate::common::CountingTransport;
use crate::connect;

#[test]
fn query_raw_streams_rows_and_reports_the_tag() {
    let mut client = connect();
    let mut stream = client
        .query_raw(
            "SELECT g, repeat('x', g) AS s FROM generate_series(1, $1) g",
            &[&2000i32],
        )
        .unwrap();
    assert_eq!(stream.columns().len(), 2);
    assert_eq!(stream.columns()[1].name(), "s");
    assert_eq!(stream.rows_affected(), None, "not known before the end");
    let mut n = 0;
    for row in stream.by_ref() {
        let row = row.unwrap();
        n += 1;
        assert_eq!(row.get::<_, i32>(0), n);
        assert_eq!(row.get::<_, &str>("s").len(), n as usize);
    }
    assert_eq!(n, 2000);
    assert_eq!(stream.command_tag(), Some("SELECT 2000"));
    assert_eq!(stream.rows_affected(), Some(2000));
    assert!(stream.next().is_none());
    drop(stream);

    // A statement without rows, and a prepared statement.
    client
        .batch_execute("CREATE TEMP TABLE qr (v int)")
        .unwrap();
    let mut stream = client
        .query_raw("INSERT INTO qr SELECT generate_series(1, 5)", &[])
        .unwrap();
    assert!(stream.next().is_none());
    assert_eq!(stream.rows_affected(), Some(5));
    drop(stream);
    let stmt = client
        .prepare("SELECT v FROM qr WHERE v > $1 ORDER BY v")
        .unwrap();
    let values: Vec<i32> = client
        .query_raw(&stmt, &[&3i32])
        .unwrap()
        .map(|r| r.unwrap().get(0))
        .collect();
    assert_eq!(values, [4, 5]);
}

#[test]
fn query_raw_errors_before_and_during_rows() {
    let mut client = connect();
    // Before any row: returned by query_raw itself.
    let err = client.query_raw("SELECT nope", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");
    let err = client.query_raw("SELECT $1::int", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);

    // In the middle: rows first, then the error, then the end.
    let mut stream = client
        .query_raw("SELECT 10 / (5 - g) FROM generate_series(1, 10) g", &[])
        .unwrap();
    let mut rows = 0;
    let err = loop {
        match stream.next().expect("the stream ends with the error") {
            Ok(_) => rows += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code().unwrap().code(), "22012");
    assert!(rows <= 4, "{rows} rows before the division by zero");
    assert!(stream.next().is_none());
    drop(stream);
    assert_eq!(
        client.query_one("SELECT 7", &[]).unwrap().get::<_, i32>(0),
        7
    );
}

#[test]
fn dropping_a_stream_early_leaves_the_connection_usable() {
    let mut client = connect();
    {
        let mut stream = client
            .query_raw("SELECT g FROM generate_series(1, 100000) g", &[])
            .unwrap();
        for _ in 0..3 {
            stream.next().unwrap().unwrap();
        }
    }
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
    {
        let mut stream = client
            .simple_query_raw("SELECT generate_series(1, 50000); SELECT 'after'")
            .unwrap();
        stream.next().unwrap().unwrap();
    }
    let results = client.simple_query("SELECT 2").unwrap();
    assert_eq!(results[0].rows[0][0].as_deref(), Some("2"));

    // A leaked stream leaves its reply unread: the connection refuses further use
    // instead of mixing replies up.
    let stream = client.query_raw("SELECT 1", &[]).unwrap();
    std::mem::forget(stream);
    let err = client.query("SELECT 2", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn simple_query_raw_yields_descriptions_rows_and_completions() {
    let mut client = connect();
    let messages: Vec<SimpleQueryMessage> = client
        .simple_query_raw(
            "CREATE TEMP TABLE sqr (a int, b text); \
             INSERT INTO sqr VALUES (1, 'one'), (2, NULL); \
             SELECT a, b FROM sqr ORDER BY a; \
             SELECT 1 WHERE false",
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let summary: Vec<String> = messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::RowDescription(columns) => format!(
                "columns {}",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            SimpleQueryMessage::Row(row) => format!("row {:?} {:?}", row.get(0), row.get(1)),
            SimpleQueryMessage::CommandComplete { tag, rows_affected } => {
                format!("done {tag} {rows_affected:?}")
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "done CREATE TABLE None",
            "done INSERT 0 2 Some(2)",
            "columns a,b",
            "row Some(\"1\") Some(\"one\")",
            "row Some(\"2\") None",
            "done SELECT 2 Some(2)",
            "columns ?column?",
            "done SELECT 0 Some(0)",
        ]
    );
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .unwrap();
    assert_eq!(row.columns()[0].type_oid, 23);
    assert_eq!(
        row.try_get(5).unwrap_err().kind(),
        ErrorKind::ColumnNotFound
    );

    // An error in the second statement: the first one's messages, then the error.
    let items: Vec<_> = client
        .simple_query_raw("SELECT 1; SELECT 1/0; SELECT 3")
        .unwrap()
        .collect();
    assert_eq!(items.len(), 4, "{items:?}");
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
}

/// Round trips a cursor needs for `rows` rows: one per batch, plus one to learn the
/// end when the last batch was full.
fn expected_round_trips(rows: u32, fetch: u32) -> usize {
    (rows / fetch + 1) as usize
}

#[test]
fn cursors_fetch_in_batches_of_the_fetch_size() {
    let mut client = crate::connect_with(CountingTransport::new);
    let stmt = client
        .prepare("SELECT g, 'row ' || g FROM generate_series(1, $1) g")
        .unwrap();
    for fetch in [1u32, 7, 1000] {
        for rows in [0u32, 1, 6, 7, 8, 14, 999, 1000, 1001, 2500] {
            if fetch == 1 && rows > 100 {
                continue; // one round trip per row: keep the test quick
            }
            let mut tx = client.transaction().unwrap();
            tx.transport_mut().round_trips = 0;
            let mut seen = 0u32;
            let mut cursor = tx.cursor(&stmt, &[&(rows as i32)], fetch).unwrap();
            for row in cursor.by_ref() {
                let row = row.unwrap();
                seen += 1;
                assert_eq!(row.get::<_, i32>(0), seen as i32);
                assert_eq!(row.get::<_, String>(1), format!("row {seen}"));
            }
            assert_eq!(cursor.rows_affected(), Some(u64::from(rows)));
            drop(cursor);
            assert_eq!(seen, rows, "fetch {fetch}");
            assert_eq!(
                tx.transport().round_trips,
                expected_round_trips(rows, fetch),
                "round trips for {rows} rows, fetch size {fetch}"
            );
            tx.commit().unwrap();
        }
    }
}

#[test]
fn cursors_stop_early_close_their_portal_and_need_a_transaction() {
    let mut client = connect();
    let err = client
        .cursor("SELECT 1", &[], 10)
        .expect_err("a cursor outside a transaction is refused");
    assert_eq!(err.kind(), ErrorKind::Usage);
    let mut tx = client.transaction().unwrap();
    let err = tx.cursor("SELECT 1", &[], 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);

    let first: Vec<i32> = tx
        .cursor("SELECT g FROM generate_series(1, 1000000) g", &[], 100)
        .unwrap()
        .take(150)
        .map(|r| r.unwrap().get(0))
        .collect();
    assert_eq!(first.len(), 150);
    assert_eq!(first[149], 150);
    // The portal was closed with the next request (the one below). pglite::Server
    // names it after the connection, like statements.
    let portals = format!(
        "SELECT count(*) FROM pg_cursors WHERE starts_with(name, '{}pglite_p')",
        crate::BACKEND.statement_prefix(tx.backend_key())
    );
    let open: i64 = tx.query_one(&*portals, &[]).unwrap().get(0);
    assert_eq!(open, 0);

    // SQL-level cursors through the simple-query stream.
    let fetched = tx
        .simple_query_raw(
            "DECLARE sql_cursor CURSOR FOR SELECT generate_series(1, 10); \
             FETCH 4 FROM sql_cursor; FETCH 4 FROM sql_cursor; CLOSE sql_cursor",
        )
        .unwrap()
        .filter_map(|m| match m.unwrap() {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap().to_owned()),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(fetched, ["1", "2", "3", "4", "5", "6", "7", "8"]);

    // Two cursors in turn, and a cursor read to the end.
    let a: Vec<i32> = tx
        .cursor("SELECT generate_series(1, 5)", &[], 2)
        .unwrap()
        .map(|r| r.unwrap().get(0))
        .collect();
    assert_eq!(a, [1, 2, 3, 4, 5]);

    // An error in a later batch ends the cursor and fails the transaction.
    let mut cursor = tx
        .cursor("SELECT 1 / (25 - g) FROM generate_series(1, 30) g", &[], 10)
        .unwrap();
    let mut ok = 0;
    let err = loop {
        match cursor.next().unwrap() {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(
        ok, 24,
        "two full batches and the rows before the failing one"
    );
    assert_eq!(err.code().unwrap().code(), "22012");
    assert!(cursor.next().is_none());
    drop(cursor);
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    tx.rollback().unwrap();
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
}
