//! PostgreSQL's binary COPY format: an encoder of rows given as `ToSql` values, a
//! decoder into typed [`BinaryRow`]s, and streaming `COPY ... FROM STDIN (FORMAT
//! binary)` / `COPY ... TO STDOUT (FORMAT binary)` for both drivers.
//!
//! The format: the 11-byte signature `PGCOPY\n\xff\r\n\0`, a 32-bit flags word, a
//! 32-bit header-extension length and the extension; then per row a 16-bit field count
//! and per field a 32-bit length (−1 for NULL) and the value in the type's binary
//! send/receive format; then the 16-bit trailer −1. All integers big-endian.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use postgres_types::{FromSql, IsNull, ToSql, Type, WasNull, WrongType};
use tracing::{Instrument, Span};

use crate::client::Client;
use crate::copy::{CHUNK, copy_span, read_copy_in_reply};
use crate::core::{Core, Drain, Reply};
use crate::error::{Error, ErrorKind};
use crate::io::{Io, run_blocking};
use crate::protocol::unexpected;
use crate::row::rows_affected;
use crate::rows::Unsettled;
use crate::transport::Transport;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Flags word bit 16: every row carries an OID (not supported since PostgreSQL 12).
const FLAG_OIDS: u32 = 1 << 16;

fn malformed(what: impl Into<String>) -> Error {
    Error::protocol(format!("malformed binary COPY data: {}", what.into()))
}

/// Encodes rows into the binary COPY format.
///
/// The header is written at creation, the trailer by [`finish`](Self::finish); take
/// the bytes with [`take`](Self::take) as they accumulate. Useful on its own to write
/// files for `COPY ... FROM '<file>' (FORMAT binary)`;
/// [`Client::copy_in_binary`] uses it to stream rows to the server.
///
/// ```
/// use pglite_client::{BinaryCopyDecoder, BinaryCopyEncoder, Type};
/// let types = [Type::INT4, Type::TEXT];
/// let mut encoder = BinaryCopyEncoder::new(&types);
/// encoder.write_row(&[&1i32, &"one"])?;
/// encoder.write_row(&[&2i32, &None::<&str>])?;
/// encoder.finish();
/// let bytes = encoder.take();
///
/// let mut decoder = BinaryCopyDecoder::new(&types);
/// decoder.push(&bytes);
/// let row = decoder.next_row()?.unwrap();
/// assert_eq!((row.get::<i32>(0), row.get::<&str>(1)), (1, "one"));
/// let row = decoder.next_row()?.unwrap();
/// assert_eq!(row.get::<Option<&str>>(1), None);
/// assert!(decoder.next_row()?.is_none());
/// assert!(decoder.is_finished());
/// # Ok::<(), pglite_client::Error>(())
/// ```
pub struct BinaryCopyEncoder {
    types: Vec<Type>,
    buf: BytesMut,
    rows: u64,
    finished: bool,
}

impl BinaryCopyEncoder {
    /// An encoder of rows whose columns have `types` (the table's column types, in
    /// the order of the COPY's column list); the header is written at once.
    pub fn new(types: &[Type]) -> BinaryCopyEncoder {
        let mut buf = BytesMut::with_capacity(CHUNK);
        buf.put_slice(SIGNATURE);
        buf.put_u32(0); // flags
        buf.put_u32(0); // header extension length
        BinaryCopyEncoder {
            types: types.to_vec(),
            buf,
            rows: 0,
            finished: false,
        }
    }

    /// Encodes one row: a value per column, converted with `ToSql` for the column's
    /// type. On error (a wrong number of values, a value that does not convert) nothing
    /// of the row is kept.
    pub fn write_row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
        if self.finished {
            return Err(Error::new(
                ErrorKind::Usage,
                "the binary COPY data is already finished",
            ));
        }
        if values.len() != self.types.len() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "the COPY has {} column(s) but {} value(s) were given",
                    self.types.len(),
                    values.len()
                ),
            ));
        }
        let start = self.buf.len();
        let result = self.encode_row(values);
        if result.is_err() {
            self.buf.truncate(start);
        } else {
            self.rows += 1;
        }
        result
    }

    fn encode_row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
        // At most 1,664 columns per table, so the count fits.
        self.buf.put_i16(values.len() as i16);
        for (i, (value, ty)) in values.iter().zip(&self.types).enumerate() {
            let at = self.buf.len();
            self.buf.put_i32(0);
            let is_null = value.to_sql_checked(ty, &mut self.buf).map_err(|e| {
                let what = if e.is::<WrongType>() {
                    format!(
                        "the value for column {i} cannot be written as type {ty} (binary COPY \
                         needs a Rust type whose ToSql accepts {ty})"
                    )
                } else {
                    format!("cannot convert the value for column {i} to type {ty}")
                };
                Error::conversion(what, e)
            })?;
            let len = match is_null {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.buf.len() - at - 4).map_err(|_| {
                    Error::new(
                        ErrorKind::Conversion,
                        format!("the value for column {i} is larger than 2 GiB"),
                    )
                })?,
            };
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// Writes the trailer; later rows are refused.
    pub fn finish(&mut self) {
        if !self.finished {
            self.buf.put_i16(-1);
            self.finished = true;
        }
    }

    /// Takes the bytes encoded so far.
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// The number of bytes encoded and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The number of rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl fmt::Debug for BinaryCopyEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinaryCopyEncoder")
            .field("types", &self.types)
            .field("rows", &self.rows)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Decodes binary COPY data, pushed in pieces of any size, into [`BinaryRow`]s.
///
/// Malformed data (a bad signature or header, a truncated row) is an error of kind
/// [`ErrorKind::Protocol`]; rows with a different number of fields than types given
/// are [`ErrorKind::Usage`]. See [`BinaryCopyEncoder`] for an example.
pub struct BinaryCopyDecoder {
    types: Arc<[Type]>,
    buf: BytesMut,
    header_done: bool,
    finished: bool,
}

impl BinaryCopyDecoder {
    /// A decoder of rows whose columns have `types`.
    pub fn new(types: &[Type]) -> BinaryCopyDecoder {
        BinaryCopyDecoder {
            types: types.into(),
            buf: BytesMut::new(),
            header_done: false,
            finished: false,
        }
    }

    /// Appends data.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True once the trailer was read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next complete row, or `None` when more data is needed (or after the
    /// trailer).
    pub fn next_row(&mut self) -> Result<Option<BinaryRow>, Error> {
        if self.finished {
            if !self.buf.is_empty() {
                return Err(malformed("data after the trailer"));
            }
            return Ok(None);
        }
        if !self.header_done && !self.read_header()? {
            return Ok(None);
        }
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        if fields == -1 {
            self.buf.advance(2);
            self.finished = true;
            return self.next_row();
        }
        if fields < 0 {
            return Err(malformed(format!("field count {fields}")));
        }
        // Find the end of the row without consuming anything.
        let mut at = 2usize;
        let mut ranges = Vec::with_capacity(fields as usize);
        for _ in 0..fields {
            let Some(len) = self.buf.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            at += 4;
            if len == -1 {
                ranges.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| malformed(format!("field length {len}")))?;
            if self.buf.len() < at + len {
                return Ok(None);
            }
            ranges.push(Some(at..at + len));
            at += len;
        }
        let data = self.buf.split_to(at).freeze();
        if ranges.len() != self.types.len() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "the COPY rows have {} column(s) but {} type(s) were given",
                    ranges.len(),
                    self.types.len()
                ),
            ));
        }
        Ok(Some(BinaryRow {
            types: self.types.clone(),
            data,
            ranges,
        }))
    }

    fn read_header(&mut self) -> Result<bool, Error> {
        let seen = self.buf.len().min(SIGNATURE.len());
        if self.buf[..seen] != SIGNATURE[..seen] {
            return Err(malformed("missing PGCOPY signature (is it FORMAT binary?)"));
        }
        let fixed = SIGNATURE.len() + 8;
        if self.buf.len() < fixed {
            return Ok(false);
        }
        let word = |i: usize| {
            u32::from_be_bytes([
                self.buf[i],
                self.buf[i + 1],
                self.buf[i + 2],
                self.buf[i + 3],
            ])
        };
        let flags = word(SIGNATURE.len());
        let extension = word(SIGNATURE.len() + 4) as usize;
        if flags & FLAG_OIDS != 0 {
            return Err(Error::new(
                ErrorKind::Usage,
                "binary COPY data with OIDs is not supported",
            ));
        }
        if flags & 0xffff != 0 {
            return Err(malformed(format!(
                "unknown critical header flags {flags:#x}"
            )));
        }
        if self.buf.len() < fixed + extension {
            return Ok(false);
        }
        self.buf.advance(fixed + extension);
        self.header_done = true;
        Ok(true)
    }
}

impl fmt::Debug for BinaryCopyDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinaryCopyDecoder")
            .field("types", &self.types)
            .field("buffered", &self.buf.len())
            .field("finished", &self.finished)
            .finish()
    }
}

/// One row of binary COPY data, read with the types given to the decoder.
#[derive(Clone)]
pub struct BinaryRow {
    types: Arc<[Type]>,
    data: Bytes,
    ranges: Vec<Option<Range<usize>>>,
}

impl BinaryRow {
    /// The column types.
    pub fn types(&self) -> &[Type] {
        &self.types
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if the row has no values.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The raw binary value of column `idx` (`None` for NULL or no such column).
    pub fn raw(&self, idx: usize) -> Option<&[u8]> {
        self.ranges.get(idx)?.clone().map(|r| &self.data[r])
    }

    /// Reads value `idx` as `T`.
    ///
    /// # Panics
    /// If there is no such column, or the value does not convert (see
    /// [`BinaryRow::try_get`]).
    #[track_caller]
    pub fn get<'a, T: FromSql<'a>>(&'a self, idx: usize) -> T {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("error retrieving column {idx}: {e}"),
        }
    }

    /// Reads value `idx` as `T`, or says why it cannot.
    pub fn try_get<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        let Some(range) = self.ranges.get(idx) else {
            return Err(Error::new(
                ErrorKind::ColumnNotFound,
                format!("no column {idx} in a row of {} columns", self.ranges.len()),
            ));
        };
        let ty = &self.types[idx];
        if !T::accepts(ty) {
            return Err(Error::conversion(
                format!("cannot read column {idx}"),
                Box::new(WrongType::new::<T>(ty.clone())),
            ));
        }
        let raw = range.clone().map(|r| &self.data[r]);
        T::from_sql_nullable(ty, raw).map_err(|e| {
            let what = if e.is::<WasNull>() {
                format!(
                    "column {idx} is NULL; read it as Option<{}>",
                    std::any::type_name::<T>()
                )
            } else {
                format!(
                    "cannot convert column {idx} ({ty}) to {}",
                    std::any::type_name::<T>()
                )
            };
            Error::conversion(what, e)
        })
    }
}

impl fmt::Debug for BinaryRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinaryRow")
            .field("types", &self.types)
            .field("len", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

// ----- the core: streaming COPY in binary format -----------------------------------

/// An open `COPY ... FROM STDIN (FORMAT binary)`.
pub(crate) struct CopyInState {
    encoder: BinaryCopyEncoder,
    span: Span,
    pub(crate) open: bool,
}

impl CopyInState {
    /// What to do if the writer goes away before `finish`: abort the COPY.
    pub(crate) fn unsettled(&mut self) -> Option<Unsettled> {
        if !self.open {
            return None;
        }
        self.open = false;
        Some(Unsettled {
            reply: Reply::new(Drain::CopyIn),
            copy_fail: true,
            close_portal: None,
        })
    }
}

/// An open `COPY ... TO STDOUT (FORMAT binary)` being read.
pub(crate) struct CopyOutState {
    reply: Reply,
    decoder: BinaryCopyDecoder,
    count: Option<u64>,
    saw_copy_out: bool,
    pub(crate) done: bool,
    span: Span,
}

impl CopyOutState {
    /// What to do if the reader goes away before the end: read the rest.
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

    /// The rows the server reported copied, once the end was read.
    pub(crate) fn rows_affected(&self) -> Option<u64> {
        self.count
    }
}

impl<I: Io> Core<I> {
    /// Queues the `COPY ... FROM STDIN` query; rows follow as `CopyData` (nothing is
    /// read until `finish`, so an in-process engine gets the whole COPY in one go).
    pub(crate) fn copy_in_binary_start(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<CopyInState, Error> {
        let span = copy_span(sql, "in");
        span.in_scope(|| self.copy_start(sql))?;
        Ok(CopyInState {
            encoder: BinaryCopyEncoder::new(types),
            span,
            open: true,
        })
    }

    /// Encodes a row; every 64 KiB of rows goes to the transport as one `CopyData`.
    pub(crate) async fn copy_in_binary_write(
        &mut self,
        state: &mut CopyInState,
        values: &[&(dyn ToSql + Sync)],
    ) -> Result<(), Error> {
        state.encoder.write_row(values)?;
        if state.encoder.buffered() >= CHUNK {
            let span = state.span.clone();
            self.queue_copy_data(&mut state.encoder)
                .instrument(span)
                .await?;
        }
        Ok(())
    }

    async fn queue_copy_data(&mut self, encoder: &mut BinaryCopyEncoder) -> Result<(), Error> {
        let data = encoder.take();
        let message = frontend::CopyData::new(&data[..])
            .map_err(|e| Error::with_source(ErrorKind::Usage, "a row is too large", e))?;
        self.queue_bytes(|out| message.write(out), CHUNK).await
    }

    /// Sends the rest of the rows, the trailer and `CopyDone`; returns the number of
    /// rows copied.
    pub(crate) async fn copy_in_binary_finish(
        &mut self,
        state: &mut CopyInState,
    ) -> Result<u64, Error> {
        state.open = false;
        let span = state.span.clone();
        async {
            state.encoder.finish();
            self.queue_copy_data(&mut state.encoder).await?;
            self.queue_bytes(frontend::copy_done, 0).await?;
            self.flush_out().await?;
            read_copy_in_reply(self).await.into_count("copy_in_binary")
        }
        .instrument(span)
        .await
    }

    /// Sends the `COPY ... TO STDOUT` query; rows are then read with
    /// [`Core::next_binary_row`].
    pub(crate) async fn copy_out_binary_start(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<CopyOutState, Error> {
        let span = copy_span(sql, "out");
        async {
            self.copy_start(sql)?;
            self.flush_out().await
        }
        .instrument(span.clone())
        .await?;
        Ok(CopyOutState {
            reply: Reply::new(Drain::Simple),
            decoder: BinaryCopyDecoder::new(types),
            count: None,
            saw_copy_out: false,
            done: false,
            span,
        })
    }

    /// The next row of a binary `COPY ... TO STDOUT`, decoded as its `CopyData`
    /// arrives; `None` at the end. Errors are returned once the reply was read to
    /// `ReadyForQuery`.
    pub(crate) async fn next_binary_row(
        &mut self,
        state: &mut CopyOutState,
    ) -> Result<Option<BinaryRow>, Error> {
        let span = state.span.clone();
        async {
            let result = self.next_binary_row_untraced(state).await;
            if result.is_err() {
                state.done = true;
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn next_binary_row_untraced(
        &mut self,
        state: &mut CopyOutState,
    ) -> Result<Option<BinaryRow>, Error> {
        loop {
            if state.done {
                return Ok(None);
            }
            if state.reply.first.is_none() {
                match state.decoder.next_row() {
                    Ok(Some(row)) => return Ok(Some(row)),
                    Ok(None) => {}
                    Err(e) => self.record(&mut state.reply, e)?,
                }
            }
            let Some(message) = self.next_reply(&mut state.reply).await? else {
                state.done = true;
                if let Some(e) = state.reply.first.take() {
                    return Err(e);
                }
                if !state.saw_copy_out {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        "copy_out_binary needs a COPY ... TO STDOUT (FORMAT binary) statement \
                         (the statement was run)",
                    ));
                }
                if !state.decoder.is_finished() {
                    return Err(self.fail(malformed("the data ended without a trailer")));
                }
                return Ok(None);
            };
            let handled = match message {
                Message::CopyOutResponse(body) => {
                    state.saw_copy_out = true;
                    if body.format() == 1 {
                        Ok(())
                    } else {
                        Err(Error::new(
                            ErrorKind::Usage,
                            "the COPY output is in text format: add (FORMAT binary) to the \
                             statement, or use copy_out",
                        ))
                    }
                }
                Message::CopyData(body) => {
                    if state.reply.first.is_none() {
                        state.decoder.push(body.data());
                    }
                    Ok(())
                }
                Message::CommandComplete(body) => {
                    state.count = body.tag().ok().and_then(rows_affected);
                    Ok(())
                }
                Message::CopyDone
                | Message::CloseComplete
                | Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::EmptyQueryResponse => Ok(()),
                other => Err(unexpected(&other)),
            };
            if let Err(e) = handled {
                self.record(&mut state.reply, e)?;
            }
        }
    }
}

// ----- the blocking driver ---------------------------------------------------------

impl<T: Transport> Client<T> {
    /// Starts `COPY ... FROM STDIN (FORMAT binary)`: rows written to the returned
    /// writer are encoded with `ToSql` for `types` (the target columns' types, in
    /// order) and streamed in 64 KiB `CopyData` messages. Call
    /// [`finish`](BinaryCopyInWriter::finish) to complete the COPY; dropping the
    /// writer aborts it (`CopyFail`) and nothing is copied.
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// use pglite_client::Type;
    /// let mut writer = client.copy_in_binary(
    ///     "COPY items (id, name) FROM STDIN (FORMAT binary)",
    ///     &[Type::INT8, Type::TEXT],
    /// )?;
    /// for id in 0..1000i64 {
    ///     writer.write(&[&id, &format!("item {id}")])?;
    /// }
    /// assert_eq!(writer.finish()?, 1000);
    /// # Ok(()) }
    /// ```
    pub fn copy_in_binary(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<BinaryCopyInWriter<'_, T>, Error> {
        let state = self.core.copy_in_binary_start(sql, types)?;
        self.core.stream_open = true;
        Ok(BinaryCopyInWriter {
            client: self,
            state,
        })
    }

    /// Runs `COPY ... TO STDOUT (FORMAT binary)` and returns its rows, decoded as they
    /// arrive with `types` (the output columns' types, in order). An iterator of
    /// `Result<BinaryRow, Error>`; dropping it early reads and discards the rest.
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// use pglite_client::Type;
    /// let rows = client.copy_out_binary(
    ///     "COPY items (id, name) TO STDOUT (FORMAT binary)",
    ///     &[Type::INT8, Type::TEXT],
    /// )?;
    /// for row in rows {
    ///     let row = row?;
    ///     let (id, name): (i64, &str) = (row.get(0), row.get(1));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn copy_out_binary(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<BinaryCopyOutReader<'_, T>, Error> {
        let state = run_blocking(self.core.copy_out_binary_start(sql, types))?;
        self.core.stream_open = true;
        Ok(BinaryCopyOutReader {
            client: self,
            state,
        })
    }
}

/// Writes rows into a `COPY ... FROM STDIN (FORMAT binary)`; see
/// [`Client::copy_in_binary`].
pub struct BinaryCopyInWriter<'a, T: Transport> {
    client: &'a mut Client<T>,
    state: CopyInState,
}

impl<T: Transport> BinaryCopyInWriter<'_, T> {
    /// Encodes and queues one row (a value per column). A value that does not convert
    /// is an error and leaves the row out; the COPY stays open.
    pub fn write(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
        run_blocking(
            self.client
                .core
                .copy_in_binary_write(&mut self.state, values),
        )
    }

    /// The number of rows written so far.
    pub fn rows(&self) -> u64 {
        self.state.encoder.rows()
    }

    /// Completes the COPY; returns the number of rows copied.
    pub fn finish(mut self) -> Result<u64, Error> {
        let result = run_blocking(self.client.core.copy_in_binary_finish(&mut self.state));
        self.client.core.stream_open = false;
        result
    }
}

impl<T: Transport> Drop for BinaryCopyInWriter<'_, T> {
    fn drop(&mut self) {
        if let Some(unsettled) = self.state.unsettled() {
            let _ = run_blocking(self.client.core.settle(unsettled));
        }
        self.client.core.stream_open = false;
    }
}

impl<T: Transport> fmt::Debug for BinaryCopyInWriter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinaryCopyInWriter")
            .field("encoder", &self.state.encoder)
            .finish_non_exhaustive()
    }
}

/// The rows of a `COPY ... TO STDOUT (FORMAT binary)`; see
/// [`Client::copy_out_binary`].
pub struct BinaryCopyOutReader<'a, T: Transport> {
    client: &'a mut Client<T>,
    state: CopyOutState,
}

impl<T: Transport> BinaryCopyOutReader<'_, T> {
    /// The number of rows the server reported copied, once all were read.
    pub fn rows_affected(&self) -> Option<u64> {
        self.state.rows_affected()
    }
}

impl<T: Transport> Iterator for BinaryCopyOutReader<'_, T> {
    type Item = Result<BinaryRow, Error>;

    fn next(&mut self) -> Option<Result<BinaryRow, Error>> {
        if self.state.done {
            return None;
        }
        let result = run_blocking(self.client.core.next_binary_row(&mut self.state));
        if self.state.done {
            self.client.core.stream_open = false;
        }
        result.transpose()
    }
}

impl<T: Transport> Drop for BinaryCopyOutReader<'_, T> {
    fn drop(&mut self) {
        if let Some(unsettled) = self.state.unsettled() {
            let _ = run_blocking(self.client.core.settle(unsettled));
        }
        self.client.core.stream_open = false;
    }
}

impl<T: Transport> fmt::Debug for BinaryCopyOutReader<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinaryCopyOutReader")
            .field("decoder", &self.state.decoder)
            .finish_non_exhaustive()
    }
}

// ----- the async driver (tokio or wasi:sockets) -------------------------------------

#[cfg(pglite_async)]
mod async_driver {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::async_client::{AsyncClient, SocketIo, call};
    use crate::async_stream::{AsyncReply, ReplyReader};

    impl ReplyReader for CopyOutState {
        type Item = BinaryRow;
        fn read<'c>(
            &'c mut self,
            core: &'c mut Core<SocketIo>,
        ) -> impl Future<Output = Result<Option<BinaryRow>, Error>> + Send + 'c {
            core.next_binary_row(self)
        }
        fn is_done(&self) -> bool {
            self.done
        }
        fn take_unsettled(&mut self) -> Option<Unsettled> {
            self.unsettled()
        }
    }

    impl AsyncClient {
        /// Starts `COPY ... FROM STDIN (FORMAT binary)`; the async twin of
        /// [`Client::copy_in_binary`]. Dropping the writer without
        /// [`finish`](AsyncBinaryCopyInWriter::finish) aborts the COPY before the
        /// client's next call.
        pub async fn copy_in_binary(
            &mut self,
            sql: &str,
            types: &[Type],
        ) -> Result<AsyncBinaryCopyInWriter<'_>, Error> {
            self.enter().await?;
            self.in_flight = false;
            let state = self.core.copy_in_binary_start(sql, types)?;
            self.core.stream_open = true;
            Ok(AsyncBinaryCopyInWriter {
                client: self,
                state,
            })
        }

        /// Runs `COPY ... TO STDOUT (FORMAT binary)` and streams its rows; the async
        /// twin of [`Client::copy_out_binary`].
        pub async fn copy_out_binary(
            &mut self,
            sql: &str,
            types: &[Type],
        ) -> Result<AsyncBinaryCopyOutReader<'_>, Error> {
            let state = call!(self, self.core.copy_out_binary_start(sql, types))?;
            Ok(AsyncBinaryCopyOutReader(AsyncReply::new(self, state)))
        }
    }

    /// Writes rows into a binary `COPY ... FROM STDIN`; see
    /// [`AsyncClient::copy_in_binary`].
    pub struct AsyncBinaryCopyInWriter<'a> {
        client: &'a mut AsyncClient,
        state: CopyInState,
    }

    impl AsyncBinaryCopyInWriter<'_> {
        /// Encodes and queues one row (a value per column).
        pub async fn write(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
            self.client.in_flight = true;
            let result = self
                .client
                .core
                .copy_in_binary_write(&mut self.state, values)
                .await;
            self.client.in_flight = false;
            result
        }

        /// The number of rows written so far.
        pub fn rows(&self) -> u64 {
            self.state.encoder.rows()
        }

        /// Completes the COPY; returns the number of rows copied.
        pub async fn finish(mut self) -> Result<u64, Error> {
            self.client.in_flight = true;
            let result = self
                .client
                .core
                .copy_in_binary_finish(&mut self.state)
                .await;
            self.client.in_flight = false;
            self.client.core.stream_open = false;
            result
        }
    }

    impl Drop for AsyncBinaryCopyInWriter<'_> {
        fn drop(&mut self) {
            if let Some(unsettled) = self.state.unsettled() {
                self.client.unsettled.push(unsettled);
            }
            self.client.core.stream_open = false;
        }
    }

    impl fmt::Debug for AsyncBinaryCopyInWriter<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("AsyncBinaryCopyInWriter")
                .field("encoder", &self.state.encoder)
                .finish_non_exhaustive()
        }
    }

    /// The rows of a binary `COPY ... TO STDOUT`: `next().await`, or use it as a
    /// `futures_core::Stream`; see [`AsyncClient::copy_out_binary`].
    pub struct AsyncBinaryCopyOutReader<'a>(AsyncReply<'a, CopyOutState>);

    impl AsyncBinaryCopyOutReader<'_> {
        /// The next row, `None` at the end. After an error the stream ends.
        pub async fn next(&mut self) -> Option<Result<BinaryRow, Error>> {
            self.0.next().await
        }

        /// The number of rows the server reported copied, once all were read.
        pub fn rows_affected(&self) -> Option<u64> {
            self.0.reader().and_then(CopyOutState::rows_affected)
        }
    }

    impl futures_core::Stream for AsyncBinaryCopyOutReader<'_> {
        type Item = Result<BinaryRow, Error>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.get_mut().0.poll_next(cx)
        }
    }

    impl fmt::Debug for AsyncBinaryCopyOutReader<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("AsyncBinaryCopyOutReader")
                .finish_non_exhaustive()
        }
    }
}

#[cfg(pglite_async)]
pub use async_driver::{AsyncBinaryCopyInWriter, AsyncBinaryCopyOutReader};

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(types: &[Type], rows: &[&[&(dyn ToSql + Sync)]]) -> BytesMut {
        let mut encoder = BinaryCopyEncoder::new(types);
        for row in rows {
            encoder.write_row(row).unwrap();
        }
        encoder.finish();
        encoder.take()
    }

    #[test]
    fn decodes_data_pushed_one_byte_at_a_time() {
        let types = [Type::INT4, Type::TEXT, Type::BYTEA];
        let bytes = encoded(
            &types,
            &[
                &[&1i32, &"a", &vec![1u8, 2]],
                &[&None::<i32>, &"", &None::<Vec<u8>>],
            ],
        );
        let mut decoder = BinaryCopyDecoder::new(&types);
        let mut rows = Vec::new();
        for b in bytes.iter() {
            decoder.push(&[*b]);
            while let Some(row) = decoder.next_row().unwrap() {
                rows.push(row);
            }
        }
        assert!(decoder.is_finished());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i32>(0), 1);
        assert_eq!(rows[0].get::<Vec<u8>>(2), [1, 2]);
        assert_eq!(rows[1].get::<Option<i32>>(0), None);
        assert_eq!(rows[1].get::<&str>(1), "");
        assert!(rows[1].raw(2).is_none());
    }

    #[test]
    fn refuses_bad_input() {
        let mut encoder = BinaryCopyEncoder::new(&[Type::INT4]);
        assert_eq!(
            encoder.write_row(&[&1i32, &2i32]).unwrap_err().kind(),
            ErrorKind::Usage
        );
        let err = encoder.write_row(&[&"text"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conversion);
        assert_eq!(encoder.rows(), 0);
        assert_eq!(encoder.buffered(), 19, "only the header");

        let mut decoder = BinaryCopyDecoder::new(&[Type::INT4]);
        decoder.push(b"1\t2\n");
        assert_eq!(decoder.next_row().unwrap_err().kind(), ErrorKind::Protocol);

        let bytes = encoded(&[Type::INT4, Type::INT4], &[&[&1i32, &2i32]]);
        let mut decoder = BinaryCopyDecoder::new(&[Type::INT4]);
        decoder.push(&bytes);
        assert_eq!(decoder.next_row().unwrap_err().kind(), ErrorKind::Usage);

        let mut decoder = BinaryCopyDecoder::new(&[Type::INT4]);
        decoder.push(&encoded(&[Type::INT4], &[&[&7i32]]));
        let row = decoder.next_row().unwrap().unwrap();
        assert_eq!(
            row.try_get::<String>(0).unwrap_err().kind(),
            ErrorKind::Conversion
        );
        assert_eq!(
            row.try_get::<i32>(3).unwrap_err().kind(),
            ErrorKind::ColumnNotFound
        );
        decoder.push(b"x");
        assert!(decoder.next_row().is_err(), "data after the trailer");
    }
}
