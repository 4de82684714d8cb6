//! Blocking connections from a [`Config`]: TCP (plain or TLS) or Unix socket, every
//! host in turn, with libpq's `sslmode` rules; the opener that reconnects such
//! clients.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::auth::TlsBinding;
use crate::client::Client;
use crate::config::StartupConfig;
use crate::connstr::{Config, Endpoint, Host, SslMode};
use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::io::{Blocking, run_blocking};
use crate::reconnect::{OpenFuture, Reopen};
#[cfg(pglite_tls)]
pub(crate) use crate::tls::TlsConnector;
#[cfg(pglite_tls)]
use crate::transport::TlsTransport;
#[cfg(unix)]
use crate::transport::UnixTransport;
use crate::transport::{TcpTransport, Transport};

/// Stand-in for the TLS connector in builds without the `tls` feature.
#[cfg(not(pglite_tls))]
#[derive(Debug, Clone)]
pub(crate) struct TlsConnector;

#[cfg(not(pglite_tls))]
impl TlsConnector {
    pub(crate) fn from_config(config: &Config) -> Result<Option<TlsConnector>, Error> {
        if config.get_ssl_mode().requires_tls() {
            // Checked per host: Unix sockets never use TLS.
            return Ok(Some(TlsConnector));
        }
        Ok(None)
    }
}

/// A blocking socket transport chosen by a [`Config`]: TCP (plain or TLS) or Unix.
#[non_exhaustive]
#[derive(Debug)]
pub enum SocketTransport {
    /// A plain TCP connection.
    Tcp(TcpTransport),
    /// A TLS connection over TCP (feature `tls`).
    #[cfg(pglite_tls)]
    Tls(Box<TlsTransport>),
    /// A Unix-domain-socket connection.
    #[cfg(unix)]
    Unix(UnixTransport),
}

impl SocketTransport {
    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            SocketTransport::Tcp(t) => set_tcp_timeout(t.stream(), timeout),
            #[cfg(pglite_tls)]
            SocketTransport::Tls(t) => set_tcp_timeout(t.tcp_stream(), timeout),
            #[cfg(unix)]
            SocketTransport::Unix(t) => {
                t.stream().set_read_timeout(timeout)?;
                t.stream().set_write_timeout(timeout)
            }
        }
    }

    /// True for a TLS connection.
    pub fn is_tls(&self) -> bool {
        #[cfg(pglite_tls)]
        if let SocketTransport::Tls(_) = self {
            return true;
        }
        false
    }
}

fn set_tcp_timeout(stream: &TcpStream, timeout: Option<Duration>) -> std::io::Result<()> {
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)
}

impl Transport for SocketTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.send(bytes),
            #[cfg(pglite_tls)]
            SocketTransport::Tls(t) => t.send(bytes),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.send(bytes),
        }
    }
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.receive(buf),
            #[cfg(pglite_tls)]
            SocketTransport::Tls(t) => t.receive(buf),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.receive(buf),
        }
    }
    /// Waits with a socket read timeout (removed again afterwards).
    fn receive_timeout(&mut self, buf: &mut BytesMut, timeout: Duration) -> Result<bool, Error> {
        self.set_timeout(Some(timeout))?;
        let received = match self.receive(buf) {
            Ok(()) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => return Err(e),
        };
        self.set_timeout(None)?;
        received
    }
    fn flush(&mut self) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.flush(),
            #[cfg(pglite_tls)]
            SocketTransport::Tls(t) => t.flush(),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.flush(),
        }
    }
}

/// How one connection attempt uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsUse {
    /// No `SSLRequest`.
    Never,
    /// `SSLRequest`; plain text if the server says `N`.
    IfOffered,
    /// `SSLRequest`; the server must say `S`.
    Required,
}

/// The first attempt libpq makes for `mode` on `host`: Unix sockets never use TLS.
pub(crate) fn first_attempt(
    mode: SslMode,
    host: &Host,
    tls: Option<&TlsConnector>,
) -> Result<TlsUse, Error> {
    if matches!(host, Host::Unix(_)) || tls.is_none() {
        return Ok(TlsUse::Never);
    }
    if cfg!(not(pglite_tls)) {
        if mode.requires_tls() {
            let remedy = if cfg!(target_os = "wasi") {
                "TLS is not available on WASI (rustls' ring provider needs a C toolchain \
                 for wasm32): use sslmode=disable/prefer"
            } else {
                "enable its `tls` feature, or use sslmode=disable/prefer or a Unix socket"
            };
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "sslmode={mode} needs TLS, and this build of pglite-client has no TLS: {remedy}"
                ),
            ));
        }
        // As libpq built without SSL: no SSLRequest at all.
        return Ok(TlsUse::Never);
    }
    Ok(match mode {
        SslMode::Disable | SslMode::Allow => TlsUse::Never,
        SslMode::Prefer => TlsUse::IfOffered,
        _ => TlsUse::Required,
    })
}

/// libpq's second try after a failed attempt: `prefer` retries without TLS when the
/// TLS connection failed (handshake or certificate, or a `pg_hba.conf` rejection:
/// SQLSTATE 28000); `allow` retries with TLS when the plain one was rejected (28000).
pub(crate) fn second_attempt(mode: SslMode, error: &Error, used_tls: bool) -> Option<TlsUse> {
    let rejected = error.code().is_some_and(|c| c.code() == "28000");
    match mode {
        SslMode::Prefer
            if used_tls && (rejected || matches!(error.kind(), ErrorKind::Tls | ErrorKind::Io)) =>
        {
            Some(TlsUse::Never)
        }
        SslMode::Allow if !used_tls && rejected && cfg!(pglite_tls) => Some(TlsUse::Required),
        _ => None,
    }
}

/// The error when the server refuses TLS that the mode requires.
#[cfg(pglite_tls)]
pub(crate) fn tls_refused(mode: SslMode, endpoint: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Tls,
        format!(
            "the server at {}:{} does not support TLS (it answered SSLRequest with N), but \
             sslmode={mode} requires it",
            endpoint.tls_name, endpoint.port
        ),
    )
}

/// The error after every endpoint failed: the last one, naming all attempts.
pub(crate) fn all_failed(attempts: Vec<(String, Error)>) -> Error {
    match attempts.len() {
        0 => Error::new(ErrorKind::Config, "no host to connect to"),
        1 => {
            let (_, e) = attempts.into_iter().next().expect("one attempt");
            e
        }
        _ => {
            let summary: Vec<String> = attempts
                .iter()
                .map(|(where_, e)| format!("{where_}: {e}"))
                .collect();
            let (_, last) = attempts.into_iter().next_back().expect("attempts");
            Error::with_source(
                last.kind(),
                format!("could not connect to any host ({})", summary.join("; ")),
                last,
            )
        }
    }
}

fn open_tcp(name: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = (name, port).to_socket_addrs()?.collect();
    let mut last = None;
    for addr in addrs {
        let result = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timeout_error());
                }
                TcpStream::connect_timeout(&addr, left)
            }
            None => TcpStream::connect(addr),
        };
        match result {
            Ok(stream) => {
                if let Some(d) = deadline {
                    let left = d
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1));
                    set_tcp_timeout(&stream, Some(left))?;
                }
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(Error::from)
        .unwrap_or_else(|| Error::new(ErrorKind::Io, format!("host \"{name}\" has no address"))))
}

pub(crate) fn timeout_error() -> Error {
    Error::new(
        ErrorKind::Io,
        "timeout expired while connecting (connect_timeout)",
    )
}

/// Opens the socket for one attempt and negotiates TLS as `tls_use` says. Errors
/// come with whether TLS was in use (for [`second_attempt`]).
fn open_transport(
    endpoint: &Endpoint,
    mode: SslMode,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
    deadline: Option<Instant>,
) -> Result<(SocketTransport, Option<TlsBinding>), (Error, bool)> {
    let plain = |e: Error| (e, false);
    match &endpoint.host {
        #[cfg(unix)]
        Host::Unix(dir) => {
            let t = UnixTransport::connect_dir(dir, endpoint.port).map_err(plain)?;
            Ok((SocketTransport::Unix(t), None))
        }
        #[cfg(not(unix))]
        Host::Unix(dir) => Err(plain(Error::new(
            ErrorKind::Config,
            format!("Unix sockets are not available here ({})", dir.display()),
        ))),
        Host::Tcp(name) => {
            #[allow(unused_mut)]
            let mut stream = open_tcp(name, endpoint.port, deadline).map_err(plain)?;
            #[cfg(pglite_tls)]
            if tls_use != TlsUse::Never
                && let Some(connector) = connector
            {
                if crate::transport::request_tls(&mut stream).map_err(plain)? {
                    let target = connector.target(&endpoint.tls_name).map_err(plain)?;
                    let (t, binding) =
                        TlsTransport::handshake(stream, target).map_err(|e| (e, true))?;
                    return Ok((SocketTransport::Tls(Box::new(t)), Some(binding)));
                }
                if tls_use == TlsUse::Required {
                    return Err(plain(tls_refused(mode, endpoint)));
                }
            }
            let _ = (mode, tls_use, connector);
            let t = TcpTransport::from_stream(stream).map_err(plain)?;
            Ok((SocketTransport::Tcp(t), None))
        }
    }
}

/// One attempt: socket, TLS as `tls_use` says, start-up and authentication.
fn attempt(
    endpoint: &Endpoint,
    config: &Config,
    startup: &StartupConfig,
    connector: Option<&TlsConnector>,
    tls_use: TlsUse,
) -> Result<Core<Blocking<SocketTransport>>, (Error, bool)> {
    let deadline = config.get_connect_timeout().map(|t| Instant::now() + t);
    let mode = config.get_ssl_mode();
    let (transport, binding) = open_transport(endpoint, mode, tls_use, connector, deadline)?;
    let used_tls = binding.is_some();
    if let Some(d) = deadline {
        let left = d
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        transport
            .set_timeout(Some(left))
            .map_err(|e| (e.into(), used_tls))?;
    }
    let core = run_blocking(Core::connect_with(
        Blocking(transport),
        startup,
        binding.as_ref(),
    ))
    .map_err(|e| (e, used_tls))?;
    if deadline.is_some() {
        core.io
            .0
            .set_timeout(None)
            .map_err(|e| (e.into(), used_tls))?;
    }
    Ok(core)
}

/// Connects as `config` says: each endpoint in turn; per endpoint libpq's
/// `sslmode` attempts (see [`first_attempt`], [`second_attempt`]).
fn connect_core(
    config: &Config,
    connector: Option<&TlsConnector>,
) -> Result<Core<Blocking<SocketTransport>>, Error> {
    let startup = config.startup_config();
    let mode = config.get_ssl_mode();
    let mut attempts = Vec::new();
    for endpoint in config.targets()? {
        let where_ = format!("{}:{}", endpoint.host, endpoint.port);
        let mut tls_use = first_attempt(mode, &endpoint.host, connector)?;
        let result = loop {
            match attempt(&endpoint, config, &startup, connector, tls_use) {
                Ok(core) => break Ok(core),
                Err((e, used_tls)) => match second_attempt(mode, &e, used_tls) {
                    Some(next) if next != tls_use => tls_use = next,
                    _ => break Err(e),
                },
            }
        };
        match result {
            Ok(core) => return Ok(core),
            // A configuration error is the same for every host.
            Err(e) if e.kind() == ErrorKind::Config => return Err(e),
            Err(e) => attempts.push((where_, e)),
        }
    }
    Err(all_failed(attempts))
}

/// Reconnects a blocking client with the `Config` it was made from.
struct BlockingOpener {
    config: Config,
    connector: Option<TlsConnector>,
}

impl Reopen<Blocking<SocketTransport>> for BlockingOpener {
    fn reopen(&self) -> OpenFuture<'_, Blocking<SocketTransport>> {
        Box::pin(std::future::ready(connect_core(
            &self.config,
            self.connector.as_ref(),
        )))
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn connect_timeout(&self) -> Option<Duration> {
        self.config.get_connect_timeout()
    }
}

impl Client<SocketTransport> {
    /// Connects as described by a libpq connection string (`postgres://…` URL or
    /// `keyword=value`), trying each host in turn.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), pglite_client::Error> {
    /// let mut client = pglite_client::Client::connect_url("postgres://postgres@localhost/postgres")?;
    /// client.batch_execute("SELECT 1")?;
    /// # Ok(()) }
    /// ```
    pub fn connect_url(url: &str) -> Result<Client<SocketTransport>, Error> {
        Client::connect_config(&url.parse::<Config>()?)
    }

    /// Connects as described by `config`: each `(host, port)` in turn until one
    /// accepts the start-up; `connect_timeout` bounds each attempt (socket, TLS and
    /// authentication). TLS follows `sslmode` as libpq does (see docs/CLIENT.md).
    /// The client reconnects by itself when it finds its connection broken (see
    /// [`Client::set_param`]).
    pub fn connect_config(config: &Config) -> Result<Client<SocketTransport>, Error> {
        let connector = TlsConnector::from_config(config)?;
        let mut core = connect_core(config, connector.as_ref())?;
        core.reconnect.opener = Some(Arc::new(BlockingOpener {
            config: config.clone(),
            connector,
        }));
        Ok(Client { core })
    }
}

/// True for the error a socket read timeout produces.
fn is_timeout(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        })
}
