//! Connections of [`AsyncClient`]: each host in turn with libpq's `sslmode` attempts
//! (shared with the blocking driver in `connect.rs`), `connect_timeout`, the opener
//! that reconnects a client, cancel tokens and `set_param`. The socket itself (and
//! TLS on it) is the socket module's (`async_client::socket`).

use std::sync::Arc;

use crate::async_client::{AsyncClient, SocketIo, socket};
use crate::cancel::CancelToken;
use crate::connect::{
    TlsConnector, TlsUse, all_failed, first_attempt, second_attempt, timeout_error,
};
use crate::connstr::{Config, Endpoint};
use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::reconnect::{OpenFuture, Reopen};

/// One attempt (socket, TLS, start-up), bounded by `connect_timeout`.
async fn attempt(
    endpoint: &Endpoint,
    config: &Config,
    tls_use: TlsUse,
    connector: Option<&TlsConnector>,
) -> Result<Core<SocketIo>, (Error, bool)> {
    let work = async {
        let (io, binding) =
            socket::open(endpoint, config.get_ssl_mode(), tls_use, connector).await?;
        let used_tls = binding.is_some();
        Core::connect_with(io, &config.startup_config(), binding.as_ref())
            .await
            .map_err(|e| (e, used_tls))
    };
    match config.get_connect_timeout() {
        Some(t) => socket::timeout(t, work)
            .await
            .unwrap_or_else(|| Err((timeout_error(), false))),
        None => work.await,
    }
}

/// Each endpoint in turn, with libpq's `sslmode` attempts.
async fn connect_core(
    config: &Config,
    connector: Option<&TlsConnector>,
) -> Result<Core<SocketIo>, Error> {
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

impl Reopen<SocketIo> for AsyncOpener {
    fn reopen(&self) -> OpenFuture<'_, SocketIo> {
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
pub(crate) async fn connect(config: &Config) -> Result<Core<SocketIo>, Error> {
    let connector = TlsConnector::from_config(config)?;
    let mut core = connect_core(config, connector.as_ref()).await?;
    core.reconnect.opener = Some(Arc::new(AsyncOpener {
        config: config.clone(),
        connector,
    }));
    Ok(core)
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
            self.core.io.cancel_target().clone(),
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
        self.core.io.is_tls()
    }
}
