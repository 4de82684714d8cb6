//! The blocking client: the protocol core driven over a blocking [`Transport`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres_types::{ToSql, Type};

use crate::config::StartupConfig;
use crate::core::Core;
use crate::error::{DbError, Error};
use crate::io::{Blocking, run_blocking};
use crate::notify::Notification;
use crate::protocol::TransactionStatus;
use crate::row::{Row, SimpleResult};
use crate::statement::{Statement, ToStatement};
use crate::transport::Transport;

/// A connection to a PostgreSQL backend over a [`Transport`].
///
/// Every call writes its whole request, then reads replies until `ReadyForQuery`, so
/// the connection is always ready for the next call, also after an error (SQL errors
/// come back as [`ErrorKind::Db`](crate::ErrorKind::Db) with all the server's fields).
/// Transport and protocol failures leave the connection unusable; later calls return
/// [`ErrorKind::Closed`](crate::ErrorKind::Closed).
pub struct Client<T: Transport> {
    pub(crate) core: Core<Blocking<T>>,
}

impl<T: Transport> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("core", &self.core).finish()
    }
}

impl<T: Transport> Client<T> {
    /// Starts a session: sends the `StartupMessage`, authenticates (trust, cleartext
    /// password, MD5, SCRAM-SHA-256), collects `ParameterStatus` and `BackendKeyData`,
    /// and waits for the first `ReadyForQuery`.
    pub fn connect(transport: T, config: &StartupConfig) -> Result<Self, Error> {
        let core = run_blocking(Core::connect(Blocking(transport), config))?;
        Ok(Client { core })
    }

    /// Runs one or more `;`-separated statements with the simple-query protocol and
    /// returns one [`SimpleResult`] per statement (values in text form). Statements
    /// after a failing one are not run; the error is returned.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        run_blocking(self.core.simple_query(sql))
    }

    /// Runs one or more `;`-separated statements, discarding any rows.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        run_blocking(self.core.batch_execute(sql))
    }

    /// Runs a single statement with the simple protocol and returns its command tag.
    pub(crate) fn command(&mut self, sql: &str) -> Result<String, Error> {
        run_blocking(self.core.command(sql))
    }

    /// Prepares a named statement on the server; parameter types are inferred.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        run_blocking(self.core.prepare(sql))
    }

    /// Prepares a named statement, fixing the types of the first `types.len()`
    /// parameters (the server infers the rest).
    pub fn prepare_typed(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        run_blocking(self.core.prepare_typed(sql, types))
    }

    /// Describes a statement — parameter types and result columns — without leaving a
    /// named statement on the server (it uses the unnamed statement). The result can
    /// still be passed to `query`/`execute`, which then parse it again.
    pub fn describe(&mut self, sql: &str) -> Result<Statement, Error> {
        run_blocking(self.core.describe(sql))
    }

    /// Runs a statement with parameters and returns all its rows.
    ///
    /// SQL text is prepared once and kept in the client's statement cache.
    pub fn query<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        run_blocking(self.core.query(stmt, params))
    }

    /// Runs a statement that must return exactly one row.
    pub fn query_one<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        run_blocking(self.core.query_one(stmt, params))
    }

    /// Runs a statement that must return at most one row.
    pub fn query_opt<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        run_blocking(self.core.query_opt(stmt, params))
    }

    /// Runs a statement and returns the number of rows it affected (or returned).
    pub fn execute<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        run_blocking(self.core.execute(stmt, params))
    }

    // ----- COPY -----------------------------------------------------------------------

    /// Runs `COPY ... FROM STDIN` and streams `reader` as its data; returns the number
    /// of rows copied.
    ///
    /// The whole stream (`Query`, every `CopyData`, `CopyDone`) is written before any
    /// reply is read, as an in-process engine needs the complete input to answer.
    pub fn copy_in<R: std::io::Read>(&mut self, sql: &str, reader: R) -> Result<u64, Error> {
        run_blocking(crate::copy::copy_in(
            &mut self.core,
            sql,
            crate::copy::SyncReader(reader),
        ))
    }

    /// Runs `COPY ... TO STDOUT`, writing the data to `writer`; returns the number of
    /// rows copied.
    pub fn copy_out<W: std::io::Write>(&mut self, sql: &str, writer: W) -> Result<u64, Error> {
        run_blocking(crate::copy::copy_out(
            &mut self.core,
            sql,
            crate::copy::SyncWriter(writer),
        ))
    }

    // ----- notifications, state -------------------------------------------------------

    /// Takes the notifications received so far (during any call).
    pub fn notifications(&mut self) -> Vec<Notification> {
        self.core.notifications()
    }

    /// Makes an empty round trip to the server to pick up pending notifications, then
    /// takes all received so far.
    pub fn poll_notifications(&mut self) -> Result<Vec<Notification>, Error> {
        run_blocking(self.core.poll_notifications())
    }

    /// Sets the function called with each `NoticeResponse` (warnings, notices, ...).
    /// By default notices are ignored.
    pub fn set_notice_handler(&mut self, f: impl FnMut(&DbError) + Send + 'static) {
        self.core.session.notice_handler = Some(Box::new(f));
    }

    /// The transaction state after the last call.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.core.session.status
    }

    /// A run-time parameter the server reported (`server_version`, `TimeZone`,
    /// `client_encoding`, `DateStyle`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.core.session.parameters.get(name).map(String::as_str)
    }

    /// The backend's process ID and secret key (for cancel requests), if it sent them.
    pub fn backend_key(&self) -> Option<(i32, i32)> {
        self.core.session.backend_key
    }

    /// How many statements the SQL-text statement cache keeps (default 256).
    pub fn statement_cache_capacity(&self) -> usize {
        self.core.cache.capacity()
    }

    /// Changes the statement cache's capacity. Statements evicted from it are closed
    /// on the server with the next request (unless the caller still holds them). With
    /// capacity 0, SQL text is described and re-parsed on every call.
    pub fn set_statement_cache_capacity(&mut self, capacity: usize) {
        self.core.cache.set_capacity(capacity);
    }

    /// Empties the statement cache (the statements are closed with the next request).
    pub fn clear_statement_cache(&mut self) {
        self.core.cache.clear();
    }

    /// True if an earlier transport or protocol failure made the connection unusable.
    pub fn is_closed(&self) -> bool {
        self.core.broken
    }

    /// Ends the session with `Terminate`.
    pub fn close(mut self) -> Result<(), Error> {
        run_blocking(self.core.close())
    }

    /// Waits up to `timeout` for a notification (`LISTEN` first): returns one already
    /// received, or the next the server sends, or `None` when the time is up.
    ///
    /// Waiting uses [`Transport::receive_timeout`]: socket transports wait with a read
    /// timeout; the in-process engine has no other session that could notify, so it
    /// returns `None` at once when nothing is queued. A backend that ends the session
    /// while waiting (e.g. terminated by an administrator) is returned as its `FATAL`
    /// error and closes the client.
    pub fn wait_for_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Notification>, Error> {
        if let Some(n) = self.core.session.notifications.pop_front() {
            return Ok(Some(n));
        }
        self.core.check_open()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.core.idle_poll()? {
                return Ok(Some(n));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self
                .core
                .io
                .0
                .receive_timeout(&mut self.core.session.input, left)
            {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.core.broken = true;
                    return Err(e);
                }
            }
        }
    }

    /// Replaces the transport with `wrap(transport)`, keeping the session: its
    /// statements and cache, settings, queued notifications and (for a client made
    /// from a `Config`) the ability to reconnect, whose new transports are wrapped too.
    /// For example, to give clients of different transports one type (an enum of
    /// transports).
    pub fn map_transport<U: Transport + Send + 'static>(
        self,
        wrap: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> Client<U>
    where
        T: Send + 'static,
    {
        let wrap: Arc<dyn Fn(Blocking<T>) -> Blocking<U> + Send + Sync> =
            Arc::new(move |Blocking(t)| Blocking(wrap(t)));
        Client {
            core: self.core.map_io(wrap),
        }
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.core.io.0
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.core.io.0
    }
}
