//! `pglite speedtest`: the PGlite speed suite (SQLite-style tests 1–16 with 2.1 and
//! 3.1), each file sent whole as one simple query, in order, on one connection.
//!
//! Three targets in one run: the in-process [`Pglite`] API, `pglite serve` over TCP
//! (our client on loopback), and a native PostgreSQL started for the run (when Debian's
//! `postgresql` is installed). Prints milliseconds per file, the ratio to native and
//! the geometric mean.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use pglite::Pglite;
use pglite::client::{Client, StartupConfig, TcpTransport};

/// The files of the suite, in the order they must run.
pub const SUITE: [&str; 18] = [
    "1", "2", "2.1", "3", "3.1", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    "16",
];

/// Options of `pglite speedtest`.
#[derive(Args)]
pub struct SpeedtestArgs {
    /// Directory holding benchmark1.sql ... benchmark16.sql.
    #[arg(long, default_value = "../shared/bench/speedtest")]
    suite: PathBuf,
    /// Skip the native PostgreSQL baseline.
    #[arg(long)]
    no_native: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One target's time per file.
struct Run {
    name: &'static str,
    times: Vec<Duration>,
}

/// Run the suite on every target and print the comparison.
pub fn run(args: SpeedtestArgs) -> Result<(), String> {
    let files = load_suite(&args.suite)?;
    let mut runs = Vec::new();

    eprintln!("speedtest: in-process Pglite API");
    let mut db = Pglite::temporary().map_err(|e| format!("pglite: {e}"))?;
    runs.push(Run {
        name: "pglite (in-process)",
        times: time_suite(&files, |sql| {
            db.batch_execute(sql).map_err(|e| e.to_string())
        })?,
    });
    db.close().map_err(|e| e.to_string())?;

    eprintln!("speedtest: pglite serve over TCP");
    let server = pglite::Server::builder()
        .temporary()
        .listen("127.0.0.1:0".parse().expect("valid address"))
        .build()
        .map_err(|e| format!("pglite: {e}"))?
        .spawn()
        .map_err(|e| format!("pglite: {e}"))?;
    let addr = server.local_addr().ok_or("the server has no TCP address")?;
    let mut client = tcp_client(addr)?;
    runs.push(Run {
        name: "pglite serve (TCP)",
        times: time_suite(&files, |sql| {
            client.batch_execute(sql).map_err(|e| e.to_string())
        })?,
    });
    drop(client);
    server.stop().map_err(|e| e.to_string())?;

    let native = if args.no_native {
        None
    } else {
        match pglite_testkit::NativePostgres::start() {
            Ok(native) => Some(native),
            Err(e) => {
                eprintln!("speedtest: native: not available ({e})");
                None
            }
        }
    };
    if let Some(native) = &native {
        eprintln!("speedtest: native PostgreSQL over TCP");
        let mut client = tcp_client(native.addr())?;
        runs.push(Run {
            name: "native (TCP)",
            times: time_suite(&files, |sql| {
                client.batch_execute(sql).map_err(|e| e.to_string())
            })?,
        });
    }

    print_table(&runs);
    if let Some(path) = &args.json {
        std::fs::write(path, to_json(&runs).to_string())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn load_suite(dir: &Path) -> Result<Vec<(&'static str, String)>, String> {
    SUITE
        .iter()
        .map(|name| {
            let path = dir.join(format!("benchmark{name}.sql"));
            std::fs::read_to_string(&path)
                .map(|sql| (*name, sql))
                .map_err(|e| format!("reading {}: {e} (set --suite DIR)", path.display()))
        })
        .collect()
}

fn tcp_client(addr: impl std::net::ToSocketAddrs) -> Result<Client<TcpTransport>, String> {
    let transport = TcpTransport::connect(addr).map_err(|e| e.to_string())?;
    let config = StartupConfig::new("postgres", "postgres");
    Client::connect(transport, &config).map_err(|e| e.to_string())
}

fn time_suite(
    files: &[(&'static str, String)],
    mut run: impl FnMut(&str) -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    files
        .iter()
        .map(|(name, sql)| {
            let started = Instant::now();
            run(sql).map_err(|e| format!("benchmark{name}.sql: {e}"))?;
            Ok(started.elapsed())
        })
        .collect()
}

fn geomean(times: &[Duration]) -> f64 {
    let logs: f64 = times
        .iter()
        .map(|t| (t.as_secs_f64() * 1e3).max(1e-3).ln())
        .sum();
    (logs / times.len() as f64).exp()
}

fn print_table(runs: &[Run]) {
    let native = runs.iter().find(|r| r.name.starts_with("native"));
    print!("{:<6}", "test");
    for run in runs {
        print!(" {:>20}", run.name);
        if native.is_some() && !run.name.starts_with("native") {
            print!(" {:>7}", "ratio");
        }
    }
    println!();
    let row = |label: &str, values: Vec<f64>| {
        print!("{label:<6}");
        for (run, value) in runs.iter().zip(&values) {
            print!(" {:>17.1} ms", value);
            if let Some(base) = native.filter(|_| !run.name.starts_with("native")) {
                let base_value = values[runs.iter().position(|r| std::ptr::eq(r, base)).unwrap()];
                print!(" {:>6.2}×", value / base_value.max(1e-3));
            }
        }
        println!();
    };
    for (i, name) in SUITE.iter().enumerate() {
        row(
            name,
            runs.iter()
                .map(|r| r.times[i].as_secs_f64() * 1e3)
                .collect(),
        );
    }
    row("geo", runs.iter().map(|r| geomean(&r.times)).collect());
}

fn to_json(runs: &[Run]) -> serde_json::Value {
    let mut targets = serde_json::Map::new();
    for run in runs {
        let per_file: serde_json::Map<String, serde_json::Value> = SUITE
            .iter()
            .zip(&run.times)
            .map(|(name, t)| (name.to_string(), serde_json::json!(t.as_secs_f64() * 1e3)))
            .collect();
        targets.insert(
            run.name.to_string(),
            serde_json::json!({ "ms": per_file, "geomean_ms": geomean(&run.times) }),
        );
    }
    serde_json::json!({ "suite": "pglite speed suite (tests 1-16, 2.1, 3.1)", "targets": targets })
}
