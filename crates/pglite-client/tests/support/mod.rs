//! Test harness: a real, native PostgreSQL server started once per test binary in a
//! temporary directory on a free loopback port, by `pglite-testkit` (see its docs:
//! Debian's `postgresql` binaries, `runuser` as root, a watchdog that stops the server
//! and removes the directory when the test process exits).
//!
//! Without the binaries the tests fail with a message saying how to install them; they
//! are never skipped. The server runs without fsync and has three password users
//! (md5, SCRAM-SHA-256, cleartext) for the authentication tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use pglite_client::{Client, StartupConfig, TcpTransport};
use pglite_testkit::{AuthMethod, NativePostgres};

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
    native: NativePostgres,
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

impl PgServer {
    fn start() -> PgServer {
        let native = NativePostgres::builder()
            .prefix("pglite-client-pg-")
            .fast()
            .setting("max_connections", "60")
            .setting("shared_buffers", "32MB")
            .user(MD5_USER, MD5_PASSWORD, AuthMethod::Md5)
            .user(SCRAM_USER, SCRAM_PASSWORD, AuthMethod::ScramSha256)
            .user(PLAIN_USER, PLAIN_PASSWORD, AuthMethod::Password)
            .start()
            .unwrap_or_else(|e| panic!("cannot start the native PostgreSQL: {e}"));
        PgServer {
            port: native.port(),
            dir: native.socket_dir().to_path_buf(),
            native,
        }
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
        self.native.log()
    }
}

/// A TCP transport that counts round trips: a `receive` that follows a `send` (the
/// client turning from writing to waiting for the server).
pub struct CountingTransport {
    inner: TcpTransport,
    sent: bool,
    /// Round trips so far.
    pub round_trips: usize,
    /// `send` calls so far.
    pub sends: usize,
}

impl pglite_client::Transport for CountingTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), pglite_client::Error> {
        self.sent = true;
        self.sends += 1;
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut bytes::BytesMut) -> Result<(), pglite_client::Error> {
        if std::mem::take(&mut self.sent) {
            self.round_trips += 1;
        }
        self.inner.receive(buf)
    }

    fn flush(&mut self) -> Result<(), pglite_client::Error> {
        self.inner.flush()
    }
}

impl PgServer {
    /// A trust-authenticated connection as `postgres` whose transport counts round trips.
    pub fn connect_counting(&self) -> Client<CountingTransport> {
        let transport = CountingTransport {
            inner: TcpTransport::connect(self.addr()).expect("TCP connect"),
            sent: false,
            round_trips: 0,
            sends: 0,
        };
        Client::connect(transport, &self.config("postgres")).expect("connect as postgres")
    }
}
