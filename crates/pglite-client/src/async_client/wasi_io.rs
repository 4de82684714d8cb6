//! The wasm32-wasip2 side of [`AsyncClient`]: TCP over wasi:sockets (IPv4 and IPv6,
//! host names through wasi:sockets/ip-name-lookup), waiting through `wstd`'s reactor,
//! `wstd`'s timer, cancel requests over a new wasi:sockets connection, and COPY over
//! `wstd::io::AsyncRead`/`AsyncWrite`. No TLS and no Unix sockets here: `sslmode`
//! values that need TLS are refused before a socket is opened (`connect.rs`).
//!
//! Everything that waits registers with the reactor of the running
//! `wstd::runtime::block_on` (or `#[wstd::main]`), so the client must be used — and
//! dropped — inside it.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasip2::sockets::tcp::{ShutdownType, TcpSocket};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use wstd::future::FutureExt;
use wstd::io::{AsyncInputStream, AsyncOutputStream, AsyncRead, AsyncWrite};
use wstd::runtime::AsyncPollable;

use super::{AsyncClient, call};
use crate::auth::TlsBinding;
use crate::cancel::{CancelAddr, CancelTarget};
use crate::connect::{TlsConnector, TlsUse};
use crate::connstr::{Endpoint, Host, SslMode};
use crate::copy::{CHUNK, CopySink, CopySource};
use crate::error::{Error, ErrorKind};
use crate::io::Io;

/// Buffered wasi:sockets TCP I/O for the core.
pub(crate) struct WasiIo {
    // Field order is drop order: the streams are children of the socket and must go
    // first.
    input: AsyncInputStream,
    output: AsyncOutputStream,
    socket: TcpSocket,
    /// Frontend bytes not yet written.
    out: Vec<u8>,
    /// Where reads land before they are appended to the caller's buffer, so that a
    /// dropped `receive` (a timeout) never leaves a half-filled buffer behind.
    scratch: Box<[u8]>,
    /// Where cancel requests for this session go.
    target: CancelTarget,
}

impl std::fmt::Debug for WasiIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiIo")
            .field("socket", &self.socket)
            .field("queued", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl WasiIo {
    /// Where cancel requests for this session go.
    pub(crate) fn cancel_target(&self) -> &CancelTarget {
        &self.target
    }

    /// Always false: there is no TLS on wasm32-wasip2.
    pub(crate) fn is_tls(&self) -> bool {
        false
    }

    /// Ends the connection from this side (shuts the socket down for sending), so
    /// that the server ends the session — rolling back an open transaction — now,
    /// rather than when the client reconnects or is dropped. Errors are ignored: the
    /// connection is being given up.
    pub(crate) async fn shut_down(&mut self) {
        self.out.clear();
        let _ = self.socket.shutdown(ShutdownType::Send);
    }

    async fn write_out(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            self.output.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}

impl Io for WasiIo {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.out.len() + bytes.len() > CHUNK {
            self.write_out().await?;
        }
        if bytes.len() >= CHUNK {
            self.output.write_all(bytes).await?;
        } else {
            self.out.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Cancel-safe when nothing is queued: the stream is read only once it is ready,
    /// and the bytes are appended in the same poll.
    async fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.write_out().await?;
        let n = self.input.read(&mut self.scratch).await?;
        if n == 0 {
            return Err(Error::from(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        buf.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.write_out().await?;
        self.output.flush().await?;
        Ok(())
    }
}

/// A wasi:sockets error as an [`Error`] (`what` failed) whose source is an
/// `io::Error` of the matching kind naming the WASI error code.
fn socket_error(what: String, code: ErrorCode) -> Error {
    let kind = match code {
        ErrorCode::AccessDenied => io::ErrorKind::PermissionDenied,
        ErrorCode::NotSupported => io::ErrorKind::Unsupported,
        ErrorCode::InvalidArgument => io::ErrorKind::InvalidInput,
        ErrorCode::OutOfMemory => io::ErrorKind::OutOfMemory,
        ErrorCode::Timeout => io::ErrorKind::TimedOut,
        ErrorCode::WouldBlock => io::ErrorKind::WouldBlock,
        ErrorCode::AddressInUse => io::ErrorKind::AddrInUse,
        ErrorCode::AddressNotBindable => io::ErrorKind::AddrNotAvailable,
        ErrorCode::RemoteUnreachable => io::ErrorKind::HostUnreachable,
        ErrorCode::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        ErrorCode::ConnectionReset => io::ErrorKind::ConnectionReset,
        ErrorCode::ConnectionAborted => io::ErrorKind::ConnectionAborted,
        ErrorCode::NameUnresolvable => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    let mut cause = format!("wasi:sockets error {}", code.name());
    if code == ErrorCode::AccessDenied {
        cause.push_str(
            " (the WebAssembly host must allow this network access, e.g. \
             `wasmtime run -S inherit-network`)",
        );
    }
    Error::with_source(ErrorKind::Io, what, io::Error::new(kind, cause))
}

/// The addresses of `name`: an IP literal as it is, anything else through
/// wasi:sockets/ip-name-lookup (which the host must allow).
async fn resolve(network: &Network, name: &str) -> Result<Vec<IpAddr>, Error> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let lookup = |code| socket_error(format!("could not resolve host \"{name}\""), code);
    let stream = resolve_addresses(network, name).map_err(lookup)?;
    let mut ready: Option<AsyncPollable> = None;
    let mut addresses = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4((a, b, c, d)))) => {
                addresses.push(IpAddr::from([a, b, c, d]));
            }
            Ok(Some(IpAddress::Ipv6((a, b, c, d, e, f, g, h)))) => {
                addresses.push(IpAddr::from([a, b, c, d, e, f, g, h]));
            }
            Ok(None) => return Ok(addresses),
            Err(ErrorCode::WouldBlock) => {
                ready
                    .get_or_insert_with(|| AsyncPollable::new(stream.subscribe()))
                    .wait_for()
                    .await
            }
            Err(code) => return Err(lookup(code)),
        }
    }
}

/// Connects one TCP socket to `target`.
async fn connect(network: &Network, target: SocketAddr) -> Result<WasiIo, Error> {
    let port = target.port();
    let (family, remote) = match target {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            let address = (a, b, c, d);
            (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
            )
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            let address = (a, b, c, d, e, f, g, h);
            (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port,
                    flow_info: v6.flowinfo(),
                    address,
                    scope_id: v6.scope_id(),
                }),
            )
        }
    };
    let failed = |code| socket_error(format!("could not connect to {target}"), code);
    let socket = create_tcp_socket(family).map_err(failed)?;
    socket.start_connect(network, remote).map_err(failed)?;
    let (input, output) = {
        let ready = AsyncPollable::new(socket.subscribe());
        loop {
            ready.wait_for().await;
            match socket.finish_connect() {
                Ok(streams) => break streams,
                Err(ErrorCode::WouldBlock) => continue,
                Err(code) => return Err(failed(code)),
            }
        }
    };
    Ok(WasiIo {
        input: AsyncInputStream::new(input),
        output: AsyncOutputStream::new(output),
        socket,
        out: Vec::with_capacity(CHUNK),
        scratch: vec![0; CHUNK].into_boxed_slice(),
        target: CancelTarget {
            addr: CancelAddr::Tcp(target),
        },
    })
}

/// Opens a TCP connection for one attempt, trying each address of the host in turn.
/// Errors come with whether TLS was in use (never, here: `connect.rs` refuses the
/// `sslmode`s that need TLS, and the others make no `SSLRequest` in builds without
/// TLS).
pub(crate) async fn open(
    endpoint: &Endpoint,
    mode: SslMode,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
) -> Result<(WasiIo, Option<TlsBinding>), (Error, bool)> {
    let _ = (mode, tls_use, connector);
    let io = open_tcp(&endpoint.host, endpoint.port)
        .await
        .map_err(|e| (e, false))?;
    Ok((io, None))
}

async fn open_tcp(host: &Host, port: u16) -> Result<WasiIo, Error> {
    let name = match host {
        Host::Tcp(name) => name,
        Host::Unix(dir) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "Unix sockets are not available on wasm32-wasip2 ({}); connect over TCP",
                    dir.display()
                ),
            ));
        }
    };
    let network = instance_network();
    let mut last = None;
    for ip in resolve(&network, name).await? {
        match connect(&network, SocketAddr::new(ip, port)).await {
            Ok(io) => return Ok(io),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| Error::new(ErrorKind::Io, format!("host \"{name}\" has no address"))))
}

/// Delivers a cancel request to `target` over a new wasi:sockets TCP connection and
/// waits until the server closes it.
pub(crate) async fn send_cancel(target: &CancelTarget, request: BytesMut) -> Result<(), Error> {
    let CancelAddr::Tcp(addr) = target.addr;
    let mut io = connect(&instance_network(), addr).await?;
    io.send(&request).await?;
    io.flush().await?;
    let mut answer = BytesMut::new();
    // Any answer or error here means the server has finished with the request.
    while io.receive(&mut answer).await.is_ok() {
        answer.clear();
    }
    Ok(())
}

/// Runs `future` for at most `limit`; `None` when the time ran out first (the future
/// is then dropped).
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    future.timeout(wstd::time::Duration::from(limit)).await.ok()
}

/// Waits for `duration` (`wstd::task::sleep`).
pub(crate) async fn sleep(duration: Duration) {
    wstd::task::sleep(wstd::time::Duration::from(duration)).await;
}

struct WasiReader<R>(R);

impl<R: AsyncRead> CopySource for WasiReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }
}

struct WasiWriter<W>(W);

impl<W: AsyncWrite> CopySink for WasiWriter<W> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data).await
    }
    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }
}

impl AsyncClient {
    /// Runs `COPY ... FROM STDIN` and streams `reader` (a `wstd::io::AsyncRead`, e.g.
    /// `wstd::io::Cursor` or a file's stream) as its data; returns the number of rows
    /// copied. A failing reader aborts the COPY (`CopyFail`).
    pub async fn copy_in<R: AsyncRead>(&mut self, sql: &str, reader: R) -> Result<u64, Error> {
        call!(
            self,
            crate::copy::copy_in(&mut self.core, sql, WasiReader(reader))
        )
    }

    /// Runs `COPY ... TO STDOUT`, writing the data to `writer` (a
    /// `wstd::io::AsyncWrite`); returns the number of rows copied.
    pub async fn copy_out<W: AsyncWrite>(&mut self, sql: &str, writer: W) -> Result<u64, Error> {
        call!(
            self,
            crate::copy::copy_out(&mut self.core, sql, WasiWriter(writer))
        )
    }
}
