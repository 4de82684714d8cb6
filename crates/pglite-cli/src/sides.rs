//! The three things `pglite bench` measures, behind one interface: the in-process
//! [`Pglite`] API, a `pglite serve` child process reached over TCP with tokio-postgres,
//! and a native PostgreSQL reached the same way.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pglite::{Pglite, Statement};
use tokio_postgres::types::ToSql;

/// SQL of the prepared-INSERT workload's table.
const INSERT_TABLE: &str = "DROP TABLE IF EXISTS pglite_bench_insert; \
     CREATE TABLE pglite_bench_insert (a int, b text)";
/// The prepared INSERT.
const INSERT_SQL: &str = "INSERT INTO pglite_bench_insert VALUES ($1, $2)";

/// One database connection being measured.
pub trait Side {
    /// `SELECT 1` with the simple protocol.
    fn select1_simple(&mut self) -> Result<(), String>;
    /// `SELECT 1` through a statement prepared once (Bind/Execute/Sync per call).
    fn select1_prepared(&mut self) -> Result<(), String>;
    /// Send `sql` as one simple query, discarding the results.
    fn batch(&mut self, sql: &str) -> Result<(), String>;
    /// `rows` prepared INSERTs in one transaction (commit included), timed.
    fn insert_run(&mut self, rows: usize) -> Result<Duration, String>;
}

/// The in-process API.
pub struct InProcess {
    /// The database.
    pub db: Pglite,
    select1: Option<Statement>,
}

impl InProcess {
    /// Wrap an open database.
    pub fn new(db: Pglite) -> InProcess {
        InProcess { db, select1: None }
    }
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Side for InProcess {
    fn select1_simple(&mut self) -> Result<(), String> {
        self.db.exec("SELECT 1").map(drop).map_err(text)
    }

    fn select1_prepared(&mut self) -> Result<(), String> {
        if self.select1.is_none() {
            self.select1 = Some(self.db.prepare("SELECT 1").map_err(text)?);
        }
        let statement = self.select1.as_ref().expect("prepared above");
        let rows = self.db.query(statement, &[]).map_err(text)?;
        debug_assert_eq!(rows.len(), 1);
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.db.batch_execute(sql).map_err(text)
    }

    fn insert_run(&mut self, rows: usize) -> Result<Duration, String> {
        self.batch(INSERT_TABLE)?;
        let start = Instant::now();
        self.batch("BEGIN")?;
        let statement = self.db.prepare(INSERT_SQL).map_err(text)?;
        for i in 0..rows as i32 {
            let value = format!("row {i}");
            self.db.execute(&statement, &[&i, &value]).map_err(text)?;
        }
        self.batch("COMMIT")?;
        let elapsed = start.elapsed();
        check_inserted(
            self.db
                .exec("SELECT count(*) FROM pglite_bench_insert")
                .map_err(text)?[0]
                .rows[0][0]
                .as_deref(),
            rows,
        )?;
        Ok(elapsed)
    }
}

fn check_inserted(count: Option<&str>, rows: usize) -> Result<(), String> {
    if count == Some(rows.to_string().as_str()) {
        Ok(())
    } else {
        Err(format!(
            "the insert workload stored {count:?} rows, not {rows}"
        ))
    }
}

/// A PostgreSQL server reached over TCP with tokio-postgres, driven from a
/// current-thread runtime (each call is one `block_on`; the timing is taken around it).
pub struct Tcp {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    select1: tokio_postgres::Statement,
}

impl Tcp {
    /// Connect to `url` (a `postgres://` URL, no TLS).
    pub fn connect(url: &str) -> Result<Tcp, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting a tokio runtime: {e}"))?;
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("bench: connection error: {e}");
            }
        });
        let select1 = runtime.block_on(client.prepare("SELECT 1")).map_err(text)?;
        Ok(Tcp {
            runtime,
            client,
            select1,
        })
    }
}

impl Side for Tcp {
    fn select1_simple(&mut self) -> Result<(), String> {
        self.runtime
            .block_on(self.client.simple_query("SELECT 1"))
            .map(drop)
            .map_err(text)
    }

    fn select1_prepared(&mut self) -> Result<(), String> {
        let rows = self
            .runtime
            .block_on(self.client.query(&self.select1, &[]))
            .map_err(text)?;
        debug_assert_eq!(rows.len(), 1);
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(text)
    }

    fn insert_run(&mut self, rows: usize) -> Result<Duration, String> {
        self.batch(INSERT_TABLE)?;
        let client = &self.client;
        let elapsed = self.runtime.block_on(async move {
            let start = Instant::now();
            client.batch_execute("BEGIN").await?;
            let statement = client.prepare(INSERT_SQL).await?;
            for i in 0..rows as i32 {
                let value = format!("row {i}");
                client
                    .execute(&statement, &[&i as &(dyn ToSql + Sync), &value])
                    .await?;
            }
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(start.elapsed())
        });
        let elapsed = elapsed.map_err(text)?;
        let count: i64 = self
            .runtime
            .block_on(
                self.client
                    .query_one("SELECT count(*) FROM pglite_bench_insert", &[]),
            )
            .map_err(text)?
            .get(0);
        check_inserted(Some(count.to_string().as_str()), rows)?;
        Ok(elapsed)
    }
}

/// `pglite serve --temporary` in a child process of this executable, on a free
/// loopback port; stopped cleanly (SIGTERM) on drop.
pub struct ServeChild {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ServeChild {
    /// Start the server and wait for the URL it prints. Its stderr goes to a file in
    /// `scratch`, shown if it fails.
    pub fn start(scratch: &Path) -> Result<ServeChild, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
        let log = tempfile::Builder::new()
            .prefix("serve-")
            .suffix(".log")
            .tempfile_in(scratch)
            .map_err(|e| format!("creating a log file: {e}"))?
            .into_temp_path()
            .keep()
            .map_err(|e| format!("keeping the log file: {e}"))?;
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(exe)
            .args(["serve", "--temporary", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting pglite serve: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let url = line.trim().to_string();
        if read.is_err() || !url.starts_with("postgres://") {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("pglite serve did not start: {output}"));
        }
        Ok(ServeChild { child, url, log })
    }

    /// The URL the server printed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop the server cleanly and wait for it; its log on failure.
    pub fn stop(mut self) -> Result<(), String> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), String> {
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().map_err(|e| e.to_string())?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        if status.success() {
            Ok(())
        } else {
            Err(format!("pglite serve exited with {status}: {log}"))
        }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate();
        }
    }
}

/// A field of `/proc/<pid>/status` (`pid` None: this process) in MB.
pub fn proc_status_mb(pid: Option<u32>, field: &str) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}
