//! Streams of the async driver: the same core readers as the blocking streams, with
//! `next().await` and a `futures_core::Stream` implementation.
//!
//! A stream dropped before its end cannot wait for the server, so it leaves its
//! reader state with the client ([`AsyncClient::unsettled`]), which reads the rest of
//! the reply before its next call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres_types::ToSql;

use crate::async_client::{AsyncClient, SocketIo, call};
use crate::core::Core;
use crate::error::Error;
use crate::row::Row;
use crate::rows::{Portal, RowsState, Unsettled};
use crate::simple::{SimpleQueryMessage, SimpleState};
use crate::statement::{Column, ToStatement};
use crate::stream::{check_cursor_status, fetch_limit};

/// The reader state of a reply, as an async stream needs it.
pub(crate) trait ReplyReader: Send + 'static {
    /// What the stream yields.
    type Item: Send + 'static;
    /// Reads the next item (`None` at the end).
    fn read<'c>(
        &'c mut self,
        core: &'c mut Core<SocketIo>,
    ) -> impl Future<Output = Result<Option<Self::Item>, Error>> + Send + 'c;
    /// True once the reply was read to its end.
    fn is_done(&self) -> bool;
    /// The reply's remainder, to be read by the client's next call.
    fn take_unsettled(&mut self) -> Option<Unsettled>;
}

impl ReplyReader for RowsState {
    type Item = Row;
    fn read<'c>(
        &'c mut self,
        core: &'c mut Core<SocketIo>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c {
        core.next_row(self)
    }
    fn is_done(&self) -> bool {
        self.done
    }
    fn take_unsettled(&mut self) -> Option<Unsettled> {
        self.unsettled()
    }
}

impl ReplyReader for SimpleState {
    type Item = SimpleQueryMessage;
    fn read<'c>(
        &'c mut self,
        core: &'c mut Core<SocketIo>,
    ) -> impl Future<Output = Result<Option<SimpleQueryMessage>, Error>> + Send + 'c {
        core.next_simple(self)
    }
    fn is_done(&self) -> bool {
        self.done
    }
    fn take_unsettled(&mut self) -> Option<Unsettled> {
        self.unsettled()
    }
}

/// The client and a reader, moved into the future of a `poll_next` in progress.
struct Held<'a, R> {
    client: &'a mut AsyncClient,
    reader: R,
}

impl<R: ReplyReader> Held<'_, R> {
    async fn next(&mut self) -> Option<Result<R::Item, Error>> {
        if self.reader.is_done() {
            return None;
        }
        self.client.in_flight = true;
        let result = self.reader.read(&mut self.client.core).await;
        self.client.in_flight = false;
        if self.reader.is_done() {
            self.client.core.stream_open = false;
        }
        result.transpose()
    }
}

type Step<'a, R> = Pin<
    Box<
        dyn Future<Output = (Held<'a, R>, Option<Result<<R as ReplyReader>::Item, Error>>)>
            + Send
            + 'a,
    >,
>;

/// An async stream over a [`ReplyReader`]: `next().await`, `Stream`, and the
/// hand-over of an unfinished reply to the client on drop.
pub(crate) struct AsyncReply<'a, R: ReplyReader> {
    held: Option<Held<'a, R>>,
    /// A `poll_next` in progress (it owns `held` until it completes).
    step: Option<Step<'a, R>>,
}

impl<'a, R: ReplyReader> AsyncReply<'a, R> {
    pub(crate) fn new(client: &'a mut AsyncClient, reader: R) -> Self {
        client.core.stream_open = true;
        AsyncReply {
            held: Some(Held { client, reader }),
            step: None,
        }
    }

    pub(crate) fn reader(&self) -> Option<&R> {
        self.held.as_ref().map(|h| &h.reader)
    }

    pub(crate) async fn next(&mut self) -> Option<Result<R::Item, Error>> {
        if let Some(step) = self.step.take() {
            let (held, item) = step.await;
            self.held = Some(held);
            return item;
        }
        self.held.as_mut()?.next().await
    }

    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<R::Item, Error>>> {
        if self.step.is_none() {
            let Some(mut held) = self.held.take() else {
                return Poll::Ready(None);
            };
            if held.reader.is_done() {
                self.held = Some(held);
                return Poll::Ready(None);
            }
            self.step = Some(Box::pin(async move {
                let item = held.next().await;
                (held, item)
            }));
        }
        let step = self.step.as_mut().expect("set above");
        match step.as_mut().poll(cx) {
            Poll::Ready((held, item)) => {
                self.step = None;
                self.held = Some(held);
                Poll::Ready(item)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<R: ReplyReader> Drop for AsyncReply<'_, R> {
    fn drop(&mut self) {
        // With a step in progress, the client stays marked in flight: its next call
        // finds it closed, as for any abandoned call.
        if let Some(held) = self.held.as_mut() {
            if let Some(unsettled) = held.reader.take_unsettled() {
                held.client.unsettled.push(unsettled);
            }
            held.client.core.stream_open = false;
        }
    }
}

impl AsyncClient {
    /// Runs a statement and streams its rows, decoding each as it arrives (memory use
    /// does not grow with the number of rows). The async twin of
    /// [`Client::query_raw`](crate::Client::query_raw): parameter and plan errors are
    /// returned here, an error while the rows stream is the stream's last item.
    /// Dropping the stream early leaves the rest of the reply to be read (and
    /// discarded) before the client's next call.
    ///
    /// ```no_run
    /// # async fn demo(client: &mut pglite_client::AsyncClient) -> Result<(), pglite_client::Error> {
    /// let mut rows = client.query_raw("SELECT g FROM generate_series(1, 1000000) g", &[]).await?;
    /// let mut sum = 0i64;
    /// while let Some(row) = rows.next().await {
    ///     sum += i64::from(row?.get::<_, i32>(0));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query_raw<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<AsyncRowStream<'_>, Error> {
        let state = call!(self, self.core.start_rows(stmt, params, None))?;
        Ok(AsyncRowStream::new(self, state))
    }

    /// Opens a cursor that fetches `fetch_size` rows per round trip (`Execute` with a
    /// row limit); needs a transaction block. The async twin of
    /// [`Client::cursor`](crate::Client::cursor).
    pub async fn cursor<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
        fetch_size: u32,
    ) -> Result<AsyncRowStream<'_>, Error> {
        let fetch_size = fetch_limit(fetch_size)?;
        self.enter().await?;
        self.in_flight = false;
        check_cursor_status(self.core.session.status)?;
        let portal = Portal {
            name: self.core.next_portal_name(),
            fetch_size,
        };
        let state = call!(self, self.core.start_rows(stmt, params, Some(portal)))?;
        Ok(AsyncRowStream::new(self, state))
    }

    /// Runs `;`-separated statements with the simple-query protocol and streams the
    /// reply as [`SimpleQueryMessage`]s. The async twin of
    /// [`Client::simple_query_raw`](crate::Client::simple_query_raw).
    pub async fn simple_query_raw(
        &mut self,
        sql: &str,
    ) -> Result<AsyncSimpleQueryStream<'_>, Error> {
        let state = call!(self, self.core.start_simple_stream(sql))?;
        Ok(AsyncSimpleQueryStream(AsyncReply::new(self, state)))
    }
}

/// Rows of [`AsyncClient::query_raw`] or [`AsyncClient::cursor`], decoded as they
/// arrive: `next().await`, or use it as a `futures_core::Stream`.
pub struct AsyncRowStream<'a> {
    inner: AsyncReply<'a, RowsState>,
    columns: Arc<[Column]>,
}

impl<'a> AsyncRowStream<'a> {
    fn new(client: &'a mut AsyncClient, state: RowsState) -> Self {
        let columns = state.columns.clone();
        AsyncRowStream {
            inner: AsyncReply::new(client, state),
            columns,
        }
    }

    /// The next row, `None` at the end. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<Row, Error>> {
        self.inner.next().await
    }

    /// The statement's result columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The command tag, once the stream has ended (for a cursor: of its last batch).
    pub fn command_tag(&self) -> Option<&str> {
        self.inner.reader().and_then(|r| r.tag.as_deref())
    }

    /// Once the stream has ended: the number of rows affected or returned (for a
    /// cursor: the number of rows it returned).
    pub fn rows_affected(&self) -> Option<u64> {
        self.inner.reader().and_then(RowsState::rows_affected)
    }
}

impl futures_core::Stream for AsyncRowStream<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_next(cx)
    }
}

impl fmt::Debug for AsyncRowStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRowStream")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// The reply of [`AsyncClient::simple_query_raw`], one [`SimpleQueryMessage`] at a
/// time: `next().await`, or use it as a `futures_core::Stream`.
pub struct AsyncSimpleQueryStream<'a>(AsyncReply<'a, SimpleState>);

impl AsyncSimpleQueryStream<'_> {
    /// The next message, `None` at the end. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<SimpleQueryMessage, Error>> {
        self.0.next().await
    }
}

impl futures_core::Stream for AsyncSimpleQueryStream<'_> {
    type Item = Result<SimpleQueryMessage, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_next(cx)
    }
}

impl fmt::Debug for AsyncSimpleQueryStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSimpleQueryStream")
            .finish_non_exhaustive()
    }
}
