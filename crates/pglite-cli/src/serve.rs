//! `pglite serve`: put a data directory behind a PostgreSQL socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pglite::Server;

/// Options of `pglite serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: crate::DatabaseArgs,
    /// TCP address to listen on.
    #[arg(long, default_value = "127.0.0.1:5432")]
    listen: SocketAddr,
    /// Do not listen on TCP (use with --socket-dir).
    #[arg(long)]
    no_tcp: bool,
    /// Also listen on a Unix socket in this directory (`DIR/.s.PGSQL.<port>`).
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    /// Require this password (SCRAM-SHA-256); without one, connections are trusted.
    #[arg(long, conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Maximum number of client connections.
    #[arg(long, default_value_t = 100)]
    max_connections: usize,
    /// Seconds a client waits for the engine before its statement is cancelled.
    #[arg(long, default_value_t = 30.0)]
    queue_timeout: f64,
    /// Seconds a client may sit idle in a transaction while others wait.
    #[arg(long, default_value_t = 5.0)]
    holder_timeout: f64,
    /// Microseconds a connection keeps polling its socket after a reply before it
    /// sleeps (0 turns it off; default 50, or $PGLITE_SERVER_SPIN_US).
    #[arg(long, value_name = "MICROS")]
    spin_us: Option<u64>,
}

/// Run the server until SIGINT or SIGTERM, then shut the engine down cleanly.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let mut builder = Server::builder()
        .database(&args.db.database)
        .listen(args.listen)
        .max_connections(args.max_connections)
        .queue_timeout(seconds(args.queue_timeout, "--queue-timeout")?)
        .holder_timeout(seconds(args.holder_timeout, "--holder-timeout")?);
    builder = match &args.db.data {
        Some(dir) => builder.data_dir(dir),
        None => builder.temporary(),
    };
    if args.no_tcp {
        builder = builder.no_tcp();
    }
    if let Some(micros) = args.spin_us {
        builder = builder.spin(Duration::from_micros(micros));
    }
    if let Some(dir) = &args.socket_dir {
        builder = builder.socket_dir(dir);
    }
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("pglite: reading {}: {e}", file.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, None) => None,
    };
    if let Some(password) = password {
        builder = builder.password(password);
    }
    let server = builder.build().map_err(|e| format!("pglite: {e}"))?;
    eprintln!("pglite: serving {}", server.data_dir().display());
    println!("{}", server.url());
    if let Some(path) = server.socket_path() {
        eprintln!("pglite: Unix socket {}", path.display());
    }
    eprintln!("pglite: press Ctrl-C to stop");
    server.run().map_err(|e| format!("pglite: {e}"))?;
    eprintln!("pglite: stopped cleanly");
    Ok(())
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("pglite: {flag} must be a positive number of seconds"))
}
