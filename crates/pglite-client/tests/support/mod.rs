//! Test harness: a real, native PostgreSQL server started once per test binary in a
//! temporary directory on a free loopback port.
//!
//! The server binaries come from Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`). Without them the tests fail with a message
//! saying how to install them; they are never skipped. As root, `initdb` and
//! `postgres` run as the `postgres` OS user through `runuser`. A watchdog shell stops
//! the server and removes the directory when the test process exits.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pglite_client::{Client, StartupConfig, TcpTransport};

pub const MD5_USER: &str = "md5_user";
pub const MD5_PASSWORD: &str = "md5 secret";
pub const SCRAM_USER: &str = "scram_user";
pub const SCRAM_PASSWORD: &str = "scram sécret";
pub const PLAIN_USER: &str = "plain_user";
pub const PLAIN_PASSWORD: &str = "plain secret";

/// A running PostgreSQL server.
pub struct PgServer {
    pub port: u16,
    /// Directory holding the data directory, the Unix socket and the log.
    pub dir: PathBuf,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();

/// The shared server of this test binary, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

/// A trust-authenticated connection as `postgres` to database `postgres`.
pub fn connect() -> Client<TcpTransport> {
    server().connect()
}

fn find_bin_dir() -> PathBuf {
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/postgres \
             and initdb). These integration tests need a real server: install it with \
             `apt-get update && apt-get install -y postgresql postgresql-contrib`."
        ),
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A command run as the `postgres` OS user when we are root.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}

impl PgServer {
    // The server and the watchdog are meant to outlive this process's handles.
    #[allow(clippy::zombie_processes)]
    fn start() -> PgServer {
        let bin = find_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("pglite-client-pg-")
            .tempdir()
            .expect("cannot create a temporary directory")
            .keep();
        let data = dir.join("data");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("cannot run chown");
            assert!(status.success(), "chown of {} failed", dir.display());
        }

        let output = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("cannot run initdb");
        assert!(
            output.status.success(),
            "initdb failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {MD5_USER} 127.0.0.1/32 md5\n\
                 host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
                 host all {PLAIN_USER} 127.0.0.1/32 password\n\
                 host all all 127.0.0.1/32 trust\n"
            ),
        )
        .expect("cannot write pg_hba.conf");

        let port = free_port();
        let log = fs::File::create(dir.join("server.log")).expect("cannot create the log");
        let mut child = pg_command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=32MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot start postgres");

        // Stop the server and remove its directory once this test process is gone.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.3; done; \
             kill -QUIT $(head -n 1 '{data}/postmaster.pid' 2>/dev/null) 2>/dev/null; \
             sleep 2; rm -rf '{dir}'",
            pid = std::process::id(),
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the watchdog");

        let server = PgServer { port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = loop {
            match TcpTransport::connect(("127.0.0.1", port))
                .and_then(|t| Client::connect(t, &server.config("postgres")))
            {
                Ok(client) => break client,
                Err(e) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "postgres exited ({status}) during start-up:\n{}",
                            server.log()
                        );
                    }
                    if Instant::now() > deadline {
                        panic!("postgres did not accept connections: {e}\n{}", server.log());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        client
            .batch_execute(&format!(
                "SET password_encryption = 'md5';
                 CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}';
                 SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}';
                 CREATE ROLE {PLAIN_USER} LOGIN PASSWORD '{PLAIN_PASSWORD}';"
            ))
            .expect("cannot create the test roles");
        client.close().expect("close");
        // The child handle is dropped on purpose: the watchdog stops the server.
        drop(child);
        server
    }

    /// Start-up settings for `user` on database `postgres`.
    pub fn config(&self, user: &str) -> StartupConfig {
        StartupConfig::new(user, "postgres").param("application_name", "pglite-client-tests")
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A trust-authenticated connection as `postgres`.
    pub fn connect(&self) -> Client<TcpTransport> {
        let transport = TcpTransport::connect(self.addr()).expect("TCP connect");
        Client::connect(transport, &self.config("postgres")).expect("connect as postgres")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}
