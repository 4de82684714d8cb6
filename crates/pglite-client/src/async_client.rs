//! The async driver: [`AsyncClient`] runs the same protocol core as the blocking
//! [`Client`](crate::Client) on an async socket — tokio TCP/TLS/Unix sockets natively
//! (`tokio_io`), wasi:sockets TCP through `wstd` on wasm32-wasip2 (`wasi_io`). The
//! socket module (`socket`) supplies the `SocketIo` the core runs on, `open` (one
//! connection attempt, TLS included), `timeout`, `sleep`, `send_cancel` and the COPY
//! methods (whose reader and writer traits are the runtime's); everything else is
//! written once, here and in the modules that extend `AsyncClient` (streams,
//! pipelines, retried transactions, binary COPY, reconnects).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use postgres_types::{ToSql, Type};

use crate::connstr::Config;
use crate::core::Core;
use crate::error::{DbError, Error, ErrorKind};
use crate::io::Io;
use crate::notify::Notification;
use crate::protocol::TransactionStatus;
use crate::row::{Row, SimpleResult};
use crate::rows::Unsettled;
use crate::statement::{Statement, ToStatement};

#[cfg(pglite_tokio)]
pub(crate) mod tokio_io;
#[cfg(pglite_tokio)]
pub(crate) use tokio_io::{self as socket, TokioIo as SocketIo};
#[cfg(pglite_wstd)]
pub(crate) mod wasi_io;
#[cfg(pglite_wstd)]
pub(crate) use wasi_io::{self as socket, WasiIo as SocketIo};

/// An async connection to a PostgreSQL server: over tokio TCP, TLS or Unix sockets
/// (feature `tokio`), or over wasi:sockets TCP on wasm32-wasip2 (feature `wstd`).
///
/// The API mirrors the blocking [`Client`](crate::Client): the same statement cache,
/// types, errors and COPY/transaction semantics, with `async` methods. Futures are
/// `Send` (for `Send` arguments), so with tokio calls can run in spawned tasks.
///
/// A call whose future is dropped before it finishes (for example by a timeout) leaves
/// the protocol mid-exchange: the connection is then closed for further use
/// ([`ErrorKind::Closed`]). [`wait_for_notification`](AsyncClient::wait_for_notification)
/// is the exception: its timeout is safe.
///
/// ```no_run
/// # async fn demo() -> Result<(), pglite_client::Error> {
/// use pglite_client::AsyncClient;
/// let mut client = AsyncClient::connect_url("postgres://postgres@localhost/postgres").await?;
/// let row = client.query_one("SELECT $1::int4 + 1", &[&41i32]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
pub struct AsyncClient {
    pub(crate) core: Core<SocketIo>,
    /// A call was started and not finished (its future was dropped).
    pub(crate) in_flight: bool,
    /// Rollbacks scheduled by dropped [`AsyncTransaction`]s, run before the next call.
    pending: Vec<String>,
    /// Replies left unread by streams, cursors and COPY writers dropped early; read
    /// to the end before the next call.
    pub(crate) unsettled: Vec<Unsettled>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("core", &self.core)
            .field("pending_rollbacks", &self.pending.len())
            .finish()
    }
}

/// Runs one call on the core, with the bookkeeping every call needs.
macro_rules! call {
    ($self:ident, $future:expr) => {{
        $self.enter().await?;
        let result = $future.await;
        $self.in_flight = false;
        result
    }};
}
pub(crate) use call;

impl AsyncClient {
    /// Connects as described by a libpq connection string (`postgres://…` URL or
    /// `keyword=value`), trying each host in turn.
    pub async fn connect_url(url: &str) -> Result<AsyncClient, Error> {
        AsyncClient::connect(&url.parse::<Config>()?).await
    }

    /// Connects as described by `config`: each `(host, port)` in turn until one
    /// accepts the start-up; `connect_timeout` bounds each attempt (socket, TLS and
    /// authentication). TLS follows `sslmode` as in the blocking driver. The client
    /// reconnects by itself when it finds its connection broken (see
    /// [`AsyncClient::set_param`]).
    pub async fn connect(config: &Config) -> Result<AsyncClient, Error> {
        Ok(AsyncClient {
            core: crate::async_connect::connect(config).await?,
            in_flight: false,
            pending: Vec::new(),
            unsettled: Vec::new(),
        })
    }

    /// Marks the start of a call: a call abandoned earlier poisons the connection;
    /// replies left by dropped streams are read to their end, then rollbacks scheduled
    /// by dropped transactions run (their SQL errors are ignored, as with the blocking
    /// client's drop).
    pub(crate) async fn enter(&mut self) -> Result<(), Error> {
        if self.in_flight {
            // An abandoned call left the exchange half done: give the connection up
            // at once, so the server does not keep its session (and a transaction's
            // locks) while this call reports the loss or opens a new connection.
            self.core.io.shut_down().await;
            self.core.broken = true;
        }
        if self.core.broken {
            // Rollbacks scheduled and replies left unread on the lost connection have
            // nothing left to do.
            self.pending.clear();
            self.unsettled.clear();
            // In flight while reconnecting: abandoning it leaves the new session
            // mid-exchange too.
            self.in_flight = true;
            let reconnected = self.core.reconnect_async().await;
            self.in_flight = false;
            reconnected?;
        }
        self.core.check_open()?;
        self.in_flight = true;
        while !self.unsettled.is_empty() {
            let unsettled = self.unsettled.remove(0);
            if let Err(e) = self.core.settle(unsettled).await {
                self.in_flight = false;
                return Err(e);
            }
        }
        while !self.pending.is_empty() {
            let sql = self.pending.remove(0);
            if let Err(e) = self.core.batch_execute(&sql).await
                && e.is_closed()
            {
                self.in_flight = false;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs one or more `;`-separated statements with the simple-query protocol and
    /// returns one [`SimpleResult`] per statement (values in text form).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        call!(self, self.core.simple_query(sql))
    }

    /// Runs one or more `;`-separated statements, discarding any rows.
    pub async fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        call!(self, self.core.batch_execute(sql))
    }

    /// Runs one statement with the simple protocol and returns its command tag.
    async fn command(&mut self, sql: &str) -> Result<String, Error> {
        call!(self, self.core.command(sql))
    }

    /// Prepares a named statement on the server; parameter types are inferred.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        call!(self, self.core.prepare(sql))
    }

    /// Prepares a named statement, fixing the types of the first `types.len()`
    /// parameters.
    pub async fn prepare_typed(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        call!(self, self.core.prepare_typed(sql, types))
    }

    /// Describes a statement without leaving a named statement on the server.
    pub async fn describe(&mut self, sql: &str) -> Result<Statement, Error> {
        call!(self, self.core.describe(sql))
    }

    /// Runs a statement with parameters and returns all its rows (SQL text goes
    /// through the statement cache).
    pub async fn query<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        call!(self, self.core.query(stmt, params))
    }

    /// Runs a statement that must return exactly one row.
    pub async fn query_one<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        call!(self, self.core.query_one(stmt, params))
    }

    /// Runs a statement that must return at most one row.
    pub async fn query_opt<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        call!(self, self.core.query_opt(stmt, params))
    }

    /// Runs a statement and returns the number of rows it affected (or returned).
    pub async fn execute<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        call!(self, self.core.execute(stmt, params))
    }

    /// Starts a transaction block (`BEGIN`).
    pub async fn transaction(&mut self) -> Result<AsyncTransaction<'_>, Error> {
        self.begin_with("BEGIN").await
    }

    /// Starts a transaction block with `begin` (`BEGIN ISOLATION LEVEL ...`).
    pub(crate) async fn begin_with(&mut self, begin: &str) -> Result<AsyncTransaction<'_>, Error> {
        self.batch_execute(begin).await?;
        Ok(AsyncTransaction {
            client: self,
            savepoint: None,
            depth: 0,
            done: false,
        })
    }

    /// Takes the notifications received so far (during any call).
    pub fn notifications(&mut self) -> Vec<Notification> {
        self.core.notifications()
    }

    /// Makes an empty round trip to pick up pending notifications, then takes all
    /// received so far.
    pub async fn poll_notifications(&mut self) -> Result<Vec<Notification>, Error> {
        call!(self, self.core.poll_notifications())
    }

    /// Waits up to `timeout` for a notification (`LISTEN` first): returns one already
    /// received, or the next the server sends, or `None` when the time is up.
    /// Dropping this future is safe.
    pub async fn wait_for_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Notification>, Error> {
        if let Some(n) = self.core.session.notifications.pop_front() {
            return Ok(Some(n));
        }
        // Scheduled rollbacks first; this leaves nothing queued to write, so the
        // reads below can be abandoned without losing data.
        self.enter().await?;
        self.in_flight = false;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.core.idle_poll()? {
                return Ok(Some(n));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let receive = self.core.io.receive(&mut self.core.session.input);
            match socket::timeout(left, receive).await {
                None => return Ok(None),
                Some(Err(e)) => {
                    self.core.broken = true;
                    return Err(e);
                }
                Some(Ok(())) => {}
            }
        }
    }

    /// Sets the function called with each `NoticeResponse` (ignored by default).
    pub fn set_notice_handler(&mut self, f: impl FnMut(&DbError) + Send + 'static) {
        self.core.session.notice_handler = Some(Box::new(f));
    }

    /// The transaction state after the last call.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.core.session.status
    }

    /// A run-time parameter the server reported (`server_version`, `TimeZone`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.core.session.parameters.get(name).map(String::as_str)
    }

    /// The backend's process ID and secret key, if it sent them.
    pub fn backend_key(&self) -> Option<(i32, i32)> {
        self.core.session.backend_key
    }

    /// How many statements the SQL-text statement cache keeps (default 256).
    pub fn statement_cache_capacity(&self) -> usize {
        self.core.cache.capacity()
    }

    /// Changes the statement cache's capacity (0 disables it).
    pub fn set_statement_cache_capacity(&mut self, capacity: usize) {
        self.core.cache.set_capacity(capacity);
    }

    /// Empties the statement cache (the statements are closed with the next request).
    pub fn clear_statement_cache(&mut self) {
        self.core.cache.clear();
    }

    /// True if the connection can no longer be used (transport or protocol failure,
    /// or an abandoned call).
    pub fn is_closed(&self) -> bool {
        self.core.broken || self.in_flight
    }

    /// Ends the session with `Terminate`.
    pub async fn close(mut self) -> Result<(), Error> {
        if self.in_flight {
            return Ok(());
        }
        self.core.close().await
    }
}

/// A transaction block (`BEGIN`) or, when nested, a savepoint, on an [`AsyncClient`].
///
/// Dereferences to the client. End it with [`commit`](AsyncTransaction::commit) or
/// [`rollback`](AsyncTransaction::rollback). Dropping it without either cannot wait for
/// the server, so it schedules the rollback: the client sends it before its next
/// request.
#[derive(Debug)]
pub struct AsyncTransaction<'a> {
    client: &'a mut AsyncClient,
    savepoint: Option<String>,
    depth: u32,
    done: bool,
}

impl AsyncTransaction<'_> {
    /// Starts a nested transaction: a `SAVEPOINT`.
    pub async fn transaction(&mut self) -> Result<AsyncTransaction<'_>, Error> {
        let depth = self.depth + 1;
        let name = format!("pglite_sp_{depth}");
        self.client
            .batch_execute(&format!("SAVEPOINT {name}"))
            .await?;
        Ok(AsyncTransaction {
            client: &mut *self.client,
            savepoint: Some(name),
            depth,
            done: false,
        })
    }

    /// Commits the transaction (or releases the savepoint). A failed transaction that
    /// `COMMIT` rolled back is an error of kind [`ErrorKind::RolledBack`].
    pub async fn commit(mut self) -> Result<(), Error> {
        self.done = true;
        match self.savepoint.clone() {
            Some(name) => {
                self.client
                    .batch_execute(&format!("RELEASE SAVEPOINT {name}"))
                    .await
            }
            None => {
                let tag = self.client.command("COMMIT").await?;
                if tag == "ROLLBACK" {
                    return Err(Error::new(
                        ErrorKind::RolledBack,
                        "the transaction had failed, so COMMIT rolled it back",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Rolls the transaction (or back to the savepoint) back.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.done = true;
        let sql = self.rollback_sql();
        self.client.batch_execute(&sql).await
    }

    fn rollback_sql(&self) -> String {
        match &self.savepoint {
            Some(name) => format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"),
            None => "ROLLBACK".to_owned(),
        }
    }

    /// The client the transaction runs on.
    pub fn client(&mut self) -> &mut AsyncClient {
        self.client
    }
}

impl Deref for AsyncTransaction<'_> {
    type Target = AsyncClient;

    fn deref(&self) -> &AsyncClient {
        self.client
    }
}

impl DerefMut for AsyncTransaction<'_> {
    fn deref_mut(&mut self) -> &mut AsyncClient {
        self.client
    }
}

impl Drop for AsyncTransaction<'_> {
    fn drop(&mut self) {
        if self.done
            || self.client.is_closed()
            || self.client.transaction_status() == TransactionStatus::Idle
        {
            return;
        }
        let sql = self.rollback_sql();
        self.client.pending.push(sql);
    }
}
