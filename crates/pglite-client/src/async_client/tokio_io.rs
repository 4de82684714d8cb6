//! The tokio side of [`AsyncClient`]: TCP/Unix sockets, the timer, and COPY over
//! tokio's `AsyncRead`/`AsyncWrite`.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::{AsyncClient, call};
use crate::connstr::Host;
use crate::copy::{CHUNK, CopySink, CopySource};
use crate::error::Error;
use crate::io::Io;

/// A tokio socket to a PostgreSQL server.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Buffered async socket I/O for the core.
#[derive(Debug)]
pub(crate) struct TokioIo {
    stream: Stream,
    out: Vec<u8>,
}

impl TokioIo {
    async fn write_out(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            match &mut self.stream {
                Stream::Tcp(s) => s.write_all(&self.out).await?,
                #[cfg(unix)]
                Stream::Unix(s) => s.write_all(&self.out).await?,
            }
            self.out.clear();
        }
        Ok(())
    }

    async fn write_direct(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).await?,
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
            #[cfg(unix)]
            Stream::Unix(s) => s.flush().await?,
        }
        Ok(())
    }
}

/// Opens a TCP (`TCP_NODELAY`) or Unix socket to the server.
pub(super) async fn open(host: &Host, port: u16) -> Result<TokioIo, Error> {
    let stream = match host {
        Host::Tcp(name) => {
            let s = TcpStream::connect((name.as_str(), port)).await?;
            s.set_nodelay(true)?;
            Stream::Tcp(s)
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            Stream::Unix(UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?)
        }
        #[cfg(not(unix))]
        Host::Unix(dir) => {
            return Err(Error::new(
                crate::error::ErrorKind::Config,
                format!("Unix sockets are not available here ({})", dir.display()),
            ));
        }
    };
    Ok(TokioIo {
        stream,
        out: Vec::with_capacity(CHUNK),
    })
}

/// Runs `future` for at most `limit`; `None` when the time ran out first (the future
/// is then dropped).
pub(super) async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(limit, future).await.ok()
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
