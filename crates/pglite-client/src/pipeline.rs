//! Pipelined batches: several statements, each with its parameters, written in one
//! go and answered in one round trip, with a result per statement.
//!
//! Wire shape: `Bind`/`Execute` (plus `Parse` for unnamed statements) for every
//! statement and one `Sync` at the end — or after each sync point the caller set with
//! `sync()`. The statements between two `Sync`s form a *segment*: outside a
//! transaction block a segment runs as one implicit transaction, so it is all or
//! nothing; when a statement fails, the server skips the rest of its segment (those
//! statements are reported as [`BatchOutcome::Skipped`]) and carries on with the next
//! segment.

use bytes::BytesMut;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use postgres_types::ToSql;
use tracing::Instrument;

use crate::client::Client;
use crate::core::{Core, discards_statements, encode_bind_execute, is_stale_plan};
use crate::error::{DbError, Error, ErrorKind};
use crate::io::{Io, run_blocking};
use crate::protocol::unexpected;
use crate::row::{Row, rows_affected};
use crate::statement::{Statement, StatementSource, ToStatement};
use crate::transport::Transport;

/// The result of one statement of a batch that ran.
#[derive(Debug, Clone)]
pub struct BatchResult {
    rows: Vec<Row>,
    command_tag: String,
}

impl BatchResult {
    /// The rows the statement returned.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows, owned.
    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// The command tag, e.g. `INSERT 0 1` (empty for an empty statement).
    pub fn command_tag(&self) -> &str {
        &self.command_tag
    }

    /// The rows affected (from the command tag) or else the rows returned.
    pub fn rows_affected(&self) -> u64 {
        rows_affected(&self.command_tag).unwrap_or(self.rows.len() as u64)
    }
}

/// What became of one statement of a batch.
#[non_exhaustive]
#[derive(Debug)]
pub enum BatchOutcome {
    /// The statement ran. Its effects are undone if a later statement of the same
    /// segment fails outside a transaction block (the segment's implicit transaction
    /// is rolled back), or if the enclosing transaction is rolled back.
    Done(BatchResult),
    /// The statement failed with this error (a server error, usually).
    Failed(Error),
    /// Not run: an earlier statement of the same segment failed.
    Skipped,
}

impl BatchOutcome {
    /// The result, if the statement ran.
    pub fn result(&self) -> Option<&BatchResult> {
        match self {
            BatchOutcome::Done(r) => Some(r),
            _ => None,
        }
    }

    /// The error, if the statement failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            BatchOutcome::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// True if the statement was not run.
    pub fn is_skipped(&self) -> bool {
        matches!(self, BatchOutcome::Skipped)
    }
}

struct Item {
    /// Keeps a named statement open (and out of the cache's eviction) until the run.
    statement: Statement,
    /// The SQL text it was looked up by in the statement cache.
    cache_key: Option<String>,
    sync_after: bool,
}

/// The encoded requests of a batch, not yet sent.
#[derive(Default)]
pub(crate) struct PipelineBuf {
    out: BytesMut,
    items: Vec<Item>,
}

impl PipelineBuf {
    /// Ends the current segment with a `Sync` (nothing if it is empty).
    pub(crate) fn sync(&mut self) {
        if let Some(last) = self.items.last_mut()
            && !last.sync_after
        {
            last.sync_after = true;
            frontend::sync(&mut self.out);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

/// The first keyword of a statement, after white space and comments.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            let mut i = 0;
            let bytes = rest.as_bytes();
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            rest = &rest[i.min(rest.len())..];
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            return &rest[..end];
        }
    }
}

impl<I: Io> Core<I> {
    /// Adds a statement to a batch: resolves it (SQL text through the statement
    /// cache, which may cost one round trip to prepare it the first time) and encodes
    /// its `Bind`/`Execute`.
    pub(crate) async fn pipeline_add<S: ToStatement + ?Sized>(
        &mut self,
        buf: &mut PipelineBuf,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), Error> {
        let sql = match stmt.statement_source() {
            StatementSource::Statement(stmt) => stmt.sql(),
            StatementSource::Sql(sql) => sql,
        };
        if first_keyword(sql).eq_ignore_ascii_case("copy") {
            return Err(Error::new(
                ErrorKind::Usage,
                "COPY cannot be part of a pipelined batch; use copy_in/copy_out",
            ));
        }
        let (statement, cache_key) = match stmt.statement_source() {
            StatementSource::Statement(stmt) => {
                self.check_statement(stmt)?;
                (stmt.clone(), None)
            }
            StatementSource::Sql(sql) => (self.cached_statement(sql).await?, Some(sql.to_owned())),
        };
        let mark = buf.out.len();
        if let Err(e) = encode_bind_execute(&mut buf.out, &statement, params, "", 0) {
            buf.out.truncate(mark);
            return Err(e);
        }
        buf.items.push(Item {
            statement,
            cache_key,
            sync_after: false,
        });
        Ok(())
    }

    /// Sends the whole batch in one write and reads every statement's outcome.
    pub(crate) async fn pipeline_run(
        &mut self,
        mut buf: PipelineBuf,
    ) -> Result<Vec<BatchOutcome>, Error> {
        let span = tracing::debug_span!("pipeline", statements = buf.items.len());
        async {
            self.check_open()?;
            if buf.items.is_empty() {
                return Ok(Vec::new());
            }
            buf.sync();
            self.write_pending_closes();
            self.session.out.extend_from_slice(&buf.out);
            self.send_out().await?;
            let mut outcomes = Vec::with_capacity(buf.items.len());
            let mut segment_failed = false;
            let mut discarded = false;
            for item in &buf.items {
                let outcome = if segment_failed {
                    BatchOutcome::Skipped
                } else {
                    self.read_batch_item(item).await?
                };
                if let BatchOutcome::Failed(e) = &outcome {
                    segment_failed = true;
                    if is_stale_plan(e)
                        && let Some(sql) = &item.cache_key
                    {
                        self.cache.remove(sql);
                    }
                }
                if let BatchOutcome::Done(r) = &outcome {
                    discarded |= discards_statements(&r.command_tag);
                }
                outcomes.push(outcome);
                if item.sync_after {
                    self.read_ready_for_query().await?;
                    segment_failed = false;
                }
            }
            if discarded {
                self.cache.clear();
            }
            Ok(outcomes)
        }
        .instrument(span)
        .await
    }

    /// Reads one statement's reply: its rows and completion, or its error.
    async fn read_batch_item(&mut self, item: &Item) -> Result<BatchOutcome, Error> {
        let mut rows = Vec::new();
        loop {
            match self.recv().await? {
                Message::ParseComplete | Message::BindComplete | Message::CloseComplete => {}
                Message::DataRow(body) => {
                    let row = Row::new(item.statement.columns_arc().clone(), body);
                    rows.push(row.map_err(|e| self.fail(e))?);
                }
                Message::CommandComplete(body) => {
                    let tag = body.tag().map_err(|e| {
                        self.fail(Error::with_source(
                            ErrorKind::Protocol,
                            "invalid CommandComplete",
                            e,
                        ))
                    })?;
                    return Ok(BatchOutcome::Done(BatchResult {
                        rows,
                        command_tag: tag.to_owned(),
                    }));
                }
                Message::EmptyQueryResponse => {
                    return Ok(BatchOutcome::Done(BatchResult {
                        rows,
                        command_tag: String::new(),
                    }));
                }
                Message::ErrorResponse(body) => {
                    return Ok(BatchOutcome::Failed(self.db_error(body)?));
                }
                other => return Err(self.fail(unexpected(&other))),
            }
        }
    }

    async fn read_ready_for_query(&mut self) -> Result<(), Error> {
        loop {
            match self.recv().await? {
                Message::ReadyForQuery(body) => {
                    return self
                        .session
                        .set_status(body.status())
                        .map_err(|e| self.fail(e));
                }
                // Errors after a segment's failure are not expected; keep the first.
                Message::ErrorResponse(body) => {
                    self.db_error(body)?;
                }
                Message::CloseComplete => {}
                other => return Err(self.fail(unexpected(&other))),
            }
        }
    }

    /// A server error: returned as a value, or as the call's error (closing the
    /// connection) when it is `FATAL`/`PANIC` or cannot be decoded.
    fn db_error(&mut self, body: ErrorResponseBody) -> Result<Error, Error> {
        let db = DbError::parse(&mut body.fields()).map_err(|e| {
            self.fail(Error::with_source(
                ErrorKind::Protocol,
                "invalid ErrorResponse",
                e,
            ))
        })?;
        if matches!(db.severity(), "FATAL" | "PANIC")
            || matches!(db.parsed_severity(), Some("FATAL" | "PANIC"))
        {
            self.broken = true;
            return Err(Error::db(db));
        }
        Ok(Error::db(db))
    }
}

impl<T: Transport> Client<T> {
    /// Starts a pipelined batch: statements added to it are sent together, in one
    /// write, when it is [`run`](Pipeline::run), and answered in one round trip.
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// use pglite_client::BatchOutcome;
    /// let mut batch = client.pipeline();
    /// batch.add("INSERT INTO t VALUES ($1)", &[&1i32])?;
    /// batch.add("INSERT INTO t VALUES ($1)", &[&2i32])?;
    /// batch.add("SELECT count(*) FROM t", &[])?;
    /// for outcome in batch.run()? {
    ///     match outcome {
    ///         BatchOutcome::Done(result) => println!("{}", result.command_tag()),
    ///         BatchOutcome::Failed(e) => println!("failed: {e}"),
    ///         _ => println!("skipped"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pipeline(&mut self) -> Pipeline<'_, T> {
        Pipeline {
            client: self,
            buf: PipelineBuf::default(),
        }
    }
}

/// A pipelined batch on a blocking [`Client`]; see [`Client::pipeline`].
///
/// One `Sync` ends the batch unless [`sync`](Pipeline::sync) adds more: the statements
/// between two `Sync`s form a segment, which outside a transaction block runs as one
/// implicit transaction (all or nothing). After a failing statement the rest of its
/// segment is [`BatchOutcome::Skipped`]; later segments run. Inside a transaction
/// block, a failure fails the block, so later segments fail too (`25P02`).
///
/// SQL text goes through the statement cache: text not cached yet is prepared when
/// added (one round trip, once). `COPY` is refused. Dropping a batch without running
/// it sends nothing.
pub struct Pipeline<'a, T: Transport> {
    client: &'a mut Client<T>,
    buf: PipelineBuf,
}

impl<T: Transport> Pipeline<'_, T> {
    /// Adds a statement with its parameters (encoded now).
    pub fn add<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<&mut Self, Error> {
        run_blocking(self.client.core.pipeline_add(&mut self.buf, stmt, params))?;
        Ok(self)
    }

    /// Ends the current segment with a `Sync`: a failure before this point does not
    /// skip the statements after it.
    pub fn sync(&mut self) -> &mut Self {
        self.buf.sync();
        self
    }

    /// The number of statements added.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if no statement was added.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }

    /// Sends the batch and returns one outcome per statement, in order. Only transport
    /// and protocol failures (which close the connection) are returned as `Err`.
    pub fn run(self) -> Result<Vec<BatchOutcome>, Error> {
        run_blocking(self.client.core.pipeline_run(self.buf))
    }
}

impl<T: Transport> std::fmt::Debug for Pipeline<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("statements", &self.buf.len())
            .finish_non_exhaustive()
    }
}

#[cfg(pglite_async)]
mod async_driver {
    use super::*;
    use crate::async_client::{AsyncClient, call};

    impl AsyncClient {
        /// Starts a pipelined batch; the async twin of [`Client::pipeline`].
        pub fn pipeline(&mut self) -> AsyncPipeline<'_> {
            AsyncPipeline {
                client: self,
                buf: PipelineBuf::default(),
            }
        }
    }

    /// A pipelined batch on an [`AsyncClient`]; same semantics as [`Pipeline`].
    pub struct AsyncPipeline<'a> {
        client: &'a mut AsyncClient,
        buf: PipelineBuf,
    }

    impl AsyncPipeline<'_> {
        /// Adds a statement with its parameters (encoded now; SQL text not yet cached
        /// is prepared first).
        pub async fn add<S: ToStatement + ?Sized>(
            &mut self,
            stmt: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<&mut Self, Error> {
            let client = &mut *self.client;
            call!(
                client,
                client.core.pipeline_add(&mut self.buf, stmt, params)
            )?;
            Ok(self)
        }

        /// Ends the current segment with a `Sync`.
        pub fn sync(&mut self) -> &mut Self {
            self.buf.sync();
            self
        }

        /// The number of statements added.
        pub fn len(&self) -> usize {
            self.buf.len()
        }

        /// True if no statement was added.
        pub fn is_empty(&self) -> bool {
            self.buf.len() == 0
        }

        /// Sends the batch and returns one outcome per statement, in order.
        pub async fn run(self) -> Result<Vec<BatchOutcome>, Error> {
            let client = self.client;
            call!(client, client.core.pipeline_run(self.buf))
        }
    }

    impl std::fmt::Debug for AsyncPipeline<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AsyncPipeline")
                .field("statements", &self.buf.len())
                .finish_non_exhaustive()
        }
    }
}

#[cfg(pglite_async)]
pub use async_driver::AsyncPipeline;

#[cfg(test)]
mod tests {
    use super::first_keyword;

    #[test]
    fn first_keyword_skips_space_and_comments() {
        assert_eq!(first_keyword("COPY t FROM STDIN"), "COPY");
        assert_eq!(first_keyword("  \n\tcopy t TO STDOUT"), "copy");
        assert_eq!(
            first_keyword("-- note\n  /* a /* nested */ one */ Copy t"),
            "Copy"
        );
        assert_eq!(first_keyword("SELECT 1"), "SELECT");
        assert_eq!(first_keyword("/* unterminated"), "");
        assert_eq!(first_keyword("-- only a comment"), "");
        assert_eq!(first_keyword(""), "");
    }
}
