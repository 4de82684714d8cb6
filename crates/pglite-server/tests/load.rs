//! Load test (issue 3): 50 tokio-postgres clients run a mixed, self-checking workload
//! against a pglite server (in-process, temporary database, the same code as
//! `pglite serve`) for a bounded time, then the same workload against a native
//! PostgreSQL started by `pglite-testkit`, and print throughput and latency side by
//! side.
//!
//! Duration: `PGLITE_LOAD_SECONDS` (default 60) for pglite; the native run takes half
//! of that (at least 1 s) — its figures are rates and percentiles, so the shorter run
//! only saves time.
//!
//! ```text
//! cargo test -p pglite-server --test load -- --nocapture
//! PGLITE_LOAD_SECONDS=10 cargo test --release -p pglite-server --test load -- --nocapture
//! ```
//!
//! Every result is checked. Each client owns a key range of `load_kv` and keeps the
//! state it expects in memory; every read (point or whole range) must match it
//! exactly, also inside transactions. A counter table gets increments in autocommit
//! statements and in explicit transactions; at the end its total must equal the
//! increments that committed. Some transactions roll back (their writes and
//! increments must vanish); some statements fail on purpose with a unique violation
//! (23505), alone or inside a transaction (which then must be rolled back). Any other
//! error, any wrong value, or a server that does not answer afterwards fails the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

const CLIENTS: usize = 50;
/// Keys owned by each client.
const KEYS: i32 = 20;
/// Rows of the counter table (shared by all clients).
const COUNTERS: i32 = 10;

/// What one client did and saw.
#[derive(Default)]
struct Tally {
    /// Transactions (each operation below is one) that completed as intended.
    transactions: u64,
    latencies: Vec<Duration>,
    reads: u64,
    writes: u64,
    explicit_commits: u64,
    rollbacks: u64,
    /// 23505 on purpose.
    expected_errors: u64,
    /// Counter increments that committed.
    increments: u64,
    /// Wrong results (values that differ from what the client expects).
    wrong: Vec<String>,
    /// Errors that were not expected.
    errors: Vec<String>,
}

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Statements {
    get: Statement,
    range: Statement,
    upsert: Statement,
    insert: Statement,
    add: Statement,
    delete: Statement,
    incr: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            get: client
                .prepare("SELECT v, note FROM load_kv WHERE k = $1")
                .await?,
            range: client
                .prepare("SELECT k, v, note FROM load_kv WHERE owner = $1 ORDER BY k")
                .await?,
            upsert: client
                .prepare(
                    "INSERT INTO load_kv (k, owner, v, note) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, note = EXCLUDED.note",
                )
                .await?,
            insert: client
                .prepare("INSERT INTO load_kv (k, owner, v, note) VALUES ($1, $2, $3, $4)")
                .await?,
            add: client
                .prepare("UPDATE load_kv SET v = v + $2, note = $3 WHERE k = $1 RETURNING v")
                .await?,
            delete: client.prepare("DELETE FROM load_kv WHERE k = $1").await?,
            incr: client
                .prepare("UPDATE load_counter SET n = n + 1 WHERE id = $1")
                .await?,
        })
    }
}

/// The text stored with a value, so that reads check two columns.
fn note(key: i32, v: i64) -> String {
    format!("k{key}:v{v}")
}

/// One client: its keys are `id * KEYS .. (id + 1) * KEYS`.
struct Worker {
    id: i32,
    client: Client,
    st: Statements,
    rng: Rng,
    /// Expected value of each owned key (None: no row).
    expected: Vec<Option<i64>>,
    tally: Tally,
}

/// Outcome of one operation: Ok when it ran (wrong values are recorded in the tally),
/// Err for an error the workload did not expect.
type Outcome = Result<(), tokio_postgres::Error>;

impl Worker {
    fn key(&self, local: usize) -> i32 {
        self.id * KEYS + local as i32
    }

    fn wrong(&mut self, what: String) {
        if self.tally.wrong.len() < 20 {
            self.tally.wrong.push(format!("client {}: {what}", self.id));
        }
    }

    async fn read_one(&mut self, local: usize) -> Outcome {
        let k = self.key(local);
        let rows = self.client.query(&self.st.get, &[&k]).await?;
        let got = rows
            .first()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
        let want = self.expected[local].map(|v| (v, note(k, v)));
        if got != want {
            self.wrong(format!("key {k}: read {got:?}, expected {want:?}"));
        }
        self.tally.reads += 1;
        Ok(())
    }

    /// Read every owned key and compare with the expected state.
    async fn read_range(&mut self) -> Outcome {
        let rows = self.client.query(&self.st.range, &[&self.id]).await?;
        let got: BTreeMap<i32, (i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let want: BTreeMap<i32, (i64, String)> = (0..KEYS as usize)
            .filter_map(|l| {
                let k = self.key(l);
                self.expected[l].map(|v| (k, (v, note(k, v))))
            })
            .collect();
        if got != want {
            self.wrong(format!("range read: got {got:?}, expected {want:?}"));
        }
        self.tally.reads += 1;
        Ok(())
    }

    async fn upsert(&mut self, local: usize) -> Outcome {
        let k = self.key(local);
        let v = (self.rng.next() >> 16) as i64;
        let n = self
            .client
            .execute(&self.st.upsert, &[&k, &self.id, &v, &note(k, v)])
            .await?;
        if n != 1 {
            self.wrong(format!("upsert of key {k} affected {n} rows"));
        }
        self.expected[local] = Some(v);
        self.tally.writes += 1;
        Ok(())
    }

    async fn delete(&mut self, local: usize) -> Outcome {
        let k = self.key(local);
        let n = self.client.execute(&self.st.delete, &[&k]).await?;
        let want = u64::from(self.expected[local].is_some());
        if n != want {
            self.wrong(format!(
                "delete of key {k} affected {n} rows, expected {want}"
            ));
        }
        self.expected[local] = None;
        self.tally.writes += 1;
        Ok(())
    }

    async fn increment(&mut self) -> Outcome {
        let c = self.rng.below(COUNTERS as u64) as i32;
        let n = self.client.execute(&self.st.incr, &[&c]).await?;
        if n != 1 {
            self.wrong(format!("increment of counter {c} affected {n} rows"));
        }
        self.tally.increments += n;
        self.tally.writes += 1;
        Ok(())
    }

    /// BEGIN; write two keys (add to an existing one, or create it); increment a
    /// counter; read both back; COMMIT.
    async fn transfer_commit(&mut self) -> Outcome {
        let a = self.rng.below(KEYS as u64) as usize;
        let b = (a + 1 + self.rng.below(KEYS as u64 - 1) as usize) % KEYS as usize;
        let delta = self.rng.below(1000) as i64 + 1;
        let c = self.rng.below(COUNTERS as u64) as i32;
        let mut new = self.expected.clone();
        let mut problems = Vec::new();
        let tx = self.client.transaction().await?;
        for (local, d) in [(a, delta), (b, -delta)] {
            let k = self.id * KEYS + local as i32;
            match new[local] {
                Some(v) => {
                    let v = v + d;
                    let rows = tx.query(&self.st.add, &[&k, &d, &note(k, v)]).await?;
                    let got = rows.first().map(|r| r.get::<_, i64>(0));
                    if got != Some(v) {
                        problems.push(format!("add to key {k} returned {got:?}, expected {v}"));
                    }
                    new[local] = Some(v);
                }
                None => {
                    let n = tx
                        .execute(&self.st.upsert, &[&k, &self.id, &d, &note(k, d)])
                        .await?;
                    if n != 1 {
                        problems.push(format!("create of key {k} affected {n} rows"));
                    }
                    new[local] = Some(d);
                }
            }
        }
        let n = tx.execute(&self.st.incr, &[&c]).await?;
        for local in [a, b] {
            let k = self.id * KEYS + local as i32;
            let rows = tx.query(&self.st.get, &[&k]).await?;
            let got = rows.first().map(|r| r.get::<_, i64>(0));
            if got != new[local] {
                problems.push(format!(
                    "key {k} inside a transaction: {got:?}, expected {:?}",
                    new[local]
                ));
            }
        }
        tx.commit().await?;
        for p in problems {
            self.wrong(p);
        }
        if n != 1 {
            self.wrong(format!("increment of counter {c} affected {n} rows"));
        }
        self.expected = new;
        self.tally.increments += n;
        self.tally.explicit_commits += 1;
        self.tally.writes += 1;
        Ok(())
    }

    /// BEGIN; change a key; increment a counter; see the change; ROLLBACK — then
    /// nothing of it may remain.
    async fn change_and_roll_back(&mut self) -> Outcome {
        let local = self.rng.below(KEYS as u64) as usize;
        let k = self.key(local);
        let v = -((self.rng.next() >> 20) as i64) - 1;
        let c = self.rng.below(COUNTERS as u64) as i32;
        let mut problems = Vec::new();
        let tx = self.client.transaction().await?;
        tx.execute(&self.st.upsert, &[&k, &self.id, &v, &note(k, v)])
            .await?;
        tx.execute(&self.st.incr, &[&c]).await?;
        let rows = tx.query(&self.st.get, &[&k]).await?;
        let got = rows.first().map(|r| r.get::<_, i64>(0));
        if got != Some(v) {
            problems.push(format!(
                "key {k} inside a transaction: {got:?}, expected {v}"
            ));
        }
        tx.rollback().await?;
        for p in problems {
            self.wrong(p);
        }
        self.tally.rollbacks += 1;
        // The next read of this key (sometimes right now) must show the old value.
        if self.rng.below(2) == 0 {
            self.read_one(local).await?;
        }
        Ok(())
    }

    /// A duplicate key on purpose: alone (autocommit), or inside a transaction after
    /// a write, where the transaction is then aborted (25P02) and rolled back.
    async fn duplicate(&mut self) -> Outcome {
        let local = self.rng.below(KEYS as u64) as usize;
        if self.expected[local].is_none() {
            self.upsert(local).await?;
        }
        let k = self.key(local);
        let v = 7;
        let in_transaction = self.rng.below(2) == 0;
        if !in_transaction {
            let result = self
                .client
                .execute(&self.st.insert, &[&k, &self.id, &v, &note(k, v)])
                .await;
            self.expect_code(result.map(drop), &SqlState::UNIQUE_VIOLATION, k)?;
            return Ok(());
        }
        let other = (local + 1) % KEYS as usize;
        let ko = self.key(other);
        let tx = self.client.transaction().await?;
        tx.execute(&self.st.upsert, &[&ko, &self.id, &v, &note(ko, v)])
            .await?;
        let result = tx
            .execute(&self.st.insert, &[&k, &self.id, &v, &note(k, v)])
            .await;
        let dup = result.map(drop);
        let after = tx.query(&self.st.get, &[&ko]).await.map(drop);
        tx.rollback().await?;
        self.expect_code(dup, &SqlState::UNIQUE_VIOLATION, k)?;
        self.expect_code(after, &SqlState::IN_FAILED_SQL_TRANSACTION, ko)?;
        self.tally.rollbacks += 1;
        Ok(())
    }

    /// `result` must be the error `code`; the error counts as expected.
    fn expect_code(&mut self, result: Outcome, code: &SqlState, k: i32) -> Outcome {
        match result {
            Ok(()) => {
                self.wrong(format!(
                    "key {k}: succeeded, expected error {}",
                    code.code()
                ));
                Ok(())
            }
            Err(e) if e.code() == Some(code) => {
                self.tally.expected_errors += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn step(&mut self) -> Outcome {
        let local = self.rng.below(KEYS as u64) as usize;
        match self.rng.below(100) {
            0..30 => self.read_one(local).await,
            30..38 => self.read_range().await,
            38..53 => self.upsert(local).await,
            53..58 => self.delete(local).await,
            58..68 => self.increment().await,
            68..85 => self.transfer_commit().await,
            85..93 => self.change_and_roll_back().await,
            _ => self.duplicate().await,
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn setup(url: &str) {
    let client = connect(url).await;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS load_kv, load_counter;
             CREATE TABLE load_kv (k int PRIMARY KEY, owner int NOT NULL, v bigint NOT NULL,
                                   note text NOT NULL);
             CREATE INDEX ON load_kv (owner);
             CREATE TABLE load_counter (id int PRIMARY KEY, n bigint NOT NULL);
             INSERT INTO load_counter SELECT g, 0 FROM generate_series(0, {}) g;",
            COUNTERS - 1
        ))
        .await
        .unwrap();
}

/// Figures of one run.
struct Report {
    name: &'static str,
    seconds: f64,
    tally: Tally,
    /// What the final checks found wrong.
    final_problems: Vec<String>,
}

impl Report {
    fn tps(&self) -> f64 {
        self.tally.transactions as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> Duration {
        let l = &self.tally.latencies;
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i]
    }
}

/// Run the workload with `CLIENTS` clients for `duration`, then check the totals.
async fn run(name: &'static str, url: &str, duration: Duration) -> Report {
    setup(url).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS as i32 {
        let url = url.to_string();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let client = connect(&url).await;
            let st = Statements::prepare(&client).await.unwrap();
            let mut w = Worker {
                id,
                client,
                st,
                rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0x1000_0001)),
                expected: vec![None; KEYS as usize],
                tally: Tally::default(),
            };
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                let start = Instant::now();
                match w.step().await {
                    Ok(()) => {
                        w.tally.latencies.push(start.elapsed());
                        w.tally.transactions += 1;
                    }
                    Err(e) => {
                        let closed = w.client.is_closed();
                        if w.tally.errors.len() < 20 {
                            w.tally.errors.push(format!("client {id}: {e:?}"));
                        }
                        if closed {
                            break;
                        }
                    }
                }
            }
            // The final state of this client's keys.
            if !w.client.is_closed()
                && let Err(e) = w.read_range().await
            {
                w.tally
                    .errors
                    .push(format!("client {id}: final read: {e:?}"));
            }
            (w.tally, w.expected.iter().filter(|v| v.is_some()).count())
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut rows_expected = 0;
    for task in tasks {
        let (t, rows) = task.await.expect("client task panicked");
        tally.transactions += t.transactions;
        tally.latencies.extend(t.latencies);
        tally.reads += t.reads;
        tally.writes += t.writes;
        tally.explicit_commits += t.explicit_commits;
        tally.rollbacks += t.rollbacks;
        tally.expected_errors += t.expected_errors;
        tally.increments += t.increments;
        tally.wrong.extend(t.wrong);
        tally.errors.extend(t.errors);
        rows_expected += rows;
    }
    let seconds = started.elapsed().as_secs_f64();
    tally.latencies.sort_unstable();

    // The server still answers, and the totals add up.
    let mut final_problems = Vec::new();
    let client = connect(url).await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let total: i64 = client
        .query_one("SELECT sum(n)::bigint FROM load_counter", &[])
        .await
        .unwrap()
        .get(0);
    if total as u64 != tally.increments {
        final_problems.push(format!(
            "counter total {total}, but {} increments committed",
            tally.increments
        ));
    }
    let rows: i64 = client
        .query_one("SELECT count(*) FROM load_kv", &[])
        .await
        .unwrap()
        .get(0);
    if rows as usize != rows_expected {
        final_problems.push(format!("load_kv has {rows} rows, expected {rows_expected}"));
    }
    Report {
        name,
        seconds,
        tally,
        final_problems,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_reports(pglite: &Report, native: &Report, native_version: &str) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "load test: {CLIENTS} tokio-postgres clients on loopback TCP, {cpus} CPUs; \
         mixed workload (30% point reads, 8% range reads, 20% autocommit writes, \
         10% counter increments, 17% explicit transactions, 8% rollbacks, 7% duplicate-key errors)"
    );
    println!("native: PostgreSQL {native_version}, default durability (fsync on)");
    let rows: Vec<(&str, String, String, String)> = vec![
        (
            "duration",
            format!("{:.1} s", pglite.seconds),
            format!("{:.1} s", native.seconds),
            String::new(),
        ),
        (
            "transactions",
            pglite.tally.transactions.to_string(),
            native.tally.transactions.to_string(),
            String::new(),
        ),
        (
            "throughput",
            format!("{:.0} tx/s", pglite.tps()),
            format!("{:.0} tx/s", native.tps()),
            format!("{:.2}×", pglite.tps() / native.tps()),
        ),
        (
            "latency p50",
            ms(pglite.percentile(0.50)),
            ms(native.percentile(0.50)),
            format!(
                "{:.2}×",
                pglite.percentile(0.50).as_secs_f64() / native.percentile(0.50).as_secs_f64()
            ),
        ),
        (
            "latency p99",
            ms(pglite.percentile(0.99)),
            ms(native.percentile(0.99)),
            format!(
                "{:.2}×",
                pglite.percentile(0.99).as_secs_f64() / native.percentile(0.99).as_secs_f64()
            ),
        ),
        (
            "latency max",
            ms(pglite.percentile(1.0)),
            ms(native.percentile(1.0)),
            String::new(),
        ),
        (
            "reads / writes",
            format!("{} / {}", pglite.tally.reads, pglite.tally.writes),
            format!("{} / {}", native.tally.reads, native.tally.writes),
            String::new(),
        ),
        (
            "commits (explicit) / rollbacks",
            format!(
                "{} / {}",
                pglite.tally.explicit_commits, pglite.tally.rollbacks
            ),
            format!(
                "{} / {}",
                native.tally.explicit_commits, native.tally.rollbacks
            ),
            String::new(),
        ),
        (
            "counter increments committed",
            pglite.tally.increments.to_string(),
            native.tally.increments.to_string(),
            String::new(),
        ),
        (
            "expected errors (23505, 25P02)",
            pglite.tally.expected_errors.to_string(),
            native.tally.expected_errors.to_string(),
            String::new(),
        ),
        (
            "wrong results",
            (pglite.tally.wrong.len() + pglite.final_problems.len()).to_string(),
            (native.tally.wrong.len() + native.final_problems.len()).to_string(),
            String::new(),
        ),
        (
            "unexpected errors",
            pglite.tally.errors.len().to_string(),
            native.tally.errors.len().to_string(),
            String::new(),
        ),
    ];
    println!(
        "{:<32} {:>14} {:>14} {:>8}",
        "", pglite.name, native.name, "ratio"
    );
    for (label, a, b, ratio) in rows {
        println!("{label:<32} {a:>14} {b:>14} {ratio:>8}");
    }
    println!("(ratio = pglite / native; a transaction is one operation of the mix)");
    println!();
}

fn assert_clean(report: &Report) {
    let t = &report.tally;
    assert!(
        t.wrong.is_empty() && report.final_problems.is_empty(),
        "{}: wrong results: {:#?} {:#?}",
        report.name,
        t.wrong,
        report.final_problems
    );
    assert!(
        t.errors.is_empty(),
        "{}: unexpected errors: {:#?}",
        report.name,
        t.errors
    );
    assert!(t.transactions > 0, "{}: nothing ran", report.name);
    assert!(t.expected_errors > 0 && t.rollbacks > 0 && t.explicit_commits > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_mixed_load_against_pglite_and_native() {
    let seconds: f64 = std::env::var("PGLITE_LOAD_SECONDS")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("PGLITE_LOAD_SECONDS={s:?} is not a number"))
        })
        .unwrap_or(60.0);
    let duration = Duration::from_secs_f64(seconds);
    let native_duration = Duration::from_secs_f64((seconds / 2.0).max(1.0).min(seconds));

    // pglite: what `pglite serve --temporary` runs, in this process.
    let server = tokio::task::spawn_blocking(|| {
        pglite_server::Server::builder()
            .temporary()
            .listen("127.0.0.1:0".parse().unwrap())
            .max_connections(CLIENTS + 10)
            .build()
            .unwrap()
            .spawn()
            .unwrap()
    })
    .await
    .unwrap();
    let url = server.url().to_string();
    eprintln!("load: pglite at {url} for {seconds} s");
    let pglite = run("pglite", &url, duration).await;
    tokio::task::spawn_blocking(move || server.stop().unwrap())
        .await
        .unwrap();

    // Native PostgreSQL, same workload.
    let native_server = tokio::task::spawn_blocking(|| {
        pglite_testkit::NativePostgres::builder()
            .prefix("pglite-load-native-")
            .start()
            .unwrap_or_else(|e| panic!("{e}"))
    })
    .await
    .unwrap();
    let native_url = native_server.url("postgres", "postgres");
    eprintln!(
        "load: native PostgreSQL {} at {native_url} for {:.1} s",
        native_server.version(),
        native_duration.as_secs_f64()
    );
    let native = run("native", &native_url, native_duration).await;
    let version = native_server.version().to_string();
    tokio::task::spawn_blocking(move || native_server.stop().unwrap())
        .await
        .unwrap();

    print_reports(&pglite, &native, &version);
    assert_clean(&pglite);
    assert_clean(&native);
}
