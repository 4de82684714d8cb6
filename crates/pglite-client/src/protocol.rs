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
use postgres_protocol::message::backend::Message;

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
