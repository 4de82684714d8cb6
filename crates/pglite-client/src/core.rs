//! The driver-independent client core: turns calls into frontend messages, hands
//! them to an [`Io`], and consumes the backend's replies up to `ReadyForQuery`.
//!
//! Every method is an `async fn` over [`Io`]. The blocking [`Client`](crate::Client)
//! drives it with an `Io` whose futures complete at once (see `blocking.rs`); the
//! tokio driver with real sockets. One implementation of the protocol logic serves both.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
#[cfg(feature = "md5")]
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{self, ScramSha256};
use postgres_protocol::message::backend::{DataRowBody, Message, RowDescriptionBody};
use postgres_protocol::message::frontend;
use postgres_types::{Format, ToSql, Type, WrongType};
use tracing::Instrument;

use crate::auth::{AuthMethod, ChannelBinding, TlsBinding, cleartext_refused};
use crate::cache::{DEFAULT_CAPACITY, StatementCache};
use crate::config::StartupConfig;
use crate::error::{DbError, Error, ErrorKind};
use crate::io::Io;
use crate::notify::Notification;
use crate::protocol::{Session, unexpected};
use crate::reconnect::Reconnect;
use crate::row::{Row, SimpleResult, rows_affected};
use crate::rows::span_sql;
use crate::simple::SimpleQueryMessage;
use crate::sqlstate::SqlState;
use crate::statement::{CloseQueue, Column, Statement, ToStatement};

/// Receives each `DataRow` with the statement's columns.
pub(crate) type RowSink<'a> =
    dyn FnMut(&Arc<[Column]>, DataRowBody) -> Result<(), Error> + Send + 'a;

/// How a request's reply stream must be treated when the server asks for COPY data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    /// A simple `Query`: refuse `COPY FROM STDIN` with `CopyFail`.
    Simple,
    /// An extended-protocol batch: refuse with `CopyFail` + `Sync` (the first `Sync`
    /// was swallowed by copy-in mode).
    Extended,
    /// `copy_in`: the data was already sent.
    CopyIn,
}

/// The session state and protocol logic shared by every driver.
pub(crate) struct Core<I> {
    pub(crate) io: I,
    pub(crate) session: Session,
    pub(crate) cache: StatementCache,
    pub(crate) close_queue: CloseQueue,
    pub(crate) next_statement: u64,
    pub(crate) broken: bool,
    /// Types looked up in the catalog, by OID.
    pub(crate) types: HashMap<u32, Type>,
    /// How to reconnect, and what to re-apply then (`set_param`).
    pub(crate) reconnect: Reconnect<I>,
    /// Portals (cursors) to close with the next request.
    pub(crate) portals_to_close: Vec<String>,
    pub(crate) next_portal: u64,
    /// A stream, cursor or COPY writer has a reply in progress. Set while it lives; a
    /// request started while it is set (the stream was leaked) finds the connection
    /// unusable.
    pub(crate) stream_open: bool,
}

impl<I> fmt::Debug for Core<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("session", &self.session)
            .field("cached_statements", &self.cache.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// The state of one reply stream being read up to `ReadyForQuery`.
pub(crate) struct Reply {
    pub(crate) drain: Drain,
    pub(crate) first: Option<Error>,
}

impl Reply {
    pub(crate) fn new(drain: Drain) -> Reply {
        Reply { drain, first: None }
    }

    /// The call's result: the first error recorded, if any.
    pub(crate) fn into_result(self) -> Result<(), Error> {
        match self.first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Protocol/transport errors make the connection unusable.
fn poisons(e: &Error) -> bool {
    e.is_closed()
}

impl<I: Io> Core<I> {
    /// Starts a session: sends the `StartupMessage`, authenticates (trust, cleartext
    /// password, MD5, SCRAM-SHA-256), collects `ParameterStatus` and `BackendKeyData`,
    /// and waits for the first `ReadyForQuery`. The connection has no TLS.
    pub(crate) async fn connect(io: I, config: &StartupConfig) -> Result<Self, Error> {
        Core::connect_with(io, config, None).await
    }

    /// [`Core::connect`] over a connection that has TLS when `tls` is given (which
    /// allows cleartext passwords and SCRAM-SHA-256-PLUS).
    pub(crate) async fn connect_with(
        io: I,
        config: &StartupConfig,
        tls: Option<&TlsBinding>,
    ) -> Result<Self, Error> {
        let mut client = Core {
            io,
            session: Session::new(),
            cache: StatementCache::new(DEFAULT_CAPACITY),
            close_queue: Arc::new(Mutex::new(Vec::new())),
            next_statement: 0,
            broken: false,
            types: HashMap::new(),
            reconnect: Reconnect::default(),
            portals_to_close: Vec::new(),
            next_portal: 0,
            stream_open: false,
        };
        let span = tracing::info_span!("connect", user = %config.user, database = %config.database);
        client.startup(config, tls).instrument(span).await?;
        Ok(client)
    }

    pub(crate) async fn startup(
        &mut self,
        config: &StartupConfig,
        tls: Option<&TlsBinding>,
    ) -> Result<(), Error> {
        frontend::startup_message(config.startup_params(), &mut self.session.out)
            .map_err(|e| Error::with_source(ErrorKind::Config, "invalid startup parameter", e))?;
        self.send_out().await?;
        let result = self.authenticate(config, tls).await;
        result.map_err(|e| self.fail(e))
    }

    /// The authentication exchange and the rest of the start-up, to the first
    /// `ReadyForQuery`. Policy (`require_auth`, `channel_binding`, cleartext without
    /// TLS, MD5 without the `md5` feature) is checked before anything is answered.
    async fn authenticate(
        &mut self,
        config: &StartupConfig,
        tls: Option<&TlsBinding>,
    ) -> Result<(), Error> {
        let password = || {
            config.password.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "the server asks for a password for user \"{}\" but none was given",
                        config.user
                    ),
                )
            })
        };
        let auth_err = |what: &str, e: std::io::Error| {
            Error::with_source(ErrorKind::Authentication, what.to_owned(), e)
        };
        let require = config.get_require_auth();
        let binding = config.get_channel_binding();
        // Checks a request against `require_auth` and `channel_binding=require`.
        let allowed = |method: AuthMethod| -> Result<(), Error> {
            if let Some(r) = require {
                r.check(method)?;
            }
            if binding == ChannelBinding::Require && method != AuthMethod::ScramSha256 {
                let what = if method == AuthMethod::None {
                    "authenticated the client without channel binding".to_owned()
                } else {
                    format!("requested {}", method.request())
                };
                return Err(Error::new(
                    ErrorKind::Authentication,
                    format!(
                        "channel_binding=require, but the server {what} (channel binding \
                         needs SCRAM-SHA-256-PLUS)"
                    ),
                ));
            }
            Ok(())
        };
        let mut scram: Option<ScramSha256> = None;
        let mut method = AuthMethod::None;
        let mut bound = false;
        loop {
            match self.recv().await? {
                Message::AuthenticationOk => {
                    if method == AuthMethod::None {
                        allowed(AuthMethod::None)?;
                    }
                    if method == AuthMethod::ScramSha256 && scram.is_some() {
                        return Err(Error::new(
                            ErrorKind::Authentication,
                            "the server ended the SCRAM exchange without its final message",
                        ));
                    }
                    if binding == ChannelBinding::Require && !bound {
                        return Err(Error::new(
                            ErrorKind::Authentication,
                            "channel_binding=require, but the server authenticated the client \
                             without channel binding",
                        ));
                    }
                }
                Message::AuthenticationCleartextPassword => {
                    allowed(AuthMethod::Password)?;
                    method = AuthMethod::Password;
                    if tls.is_none() && !config.cleartext_password_allowed() {
                        return Err(cleartext_refused(&config.user));
                    }
                    let pw = password()?;
                    frontend::password_message(pw.as_bytes(), &mut self.session.out)
                        .map_err(|e| auth_err("invalid password", e))?;
                    self.send_out().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    allowed(AuthMethod::Md5)?;
                    method = AuthMethod::Md5;
                    self.answer_md5(config, password()?, body.salt()).await?;
                }
                Message::AuthenticationSasl(body) => {
                    allowed(AuthMethod::ScramSha256)?;
                    method = AuthMethod::ScramSha256;
                    let mechanisms: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_owned()))
                        .collect()
                        .map_err(|e| auth_err("invalid SASL mechanism list", e))?;
                    let (mechanism, channel) = choose_scram(&mechanisms, binding, tls)?;
                    bound = mechanism == sasl::SCRAM_SHA_256_PLUS;
                    let s = ScramSha256::new(password()?.as_bytes(), channel);
                    frontend::sasl_initial_response(mechanism, s.message(), &mut self.session.out)
                        .map_err(|e| auth_err("SASL", e))?;
                    scram = Some(s);
                    self.send_out().await?;
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        Error::protocol("SASL continuation without a SASL exchange")
                    })?;
                    s.update(body.data())
                        .map_err(|e| auth_err("SCRAM-SHA-256 exchange failed", e))?;
                    frontend::sasl_response(s.message(), &mut self.session.out)
                        .map_err(|e| auth_err("SASL", e))?;
                    self.send_out().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or_else(|| {
                        Error::protocol("SASL final message without a SASL exchange")
                    })?;
                    s.finish(body.data()).map_err(|e| {
                        auth_err("SCRAM-SHA-256 server signature verification failed", e)
                    })?;
                }
                Message::BackendKeyData(body) => {
                    self.session.backend_key = Some((body.process_id(), body.secret_key()));
                }
                Message::ReadyForQuery(body) => {
                    self.session.set_status(body.status())?;
                    return Ok(());
                }
                Message::ErrorResponse(body) => {
                    let db = DbError::parse(&mut body.fields()).map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid ErrorResponse", e)
                    })?;
                    self.broken = true;
                    return Err(Error::db(db));
                }
                Message::AuthenticationGss | Message::AuthenticationKerberosV5 => {
                    allowed(AuthMethod::Gss)?;
                    return Err(unsupported_auth());
                }
                Message::AuthenticationSspi => {
                    allowed(AuthMethod::Sspi)?;
                    return Err(unsupported_auth());
                }
                Message::AuthenticationScmCredential | Message::AuthenticationGssContinue(_) => {
                    return Err(unsupported_auth());
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Answers an MD5 password request (feature `md5`).
    #[cfg(feature = "md5")]
    async fn answer_md5(
        &mut self,
        config: &StartupConfig,
        password: &str,
        salt: [u8; 4],
    ) -> Result<(), Error> {
        let hash = md5_hash(config.user.as_bytes(), password.as_bytes(), salt);
        frontend::password_message(hash.as_bytes(), &mut self.session.out)
            .map_err(|e| Error::with_source(ErrorKind::Authentication, "invalid password", e))?;
        self.send_out().await
    }

    /// Refuses an MD5 password request: this build leaves MD5 out.
    #[cfg(not(feature = "md5"))]
    async fn answer_md5(
        &mut self,
        config: &StartupConfig,
        _password: &str,
        _salt: [u8; 4],
    ) -> Result<(), Error> {
        Err(Error::new(
            ErrorKind::Authentication,
            format!(
                "the server asks for an MD5-hashed password for user \"{}\", and MD5 \
                 authentication is not built in: enable the `md5` cargo feature of \
                 pglite-client, or better, have the server use SCRAM-SHA-256 \
                 (password_encryption = scram-sha-256, set the password again, scram-sha-256 \
                 in pg_hba.conf)",
                config.user
            ),
        ))
    }

    // ----- plumbing -------------------------------------------------------------------

    pub(crate) fn fail(&mut self, e: Error) -> Error {
        if poisons(&e) || e.kind() == ErrorKind::Authentication {
            self.broken = true;
        }
        e
    }

    /// Before a request: fails on a broken connection, unless the client can
    /// reconnect (see `reconnect.rs`).
    pub(crate) fn check_open(&mut self) -> Result<(), Error> {
        if self.stream_open {
            // A stream was leaked (`mem::forget`) with its reply unread.
            self.broken = true;
        }
        if self.broken {
            self.reconnect_blocking()
        } else {
            Ok(())
        }
    }

    /// Hands the queued frontend bytes to the transport.
    pub(crate) async fn send_out(&mut self) -> Result<(), Error> {
        if self.session.out.is_empty() {
            return Ok(());
        }
        let result = self.io.send(&self.session.out).await;
        self.session.out.clear();
        result.inspect_err(|_| self.broken = true)
    }

    /// The next message of the current reply (asynchronous ones are consumed).
    pub(crate) async fn recv(&mut self) -> Result<Message, Error> {
        loop {
            match self.session.poll_message() {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
            if !self.session.out.is_empty() {
                self.send_out().await?;
            }
            let before = self.session.input.len();
            if let Err(e) = self.io.receive(&mut self.session.input).await {
                self.broken = true;
                return Err(e);
            }
            if self.session.input.len() == before {
                self.broken = true;
                return Err(Error::protocol(
                    "the transport returned no data (it must block until some is available)",
                ));
            }
        }
    }

    /// Writes `Close` messages for statements whose last handle was dropped.
    pub(crate) fn write_pending_closes(&mut self) {
        let names: Vec<String> = {
            let mut queue = self.close_queue.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *queue)
        };
        for name in names {
            // Names are generated by us and contain no NUL byte.
            let _ = frontend::close(b'S', &name, &mut self.session.out);
        }
        for name in std::mem::take(&mut self.portals_to_close) {
            let _ = frontend::close(b'P', &name, &mut self.session.out);
        }
    }

    pub(crate) fn next_portal_name(&mut self) -> String {
        self.next_portal += 1;
        format!("pglite_p{}", self.next_portal)
    }

    /// Encodes a request into the output buffer; on failure the partial request is
    /// removed again (pending `Close`s written before it stay queued).
    pub(crate) fn encode(
        &mut self,
        f: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mark = self.session.out.len();
        let result = f(&mut self.session.out);
        if result.is_err() {
            self.session.out.truncate(mark);
        }
        result
    }

    /// Reads replies until `ReadyForQuery`, passing each to `on_message`. Returns the
    /// first error: a server `ErrorResponse` or one returned by `on_message`. Transport
    /// and protocol failures return at once (the connection is then unusable).
    pub(crate) async fn finish(
        &mut self,
        drain: Drain,
        mut on_message: impl FnMut(Message) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut reply = Reply::new(drain);
        while let Some(message) = self.next_reply(&mut reply).await? {
            if let Err(e) = on_message(message) {
                self.record(&mut reply, e)?;
            }
        }
        reply.into_result()
    }

    /// Records an error met while handling a reply message: protocol and transport
    /// errors end the call (and poison the connection); others are kept as the call's
    /// result while the reply is read on to `ReadyForQuery`.
    pub(crate) fn record(&mut self, reply: &mut Reply, e: Error) -> Result<(), Error> {
        if poisons(&e) {
            return Err(self.fail(e));
        }
        reply.first.get_or_insert(e);
        Ok(())
    }

    /// The next message of the current reply that the caller must handle, or `None`
    /// after `ReadyForQuery`. Server errors are recorded in `reply` (a `FATAL` one ends
    /// the call); an unexpected copy-in request is refused.
    pub(crate) async fn next_reply(&mut self, reply: &mut Reply) -> Result<Option<Message>, Error> {
        loop {
            let message = self.recv().await?;
            match message {
                Message::ReadyForQuery(body) => {
                    if let Err(e) = self.session.set_status(body.status()) {
                        return Err(self.fail(e));
                    }
                    return Ok(None);
                }
                Message::ErrorResponse(body) => {
                    let db = match DbError::parse(&mut body.fields()) {
                        Ok(db) => db,
                        Err(e) => {
                            return Err(self.fail(Error::with_source(
                                ErrorKind::Protocol,
                                "invalid ErrorResponse",
                                e,
                            )));
                        }
                    };
                    if matches!(db.severity(), "FATAL" | "PANIC")
                        || matches!(db.parsed_severity(), Some("FATAL" | "PANIC"))
                    {
                        self.broken = true;
                        return Err(Error::db(db));
                    }
                    reply.first.get_or_insert(Error::db(db));
                }
                Message::CopyInResponse(_) if reply.drain != Drain::CopyIn => {
                    let _ = frontend::copy_fail(
                        "COPY FROM STDIN is only supported through copy_in",
                        &mut self.session.out,
                    );
                    if reply.drain == Drain::Extended {
                        frontend::sync(&mut self.session.out);
                    }
                    self.send_out().await?;
                    reply.first.get_or_insert(Error::new(
                        ErrorKind::Usage,
                        "COPY ... FROM STDIN must be run with copy_in",
                    ));
                }
                other => return Ok(Some(other)),
            }
        }
    }

    // ----- simple query protocol ------------------------------------------------------

    pub(crate) async fn start_simple(&mut self, sql: &str) -> Result<(), Error> {
        self.check_open()?;
        self.write_pending_closes();
        self.encode(|out| {
            frontend::query(sql, out)
                .map_err(|e| Error::with_source(ErrorKind::Usage, "invalid query text", e))
        })?;
        self.send_out().await
    }

    /// Runs one or more `;`-separated statements with the simple-query protocol and
    /// returns one [`SimpleResult`] per statement (values in text form). Statements
    /// after a failing one are not run; the error is returned.
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        let mut state = self.start_simple_stream(sql).await?;
        let mut results = Vec::new();
        let mut current: Option<SimpleResult> = None;
        while let Some(message) = self.next_simple(&mut state).await? {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    current = Some(SimpleResult {
                        columns: columns.to_vec(),
                        ..SimpleResult::default()
                    });
                }
                SimpleQueryMessage::Row(row) => {
                    if let Some(result) = current.as_mut() {
                        result.rows.push(row.to_vec());
                    }
                }
                SimpleQueryMessage::CommandComplete { tag, rows_affected } => {
                    let mut result = current.take().unwrap_or_default();
                    result.rows_affected = rows_affected;
                    result.command_tag = tag;
                    results.push(result);
                }
            }
        }
        Ok(results)
    }

    /// Runs one or more `;`-separated statements, discarding any rows.
    pub(crate) async fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        let span = tracing::debug_span!("simple_query", sql = span_sql(sql));
        self.batch_execute_untraced(sql).instrument(span).await
    }

    async fn batch_execute_untraced(&mut self, sql: &str) -> Result<(), Error> {
        self.start_simple(sql).await?;
        let mut discarded = false;
        let result = self
            .finish(Drain::Simple, |message| match message {
                Message::CopyOutResponse(_) => Err(Error::new(
                    ErrorKind::Usage,
                    "COPY ... TO STDOUT must be run with Client::copy_out",
                )),
                Message::ErrorResponse(_) | Message::ReadyForQuery(_) => Ok(()),
                Message::CommandComplete(body) => {
                    discarded |= body.tag().is_ok_and(discards_statements);
                    Ok(())
                }
                Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::EmptyQueryResponse
                | Message::CloseComplete
                | Message::CopyData(_)
                | Message::CopyDone => Ok(()),
                other => Err(unexpected(&other)),
            })
            .await;
        if discarded {
            self.cache.clear();
        }
        result
    }

    /// Runs a single statement with the simple protocol and returns its command tag.
    pub(crate) async fn command(&mut self, sql: &str) -> Result<String, Error> {
        let results = self.simple_query(sql).await?;
        Ok(results
            .into_iter()
            .last()
            .map(|r| r.command_tag)
            .unwrap_or_default())
    }

    // ----- preparing ------------------------------------------------------------------

    pub(crate) async fn prepare_with_name(
        &mut self,
        name: String,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, Error> {
        let span = tracing::debug_span!("prepare", sql = span_sql(sql), name = %name);
        self.prepare_untraced(name, sql, types)
            .instrument(span)
            .await
    }

    async fn prepare_untraced(
        &mut self,
        name: String,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, Error> {
        self.check_open()?;
        self.write_pending_closes();
        self.encode(|out| {
            let oids = types.iter().map(Type::oid);
            frontend::parse(&name, sql, oids, out)
                .and_then(|()| frontend::describe(b'S', &name, out))
                .map_err(|e| Error::with_source(ErrorKind::Usage, "invalid statement text", e))?;
            frontend::sync(out);
            Ok(())
        })?;
        self.send_out().await?;

        let mut params: Option<Vec<u32>> = None;
        let mut columns: Option<Vec<RawColumn>> = None;
        self.finish(Drain::Extended, |message| {
            match message {
                Message::ParseComplete | Message::CloseComplete => {}
                Message::ParameterDescription(body) => {
                    let types = body.parameters().collect().map_err(|e| {
                        Error::with_source(ErrorKind::Protocol, "invalid ParameterDescription", e)
                    })?;
                    params = Some(types);
                }
                Message::RowDescription(body) => columns = Some(parse_columns(&body)?),
                Message::NoData => columns = Some(Vec::new()),
                other => return Err(unexpected(&other)),
            }
            Ok(())
        })
        .await?;
        let (Some(param_oids), Some(raw_columns)) = (params, columns) else {
            return Err(self.fail(Error::protocol(
                "the server did not describe the prepared statement",
            )));
        };
        let resolved = self.resolve_statement_types(&param_oids, raw_columns).await;
        let (params, columns) = match resolved {
            Ok(v) => v,
            Err(e) => {
                if !name.is_empty() {
                    self.close_queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(name);
                }
                return Err(e);
            }
        };
        let queue = (!name.is_empty()).then_some(&self.close_queue);
        Ok(Statement::new(name, sql.to_owned(), params, columns, queue))
    }

    async fn resolve_statement_types(
        &mut self,
        param_oids: &[u32],
        raw_columns: Vec<RawColumn>,
    ) -> Result<(Vec<Type>, Vec<Column>), Error> {
        let mut params = Vec::with_capacity(param_oids.len());
        for &oid in param_oids {
            params.push(self.resolve_type(oid).await?);
        }
        let mut columns = Vec::with_capacity(raw_columns.len());
        for raw in raw_columns {
            let ty = self.resolve_type(raw.type_oid).await?;
            columns.push(Column::new(raw.name, ty, raw.table_oid, raw.column_id));
        }
        Ok((params, columns))
    }

    pub(crate) fn next_statement_name(&mut self) -> String {
        self.next_statement += 1;
        format!("pglite_s{}", self.next_statement)
    }

    /// Prepares a named statement on the server; parameter types are inferred.
    pub(crate) async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.prepare_typed(sql, &[]).await
    }

    /// Prepares a named statement, fixing the types of the first `types.len()`
    /// parameters (the server infers the rest).
    pub(crate) async fn prepare_typed(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, Error> {
        let name = self.next_statement_name();
        self.prepare_with_name(name, sql, types).await
    }

    /// Describes a statement — parameter types and result columns — without leaving a
    /// named statement on the server (it uses the unnamed statement). The result can
    /// still be passed to `query`/`execute`, which then parse it again.
    pub(crate) async fn describe(&mut self, sql: &str) -> Result<Statement, Error> {
        self.prepare_with_name(String::new(), sql, &[]).await
    }

    pub(crate) async fn cached_statement(&mut self, sql: &str) -> Result<Statement, Error> {
        if let Some(stmt) = self.cache.get(sql) {
            return Ok(stmt);
        }
        if self.cache.capacity() == 0 {
            return self.describe(sql).await;
        }
        let stmt = self.prepare(sql).await?;
        self.cache.insert(sql, stmt.clone());
        Ok(stmt)
    }

    // ----- extended query protocol ----------------------------------------------------

    /// Writes pending `Close`s, then `[Parse]` (for unnamed statements), `Bind` (to
    /// `portal`), `Execute` (at most `max_rows` rows, 0 = all) and `Sync`.
    pub(crate) fn encode_execute(
        &mut self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
        portal: &str,
        max_rows: i32,
    ) -> Result<(), Error> {
        self.check_statement(stmt)?;
        self.write_pending_closes();
        self.encode(|out| {
            encode_bind_execute(out, stmt, params, portal, max_rows)?;
            frontend::sync(out);
            Ok(())
        })
    }

    /// Resolves the statement (through the cache for SQL text) and runs it, handing
    /// each row to `sink`; returns the command tag. A cached statement the server can
    /// no longer use is dropped from the cache and, outside a transaction, retried once
    /// (see [`Core::start_rows`]).
    pub(crate) async fn run<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
        sink: &mut RowSink<'_>,
    ) -> Result<String, Error> {
        let mut rows = self.start_rows(stmt, params, None).await?;
        let span = rows.span.clone();
        async {
            while let Some(body) = self.next_data_row(&mut rows).await? {
                if let Err(e) = sink(&rows.columns, body) {
                    self.record(&mut rows.reply, e)?;
                }
            }
            Ok(rows.tag.take().unwrap_or_default())
        }
        .instrument(span)
        .await
    }

    /// Runs a statement with parameters and returns all its rows.
    ///
    /// SQL text is prepared once and kept in the client's statement cache.
    pub(crate) async fn query<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        self.run(stmt, params, &mut |columns, body| {
            rows.push(Row::new(columns.clone(), body)?);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    /// Runs a statement that must return exactly one row.
    pub(crate) async fn query_one<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let (first, count) = self.query_first(stmt, params).await?;
        match (first, count) {
            (Some(row), 1) => Ok(row),
            (_, n) => Err(Error::new(
                ErrorKind::UnexpectedRowCount,
                format!("query_one expects exactly one row, the query returned {n}"),
            )),
        }
    }

    /// Runs a statement that must return at most one row.
    pub(crate) async fn query_opt<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let (first, count) = self.query_first(stmt, params).await?;
        if count > 1 {
            return Err(Error::new(
                ErrorKind::UnexpectedRowCount,
                format!("query_opt expects at most one row, the query returned {count}"),
            ));
        }
        Ok(first)
    }

    pub(crate) async fn query_first<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Option<Row>, u64), Error> {
        let mut first = None;
        let mut count = 0u64;
        self.run(stmt, params, &mut |columns, body| {
            if count == 0 {
                first = Some(Row::new(columns.clone(), body)?);
            }
            count += 1;
            Ok(())
        })
        .await?;
        Ok((first, count))
    }

    /// Runs a statement and returns the number of rows it affected (or returned).
    pub(crate) async fn execute<S: ToStatement + ?Sized>(
        &mut self,
        stmt: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let mut returned = 0u64;
        let tag = self
            .run(stmt, params, &mut |_, _| {
                returned += 1;
                Ok(())
            })
            .await?;
        Ok(rows_affected(&tag).unwrap_or(returned))
    }

    // ----- COPY -----------------------------------------------------------------------

    pub(crate) fn copy_start(&mut self, sql: &str) -> Result<(), Error> {
        self.check_open()?;
        self.write_pending_closes();
        self.encode(|out| {
            frontend::query(sql, out)
                .map_err(|e| Error::with_source(ErrorKind::Usage, "invalid query text", e))
        })
    }

    /// Appends a frontend message (for COPY data) and hands the buffer to the transport
    /// when it grows past `threshold` bytes.
    pub(crate) async fn queue_bytes(
        &mut self,
        write: impl FnOnce(&mut BytesMut),
        threshold: usize,
    ) -> Result<(), Error> {
        write(&mut self.session.out);
        if self.session.out.len() >= threshold {
            self.send_out().await?;
        }
        Ok(())
    }

    pub(crate) async fn flush_out(&mut self) -> Result<(), Error> {
        self.send_out().await
    }

    // ----- notifications, state -------------------------------------------------------

    pub(crate) fn notifications(&mut self) -> Vec<Notification> {
        self.session.notifications.drain(..).collect()
    }

    pub(crate) async fn poll_notifications(&mut self) -> Result<Vec<Notification>, Error> {
        self.batch_execute("").await?;
        Ok(self.notifications())
    }

    /// Between requests: decodes the buffered input, where only asynchronous messages
    /// (notifications, notices, parameter changes) may appear, and takes the oldest
    /// queued notification. Anything else — typically a `FATAL` error when the backend
    /// is terminated — closes the connection and is returned.
    pub(crate) fn idle_poll(&mut self) -> Result<Option<Notification>, Error> {
        match self.session.poll_message() {
            Ok(None) => Ok(self.session.notifications.pop_front()),
            Ok(Some(Message::ErrorResponse(body))) => {
                self.broken = true;
                Err(match DbError::parse(&mut body.fields()) {
                    Ok(db) => Error::db(db),
                    Err(e) => Error::with_source(ErrorKind::Protocol, "invalid ErrorResponse", e),
                })
            }
            Ok(Some(other)) => {
                self.broken = true;
                Err(unexpected(&other))
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Sends `Terminate` and flushes.
    pub(crate) async fn close(&mut self) -> Result<(), Error> {
        if self.broken {
            return Ok(());
        }
        self.broken = true;
        frontend::terminate(&mut self.session.out);
        let result = self.io.send(&self.session.out).await;
        self.session.out.clear();
        result?;
        self.io.flush().await
    }
}

fn unsupported_auth() -> Error {
    Error::new(
        ErrorKind::Authentication,
        "the server asks for an authentication method this client does not support \
         (GSSAPI, SSPI, Kerberos or SCM credentials)",
    )
}

/// Picks the SASL mechanism and channel-binding flag: `SCRAM-SHA-256-PLUS` when the
/// connection has TLS, the server offers it and `channel_binding` is not `disable`.
fn choose_scram(
    offered: &[String],
    binding: ChannelBinding,
    tls: Option<&TlsBinding>,
) -> Result<(&'static str, sasl::ChannelBinding), Error> {
    let offers = |m: &str| offered.iter().any(|o| o == m);
    let end_point = tls.and_then(|t| t.server_end_point.clone());
    if binding != ChannelBinding::Disable
        && offers(sasl::SCRAM_SHA_256_PLUS)
        && let Some(data) = end_point.clone()
    {
        return Ok((
            sasl::SCRAM_SHA_256_PLUS,
            sasl::ChannelBinding::tls_server_end_point(data),
        ));
    }
    if binding == ChannelBinding::Require {
        let why = if tls.is_none() {
            "the connection has no TLS (sslmode=require or stronger over TCP is needed; Unix \
             sockets never use TLS)"
        } else if end_point.is_none() {
            "the server certificate's signature algorithm defines no hash for \
             tls-server-end-point"
        } else {
            "the server does not offer SCRAM-SHA-256-PLUS"
        };
        return Err(Error::new(
            ErrorKind::Authentication,
            format!("channel_binding=require, but channel binding is not possible: {why}"),
        ));
    }
    if !offers(sasl::SCRAM_SHA_256) {
        return Err(Error::new(
            ErrorKind::Authentication,
            format!("no supported SASL mechanism offered (server offers {offered:?})"),
        ));
    }
    // "y": we could bind but the server did not offer it (lets the server detect a
    // downgrade); "n": no binding possible on our side.
    let channel = if binding != ChannelBinding::Disable && end_point.is_some() {
        sasl::ChannelBinding::unrequested()
    } else {
        sasl::ChannelBinding::unsupported()
    };
    Ok((sasl::SCRAM_SHA_256, channel))
}

/// Writes `[Parse]` (for an unnamed statement), `Bind` of `params` to `portal` and
/// `Execute` of at most `max_rows` rows (0 = all); no `Sync`. Parameters are sent in
/// binary via `ToSql`; a text value given for a parameter of another type (an enum, a
/// domain, `inet`, ...) is sent in text form for the server to parse.
pub(crate) fn encode_bind_execute(
    out: &mut BytesMut,
    stmt: &Statement,
    params: &[&(dyn ToSql + Sync)],
    portal: &str,
    max_rows: i32,
) -> Result<(), Error> {
    if params.len() != stmt.params().len() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the statement has {} parameter(s) but {} value(s) were given",
                stmt.params().len(),
                params.len()
            ),
        ));
    }
    let mut values = BytesMut::new();
    let mut formats = Vec::with_capacity(params.len());
    let mut ranges: Vec<Option<Range<usize>>> = Vec::with_capacity(params.len());
    for (i, (param, ty)) in params.iter().zip(stmt.params()).enumerate() {
        let start = values.len();
        let (is_null, format) = match param.to_sql_checked(ty, &mut values) {
            Ok(is_null) => (is_null, param.encode_format(ty)),
            Err(e) if e.is::<WrongType>() => {
                values.truncate(start);
                match param.to_sql_checked(&Type::TEXT, &mut values) {
                    Ok(is_null) => (is_null, Format::Text),
                    Err(_) => {
                        return Err(Error::conversion(
                            format!("cannot convert parameter ${} to type {}", i + 1, ty),
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(Error::conversion(
                    format!("cannot convert parameter ${} to type {}", i + 1, ty),
                    e,
                ));
            }
        };
        ranges.push(match is_null {
            postgres_types::IsNull::Yes => {
                values.truncate(start);
                None
            }
            postgres_types::IsNull::No => Some(start..values.len()),
        });
        formats.push(match format {
            Format::Text => 0,
            Format::Binary => 1,
        });
    }
    if stmt.name().is_empty() {
        frontend::parse("", stmt.sql(), stmt.params().iter().map(Type::oid), out)
            .map_err(|e| Error::with_source(ErrorKind::Usage, "invalid statement text", e))?;
    }
    let result_formats = stmt.columns().iter().map(Column::format_code);
    frontend::bind(
        portal,
        stmt.name(),
        formats,
        ranges,
        |range, buf| {
            Ok(match range {
                None => postgres_protocol::IsNull::Yes,
                Some(range) => {
                    buf.put_slice(&values[range]);
                    postgres_protocol::IsNull::No
                }
            })
        },
        result_formats,
        out,
    )
    .map_err(|e| match e {
        frontend::BindError::Conversion(e) => Error::conversion("cannot encode parameters", e),
        frontend::BindError::Serialization(e) => {
            Error::with_source(ErrorKind::Usage, "cannot encode parameters", e)
        }
    })?;
    frontend::execute(portal, max_rows, out)
        .map_err(|e| Error::with_source(ErrorKind::Usage, "cannot encode Execute", e))
}

/// True for command tags after which the server has no prepared statements left.
pub(crate) fn discards_statements(tag: &str) -> bool {
    tag == "DISCARD ALL" || tag == "DEALLOCATE ALL"
}

pub(crate) fn is_stale_plan(e: &Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        (*db.code() == SqlState::FEATURE_NOT_SUPPORTED
            && db
                .message()
                .contains("cached plan must not change result type"))
            // DEALLOCATE/DISCARD run behind the cache's back.
            || *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
    })
}

/// A result column as described, before its type is resolved.
struct RawColumn {
    name: String,
    type_oid: u32,
    table_oid: u32,
    column_id: i16,
}

fn parse_columns(body: &RowDescriptionBody) -> Result<Vec<RawColumn>, Error> {
    body.fields()
        .map(|f| {
            Ok(RawColumn {
                name: f.name().to_owned(),
                type_oid: f.type_oid(),
                table_oid: f.table_oid(),
                column_id: f.column_id(),
            })
        })
        .collect()
        .map_err(|e| Error::with_source(ErrorKind::Protocol, "invalid RowDescription", e))
}
