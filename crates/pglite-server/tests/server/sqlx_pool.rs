//! SQLx with a pool of 8 connections moving money between accounts.

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_connections_move_money_and_preserve_the_total() {
    let server = support::start(|b| b);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .min_connections(8)
        .connect(server.url())
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TABLE transfers (id bigserial PRIMARY KEY, task int, src int, dst int, amount int)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 10) g")
        .execute(&pool)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for task in 0..8i32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut moved = 0;
            for i in 0..200i32 {
                let src = (task * 7 + i) % 10 + 1;
                let dst = (task * 3 + i * 5 + 1) % 10 + 1;
                let dst = if dst == src { src % 10 + 1 } else { dst };
                let amount = (i % 50) + 1;
                let mut tx = pool.begin().await.unwrap();
                let balance: i32 =
                    sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE")
                        .bind(src)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                let amount = amount.min(balance);
                sqlx::query("UPDATE accounts SET balance = balance - $2 WHERE id = $1")
                    .bind(src)
                    .bind(amount)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("UPDATE accounts SET balance = balance + $2 WHERE id = $1")
                    .bind(dst)
                    .bind(amount)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO transfers (task, src, dst, amount) VALUES ($1, $2, $3, $4)",
                )
                .bind(task)
                .bind(src)
                .bind(dst)
                .bind(amount)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                moved += amount as i64;
            }
            moved
        }));
    }
    let mut moved = 0i64;
    for t in tasks {
        moved += t.await.unwrap();
    }
    eprintln!("1600 transactions in {:?}", started.elapsed());
    let total: i64 = sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 10_000);
    let (count, sum): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), sum(amount)::bigint FROM transfers")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 1600);
    assert_eq!(sum.unwrap_or(0), moved);
    for task in 0..8 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE task = $1")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 200);
    }
    pool.close().await;
    server.stop().unwrap();
}
