//! The spin budget (`ServerBuilder::spin`): off, and long enough that every request
//! of a busy client arrives while its connection's thread is still polling.

use std::time::Duration;

use crate::support;

/// Three clients at once, each mixing simple queries, prepared statements and a
/// transaction, so requests arrive both while threads spin on their sockets and while
/// they spin in the queue for the engine.
async fn three_clients(url: &str) {
    let mut tasks = Vec::new();
    for c in 0..3i32 {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut client, _) = support::tokio_pg(&url).await;
            let stmt = client.prepare("select $1::int4 * 2").await.unwrap();
            for i in 0..150i32 {
                let n = c * 1000 + i;
                let row = client.query_one(&stmt, &[&n]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), n * 2);
                let rows = client
                    .simple_query(&format!("select {n} + 1"))
                    .await
                    .unwrap();
                let value = rows.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                });
                assert_eq!(value, Some((n + 1).to_string()));
            }
            let tx = client.transaction().await.unwrap();
            let row = tx.query_one("select $1::int4", &[&c]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), c);
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Start a server with spin budget `budget`, run [`three_clients`] on it, stop it.
async fn three_clients_with_spin(budget: Duration) {
    let server = tokio::task::spawn_blocking(move || support::start(|b| b.spin(budget)))
        .await
        .unwrap();
    three_clients(server.url()).await;
    tokio::task::spawn_blocking(move || server.stop().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn spinning_off_serves_every_client() {
    three_clients_with_spin(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_long_spin_serves_every_client() {
    // 200 ms: every request of these clients arrives while the thread still polls.
    three_clients_with_spin(Duration::from_millis(200)).await;
}
