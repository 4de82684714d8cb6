//! `pglite bench`: the speed suite, start-up, round-trip, insert and memory figures in
//! one run, each beside the project's target and, when a native PostgreSQL is
//! installed, the same workload against it over TCP. Three targets take turns: the
//! in-process API, `pglite serve` (a child process) over TCP and native PostgreSQL over
//! TCP, both reached with tokio-postgres.
//!
//! Figures are [`Metric`]s with a stable key; targets are data ([`TARGETS`]), looked up
//! by issue number and key, so new workloads (the speed suite, a server over TCP) are
//! new metrics and new target rows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pglite::Pglite;
use pglite_testkit::NativePostgres;
use serde_json::json;

use crate::sides::{InProcess, ServeChild, Side, Tcp, proc_status_mb};
use crate::speedtest::{self, IN_PROCESS, NATIVE, SERVE, Suite, SuiteArgs, TargetTimes, run_suite};

/// Options of `pglite bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Also write the figures as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Check the targets of this issue: 2 (the engine) or 5 (performance).
    #[arg(long, default_value = "5", value_parser = ["2", "5"])]
    targets: String,
    /// Skip the cold starts (two child processes with empty caches: one that loads the
    /// module compiled at build time, one that compiles it).
    #[arg(long)]
    no_cold: bool,
    /// Skip the native PostgreSQL baseline.
    #[arg(long)]
    no_native: bool,
    /// Skip the speed suite.
    #[arg(long)]
    no_suite: bool,
    #[command(flatten)]
    suite: SuiteArgs,
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

impl Metric {
    fn new(key: &'static str, label: impl Into<String>, unit: Unit, value: f64) -> Metric {
        Metric {
            key,
            label: label.into(),
            unit,
            value,
            native: None,
            note: String::new(),
        }
    }

    fn native(mut self, native: Option<f64>) -> Metric {
        self.native = native;
        self
    }

    fn note(mut self, note: impl Into<String>) -> Metric {
        self.note = note.into();
        self
    }
}

/// What a target limits: the figure itself, or its ratio to native.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Value,
    Ratio,
}

/// A limit (must) and optional goal for a metric, from an issue's "Must show".
struct Target {
    issue: u32,
    key: &'static str,
    measure: Measure,
    limit: f64,
    goal: Option<f64>,
}

const fn value(issue: u32, key: &'static str, limit: f64, goal: Option<f64>) -> Target {
    Target {
        issue,
        key,
        measure: Measure::Value,
        limit,
        goal,
    }
}

const fn ratio(issue: u32, key: &'static str, limit: f64, goal: Option<f64>) -> Target {
    Target {
        issue,
        key,
        measure: Measure::Ratio,
        limit,
        goal,
    }
}

/// Targets in each metric's unit (or as a ratio to native).
const TARGETS: &[Target] = &[
    value(2, "temporary_first_query", 150.0, Some(30.0)),
    value(2, "select1_prepared", 40.0, Some(15.0)),
    value(2, "insert_25k", 1.5, Some(0.4)),
    ratio(5, "suite_serve", 1.4, Some(1.1)),
    // Issue 5 compares the in-process API with native over TCP.
    ratio(5, "suite_in_process", 1.2, Some(0.9)),
    value(5, "cold_start", 5.0, None),
    value(5, "temporary_first_query", 50.0, Some(10.0)),
    value(5, "select1_prepared", 20.0, Some(10.0)),
    value(5, "select1_simple", 20.0, Some(10.0)),
    ratio(5, "select1_prepared_serve", 1.5, None),
    ratio(5, "select1_simple_serve", 1.5, None),
    value(5, "rss_after_temporary", 150.0, Some(64.0)),
    value(5, "rss_in_process_after_suite", 400.0, None),
    value(5, "rss_serve_after_suite", 400.0, None),
];

fn target(issue: u32, key: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.issue == issue && t.key == key)
}

/// The figure a target judges: the value, or the ratio to native.
fn judged(t: &Target, m: &Metric) -> Option<f64> {
    match t.measure {
        Measure::Value => Some(m.value),
        Measure::Ratio => m.native.map(|n| m.value / n),
    }
}

/// "PASS", "PASS (goal)" or "MISS" for `value` against `t`.
fn status(t: &Target, value: f64) -> &'static str {
    match t.goal {
        Some(goal) if value <= goal => "PASS (goal)",
        _ if value <= t.limit => "PASS",
        _ => "MISS",
    }
}

fn metric_status(issue: u32, m: &Metric) -> Option<&'static str> {
    let t = target(issue, m.key)?;
    Some(judged(t, m).map_or("n/a", |v| status(t, v)))
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

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

/// Per-call medians of `op` on each side, over [`ROUND_TRIPS`] calls after a warm-up.
/// The sides take turns in blocks so that all see the same machine conditions (on a
/// shared machine, cross-process round trips swing with the load).
fn round_trips(
    sides: &mut [&mut dyn Side],
    op: fn(&mut dyn Side) -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
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

/// Median of [`INSERT_RUNS`] insert runs on each side, the sides taking turns.
fn inserts(sides: &mut [&mut dyn Side]) -> Result<Vec<Duration>, String> {
    let mut samples = vec![Vec::new(); sides.len()];
    for _ in 0..INSERT_RUNS {
        for (side, samples) in sides.iter_mut().zip(&mut samples) {
            samples.push(side.insert_run(INSERTS)?);
        }
    }
    Ok(samples.into_iter().map(median).collect())
}

/// Wall time of `pglite <args>` in a child process; its stderr on failure.
fn time_child(
    args: &[&str],
    cache: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<(Duration, String), String> {
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
    command.envs(env.iter().copied());
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

fn db_err(context: &str) -> impl FnOnce(pglite::Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// The cold starts: `pglite sql --temporary "select 1"` in a new process with an empty
/// cache (`PGLITE_CACHE_DIR` pointing at a new directory), which unpacks the runtime,
/// gets the compiled module, creates the template cluster and runs the query. Twice:
/// as a user gets it (the module compiled at build time is installed into the cache),
/// and with that module ignored (`PGLITE_NO_BUILD_ARTIFACT=1`), so the module is
/// compiled at run time. The engine's progress lines give the phases.
fn cold_starts(scratch: &Path) -> Result<Vec<Metric>, String> {
    let runs = [
        (
            "cold_start",
            "cold start: new process, empty cache",
            "empty cache",
            &[][..],
        ),
        (
            "cold_start_compile",
            "cold start, module compiled at run time",
            "empty cache, PGLITE_NO_BUILD_ARTIFACT=1",
            &[("PGLITE_NO_BUILD_ARTIFACT", "1")][..],
        ),
    ];
    let mut metrics = Vec::new();
    for (key, label, how, env) in runs {
        progress(&format!("cold start: a new process, {how}"));
        let cache = scratch.join(format!("empty-cache-{key}"));
        std::fs::create_dir(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
        let (elapsed, stderr) = time_child(
            &["sql", "--temporary", "-q", "select 1"],
            Some(cache.as_path()),
            env,
        )?;
        std::fs::remove_dir_all(&cache).ok();
        let phases = cold_start_phases(&stderr);
        // The engine rounds its figures, so the remainder can come out a hair below zero.
        let rest = (elapsed.as_secs_f64() - phases.iter().map(|p| p.1).sum::<f64>()).max(0.0);
        let mut note = format!("`pglite sql --temporary \"select 1\"`, {how}:");
        for (name, seconds, detail) in &phases {
            let _ = write!(note, " {name} {seconds:.2} s{detail},");
        }
        let _ = write!(note, " rest (process, start, query) {rest:.2} s");
        metrics.push(Metric::new(key, label, Unit::Seconds, Unit::Seconds.of(elapsed)).note(note));
    }
    Ok(metrics)
}

/// The phases of a cold start as the engine reports them on stderr: name, seconds and
/// the engine's own split in parentheses (if any).
fn cold_start_phases(stderr: &str) -> Vec<(&'static str, f64, String)> {
    const PHASES: [(&str, &str); 4] = [
        ("unpacked the PostgreSQL runtime in ", "unpack"),
        (
            "installed the module compiled at build time in ",
            "build-time module",
        ),
        ("compiled in ", "compile"),
        ("template cluster ready in ", "initdb"),
    ];
    let mut phases = Vec::new();
    for line in stderr.lines() {
        let Some(line) = line.strip_prefix("pglite: ") else {
            continue;
        };
        for (prefix, name) in PHASES {
            let Some(rest) = line.strip_prefix(prefix) else {
                continue;
            };
            let rest = rest.split(", cached at").next().unwrap_or(rest);
            let (number, detail) = rest.split_once(" s").unwrap_or((rest, ""));
            if let Ok(seconds) = number.parse::<f64>() {
                let detail = detail.trim();
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" {detail}")
                };
                phases.push((name, seconds, detail));
            }
        }
    }
    phases
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
    let suite = if args.no_suite {
        None
    } else {
        Some(Suite::load(&args.suite.suite)?)
    };

    if !args.no_cold {
        metrics.extend(cold_starts(scratch.path())?);
    }

    progress("first temporary database in this process");
    let start = Instant::now();
    let mut db = Pglite::temporary().map_err(db_err("opening a temporary database"))?;
    db.query("SELECT 1", &[]).map_err(db_err("SELECT 1"))?;
    let first = start.elapsed();
    let rss_after_temporary = proc_status_mb(None, "VmRSS");
    let server_version = db
        .exec("SHOW server_version")
        .ok()
        .and_then(|r| r.first()?.rows.first()?.first()?.clone())
        .unwrap_or_default();
    metrics.push(
        Metric::new(
            "first_temporary",
            "first Pglite::temporary() + query in a process",
            Unit::Millis,
            Unit::Millis.of(first),
        )
        .note("loads the cached module and template"),
    );
    if let Some(rss) = rss_after_temporary {
        metrics.push(
            Metric::new(
                "rss_after_temporary",
                "RSS after opening a temporary database (in-process)",
                Unit::Megabytes,
                rss,
            )
            .note("VmRSS of this process"),
        );
    }
    let mut in_process = InProcess::new(db);

    let native = if args.no_native {
        Err("skipped (--no-native)".to_string())
    } else {
        start_native(args.native_bin.as_deref())
    };
    progress("starting `pglite serve --temporary` (child process)");
    let server = ServeChild::start(scratch.path())?;
    let rss_serve_open = proc_status_mb(Some(server.pid()), "VmRSS");
    let mut serve = Tcp::connect(server.url())?;
    let mut native_client = match &native {
        Ok(pg) => Some(Tcp::connect(&pg.url("postgres", "postgres"))?),
        Err(_) => None,
    };

    progress("SELECT 1 round trips and prepared INSERTs, the targets taking turns");
    let (simple, prepared, insert) = {
        let mut sides: Vec<&mut dyn Side> = vec![&mut in_process, &mut serve];
        if let Some(client) = native_client.as_mut() {
            sides.push(client);
        }
        let simple = round_trips(&mut sides, |s| s.select1_simple())?;
        let prepared = round_trips(&mut sides, |s| s.select1_prepared())?;
        let insert = inserts(&mut sides)?;
        (simple, prepared, insert)
    };
    drop(serve);
    server.stop()?;
    in_process.db.close().map_err(db_err("closing"))?;
    drop(native_client);

    let us = |d: Option<&Duration>| d.map(|&d| Unit::Micros.of(d));
    for (key_in, key_serve, what, times) in [
        (
            "select1_simple",
            "select1_simple_serve",
            "simple query",
            &simple,
        ),
        (
            "select1_prepared",
            "select1_prepared_serve",
            "prepared",
            &prepared,
        ),
    ] {
        metrics.push(
            Metric::new(
                key_in,
                format!("SELECT 1 round trip, {what}, in-process"),
                Unit::Micros,
                Unit::Micros.of(times[0]),
            )
            .native(us(times.get(2)))
            .note(format!("median of {ROUND_TRIPS}")),
        );
        metrics.push(
            Metric::new(
                key_serve,
                format!("SELECT 1 round trip, {what}, pglite serve (TCP)"),
                Unit::Micros,
                Unit::Micros.of(times[1]),
            )
            .native(us(times.get(2)))
            .note(format!("tokio-postgres, median of {ROUND_TRIPS}")),
        );
    }
    let seconds = |d: Option<&Duration>| d.map(|&d| Unit::Seconds.of(d));
    for (key, label, i) in [
        (
            "insert_25k",
            "25,000 prepared INSERTs, one transaction, in-process",
            0,
        ),
        (
            "insert_25k_serve",
            "25,000 prepared INSERTs, one transaction, serve (TCP)",
            1,
        ),
    ] {
        metrics.push(
            Metric::new(key, label, Unit::Seconds, Unit::Seconds.of(insert[i]))
                .native(seconds(insert.get(2)))
                .note(format!(
                    "{:.1} µs/insert, median of {INSERT_RUNS}",
                    insert[i].as_secs_f64() * 1e6 / INSERTS as f64
                )),
        );
    }
    if let Some(rss) = rss_serve_open {
        metrics.push(
            Metric::new(
                "rss_serve_open",
                "RSS of `pglite serve` after start",
                Unit::Megabytes,
                rss,
            )
            .note("VmRSS of the child"),
        );
    }

    let suite_report = match &suite {
        Some(suite) => {
            let report = run_suite(suite, args.suite.runs, native.as_ref().ok(), scratch.path())?;
            let native_geo = report.target(NATIVE).map(TargetTimes::geomean_ms);
            for (key, name) in [("suite_in_process", IN_PROCESS), ("suite_serve", SERVE)] {
                if let Some(t) = report.target(name) {
                    metrics.push(
                        Metric::new(
                            key,
                            format!("speed suite geometric mean, {name}"),
                            Unit::Millis,
                            t.geomean_ms(),
                        )
                        .native(native_geo)
                        .note(format!("per-test medians of {} runs", t.runs.len())),
                    );
                }
            }
            for (key, label, value) in [
                (
                    "rss_in_process_after_suite",
                    "RSS after the suite, in-process",
                    report.rss_in_process_after,
                ),
                (
                    "rss_serve_after_suite",
                    "RSS after the suite, `pglite serve`",
                    report.rss_serve_after,
                ),
            ] {
                if let Some(value) = value {
                    metrics.push(
                        Metric::new(key, label, Unit::Megabytes, value)
                            .note("VmRSS, database still open"),
                    );
                }
            }
            Some(report)
        }
        None => None,
    };
    // Stop the native server now; only its version is needed from here on.
    let native = native.map(|server| server.version().to_string());

    progress(&format!(
        "{TEMPORARY_RUNS} × Pglite::temporary() + first query"
    ));
    let mut samples = Vec::new();
    for _ in 0..TEMPORARY_RUNS {
        let start = Instant::now();
        let mut db = Pglite::temporary().map_err(db_err("opening a temporary database"))?;
        db.query("SELECT 1", &[]).map_err(db_err("SELECT 1"))?;
        samples.push(start.elapsed());
        drop(db);
    }
    metrics.push(
        Metric::new(
            "temporary_first_query",
            "Pglite::temporary() + first query",
            Unit::Millis,
            Unit::Millis.of(median(samples)),
        )
        .note(format!("median of {TEMPORARY_RUNS}")),
    );

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
        db.query("SELECT 1", &[]).map_err(db_err("SELECT 1"))?;
        opens.push(start.elapsed());
        let start = Instant::now();
        db.close().map_err(db_err("closing"))?;
        closes.push(start.elapsed());
    }
    metrics.push(
        Metric::new(
            "warm_open",
            "warm open of a directory + first query",
            Unit::Millis,
            Unit::Millis.of(median(opens)),
        )
        .note(format!("in-process, median of {WARM_OPENS}")),
    );
    metrics.push(
        Metric::new(
            "close",
            "clean close (shutdown, checkpoint)",
            Unit::Millis,
            Unit::Millis.of(median(closes)),
        )
        .note(format!("median of {WARM_OPENS}")),
    );

    progress(&format!(
        "{PROCESS_OPENS} × `pglite sql --data DIR \"select 1\"` in a new process"
    ));
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut samples = Vec::new();
    for _ in 0..PROCESS_OPENS {
        let (elapsed, _) = time_child(&["sql", "--data", &dir_arg, "-q", "select 1"], None, &[])?;
        samples.push(elapsed);
    }
    metrics.push(
        Metric::new(
            "warm_open_process",
            "warm open + query + close, new process",
            Unit::Millis,
            Unit::Millis.of(median(samples)),
        )
        .note(format!(
            "`pglite sql --data DIR`, median of {PROCESS_OPENS}"
        )),
    );
    for (key, field, label) in [
        ("peak_rss", "VmHWM", "peak RSS of this process"),
        ("rss", "VmRSS", "RSS now (all databases closed)"),
    ] {
        if let Some(value) = proc_status_mb(None, field) {
            metrics.push(Metric::new(key, label, Unit::Megabytes, value).note(field));
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
            "native: PostgreSQL {version} over TCP on 127.0.0.1 (tokio-postgres), default \
             durability; all targets in this run, taking turns"
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
    if let Some(report) = &suite_report {
        let _ = writeln!(
            text,
            "\nspeed suite: ms per test, median of {} runs; ratio = target / native\n",
            args.suite.runs
        );
        text.push_str(&speedtest::table(report));
    }
    let _ = writeln!(text, "\ntargets: issue {issue}; ratio = pglite / native\n");
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
                Ok(version) => json!({ "available": true, "version": version, "transport": "tcp", "client": "tokio-postgres" }),
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
                    "target": t.map(|t| json!({
                        "issue": t.issue,
                        "of": match t.measure { Measure::Value => "value", Measure::Ratio => "ratio" },
                        "limit": t.limit,
                        "goal": t.goal,
                    })),
                    "status": metric_status(issue, m),
                })
            }).collect::<Vec<_>>(),
            "speed_suite": suite_report.as_ref().map(|r| speedtest::to_json(r, args.suite.runs)),
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
                t.map_or("-".into(), |t| {
                    let unit = match t.measure {
                        Measure::Value => format!(" {unit}"),
                        Measure::Ratio => "× native".into(),
                    };
                    match t.goal {
                        Some(goal) => format!("≤ {}{unit} (goal {goal})", t.limit),
                        None => format!("≤ {}{unit}", t.limit),
                    }
                }),
                metric_status(issue, m).unwrap_or("-").into(),
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
/// loopback); `Err` says why it is not available.
fn start_native(bin: Option<&Path>) -> Result<NativePostgres, String> {
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
    Ok(server)
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
        let t = target(2, "select1_prepared").expect("target");
        assert_eq!(status(t, 12.0), "PASS (goal)");
        assert_eq!(status(t, 30.0), "PASS");
        assert_eq!(status(t, 41.0), "MISS");
        assert!(proc_status_mb(None, "VmRSS").is_some_and(|mb| mb > 0.0));
        // Ratio targets judge the figure against native, and need a native figure.
        let m = Metric::new("suite_serve", "suite", Unit::Millis, 130.0).native(Some(100.0));
        assert_eq!(metric_status(5, &m), Some("PASS"));
        let m = Metric::new("suite_serve", "suite", Unit::Millis, 150.0).native(Some(100.0));
        assert_eq!(metric_status(5, &m), Some("MISS"));
        let m = Metric::new("suite_serve", "suite", Unit::Millis, 150.0);
        assert_eq!(metric_status(5, &m), Some("n/a"));
    }
}
