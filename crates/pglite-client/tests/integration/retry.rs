//! `with_transaction`: real serialization failures and deadlocks between two
//! connections, retried by the policy.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use pglite_client::{Client, ErrorKind, IsolationLevel, RetryPolicy, TcpTransport};

use crate::support::connect;

fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .isolation(IsolationLevel::Serializable)
}

/// The classic write skew: each transaction sums one class and inserts the sum into the
/// other. `other` commits its half while `tx`'s first attempt is open.
fn write_skew(
    client: &mut Client<TcpTransport>,
    other: &mut Client<TcpTransport>,
    policy: &RetryPolicy,
    attempts: &mut u32,
) -> Result<i64, pglite_client::Error> {
    client.with_transaction(policy, |tx| {
        *attempts += 1;
        let sum: i64 = tx
            .query_one("SELECT sum(value)::int8 FROM skew WHERE class = 1", &[])?
            .get(0);
        if *attempts == 1 {
            other.batch_execute(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; \
                 INSERT INTO skew SELECT 1, sum(value) FROM skew WHERE class = 2; \
                 COMMIT",
            )?;
        }
        tx.execute("INSERT INTO skew VALUES (2, $1)", &[&sum])?;
        Ok(sum)
    })
}

fn reset_skew(client: &mut Client<TcpTransport>) {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS skew; \
             CREATE TABLE skew (class int, value int8); \
             INSERT INTO skew VALUES (1, 10), (1, 20), (2, 100), (2, 200)",
        )
        .unwrap();
}

#[test]
fn serialization_failures_are_retried() {
    let mut a = connect();
    let mut b = connect();

    // Without retries the conflict is a real 40001.
    reset_skew(&mut a);
    let mut attempts = 0;
    let err = write_skew(&mut a, &mut b, &fast_policy(1), &mut attempts).unwrap_err();
    assert_eq!(attempts, 1);
    assert_eq!(err.code().unwrap().code(), "40001", "{err}");
    assert!(RetryPolicy::is_retryable(&err));

    // With retries the second attempt sees the other transaction's row.
    reset_skew(&mut a);
    let mut attempts = 0;
    let sum = write_skew(&mut a, &mut b, &fast_policy(3), &mut attempts).unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(sum, 10 + 20 + 300);
    let rows: Vec<(i32, i64)> = a
        .query("SELECT class, value FROM skew ORDER BY class, value", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [(1, 10), (1, 20), (1, 300), (2, 100), (2, 200), (2, 330)]
    );
    a.batch_execute("DROP TABLE skew").unwrap();
}

#[test]
fn deadlocks_are_retried() {
    let mut setup = connect();
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS dl; \
             CREATE TABLE dl (id int PRIMARY KEY, n int); \
             INSERT INTO dl VALUES (1, 0), (2, 0)",
        )
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let codes = Arc::new(Mutex::new(Vec::new()));
    let worker = |first: i32, second: i32| {
        let barrier = barrier.clone();
        let attempts = attempts.clone();
        let codes = codes.clone();
        std::thread::spawn(move || {
            let mut client = connect();
            client
                .batch_execute("SET deadlock_timeout = '50ms'")
                .unwrap();
            // The backoff lets the transaction that was not chosen as the victim finish
            // before the victim tries again (with no wait, a retry on a busy machine can
            // win the race for the lock and deadlock again).
            let policy =
                RetryPolicy::new(5).backoff(Duration::from_millis(20), Duration::from_millis(100));
            let mut mine = 0;
            client
                .with_transaction(&policy, |tx| {
                    mine += 1;
                    attempts.fetch_add(1, Ordering::SeqCst);
                    tx.execute("UPDATE dl SET n = n + 1 WHERE id = $1", &[&first])?;
                    if mine == 1 {
                        barrier.wait();
                    }
                    let second = tx.execute("UPDATE dl SET n = n + 1 WHERE id = $1", &[&second]);
                    if let Err(e) = &second {
                        codes
                            .lock()
                            .unwrap()
                            .push(e.code().map(|c| c.code().to_owned()));
                    }
                    second?;
                    Ok(())
                })
                .unwrap();
        })
    };
    let one = worker(1, 2);
    let two = worker(2, 1);
    one.join().unwrap();
    two.join().unwrap();
    let codes = codes.lock().unwrap();
    assert!(!codes.is_empty(), "the two transactions deadlocked");
    assert!(
        codes.iter().all(|c| c.as_deref() == Some("40P01")),
        "{codes:?}"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst) as usize,
        2 + codes.len(),
        "each deadlock victim ran once more"
    );
    let rows: Vec<(i32, i32)> = setup
        .query("SELECT id, n FROM dl ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(1, 2), (2, 2)]);
    setup.batch_execute("DROP TABLE dl").unwrap();
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
