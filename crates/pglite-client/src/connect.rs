//! Blocking connections from a [`Config`]: TCP or Unix socket, every host in turn.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::client::Client;
use crate::connstr::{Config, Host};
use crate::error::{Error, ErrorKind};
use crate::notify::Notification;
#[cfg(unix)]
use crate::transport::UnixTransport;
use crate::transport::{TcpTransport, Transport};

/// A blocking socket transport chosen by a [`Config`]: TCP or Unix.
#[non_exhaustive]
#[derive(Debug)]
pub enum SocketTransport {
    /// A TCP connection.
    Tcp(TcpTransport),
    /// A Unix-domain-socket connection.
    #[cfg(unix)]
    Unix(UnixTransport),
}

impl SocketTransport {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            SocketTransport::Tcp(t) => {
                t.stream().set_read_timeout(timeout)?;
                t.stream().set_write_timeout(timeout)
            }
            #[cfg(unix)]
            SocketTransport::Unix(t) => {
                t.stream().set_read_timeout(timeout)?;
                t.stream().set_write_timeout(timeout)
            }
        }
    }
}

impl Transport for SocketTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.send(bytes),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.send(bytes),
        }
    }
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.receive(buf),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.receive(buf),
        }
    }
    fn flush(&mut self) -> Result<(), Error> {
        match self {
            SocketTransport::Tcp(t) => t.flush(),
            #[cfg(unix)]
            SocketTransport::Unix(t) => t.flush(),
        }
    }
}

/// Refuses modes that need TLS on a TCP connection (this driver has no TLS yet).
pub(crate) fn check_tls(config: &Config, host: &Host) -> Result<(), Error> {
    if matches!(host, Host::Tcp(_)) && config.get_ssl_mode().requires_tls() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "sslmode={} needs TLS, which this client does not support yet; use \
                 sslmode=disable or prefer, or a Unix socket",
                config.get_ssl_mode()
            ),
        ));
    }
    Ok(())
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

fn open_socket(
    host: &Host,
    port: u16,
    deadline: Option<Instant>,
) -> Result<SocketTransport, Error> {
    match host {
        Host::Tcp(name) => {
            let addrs: Vec<_> = (name.as_str(), port).to_socket_addrs()?.collect();
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
                        return Ok(SocketTransport::Tcp(TcpTransport::from_stream(stream)?));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.map(Error::from).unwrap_or_else(|| {
                Error::new(ErrorKind::Io, format!("host \"{name}\" has no address"))
            }))
        }
        #[cfg(unix)]
        Host::Unix(dir) => Ok(SocketTransport::Unix(UnixTransport::connect_dir(
            dir, port,
        )?)),
        #[cfg(not(unix))]
        Host::Unix(dir) => Err(Error::new(
            ErrorKind::Config,
            format!("Unix sockets are not available here ({})", dir.display()),
        )),
    }
}

fn timeout_error() -> Error {
    Error::new(
        ErrorKind::Io,
        "timeout expired while connecting (connect_timeout)",
    )
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
    /// accepts the start-up; `connect_timeout` bounds each attempt (socket and
    /// authentication). TLS modes that require TLS are refused for now.
    pub fn connect_config(config: &Config) -> Result<Client<SocketTransport>, Error> {
        let startup = config.startup_config();
        let mut attempts = Vec::new();
        for (host, port) in config.endpoints()? {
            let where_ = format!("{host}:{port}");
            let attempt = (|| {
                check_tls(config, &host)?;
                let deadline = config.get_connect_timeout().map(|t| Instant::now() + t);
                let transport = open_socket(&host, port, deadline)?;
                if let Some(d) = deadline {
                    let left = d
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1));
                    transport.set_timeout(Some(left))?;
                }
                let client = Client::connect(transport, &startup)?;
                if deadline.is_some() {
                    client.transport().set_timeout(None)?;
                }
                Ok::<_, Error>(client)
            })();
            match attempt {
                Ok(client) => return Ok(client),
                // A configuration error is the same for every host.
                Err(e) if e.kind() == ErrorKind::Config => return Err(e),
                Err(e) => attempts.push((where_, e)),
            }
        }
        Err(all_failed(attempts))
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

impl Client<SocketTransport> {
    /// Waits up to `timeout` for a notification (`LISTEN` first): returns one already
    /// received, or the next the server sends, or `None` when the time is up (using a
    /// socket read timeout, removed again afterwards).
    pub fn wait_for_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Notification>, Error> {
        if let Some(n) = self.core.session.notifications.pop_front() {
            return Ok(Some(n));
        }
        self.core.check_open()?;
        let deadline = Instant::now() + timeout;
        let result = loop {
            match self.core.idle_poll() {
                Ok(Some(n)) => break Ok(Some(n)),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Ok(None);
            }
            if let Err(e) = self.core.io.0.set_timeout(Some(left)) {
                break Err(e.into());
            }
            match self.core.io.0.receive(&mut self.core.session.input) {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => break Ok(None),
                Err(e) => {
                    self.core.broken = true;
                    break Err(e);
                }
            }
        };
        if !self.core.broken
            && let Err(e) = self.core.io.0.set_timeout(None)
        {
            self.core.broken = true;
            return Err(e.into());
        }
        result
    }
}
