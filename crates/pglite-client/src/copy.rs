//! `COPY ... FROM STDIN` / `COPY ... TO STDOUT`, written once over the core and a
//! data source/sink that may be blocking (`std::io`) or async (tokio).

use std::future::Future;
use std::io::{self, Read, Write};

use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tracing::Instrument;

use crate::core::{Core, Drain, Reply};
use crate::error::{Error, ErrorKind};
use crate::io::Io;
use crate::protocol::unexpected;
use crate::row::rows_affected;
use crate::rows::span_sql;

/// Bytes per `CopyData` message, and the buffer size handed to the transport at once.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Where `copy_in` reads its data.
pub(crate) trait CopySource {
    /// Reads into `buf`; `Ok(0)` is the end of the data.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
}

/// Where `copy_out` writes its data.
pub(crate) trait CopySink {
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Flushes at the end.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>>;
}

/// A blocking reader as a [`CopySource`].
pub(crate) struct SyncReader<R>(pub(crate) R);

impl<R: Read> CopySource for SyncReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A blocking writer as a [`CopySink`].
pub(crate) struct SyncWriter<W>(pub(crate) W);

impl<W: Write> CopySink for SyncWriter<W> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

pub(crate) async fn copy_in<I: Io, R: CopySource>(
    client: &mut Core<I>,
    sql: &str,
    reader: R,
) -> Result<u64, Error> {
    copy_in_untraced(client, sql, reader)
        .instrument(copy_span(sql, "in"))
        .await
}

/// The span of a COPY.
pub(crate) fn copy_span(sql: &str, direction: &'static str) -> tracing::Span {
    tracing::debug_span!("copy", sql = span_sql(sql), direction)
}

async fn copy_in_untraced<I: Io, R: CopySource>(
    client: &mut Core<I>,
    sql: &str,
    mut reader: R,
) -> Result<u64, Error> {
    client.copy_start(sql)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut read_error: Option<io::Error> = None;
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let data = &chunk[..n];
        client
            .queue_bytes(
                |out| {
                    frontend::CopyData::new(data)
                        .expect("chunk is smaller than the message size limit")
                        .write(out)
                },
                CHUNK,
            )
            .await?;
    }
    match &read_error {
        None => client.queue_bytes(frontend::copy_done, 0).await?,
        Some(e) => {
            let message = format!("reading the COPY data failed: {e}");
            client
                .queue_bytes(
                    |out| {
                        let _ = frontend::copy_fail(&message.replace('\0', ""), out);
                    },
                    0,
                )
                .await?
        }
    }
    client.flush_out().await?;
    let reply = read_copy_in_reply(client).await;
    if let Some(e) = read_error {
        return Err(Error::with_source(
            ErrorKind::Io,
            "reading the COPY data failed (the COPY was aborted)",
            e,
        ));
    }
    reply.into_count("copy_in")
}

/// The reply to a `COPY ... FROM STDIN` whose data was sent.
pub(crate) struct CopyInReply {
    result: Result<(), Error>,
    count: Option<u64>,
    saw_copy_in: bool,
}

impl CopyInReply {
    /// The rows copied, or the error; `call` names the API in the message for a
    /// statement that was not `COPY ... FROM STDIN`.
    pub(crate) fn into_count(self, call: &str) -> Result<u64, Error> {
        self.result?;
        if !self.saw_copy_in {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{call} needs a COPY ... FROM STDIN statement (the statement was run, \
                     the data ignored)"
                ),
            ));
        }
        Ok(self.count.unwrap_or(0))
    }
}

/// Reads the reply to a `COPY ... FROM STDIN` (data, `CopyDone`/`CopyFail` sent) up to
/// `ReadyForQuery`.
pub(crate) async fn read_copy_in_reply<I: Io>(client: &mut Core<I>) -> CopyInReply {
    let mut count = None;
    let mut saw_copy_in = false;
    let result = client
        .finish(Drain::CopyIn, |message| {
            match message {
                Message::CopyInResponse(_) => saw_copy_in = true,
                Message::CommandComplete(body) => {
                    count = body.tag().ok().and_then(rows_affected);
                }
                Message::CloseComplete
                | Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::EmptyQueryResponse
                | Message::CopyOutResponse(_)
                | Message::CopyData(_)
                | Message::CopyDone => {}
                other => return Err(unexpected(&other)),
            }
            Ok(())
        })
        .await;
    CopyInReply {
        result,
        count,
        saw_copy_in,
    }
}

/// The messages of a `COPY ... TO STDOUT` reply other than `CopyOutResponse` and
/// `CopyData`: the row count from `CommandComplete`, the ones that carry nothing here,
/// and an error for anything else.
pub(crate) fn copy_out_tail(message: Message, count: &mut Option<u64>) -> Result<(), Error> {
    match message {
        Message::CommandComplete(body) => {
            *count = body.tag().ok().and_then(rows_affected);
            Ok(())
        }
        Message::CopyDone
        | Message::CloseComplete
        | Message::RowDescription(_)
        | Message::DataRow(_)
        | Message::EmptyQueryResponse => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub(crate) async fn copy_out<I: Io, W: CopySink>(
    client: &mut Core<I>,
    sql: &str,
    writer: W,
) -> Result<u64, Error> {
    copy_out_untraced(client, sql, writer)
        .instrument(copy_span(sql, "out"))
        .await
}

async fn copy_out_untraced<I: Io, W: CopySink>(
    client: &mut Core<I>,
    sql: &str,
    mut writer: W,
) -> Result<u64, Error> {
    client.copy_start(sql)?;
    client.flush_out().await?;
    let mut count = None;
    let mut saw_copy_out = false;
    let mut write_error: Option<io::Error> = None;
    let mut reply = Reply::new(Drain::Simple);
    while let Some(message) = client.next_reply(&mut reply).await? {
        let handled = match message {
            Message::CopyOutResponse(_) => {
                saw_copy_out = true;
                Ok(())
            }
            Message::CopyData(body) => {
                if write_error.is_none()
                    && let Err(e) = writer.write_all(body.data()).await
                {
                    write_error = Some(e);
                }
                Ok(())
            }
            other => copy_out_tail(other, &mut count),
        };
        if let Err(e) = handled {
            client.record(&mut reply, e)?;
        }
    }
    reply.into_result()?;
    if write_error.is_none()
        && let Err(e) = writer.flush().await
    {
        write_error = Some(e);
    }
    if let Some(e) = write_error {
        return Err(Error::with_source(
            ErrorKind::Io,
            "writing the COPY output failed",
            e,
        ));
    }
    if !saw_copy_out {
        return Err(Error::new(
            ErrorKind::Usage,
            "copy_out needs a COPY ... TO STDOUT statement (the statement was run)",
        ));
    }
    Ok(count.unwrap_or(0))
}
