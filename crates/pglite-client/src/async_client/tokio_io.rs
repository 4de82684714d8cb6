//! The tokio side of [`AsyncClient`]: TCP (plain or TLS with tokio-rustls) and Unix
//! sockets, the timer, cancel requests, and COPY over tokio's `AsyncRead`/`AsyncWrite`.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::{AsyncClient, call};
use crate::auth::TlsBinding;
use crate::cancel::{CancelAddr, CancelTarget};
#[cfg(pglite_tls)]
use crate::connect::tls_refused;
use crate::connect::{TlsConnector, TlsUse};
use crate::connstr::{Endpoint, Host, SslMode};
use crate::copy::{CHUNK, CopySink, CopySource};
use crate::error::Error;
use crate::io::Io;

/// A tokio socket to a PostgreSQL server.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    #[cfg(pglite_tls)]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Buffered async socket I/O for the core.
#[derive(Debug)]
pub(crate) struct TokioIo {
    stream: Stream,
    out: Vec<u8>,
    /// Where cancel requests for this session go.
    target: CancelTarget,
}

impl TokioIo {
    fn new(stream: Stream, target: CancelTarget) -> TokioIo {
        TokioIo {
            stream,
            out: Vec::with_capacity(CHUNK),
            target,
        }
    }

    /// Where cancel requests for this session go.
    pub(crate) fn cancel_target(&self) -> &CancelTarget {
        &self.target
    }

    /// True if the session uses TLS.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(pglite_tls)]
        if let Stream::Tls(_) = self.stream {
            return true;
        }
        false
    }

    async fn write_out(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            match &mut self.stream {
                Stream::Tcp(s) => s.write_all(&self.out).await?,
                #[cfg(pglite_tls)]
                Stream::Tls(s) => s.write_all(&self.out).await?,
                #[cfg(unix)]
                Stream::Unix(s) => s.write_all(&self.out).await?,
            }
            self.out.clear();
        }
        Ok(())
    }

    /// Ends the connection from this side (shuts the socket down for writing), so
    /// that the server ends the session — rolling back an open transaction — now,
    /// rather than when the client reconnects or is dropped. Errors are ignored: the
    /// connection is being given up.
    pub(crate) async fn shut_down(&mut self) {
        self.out.clear();
        let _ = match &mut self.stream {
            Stream::Tcp(s) => s.shutdown().await,
            // Under TLS too the TCP socket itself: the session is abandoned mid-exchange.
            #[cfg(pglite_tls)]
            Stream::Tls(s) => s.get_mut().0.shutdown().await,
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown().await,
        };
    }

    async fn write_direct(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).await?,
            #[cfg(pglite_tls)]
            Stream::Tls(s) => s.write_all(bytes).await?,
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes).await?,
        }
        Ok(())
    }
}

impl Io for TokioIo {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.out.len() + bytes.len() > CHUNK {
            self.write_out().await?;
        }
        if bytes.len() >= CHUNK {
            self.write_direct(bytes).await
        } else {
            self.out.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Cancel-safe when nothing is queued (`read_buf` loses no data when dropped).
    async fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.write_out().await?;
        buf.reserve(CHUNK);
        let n = match &mut self.stream {
            Stream::Tcp(s) => s.read_buf(buf).await?,
            #[cfg(pglite_tls)]
            Stream::Tls(s) => s.read_buf(buf).await?,
            #[cfg(unix)]
            Stream::Unix(s) => s.read_buf(buf).await?,
        };
        if n == 0 {
            return Err(Error::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.write_out().await?;
        match &mut self.stream {
            Stream::Tcp(s) => s.flush().await?,
            #[cfg(pglite_tls)]
            Stream::Tls(s) => s.flush().await?,
            #[cfg(unix)]
            Stream::Unix(s) => s.flush().await?,
        }
        Ok(())
    }
}

/// Sends `SSLRequest` and reads the one-byte answer (nothing more: see
/// `transport::request_tls`).
#[cfg(pglite_tls)]
async fn request_tls(stream: &mut TcpStream) -> Result<bool, Error> {
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await?;
    let answer = stream.read_u8().await?;
    crate::transport::ssl_answer(answer)
}

/// The TLS handshake on a stream whose server accepted `SSLRequest`.
#[cfg(pglite_tls)]
async fn handshake(
    stream: TcpStream,
    target: &crate::tls::TlsTarget,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, TlsBinding), Error> {
    let connector = tokio_rustls::TlsConnector::from(target.connector.client_config());
    let tls = connector
        .connect(target.name.clone(), stream)
        .await
        .map_err(|e| target.connector.handshake_error(e, &target.host))?;
    let binding = crate::tls::binding(tls.get_ref().1.peer_certificates());
    Ok((tls, binding))
}

/// Opens the socket for one attempt (TCP with `TCP_NODELAY`, or Unix) and negotiates
/// TLS as `tls_use` says. Errors come with whether TLS was in use.
pub(crate) async fn open(
    endpoint: &Endpoint,
    mode: SslMode,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
) -> Result<(TokioIo, Option<TlsBinding>), (Error, bool)> {
    let plain = |e: Error| (e, false);
    match &endpoint.host {
        Host::Tcp(name) => {
            #[cfg_attr(not(pglite_tls), allow(unused_mut))]
            let mut stream = TcpStream::connect((name.as_str(), endpoint.port))
                .await
                .map_err(|e| plain(e.into()))?;
            stream.set_nodelay(true).map_err(|e| plain(e.into()))?;
            let addr = CancelAddr::Tcp(stream.peer_addr().map_err(|e| plain(e.into()))?);
            #[cfg(pglite_tls)]
            if tls_use != TlsUse::Never
                && let Some(connector) = connector
            {
                if request_tls(&mut stream).await.map_err(plain)? {
                    let target = connector.target(&endpoint.tls_name).map_err(plain)?;
                    let (tls, binding) = handshake(stream, &target).await.map_err(|e| (e, true))?;
                    let cancel = CancelTarget {
                        addr,
                        tls: Some(target),
                    };
                    let io = TokioIo::new(Stream::Tls(Box::new(tls)), cancel);
                    return Ok((io, Some(binding)));
                }
                if tls_use == TlsUse::Required {
                    return Err(plain(tls_refused(mode, endpoint)));
                }
            }
            let _ = (mode, tls_use, connector);
            let cancel = CancelTarget {
                addr,
                #[cfg(pglite_tls)]
                tls: None,
            };
            Ok((TokioIo::new(Stream::Tcp(stream), cancel), None))
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", endpoint.port));
            let stream = UnixStream::connect(&path)
                .await
                .map_err(|e| plain(e.into()))?;
            let cancel = CancelTarget {
                addr: CancelAddr::Unix(path),
                #[cfg(pglite_tls)]
                tls: None,
            };
            Ok((TokioIo::new(Stream::Unix(stream), cancel), None))
        }
        #[cfg(not(unix))]
        Host::Unix(dir) => Err(plain(Error::new(
            crate::error::ErrorKind::Config,
            format!("Unix sockets are not available here ({})", dir.display()),
        ))),
    }
}

/// Delivers a cancel request to `target` and waits until the server closes the
/// connection.
pub(crate) async fn send_cancel(target: &CancelTarget, request: BytesMut) -> Result<(), Error> {
    match &target.addr {
        CancelAddr::Tcp(addr) => {
            #[cfg_attr(not(pglite_tls), allow(unused_mut))]
            let mut stream = TcpStream::connect(addr).await?;
            #[cfg(pglite_tls)]
            if let Some(tls) = &target.tls {
                if !request_tls(&mut stream).await? {
                    return Err(Error::new(
                        crate::error::ErrorKind::Tls,
                        "the server no longer accepts TLS, which the session uses; the \
                         cancel request was not sent",
                    ));
                }
                let (stream, _) = handshake(stream, tls).await?;
                return send_and_wait(stream, &request).await;
            }
            send_and_wait(stream, &request).await
        }
        #[cfg(unix)]
        CancelAddr::Unix(path) => send_and_wait(UnixStream::connect(path).await?, &request).await,
    }
}

/// Writes the request and reads until the server closes the connection.
async fn send_and_wait(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &[u8],
) -> Result<(), Error> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut buf = [0u8; 64];
    // Any answer or error here means the server has finished with the request.
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    Ok(())
}

/// Runs `future` for at most `limit`; `None` when the time ran out first (the future
/// is then dropped).
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(limit, future).await.ok()
}

/// Waits for `duration` (`tokio::time::sleep`).
pub(crate) async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

struct TokioReader<R>(R);

impl<R: AsyncRead + Unpin> CopySource for TokioReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).await
    }
}

struct TokioWriter<W>(W);

impl<W: AsyncWrite + Unpin> CopySink for TokioWriter<W> {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data).await
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }
}

impl AsyncClient {
    /// Runs `COPY ... FROM STDIN` and streams `reader` (a tokio `AsyncRead`) as its
    /// data; returns the number of rows copied. A failing reader aborts the COPY
    /// (`CopyFail`).
    pub async fn copy_in<R: AsyncRead + Unpin>(
        &mut self,
        sql: &str,
        reader: R,
    ) -> Result<u64, Error> {
        call!(
            self,
            crate::copy::copy_in(&mut self.core, sql, TokioReader(reader))
        )
    }

    /// Runs `COPY ... TO STDOUT`, writing the data to `writer` (a tokio
    /// `AsyncWrite`); returns the number of rows copied.
    pub async fn copy_out<W: AsyncWrite + Unpin>(
        &mut self,
        sql: &str,
        writer: W,
    ) -> Result<u64, Error> {
        call!(
            self,
            crate::copy::copy_out(&mut self.core, sql, TokioWriter(writer))
        )
    }
}
