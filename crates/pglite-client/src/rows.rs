//! Streaming a statement's rows as they arrive, in the core: the state of one
//! `Bind`/`Execute` reply (or of a cursor's successive `Execute`s), read one `DataRow` at
//! a time, and the clean-up of replies whose reader stopped early.
//!
//! Everything that runs a statement goes through here: the collecting calls (`query`,
//! `execute`, ...) and the streams of both drivers.

use std::sync::Arc;

use postgres_protocol::message::backend::{DataRowBody, Message};
use postgres_protocol::message::frontend;
use postgres_types::ToSql;
use tracing::{Instrument, Span};

use crate::core::{Core, Drain, Reply, discards_statements, is_stale_plan};
use crate::error::{Error, ErrorKind};
use crate::io::Io;
use crate::protocol::{TransactionStatus, unexpected};
use crate::row::{Row, rows_affected};
use crate::statement::{Column, Statement, StatementSource, ToStatement};

/// Longest statement text recorded in a tracing span, in bytes.
const SPAN_SQL_MAX: usize = 200;

/// The statement text as recorded in tracing spans: at most [`SPAN_SQL_MAX`] bytes,
/// cut at a character boundary. Parameter values are never recorded.
pub(crate) fn span_sql(sql: &str) -> &str {
    if sql.len() <= SPAN_SQL_MAX {
        return sql;
    }
    let mut end = SPAN_SQL_MAX;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    &sql[..end]
}

/// The span of one statement execution.
pub(crate) fn execute_span<S: ToStatement + ?Sized>(stmt: &S, params: usize) -> Span {
    let sql = match stmt.statement_source() {
        StatementSource::Sql(sql) => sql,
        StatementSource::Statement(stmt) => stmt.sql(),
    };
    tracing::debug_span!("execute", sql = span_sql(sql), params)
}

/// A named portal read in batches of `fetch_size` rows.
#[derive(Debug, Clone)]
pub(crate) struct Portal {
    pub(crate) name: String,
    pub(crate) fetch_size: i32,
}

/// The reading state of one statement's rows.
pub(crate) struct RowsState {
    pub(crate) reply: Reply,
    pub(crate) columns: Arc<[Column]>,
    /// The command tag, once `CommandComplete` arrived.
    pub(crate) tag: Option<String>,
    /// The last `Execute` ended with `PortalSuspended`.
    suspended: bool,
    /// A cursor: fetch the next batch when a batch ends suspended.
    pub(crate) portal: Option<Portal>,
    /// Opened as a cursor (`portal` is taken when it is closed).
    pub(crate) cursor: bool,
    /// `DataRow`s read so far.
    pub(crate) returned: u64,
    /// `ReadyForQuery` of the last request was read (or the connection failed).
    pub(crate) done: bool,
    /// The statement's tracing span, entered around each read.
    pub(crate) span: Span,
    /// Holds a named statement open while its rows stream.
    _statement: Statement,
}

impl RowsState {
    /// Once the rows have ended: the rows affected or returned. For a cursor the
    /// number of rows it returned (the server's tag only counts the last batch).
    pub(crate) fn rows_affected(&self) -> Option<u64> {
        let tag = self.tag.as_deref()?;
        if self.cursor {
            Some(self.returned)
        } else {
            rows_affected(tag)
        }
    }

    /// What to do with this reply if its reader goes away before the end.
    pub(crate) fn unsettled(&mut self) -> Option<Unsettled> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(Unsettled {
            reply: std::mem::replace(&mut self.reply, Reply::new(Drain::Extended)),
            copy_fail: false,
            close_portal: self.portal.take().map(|p| p.name),
        })
    }
}

/// A reply left unread by a stream, cursor or COPY writer that was dropped early; see
/// [`Core::settle`].
pub(crate) struct Unsettled {
    pub(crate) reply: Reply,
    /// A `COPY FROM STDIN` is open: abort it with `CopyFail` first.
    pub(crate) copy_fail: bool,
    /// A cursor's portal to close with the next request.
    pub(crate) close_portal: Option<String>,
}

impl<I: Io> Core<I> {
    /// Starts running a statement: resolves it (SQL text through the statement cache),
    /// writes `[Parse] Bind Execute Sync` and reads up to `BindComplete`, so parameter
    /// and plan errors are reported here, before any row. A cached statement the server
    /// can no longer use ("cached plan must not change result type" after DDL, or one
    /// deallocated behind the cache's back) is dropped from the cache and, outside a
    /// transaction, retried once.
    ///
    /// With `portal`, the rows are bound to that named portal and fetched
    /// `fetch_size` at a time (a cursor: needs a transaction block).
    pub(crate) async fn start_rows<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
        portal: Option<Portal>,
    ) -> Result<RowsState, Error> {
        let span = execute_span(stmt, params.len());
        let mut state = async {
            self.check_open()?;
            match stmt.statement_source() {
                StatementSource::Statement(stmt) => {
                    self.start_statement(stmt, params, portal).await
                }
                StatementSource::Sql(sql) => {
                    let mut retried = false;
                    loop {
                        let stmt = self.cached_statement(sql).await?;
                        match self.start_statement(&stmt, params, portal.clone()).await {
                            Err(e) if is_stale_plan(&e) => {
                                self.cache.remove(sql);
                                if retried || self.session.status != TransactionStatus::Idle {
                                    return Err(e);
                                }
                                retried = true;
                            }
                            other => return other,
                        }
                    }
                }
            }
        }
        .instrument(span.clone())
        .await?;
        state.span = span;
        Ok(state)
    }

    async fn start_statement(
        &mut self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
        portal: Option<Portal>,
    ) -> Result<RowsState, Error> {
        let (name, max_rows) = match &portal {
            Some(p) => (p.name.as_str(), p.fetch_size),
            None => ("", 0),
        };
        self.encode_execute(stmt, params, name, max_rows)?;
        self.send_out().await?;
        let mut state = RowsState {
            reply: Reply::new(Drain::Extended),
            columns: stmt.columns_arc().clone(),
            tag: None,
            suspended: false,
            cursor: portal.is_some(),
            portal,
            returned: 0,
            done: false,
            span: Span::none(),
            _statement: stmt.clone(),
        };
        loop {
            match self.next_reply(&mut state.reply).await? {
                Some(Message::ParseComplete | Message::CloseComplete) => {}
                Some(Message::BindComplete) => return Ok(state),
                Some(other) => {
                    let e = unexpected(&other);
                    return Err(self.fail(e));
                }
                None => {
                    state.done = true;
                    self.close_finished_portal(&mut state);
                    return Err(state.reply.first.take().unwrap_or_else(|| {
                        self.fail(Error::protocol("the server did not bind the statement"))
                    }));
                }
            }
        }
    }

    /// The next `DataRow` of the statement, or `None` at the end. A server error
    /// (also one in the middle of the rows) is returned once the reply has been read to
    /// `ReadyForQuery`; the stream then ends. A cursor sends the next `Execute` when a
    /// batch ends suspended.
    pub(crate) async fn next_data_row(
        &mut self,
        state: &mut RowsState,
    ) -> Result<Option<DataRowBody>, Error> {
        if !state.done {
            match self.session.take_buffered_data_row() {
                Ok(Some(body)) => {
                    state.returned += 1;
                    return Ok(Some(body));
                }
                Ok(None) => {}
                Err(e) => {
                    state.done = true;
                    return Err(self.fail(e));
                }
            }
        }
        loop {
            if state.done {
                return Ok(None);
            }
            let message = match self.next_reply(&mut state.reply).await {
                Ok(message) => message,
                Err(e) => {
                    state.done = true;
                    return Err(e);
                }
            };
            let handled = match message {
                None => {
                    if state.reply.first.is_none()
                        && state.suspended
                        && let Some(portal) = &state.portal
                    {
                        state.suspended = false;
                        // Portal names are ours and the fetch size is positive.
                        let _ = frontend::execute(
                            &portal.name,
                            portal.fetch_size,
                            &mut self.session.out,
                        );
                        frontend::sync(&mut self.session.out);
                        if let Err(e) = self.send_out().await {
                            state.done = true;
                            return Err(e);
                        }
                        continue;
                    }
                    state.done = true;
                    self.close_finished_portal(state);
                    if state.tag.as_deref().is_some_and(discards_statements) {
                        self.cache.clear();
                    }
                    return match state.reply.first.take() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
                Some(Message::DataRow(body)) => {
                    state.returned += 1;
                    return Ok(Some(body));
                }
                Some(Message::CommandComplete(body)) => match body.tag() {
                    Ok(tag) => {
                        state.tag = Some(tag.to_owned());
                        Ok(())
                    }
                    Err(e) => Err(Error::with_source(
                        ErrorKind::Protocol,
                        "invalid CommandComplete",
                        e,
                    )),
                },
                Some(Message::PortalSuspended) => {
                    state.suspended = true;
                    Ok(())
                }
                Some(
                    Message::ParseComplete
                    | Message::BindComplete
                    | Message::CloseComplete
                    | Message::EmptyQueryResponse
                    | Message::CopyData(_)
                    | Message::CopyDone,
                ) => Ok(()),
                Some(Message::CopyOutResponse(_)) => Err(Error::new(
                    ErrorKind::Usage,
                    "COPY ... TO STDOUT must be run with copy_out",
                )),
                Some(other) => Err(unexpected(&other)),
            };
            if let Err(e) = handled
                && let Err(e) = self.record(&mut state.reply, e)
            {
                state.done = true;
                return Err(e);
            }
        }
    }

    /// [`Core::next_data_row`] as a [`Row`], inside the statement's span.
    pub(crate) async fn next_row(&mut self, state: &mut RowsState) -> Result<Option<Row>, Error> {
        if state.span.is_disabled() {
            // No subscriber wants the span: skip entering it for every row.
            return self.next_row_in_span(state).await;
        }
        let span = state.span.clone();
        self.next_row_in_span(state).instrument(span).await
    }

    async fn next_row_in_span(&mut self, state: &mut RowsState) -> Result<Option<Row>, Error> {
        match self.next_data_row(state).await? {
            Some(body) => match Row::new(state.columns.clone(), body) {
                Ok(row) => Ok(Some(row)),
                Err(e) => {
                    state.done = true;
                    Err(self.fail(e))
                }
            },
            None => Ok(None),
        }
    }

    /// A cursor whose rows are all read (or that failed) closes its portal with the
    /// next request.
    fn close_finished_portal(&mut self, state: &mut RowsState) {
        if let Some(portal) = state.portal.take() {
            self.portals_to_close.push(portal.name);
        }
    }

    /// Brings a reply left unread to `ReadyForQuery`: aborts an open `COPY FROM
    /// STDIN` with `CopyFail`, discards the rest of the reply (rows, COPY data, a
    /// server error) and queues a cursor's portal for closing. Only transport and
    /// protocol failures (which close the connection) are returned.
    pub(crate) async fn settle(&mut self, mut unsettled: Unsettled) -> Result<(), Error> {
        if unsettled.copy_fail {
            let _ = frontend::copy_fail(
                "the COPY writer was dropped before finish",
                &mut self.session.out,
            );
            self.send_out().await?;
        }
        let mut discarded = false;
        while let Some(message) = self.next_reply(&mut unsettled.reply).await? {
            if let Message::CommandComplete(body) = message {
                discarded |= body.tag().is_ok_and(discards_statements);
            }
        }
        if discarded {
            self.cache.clear();
        }
        if let Some(name) = unsettled.close_portal {
            self.portals_to_close.push(name);
        }
        Ok(())
    }
}
