//! `pglite`: run SQL against an embedded PostgreSQL data directory.

mod format;

use std::io::{Read, Write};
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
    /// Run SQL (from the arguments, or standard input) and print the results.
    Sql(SqlArgs),
    /// Create a database cluster in DIR (a no-op if one exists).
    Init {
        /// The data directory.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct SqlArgs {
    /// Data directory (created if missing).
    #[arg(
        long,
        short = 'D',
        conflicts_with = "temporary",
        required_unless_present = "temporary"
    )]
    data: Option<PathBuf>,
    /// Use a temporary database, deleted on exit.
    #[arg(long)]
    temporary: bool,
    /// Database to connect to (created if missing).
    #[arg(long, short = 'd', default_value = "postgres")]
    database: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print rows only: no headers, no footers, no command tags.
    #[arg(long, short = 't')]
    tuples_only: bool,
    /// SQL to run; several statements may be separated by semicolons. Reads standard
    /// input when absent.
    sql: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sql(args) => run_sql(args),
        Command::Init { dir } => init(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init(dir: PathBuf) -> Result<(), String> {
    let db = Pglite::open(&dir).map_err(|e| format!("pglite: {e}"))?;
    let path = db.data_dir().to_path_buf();
    db.close().map_err(|e| format!("pglite: {e}"))?;
    println!("PostgreSQL cluster ready in {}", path.display());
    Ok(())
}

fn run_sql(args: SqlArgs) -> Result<(), String> {
    let sql = if args.sql.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("pglite: reading standard input: {e}"))?;
        text
    } else {
        args.sql.join(" ")
    };
    let builder = match &args.data {
        Some(dir) => Pglite::builder().path(dir),
        None => Pglite::builder().temporary(),
    };
    let mut db = builder
        .database(&args.database)
        .open()
        .map_err(|e| format!("pglite: {e}"))?;
    let results = db.exec(&sql).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    format::write_results(&mut out, &results, args.format, args.tuples_only)
        .and_then(|()| out.flush())
        .map_err(|e| format!("pglite: writing output: {e}"))?;
    drop(out);
    db.close().map_err(|e| format!("pglite: {e}"))
}
