//! The tokio driver against a server reached over a socket (native PostgreSQL or
//! `pglite::Server`). Password users are in `auth.rs`, a backend terminated while a
//! client waits in `separate_backends.rs` (native only).

use std::time::{Duration, Instant};

use pglite_client::{AsyncClient, Config, ErrorKind, SqlState, TransactionStatus};

use crate::async_query::{connect, run};

#[test]
fn queries_params_and_cache() {
    run(async {
        let mut client = connect().await;
        assert_eq!(client.parameter("application_name"), Some("async-tests"));
        assert!(client.backend_key().is_some());
        let results = client
            .simple_query("SELECT 1; SELECT 'a', NULL")
            .await
            .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].rows[0], vec![Some("a".to_owned()), None]);

        client
            .batch_execute("CREATE TEMP TABLE aqt (id int4 PRIMARY KEY, name text, tags text[])")
            .await
            .unwrap();
        for i in 0..5i32 {
            let n = client
                .execute(
                    "INSERT INTO aqt VALUES ($1, $2, $3)",
                    &[&i, &format!("n{i}"), &vec!["x".to_owned(); i as usize]],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        let rows = client
            .query(
                "SELECT id, name, tags FROM aqt WHERE id >= $1 ORDER BY id",
                &[&2i32],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].get::<_, &str>("name"), "n2");
        assert_eq!(rows[2].get::<_, Vec<String>>(2).len(), 4);
        let one = client
            .query_one("SELECT name FROM aqt WHERE id = $1", &[&4i32])
            .await
            .unwrap();
        assert_eq!(one.get::<_, String>(0), "n4");
        assert!(
            client
                .query_opt("SELECT 1 FROM aqt WHERE id = $1", &[&99i32])
                .await
                .unwrap()
                .is_none()
        );
        let err = client
            .query_one("SELECT id FROM aqt", &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);

        // One prepared statement per distinct SQL text, reused.
        // (pglite::Server shows every connection's statements; this one's have its prefix.)
        let prefix = crate::BACKEND.statement_prefix(client.backend_key());
        let prepared = client
            .query_one(
                "SELECT count(*)::int8 FROM pg_prepared_statements WHERE starts_with(name, $1)",
                &[&prefix],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(prepared, 6, "INSERT, SELECT x4, and the count itself");

        // Explicit statements and database-defined types.
        client
            .batch_execute("CREATE TYPE pg_temp.amood AS ENUM ('sad', 'ok')")
            .await
            .unwrap();
        let stmt = client.prepare("SELECT $1::pg_temp.amood").await.unwrap();
        assert_eq!(stmt.params()[0].name(), "amood");
        let row = client.query_one(&stmt, &[&"ok"]).await.unwrap();
        assert_eq!(row.get::<_, &str>(0), "ok");

        // SQL errors leave the connection usable.
        let err = client.query("SELEC 1", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
        let err = client
            .execute("INSERT INTO aqt VALUES (1, 'dup', '{}')", &[])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
        assert_eq!(
            client
                .query_one("SELECT 7", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            7
        );
        client.close().await.unwrap();
    });
}

#[test]
fn unix_socket_and_spawned_tasks() {
    run(async {
        let config = Config::new()
            .host_path(&crate::unix_socket().0)
            .port(crate::unix_socket().1)
            .user("postgres")
            .dbname("postgres");
        let mut client = AsyncClient::connect(&config).await.unwrap();
        // Futures are Send: the client can live in a spawned task.
        let handle = tokio::spawn(async move {
            let row = client.query_one("SELECT $1::text || '!'", &[&"hi"]).await?;
            let text: String = row.get(0);
            client.close().await?;
            Ok::<_, pglite_client::Error>(text)
        });
        assert_eq!(handle.await.unwrap().unwrap(), "hi!");
    });
}

#[test]
fn transactions() {
    run(async {
        let mut client = connect().await;
        client
            .batch_execute("CREATE TEMP TABLE atx (v int4)")
            .await
            .unwrap();

        let mut tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO atx VALUES (1)", &[]).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO atx VALUES (2)", &[]).await.unwrap();
        tx.rollback().await.unwrap();

        // Dropped without commit: the rollback runs before the next request.
        {
            let mut tx = client.transaction().await.unwrap();
            tx.execute("INSERT INTO atx VALUES (3)", &[]).await.unwrap();
        }
        assert_eq!(
            client.transaction_status(),
            TransactionStatus::InTransaction
        );
        let values: Vec<i32> = client
            .query("SELECT v FROM atx ORDER BY v", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(values, vec![1]);
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);

        // Savepoints.
        let mut tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO atx VALUES (10)", &[])
            .await
            .unwrap();
        {
            let mut sp = tx.transaction().await.unwrap();
            sp.execute("INSERT INTO atx VALUES (11)", &[])
                .await
                .unwrap();
            sp.rollback().await.unwrap();
        }
        {
            let mut sp = tx.transaction().await.unwrap();
            sp.execute("INSERT INTO atx VALUES (12)", &[])
                .await
                .unwrap();
            sp.commit().await.unwrap();
        }
        {
            let mut sp = tx.transaction().await.unwrap();
            sp.execute("INSERT INTO atx VALUES (13)", &[])
                .await
                .unwrap();
            // dropped: ROLLBACK TO SAVEPOINT scheduled
        }
        tx.commit().await.unwrap();
        let values: Vec<i32> = client
            .query("SELECT v FROM atx ORDER BY v", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(values, vec![1, 10, 12]);

        // A failed transaction: COMMIT rolls back and says so.
        let mut tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO atx VALUES (20)", &[])
            .await
            .unwrap();
        tx.execute("SELECT 1/0", &[]).await.unwrap_err();
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RolledBack, "{err}");
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    });
}

#[test]
fn copy_both_ways() {
    run(async {
        let mut client = connect().await;
        client
            .batch_execute("CREATE TEMP TABLE acp (id int4, name text)")
            .await
            .unwrap();
        let mut data = String::new();
        for i in 0..10_000 {
            data.push_str(&format!("{i}\tname {i}\n"));
        }
        let n = client
            .copy_in("COPY acp FROM STDIN", data.as_bytes())
            .await
            .unwrap();
        assert_eq!(n, 10_000);
        let mut out = Vec::new();
        let n = client
            .copy_out("COPY (SELECT * FROM acp ORDER BY id) TO STDOUT", &mut out)
            .await
            .unwrap();
        assert_eq!(n, 10_000);
        assert_eq!(String::from_utf8(out).unwrap(), data);

        // Bad data: a server error, the connection stays usable.
        let err = client
            .copy_in("COPY acp FROM STDIN", &b"x\ty\n"[..])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_TEXT_REPRESENTATION),
            "{err}"
        );
        // COPY FROM STDIN through query is refused, the connection recovers.
        let err = client
            .batch_execute("COPY acp FROM STDIN")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert_eq!(
            client
                .query_one("SELECT count(*)::int8 FROM acp", &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
            10_000
        );
    });
}

#[test]
fn listen_notify() {
    run(async {
        let mut listener = connect().await;
        let mut notifier = connect().await;
        listener.batch_execute("LISTEN async_chan").await.unwrap();

        let start = Instant::now();
        let none = listener
            .wait_for_notification(Duration::from_millis(100))
            .await
            .unwrap();
        assert!(none.is_none());
        assert!(start.elapsed() >= Duration::from_millis(90));
        // The timeout left the connection usable.
        assert!(!listener.is_closed());
        listener.batch_execute("SELECT 1").await.unwrap();

        // Notified while waiting.
        let notify = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            notifier
                .execute("SELECT pg_notify('async_chan', $1)", &[&"payload 1"])
                .await
                .map(|_| notifier)
        });
        let got = listener
            .wait_for_notification(Duration::from_secs(10))
            .await;
        let mut notifier = notify.await.unwrap().unwrap();
        let n = got.unwrap().expect("a notification");
        assert_eq!(n.channel(), "async_chan");
        assert_eq!(n.payload(), "payload 1");
        assert_eq!(Some(n.process_id()), notifier.backend_key().map(|k| k.0));

        // Already delivered before the wait: returned at once.
        notifier
            .batch_execute("NOTIFY async_chan, 'two'; NOTIFY async_chan, 'three'")
            .await
            .unwrap();
        let a = listener
            .wait_for_notification(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        let b = listener
            .wait_for_notification(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.payload(), b.payload()), ("two", "three"));
    });
}

#[test]
fn abandoned_call_closes_the_connection() {
    run(async {
        let mut client = connect().await;
        let pid = client.backend_key().unwrap().0;
        let result = tokio::time::timeout(
            Duration::from_millis(50),
            client.query("SELECT pg_sleep(2)", &[]),
        )
        .await;
        assert!(result.is_err(), "timed out");
        assert!(client.is_closed());
        // Outside a transaction the next call reconnects.
        let rows = client.query("SELECT 1", &[]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_ne!(client.backend_key().unwrap().0, pid);

        // Inside one, the next call says the transaction is lost; the one after
        // reconnects.
        client.batch_execute("BEGIN").await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_millis(50),
            client.query("SELECT pg_sleep(2)", &[]),
        )
        .await;
        assert!(result.is_err(), "timed out");
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        assert!(err.to_string().contains("inside a transaction"), "{err}");
        client.query("SELECT 1", &[]).await.unwrap();
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    });
}

/// A call abandoned inside a transaction: by the time the client reports the
/// transaction lost, it has ended the connection, so the server rolls the transaction
/// back and frees its locks without waiting for the client's next call.
#[test]
fn an_abandoned_transaction_is_rolled_back_before_the_next_call() {
    run(async {
        let mut other = connect().await;
        other
            .batch_execute("CREATE TABLE IF NOT EXISTS abandoned_lock (n int)")
            .await
            .unwrap();
        let mut client = connect().await;
        client
            .batch_execute("BEGIN; LOCK TABLE abandoned_lock IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let result = tokio::time::timeout(
            Duration::from_millis(50),
            client.query("SELECT pg_sleep(1)", &[]),
        )
        .await;
        assert!(result.is_err(), "timed out");
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert!(err.to_string().contains("inside a transaction"), "{err}");

        // `client` is left alone from here on. The old session ends once pg_sleep
        // returns (a backend reads its client's end of file only between statements).
        let start = Instant::now();
        other
            .batch_execute("SET lock_timeout = '10s'")
            .await
            .unwrap();
        let rows: i64 = other
            .query_one("SELECT count(*) FROM abandoned_lock", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0);
        // Natively a connection kept open would hold the lock until lock_timeout (the
        // query above would fail with 55P03); pglite::Server would take the engine from
        // it only after its holder timeout (20 s in tests/served), the SET above waiting
        // until then. The old session ends about 1 s after the call was abandoned.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        client.query("SELECT 1", &[]).await.unwrap();
    });
}

#[test]
fn tls_required_from_a_server_without_tls() {
    run(async {
        let url = format!("{}&sslmode=require", crate::async_url());
        let err = AsyncClient::connect_url(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(err.to_string().contains("does not support TLS"), "{err}");
    });
}
