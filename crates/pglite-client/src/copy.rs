//! `COPY ... FROM STDIN` / `COPY ... TO STDOUT`.

use std::io::{self, Read, Write};

use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::client::{Client, Drain};
use crate::error::{Error, ErrorKind};
use crate::protocol::unexpected;
use crate::row::rows_affected;
use crate::transport::Transport;

/// Bytes per `CopyData` message, and the buffer size handed to the transport at once.
const CHUNK: usize = 64 * 1024;

pub(crate) fn copy_in<T: Transport, R: Read>(
    client: &mut Client<T>,
    sql: &str,
    mut reader: R,
) -> Result<u64, Error> {
    client.copy_start(sql)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut read_error: Option<io::Error> = None;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let data = &chunk[..n];
        client.queue_bytes(
            |out| {
                frontend::CopyData::new(data)
                    .expect("chunk is smaller than the message size limit")
                    .write(out)
            },
            CHUNK,
        )?;
    }
    match &read_error {
        None => client.queue_bytes(frontend::copy_done, 0)?,
        Some(e) => {
            let message = format!("reading the COPY data failed: {e}");
            client.queue_bytes(
                |out| {
                    let _ = frontend::copy_fail(&message.replace('\0', ""), out);
                },
                0,
            )?
        }
    }
    client.flush_out()?;

    let mut count = None;
    let mut saw_copy_in = false;
    let result = client.finish(Drain::CopyIn, |message| {
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
    });
    if let Some(e) = read_error {
        return Err(Error::with_source(
            ErrorKind::Io,
            "reading the COPY data failed (the COPY was aborted)",
            e,
        ));
    }
    result?;
    if !saw_copy_in {
        return Err(Error::new(
            ErrorKind::Usage,
            "copy_in needs a COPY ... FROM STDIN statement (the statement was run, the data ignored)",
        ));
    }
    Ok(count.unwrap_or(0))
}

pub(crate) fn copy_out<T: Transport, W: Write>(
    client: &mut Client<T>,
    sql: &str,
    mut writer: W,
) -> Result<u64, Error> {
    client.copy_start(sql)?;
    client.flush_out()?;
    let mut count = None;
    let mut saw_copy_out = false;
    let mut write_error: Option<io::Error> = None;
    let result = client.finish(Drain::Simple, |message| {
        match message {
            Message::CopyOutResponse(_) => saw_copy_out = true,
            Message::CopyData(body) => {
                if write_error.is_none()
                    && let Err(e) = writer.write_all(body.data())
                {
                    write_error = Some(e);
                }
            }
            Message::CommandComplete(body) => {
                count = body.tag().ok().and_then(rows_affected);
            }
            Message::CopyDone
            | Message::CloseComplete
            | Message::RowDescription(_)
            | Message::DataRow(_)
            | Message::EmptyQueryResponse => {}
            other => return Err(unexpected(&other)),
        }
        Ok(())
    });
    result?;
    if write_error.is_none()
        && let Err(e) = writer.flush()
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
