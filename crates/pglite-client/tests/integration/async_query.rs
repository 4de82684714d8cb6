//! The async driver's streams, cursors, pipelines and retried transactions, against a
//! server reached over a socket (native PostgreSQL or `pglite::Server`). Retries of
//! real serialization failures need two backends at once: `separate_backends.rs`.

use std::pin::Pin;
use std::time::Duration;

use pglite_client::{
    AsyncClient, AsyncTransaction, BatchOutcome, ErrorKind, RetryPolicy, SimpleQueryMessage,
    TransactionStatus, Type,
};

pub(crate) fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub(crate) async fn connect() -> AsyncClient {
    AsyncClient::connect_url(&crate::async_url()).await.unwrap()
}

/// The next item through the `futures_core::Stream` implementation.
async fn poll_next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[test]
fn query_raw_streams_and_settles_dropped_streams() {
    run(async {
        let mut client = connect().await;
        let mut stream = client
            .query_raw(
                "SELECT g, repeat('y', g) FROM generate_series(1, $1) g",
                &[&3000i32],
            )
            .await
            .unwrap();
        assert_eq!(stream.columns().len(), 2);
        let mut n = 0;
        // Alternate between next().await and the Stream implementation.
        loop {
            let item = if n % 2 == 0 {
                stream.next().await
            } else {
                poll_next(&mut stream).await
            };
            let Some(row) = item else { break };
            let row = row.unwrap();
            n += 1;
            assert_eq!(row.get::<_, i32>(0), n);
            assert_eq!(row.get::<_, &str>(1).len(), n as usize);
        }
        assert_eq!(n, 3000);
        assert_eq!(stream.rows_affected(), Some(3000));
        drop(stream);

        // An error in the middle of the rows is the last item.
        let mut stream = client
            .query_raw("SELECT 1 / (4 - g) FROM generate_series(1, 9) g", &[])
            .await
            .unwrap();
        let mut last = None;
        while let Some(item) = stream.next().await {
            last = Some(item);
        }
        assert_eq!(last.unwrap().unwrap_err().code().unwrap().code(), "22012");
        drop(stream);

        // Dropped early: the rest is read before the next call.
        let mut stream = client
            .query_raw("SELECT generate_series(1, 200000)", &[])
            .await
            .unwrap();
        stream.next().await.unwrap().unwrap();
        drop(stream);
        let mut simple = client
            .simple_query_raw("SELECT generate_series(1, 1000); SELECT 2")
            .await
            .unwrap();
        assert!(matches!(
            simple.next().await,
            Some(Ok(SimpleQueryMessage::RowDescription(_)))
        ));
        drop(simple);
        let row = client.query_one("SELECT 'next'", &[]).await.unwrap();
        assert_eq!(row.get::<_, &str>(0), "next");

        // The simple-query stream in full.
        let mut stream = client
            .simple_query_raw("SELECT 1 AS a; SELECT 1/0")
            .await
            .unwrap();
        let mut items = Vec::new();
        while let Some(item) = poll_next(&mut stream).await {
            items.push(item);
        }
        assert_eq!(items.len(), 4, "{items:?}");
        assert!(matches!(&items[1], Ok(SimpleQueryMessage::Row(r)) if r.get(0) == Some("1")));
        assert_eq!(
            items[3].as_ref().unwrap_err().code().unwrap().code(),
            "22012"
        );
        drop(stream);

        // A leaked stream makes the client refuse further use.
        let stream = client.query_raw("SELECT 1", &[]).await.unwrap();
        std::mem::forget(stream);
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
    });
}

#[test]
fn cursors_fetch_in_batches() {
    run(async {
        let mut client = connect().await;
        let err = client.cursor("SELECT 1", &[], 5).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);

        let mut tx = client.transaction().await.unwrap();
        for (rows, fetch) in [(20i32, 7u32), (21, 7), (0, 7), (5, 1000)] {
            let mut cursor = tx
                .cursor("SELECT generate_series(1, $1)", &[&rows], fetch)
                .await
                .unwrap();
            let mut seen = Vec::new();
            while let Some(row) = cursor.next().await {
                seen.push(row.unwrap().get::<_, i32>(0));
            }
            assert_eq!(seen, (1..=rows).collect::<Vec<_>>());
            assert_eq!(cursor.rows_affected(), Some(rows as u64));
        }
        // Stopped in the middle of a batch: the batch is read before the next call
        // and the portal closed.
        let mut cursor = tx
            .cursor("SELECT generate_series(1, 100000)", &[], 500)
            .await
            .unwrap();
        for _ in 0..3 {
            cursor.next().await.unwrap().unwrap();
        }
        drop(cursor);
        let open: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_cursors WHERE name LIKE 'pglite_p%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(open, 0);
        tx.commit().await.unwrap();
        assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    });
}

#[test]
fn pipelines_report_each_statement() {
    run(async {
        let mut client = connect().await;
        client
            .batch_execute("CREATE TEMP TABLE apl (id int PRIMARY KEY)")
            .await
            .unwrap();
        let mut batch = client.pipeline();
        batch
            .add("INSERT INTO apl VALUES ($1)", &[&1i32])
            .await
            .unwrap();
        batch
            .add("INSERT INTO apl VALUES ($1)", &[&1i32])
            .await
            .unwrap();
        batch
            .add("INSERT INTO apl VALUES ($1)", &[&2i32])
            .await
            .unwrap()
            .sync();
        batch.add("SELECT count(*) FROM apl", &[]).await.unwrap();
        assert_eq!(batch.len(), 4);
        let outcomes = batch.run().await.unwrap();
        assert!(matches!(&outcomes[0], BatchOutcome::Done(r) if r.rows_affected() == 1));
        assert_eq!(outcomes[1].error().unwrap().code().unwrap().code(), "23505");
        assert!(outcomes[2].is_skipped());
        let count: i64 = outcomes[3].result().unwrap().rows()[0].get(0);
        assert_eq!(count, 0, "the failed segment was rolled back");
    });
}

#[test]
fn with_transaction_local_returns_other_errors_and_refuses_nesting() {
    run(async {
        let mut a = connect().await;
        // Not retried: other errors.
        let policy =
            RetryPolicy::new(3).backoff(Duration::from_millis(1), Duration::from_millis(5));
        let mut calls = 0;
        let err = a
            .with_transaction_local(&policy, async |tx: &mut AsyncTransaction<'_>| {
                calls += 1;
                tx.execute("SELECT 1/0", &[]).await
            })
            .await
            .unwrap_err();
        assert_eq!((calls, err.code().unwrap().code()), (1, "22012"));
        // Refused inside a transaction.
        let mut tx = a.transaction().await.unwrap();
        let err = tx
            .with_transaction(&RetryPolicy::default(), |_| Box::pin(async { Ok(()) }))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
    });
}

#[test]
fn binary_copy_both_ways() {
    run(async {
        let mut client = connect().await;
        client
            .batch_execute("CREATE TEMP TABLE abc (id int8, name text, score float8)")
            .await
            .unwrap();
        let types = [Type::INT8, Type::TEXT, Type::FLOAT8];
        let mut writer = client
            .copy_in_binary("COPY abc FROM STDIN (FORMAT binary)", &types)
            .await
            .unwrap();
        for id in 0..30000i64 {
            let score = (id % 3 != 0).then_some(id as f64 / 2.0);
            writer
                .write(&[&id, &format!("name {id}"), &score])
                .await
                .unwrap();
        }
        assert_eq!(writer.finish().await.unwrap(), 30000);

        // Dropped before finish: aborted before the next call.
        let mut writer = client
            .copy_in_binary("COPY abc FROM STDIN (FORMAT binary)", &types)
            .await
            .unwrap();
        writer
            .write(&[&1i64, &"dropped", &None::<f64>])
            .await
            .unwrap();
        drop(writer);

        let mut reader = client
            .copy_out_binary(
                "COPY (SELECT * FROM abc ORDER BY id) TO STDOUT (FORMAT binary)",
                &types,
            )
            .await
            .unwrap();
        let mut id = 0i64;
        while let Some(row) = poll_next(&mut reader).await {
            let row = row.unwrap();
            assert_eq!(row.get::<i64>(0), id);
            assert_eq!(row.get::<&str>(1), format!("name {id}"));
            assert_eq!(
                row.get::<Option<f64>>(2),
                (id % 3 != 0).then_some(id as f64 / 2.0)
            );
            id += 1;
        }
        assert_eq!(id, 30000);
        assert_eq!(reader.rows_affected(), Some(30000));
    });
}
