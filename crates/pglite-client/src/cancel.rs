//! Cancelling a running statement: PostgreSQL's `CancelRequest`, sent on a new
//! connection to the same server (over TLS when the session uses TLS, with the same
//! certificate checks), naming the session by its `BackendKeyData`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;

use crate::client::Client;
use crate::connect::SocketTransport;
use crate::error::{Error, ErrorKind};
#[cfg(pglite_tls)]
use crate::tls::TlsTarget;
use crate::transport::TcpTransport;
#[cfg(pglite_tls)]
use crate::transport::Transport;
#[cfg(unix)]
use crate::transport::UnixTransport;

/// Where a session's server is, for a cancel request.
#[derive(Clone, Debug)]
pub(crate) enum CancelAddr {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

/// The server end of a session: its address and, for a TLS session, how TLS was set
/// up.
#[derive(Clone, Debug)]
pub(crate) struct CancelTarget {
    pub(crate) addr: CancelAddr,
    #[cfg(pglite_tls)]
    pub(crate) tls: Option<TlsTarget>,
}

impl CancelTarget {
    pub(crate) fn tcp(stream: &TcpStream) -> Result<CancelTarget, Error> {
        Ok(CancelTarget {
            addr: CancelAddr::Tcp(stream.peer_addr()?),
            #[cfg(pglite_tls)]
            tls: None,
        })
    }
}

/// Cancels the statement running on the session it was taken from
/// ([`Client::cancel_token`], `AsyncClient::cancel_token`).
///
/// It is `Send + Sync + Clone`: hand it to another thread or task and call
/// [`cancel`](CancelToken::cancel) (blocking) or `cancel_async` (async) while the
/// session is busy. The server then ends the running statement with SQLSTATE `57014`
/// (`query_canceled`); the session stays usable. Cancelling an idle session does
/// nothing. As in PostgreSQL, success only means the request was delivered: a
/// statement that finished just before is not affected.
///
/// A token belongs to one server session: after the client reconnected, take a new
/// one (the old one then cancels nothing).
#[derive(Clone)]
pub struct CancelToken {
    target: CancelTarget,
    process_id: i32,
    secret_key: i32,
    timeout: Option<Duration>,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("addr", &self.target.addr)
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl CancelToken {
    pub(crate) fn new(
        target: CancelTarget,
        backend_key: Option<(i32, i32)>,
        timeout: Option<Duration>,
    ) -> Result<CancelToken, Error> {
        let (process_id, secret_key) = backend_key.ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                "the server sent no BackendKeyData, so its statements cannot be cancelled",
            )
        })?;
        Ok(CancelToken {
            target,
            process_id,
            secret_key,
            timeout,
        })
    }

    /// The server process whose statement this token cancels.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    fn request(&self) -> BytesMut {
        let mut buf = BytesMut::new();
        frontend::cancel_request(self.process_id, self.secret_key, &mut buf);
        buf
    }

    /// Sends the cancel request and waits until the server has taken it (it closes
    /// the connection). Blocking; `connect_timeout` of the session's `Config`, if
    /// any, bounds the connection and the wait.
    pub fn cancel(&self) -> Result<(), Error> {
        let request = self.request();
        match &self.target.addr {
            CancelAddr::Tcp(addr) => {
                #[cfg_attr(not(pglite_tls), allow(unused_mut))]
                let mut stream = match self.timeout {
                    Some(t) => TcpStream::connect_timeout(addr, t)?,
                    None => TcpStream::connect(addr)?,
                };
                stream.set_read_timeout(self.timeout)?;
                stream.set_write_timeout(self.timeout)?;
                #[cfg(pglite_tls)]
                if let Some(tls) = &self.target.tls {
                    if !crate::transport::request_tls(&mut stream)? {
                        return Err(Error::new(
                            ErrorKind::Tls,
                            "the server no longer accepts TLS, which the session uses; the \
                             cancel request was not sent",
                        ));
                    }
                    let (mut transport, _) =
                        crate::transport::TlsTransport::handshake(stream, tls.clone())?;
                    transport.send(&request)?;
                    transport.flush()?;
                    // The server closes the connection once it has the request.
                    let _ = transport.receive(&mut BytesMut::new());
                    return Ok(());
                }
                send_and_wait(stream, &request)
            }
            #[cfg(unix)]
            CancelAddr::Unix(path) => {
                let stream = std::os::unix::net::UnixStream::connect(path)?;
                stream.set_read_timeout(self.timeout)?;
                stream.set_write_timeout(self.timeout)?;
                send_and_wait(stream, &request)
            }
        }
    }

    /// [`cancel`](CancelToken::cancel) for async code: over tokio sockets, or over
    /// wasi:sockets on wasm32-wasip2 (`wstd`).
    #[cfg(pglite_async)]
    pub async fn cancel_async(&self) -> Result<(), Error> {
        use crate::async_client::socket;
        let work = socket::send_cancel(&self.target, self.request());
        match self.timeout {
            Some(t) => socket::timeout(t, work)
                .await
                .unwrap_or_else(|| Err(crate::connect::timeout_error())),
            None => work.await,
        }
    }
}

/// Writes the request and reads until the server closes the connection.
fn send_and_wait(mut stream: impl Read + Write, request: &[u8]) -> Result<(), Error> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut buf = [0u8; 64];
    // Any answer or error here means the server has finished with the request.
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    Ok(())
}

impl SocketTransport {
    fn cancel_target(&self) -> Result<CancelTarget, Error> {
        match self {
            SocketTransport::Tcp(t) => CancelTarget::tcp(t.stream()),
            #[cfg(pglite_tls)]
            SocketTransport::Tls(t) => Ok(CancelTarget {
                addr: CancelAddr::Tcp(t.tcp_stream().peer_addr()?),
                tls: Some(t.target().clone()),
            }),
            #[cfg(unix)]
            SocketTransport::Unix(t) => unix_target(t),
        }
    }
}

#[cfg(unix)]
fn unix_target(t: &UnixTransport) -> Result<CancelTarget, Error> {
    let addr = t.stream().peer_addr()?;
    let path = addr.as_pathname().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            "the Unix socket has no path to send a cancel request to",
        )
    })?;
    Ok(CancelTarget {
        addr: CancelAddr::Unix(path.to_path_buf()),
        #[cfg(pglite_tls)]
        tls: None,
    })
}

impl Client<SocketTransport> {
    /// A token that cancels this session's running statement from another thread
    /// (same host, same TLS settings; see [`CancelToken`]).
    pub fn cancel_token(&self) -> Result<CancelToken, Error> {
        let timeout = self
            .core
            .reconnect
            .opener
            .as_ref()
            .and_then(|o| o.connect_timeout());
        CancelToken::new(
            self.transport().cancel_target()?,
            self.backend_key(),
            timeout,
        )
    }
}

impl Client<TcpTransport> {
    /// A token that cancels this session's running statement from another thread.
    pub fn cancel_token(&self) -> Result<CancelToken, Error> {
        CancelToken::new(
            CancelTarget::tcp(self.transport().stream())?,
            self.backend_key(),
            None,
        )
    }
}

#[cfg(unix)]
impl Client<UnixTransport> {
    /// A token that cancels this session's running statement from another thread.
    pub fn cancel_token(&self) -> Result<CancelToken, Error> {
        CancelToken::new(unix_target(self.transport())?, self.backend_key(), None)
    }
}
