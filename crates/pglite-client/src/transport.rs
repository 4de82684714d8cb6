//! Byte pipes to a PostgreSQL backend: the [`Transport`] trait and blocking socket
//! implementations.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;

use crate::error::Error;

/// A byte pipe to a PostgreSQL backend.
///
/// The client writes whole frontend messages with [`send`](Transport::send) and then
/// calls [`receive`](Transport::receive) until it has the replies it needs. Both an
/// in-process engine (which answers a whole batch at once) and a socket (which may
/// deliver a message split over many reads) fit this shape.
pub trait Transport {
    /// Queue frontend bytes (may buffer).
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error>;

    /// Flush queued bytes, then append at least one byte of backend output to `buf`
    /// (blocking until some is available), or fail. An in-process engine returns its
    /// whole reply at once; a socket returns whatever `read()` gave.
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error>;

    /// Push queued bytes towards the backend without waiting for a reply. Used after
    /// the final `Terminate`. The default does nothing.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Wait up to `timeout` for backend output that comes without a request (a
    /// notification from another session): append what arrived and return `true`, or
    /// return `false` when the time is up. Used by
    /// [`Client::wait_for_notification`](crate::Client::wait_for_notification).
    ///
    /// The default returns `false` at once: right for a backend that only ever speaks
    /// when spoken to, such as the single-session in-process engine, where no other
    /// session can notify.
    fn receive_timeout(&mut self, buf: &mut BytesMut, timeout: Duration) -> Result<bool, Error> {
        let _ = (buf, timeout);
        Ok(false)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        (**self).send(bytes)
    }
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        (**self).receive(buf)
    }
    fn flush(&mut self) -> Result<(), Error> {
        (**self).flush()
    }
    fn receive_timeout(&mut self, buf: &mut BytesMut, timeout: Duration) -> Result<bool, Error> {
        (**self).receive_timeout(buf, timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        (**self).send(bytes)
    }
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        (**self).receive(buf)
    }
    fn flush(&mut self) -> Result<(), Error> {
        (**self).flush()
    }
    fn receive_timeout(&mut self, buf: &mut BytesMut, timeout: Duration) -> Result<bool, Error> {
        (**self).receive_timeout(buf, timeout)
    }
}

/// Size of the write buffer and of each read of the socket transports.
const IO_CHUNK: usize = 64 * 1024;

/// A blocking stream with a write buffer, shared by the TCP and Unix transports.
#[derive(Debug)]
struct Buffered<S> {
    stream: S,
    out: Vec<u8>,
    /// Read buffer, zeroed once: reads land here and only the bytes received are
    /// copied into the caller's buffer (zeroing 64 KiB of it per read costs more).
    scratch: Box<[u8]>,
}

impl<S: Read + Write> Buffered<S> {
    fn new(stream: S) -> Self {
        Buffered {
            stream,
            out: Vec::with_capacity(IO_CHUNK),
            scratch: vec![0; IO_CHUNK].into_boxed_slice(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.out.len() + bytes.len() > IO_CHUNK {
            self.flush()?;
        }
        if bytes.len() >= IO_CHUNK {
            self.stream.write_all(bytes)?;
        } else {
            self.out.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        self.stream.flush()?;
        Ok(())
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.flush()?;
        loop {
            match self.stream.read(&mut self.scratch) {
                Ok(0) => {
                    return Err(Error::from(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )));
                }
                Ok(n) => {
                    buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(pglite_tls)]
pub use tls::TlsTransport;
#[cfg(pglite_tls)]
pub(crate) use tls::request_tls;
#[cfg(all(pglite_tls, pglite_tokio))]
pub(crate) use tls::ssl_answer;

#[cfg(pglite_tls)]
mod tls {
    use std::io::Read as _;
    use std::net::TcpStream;

    use bytes::BytesMut;
    use postgres_protocol::message::frontend;
    use rustls::{ClientConnection, StreamOwned};

    use super::{Buffered, Transport};
    use crate::auth::TlsBinding;
    use crate::error::{Error, ErrorKind};
    use crate::tls::TlsTarget;

    /// A blocking TLS connection to a PostgreSQL server (rustls over TCP), set up with
    /// `SSLRequest` as PostgreSQL expects. Made by `Client::connect_url`/
    /// `connect_config` for `sslmode`s that use TLS.
    pub struct TlsTransport {
        inner: Buffered<StreamOwned<ClientConnection, TcpStream>>,
        target: TlsTarget,
    }

    impl std::fmt::Debug for TlsTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsTransport")
                .field("host", &self.target.host)
                .field("peer", &self.inner.stream.sock.peer_addr().ok())
                .field("protocol", &self.inner.stream.conn.protocol_version())
                .finish_non_exhaustive()
        }
    }

    /// Sends `SSLRequest` on a fresh connection; true if the server answered `S`
    /// (go ahead with TLS), false for `N`. Exactly one byte is read, so nothing
    /// unencrypted that follows it can be mistaken for TLS data (CVE-2021-23222).
    pub(crate) fn request_tls(stream: &mut TcpStream) -> Result<bool, Error> {
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        std::io::Write::write_all(stream, &buf)?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer)?;
        ssl_answer(answer[0])
    }

    /// Interprets the server's one-byte answer to `SSLRequest`.
    pub(crate) fn ssl_answer(byte: u8) -> Result<bool, Error> {
        match byte {
            b'S' => Ok(true),
            b'N' => Ok(false),
            b'E' => Err(Error::protocol(
                "the server answered SSLRequest with an error (a server older than \
                 PostgreSQL 7.0, or not PostgreSQL)",
            )),
            other => Err(Error::protocol(format!(
                "unexpected answer {other:#04x} to SSLRequest"
            ))),
        }
    }

    impl TlsTransport {
        /// Runs the TLS handshake on `stream` (after the server accepted
        /// `SSLRequest`) and returns the transport with the connection's
        /// channel-binding data.
        pub(crate) fn handshake(
            mut stream: TcpStream,
            target: TlsTarget,
        ) -> Result<(TlsTransport, TlsBinding), Error> {
            let mut conn =
                ClientConnection::new(target.connector.client_config(), target.name.clone())
                    .map_err(|e| Error::with_source(ErrorKind::Tls, "TLS set-up", e))?;
            while conn.is_handshaking() {
                conn.complete_io(&mut stream)
                    .map_err(|e| target.connector.handshake_error(e, &target.host))?;
            }
            let binding = crate::tls::binding(conn.peer_certificates());
            let transport = TlsTransport {
                inner: Buffered::new(StreamOwned::new(conn, stream)),
                target,
            };
            Ok((transport, binding))
        }

        /// The underlying TCP socket (e.g. to set read timeouts).
        pub fn tcp_stream(&self) -> &TcpStream {
            &self.inner.stream.sock
        }

        /// The rustls connection (negotiated protocol version, cipher suite, the
        /// server's certificates).
        pub fn connection(&self) -> &ClientConnection {
            &self.inner.stream.conn
        }

        pub(crate) fn target(&self) -> &TlsTarget {
            &self.target
        }
    }

    impl Transport for TlsTransport {
        fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
            self.inner.send(bytes)
        }
        fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
            self.inner.receive(buf)
        }
        fn flush(&mut self) -> Result<(), Error> {
            self.inner.flush()
        }
    }

    impl Drop for TlsTransport {
        /// Says goodbye with a TLS `close_notify` (best effort, never blocks on reads).
        fn drop(&mut self) {
            let stream = &mut self.inner.stream;
            stream.conn.send_close_notify();
            while stream.conn.wants_write() {
                if stream.conn.write_tls(&mut stream.sock).is_err() {
                    break;
                }
            }
        }
    }
}

/// A blocking TCP connection to a PostgreSQL server (no TLS).
#[derive(Debug)]
pub struct TcpTransport {
    inner: Buffered<TcpStream>,
}

impl TcpTransport {
    /// Connects to `addr` (e.g. `"127.0.0.1:5432"`), with `TCP_NODELAY` set.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<TcpTransport, Error> {
        let stream = TcpStream::connect(addr)?;
        TcpTransport::from_stream(stream)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> Result<TcpTransport, Error> {
        stream.set_nodelay(true)?;
        Ok(TcpTransport {
            inner: Buffered::new(stream),
        })
    }

    /// The underlying socket (e.g. to set read timeouts).
    pub fn stream(&self) -> &TcpStream {
        &self.inner.stream
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.send(bytes)
    }
    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.inner.receive(buf)
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }
}

#[cfg(unix)]
pub use unix::UnixTransport;

#[cfg(unix)]
mod unix {
    use std::os::unix::net::UnixStream;
    use std::path::Path;

    use bytes::BytesMut;

    use super::{Buffered, Transport};
    use crate::error::Error;

    /// A blocking Unix-domain-socket connection to a PostgreSQL server.
    #[derive(Debug)]
    pub struct UnixTransport {
        inner: Buffered<UnixStream>,
    }

    impl UnixTransport {
        /// Connects to the socket file at `path`, e.g.
        /// `/var/run/postgresql/.s.PGSQL.5432`.
        pub fn connect(path: impl AsRef<Path>) -> Result<UnixTransport, Error> {
            Ok(UnixTransport::from_stream(UnixStream::connect(path)?))
        }

        /// Connects to the server listening in `dir` on `port`, the way libpq's
        /// `host=/dir port=N` does (socket file `dir/.s.PGSQL.N`).
        pub fn connect_dir(dir: impl AsRef<Path>, port: u16) -> Result<UnixTransport, Error> {
            UnixTransport::connect(dir.as_ref().join(format!(".s.PGSQL.{port}")))
        }

        /// Wraps an already connected stream.
        pub fn from_stream(stream: UnixStream) -> UnixTransport {
            UnixTransport {
                inner: Buffered::new(stream),
            }
        }

        /// The underlying socket.
        pub fn stream(&self) -> &UnixStream {
            &self.inner.stream
        }
    }

    impl Transport for UnixTransport {
        fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
            self.inner.send(bytes)
        }
        fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
            self.inner.receive(buf)
        }
        fn flush(&mut self) -> Result<(), Error> {
            self.inner.flush()
        }
    }
}
