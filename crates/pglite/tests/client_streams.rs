//! The client's streams, cursors, pipelines, retried transactions and binary COPY over
//! the embedded engine (whose transport answers whole requests at once).

mod common;

use common::temp;
use pglite::client::{BatchOutcome, RetryPolicy, TransactionStatus, Type};

#[test]
fn streams_cursors_pipelines_and_binary_copy_over_the_engine() {
    let mut db = temp();
    let client = db.client();

    // A row stream, read to the end and dropped early.
    let sum: i64 = client
        .query_raw("SELECT g::int8 FROM generate_series(1, $1) g", &[&20000i32])
        .unwrap()
        .map(|r| r.unwrap().get::<_, i64>(0))
        .sum();
    assert_eq!(sum, 20000 * 20001 / 2);
    {
        let mut stream = client
            .query_raw("SELECT generate_series(1, 1000)", &[])
            .unwrap();
        stream.next().unwrap().unwrap();
    }
    assert_eq!(
        client
            .simple_query_raw("SELECT 1; SELECT 2")
            .unwrap()
            .count(),
        6
    );

    // Cursors: each batch is `Execute` + `Sync` inside the transaction block.
    let mut tx = client.transaction().unwrap();
    for (rows, fetch) in [(50i32, 7u32), (49, 7), (0, 3), (10, 1000)] {
        let seen: Vec<i32> = tx
            .cursor("SELECT generate_series(1, $1)", &[&rows], fetch)
            .unwrap()
            .map(|r| r.unwrap().get(0))
            .collect();
        assert_eq!(
            seen,
            (1..=rows).collect::<Vec<_>>(),
            "{rows} rows, fetch {fetch}"
        );
    }
    let first: Vec<i32> = tx
        .cursor("SELECT generate_series(1, 100000)", &[], 100)
        .unwrap()
        .take(5)
        .map(|r| r.unwrap().get(0))
        .collect();
    assert_eq!(first, [1, 2, 3, 4, 5]);
    let open: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_cursors WHERE name LIKE 'pglite_p%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
    tx.commit().unwrap();

    // A pipelined batch with a failing segment.
    client
        .batch_execute("CREATE TABLE pl (id int PRIMARY KEY)")
        .unwrap();
    let mut batch = client.pipeline();
    batch
        .add("INSERT INTO pl VALUES ($1)", &[&1i32])
        .unwrap()
        .sync();
    batch.add("INSERT INTO pl VALUES ($1)", &[&1i32]).unwrap();
    batch
        .add("INSERT INTO pl VALUES ($1)", &[&2i32])
        .unwrap()
        .sync();
    batch.add("SELECT count(*) FROM pl", &[]).unwrap();
    let outcomes = batch.run().unwrap();
    assert!(matches!(&outcomes[0], BatchOutcome::Done(_)));
    assert_eq!(outcomes[1].error().unwrap().code().unwrap().code(), "23505");
    assert!(outcomes[2].is_skipped());
    assert_eq!(outcomes[3].result().unwrap().rows()[0].get::<_, i64>(0), 1);
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);

    // A retried transaction (no conflict here: one session).
    let n = client
        .with_transaction(&RetryPolicy::default(), |tx| {
            tx.execute("INSERT INTO pl VALUES ($1)", &[&3i32])
        })
        .unwrap();
    assert_eq!(n, 1);

    // Binary COPY both ways.
    client
        .batch_execute("CREATE TABLE bin (id int8, name text)")
        .unwrap();
    let types = [Type::INT8, Type::TEXT];
    let mut writer = client
        .copy_in_binary("COPY bin FROM STDIN (FORMAT binary)", &types)
        .unwrap();
    for id in 0..10000i64 {
        writer.write(&[&id, &format!("n{id}")]).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 10000);
    let mut count = 0i64;
    for row in client
        .copy_out_binary(
            "COPY (SELECT * FROM bin ORDER BY id) TO STDOUT (FORMAT binary)",
            &types,
        )
        .unwrap()
    {
        let row = row.unwrap();
        assert_eq!(row.get::<i64>(0), count);
        assert_eq!(row.get::<&str>(1), format!("n{count}"));
        count += 1;
    }
    assert_eq!(count, 10000);
    db.close().unwrap();
}

/// The same requests through `pglite serve`'s server: cursors hold the engine for
/// their transaction, portal names are renamed per client.
#[cfg(feature = "server")]
#[test]
fn cursors_and_pipelines_through_the_server() {
    use pglite::client::Client;

    let server = pglite::Server::builder()
        .temporary()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    for _ in 0..2 {
        // Each client names its first portal pglite_p1.
        let mut client = Client::connect_url(server.url()).unwrap();
        let mut tx = client.transaction().unwrap();
        let rows: Vec<i32> = tx
            .cursor("SELECT generate_series(1, 30)", &[], 7)
            .unwrap()
            .map(|r| r.unwrap().get(0))
            .collect();
        assert_eq!(rows, (1..=30).collect::<Vec<_>>());
        let first = tx
            .cursor("SELECT generate_series(1, 1000)", &[], 10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(first.get::<_, i32>(0), 1);
        tx.commit().unwrap();

        let mut batch = client.pipeline();
        batch.add("SELECT $1::int4 + 1", &[&41i32]).unwrap();
        batch.add("SELECT 1/0", &[]).unwrap();
        batch.add("SELECT 3", &[]).unwrap();
        let outcomes = batch.run().unwrap();
        assert_eq!(outcomes[0].result().unwrap().rows()[0].get::<_, i32>(0), 42);
        assert_eq!(outcomes[1].error().unwrap().code().unwrap().code(), "22012");
        assert!(outcomes[2].is_skipped());
        let n: i64 = client
            .query_raw("SELECT g::int8 FROM generate_series(1, 5000) g", &[])
            .unwrap()
            .map(|r| r.unwrap().get::<_, i64>(0))
            .sum();
        assert_eq!(n, 5000 * 5001 / 2);
        client.close().unwrap();
    }
    server.stop().unwrap();
}
