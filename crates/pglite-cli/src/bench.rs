//! `pglite bench`: start-up, round-trip, insert and memory figures in one run, each
//! beside the project's target and, when a native PostgreSQL is installed, the same
//! workload against it over TCP.
//!
//! Figures are [`Metric`]s with a stable key; targets are data ([`TARGETS`]), looked up
//! by issue number and key, so new workloads (the speed suite, a server over TCP) are
//! new metrics and new target rows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pglite::client::{Client, StartupConfig, TcpTransport};
use pglite::{Error, Pglite, Row, SimpleResult, Statement, ToSql};
use pglite_testkit::NativePostgres;
use serde_json::json;

/// Options of `pglite bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Also write the figures as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Check the targets of this issue: 2 (the engine) or 5 (performance).
    #[arg(long, default_value = "2", value_parser = ["2", "5"])]
    targets: String,
    /// Skip the cold start (a child process that compiles the module from scratch).
    #[arg(long)]
    no_cold: bool,
    /// Skip the native PostgreSQL baseline.
    #[arg(long)]
    no_native: bool,
    /// Directory with a native PostgreSQL's `postgres`, `initdb` and `pg_ctl`
    /// [default: $PGLITE_NATIVE_BIN, else the newest /usr/lib/postgresql/*/bin].
    #[arg(long, value_name = "DIR")]
    native_bin: Option<PathBuf>,
}

/// Round trips timed one by one for the `SELECT 1` medians.
const ROUND_TRIPS: usize = 2_000;
/// Untimed round trips before those.
const WARMUP: usize = 200;
/// Rows in the prepared-INSERT workload.
const INSERTS: usize = 25_000;
/// Runs of the INSERT workload (the median is reported).
const INSERT_RUNS: usize = 3;
/// `Pglite::temporary()` + first query samples.
const TEMPORARY_RUNS: usize = 20;
/// In-process warm opens.
const WARM_OPENS: usize = 10;
/// Warm opens in a new process.
const PROCESS_OPENS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    Millis,
    Micros,
    Megabytes,
}

impl Unit {
    fn symbol(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Millis => "ms",
            Unit::Micros => "µs",
            Unit::Megabytes => "MB",
        }
    }

    fn of(self, d: Duration) -> f64 {
        let s = d.as_secs_f64();
        match self {
            Unit::Seconds => s,
            Unit::Millis => s * 1e3,
            Unit::Micros => s * 1e6,
            Unit::Megabytes => unreachable!("not a duration"),
        }
    }
}

/// One figure (lower is better).
struct Metric {
    key: &'static str,
    label: String,
    unit: Unit,
    value: f64,
    native: Option<f64>,
    /// How it was measured, e.g. "median of 20".
    note: String,
}

/// A limit (must) and optional goal for a metric, from an issue's "Must show".
struct Target {
    issue: u32,
    key: &'static str,
    limit: f64,
    goal: Option<f64>,
}

/// Targets in each metric's unit.
const TARGETS: &[Target] = &[
    Target {
        issue: 2,
        key: "temporary_first_query",
        limit: 150.0,
        goal: Some(30.0),
    },
    Target {
        issue: 2,
        key: "select1_query",
        limit: 40.0,
        goal: Some(15.0),
    },
    Target {
        issue: 2,
        key: "insert_25k",
        limit: 1.5,
        goal: Some(0.4),
    },
    Target {
        issue: 5,
        key: "cold_start",
        limit: 5.0,
        goal: None,
    },
    Target {
        issue: 5,
        key: "temporary_first_query",
        limit: 50.0,
        goal: Some(10.0),
    },
    Target {
        issue: 5,
        key: "select1_query",
        limit: 20.0,
        goal: Some(10.0),
    },
    Target {
        issue: 5,
        key: "rss_after_temporary",
        limit: 150.0,
        goal: Some(64.0),
    },
];

fn target(issue: u32, key: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.issue == issue && t.key == key)
}

/// "PASS", "PASS (goal)" or "MISS" for `value` against `t`.
fn status(t: &Target, value: f64) -> &'static str {
    match t.goal {
        Some(goal) if value <= goal => "PASS (goal)",
        _ if value <= t.limit => "PASS",
        _ => "MISS",
    }
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

/// A field of /proc/self/status in MB (the kernel reports kB).
fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

/// The operations the workloads need, for the embedded database and a native server.
trait Session {
    fn query(&mut self, sql: &str) -> Result<Vec<Row>, Error>;
    fn simple(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error>;
    fn prepare(&mut self, sql: &str) -> Result<Statement, Error>;
    fn execute(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>;
}

impl Session for Pglite {
    fn query(&mut self, sql: &str) -> Result<Vec<Row>, Error> {
        Pglite::query(self, sql, &[])
    }
    fn simple(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        self.exec(sql)
    }
    fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        Pglite::prepare(self, sql)
    }
    fn execute(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        Pglite::execute(self, statement, params)
    }
}

impl Session for Client<TcpTransport> {
    fn query(&mut self, sql: &str) -> Result<Vec<Row>, Error> {
        Client::query(self, sql, &[])
    }
    fn simple(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        self.simple_query(sql)
    }
    fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        Client::prepare(self, sql)
    }
    fn execute(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        Client::execute(self, statement, params)
    }
}

/// Per-call medians of `op` on each side, over [`ROUND_TRIPS`] calls after a warm-up.
/// The sides take turns in blocks so that both see the same machine conditions (on a
/// shared machine, cross-process round trips swing with the load).
fn round_trips(
    sides: &mut [&mut dyn Session],
    op: fn(&mut dyn Session) -> Result<(), Error>,
) -> Result<Vec<Duration>, Error> {
    const BLOCKS: usize = 10;
    for side in sides.iter_mut() {
        for _ in 0..WARMUP {
            op(&mut **side)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(ROUND_TRIPS); sides.len()];
    for _ in 0..BLOCKS {
        for (side, samples) in sides.iter_mut().zip(&mut samples) {
            for _ in 0..ROUND_TRIPS / BLOCKS {
                let start = Instant::now();
                op(&mut **side)?;
                samples.push(start.elapsed());
            }
        }
    }
    Ok(samples.into_iter().map(median).collect())
}

/// `SELECT 1` through the extended protocol (cached prepared statement).
fn select1_query(session: &mut dyn Session) -> Result<(), Error> {
    let rows = session.query("SELECT 1")?;
    debug_assert_eq!(rows.len(), 1);
    Ok(())
}

/// `SELECT 1` through the simple protocol.
fn select1_exec(session: &mut dyn Session) -> Result<(), Error> {
    session.simple("SELECT 1").map(drop)
}

/// [`INSERTS`] prepared INSERTs of an int and a text in one transaction, into a fresh
/// table, commit included.
fn insert_run(session: &mut dyn Session) -> Result<Duration, Error> {
    session.simple(
        "DROP TABLE IF EXISTS pglite_bench_insert; \
         CREATE TABLE pglite_bench_insert (a int, b text)",
    )?;
    let start = Instant::now();
    session.simple("BEGIN")?;
    let statement = session.prepare("INSERT INTO pglite_bench_insert VALUES ($1, $2)")?;
    for i in 0..INSERTS as i32 {
        let text = format!("row {i}");
        session.execute(&statement, &[&i, &text])?;
    }
    session.simple("COMMIT")?;
    let elapsed = start.elapsed();
    let count = session.simple("SELECT count(*) FROM pglite_bench_insert")?;
    let count = count[0].rows[0][0].clone().unwrap_or_default();
    if count != INSERTS.to_string() {
        return Err(Error::new(
            pglite::ErrorKind::UnexpectedRowCount,
            format!("the insert benchmark stored {count} rows, not {INSERTS}"),
        ));
    }
    session.simple("DROP TABLE pglite_bench_insert")?;
    Ok(elapsed)
}

/// Median of [`INSERT_RUNS`] insert runs on each side, the sides taking turns.
fn inserts(sides: &mut [&mut dyn Session]) -> Result<Vec<Duration>, Error> {
    let mut samples = vec![Vec::new(); sides.len()];
    for _ in 0..INSERT_RUNS {
        for (side, samples) in sides.iter_mut().zip(&mut samples) {
            samples.push(insert_run(&mut **side)?);
        }
    }
    Ok(samples.into_iter().map(median).collect())
}

/// Wall time of `pglite <args>` in a child process; its stderr on failure.
fn time_child(args: &[&str], cache: Option<&Path>) -> Result<(Duration, String), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(cache) = cache {
        command.env("PGLITE_CACHE_DIR", cache);
    }
    let start = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("running pglite: {e}"))?;
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("pglite {} failed: {stderr}", args.join(" ")));
    }
    Ok((elapsed, stderr))
}

fn db_err(context: &str) -> impl FnOnce(Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Run the benchmark and print (and optionally write) the figures.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let issue: u32 = args.targets.parse().expect("validated by clap");
    let started = Instant::now();
    let mut metrics: Vec<Metric> = Vec::new();
    let scratch = tempfile::Builder::new()
        .prefix("pglite-bench-")
        .tempdir()
        .map_err(|e| format!("creating a scratch directory: {e}"))?;

    if !args.no_cold {
        progress("cold start: a new process with an empty module cache (compiles PostgreSQL)");
        let cache = scratch.path().join("empty-cache");
        std::fs::create_dir(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
        let (elapsed, stderr) = time_child(
            &["sql", "--temporary", "-q", "select 1"],
            Some(cache.as_path()),
        )?;
        // The engine reports "compiled in N s" on stderr.
        let compile = stderr
            .split("compiled in ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok());
        metrics.push(Metric {
            key: "cold_start",
            label: "cold start: new process, no module cache".into(),
            unit: Unit::Seconds,
            value: Unit::Seconds.of(elapsed),
            native: None,
            note: match compile {
                Some(c) => format!("`pglite sql --temporary \"select 1\"`, compile {c:.1} s"),
                None => "`pglite sql --temporary \"select 1\"`".into(),
            },
        });
        std::fs::remove_dir_all(&cache).ok();
    }

    progress("first temporary database in this process");
    let start = Instant::now();
    let mut db = Pglite::temporary().map_err(db_err("opening a temporary database"))?;
    Session::query(&mut db, "SELECT 1").map_err(db_err("SELECT 1"))?;
    let first = start.elapsed();
    let rss_after_temporary = proc_status_mb("VmRSS");
    let server_version = db
        .exec("SHOW server_version")
        .ok()
        .and_then(|r| r.first()?.rows.first()?.first()?.clone())
        .unwrap_or_default();
    metrics.push(Metric {
        key: "first_temporary",
        label: "first Pglite::temporary() + query in a process".into(),
        unit: Unit::Millis,
        value: Unit::Millis.of(first),
        native: None,
        note: "loads the cached module".into(),
    });
    if let Some(rss) = rss_after_temporary {
        metrics.push(Metric {
            key: "rss_after_temporary",
            label: "RSS with one temporary database open".into(),
            unit: Unit::Megabytes,
            value: rss,
            native: None,
            note: "VmRSS".into(),
        });
    }

    let mut native = if args.no_native {
        Err("skipped (--no-native)".to_string())
    } else {
        start_native(args.native_bin.as_deref())
    };
    progress(match native {
        Ok(_) => "SELECT 1 round trips and prepared INSERTs, pglite and native taking turns",
        Err(_) => "SELECT 1 round trips and prepared INSERTs",
    });
    let (query, exec, insert) = {
        let mut sides: Vec<&mut dyn Session> = vec![&mut db];
        if let Ok((_, client)) = &mut native {
            sides.push(client);
        }
        let query = round_trips(&mut sides, select1_query).map_err(db_err("SELECT 1"))?;
        let exec = round_trips(&mut sides, select1_exec).map_err(db_err("SELECT 1"))?;
        let insert = inserts(&mut sides).map_err(db_err("inserts"))?;
        (query, exec, insert)
    };
    db.close().map_err(db_err("closing"))?;
    // Stop the native server now; only its version is needed from here on.
    let native = native.map(|(server, client)| {
        client.close().ok();
        server.version().to_string()
    });

    progress(&format!(
        "{TEMPORARY_RUNS} × Pglite::temporary() + first query"
    ));
    let mut samples = Vec::new();
    for _ in 0..TEMPORARY_RUNS {
        let start = Instant::now();
        let mut db = Pglite::temporary().map_err(db_err("opening a temporary database"))?;
        Session::query(&mut db, "SELECT 1").map_err(db_err("SELECT 1"))?;
        samples.push(start.elapsed());
        drop(db);
    }
    metrics.push(Metric {
        key: "temporary_first_query",
        label: "Pglite::temporary() + first query".into(),
        unit: Unit::Millis,
        value: Unit::Millis.of(median(samples)),
        native: None,
        note: format!("median of {TEMPORARY_RUNS}"),
    });

    progress(&format!(
        "{WARM_OPENS} × open an existing directory + first query, close"
    ));
    let dir = scratch.path().join("db");
    Pglite::open(&dir)
        .and_then(|db| db.close())
        .map_err(db_err("creating a database"))?;
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    for _ in 0..WARM_OPENS {
        let start = Instant::now();
        let mut db = Pglite::open(&dir).map_err(db_err("opening the database"))?;
        Session::query(&mut db, "SELECT 1").map_err(db_err("SELECT 1"))?;
        opens.push(start.elapsed());
        let start = Instant::now();
        db.close().map_err(db_err("closing"))?;
        closes.push(start.elapsed());
    }
    metrics.push(Metric {
        key: "warm_open",
        label: "warm open of a directory + first query".into(),
        unit: Unit::Millis,
        value: Unit::Millis.of(median(opens)),
        native: None,
        note: format!("in-process, median of {WARM_OPENS}"),
    });
    metrics.push(Metric {
        key: "close",
        label: "clean close (shutdown, checkpoint)".into(),
        unit: Unit::Millis,
        value: Unit::Millis.of(median(closes)),
        native: None,
        note: format!("median of {WARM_OPENS}"),
    });

    progress(&format!(
        "{PROCESS_OPENS} × `pglite sql --data DIR \"select 1\"` in a new process"
    ));
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut samples = Vec::new();
    for _ in 0..PROCESS_OPENS {
        let (elapsed, _) = time_child(&["sql", "--data", &dir_arg, "-q", "select 1"], None)?;
        samples.push(elapsed);
    }
    metrics.push(Metric {
        key: "warm_open_process",
        label: "warm open + query + close, new process".into(),
        unit: Unit::Millis,
        value: Unit::Millis.of(median(samples)),
        native: None,
        note: format!("`pglite sql --data DIR`, median of {PROCESS_OPENS}"),
    });

    metrics.push(Metric {
        key: "select1_query",
        label: "SELECT 1 round trip, query (extended)".into(),
        unit: Unit::Micros,
        value: Unit::Micros.of(query[0]),
        native: query.get(1).map(|&d| Unit::Micros.of(d)),
        note: format!("median of {ROUND_TRIPS}"),
    });
    metrics.push(Metric {
        key: "select1_exec",
        label: "SELECT 1 round trip, exec (simple)".into(),
        unit: Unit::Micros,
        value: Unit::Micros.of(exec[0]),
        native: exec.get(1).map(|&d| Unit::Micros.of(d)),
        note: format!("median of {ROUND_TRIPS}"),
    });
    metrics.push(Metric {
        key: "insert_25k",
        label: "25,000 prepared INSERTs, one transaction".into(),
        unit: Unit::Seconds,
        value: Unit::Seconds.of(insert[0]),
        native: insert.get(1).map(|&d| Unit::Seconds.of(d)),
        note: format!(
            "{:.1} µs/insert, median of {INSERT_RUNS}",
            insert[0].as_secs_f64() * 1e6 / INSERTS as f64
        ),
    });
    for (key, field, label) in [
        ("peak_rss", "VmHWM", "peak RSS of this process"),
        ("rss", "VmRSS", "RSS now (all databases closed)"),
    ] {
        if let Some(value) = proc_status_mb(field) {
            metrics.push(Metric {
                key,
                label: label.into(),
                unit: Unit::Megabytes,
                value,
                native: None,
                note: field.into(),
            });
        }
    }

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let native_line = match &native {
        Ok(version) => format!(
            "native: PostgreSQL {version} over TCP on 127.0.0.1, default durability \
             (same run, the two taking turns)"
        ),
        Err(reason) => format!("native: not available ({reason})"),
    };

    let mut text = String::new();
    let _ = writeln!(
        text,
        "pglite {} bench: PostgreSQL {server_version} (PGlite WASI in Wasmtime), {cpus} CPUs, {cpu_model}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(text, "{native_line}");
    let _ = writeln!(text, "targets: issue {issue}; ratio = pglite / native\n");
    text.push_str(&table(&metrics, issue));
    let _ = writeln!(
        text,
        "\nbench took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print!("{text}");

    if let Some(path) = &args.json {
        let report = json!({
            "pglite_version": env!("CARGO_PKG_VERSION"),
            "server_version": server_version,
            "machine": { "cpus": cpus, "cpu_model": cpu_model, "os": std::env::consts::OS, "arch": std::env::consts::ARCH },
            "native": match &native {
                Ok(version) => json!({ "available": true, "version": version, "transport": "tcp" }),
                Err(reason) => json!({ "available": false, "reason": reason }),
            },
            "targets_issue": issue,
            "metrics": metrics.iter().map(|m| {
                let t = target(issue, m.key);
                json!({
                    "key": m.key,
                    "label": m.label,
                    "unit": m.unit.symbol(),
                    "pglite": m.value,
                    "native": m.native,
                    "ratio": m.native.map(|n| m.value / n),
                    "note": m.note,
                    "target": t.map(|t| json!({ "issue": t.issue, "limit": t.limit, "goal": t.goal })),
                    "status": t.map(|t| status(t, m.value)),
                })
            }).collect::<Vec<_>>(),
            "seconds": started.elapsed().as_secs_f64(),
        });
        let body = serde_json::to_string_pretty(&report).expect("JSON values serialize");
        std::fs::write(path, body + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// The figures as an aligned text table.
fn table(metrics: &[Metric], issue: u32) -> String {
    let header = [
        "metric".to_string(),
        "pglite".into(),
        "native".into(),
        "ratio".into(),
        format!("target (#{issue})"),
        "status".into(),
        "how".into(),
    ];
    let rows: Vec<[String; 7]> = metrics
        .iter()
        .map(|m| {
            let unit = m.unit.symbol();
            let t = target(issue, m.key);
            [
                m.label.clone(),
                format!("{} {unit}", number(m.value)),
                m.native
                    .map_or("-".into(), |n| format!("{} {unit}", number(n))),
                m.native
                    .map_or("-".into(), |n| format!("{:.2}×", m.value / n)),
                // Targets as the issues write them: 150, 1.5, 0.4.
                t.map_or("-".into(), |t| match t.goal {
                    Some(goal) => format!("≤ {} {unit} (goal {goal})", t.limit),
                    None => format!("≤ {} {unit}", t.limit),
                }),
                t.map_or("-".into(), |t| status(t, m.value).into()),
                m.note.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (j, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[j] - cell.chars().count());
            // Figures right-aligned, words left-aligned.
            if (1..=3).contains(&j) {
                let _ = write!(line, "{pad}{cell}  ");
            } else {
                let _ = write!(line, "{cell}{pad}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Start a native PostgreSQL (`pglite-testkit`: default durability, trust on
/// loopback) and connect to it; `Err` says why it is not available.
fn start_native(bin: Option<&Path>) -> Result<(NativePostgres, Client<TcpTransport>), String> {
    let mut builder = NativePostgres::builder().prefix("pglite-bench-native-");
    if let Some(dir) = bin {
        builder = builder.bin_dir(dir);
    }
    progress("starting a native PostgreSQL");
    let server = builder.start().map_err(|e| e.to_string())?;
    progress(&format!(
        "native PostgreSQL {} from {} on port {}",
        server.version(),
        server.bin_dir().display(),
        server.port()
    ));
    let transport = TcpTransport::connect(("127.0.0.1", server.port()))
        .map_err(|e| format!("connecting: {e}"))?;
    let client = Client::connect(transport, &StartupConfig::new("postgres", "postgres"))
        .map_err(|e| format!("connecting: {e}"))?;
    Ok((server, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_status() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(vec![ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        let t = target(2, "select1_query").expect("target");
        assert_eq!(status(t, 12.0), "PASS (goal)");
        assert_eq!(status(t, 30.0), "PASS");
        assert_eq!(status(t, 41.0), "MISS");
        assert!(proc_status_mb("VmRSS").is_some_and(|mb| mb > 0.0));
    }
}
