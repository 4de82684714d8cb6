//! Pipelined batches: one write, one round trip, outcomes per statement.

use pglite_client::{BatchOutcome, ErrorKind, TransactionStatus};

use crate::common::CountingTransport;

fn code(outcome: &BatchOutcome) -> String {
    match outcome {
        BatchOutcome::Done(r) => format!("done {}", r.command_tag()),
        BatchOutcome::Failed(e) => format!("failed {}", e.code().map_or("-", |c| c.code())),
        BatchOutcome::Skipped => "skipped".to_owned(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_batch_is_one_write_and_one_round_trip() {
    let mut client = crate::connect_with(CountingTransport::new);
    client
        .batch_execute("CREATE TEMP TABLE pl (id int PRIMARY KEY, name text)")
        .unwrap();
    let insert = client.prepare("INSERT INTO pl VALUES ($1, $2)").unwrap();
    // SQL text is prepared (and cached) when first added: not part of the count.
    client
        .query("SELECT name FROM pl WHERE id = $1", &[&0i32])
        .unwrap();

    let transport = client.transport_mut();
    transport.round_trips = 0;
    transport.sends = 0;
    let mut batch = client.pipeline();
    for i in 0..20i32 {
        batch.add(&insert, &[&i, &format!("name {i}")]).unwrap();
    }
    batch
        .add("SELECT name FROM pl WHERE id = $1", &[&7i32])
        .unwrap();
    assert_eq!(batch.len(), 21);
    let outcomes = batch.run().unwrap();
    assert_eq!(client.transport().round_trips, 1);
    assert_eq!(client.transport().sends, 1, "the whole batch in one write");
    assert_eq!(outcomes.len(), 21);
    for outcome in &outcomes[..20] {
        assert_eq!(outcome.result().unwrap().rows_affected(), 1);
    }
    let rows = outcomes[20].result().unwrap().rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, &str>(0), "name 7");

    // The same work one statement at a time: a round trip each.
    client.transport_mut().round_trips = 0;
    for i in 20..40i32 {
        client.execute(&insert, &[&i, &"x"]).unwrap();
    }
    assert_eq!(client.transport().round_trips, 20);

    // Nothing to send: no round trip.
    client.transport_mut().round_trips = 0;
    assert!(client.pipeline().run().unwrap().is_empty());
    assert_eq!(client.transport().round_trips, 0);
}

#[test]
fn a_failure_skips_the_rest_of_its_segment_and_rolls_it_back() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE seg (id int PRIMARY KEY)")
        .unwrap();
    let insert = "INSERT INTO seg VALUES ($1)";

    // One segment: all or nothing.
    let mut batch = client.pipeline();
    for id in [1i32, 2, 2, 4] {
        batch.add(insert, &[&id]).unwrap();
    }
    let outcomes = batch.run().unwrap();
    let codes: Vec<String> = outcomes.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "done INSERT 0 1",
            "done INSERT 0 1",
            "failed 23505",
            "skipped"
        ]
    );
    assert!(outcomes[3].is_skipped());
    assert!(
        outcomes[2]
            .error()
            .unwrap()
            .as_db_error()
            .unwrap()
            .message()
            .contains("duplicate")
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM seg", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        count, 0,
        "the segment's implicit transaction was rolled back"
    );

    // A sync point after each statement: independent statements.
    let mut batch = client.pipeline();
    for id in [1i32, 2, 2, 4] {
        batch.add(insert, &[&id]).unwrap().sync();
    }
    // An error while rows are being sent is the failing statement's too.
    batch
        .add("SELECT 1 / (3 - g) FROM generate_series(1, 5) g", &[])
        .unwrap()
        .sync();
    batch.add("SELECT count(*) FROM seg", &[]).unwrap();
    let outcomes = batch.run().unwrap();
    let codes: Vec<String> = outcomes.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "done INSERT 0 1",
            "done INSERT 0 1",
            "failed 23505",
            "done INSERT 0 1",
            "failed 22012",
            "done SELECT 1"
        ]
    );
    assert_eq!(outcomes[5].result().unwrap().rows()[0].get::<_, i64>(0), 3);
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);

    // Inside a transaction block a failure fails the block: later segments fail too.
    let mut tx = client.transaction().unwrap();
    let mut batch = tx.pipeline();
    batch.add(insert, &[&10i32]).unwrap().sync();
    batch.add(insert, &[&10i32]).unwrap().sync();
    batch.add(insert, &[&11i32]).unwrap();
    let codes: Vec<String> = batch.run().unwrap().iter().map(code).collect();
    assert_eq!(codes, ["done INSERT 0 1", "failed 23505", "failed 25P02"]);
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    tx.rollback().unwrap();
}

#[test]
fn bad_statements_are_refused_when_added() {
    let mut client = crate::connect();
    let mut batch = client.pipeline();
    batch.add("SELECT $1::int", &[&1i32]).unwrap();
    let err = batch.add("SELECT $1::int", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = batch.add("SELEC 1", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    let err = batch
        .add("/* load */ COPY pg_class TO STDOUT", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    batch.add("SELECT $1::text", &[&"still fine"]).unwrap();
    let outcomes = batch.run().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[1].result().unwrap().rows()[0].get::<_, &str>(0),
        "still fine"
    );
}
