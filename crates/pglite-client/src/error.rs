//! The crate's single error type and the server's error report.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

use crate::sqlstate::SqlState;

/// What went wrong, broadly. Use [`Error::kind`] to branch on it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The server reported an error (an `ErrorResponse`); see [`Error::as_db_error`].
    Db,
    /// Reading from or writing to the transport failed.
    Io,
    /// The server sent something this client did not expect or could not decode.
    Protocol,
    /// A Rust value could not be converted to or from a PostgreSQL value.
    Conversion,
    /// `query_one`/`query_opt` got a different number of rows than they allow.
    UnexpectedRowCount,
    /// A column name or index does not exist in the row.
    ColumnNotFound,
    /// The connection is closed or unusable after an earlier transport/protocol failure.
    Closed,
    /// The connection settings are invalid or insufficient (e.g. a password is needed).
    Config,
    /// Authentication could not be completed (unsupported method, SCRAM failure).
    Authentication,
    /// The embedded engine failed (could not start, directory in use, crashed).
    Engine,
    /// The statement was used in a way it does not support (e.g. `COPY` through `query`).
    Usage,
    /// `COMMIT` found the transaction failed and rolled it back instead.
    RolledBack,
    /// TLS could not be set up: the server refused it where it is required, the
    /// handshake failed, or the server's certificate did not verify.
    Tls,
    /// No pooled connection became available within the pool's acquire timeout.
    PoolTimeout,
}

/// What an error means for the connection and for retrying; see [`Error::class`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The connection is unusable (I/O or protocol failure, a `FATAL` server error,
    /// closed). A client made from a `Config` reconnects on its next call. The failed
    /// statement may or may not have taken effect.
    Broken,
    /// Worth retrying as it is (the whole transaction): serialization failure,
    /// deadlock, lock not available, too many connections, server starting up or
    /// shutting down, connection failures reported by the server (SQLSTATE class 08).
    Transient,
    /// Retrying the same thing gives the same error: SQL errors, authentication and
    /// configuration errors, TLS verification failures, conversions, usage errors.
    Permanent,
}

enum Detail {
    None,
    Db(Box<DbError>),
}

/// The error type of every fallible operation in this crate.
///
/// For server errors, `Display` reads like psql:
/// `ERROR: syntax error at or near "SELEC" (SQLSTATE 42601)`, followed by `DETAIL:`
/// and `HINT:` lines when the server sent them.
pub struct Error {
    kind: ErrorKind,
    message: String,
    detail: Detail,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    /// Creates an error of the given kind with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            detail: Detail::None,
            source: None,
        }
    }

    /// Creates an error of the given kind with a message and an underlying cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            detail: Detail::None,
            source: Some(source.into()),
        }
    }

    /// Wraps an error report sent by the server.
    pub fn db(error: DbError) -> Error {
        Error {
            kind: ErrorKind::Db,
            message: String::new(),
            detail: Detail::Db(Box::new(error)),
            source: None,
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn conversion(
        message: impl Into<String>,
        source: Box<dyn StdError + Send + Sync>,
    ) -> Error {
        Error::with_source(ErrorKind::Conversion, message, source)
    }

    pub(crate) fn closed() -> Error {
        Error::new(
            ErrorKind::Closed,
            "the connection is closed (or broken by an earlier I/O or protocol error)",
        )
    }

    /// The broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The server's error report, if this is a [`ErrorKind::Db`] error.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match &self.detail {
            Detail::Db(db) => Some(db),
            Detail::None => None,
        }
    }

    /// The SQLSTATE code, if this is a server error.
    pub fn code(&self) -> Option<&SqlState> {
        self.as_db_error().map(DbError::code)
    }

    /// Whether the connection survived and whether retrying may help:
    ///
    /// | error | class |
    /// | --- | --- |
    /// | SQLSTATE `40001` serialization failure, `40P01` deadlock, `55P03` lock not available, `53300` too many connections, `57P03` cannot connect now, class `08` connection exception (except `08P01`) | `Transient` |
    /// | SQLSTATE class `28` (authorization: wrong password, no `pg_hba.conf` entry), `3D000` (no such database), even when `FATAL` | `Permanent` |
    /// | any other `FATAL`/`PANIC` server error (e.g. `57P01` terminated by an administrator, `08P01` protocol violation) | `Broken` |
    /// | kinds `Io`, `Protocol`, `Closed`, `Engine` | `Broken` |
    /// | kind `PoolTimeout` (no pooled connection in time) | `Transient` |
    /// | every other server error and kind (`Config`, `Authentication`, `Tls`, `Conversion`, `Usage`, ...) | `Permanent` |
    pub fn class(&self) -> ErrorClass {
        match self.kind {
            ErrorKind::Db => {
                let Some(db) = self.as_db_error() else {
                    return ErrorClass::Permanent;
                };
                let code = db.code().code();
                if code == "08P01" {
                    return ErrorClass::Broken;
                }
                if matches!(code, "40001" | "40P01" | "55P03" | "53300" | "57P03")
                    || code.starts_with("08")
                {
                    return ErrorClass::Transient;
                }
                if code.starts_with("28") || code == "3D000" {
                    return ErrorClass::Permanent;
                }
                if db.is_fatal() {
                    ErrorClass::Broken
                } else {
                    ErrorClass::Permanent
                }
            }
            ErrorKind::Io | ErrorKind::Protocol | ErrorKind::Closed | ErrorKind::Engine => {
                ErrorClass::Broken
            }
            ErrorKind::PoolTimeout => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }

    /// True if the connection can no longer be used (transport or protocol failure).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Closed | ErrorKind::Io | ErrorKind::Protocol
        )
    }

    /// The message given when the error was created (empty for server errors, whose
    /// text lives in [`DbError::message`]).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        match &self.detail {
            Detail::Db(db) => {
                d.field("db", db);
            }
            Detail::None => {
                d.field("message", &self.message);
            }
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Detail::Db(db) = &self.detail {
            return fmt::Display::fmt(db, f);
        }
        let kind = match self.kind {
            ErrorKind::Db => "database error",
            ErrorKind::Io => "I/O error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Conversion => "conversion error",
            ErrorKind::UnexpectedRowCount => "unexpected row count",
            ErrorKind::ColumnNotFound => "column not found",
            ErrorKind::Closed => "connection closed",
            ErrorKind::Config => "configuration error",
            ErrorKind::Authentication => "authentication error",
            ErrorKind::Usage => "usage error",
            ErrorKind::Engine => "engine error",
            ErrorKind::RolledBack => "transaction rolled back",
            ErrorKind::Tls => "TLS error",
            ErrorKind::PoolTimeout => "pool timeout",
        };
        write!(f, "{kind}: {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::with_source(ErrorKind::Io, "transport failure", e)
    }
}

/// Where in the query text an error occurred.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorPosition {
    /// A 1-based character offset into the statement the client sent.
    Original(u32),
    /// A position inside an internally generated query (e.g. in a PL/pgSQL function).
    Internal {
        /// The 1-based character offset into `query`.
        position: u32,
        /// The internally generated query text.
        query: String,
    },
}

/// An error or notice report sent by the server (`ErrorResponse`/`NoticeResponse`),
/// with every field PostgreSQL fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    severity: String,
    parsed_severity: Option<String>,
    code: SqlState,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
    position: Option<ErrorPosition>,
    where_: Option<String>,
    schema: Option<String>,
    table: Option<String>,
    column: Option<String>,
    datatype: Option<String>,
    constraint: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    routine: Option<String>,
}

impl DbError {
    /// Decodes the fields of an `ErrorResponse` or `NoticeResponse` body.
    pub fn parse(fields: &mut ErrorFields<'_>) -> std::io::Result<DbError> {
        let mut severity = None;
        let mut parsed_severity = None;
        let mut code = None;
        let mut message = None;
        let mut detail = None;
        let mut hint = None;
        let mut normal_position = None;
        let mut internal_position = None;
        let mut internal_query = None;
        let mut where_ = None;
        let mut schema = None;
        let mut table = None;
        let mut column = None;
        let mut datatype = None;
        let mut constraint = None;
        let mut file = None;
        let mut line = None;
        let mut routine = None;

        while let Some(field) = fields.next()? {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'S' => severity = Some(value),
                b'V' => parsed_severity = Some(value),
                b'C' => code = Some(SqlState::from_code(&value)),
                b'M' => message = Some(value),
                b'D' => detail = Some(value),
                b'H' => hint = Some(value),
                b'P' => normal_position = value.parse::<u32>().ok(),
                b'p' => internal_position = value.parse::<u32>().ok(),
                b'q' => internal_query = Some(value),
                b'W' => where_ = Some(value),
                b's' => schema = Some(value),
                b't' => table = Some(value),
                b'c' => column = Some(value),
                b'd' => datatype = Some(value),
                b'n' => constraint = Some(value),
                b'F' => file = Some(value),
                b'L' => line = value.parse::<u32>().ok(),
                b'R' => routine = Some(value),
                _ => {}
            }
        }

        let position = match (normal_position, internal_position) {
            (Some(p), _) => Some(ErrorPosition::Original(p)),
            (None, Some(position)) => Some(ErrorPosition::Internal {
                position,
                query: internal_query.unwrap_or_default(),
            }),
            (None, None) => None,
        };

        Ok(DbError {
            severity: severity
                .or_else(|| parsed_severity.clone())
                .unwrap_or_else(|| "ERROR".to_owned()),
            parsed_severity,
            code: code.unwrap_or(SqlState::INTERNAL_ERROR),
            message: message.unwrap_or_default(),
            detail,
            hint,
            position,
            where_,
            schema,
            table,
            column,
            datatype,
            constraint,
            file,
            line,
            routine,
        })
    }

    /// The severity as sent (possibly localized): `ERROR`, `FATAL`, `PANIC`, `WARNING`,
    /// `NOTICE`, `DEBUG`, `INFO` or `LOG`.
    pub fn severity(&self) -> &str {
        &self.severity
    }

    /// The severity, never localized (PostgreSQL 9.6+).
    pub fn parsed_severity(&self) -> Option<&str> {
        self.parsed_severity.as_deref()
    }

    /// True for `FATAL` and `PANIC`: the server ends the session.
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity(), "FATAL" | "PANIC")
            || matches!(self.parsed_severity(), Some("FATAL" | "PANIC"))
    }

    /// The SQLSTATE code.
    pub fn code(&self) -> &SqlState {
        &self.code
    }

    /// The primary human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An optional secondary message with more detail.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// An optional suggestion what to do about the problem.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Where in the query the error occurred.
    pub fn position(&self) -> Option<&ErrorPosition> {
        self.position.as_ref()
    }

    /// The context (call stack) in which the error occurred.
    pub fn where_(&self) -> Option<&str> {
        self.where_.as_deref()
    }

    /// The schema of the object the error is about.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The table the error is about.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The column the error is about.
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }

    /// The data type the error is about.
    pub fn datatype(&self) -> Option<&str> {
        self.datatype.as_deref()
    }

    /// The constraint the error is about.
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    /// The server source file that reported the error.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The line in [`DbError::file`].
    pub fn line(&self) -> Option<u32> {
        self.line
    }

    /// The server routine that reported the error.
    pub fn routine(&self) -> Option<&str> {
        self.routine.as_deref()
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl StdError for DbError {}
