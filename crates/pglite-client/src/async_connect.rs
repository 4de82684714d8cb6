//! The tokio driver's connections: TCP (plain or TLS with tokio-rustls) or Unix
//! socket, libpq's `sslmode` attempts (shared with the blocking driver in
//! `connect.rs`), the opener that reconnects an [`AsyncClient`], and async cancel
//! requests.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use crate::async_client::{AsyncClient, Stream, TokioIo};
use crate::auth::TlsBinding;
use crate::cancel::{CancelAddr, CancelTarget, CancelToken};
#[cfg(feature = "tls")]
use crate::connect::tls_refused;
use crate::connect::{
    TlsConnector, TlsUse, all_failed, first_attempt, second_attempt, timeout_error,
};
use crate::connstr::{Config, Endpoint, Host, SslMode};
use crate::copy::CHUNK;
use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::reconnect::{OpenFuture, Reopen};

/// Sends `SSLRequest` and reads the one-byte answer (nothing more: see
/// `transport::request_tls`).
#[cfg(feature = "tls")]
async fn request_tls(stream: &mut TcpStream) -> Result<bool, Error> {
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await?;
    let answer = stream.read_u8().await?;
    crate::transport::ssl_answer(answer)
}

/// The TLS handshake on a stream whose server accepted `SSLRequest`.
#[cfg(feature = "tls")]
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

/// Opens the socket for one attempt and negotiates TLS as `tls_use` says. Errors
/// come with whether TLS was in use.
async fn open(
    endpoint: &Endpoint,
    mode: SslMode,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
) -> Result<(TokioIo, Option<TlsBinding>), (Error, bool)> {
    let plain = |e: Error| (e, false);
    let io = |stream, target| TokioIo {
        stream,
        out: Vec::with_capacity(CHUNK),
        target,
    };
    match &endpoint.host {
        Host::Tcp(name) => {
            #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
            let mut stream = TcpStream::connect((name.as_str(), endpoint.port))
                .await
                .map_err(|e| plain(e.into()))?;
            stream.set_nodelay(true).map_err(|e| plain(e.into()))?;
            let addr = CancelAddr::Tcp(stream.peer_addr().map_err(|e| plain(e.into()))?);
            #[cfg(feature = "tls")]
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
                    return Ok((io(Stream::Tls(Box::new(tls)), cancel), Some(binding)));
                }
                if tls_use == TlsUse::Required {
                    return Err(plain(tls_refused(mode, endpoint)));
                }
            }
            let _ = (mode, tls_use, connector);
            let cancel = CancelTarget {
                addr,
                #[cfg(feature = "tls")]
                tls: None,
            };
            Ok((io(Stream::Tcp(stream), cancel), None))
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", endpoint.port));
            let stream = UnixStream::connect(&path)
                .await
                .map_err(|e| plain(e.into()))?;
            let cancel = CancelTarget {
                addr: CancelAddr::Unix(path),
                #[cfg(feature = "tls")]
                tls: None,
            };
            Ok((io(Stream::Unix(stream), cancel), None))
        }
        #[cfg(not(unix))]
        Host::Unix(dir) => Err(plain(Error::new(
            ErrorKind::Config,
            format!("Unix sockets are not available here ({})", dir.display()),
        ))),
    }
}

/// One attempt (socket, TLS, start-up), bounded by `connect_timeout`.
async fn attempt(
    endpoint: &Endpoint,
    config: &Config,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
) -> Result<Core<TokioIo>, (Error, bool)> {
    let work = async {
        let (io, binding) = open(endpoint, config.get_ssl_mode(), tls_use, connector).await?;
        let used_tls = binding.is_some();
        Core::connect_with(io, &config.startup_config(), binding.as_ref())
            .await
            .map_err(|e| (e, used_tls))
    };
    match config.get_connect_timeout() {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .unwrap_or_else(|_| Err((timeout_error(), false))),
        None => work.await,
    }
}

/// Each endpoint in turn, with libpq's `sslmode` attempts.
async fn connect_core(
    config: &Config,
    connector: Option<&TlsConnector>,
) -> Result<Core<TokioIo>, Error> {
    let mode = config.get_ssl_mode();
    let mut attempts = Vec::new();
    for endpoint in config.targets()? {
        let where_ = format!("{}:{}", endpoint.host, endpoint.port);
        let mut tls_use = first_attempt(mode, &endpoint.host, connector)?;
        let result = loop {
            match attempt(&endpoint, config, tls_use, connector).await {
                Ok(core) => break Ok(core),
                Err((e, used_tls)) => match second_attempt(mode, &e, used_tls) {
                    Some(next) if next != tls_use => tls_use = next,
                    _ => break Err(e),
                },
            }
        };
        match result {
            Ok(core) => return Ok(core),
            Err(e) if e.kind() == ErrorKind::Config => return Err(e),
            Err(e) => attempts.push((where_, e)),
        }
    }
    Err(all_failed(attempts))
}

/// Reconnects an [`AsyncClient`] with the `Config` it was made from.
struct AsyncOpener {
    config: Config,
    connector: Option<TlsConnector>,
}

impl Reopen<TokioIo> for AsyncOpener {
    fn reopen(&self) -> OpenFuture<'_, TokioIo> {
        Box::pin(connect_core(&self.config, self.connector.as_ref()))
    }

    fn is_blocking(&self) -> bool {
        false
    }

    fn connect_timeout(&self) -> Option<std::time::Duration> {
        self.config.get_connect_timeout()
    }
}

/// Connects as `config` says; the core can reconnect with it later.
pub(crate) async fn connect(config: &Config) -> Result<Core<TokioIo>, Error> {
    let connector = TlsConnector::from_config(config)?;
    let mut core = connect_core(config, connector.as_ref()).await?;
    core.reconnect.opener = Some(Arc::new(AsyncOpener {
        config: config.clone(),
        connector,
    }));
    Ok(core)
}

/// Delivers a cancel request to `target` and waits until the server closes the
/// connection.
pub(crate) async fn send_cancel(target: &CancelTarget, request: BytesMut) -> Result<(), Error> {
    let mut buf = [0u8; 64];
    match &target.addr {
        CancelAddr::Tcp(addr) => {
            let mut stream = TcpStream::connect(addr).await?;
            #[cfg(feature = "tls")]
            if let Some(tls) = &target.tls {
                if !request_tls(&mut stream).await? {
                    return Err(Error::new(
                        ErrorKind::Tls,
                        "the server no longer accepts TLS, which the session uses; the \
                         cancel request was not sent",
                    ));
                }
                let (mut stream, _) = handshake(stream, tls).await?;
                stream.write_all(&request).await?;
                stream.flush().await?;
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                return Ok(());
            }
            stream.write_all(&request).await?;
            stream.flush().await?;
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            Ok(())
        }
        #[cfg(unix)]
        CancelAddr::Unix(path) => {
            let mut stream = UnixStream::connect(path).await?;
            stream.write_all(&request).await?;
            stream.flush().await?;
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            Ok(())
        }
    }
}

impl AsyncClient {
    /// A token that cancels this session's running statement from another task or
    /// thread (same host, same TLS settings): `token.cancel_async().await`, or the
    /// blocking `token.cancel()`. See [`CancelToken`].
    pub fn cancel_token(&self) -> Result<CancelToken, Error> {
        let timeout = self
            .core
            .reconnect
            .opener
            .as_ref()
            .and_then(|o| o.connect_timeout());
        CancelToken::new(
            self.core.io.target.clone(),
            self.core.session.backend_key,
            timeout,
        )
    }

    /// Sets a run-time parameter for the session (`set_config(name, value, false)`,
    /// so `value` is read as in `postgresql.conf`: `search_path` takes a list) and
    /// remembers it: after an automatic reconnect it is set again. See
    /// [`Client::set_param`](crate::Client::set_param).
    pub async fn set_param(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.enter().await?;
        let result = self.core.set_param(name, value).await;
        self.in_flight = false;
        result
    }

    /// True if the session uses TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Stream::Tls(_) = self.core.io.stream {
            return true;
        }
        false
    }
}
