//! COPY in both directions through the server: psql, tokio-postgres, SQLx.

use std::process::Command;

use crate::support;

#[test]
fn psql_script_with_copy_describe_and_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(|b| b.socket_dir(dir.path()));
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    let rows: String = (1..=10_000)
        .map(|i| format!("{i},name {i},\"quoted, {i}\"\n"))
        .collect();
    std::fs::write(&input, &rows).unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text, note text);\n\
             \\copy items FROM '{}' WITH (FORMAT csv)\n\
             SELECT count(*) AS loaded FROM items;\n\
             \\copy (SELECT * FROM items ORDER BY id) TO '{}' WITH (FORMAT csv)\n\
             \\d items\n\
             BEGIN;\n\
             INSERT INTO items VALUES (10001, 'extra', NULL);\n\
             UPDATE items SET name = 'changed' WHERE id = 1;\n\
             COMMIT;\n\
             BEGIN;\n\
             DELETE FROM items;\n\
             ROLLBACK;\n\
             SELECT count(*) AS after FROM items;\n",
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script)
        .arg(server.url())
        .output()
        .expect("psql is installed (Debian package postgresql-client)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("COPY 10000") || stdout.contains("10000"),
        "{stdout}"
    );
    assert!(stdout.contains("Table \"public.items\""), "{stdout}");
    assert!(stdout.contains("10001"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), rows);
    // The same over the Unix socket.
    let socket = server.socket_path().unwrap();
    let out = Command::new("psql")
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-h",
        ])
        .arg(socket.parent().unwrap())
        .args(["-p", &server.local_addr().unwrap().port().to_string()])
        .args(["-c", "SELECT count(*) FROM items"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10001");
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_and_sqlx_copy() {
    use futures_util::{SinkExt, StreamExt};
    let server = support::start(|b| b);
    let (client, _) = support::tokio_pg(server.url()).await;
    client
        .batch_execute("CREATE TABLE c (id int, body text)")
        .await
        .unwrap();
    // copy_in, outside and inside a transaction.
    for round in 0..2 {
        if round == 1 {
            client.batch_execute("BEGIN").await.unwrap();
        }
        let sink = client
            .copy_in::<_, bytes::Bytes>("COPY c FROM STDIN")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        for chunk in 0..10 {
            let data: String = (0..1000)
                .map(|i| format!("{}\tline {i}\n", chunk * 1000 + i))
                .collect();
            sink.send(bytes::Bytes::from(data)).await.unwrap();
        }
        assert_eq!(sink.finish().await.unwrap(), 10_000);
        if round == 1 {
            client.batch_execute("COMMIT").await.unwrap();
        }
    }
    let stream = client
        .copy_out("COPY (SELECT * FROM c ORDER BY id LIMIT 5) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let text: String = chunks
        .into_iter()
        .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(text.lines().count(), 5);
    assert!(text.starts_with("0\tline 0\n"));
    // A COPY for a missing table fails cleanly before COPY mode. (tokio-postgres then
    // sends CopyFail + Sync and trips over the second ReadyForQuery, as it does
    // against PostgreSQL itself, so use a connection of its own.)
    let (doomed, _) = support::tokio_pg(server.url()).await;
    let err = doomed
        .copy_in::<_, bytes::Bytes>("COPY missing FROM STDIN")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().unwrap().code(), "42P01");
    // SQLx copy_in_raw.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server.url()).await.unwrap();
    let mut copy = conn
        .copy_in_raw("COPY c FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    copy.send(&b"50000,from sqlx\n50001,\"a, b\"\n"[..])
        .await
        .unwrap();
    assert_eq!(copy.finish().await.unwrap(), 2);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM c")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 20_002);
    // A COPY that the client aborts changes nothing.
    let mut copy = conn.copy_in_raw("COPY c FROM STDIN").await.unwrap();
    copy.send(&b"1\tx\n"[..]).await.unwrap();
    copy.abort("changed my mind").await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM c")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 20_002);
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    conn.close().await.unwrap();
    drop(client);
    server.stop().unwrap();
}
