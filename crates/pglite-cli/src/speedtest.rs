//! The PGlite speed suite (SQLite-style tests 1–16 with 2.1 and 3.1): each file sent
//! whole as one simple query, in order, on one connection to a fresh database.
//!
//! Three targets, taking turns test by test within one run: the in-process [`Pglite`] API,
//! `pglite serve` (a child process) over TCP with tokio-postgres, and a native
//! PostgreSQL started for the run, over TCP with tokio-postgres. `pglite speedtest`
//! runs only this; `pglite bench` runs it beside its other figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use pglite::Pglite;
use pglite_testkit::NativePostgres;

use crate::sides::{InProcess, ServeChild, Side, Tcp, proc_status_mb};

/// The files of the suite, in the order they must run.
pub const SUITE: [&str; 18] = [
    "1", "2", "2.1", "3", "3.1", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    "16",
];

/// Target names, in table order.
pub const IN_PROCESS: &str = "pglite (in-process)";
/// See [`IN_PROCESS`].
pub const SERVE: &str = "pglite serve (TCP)";
/// See [`IN_PROCESS`].
pub const NATIVE: &str = "native (TCP)";

/// Options of `pglite speedtest`.
#[derive(Args)]
pub struct SpeedtestArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Skip the native PostgreSQL baseline.
    #[arg(long)]
    pub no_native: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Where the suite is and how often it runs (shared by `speedtest` and `bench`).
#[derive(Args, Clone)]
pub struct SuiteArgs {
    /// Directory holding benchmark1.sql ... benchmark16.sql.
    #[arg(long, default_value = "../shared/bench/speedtest")]
    pub suite: PathBuf,
    /// Runs of the whole suite per target (each on a fresh database); per-test medians
    /// are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// The suite's SQL, loaded.
pub struct Suite {
    files: Vec<(&'static str, String)>,
}

impl Suite {
    /// Read every file of the suite from `dir`.
    pub fn load(dir: &Path) -> Result<Suite, String> {
        let files = SUITE
            .iter()
            .map(|name| {
                let path = dir.join(format!("benchmark{name}.sql"));
                std::fs::read_to_string(&path)
                    .map(|sql| (*name, sql))
                    .map_err(|e| format!("reading {}: {e} (set --suite DIR)", path.display()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Suite { files })
    }
}

/// One target's times: `runs[r][test]`.
pub struct TargetTimes {
    /// The target's name.
    pub name: &'static str,
    /// Per run, the time of each file.
    pub runs: Vec<Vec<Duration>>,
}

impl TargetTimes {
    /// No runs yet.
    pub fn new(name: &'static str) -> TargetTimes {
        TargetTimes {
            name,
            runs: Vec::new(),
        }
    }

    /// Median over the runs of each test, in ms.
    pub fn medians_ms(&self) -> Vec<f64> {
        (0..SUITE.len())
            .map(|t| {
                let mut v: Vec<f64> = self.runs.iter().map(|r| r[t].as_secs_f64() * 1e3).collect();
                median_f64(&mut v)
            })
            .collect()
    }

    /// Geometric mean of the per-test medians, in ms.
    pub fn geomean_ms(&self) -> f64 {
        geomean(&self.medians_ms())
    }
}

/// What a suite run produced: the times and the memory figures taken on the way.
pub struct SuiteReport {
    /// In-process, serve and (when available) native.
    pub targets: Vec<TargetTimes>,
    /// VmRSS of this process after the first in-process run (database still open), MB.
    pub rss_in_process_after: Option<f64>,
    /// VmRSS of the `pglite serve` child right after it started, MB.
    pub rss_serve_open: Option<f64>,
    /// VmRSS of the `pglite serve` child after the first run, MB.
    pub rss_serve_after: Option<f64>,
}

impl SuiteReport {
    /// The target named `name`.
    pub fn target(&self, name: &str) -> Option<&TargetTimes> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// Median of `v` (sorted in place).
pub fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Geometric mean of positive figures.
pub fn geomean(values: &[f64]) -> f64 {
    let logs: f64 = values.iter().map(|v| v.max(1e-3).ln()).sum();
    (logs / values.len() as f64).exp()
}

/// Run the suite `runs` times on each target. Each run opens a fresh database on every
/// target and sends the files in order, **taking turns test by test** (the order of the
/// targets rotates from test to test), so all targets see the same state of a shared,
/// noisy machine within a few seconds of each other.
pub fn run_suite(
    suite: &Suite,
    runs: usize,
    native: Option<&NativePostgres>,
    scratch: &Path,
) -> Result<SuiteReport, String> {
    let mut times = [
        TargetTimes::new(IN_PROCESS),
        TargetTimes::new(SERVE),
        TargetTimes::new(NATIVE),
    ];
    let mut report = SuiteReport {
        targets: Vec::new(),
        rss_in_process_after: None,
        rss_serve_open: None,
        rss_serve_after: None,
    };
    let runs = runs.max(1);
    for run in 0..runs {
        eprintln!(
            "bench: speed suite run {}/{runs}: all targets, taking turns",
            run + 1
        );
        let db = Pglite::temporary().map_err(|e| format!("pglite: {e}"))?;
        let mut in_process = InProcess::new(db);
        let server = ServeChild::start(scratch)?;
        if run == 0 {
            report.rss_serve_open = proc_status_mb(Some(server.pid()), "VmRSS");
        }
        let mut serve = Tcp::connect(server.url())?;
        let database = format!("speedtest_{run}");
        let mut native_side = match native {
            Some(native) => {
                let mut admin = Tcp::connect(&native.url("postgres", "postgres"))?;
                admin.batch(&format!("CREATE DATABASE {database}"))?;
                Some((admin, Tcp::connect(&native.url("postgres", &database))?))
            }
            None => None,
        };

        let mut run_times: [Vec<Duration>; 3] = Default::default();
        for (test, (name, sql)) in suite.files.iter().enumerate() {
            for turn in 0..3 {
                let target = (test + run + turn) % 3;
                let side: &mut dyn Side = match target {
                    0 => &mut in_process,
                    1 => &mut serve,
                    _ => match native_side.as_mut() {
                        Some((_, client)) => client,
                        None => continue,
                    },
                };
                let started = Instant::now();
                side.batch(sql)
                    .map_err(|e| format!("{}: benchmark{name}.sql: {e}", times[target].name))?;
                run_times[target].push(started.elapsed());
            }
        }

        if run == 0 {
            report.rss_in_process_after = proc_status_mb(None, "VmRSS");
            report.rss_serve_after = proc_status_mb(Some(server.pid()), "VmRSS");
        }
        in_process.db.close().map_err(|e| e.to_string())?;
        drop(serve);
        server.stop()?;
        if let Some((mut admin, client)) = native_side {
            drop(client);
            admin.batch(&format!("DROP DATABASE {database}"))?;
        }
        for (target, ran) in times.iter_mut().zip(run_times) {
            if !ran.is_empty() {
                target.runs.push(ran);
            }
        }
    }
    let [in_process, serve, native_times] = times;
    report.targets.push(in_process);
    report.targets.push(serve);
    if native.is_some() {
        report.targets.push(native_times);
    }
    Ok(report)
}

/// The per-test table: ms for each target, the ratio to native, the geometric mean.
pub fn table(report: &SuiteReport) -> String {
    use std::fmt::Write as _;
    let native = report.target(NATIVE).map(TargetTimes::medians_ms);
    let columns: Vec<(&str, Vec<f64>)> = report
        .targets
        .iter()
        .map(|t| (t.name, t.medians_ms()))
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<6}", "test");
    for (name, _) in &columns {
        let _ = write!(out, " {name:>20}");
        if native.is_some() && *name != NATIVE {
            let _ = write!(out, " {:>7}", "ratio");
        }
    }
    out.push('\n');
    let mut row = |label: &str, values: Vec<f64>, base: Option<f64>| {
        let _ = write!(out, "{label:<6}");
        for ((name, _), value) in columns.iter().zip(&values) {
            let _ = write!(out, " {value:>17.1} ms");
            if let Some(base) = base.filter(|_| *name != NATIVE) {
                let _ = write!(out, " {:>6.2}×", value / base.max(1e-3));
            }
        }
        out.push('\n');
    };
    for (i, name) in SUITE.iter().enumerate() {
        row(
            name,
            columns.iter().map(|(_, ms)| ms[i]).collect(),
            native.as_ref().map(|n| n[i]),
        );
    }
    row(
        "geo",
        columns.iter().map(|(_, ms)| geomean(ms)).collect(),
        native.as_ref().map(|n| geomean(n)),
    );
    out
}

/// The suite's figures as JSON.
pub fn to_json(report: &SuiteReport, runs: usize) -> serde_json::Value {
    let native = report.target(NATIVE).map(TargetTimes::geomean_ms);
    let mut targets = serde_json::Map::new();
    for t in &report.targets {
        let per_file: serde_json::Map<String, serde_json::Value> = SUITE
            .iter()
            .zip(t.medians_ms())
            .map(|(name, ms)| (name.to_string(), serde_json::json!(ms)))
            .collect();
        let geo = t.geomean_ms();
        targets.insert(
            t.name.to_string(),
            serde_json::json!({
                "ms": per_file,
                "geomean_ms": geo,
                "geomean_ratio_to_native": native.filter(|_| t.name != NATIVE).map(|n| geo / n),
                "runs_ms": t.runs.iter().map(|r| r.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>()).collect::<Vec<_>>(),
            }),
        );
    }
    serde_json::json!({
        "suite": "pglite speed suite (tests 1-16, 2.1, 3.1)",
        "runs": runs,
        "statistic": "median over runs per test; geometric mean over tests",
        "targets": targets,
        "rss_mb": {
            "in_process_after_suite": report.rss_in_process_after,
            "serve_after_open": report.rss_serve_open,
            "serve_after_suite": report.rss_serve_after,
        },
    })
}

/// `pglite speedtest`: the suite alone.
pub fn run(args: SpeedtestArgs) -> Result<(), String> {
    let suite = Suite::load(&args.suite.suite)?;
    let scratch = tempfile::Builder::new()
        .prefix("pglite-speedtest-")
        .tempdir()
        .map_err(|e| format!("creating a scratch directory: {e}"))?;
    let native = if args.no_native {
        None
    } else {
        match NativePostgres::builder()
            .prefix("pglite-speedtest-native-")
            .start()
        {
            Ok(native) => Some(native),
            Err(e) => {
                eprintln!("speedtest: native: not available ({e})");
                None
            }
        }
    };
    let report = run_suite(&suite, args.suite.runs, native.as_ref(), scratch.path())?;
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, to_json(&report, args.suite.runs).to_string())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
