//! A PostgreSQL wire-protocol server that shares one embedded pglite engine (real
//! PostgreSQL 17 in Wasmtime) between many client connections.
//!
//! The engine has exactly one backend session. The server multiplexes clients onto it:
//! a client holds the session from its first message until the backend reports
//! ReadyForQuery idle (`I`), so an extended-protocol batch, a transaction block or a
//! COPY stay together; other clients wait in arrival order. Prepared statement and
//! portal names are renamed per client, LISTEN/NOTIFY is routed to subscribers,
//! session settings are re-applied per client, and a client that disconnects or idles
//! inside a transaction while others wait is rolled back. See `docs/SERVER.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), pglite_server::ServerError> {
//! let server = pglite_server::Server::builder()
//!     .temporary()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .build()?;
//! println!("connect with {}", server.url());
//! let running = server.spawn()?;
//! // ... connect with any PostgreSQL client ...
//! running.stop()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod core;
mod lock;
mod protocol;
mod scram;
mod socket;
mod spin;
mod sql;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::core::{Config, Core, ENGINE_STACK};
use crate::socket::{Stream, Waiter};

/// Errors starting or running a [`Server`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("pglite server configuration: {0}")]
    Config(String),
    /// The engine could not be opened or shut down.
    #[error("pglite engine: {0}")]
    Engine(String),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

#[derive(Debug, Clone)]
enum DataSource {
    Dir(PathBuf),
    Temporary,
}

/// Options for a [`Server`]; start with [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    source: Option<DataSource>,
    database: String,
    listen: Option<SocketAddr>,
    socket_dir: Option<PathBuf>,
    password: Option<String>,
    queue_timeout: Duration,
    holder_timeout: Duration,
    max_connections: usize,
    max_message_size: usize,
    max_copy_size: usize,
    trust_network: bool,
    spin: Option<Duration>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            source: None,
            database: "postgres".into(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5432))),
            socket_dir: None,
            password: None,
            queue_timeout: Duration::from_secs(30),
            holder_timeout: Duration::from_secs(5),
            max_connections: 100,
            max_message_size: 256 << 20,
            max_copy_size: 1 << 30,
            trust_network: false,
            spin: None,
        }
    }
}

impl ServerBuilder {
    /// Serve the database cluster in `dir` (created if missing).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source = Some(DataSource::Dir(dir.into()));
        self
    }

    /// Serve a temporary copy of the template cluster, deleted when the server stops.
    pub fn temporary(mut self) -> Self {
        self.source = Some(DataSource::Temporary);
        self
    }

    /// The database the engine's session attaches to and clients must ask for
    /// (default `postgres`). It must exist in the cluster.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Listen for TCP connections on `addr` (default `127.0.0.1:5432`; port 0 picks a
    /// free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Do not listen on TCP (use with [`ServerBuilder::socket_dir`]).
    pub fn no_tcp(mut self) -> Self {
        self.listen = None;
        self
    }

    /// Also listen on the Unix socket `DIR/.s.PGSQL.<port>` (the TCP port, or 5432),
    /// where psql and libpq look for it with `-h DIR -p <port>`.
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }

    /// Require this password (SCRAM-SHA-256) from every client. Without a password,
    /// clients are trusted, which is allowed only on loopback addresses and Unix
    /// sockets unless [`ServerBuilder::trust_network`] is set.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Allow trust authentication on a non-loopback TCP address.
    pub fn trust_network(mut self, yes: bool) -> Self {
        self.trust_network = yes;
        self
    }

    /// How long a client waits for the engine before its statement fails with
    /// SQLSTATE 57014 (default 30 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// How long a client may hold the engine idle (inside a transaction or an
    /// unfinished extended-protocol batch) while another client waits, before it is
    /// rolled back and disconnected with SQLSTATE 25P03 (default 5 s).
    pub fn holder_timeout(mut self, timeout: Duration) -> Self {
        self.holder_timeout = timeout;
        self
    }

    /// Most concurrent client connections (default 100); more get SQLSTATE 53300.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Largest single protocol message accepted (default 256 MiB); larger ones close
    /// the connection with SQLSTATE 08P01.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1024);
        self
    }

    /// Largest COPY FROM STDIN data stream accepted (default 1 GiB); the whole stream
    /// is held in memory before it goes to the engine.
    pub fn max_copy_size(mut self, bytes: usize) -> Self {
        self.max_copy_size = bytes;
        self
    }

    /// How long a connection's thread keeps polling its socket after a reply before it
    /// sleeps (default 50 µs, or `PGLITE_SERVER_SPIN_US` microseconds when that is set;
    /// zero turns spinning off; at most 1 s). A client that sends its next request
    /// within that time is served without waking a sleeping thread, which on an
    /// otherwise idle machine (above all a VM) is most of a round trip. An idle
    /// connection spins once after its last reply, then costs no CPU; at most one
    /// thread fewer than the machine has CPUs spins at a time.
    pub fn spin(mut self, budget: Duration) -> Self {
        self.spin = Some(budget.min(Duration::from_secs(1)));
        self
    }

    /// Open the engine and bind the sockets. Blocking: opening a new cluster runs
    /// initdb (templates make temporary databases fast).
    pub fn build(self) -> Result<Server, ServerError> {
        let source = self.source.clone().ok_or_else(|| {
            ServerError::Config(
                "choose a data directory with .data_dir(dir) or a temporary database with .temporary()"
                    .into(),
            )
        })?;
        if let Some(addr) = self.listen
            && self.password.is_none()
            && !addr.ip().is_loopback()
            && !self.trust_network
        {
            return Err(ServerError::Config(format!(
                "refusing to serve {addr} without a password; set a password or listen on a loopback address"
            )));
        }
        if self.listen.is_none() && self.socket_dir.is_none() {
            return Err(ServerError::Config(
                "nothing to listen on: set a TCP address or a socket directory".into(),
            ));
        }
        let (dir, temp) = match source {
            DataSource::Dir(dir) => (dir, None),
            DataSource::Temporary => {
                let template = pglite_engine::Template::shared()
                    .map_err(|e| ServerError::Engine(e.to_string()))?;
                let temp = tempfile::Builder::new()
                    .prefix("pglite-server-")
                    .tempdir_in(pglite_engine::scratch_dir())
                    .map_err(io_error("creating a temporary directory"))?;
                template
                    .clone_into(temp.path())
                    .map_err(|e| ServerError::Engine(e.to_string()))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let tcp = match self.listen {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .map_err(io_error(format!("listening on {addr}")))?;
                l.set_nonblocking(true)
                    .map_err(io_error("configuring the listener"))?;
                Some(l)
            }
            None => None,
        };
        let port = tcp
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(5432, |a| a.port());
        #[cfg(unix)]
        let unix = match &self.socket_dir {
            Some(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                // A socket file left by a killed server: nothing listens on it.
                if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                let l = std::os::unix::net::UnixListener::bind(&path)
                    .map_err(io_error(format!("listening on {}", path.display())))?;
                l.set_nonblocking(true)
                    .map_err(io_error("configuring the listener"))?;
                Some((l, path))
            }
            None => None,
        };
        #[cfg(not(unix))]
        if self.socket_dir.is_some() {
            return Err(ServerError::Config(
                "Unix sockets are not available on this platform".into(),
            ));
        }
        let spin = match self.spin {
            Some(budget) => budget,
            None => spin::budget_from_env()
                .map_err(ServerError::Config)?
                .unwrap_or(spin::DEFAULT_SPIN),
        };
        let (engine, opened) =
            crate::core::open_engine(&dir, &self.database).map_err(ServerError::Engine)?;
        let (shutdown_tx, _) = watch::channel(false);
        let config = Config {
            database: self.database.clone(),
            queue_timeout: self.queue_timeout,
            holder_timeout: self.holder_timeout,
            max_message_size: self.max_message_size,
            max_copy_size: self.max_copy_size,
            spin,
        };
        let verifier = self.password.as_deref().map(scram::Verifier::new);
        let core = Core::new(config, engine, &opened, verifier, self.max_connections);
        Ok(Server {
            core: Arc::new(core),
            tcp,
            #[cfg(unix)]
            unix,
            data_dir: opened.data_dir,
            database: self.database,
            password: self.password,
            handle: ServerHandle {
                tx: Arc::new(shutdown_tx),
            },
            _temp: temp,
        })
    }
}

/// A PostgreSQL server in front of one pglite engine. Build it with
/// [`Server::builder`], then [`Server::serve`] (async), [`Server::run`] (blocking,
/// stops on SIGINT/SIGTERM) or [`Server::spawn`] (background thread).
pub struct Server {
    core: Arc<Core>,
    tcp: Option<std::net::TcpListener>,
    #[cfg(unix)]
    unix: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    data_dir: PathBuf,
    database: String,
    password: Option<String>,
    handle: ServerHandle,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("data_dir", &self.data_dir)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Start configuring a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP address the server listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The Unix socket's path, if any.
    pub fn socket_path(&self) -> Option<&Path> {
        #[cfg(unix)]
        {
            self.unix.as_ref().map(|(_, p)| p.as_path())
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// The data directory being served.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A connection URL for clients (`postgres://postgres@127.0.0.1:PORT/postgres`),
    /// with the password when one is set. Over the Unix socket only, the libpq form
    /// `postgres://postgres@/postgres?host=DIR&port=PORT`.
    pub fn url(&self) -> String {
        let user = match &self.password {
            Some(p) => format!("postgres:{}", percent_encode(p)),
            None => "postgres".into(),
        };
        let db = percent_encode(&self.database);
        match self.local_addr() {
            Some(addr) => format!("postgres://{user}@{addr}/{db}?sslmode=disable"),
            None => {
                let path = self.socket_path().expect("a socket is configured");
                let dir = path.parent().unwrap_or(Path::new("/"));
                let port = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("5432")
                    .to_string();
                format!(
                    "postgres://{user}@/{db}?host={}&port={port}",
                    percent_encode(&dir.to_string_lossy())
                )
            }
        }
    }

    /// A handle that stops the server from anywhere.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Accept connections until [`ServerHandle::shutdown`]; then close every
    /// connection (rolling back open transactions), shut the engine down cleanly and
    /// release the data directory. Must run inside a tokio runtime.
    pub async fn serve(mut self) -> Result<(), ServerError> {
        let tcp = match self.tcp.take() {
            Some(l) => Some(tokio::net::TcpListener::from_std(l).map_err(io_error("listener"))?),
            None => None,
        };
        #[cfg(unix)]
        let (unix, unix_path) = match self.unix.take() {
            Some((l, path)) => (
                Some(tokio::net::UnixListener::from_std(l).map_err(io_error("listener"))?),
                Some(path),
            ),
            None => (None, None),
        };
        let mut shutdown = self.handle.tx.subscribe();
        let core = self.core.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            #[cfg(unix)]
            let unix_accept = async {
                match &unix {
                    Some(l) => l.accept().await.map(|(s, _)| s),
                    None => std::future::pending().await,
                }
            };
            let tcp_accept = async {
                match &tcp {
                    Some(l) => l.accept().await.map(|(s, _)| s),
                    None => std::future::pending().await,
                }
            };
            #[cfg(unix)]
            tokio::select! {
                s = tcp_accept => if let Ok(s) = s {
                    spawn_tcp_client(&core, s);
                },
                s = unix_accept => if let Ok(s) = s
                    && let Ok(s) = s.into_std()
                {
                    spawn_client(&core, Stream::Unix(mio::net::UnixStream::from_std(s)));
                },
                _ = shutdown.changed() => {}
            }
            #[cfg(not(unix))]
            tokio::select! {
                s = tcp_accept => if let Ok(s) = s {
                    spawn_tcp_client(&core, s);
                },
                _ = shutdown.changed() => {}
            }
        }
        core.begin_shutdown();
        drop(tcp);
        #[cfg(unix)]
        {
            drop(unix);
            if let Some(path) = unix_path {
                let _ = std::fs::remove_file(path);
            }
        }
        // Connections see the shutdown signal, roll back and close; wait for them.
        let all = u32::try_from(core.connections_max()).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            core.connections.clone().acquire_many_owned(all),
        )
        .await;
        let result = tokio::task::spawn_blocking(move || shut_engine_down(&core))
            .await
            .unwrap_or_else(|_| Err("the engine shutdown panicked".into()));
        result.map_err(ServerError::Engine)
    }

    /// Serve until [`ServerHandle::shutdown`], SIGINT or SIGTERM, accepting on the
    /// calling thread (connections get threads of their own). Blocking.
    pub fn run(self) -> Result<(), ServerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error("starting the tokio runtime"))?;
        let handle = self.handle();
        runtime.block_on(async move {
            tokio::spawn(async move {
                wait_for_signal().await;
                handle.shutdown();
            });
            self.serve().await
        })
    }

    /// Serve on a background thread with its own runtime. The returned
    /// [`RunningServer`] stops the server when [`RunningServer::stop`] is called or it
    /// is dropped.
    pub fn spawn(self) -> Result<RunningServer, ServerError> {
        let handle = self.handle();
        let url = self.url();
        let local_addr = self.local_addr();
        let socket_path = self.socket_path().map(Path::to_path_buf);
        let data_dir = self.data_dir.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error("starting the tokio runtime"))?;
        let thread = std::thread::Builder::new()
            .name("pglite-server".into())
            .spawn(move || runtime.block_on(self.serve()))
            .map_err(io_error("starting the server thread"))?;
        Ok(RunningServer {
            handle,
            thread: Some(thread),
            url,
            local_addr,
            socket_path,
            data_dir,
        })
    }
}

fn spawn_tcp_client(core: &Arc<Core>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    if let Ok(stream) = stream.into_std() {
        spawn_client(core, Stream::Tcp(mio::net::TcpStream::from_std(stream)));
    }
}

/// Serve a new connection on a thread of its own (see `client.rs`); more than
/// `max_connections` get 53300 from that thread.
fn spawn_client(core: &Arc<Core>, stream: Stream) {
    let permit = core.connections.clone().try_acquire_owned().ok();
    let core = core.clone();
    // If no thread can be started, dropping the closure closes the connection.
    let _ = std::thread::Builder::new()
        .name("pglite-conn".into())
        .stack_size(ENGINE_STACK)
        .spawn(move || client::serve(core, stream, permit));
}

/// Wait until no connection holds the engine, then shut PostgreSQL down cleanly (on a
/// thread with the engine's stack).
fn shut_engine_down(core: &Core) -> Result<(), String> {
    let mut waiter = Waiter::new().map_err(|e| format!("waiting for the engine: {e}"))?;
    let waker = waiter.waker().clone();
    let mut guard = core
        .engine
        .acquire(&waker, None, || waiter.wait(None))
        .map_err(|e| format!("waiting for the engine: {e}"))?;
    let Some(engine) = guard.take_engine() else {
        return Ok(());
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("pglite-engine-shutdown".into())
            .stack_size(ENGINE_STACK)
            .spawn_scoped(scope, move || engine.shutdown().map_err(|e| e.to_string()))
            .map_err(|e| format!("starting the shutdown thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the engine shutdown panicked".into()))
    })
}

impl Core {
    fn connections_max(&self) -> usize {
        self.connections_limit
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Stops a running [`Server`]; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ServerHandle {
    /// Ask the server to stop: it stops accepting, closes every connection (open
    /// transactions are rolled back) and shuts the engine down. Returns immediately.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

/// A server running on a background thread (from [`Server::spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
    url: String,
    local_addr: Option<SocketAddr>,
    socket_path: Option<PathBuf>,
    data_dir: PathBuf,
}

impl RunningServer {
    /// The connection URL (see [`Server::url`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The Unix socket path.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }

    /// The data directory being served.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Stop the server and wait until the engine is shut down and the data directory
    /// released.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ServerError> {
        self.handle.shutdown();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(ServerError::Engine("the server thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
