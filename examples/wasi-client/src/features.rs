//! Checks of the query API beyond request and reply, on wasi:sockets: row streams
//! (`query_raw`, a cursor, `simple_query_raw`), a pipeline, `with_transaction` with a
//! retry (the wait between attempts uses wstd's timer), binary COPY, a cancel request
//! sent over a second wasi:sockets connection, and an automatic reconnect that
//! re-applies `set_param` settings. Every check works the same against PostgreSQL and
//! against `pglite serve` (one shared session, see docs/SERVER.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pglite_client::{
    AsyncClient, AsyncTransaction, BatchOutcome, ErrorKind, IsolationLevel, RetryPolicy,
    SimpleQueryMessage, SqlState, Type,
};
use wstd::future::FutureExt;

use crate::checks::{Context, Failure};

/// Runs the checks of this module on `client` (connected to `url`).
pub async fn run(client: &mut AsyncClient, url: &str) -> Result<(), Failure> {
    streams(client).await?;
    pipeline(client).await?;
    retried_transaction(client).await?;
    binary_copy(client).await?;
    cancel(client, url).await?;
    reconnect(client).await?;
    Ok(())
}

/// `query_raw` over 100,000 rows, a cursor in batches of 7, `simple_query_raw`.
async fn streams(client: &mut AsyncClient) -> Result<(), Failure> {
    let mut rows = client
        .query_raw(
            "SELECT g, repeat('x', g % 10) FROM generate_series(1, $1::int4) g",
            &[&100_000i32],
        )
        .await
        .context("query_raw")?;
    let (mut count, mut sum, mut chars) = (0u64, 0i64, 0usize);
    while let Some(row) = rows.next().await {
        let row = row.context("query_raw row")?;
        sum += i64::from(row.get::<_, i32>(0));
        chars += row.get::<_, &str>(1).len();
        count += 1;
    }
    let tag = rows.command_tag().map(str::to_owned);
    drop(rows);
    ensure!(
        count == 100_000 && sum == 5_000_050_000 && chars == 450_000,
        "query_raw streamed {count} rows, sum {sum}, {chars} chars"
    );
    ensure!(
        tag.as_deref() == Some("SELECT 100000"),
        "query_raw tag {tag:?}"
    );

    // A stream dropped early leaves the rest of its reply for the next call to read.
    let mut rows = client
        .query_raw("SELECT g FROM generate_series(1, 50000) g", &[])
        .await
        .context("query_raw (dropped early)")?;
    let first: i32 = rows
        .next()
        .await
        .ok_or("no first row")?
        .context("first row")?
        .get(0);
    drop(rows);
    let after: i32 = client
        .query_one("SELECT 7::int4", &[])
        .await
        .context("query after a dropped stream")?
        .get(0);
    ensure!(
        first == 1 && after == 7,
        "dropped stream: first {first}, then {after}"
    );
    println!("query_raw: {count} rows streamed (sum {sum}), {tag:?}; early drop ok");

    let mut tx = client.transaction().await.context("cursor begin")?;
    let mut cursor = tx
        .cursor("SELECT g FROM generate_series(1, 100) g", &[], 7)
        .await
        .context("cursor")?;
    let mut seen = Vec::new();
    while let Some(row) = cursor.next().await {
        seen.push(row.context("cursor row")?.get::<_, i32>(0));
    }
    drop(cursor);
    tx.commit().await.context("cursor commit")?;
    ensure!(
        seen == (1..=100).collect::<Vec<_>>(),
        "cursor gave {} rows: {seen:?}",
        seen.len()
    );
    println!("cursor: 100 rows in batches of 7");

    let mut messages = client
        .simple_query_raw("SELECT 'a' AS x UNION ALL SELECT NULL; SELECT 42")
        .await
        .context("simple_query_raw")?;
    let mut shape = Vec::new();
    while let Some(message) = messages.next().await {
        shape.push(match message.context("simple_query_raw message")? {
            SimpleQueryMessage::RowDescription(columns) => format!("columns {}", columns.len()),
            SimpleQueryMessage::Row(row) => format!("row {:?}", row.get(0)),
            SimpleQueryMessage::CommandComplete { tag, .. } => format!("done {tag}"),
            other => format!("{other:?}"),
        });
    }
    drop(messages);
    let expected = [
        "columns 1",
        "row Some(\"a\")",
        "row None",
        "done SELECT 2",
        "columns 1",
        "row Some(\"42\")",
        "done SELECT 1",
    ];
    ensure!(shape == expected, "simple_query_raw gave {shape:?}");
    println!("simple_query_raw: {}", shape.join(", "));
    Ok(())
}

/// Three segments in one round trip: the failing statement's segment is skipped
/// from the error on, the others run.
async fn pipeline(client: &mut AsyncClient) -> Result<(), Failure> {
    client
        .batch_execute("DROP TABLE IF EXISTS wasi_pipe; CREATE TABLE wasi_pipe (n int4)")
        .await
        .context("pipeline table")?;
    let mut pipeline = client.pipeline();
    pipeline
        .add("INSERT INTO wasi_pipe VALUES ($1)", &[&1i32])
        .await
        .context("pipeline add")?;
    pipeline
        .add("SELECT count(*)::int4 FROM wasi_pipe", &[])
        .await
        .context("pipeline add")?;
    pipeline.sync();
    pipeline
        .add("INSERT INTO wasi_pipe VALUES (1 / $1::int4)", &[&0i32])
        .await
        .context("pipeline add")?;
    pipeline
        .add("INSERT INTO wasi_pipe VALUES ($1)", &[&2i32])
        .await
        .context("pipeline add")?;
    pipeline.sync();
    pipeline
        .add("SELECT coalesce(sum(n), 0)::int4 FROM wasi_pipe", &[])
        .await
        .context("pipeline add")?;
    let outcomes = pipeline.run().await.context("pipeline run")?;
    let shape: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            BatchOutcome::Done(r) if r.rows().is_empty() => r.command_tag().to_owned(),
            BatchOutcome::Done(r) => format!("{}", r.rows()[0].get::<_, i32>(0)),
            BatchOutcome::Failed(e) => e.code().map(|c| c.code()).unwrap_or("?").to_owned(),
            BatchOutcome::Skipped => "skipped".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    ensure!(
        shape == ["INSERT 0 1", "1", "22012", "skipped", "1"],
        "pipeline gave {shape:?}"
    );
    client
        .batch_execute("DROP TABLE wasi_pipe")
        .await
        .context("drop pipeline table")?;
    println!(
        "pipeline: 5 statements in one round trip: {}",
        shape.join(", ")
    );
    Ok(())
}

/// `with_transaction`: the first attempt fails with a serialization failure (raised
/// by the server, SQLSTATE 40001), is rolled back, waits the backoff on wstd's timer
/// and runs again; then `with_transaction_local` commits at once.
async fn retried_transaction(client: &mut AsyncClient) -> Result<(), Failure> {
    client
        .batch_execute("DROP TABLE IF EXISTS wasi_tx; CREATE TABLE wasi_tx (attempt int4)")
        .await
        .context("retry table")?;
    let backoff = Duration::from_millis(100);
    let policy = RetryPolicy::new(3)
        .backoff(backoff, backoff)
        .isolation(IsolationLevel::Serializable);
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let start = Instant::now();
    let level: String = client
        .with_transaction(&policy, move |tx| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tx.execute("INSERT INTO wasi_tx VALUES ($1)", &[&(attempt as i32)])
                    .await?;
                if attempt == 1 {
                    tx.batch_execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'conflict' \
                         USING ERRCODE = 'serialization_failure'; END $$",
                    )
                    .await?;
                }
                let row = tx.query_one("SHOW transaction_isolation", &[]).await?;
                Ok(row.get::<_, String>(0))
            })
        })
        .await
        .context("with_transaction")?;
    let took = start.elapsed();
    let attempts = attempts.load(Ordering::SeqCst);
    let kept: Vec<i32> = client
        .query("SELECT attempt FROM wasi_tx", &[])
        .await
        .context("rows after with_transaction")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        attempts == 2 && kept == [2] && level == "serializable",
        "with_transaction: {attempts} attempts, rows {kept:?}, isolation {level}"
    );
    // The jittered wait is between half the backoff and all of it.
    ensure!(
        took >= backoff / 2,
        "the retry did not wait its backoff: {took:?}"
    );

    let mut runs = 0;
    let n = client
        .with_transaction_local(
            &RetryPolicy::default(),
            async |tx: &mut AsyncTransaction<'_>| {
                runs += 1;
                tx.execute("INSERT INTO wasi_tx VALUES (3)", &[]).await
            },
        )
        .await
        .context("with_transaction_local")?;
    ensure!(
        runs == 1 && n == 1,
        "with_transaction_local ran {runs} times"
    );
    client
        .batch_execute("DROP TABLE wasi_tx")
        .await
        .context("drop retry table")?;
    println!(
        "with_transaction: 40001 on attempt 1, committed on attempt {attempts} after {} ms",
        took.as_millis()
    );
    Ok(())
}

/// Binary COPY in (with NULLs and a writer dropped before `finish`) and out.
async fn binary_copy(client: &mut AsyncClient) -> Result<(), Failure> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS wasi_bin;
             CREATE TABLE wasi_bin (id int8, name text, score float8)",
        )
        .await
        .context("binary copy table")?;
    let types = [Type::INT8, Type::TEXT, Type::FLOAT8];
    let mut writer = client
        .copy_in_binary("COPY wasi_bin FROM STDIN (FORMAT binary)", &types)
        .await
        .context("copy_in_binary")?;
    for id in 0..1000i64 {
        let score = (id % 3 != 0).then_some(id as f64 / 2.0);
        writer
            .write(&[&id, &format!("name {id}"), &score])
            .await
            .context("binary write")?;
    }
    let written = writer.finish().await.context("binary finish")?;
    ensure!(written == 1000, "copy_in_binary copied {written} rows");

    let mut dropped = client
        .copy_in_binary("COPY wasi_bin FROM STDIN (FORMAT binary)", &types)
        .await
        .context("copy_in_binary (dropped)")?;
    dropped
        .write(&[&-1i64, &"never stored", &None::<f64>])
        .await
        .context("binary write (dropped)")?;
    drop(dropped);

    let mut reader = client
        .copy_out_binary(
            "COPY (SELECT * FROM wasi_bin ORDER BY id) TO STDOUT (FORMAT binary)",
            &types,
        )
        .await
        .context("copy_out_binary")?;
    let mut id = 0i64;
    while let Some(row) = reader.next().await {
        let row = row.context("binary row")?;
        let (got, name, score) = (
            row.get::<i64>(0),
            row.get::<String>(1),
            row.get::<Option<f64>>(2),
        );
        let expected = (id % 3 != 0).then_some(id as f64 / 2.0);
        ensure!(
            got == id && name == format!("name {id}") && score == expected,
            "binary row {id} came back as ({got}, {name:?}, {score:?})"
        );
        id += 1;
    }
    let reported = reader.rows_affected();
    drop(reader);
    ensure!(
        id == 1000 && reported == Some(1000),
        "copy_out_binary gave {id} rows, reported {reported:?}"
    );
    client
        .batch_execute("DROP TABLE wasi_bin")
        .await
        .context("drop binary copy table")?;
    println!("binary copy: 1000 rows in and out, a dropped writer aborted its COPY");
    Ok(())
}

/// A cancel request from a concurrent task: `client` reads a table that a second
/// connection has locked, so it waits for the lock (for `pglite serve`: waits in its
/// queue behind that connection's open transaction) until the cancel ends the wait
/// with 57014.
async fn cancel(client: &mut AsyncClient, url: &str) -> Result<(), Failure> {
    client
        .batch_execute("DROP TABLE IF EXISTS wasi_lock; CREATE TABLE wasi_lock (n int4)")
        .await
        .context("lock table")?;
    let pid = client.backend_key().map(|(pid, _)| pid);
    let mut holder = AsyncClient::connect_url(url)
        .await
        .context("holder connection")?;
    holder
        .batch_execute("BEGIN; LOCK TABLE wasi_lock IN ACCESS EXCLUSIVE MODE")
        .await
        .context("holder lock")?;

    let token = client.cancel_token().context("cancel_token")?;
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    // A cancel that arrives before the statement started is ignored by the server,
    // so the task repeats it until the statement has ended.
    let canceller = wstd::runtime::spawn(async move {
        let mut sent = 0u32;
        while !stop.load(Ordering::SeqCst) {
            wstd::task::sleep(Duration::from_millis(200).into()).await;
            if !stop.load(Ordering::SeqCst) {
                token.cancel_async().await?;
                sent += 1;
            }
        }
        Ok::<u32, pglite_client::Error>(sent)
    });
    let start = Instant::now();
    let waited = client
        .query("SELECT count(*) FROM wasi_lock", &[])
        .await
        .err()
        .ok_or("the table was read although another connection held its lock")?;
    let took = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let sent = canceller.await.context("cancel_async")?;
    ensure!(
        waited.code() == Some(&SqlState::QUERY_CANCELED),
        "the cancelled wait ended with {waited}"
    );
    ensure!(sent >= 1, "no cancel request was sent");
    holder
        .batch_execute("ROLLBACK")
        .await
        .context("holder rollback")?;
    holder.close().await.context("holder close")?;
    let n: i32 = client
        .query_one("SELECT 5::int4", &[])
        .await
        .context("query after the cancel")?
        .get(0);
    ensure!(
        n == 5 && client.backend_key().map(|(pid, _)| pid) == pid,
        "the session after the cancel gave {n}, backend {:?}",
        client.backend_key()
    );
    client
        .batch_execute("DROP TABLE wasi_lock")
        .await
        .context("drop lock table")?;
    println!(
        "cancel_async: lock wait ended with 57014 after {} ms ({sent} request(s)); session usable",
        took.as_millis()
    );
    Ok(())
}

/// A call abandoned by a timeout leaves the connection unusable; the next call opens
/// a new session with the same `Config` and applies the `set_param` settings again.
async fn reconnect(client: &mut AsyncClient) -> Result<(), Failure> {
    client
        .set_param("application_name", "wasi reconnect")
        .await
        .context("set_param")?;
    let old = client
        .prepare("SELECT 1::int4")
        .await
        .context("prepare before the reconnect")?;
    let pid = client.backend_key().map(|(pid, _)| pid);
    let abandoned = client
        .query("SELECT pg_sleep(0.5)", &[])
        .timeout(wstd::time::Duration::from(Duration::from_millis(50)))
        .await;
    ensure!(
        abandoned.is_err(),
        "the 0.5 s statement beat a 50 ms timeout"
    );
    ensure!(client.is_closed(), "an abandoned call left the client open");
    let name: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .context("query after the abandoned call")?
        .get(0);
    let new_pid = client.backend_key().map(|(pid, _)| pid);
    ensure!(
        name == "wasi reconnect" && new_pid != pid,
        "after the reconnect: application_name {name:?}, backend {new_pid:?} (was {pid:?})"
    );
    let stale = client
        .query(&old, &[])
        .await
        .err()
        .ok_or("a statement of the old session was accepted")?;
    ensure!(
        stale.kind() == ErrorKind::Usage,
        "old statement gave {stale}"
    );
    println!(
        "reconnect: new backend after an abandoned call, application_name {name:?} re-applied"
    );
    Ok(())
}
