//! The connection pool against the native PostgreSQL server: limits and fairness,
//! timeouts, health checks and what comes back into the pool.
#![cfg(feature = "pool")]

mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pglite_client::{AsyncClient, Config, ErrorKind, Pool, PoolBuilder, TransactionStatus};
use support::server;

fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Settings for a pool whose connections carry `app` as application_name, so that
/// `pg_stat_activity` shows exactly this test's connections.
fn config(app: &str) -> Config {
    Config::new()
        .host("127.0.0.1")
        .port(server().port)
        .user("postgres")
        .dbname("postgres")
        .application_name(app)
}

fn builder(app: &str) -> PoolBuilder {
    Pool::builder(config(app)).acquire_timeout(Duration::from_secs(10))
}

async fn admin() -> AsyncClient {
    AsyncClient::connect(&config("pool-tests-admin"))
        .await
        .unwrap()
}

/// How many backends the server has for `app`.
async fn backends(admin: &mut AsyncClient, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls `backends` until it equals `want` (or fails after 5 s).
async fn wait_for_backends(admin: &mut AsyncClient, app: &str, want: i64) {
    let start = Instant::now();
    loop {
        let n = backends(admin, app).await;
        if n == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{app}: {n} backends, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn backend_pid(client: &mut AsyncClient) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[test]
fn concurrency_is_bounded_by_max_size() {
    const APP: &str = "pool-bounded";
    run(async {
        let pool = builder(APP).max_size(3).build().unwrap();
        let mut admin = admin().await;
        let busy = Arc::new(Mutex::new((0usize, 0usize))); // (now, most)
        let mut tasks = Vec::new();
        for i in 0..12i32 {
            let pool = pool.clone();
            let busy = busy.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                {
                    let mut b = busy.lock().unwrap();
                    b.0 += 1;
                    b.1 = b.1.max(b.0);
                }
                let row = client
                    .query_one("SELECT $1::int4 FROM pg_sleep(0.05)", &[&i])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(0), i);
                busy.lock().unwrap().0 -= 1;
            }));
        }
        // While the tasks run, the server never sees more than 3 of our backends.
        let mut most_seen = 0;
        while !tasks.iter().all(|t| t.is_finished()) {
            let n = backends(&mut admin, APP).await;
            assert!(n <= 3, "{n} backends for a pool of 3");
            most_seen = most_seen.max(n);
            assert!(pool.status().size <= 3, "{:?}", pool.status());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most_seen, 3, "the pool should have used all 3 connections");
        assert_eq!(busy.lock().unwrap().1, 3);
        let status = pool.status();
        assert_eq!((status.size, status.idle, status.waiting), (3, 3, 0));
        assert_eq!(backends(&mut admin, APP).await, 3);
    });
}

#[test]
fn waiters_are_served_in_arrival_order() {
    run(async {
        let pool = builder("pool-fifo").max_size(1).build().unwrap();
        let held = pool.get().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (pool2, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = pool2.get().await.unwrap();
                order.lock().unwrap().push(i);
                client.batch_execute("SELECT pg_sleep(0.01)").await.unwrap();
            }));
            // The next waiter starts only once this one is queued.
            while pool.status().waiting != i + 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    });
}

#[test]
fn acquire_timeout_is_an_error_of_its_own_kind() {
    run(async {
        let pool = builder("pool-timeout")
            .max_size(1)
            .acquire_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        let start = Instant::now();
        let err = pool.get().await.unwrap_err();
        let waited = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::PoolTimeout, "{err}");
        assert!(err.to_string().contains("acquire timeout"), "{err}");
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert_eq!(pool.status().waiting, 0);
        drop(held);
        let mut client = pool.get().await.unwrap();
        client.batch_execute("SELECT 1").await.unwrap();
    });
}

#[test]
fn a_server_that_is_down_fails_the_checkout_at_once() {
    run(async {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pool = Pool::builder(Config::new().host("127.0.0.1").port(port))
            .build()
            .unwrap();
        let start = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(pool.status().size, 0);
    });
}

#[test]
fn idle_connections_close_after_the_idle_timeout_down_to_min_idle() {
    const APP: &str = "pool-idle";
    run(async {
        let mut admin = admin().await;
        let pool = builder(APP)
            .max_size(4)
            .min_idle(1)
            .idle_timeout(Some(Duration::from_millis(300)))
            .build()
            .unwrap();
        // min_idle is opened in the background without any checkout.
        wait_for_backends(&mut admin, APP, 1).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get().await.unwrap());
        }
        assert_eq!(backends(&mut admin, APP).await, 4);
        drop(held);
        assert_eq!(pool.status().idle, 4);
        // Three of them time out; one stays for min_idle.
        wait_for_backends(&mut admin, APP, 1).await;
        let status = pool.status();
        assert_eq!((status.size, status.idle), (1, 1));
        // And without min_idle all of them go.
        const APP2: &str = "pool-idle-none";
        let pool = builder(APP2)
            .idle_timeout(Some(Duration::from_millis(200)))
            .build()
            .unwrap();
        let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
        assert_eq!(backends(&mut admin, APP2).await, 2);
        drop((a, b));
        wait_for_backends(&mut admin, APP2, 0).await;
        assert_eq!(pool.status().size, 0);
    });
}

#[test]
fn connections_are_retired_after_their_max_lifetime() {
    run(async {
        let pool = builder("pool-lifetime")
            .max_lifetime(Some(Duration::from_secs(1)))
            .build()
            .unwrap();
        let mut client = pool.get().await.unwrap();
        let first = backend_pid(&mut client).await;
        drop(client);
        let mut client = pool.get().await.unwrap();
        assert_eq!(backend_pid(&mut client).await, first, "reused while young");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Checked out past its lifetime: closed when it comes back.
        drop(client);
        let mut client = pool.get().await.unwrap();
        assert_ne!(backend_pid(&mut client).await, first);
        assert_eq!(pool.status().size, 1);
    });
}

#[test]
fn a_terminated_backend_is_never_handed_out() {
    const APP: &str = "pool-terminated";
    run(async {
        let mut admin = admin().await;
        // No health-check round trip: the checkout's read of what arrived while idle
        // must notice the server's FATAL message and EOF by itself.
        let pool = builder(APP)
            .max_size(2)
            .health_check_after(Duration::from_secs(3600))
            .build()
            .unwrap();
        let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
        let (pid_a, pid_b) = (backend_pid(&mut a).await, backend_pid(&mut b).await);
        drop((a, b));
        for pid in [pid_a, pid_b] {
            let killed: bool = admin
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .unwrap()
                .get(0);
            assert!(killed);
        }
        wait_for_backends(&mut admin, APP, 0).await;
        assert_eq!(pool.status().idle, 2);
        let mut client = pool.get().await.unwrap();
        let pid = backend_pid(&mut client).await;
        assert!(pid != pid_a && pid != pid_b);
        assert!(!client.is_closed());
        drop(client);
        let status = pool.status();
        assert_eq!((status.size, status.idle), (1, 1), "{status:?}");

        // The same with a round-trip health check on every checkout.
        let pool = builder("pool-terminated-2")
            .health_check_after(Duration::ZERO)
            .build()
            .unwrap();
        let mut client = pool.get().await.unwrap();
        let pid = backend_pid(&mut client).await;
        drop(client);
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        wait_for_backends(&mut admin, "pool-terminated-2", 0).await;
        let mut client = pool.get().await.unwrap();
        assert_ne!(backend_pid(&mut client).await, pid);
    });
}

#[test]
fn a_dirty_transaction_is_rolled_back_before_reuse() {
    run(async {
        let mut admin = admin().await;
        admin
            .batch_execute("DROP TABLE IF EXISTS pool_dirty; CREATE TABLE pool_dirty (id int)")
            .await
            .unwrap();
        let pool = builder("pool-dirty").max_size(1).build().unwrap();
        let mut client = pool.get().await.unwrap();
        let pid = backend_pid(&mut client).await;

        // A plain BEGIN left open.
        client
            .batch_execute("BEGIN; INSERT INTO pool_dirty VALUES (1)")
            .await
            .unwrap();
        assert_eq!(
            client.transaction_status(),
            TransactionStatus::InTransaction
        );
        drop(client);
        let mut client = pool.get().await.unwrap();
        assert_eq!(
            backend_pid(&mut client).await,
            pid,
            "the connection is reused"
        );
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);

        // A failed transaction block.
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute("INSERT INTO pool_dirty VALUES (2)")
            .await
            .unwrap();
        client.batch_execute("SELECT 1/0").await.unwrap_err();
        assert_eq!(client.transaction_status(), TransactionStatus::Failed);
        drop(client);
        let mut client = pool.get().await.unwrap();
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);

        // An AsyncTransaction dropped without commit (its rollback is only scheduled).
        {
            let mut tx = client.transaction().await.unwrap();
            tx.execute("INSERT INTO pool_dirty VALUES (3)", &[])
                .await
                .unwrap();
        }
        drop(client);
        let mut client = pool.get().await.unwrap();
        assert_eq!(backend_pid(&mut client).await, pid);
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);

        // Nothing of it reached the table, and nothing holds locks on it.
        let n: i64 = admin
            .query_one("SELECT count(*) FROM pool_dirty", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        admin
            .batch_execute("SET lock_timeout = '2s'; LOCK TABLE pool_dirty; RESET lock_timeout")
            .await
            .unwrap();
        // The next user's own transaction works normally.
        client
            .batch_execute("BEGIN; INSERT INTO pool_dirty VALUES (4); COMMIT")
            .await
            .unwrap();
        let n: i64 = admin
            .query_one("SELECT count(*) FROM pool_dirty", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        drop(client);
        admin.batch_execute("DROP TABLE pool_dirty").await.unwrap();
    });
}

#[test]
fn an_abandoned_call_discards_the_connection() {
    run(async {
        let pool = builder("pool-abandoned").max_size(1).build().unwrap();
        let mut client = pool.get().await.unwrap();
        let pid = backend_pid(&mut client).await;
        let slow = client.batch_execute("SELECT pg_sleep(2)");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );
        assert!(client.is_closed());
        drop(client);
        assert_eq!(pool.status().size, 0);
        let mut client = pool.get().await.unwrap();
        assert_ne!(backend_pid(&mut client).await, pid);
    });
}

#[test]
fn detach_and_close() {
    const APP: &str = "pool-close";
    run(async {
        let mut admin = admin().await;
        let pool = builder(APP).max_size(2).build().unwrap();
        let client = pool.get().await.unwrap();
        let mut detached = client.detach();
        assert_eq!(pool.status().size, 0);
        detached.batch_execute("SELECT 1").await.unwrap();
        // Its slot is free again: two more fit.
        let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
        drop(a);
        assert_eq!(backends(&mut admin, APP).await, 3);
        pool.close().await;
        assert!(pool.is_closed());
        assert_eq!(pool.get().await.unwrap_err().kind(), ErrorKind::Closed);
        drop(b); // closed when it comes back
        wait_for_backends(&mut admin, APP, 1).await;
        detached.close().await.unwrap();
        wait_for_backends(&mut admin, APP, 0).await;
    });
}

#[test]
fn notifications_received_while_idle_stay_queued() {
    run(async {
        let pool = builder("pool-notify")
            .max_size(1)
            .health_check_after(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut client = pool.get().await.unwrap();
        client.batch_execute("LISTEN pool_chan").await.unwrap();
        drop(client);
        let mut admin = admin().await;
        admin
            .batch_execute("NOTIFY pool_chan, 'while idle'")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut client = pool.get().await.unwrap();
        let got = client
            .wait_for_notification(Duration::from_secs(2))
            .await
            .unwrap()
            .expect("the notification");
        assert_eq!(got.payload(), "while idle");
        client.batch_execute("UNLISTEN *").await.unwrap();
    });
}
