//! pglite-client's `AsyncClient` beside tokio-postgres, against one native PostgreSQL
//! started for the run (pglite-testkit, default durability settings), on the same
//! single-threaded tokio runtime:
//!
//! - 10,000 round trips of a prepared `SELECT 1` (each value read),
//! - a 100,000-row streamed read (`query_raw` of a prepared statement, every value read),
//! - a 100,000-row `COPY … FROM STDIN` (text format, the same bytes for both).
//!
//! Prints, for each client, the median of several repetitions of the wall-clock time
//! and of the CPU time of the client's thread (everything the client does — for
//! tokio-postgres also its connection task — runs on that one thread; the server's
//! work is not included, and the CPU time is less disturbed by other load on the
//! machine), and the ratios (ours divided by theirs: below 1.00 means faster). `BENCH_REPS` sets the repetitions
//! (default 7); `BENCH_ONLY=read` (a part of a workload's name) runs only matching
//! workloads and `BENCH_CLIENT=ours` (or `theirs`) times only one client, e.g. for
//! profiling. Run: `cargo bench -p pglite-client --bench
//! vs_tokio_postgres`.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pglite_client::AsyncClient;
use pglite_testkit::NativePostgres;

const ROUND_TRIPS: usize = 10_000;
const ROWS: usize = 100_000;
const READ_SQL: &str = "SELECT id, name, score FROM bench_read";
const COPY_SQL: &str = "COPY bench_copy (id, name, score) FROM STDIN";

/// The same text-format COPY data for both clients.
fn copy_data() -> Vec<u8> {
    let mut data = Vec::with_capacity(ROWS * 24);
    for i in 0..ROWS {
        data.extend_from_slice(format!("{i}\tname {i}\t{}\n", i as f64 * 0.5).as_bytes());
    }
    data
}

/// What both clients compute from a row of the read.
fn row_value(row: &pglite_client::Row) -> i64 {
    let (id, name, score): (i32, &str, f64) = (row.get(0), row.get(1), row.get(2));
    i64::from(id) + name.len() as i64 + score as i64
}

struct Ours(AsyncClient);
struct Theirs(tokio_postgres::Client);

impl Ours {
    async fn select1(&mut self) -> i64 {
        let stmt = self.0.prepare("SELECT 1::int4").await.unwrap();
        let mut sum = 0i64;
        for _ in 0..ROUND_TRIPS {
            let rows = self.0.query(&stmt, &[]).await.unwrap();
            sum += i64::from(rows[0].get::<_, i32>(0));
        }
        sum
    }

    async fn read(&mut self) -> i64 {
        let stmt = self.0.prepare(READ_SQL).await.unwrap();
        let mut rows = self.0.query_raw(&stmt, &[]).await.unwrap();
        let mut sum = 0i64;
        while let Some(row) = rows.next().await {
            sum += row_value(&row.unwrap());
        }
        sum
    }

    async fn copy_in(&mut self, data: &[u8]) -> i64 {
        self.0.batch_execute("TRUNCATE bench_copy").await.unwrap();
        self.0.copy_in(COPY_SQL, data).await.unwrap() as i64
    }
}

impl Theirs {
    async fn select1(&mut self) -> i64 {
        let stmt = self.0.prepare("SELECT 1::int4").await.unwrap();
        let mut sum = 0i64;
        for _ in 0..ROUND_TRIPS {
            let rows = self.0.query(&stmt, &[]).await.unwrap();
            sum += i64::from(rows[0].get::<_, i32>(0));
        }
        sum
    }

    async fn read(&mut self) -> i64 {
        let stmt = self.0.prepare(READ_SQL).await.unwrap();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
        let rows = self.0.query_raw(&stmt, params).await.unwrap();
        let mut rows = pin!(rows);
        let mut sum = 0i64;
        while let Some(row) = rows.next().await {
            let row = row.unwrap();
            let (id, name, score): (i32, &str, f64) = (row.get(0), row.get(1), row.get(2));
            sum += i64::from(id) + name.len() as i64 + score as i64;
        }
        sum
    }

    async fn copy_in(&mut self, data: &[u8]) -> i64 {
        self.0.batch_execute("TRUNCATE bench_copy").await.unwrap();
        let sink = self.0.copy_in(COPY_SQL).await.unwrap();
        let mut sink = pin!(sink);
        for chunk in data.chunks(64 * 1024) {
            sink.send(bytes::Bytes::copy_from_slice(chunk))
                .await
                .unwrap();
        }
        sink.as_mut().finish().await.unwrap() as i64
    }
}

/// Wall-clock and thread CPU time of one run.
#[derive(Clone, Copy, Default)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

/// CPU time used by the calling thread so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times one run of `f`, returning its times and result.
async fn timed<F: Future<Output = i64>>(f: F) -> (Times, i64) {
    let (start, cpu) = (Instant::now(), thread_cpu());
    let result = f.await;
    let times = Times {
        wall: start.elapsed(),
        cpu: thread_cpu() - cpu,
    };
    (times, result)
}

fn median(runs: &[Times], part: fn(&Times) -> Duration) -> Duration {
    let mut v: Vec<Duration> = runs.iter().map(part).collect();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .map(|v| v.parse().expect("BENCH_REPS must be a number"))
        .unwrap_or(7);
    let pg = NativePostgres::builder()
        .prefix("pglite-client-bench-")
        .start()
        .unwrap_or_else(|e| panic!("cannot start the native PostgreSQL: {e}"));
    let url = pg.url("postgres", "postgres");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ours = Ours(AsyncClient::connect_url(&url).await.unwrap());
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut theirs = Theirs(client);
        ours.0
            .batch_execute(&format!(
                "CREATE TABLE bench_read AS SELECT g AS id, 'name ' || g AS name, \
                 g * 0.5::float8 AS score FROM generate_series(1, {ROWS}) g; \
                 CREATE TABLE bench_copy (id int4, name text, score float8)"
            ))
            .await
            .unwrap();
        ours.0
            .batch_execute("VACUUM ANALYZE bench_read")
            .await
            .unwrap();
        let data = copy_data();

        println!(
            "pglite-client AsyncClient vs tokio-postgres 0.7 — native PostgreSQL {} on 127.0.0.1, \
             current-thread tokio runtime, median of {reps} runs",
            pg.version()
        );
        println!(
            "100,000-row read: both clients' `query_raw` (rows streamed one at a time, \
             O(1) memory)."
        );
        println!();
        println!(
            "{:<30} {:>23} {:>23} {:>13}",
            "", "pglite-client", "tokio-postgres", "ratio"
        );
        println!(
            "{:<30} {:>11} {:>11} {:>11} {:>11} {:>6} {:>6}",
            "workload", "wall", "CPU", "wall", "CPU", "wall", "CPU"
        );

        type Bench = (&'static str, usize);
        let benches: [Bench; 3] = [
            ("10,000 × prepared SELECT 1", ROUND_TRIPS),
            ("100,000-row streamed read", ROWS),
            ("100,000-row COPY FROM STDIN", ROWS),
        ];
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let client_only = std::env::var("BENCH_CLIENT").unwrap_or_default();
        for (index, (name, per_run)) in benches.into_iter().enumerate() {
            if !name.contains(only.as_str()) {
                continue;
            }
            let mut mine = Vec::new();
            let mut base = Vec::new();
            // One warm-up run each, then alternate which client goes first.
            for rep in 0..=reps {
                let run_ours = async |ours: &mut Ours| match index {
                    _ if client_only == "theirs" => (Times::default(), 0),
                    0 => timed(ours.select1()).await,
                    1 => timed(ours.read()).await,
                    _ => timed(ours.copy_in(&data)).await,
                };
                let run_theirs = async |theirs: &mut Theirs| match index {
                    _ if client_only == "ours" => (Times::default(), 0),
                    0 => timed(theirs.select1()).await,
                    1 => timed(theirs.read()).await,
                    _ => timed(theirs.copy_in(&data)).await,
                };
                let ((a, ra), (b, rb)) = if rep % 2 == 0 {
                    let a = run_ours(&mut ours).await;
                    (a, run_theirs(&mut theirs).await)
                } else {
                    let b = run_theirs(&mut theirs).await;
                    (run_ours(&mut ours).await, b)
                };
                if client_only.is_empty() {
                    assert_eq!(ra, rb, "{name}: the clients disagree");
                }
                if rep > 0 {
                    mine.push(a);
                    base.push(b);
                }
            }
            let wall = |runs: &[Times]| median(runs, |t| t.wall);
            let cpu = |runs: &[Times]| median(runs, |t| t.cpu);
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            println!(
                "{:<30} {:>11} {:>11} {:>11} {:>11} {:>6.2} {:>6.2}   ({:.0} vs {:.0} per s)",
                name,
                ms(wall(&mine)),
                ms(cpu(&mine)),
                ms(wall(&base)),
                ms(cpu(&base)),
                ratio(wall(&mine), wall(&base)),
                ratio(cpu(&mine), cpu(&base)),
                per_run as f64 / wall(&mine).as_secs_f64(),
                per_run as f64 / wall(&base).as_secs_f64(),
            );
        }
    });
    pg.stop().unwrap();
}
