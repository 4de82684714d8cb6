//! The simple-query protocol read one message at a time: [`SimpleQueryMessage`]s
//! (column descriptions, text rows, command completions) decoded as they arrive.
//! `simple_query` collects them; the streams of both drivers hand them out.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{DataRowBody, Message};
use tracing::{Instrument, Span};

use crate::core::{Core, Drain, Reply, discards_statements};
use crate::error::{Error, ErrorKind};
use crate::io::Io;
use crate::protocol::unexpected;
use crate::row::{SimpleColumn, rows_affected};
use crate::rows::{Unsettled, span_sql};

/// One item of a streamed simple query ([`Client::simple_query_raw`]).
///
/// A statement that returns rows yields `RowDescription`, then its `Row`s, then
/// `CommandComplete`; other statements yield only `CommandComplete`.
///
/// [`Client::simple_query_raw`]: crate::Client::simple_query_raw
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum SimpleQueryMessage {
    /// A statement that returns rows starts: its columns.
    RowDescription(Arc<[SimpleColumn]>),
    /// A row, every value in text form.
    Row(SimpleRow),
    /// A statement finished.
    CommandComplete {
        /// The command tag, e.g. `SELECT 2`, `INSERT 0 1`, `CREATE TABLE`.
        tag: String,
        /// The row count from the tag, for commands that report one.
        rows_affected: Option<u64>,
    },
}

/// A row of the simple-query protocol: every value is PostgreSQL's text output.
#[derive(Clone)]
pub struct SimpleRow {
    columns: Arc<[SimpleColumn]>,
    data: Bytes,
    ranges: Vec<Option<Range<usize>>>,
}

impl SimpleRow {
    fn new(columns: Arc<[SimpleColumn]>, body: DataRowBody) -> Result<SimpleRow, Error> {
        let ranges: Vec<Option<Range<usize>>> = body
            .ranges()
            .collect()
            .map_err(|e| Error::with_source(ErrorKind::Protocol, "invalid DataRow", e))?;
        if ranges.len() != columns.len() {
            return Err(Error::protocol(format!(
                "DataRow has {} values but the statement has {} columns",
                ranges.len(),
                columns.len()
            )));
        }
        let data = body.buffer_bytes().clone();
        let valid = ranges
            .iter()
            .flatten()
            .all(|r| std::str::from_utf8(&data[r.clone()]).is_ok());
        if valid {
            return Ok(SimpleRow {
                columns,
                data,
                ranges,
            });
        }
        // Not UTF-8 (a client_encoding other than UTF8): keep a lossy copy.
        let mut owned = Vec::new();
        let ranges = ranges
            .into_iter()
            .map(|r| {
                r.map(|r| {
                    let start = owned.len();
                    owned.extend_from_slice(String::from_utf8_lossy(&data[r]).as_bytes());
                    start..owned.len()
                })
            })
            .collect();
        Ok(SimpleRow {
            columns,
            data: Bytes::from(owned),
            ranges,
        })
    }

    /// The row's columns.
    pub fn columns(&self) -> &[SimpleColumn] {
        &self.columns
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if the row has no values.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Value `idx` as text, `None` for NULL.
    ///
    /// # Panics
    /// If `idx` is not a column of the row (see [`SimpleRow::try_get`]).
    #[track_caller]
    pub fn get(&self, idx: usize) -> Option<&str> {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Value `idx` as text, `None` for NULL, or an error of kind
    /// [`ErrorKind::ColumnNotFound`].
    pub fn try_get(&self, idx: usize) -> Result<Option<&str>, Error> {
        let range = self.ranges.get(idx).ok_or_else(|| {
            Error::new(
                ErrorKind::ColumnNotFound,
                format!("no column {idx} in a row of {} columns", self.ranges.len()),
            )
        })?;
        // Checked to be UTF-8 when the row was built.
        Ok(range
            .clone()
            .map(|r| std::str::from_utf8(&self.data[r]).unwrap_or_default()))
    }

    /// The values in column order, as owned strings (what [`SimpleResult::rows`]
    /// holds).
    ///
    /// [`SimpleResult::rows`]: crate::SimpleResult::rows
    pub fn to_vec(&self) -> Vec<Option<String>> {
        (0..self.len())
            .map(|i| self.get(i).map(str::to_owned))
            .collect()
    }
}

impl fmt::Debug for SimpleRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (i, column) in self.columns.iter().enumerate() {
            m.entry(&column.name, &self.get(i));
        }
        m.finish()
    }
}

/// The reading state of one simple `Query`.
pub(crate) struct SimpleState {
    reply: Reply,
    columns: Option<Arc<[SimpleColumn]>>,
    discarded: bool,
    pub(crate) done: bool,
    span: Span,
}

impl SimpleState {
    /// What to do with this reply if its reader goes away before the end.
    pub(crate) fn unsettled(&mut self) -> Option<Unsettled> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(Unsettled {
            reply: std::mem::replace(&mut self.reply, Reply::new(Drain::Simple)),
            copy_fail: false,
            close_portal: None,
        })
    }
}

impl<I: Io> Core<I> {
    /// Sends a simple `Query` whose reply is then read with [`Core::next_simple`].
    pub(crate) async fn start_simple_stream(&mut self, sql: &str) -> Result<SimpleState, Error> {
        let span = tracing::debug_span!("simple_query", sql = span_sql(sql));
        self.start_simple(sql).instrument(span.clone()).await?;
        Ok(SimpleState {
            reply: Reply::new(Drain::Simple),
            columns: None,
            discarded: false,
            done: false,
            span,
        })
    }

    /// The next message of a simple query's reply, or `None` after `ReadyForQuery`.
    /// A server error ends the stream (statements after a failing one are not run);
    /// it is returned once the reply has been read to `ReadyForQuery`.
    pub(crate) async fn next_simple(
        &mut self,
        state: &mut SimpleState,
    ) -> Result<Option<SimpleQueryMessage>, Error> {
        let span = state.span.clone();
        let result = self.next_simple_message(state).instrument(span).await;
        if result.is_err() {
            state.done = true;
        }
        result
    }

    async fn next_simple_message(
        &mut self,
        state: &mut SimpleState,
    ) -> Result<Option<SimpleQueryMessage>, Error> {
        loop {
            if state.done {
                return Ok(None);
            }
            let Some(message) = self.next_reply(&mut state.reply).await? else {
                state.done = true;
                if state.discarded {
                    self.cache.clear();
                }
                return match state.reply.first.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            };
            let handled = match message {
                Message::RowDescription(body) => body
                    .fields()
                    .map(|f| {
                        Ok(SimpleColumn {
                            name: f.name().to_owned(),
                            type_oid: f.type_oid(),
                        })
                    })
                    .collect::<Vec<_>>()
                    .map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid RowDescription", e)
                    })
                    .map(|columns| {
                        let columns: Arc<[SimpleColumn]> = columns.into();
                        state.columns = Some(columns.clone());
                        Some(SimpleQueryMessage::RowDescription(columns))
                    }),
                Message::DataRow(body) => match &state.columns {
                    Some(columns) => SimpleRow::new(columns.clone(), body)
                        .map(|r| Some(SimpleQueryMessage::Row(r))),
                    None => Err(Error::protocol("DataRow without RowDescription")),
                },
                Message::CommandComplete(body) => body
                    .tag()
                    .map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid CommandComplete", e)
                    })
                    .map(|tag| {
                        state.discarded |= discards_statements(tag);
                        state.columns = None;
                        Some(SimpleQueryMessage::CommandComplete {
                            tag: tag.to_owned(),
                            rows_affected: rows_affected(tag),
                        })
                    }),
                Message::EmptyQueryResponse
                | Message::CloseComplete
                | Message::CopyData(_)
                | Message::CopyDone => Ok(None),
                Message::CopyOutResponse(_) => Err(Error::new(
                    ErrorKind::Usage,
                    "COPY ... TO STDOUT must be run with copy_out",
                )),
                other => Err(unexpected(&other)),
            };
            match handled {
                Ok(Some(message)) => return Ok(Some(message)),
                Ok(None) => {}
                Err(e) => self.record(&mut state.reply, e)?,
            }
        }
    }
}
