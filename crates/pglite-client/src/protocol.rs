//! The I/O-free part of a session: frontend bytes waiting to be sent, backend bytes
//! waiting to be decoded, and the state that asynchronous backend messages update
//! (parameter status, notifications, notices, transaction status).
//!
//! A driver moves [`Session::out`] to its transport and appends what the transport
//! returns to [`Session::input`]; [`Session::poll_message`] yields the next message
//! that belongs to the current request.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use bytes::BytesMut;
use postgres_protocol::message::backend::{DataRowBody, Message};

use crate::error::{DbError, Error, ErrorKind};
use crate::notify::Notification;

/// The server's transaction state, as reported by the last `ReadyForQuery`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block: statements are refused until `ROLLBACK`.
    Failed,
}

pub(crate) type NoticeHandler = Box<dyn FnMut(&DbError) + Send>;

/// The longest backend message body accepted: PostgreSQL builds each message in one
/// buffer of at most 1 GiB (`MaxAllocSize`), so anything longer is not a server
/// talking.
const MAX_MESSAGE_BODY: usize = 1 << 30;

pub(crate) struct Session {
    /// Encoded frontend messages not yet handed to the transport.
    pub(crate) out: BytesMut,
    /// Backend bytes received but not yet decoded.
    pub(crate) input: BytesMut,
    pub(crate) parameters: HashMap<String, String>,
    pub(crate) backend_key: Option<(i32, i32)>,
    pub(crate) status: TransactionStatus,
    pub(crate) notifications: VecDeque<Notification>,
    pub(crate) notice_handler: Option<NoticeHandler>,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            out: BytesMut::with_capacity(8 * 1024),
            input: BytesMut::with_capacity(8 * 1024),
            parameters: HashMap::new(),
            backend_key: None,
            status: TransactionStatus::Idle,
            notifications: VecDeque::new(),
            notice_handler: None,
        }
    }

    /// Decodes the next message from [`Session::input`], consuming the asynchronous
    /// ones (`NoticeResponse`, `NotificationResponse`, `ParameterStatus`) on the way.
    /// `Ok(None)` means more input is needed.
    pub(crate) fn poll_message(&mut self) -> Result<Option<Message>, Error> {
        loop {
            if !self.has_whole_message()? {
                return Ok(None);
            }
            let message = Message::parse(&mut self.input).map_err(|e| {
                Error::with_source(ErrorKind::Protocol, "cannot decode a backend message", e)
            })?;
            let Some(message) = message else {
                return Ok(None);
            };
            match message {
                Message::NoticeResponse(body) => {
                    let notice = DbError::parse(&mut body.fields()).map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid NoticeResponse", e)
                    })?;
                    if let Some(handler) = self.notice_handler.as_mut() {
                        handler(&notice);
                    }
                }
                Message::NotificationResponse(body) => {
                    let channel = body.channel().map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid NotificationResponse", e)
                    })?;
                    let payload = body.message().map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid NotificationResponse", e)
                    })?;
                    self.notifications.push_back(Notification::new(
                        body.process_id(),
                        channel,
                        payload,
                    ));
                }
                Message::ParameterStatus(body) => {
                    let (name, value) =
                        body.name()
                            .and_then(|n| Ok((n, body.value()?)))
                            .map_err(|e| {
                                Error::with_source(
                                    ErrorKind::Protocol,
                                    "invalid ParameterStatus",
                                    e,
                                )
                            })?;
                    self.parameters.insert(name.to_owned(), value.to_owned());
                }
                other => return Ok(Some(other)),
            }
        }
    }

    /// True if [`Session::input`] starts with a complete message. Checked before
    /// `Message::parse`, which reserves room for a whole message as soon as it has
    /// seen the length in its header: a bogus length would allocate up to 4 GiB at
    /// once. This way the buffer grows only with the data that actually arrives, and
    /// a length beyond [`MAX_MESSAGE_BODY`] is a protocol error.
    /// A `DataRow` that is already whole in the input buffer, taken without going
    /// through the general reply loop (the hot path of reading many rows).
    pub(crate) fn take_buffered_data_row(&mut self) -> Result<Option<DataRowBody>, Error> {
        if self.input.first() != Some(&b'D') || !self.has_whole_message()? {
            return Ok(None);
        }
        match Message::parse(&mut self.input) {
            Ok(Some(Message::DataRow(body))) => Ok(Some(body)),
            Ok(_) => Err(Error::protocol("a DataRow message did not decode as one")),
            Err(e) => Err(Error::with_source(
                ErrorKind::Protocol,
                "cannot decode a backend message",
                e,
            )),
        }
    }

    fn has_whole_message(&self) -> Result<bool, Error> {
        let Some(header) = self.input.get(..5) else {
            return Ok(false);
        };
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_MESSAGE_BODY + 4 {
            return Err(Error::protocol(format!(
                "the server sent a message ({:?}) of {len} bytes, more than PostgreSQL ever \
                 sends (1 GiB)",
                header[0] as char
            )));
        }
        Ok(self.input.len() > len)
    }

    pub(crate) fn set_status(&mut self, status: u8) -> Result<(), Error> {
        self.status = match status {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            other => {
                return Err(Error::protocol(format!(
                    "unknown transaction status {:?} in ReadyForQuery",
                    other as char
                )));
            }
        };
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("status", &self.status)
            .field("backend_key", &self.backend_key)
            .field("queued_notifications", &self.notifications.len())
            .finish_non_exhaustive()
    }
}

/// A short name of a backend message, for error messages.
pub(crate) fn message_name(message: &Message) -> &'static str {
    match message {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::BindComplete => "BindComplete",
        Message::CloseComplete => "CloseComplete",
        Message::CommandComplete(_) => "CommandComplete",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::ErrorResponse(_) => "ErrorResponse",
        Message::NoData => "NoData",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::ParseComplete => "ParseComplete",
        Message::PortalSuspended => "PortalSuspended",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::RowDescription(_) => "RowDescription",
        _ => "an authentication message",
    }
}

pub(crate) fn unexpected(message: &Message) -> Error {
    Error::protocol(format!("unexpected message {}", message_name(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a message header claiming almost 4 GiB made the client
    /// reserve that much memory before a single byte of the body arrived.
    #[test]
    fn message_lengths_do_not_allocate_ahead_of_the_data() {
        let mut session = Session::new();
        session
            .input
            .extend_from_slice(&[b'D', 0x40, 0, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(session.poll_message(), Ok(None)));
        assert!(
            session.input.capacity() < 1 << 20,
            "{}",
            session.input.capacity()
        );

        let mut session = Session::new();
        session
            .input
            .extend_from_slice(&[b'D', 0xFF, 0xFF, 0xFF, 0xF0, 0]);
        let Err(err) = session.poll_message() else {
            panic!("a 4 GiB message was accepted");
        };
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("1 GiB"), "{err}");
        assert!(session.input.capacity() < 1 << 20);
    }

    #[test]
    fn messages_split_anywhere_decode_once_complete() {
        // ParameterStatus, then ReadyForQuery, fed one byte at a time.
        let mut bytes = vec![b'S', 0, 0, 0, 8, b'a', 0, b'b', 0];
        bytes.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        let mut session = Session::new();
        let mut got = Vec::new();
        for b in bytes {
            session.input.extend_from_slice(&[b]);
            if let Some(m) = session.poll_message().ok().flatten() {
                got.push(message_name(&m));
            }
        }
        assert_eq!(got, ["ReadyForQuery"]);
        assert_eq!(session.parameters["a"], "b");
    }
}
