//! `with_transaction`: errors that are not retried, attempts used up, refused inside a
//! transaction. Real serialization failures and deadlocks need two backends running
//! transactions at once: `separate_backends.rs`.

use std::time::Duration;

use pglite_client::{ErrorKind, IsolationLevel, RetryPolicy};

use crate::connect;

fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .isolation(IsolationLevel::Serializable)
}

#[test]
fn other_errors_and_exhausted_attempts_are_returned() {
    let mut client = connect();
    client
        .batch_execute("CREATE TEMP TABLE once (id int PRIMARY KEY); INSERT INTO once VALUES (1)")
        .unwrap();
    let mut calls = 0;
    let err = client
        .with_transaction(&fast_policy(5), |tx| {
            calls += 1;
            tx.execute("INSERT INTO once VALUES (1)", &[])
        })
        .unwrap_err();
    assert_eq!(calls, 1, "a unique violation is not retried");
    assert_eq!(err.code().unwrap().code(), "23505");

    let mut calls = 0;
    let err = client
        .with_transaction(&fast_policy(3), |tx| {
            calls += 1;
            tx.execute("INSERT INTO once VALUES ($1)", &[&(calls + 10)])?;
            tx.batch_execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$",
            )?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(calls, 3, "every attempt was used");
    assert_eq!(err.code().unwrap().code(), "40001");
    let count: i64 = client
        .query_one("SELECT count(*) FROM once", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "every attempt was rolled back");

    let value = client
        .with_transaction(&RetryPolicy::default(), |tx| {
            tx.execute("INSERT INTO once VALUES (2)", &[])?;
            Ok("committed")
        })
        .unwrap();
    assert_eq!(value, "committed");
    let count: i64 = client
        .query_one("SELECT count(*) FROM once", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    let mut tx = client.transaction().unwrap();
    let err = tx
        .with_transaction(&RetryPolicy::default(), |_| Ok(()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
}
