//! Tests that need two backend sessions running at the same time: a serialization
//! failure and a deadlock between concurrent transactions (retried by
//! `with_transaction`), and one backend terminating another. Native PostgreSQL only:
//! `pglite::Server` runs one transaction at a time (a second client waits until the
//! first one's transaction ends) and the engine has one session.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

#[cfg(feature = "tokio")]
use pglite_client::{AsyncClient, AsyncTransaction};
use pglite_client::{Client, ErrorKind, IsolationLevel, RetryPolicy, SqlState, TcpTransport};

#[cfg(feature = "tokio")]
use crate::async_query::run;
use crate::connect;

fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .isolation(IsolationLevel::Serializable)
}

#[test]
fn server_termination_is_reported_and_closes_the_client() {
    let mut victim = crate::connect();
    let pid = victim.backend_key().unwrap().0;
    let mut killer = crate::connect();
    killer
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    // pg_terminate_backend does not wait for the backend to exit.
    let mut attempts = 0;
    let err = loop {
        match victim.query("SELECT 1", &[]) {
            Err(e) => break e,
            Ok(_) if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(_) => panic!("the terminated backend kept answering"),
        }
    };
    assert!(
        err.kind() == ErrorKind::Io || err.code() == Some(&SqlState::ADMIN_SHUTDOWN),
        "{err:?}"
    );
    assert!(victim.is_closed());
    let err = victim.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
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

/// A write-skew table `name`: each transaction sums one class and inserts into the
/// other.
fn skew_setup(name: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (class int, value int8); \
         INSERT INTO {name} VALUES (1, 10), (1, 20), (2, 100), (2, 200)"
    )
}

/// The other transaction of the write skew, committed while the first is open.
fn skew_other(name: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL SERIALIZABLE; \
         INSERT INTO {name} SELECT 1, sum(value) FROM {name} WHERE class = 2; COMMIT"
    )
}

#[cfg(feature = "tokio")]
fn skew_policy() -> RetryPolicy {
    RetryPolicy::new(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .isolation(IsolationLevel::Serializable)
}

#[cfg(feature = "tokio")]
async fn skew_total(client: &mut AsyncClient, name: &str) -> i64 {
    let total = client
        .query_one(&format!("SELECT sum(value)::int8 FROM {name}"), &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("DROP TABLE {name}"))
        .await
        .unwrap();
    total
}

#[cfg(feature = "tokio")]
#[test]
fn with_transaction_retries_a_real_serialization_failure_in_a_spawned_task() {
    run(async {
        let mut a = crate::async_query::connect().await;
        a.batch_execute(&skew_setup("askew_spawned")).await.unwrap();
        let other = Arc::new(Mutex::new(Some(crate::async_query::connect().await)));
        let attempts = Arc::new(AtomicU32::new(0));
        let counter = attempts.clone();
        // Spawned: the future of with_transaction is Send.
        let task = tokio::spawn(async move {
            let result = a
                .with_transaction(&skew_policy(), move |tx| {
                    let attempts = counter.clone();
                    let other = other.clone();
                    Box::pin(async move {
                        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                        let sum: i64 = tx
                            .query_one(
                                "SELECT sum(value)::int8 FROM askew_spawned WHERE class = 1",
                                &[],
                            )
                            .await?
                            .get(0);
                        if attempt == 1 {
                            let mut b = other.lock().unwrap().take().unwrap();
                            b.batch_execute(&skew_other("askew_spawned")).await?;
                        }
                        tx.execute("INSERT INTO askew_spawned VALUES (2, $1)", &[&sum])
                            .await?;
                        Ok(sum)
                    })
                })
                .await;
            (a, result)
        });
        let (mut a, result) = task.await.unwrap();
        assert_eq!(result.unwrap(), 330);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(
            skew_total(&mut a, "askew_spawned").await,
            10 + 20 + 300 + 100 + 200 + 330
        );
    });
}

#[cfg(feature = "tokio")]
#[test]
fn with_transaction_local_borrows_and_retries() {
    run(async {
        let mut a = crate::async_query::connect().await;
        let mut b = crate::async_query::connect().await;
        a.batch_execute(&skew_setup("askew_local")).await.unwrap();
        let mut attempts = 0u32;
        let sum = a
            .with_transaction_local(&skew_policy(), async |tx: &mut AsyncTransaction<'_>| {
                attempts += 1;
                let sum: i64 = tx
                    .query_one(
                        "SELECT sum(value)::int8 FROM askew_local WHERE class = 1",
                        &[],
                    )
                    .await?
                    .get(0);
                if attempts == 1 {
                    b.batch_execute(&skew_other("askew_local")).await?;
                }
                tx.execute("INSERT INTO askew_local VALUES (2, $1)", &[&sum])
                    .await?;
                Ok(sum)
            })
            .await
            .unwrap();
        assert_eq!(sum, 330);
        assert_eq!(attempts, 2);
        assert_eq!(
            skew_total(&mut a, "askew_local").await,
            10 + 20 + 300 + 100 + 200 + 330
        );
    });
}

/// A backend terminated while the client waits for a notification.
#[cfg(feature = "tokio")]
#[test]
fn termination_while_waiting_for_a_notification() {
    run(async {
        let mut listener = crate::async_query::connect().await;
        let mut notifier = crate::async_query::connect().await;
        listener.batch_execute("LISTEN async_chan").await.unwrap();
        let pid = listener.backend_key().unwrap().0;
        notifier
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let err = listener
            .wait_for_notification(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(listener.is_closed(), "{err}");
        // A client made from a URL reconnects on its next call (a new backend,
        // without the old session's LISTEN).
        listener.batch_execute("SELECT 1").await.unwrap();
        assert_ne!(listener.backend_key().unwrap().0, pid);
        notifier
            .batch_execute("NOTIFY async_chan, 'lost'")
            .await
            .unwrap();
        let none = listener
            .wait_for_notification(Duration::from_millis(100))
            .await
            .unwrap();
        assert!(none.is_none());
    });
}
