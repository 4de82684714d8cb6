//! `pglite`: run SQL against an embedded PostgreSQL data directory.

mod bench;
mod format;
mod report;
mod serve;
mod sides;
mod speedtest;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pglite::Pglite;

use crate::format::Format;

#[derive(Parser)]
#[command(
    name = "pglite",
    version,
    about = "Embedded PostgreSQL 17: run SQL on a local data directory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL and print the results like psql.
    ///
    /// Each SQL argument, then each file, is sent as one query (the simple protocol,
    /// like `psql -c`): its statements run in one implicit transaction unless it
    /// contains BEGIN/COMMIT. Without SQL arguments or files, SQL is read from standard
    /// input (after the database is opened). The first error stops the run and exits
    /// with status 1. A lone `COPY ... TO STDOUT` writes its data to stdout, and a lone
    /// `COPY ... FROM STDIN` given as an argument or file reads standard input.
    Sql(SqlArgs),
    /// Create a database cluster in DIR (a no-op if one exists).
    Init {
        /// The data directory.
        dir: PathBuf,
    },
    /// Serve a data directory to PostgreSQL clients (psql, SQLx, tokio-postgres, ...)
    /// over TCP and/or a Unix socket; prints the connection URL. SIGINT/SIGTERM stop it
    /// cleanly.
    Serve(serve::ServeArgs),
    /// Run the PGlite speed suite (tests 1-16, 2.1, 3.1) in-process, through `pglite
    /// serve` over TCP and on a native PostgreSQL (both with tokio-postgres), and
    /// compare. `pglite bench` runs the same suite beside its other figures.
    Speedtest(speedtest::SpeedtestArgs),
    /// Measure the speed suite, start-up, round trips, inserts and memory, in-process
    /// and through `pglite serve`, beside the project's targets and a native
    /// PostgreSQL when one is installed.
    Bench(bench::BenchArgs),
}

/// Which database a command works on: a data directory or a temporary one.
#[derive(Args)]
pub struct DatabaseArgs {
    /// Data directory (created if missing).
    #[arg(
        long,
        short = 'D',
        conflicts_with = "temporary",
        required_unless_present = "temporary"
    )]
    pub data: Option<PathBuf>,
    /// Use a temporary database, deleted on exit.
    #[arg(long)]
    pub temporary: bool,
    /// Database name (created if missing).
    #[arg(long, short = 'd', default_value = "postgres")]
    pub database: String,
}

#[derive(Args)]
struct SqlArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print rows only: no headers and no row-count footers.
    #[arg(long, short = 't')]
    tuples_only: bool,
    /// Do not print command tags such as `CREATE TABLE` or `INSERT 0 1`.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Run the SQL in FILE (`-` for standard input); may be repeated.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Vec<PathBuf>,
    /// SQL to run; several statements may be separated by semicolons.
    sql: Vec<String>,
}

/// A failure already worded for stderr.
struct Failure(String);

fn fail(context: &str) -> impl FnOnce(pglite::Error) -> Failure + '_ {
    move |e| Failure(format!("pglite: {context}{e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sql(args) => run_sql(args),
        Command::Init { dir } => init(dir),
        Command::Bench(args) => bench::run(args).map_err(Failure),
        Command::Serve(args) => serve::run(args).map_err(Failure),
        Command::Speedtest(args) => speedtest::run(args).map_err(Failure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init(dir: PathBuf) -> Result<(), Failure> {
    let db = Pglite::open(&dir).map_err(fail(""))?;
    let path = db.data_dir().to_path_buf();
    db.close().map_err(fail("closing: "))?;
    println!("PostgreSQL cluster ready in {}", path.display());
    Ok(())
}

/// Where a query's text comes from.
enum Source {
    Text(String),
    File(PathBuf),
    Stdin,
}

impl Source {
    fn read(self) -> Result<String, Failure> {
        match self {
            Source::Text(sql) => Ok(sql),
            Source::Stdin => {
                let mut stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!("pglite: reading SQL from standard input (end with Ctrl-D)");
                }
                let mut sql = String::new();
                stdin
                    .read_to_string(&mut sql)
                    .map_err(|e| Failure(format!("pglite: reading standard input: {e}")))?;
                Ok(sql)
            }
            Source::File(path) => std::fs::read_to_string(&path)
                .map_err(|e| Failure(format!("pglite: {}: {e}", path.display()))),
        }
    }
}

fn run_sql(args: SqlArgs) -> Result<(), Failure> {
    let mut sources: Vec<Source> = args.sql.into_iter().map(Source::Text).collect();
    for path in args.file {
        if path.as_os_str() == "-" {
            sources.push(Source::Stdin);
        } else if !path.is_file() {
            // Fail before opening the database.
            return Err(Failure(format!("pglite: {}: no such file", path.display())));
        } else {
            sources.push(Source::File(path));
        }
    }
    if sources.is_empty() {
        sources.push(Source::Stdin);
    }
    let options = format::Options {
        format: args.format,
        tuples_only: args.tuples_only,
        quiet: args.quiet,
    };

    let builder = match &args.db.data {
        Some(dir) => Pglite::builder().path(dir),
        None => Pglite::builder().temporary(),
    };
    let mut db = builder
        .database(&args.db.database)
        .open()
        .map_err(fail(""))?;
    db.client()
        .set_notice_handler(|notice| eprintln!("{}", report::db_error(notice, "", true)));

    let outcome = run_sources(&mut db, sources, options);
    // Close cleanly whatever happened; the first failure is the one reported.
    let closed = db.close().map_err(fail("closing: "));
    outcome.and(closed)
}

fn run_sources(
    db: &mut Pglite,
    sources: Vec<Source>,
    options: format::Options,
) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for source in sources {
        let from_stdin = matches!(source, Source::Stdin);
        let sql = source.read()?;
        let sql_failure = |e: pglite::Error| Failure(report::error(&e, &sql));
        let written = match copy_direction(&sql) {
            // COPY streams: the data alone goes to stdout, as with psql.
            Some(Copy::Out) => match db.copy_out(&sql, &mut out) {
                Ok(_) => out.flush(),
                Err(e) if is_broken_pipe(&e) => return Ok(()),
                Err(e) => return Err(sql_failure(e)),
            },
            Some(Copy::In) if !from_stdin => {
                let rows = db
                    .copy_in(&sql, std::io::stdin().lock())
                    .map_err(sql_failure)?;
                if options.quiet {
                    Ok(())
                } else {
                    writeln!(out, "COPY {rows}").and_then(|()| out.flush())
                }
            }
            _ => {
                let results = db.exec(&sql).map_err(sql_failure)?;
                results
                    .iter()
                    .try_for_each(|result| format::write_result(&mut out, result, options))
                    .and_then(|()| out.flush())
            }
        };
        match written {
            Ok(()) => {}
            // The reader went away (`pglite sql ... | head`): stop quietly, like psql.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure(format!("pglite: writing output: {e}"))),
        }
    }
    Ok(())
}

enum Copy {
    Out,
    In,
}

/// Whether `sql` is a single `COPY ... TO STDOUT` or `COPY ... FROM STDIN` statement.
fn copy_direction(sql: &str) -> Option<Copy> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches([';', ' ', '\t', '\r', '\n'])
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let first = words.first()?;
    if !(first == "copy" || first.starts_with("copy(")) || words.iter().any(|w| w.contains(';')) {
        return None;
    }
    let text = words.join(" ");
    if text.contains(" to stdout") {
        Some(Copy::Out)
    } else if text.contains(" from stdin") {
        Some(Copy::In)
    } else {
        None
    }
}

/// True when `e` comes from writing to a closed pipe.
fn is_broken_pipe(e: &pglite::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        source = s.source();
    }
    false
}
