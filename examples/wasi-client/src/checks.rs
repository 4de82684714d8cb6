//! The checks, in order; each prints what it verified.

use std::fmt::Display;
use std::time::{Duration, Instant};

use pglite_client::{AsyncClient, Client, SqlState};
use wstd::io::Cursor;

/// A failed check: what was being done and why it failed.
pub type Failure = String;

/// Adds what was being done to an error.
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Fails the run with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// One row of the test table.
struct Item {
    id: i32,
    name: &'static str,
    /// `numeric` travels as text on wasm32 (rust_decimal has no ToSql/FromSql there).
    price: &'static str,
    tags: Vec<String>,
    payload: Vec<u8>,
}

fn items() -> Vec<Item> {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        Item {
            id: 1,
            name: "apple",
            price: "1.20",
            tags: tags(&["fruit"]),
            payload: vec![0, 1, 2],
        },
        Item {
            id: 2,
            name: "bread",
            price: "3.50",
            tags: tags(&["bakery", "fresh"]),
            payload: vec![],
        },
        Item {
            id: 3,
            name: "skip",
            price: "9.99",
            tags: tags(&[]),
            payload: vec![255],
        },
        Item {
            id: 4,
            name: "cheese, \"aged\"",
            price: "15.75",
            tags: tags(&["dairy", "a,b"]),
            payload: b"\\x00".to_vec(),
        },
    ]
}

pub async fn run(url: &str) -> Result<(), Failure> {
    let mut client = AsyncClient::connect_url(url).await.context("connect")?;
    println!(
        "connected: server_version {}, backend pid {:?}",
        client.parameter("server_version").unwrap_or("?"),
        client.backend_key().map(|(pid, _)| pid)
    );

    client
        .batch_execute(
            "DROP TABLE IF EXISTS wasi_items;
             CREATE TABLE wasi_items (id int4 PRIMARY KEY, name text NOT NULL,
                                      price numeric(10,2), tags text[], payload bytea)",
        )
        .await
        .context("create table")?;
    println!("created table wasi_items");

    let items = items();
    let mut tx = client.transaction().await.context("begin")?;
    for item in &items {
        let n = tx
            .execute(
                "INSERT INTO wasi_items VALUES ($1, $2, $3, $4, $5)",
                &[&item.id, &item.name, &item.price, &item.tags, &item.payload],
            )
            .await
            .context("insert")?;
        ensure!(n == 1, "insert of id {} reported {n} rows", item.id);
    }
    tx.commit().await.context("commit")?;
    println!("inserted {} rows in a transaction", items.len());

    let rows = client
        .query(
            "SELECT id, name, price, tags, payload FROM wasi_items
             WHERE price >= $1 AND name <> $2 ORDER BY id",
            &[&"1.50", &"skip"],
        )
        .await
        .context("select with parameters")?;
    let expected: Vec<&Item> = items.iter().filter(|i| i.id == 2 || i.id == 4).collect();
    ensure!(
        rows.len() == expected.len(),
        "select returned {} rows, expected 2",
        rows.len()
    );
    for (row, item) in rows.iter().zip(&expected) {
        let id: i32 = row.get("id");
        let name: &str = row.get("name");
        let price: String = row.get("price");
        let tags: Vec<String> = row.get("tags");
        let payload: Vec<u8> = row.get("payload");
        ensure!(
            id == item.id
                && name == item.name
                && price == item.price
                && tags == item.tags
                && payload == item.payload,
            "row {id} came back as ({name:?}, {price}, {tags:?}, {payload:?})"
        );
    }
    println!(
        "select with parameters: {} rows, ids {:?}, names {:?}",
        rows.len(),
        rows.iter()
            .map(|r| r.get::<_, i32>("id"))
            .collect::<Vec<_>>(),
        rows.iter()
            .map(|r| r.get::<_, String>("name"))
            .collect::<Vec<_>>()
    );

    let row = client
        .query_one(
            "SELECT $1::int8 * 2 AS doubled, upper($2) AS shout, $3::float8 / 4 AS quarter",
            &[&21i64, &"wasi", &2.0f64],
        )
        .await
        .context("query_one")?;
    let (doubled, shout, quarter): (i64, String, f64) =
        (row.get("doubled"), row.get("shout"), row.get("quarter"));
    ensure!(
        doubled == 42 && shout == "WASI" && quarter == 0.5,
        "query_one gave ({doubled}, {shout:?}, {quarter})"
    );
    println!("query_one: {doubled} {shout} {quarter}");

    let error = client
        .query_one("SELECT 1 / $1::int4", &[&0i32])
        .await
        .err()
        .ok_or("division by zero did not fail")?;
    ensure!(
        error.code() == Some(&SqlState::DIVISION_BY_ZERO),
        "division by zero gave {error}"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM wasi_items", &[])
        .await
        .context("query after an error")?
        .get(0);
    ensure!(count == 4, "count after the error is {count}");
    println!(
        "error recovery: SQLSTATE {} then count = {count}",
        SqlState::DIVISION_BY_ZERO.code()
    );

    let csv = "10,copied one,1.00\n11,\"copied, two\",2.00\n";
    let copied = client
        .copy_in(
            "COPY wasi_items (id, name, price) FROM STDIN (FORMAT csv)",
            Cursor::new(csv.as_bytes()),
        )
        .await
        .context("copy_in")?;
    ensure!(copied == 2, "copy_in copied {copied} rows");
    let mut out = Vec::new();
    let copied = client
        .copy_out(
            "COPY (SELECT id, name, price FROM wasi_items WHERE id >= 10 ORDER BY id) \
             TO STDOUT (FORMAT csv)",
            Cursor::new(&mut out),
        )
        .await
        .context("copy_out")?;
    ensure!(
        copied == 2 && out == csv.as_bytes(),
        "copy_out gave {copied} rows: {:?}",
        String::from_utf8_lossy(&out)
    );
    println!("copy in/out: {copied} rows round-tripped");

    let start = Instant::now();
    for i in 0..200i32 {
        let echoed: i32 = client
            .query_one("SELECT $1::int4 AS echoed", &[&i])
            .await
            .context("round trip")?
            .get(0);
        ensure!(echoed == i, "round trip {i} came back as {echoed}");
    }
    println!(
        "200 round trips of one cached statement: {} µs each",
        start.elapsed().as_micros() / 200
    );

    crate::features::run(&mut client, url).await?;
    notifications(&mut client, url).await?;
    blocking_client(&mut client, url).await?;

    client
        .batch_execute("DROP TABLE wasi_items")
        .await
        .context("drop table")?;
    client.close().await.context("close")?;
    Ok(())
}

/// LISTEN/NOTIFY on the async client: a timeout, a notification from itself, and one
/// sent by a second connection from a concurrent task while this one waits.
async fn notifications(client: &mut AsyncClient, url: &str) -> Result<(), Failure> {
    client
        .batch_execute("LISTEN wasi_events")
        .await
        .context("listen")?;

    let start = Instant::now();
    let nothing = client
        .wait_for_notification(Duration::from_millis(200))
        .await
        .context("wait_for_notification (timeout)")?;
    let waited = start.elapsed();
    ensure!(nothing.is_none(), "unexpected notification {nothing:?}");
    ensure!(
        waited >= Duration::from_millis(190),
        "a 200 ms wait returned after {waited:?}"
    );
    println!(
        "wait_for_notification: none within 200 ms (waited {} ms)",
        waited.as_millis()
    );

    client
        .execute("SELECT pg_notify('wasi_events', $1)", &[&"from myself"])
        .await
        .context("notify myself")?;
    let own = client
        .wait_for_notification(Duration::from_secs(5))
        .await
        .context("wait for own notification")?
        .ok_or("own notification missing")?;
    ensure!(
        own.channel() == "wasi_events" && own.payload() == "from myself",
        "own notification was {own:?}"
    );
    println!(
        "notification from myself: {} {:?}",
        own.channel(),
        own.payload()
    );

    let mut other = AsyncClient::connect_url(url)
        .await
        .context("second connection")?;
    let sender = wstd::runtime::spawn(async move {
        wstd::task::sleep(Duration::from_millis(300).into()).await;
        other
            .execute(
                "SELECT pg_notify('wasi_events', $1)",
                &[&"from another task"],
            )
            .await?;
        other.close().await
    });
    let start = Instant::now();
    let received = client
        .wait_for_notification(Duration::from_secs(10))
        .await
        .context("wait for the other connection's notification")?
        .ok_or("no notification from the other connection within 10 s")?;
    let waited = start.elapsed();
    sender.await.context("the notifying task")?;
    ensure!(
        received.channel() == "wasi_events" && received.payload() == "from another task",
        "received {received:?}"
    );
    ensure!(
        waited >= Duration::from_millis(250),
        "the notification sent after 300 ms arrived after {waited:?}"
    );
    println!(
        "notification from another connection: {:?} after {} ms of waiting",
        received.payload(),
        waited.as_millis()
    );
    Ok(())
}

/// The blocking client over `std::net` (wasi-libc sockets) works on wasm32-wasip2 too.
async fn blocking_client(client: &mut AsyncClient, url: &str) -> Result<(), Failure> {
    let mut blocking = Client::connect_url(url).context("blocking connect")?;
    let row = blocking
        .query_one("SELECT name FROM wasi_items WHERE id = $1", &[&2i32])
        .context("blocking query")?;
    let name: String = row.get(0);
    ensure!(name == "bread", "blocking query gave {name:?}");
    blocking
        .batch_execute("LISTEN wasi_blocking")
        .context("blocking listen")?;
    let start = Instant::now();
    let nothing = blocking
        .wait_for_notification(Duration::from_millis(200))
        .context("blocking wait (timeout)")?;
    let waited = start.elapsed();
    ensure!(
        nothing.is_none() && waited >= Duration::from_millis(190),
        "blocking 200 ms wait gave {nothing:?} after {waited:?}"
    );
    client
        .execute(
            "SELECT pg_notify('wasi_blocking', $1)",
            &[&"to the blocking client"],
        )
        .await
        .context("notify the blocking client")?;
    let received = blocking
        .wait_for_notification(Duration::from_secs(5))
        .context("blocking wait")?
        .ok_or("the blocking client got no notification within 5 s")?;
    ensure!(
        received.payload() == "to the blocking client",
        "blocking client received {received:?}"
    );
    blocking.close().context("blocking close")?;
    println!("blocking client (std::net): query, LISTEN, timeout and notification ok");
    Ok(())
}
