//! Streams of the blocking client: rows decoded as they arrive ([`RowStream`], from
//! [`Client::query_raw`] and [`Client::cursor`]) and simple-query messages
//! ([`SimpleQueryStream`], from [`Client::simple_query_raw`]).

use std::fmt;

use postgres_types::ToSql;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::io::run_blocking;
use crate::protocol::TransactionStatus;
use crate::row::Row;
use crate::rows::{Portal, RowsState};
use crate::simple::{SimpleQueryMessage, SimpleState};
use crate::statement::{Column, ToStatement};
use crate::transport::Transport;

/// The portal fetch size as the protocol's `Execute` row limit.
pub(crate) fn fetch_limit(fetch_size: u32) -> Result<i32, Error> {
    match i32::try_from(fetch_size) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::new(
            ErrorKind::Usage,
            format!("a cursor's fetch size must be between 1 and {}", i32::MAX),
        )),
    }
}

/// Checks that a cursor can be opened: its portal lives until the end of the
/// transaction, so it needs a transaction block.
pub(crate) fn check_cursor_status(status: TransactionStatus) -> Result<(), Error> {
    if status == TransactionStatus::Idle {
        return Err(Error::new(
            ErrorKind::Usage,
            "a cursor needs a transaction block (its portal ends with the transaction): \
             open one with transaction() and call cursor() on it",
        ));
    }
    Ok(())
}

impl<T: Transport> Client<T> {
    /// Runs a statement and returns its rows as an iterator that decodes each row as it
    /// arrives from the transport, instead of collecting them: memory use does not grow
    /// with the number of rows (over a socket; the embedded engine hands over its whole
    /// reply at once).
    ///
    /// Parameter and plan errors are returned here; an error met while the rows stream
    /// (a division by zero in row 1,000, say) is the iterator's last item. The
    /// connection cannot be used while the stream lives (it borrows the client);
    /// dropping it before the end reads and discards the rest of the reply — use
    /// [`Client::cursor`] to stop early without receiving everything.
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// let mut total = 0i64;
    /// for row in client.query_raw("SELECT g FROM generate_series(1, $1) g", &[&1_000_000i32])? {
    ///     total += i64::from(row?.get::<_, i32>(0));
    /// }
    /// assert_eq!(total, 500_000_500_000);
    /// # Ok(()) }
    /// ```
    pub fn query_raw<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream<'_, T>, Error> {
        let state = run_blocking(self.core.start_rows(stmt, params, None))?;
        Ok(RowStream::new(self, state))
    }

    /// Opens a cursor: binds the statement to a named portal and fetches its rows
    /// `fetch_size` at a time (`Execute` with a row limit, one round trip per batch),
    /// decoding them as they arrive. Stopping early costs at most the rest of one
    /// batch; the portal is closed with the next request.
    ///
    /// A portal lives until its transaction ends, so this needs a transaction block
    /// (an error of kind [`ErrorKind::Usage`] otherwise): call it on a
    /// [`Transaction`](crate::Transaction).
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// let mut tx = client.transaction()?;
    /// let mut ids = Vec::new();
    /// for row in tx.cursor("SELECT id FROM big ORDER BY id", &[], 1000)? {
    ///     let id: i64 = row?.get(0);
    ///     if id > 50 { break; }
    ///     ids.push(id);
    /// }
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn cursor<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
        fetch_size: u32,
    ) -> Result<RowStream<'_, T>, Error> {
        let fetch_size = fetch_limit(fetch_size)?;
        self.core.check_open()?;
        check_cursor_status(self.core.session.status)?;
        let portal = Portal {
            name: self.core.next_portal_name(),
            fetch_size,
        };
        let state = run_blocking(self.core.start_rows(stmt, params, Some(portal)))?;
        Ok(RowStream::new(self, state))
    }

    /// Runs one or more `;`-separated statements with the simple-query protocol and
    /// returns their replies as an iterator of [`SimpleQueryMessage`]s, decoded as they
    /// arrive (values in text form). Statements after a failing one are not run; the
    /// error is the last item. Dropping the stream early reads and discards the rest.
    pub fn simple_query_raw(&mut self, sql: &str) -> Result<SimpleQueryStream<'_, T>, Error> {
        let state = run_blocking(self.core.start_simple_stream(sql))?;
        self.core.stream_open = true;
        Ok(SimpleQueryStream {
            client: self,
            state,
        })
    }
}

/// Rows of [`Client::query_raw`] or [`Client::cursor`], decoded one at a time as they
/// arrive. An iterator of `Result<Row, Error>`; after an error it ends.
///
/// Dropping it before the end reads the rest of the current reply (a cursor: the rest
/// of its current batch) so the connection stays usable.
pub struct RowStream<'a, T: Transport> {
    client: &'a mut Client<T>,
    state: RowsState,
}

impl<'a, T: Transport> RowStream<'a, T> {
    fn new(client: &'a mut Client<T>, state: RowsState) -> Self {
        client.core.stream_open = true;
        RowStream { client, state }
    }

    /// The statement's result columns.
    pub fn columns(&self) -> &[Column] {
        &self.state.columns
    }

    /// The command tag (e.g. `SELECT 3`, `UPDATE 2`), once the stream has ended. For a
    /// cursor, the tag of its last batch (PostgreSQL counts that batch's rows only).
    pub fn command_tag(&self) -> Option<&str> {
        self.state.tag.as_deref()
    }

    /// Once the stream has ended: the number of rows the statement affected or
    /// returned, from the command tag; for a cursor, the number of rows it returned.
    pub fn rows_affected(&self) -> Option<u64> {
        self.state.rows_affected()
    }
}

impl<T: Transport> Iterator for RowStream<'_, T> {
    type Item = Result<Row, Error>;

    fn next(&mut self) -> Option<Result<Row, Error>> {
        if self.state.done {
            return None;
        }
        let result = run_blocking(self.client.core.next_row(&mut self.state));
        if self.state.done {
            self.client.core.stream_open = false;
        }
        result.transpose()
    }
}

impl<T: Transport> Drop for RowStream<'_, T> {
    fn drop(&mut self) {
        if let Some(unsettled) = self.state.unsettled() {
            let _ = run_blocking(self.client.core.settle(unsettled));
        }
        self.client.core.stream_open = false;
    }
}

impl<T: Transport> fmt::Debug for RowStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.state.columns)
            .field("done", &self.state.done)
            .finish_non_exhaustive()
    }
}

/// The reply of [`Client::simple_query_raw`], decoded one message at a time. An
/// iterator of `Result<SimpleQueryMessage, Error>`; after an error it ends.
///
/// Dropping it before the end reads the rest of the reply.
pub struct SimpleQueryStream<'a, T: Transport> {
    client: &'a mut Client<T>,
    state: SimpleState,
}

impl<T: Transport> Iterator for SimpleQueryStream<'_, T> {
    type Item = Result<SimpleQueryMessage, Error>;

    fn next(&mut self) -> Option<Result<SimpleQueryMessage, Error>> {
        if self.state.done {
            return None;
        }
        let result = run_blocking(self.client.core.next_simple(&mut self.state));
        if self.state.done {
            self.client.core.stream_open = false;
        }
        result.transpose()
    }
}

impl<T: Transport> Drop for SimpleQueryStream<'_, T> {
    fn drop(&mut self) {
        if let Some(unsettled) = self.state.unsettled() {
            let _ = run_blocking(self.client.core.settle(unsettled));
        }
        self.client.core.stream_open = false;
    }
}

impl<T: Transport> fmt::Debug for SimpleQueryStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueryStream")
            .field("done", &self.state.done)
            .finish_non_exhaustive()
    }
}
