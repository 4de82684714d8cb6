//! The client's integration suite (the modules of `tests/integration`) against
//! `pglite::Server`: the wire-protocol server in this process, on its own tokio
//! runtime and thread, serving a temporary database on a free loopback port and a Unix
//! socket. It is started once for this binary and stopped when the process exits.

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use pglite::RunningServer;
use pglite_client::{Client, StartupConfig, TcpTransport, Transport};

pub use common::Backend;

/// This binary's backend.
pub const BACKEND: Backend = Backend::Served;

/// The transport of this backend's clients.
pub type Raw = TcpTransport;

/// The running server and where to reach it.
struct Served {
    /// Taken and stopped at exit.
    running: Mutex<Option<RunningServer>>,
    addr: std::net::SocketAddr,
    socket_dir: PathBuf,
    port: u16,
    /// Holds the Unix socket; removed at exit after the server.
    socket_tempdir: Mutex<Option<tempfile::TempDir>>,
}

static SERVER: OnceLock<Served> = OnceLock::new();

fn served() -> &'static Served {
    SERVER.get_or_init(|| {
        let socket_tempdir = tempfile::Builder::new()
            .prefix("pglite-client-served-")
            .tempdir()
            .expect("a directory for the Unix socket");
        // A holder timeout well above the default 5 s: a client that keeps the engine
        // idle inside a transaction longer than it should (see
        // `async_client::an_abandoned_transaction_is_rolled_back_before_the_next_call`)
        // makes the others wait for seconds, which the tests notice, instead of being
        // cut off soon. The queue timeout (30 s) stays the default.
        let server = pglite::Server::builder()
            .temporary()
            .listen("127.0.0.1:0".parse().unwrap())
            .socket_dir(socket_tempdir.path())
            .holder_timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap_or_else(|e| panic!("cannot start pglite::Server: {e}"));
        let running = server
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run pglite::Server: {e}"));
        let addr = running.local_addr().expect("a TCP address");
        // Statics are never dropped: stop the server (a clean engine shutdown that
        // deletes the temporary database) when the test process exits.
        // SAFETY: `stop_at_exit` is an `extern "C" fn()` that does not unwind.
        let registered = unsafe { libc::atexit(stop_at_exit) };
        assert_eq!(registered, 0, "atexit failed");
        Served {
            running: Mutex::new(Some(running)),
            addr,
            socket_dir: socket_tempdir.path().to_path_buf(),
            port: addr.port(),
            socket_tempdir: Mutex::new(Some(socket_tempdir)),
        }
    })
}

extern "C" fn stop_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let Some(served) = SERVER.get() else { return };
        let running = served.running.lock().ok().and_then(|mut r| r.take());
        if let Some(running) = running
            && let Err(e) = running.stop()
        {
            eprintln!("stopping pglite::Server: {e}");
        }
        drop(served.socket_tempdir.lock().ok().and_then(|mut d| d.take()));
    });
}

fn startup() -> StartupConfig {
    StartupConfig::new("postgres", "postgres").param("application_name", "pglite-client-tests")
}

/// A client as `postgres` on database `postgres` (the server trusts loopback clients).
pub fn connect() -> Client<Raw> {
    connect_with(|raw| raw)
}

/// The same over `wrap(transport)`.
pub fn connect_with<W: Transport>(wrap: impl FnOnce(Raw) -> W) -> Client<W> {
    let transport = TcpTransport::connect(served().addr).expect("TCP connect");
    Client::connect(wrap(transport), &startup()).expect("connect to pglite::Server")
}

/// The URL `AsyncClient` connects to, with `application_name=async-tests`.
#[cfg(feature = "tokio")]
pub fn async_url() -> String {
    format!(
        "postgres://postgres@{}/postgres?application_name=async-tests",
        served().addr
    )
}

/// The Unix socket directory and port.
pub fn unix_socket() -> (PathBuf, u16) {
    (served().socket_dir.clone(), served().port)
}

// Modules for every backend.
#[path = "../integration/binary_copy.rs"]
mod binary_copy;
#[path = "../integration/cache.rs"]
mod cache;
#[path = "../integration/copy.rs"]
mod copy;
#[path = "../integration/errors.rs"]
mod errors;
#[path = "../integration/fuzz_regressions.rs"]
mod fuzz_regressions;
#[path = "../integration/json.rs"]
mod json;
#[path = "../integration/notify.rs"]
mod notify;
#[path = "../integration/pipeline.rs"]
mod pipeline;
#[path = "../integration/query.rs"]
mod query;
#[path = "../integration/retry.rs"]
mod retry;
#[path = "../integration/split.rs"]
mod split;
#[path = "../integration/stream.rs"]
mod stream;
#[path = "../integration/transactions.rs"]
mod transactions;
#[path = "../integration/types.rs"]
mod types;

// Modules for servers reached over a socket.
#[cfg(feature = "tokio")]
#[path = "../integration/async_client.rs"]
mod async_client;
#[cfg(feature = "tokio")]
#[path = "../integration/async_query.rs"]
mod async_query;
#[path = "../integration/sockets.rs"]
mod sockets;
