//! [`Pglite`]: the embedded database handle.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use pglite_client::{
    Client, Error, ErrorKind, Notification, Row, SimpleResult, Statement, ToSql, ToStatement,
    TransactionStatus,
};

use crate::Transaction;
use crate::builder::PgliteBuilder;
use crate::transport::EngineTransport;

type Listener = Box<dyn FnMut(&Notification) + Send>;

/// An embedded PostgreSQL database with one session.
///
/// Every method runs on the calling thread. A SQL error is returned as an
/// [`Error`] carrying SQLSTATE, message, detail, hint and position, and the database
/// stays usable. Dropping the handle shuts PostgreSQL down cleanly; [`Pglite::close`]
/// does the same and reports failures.
///
/// If the engine crashes (a statement recursing too deeply, memory exhausted), that
/// call fails with SQLSTATE `XX000`, the engine restarts from the committed state and
/// the handle carries on: uncommitted work and temporary objects are gone, while the
/// session's user and settings, prepared statements and [`Pglite::listen`]
/// subscriptions are restored.
pub struct Pglite {
    client: Client<EngineTransport>,
    data_dir: PathBuf,
    listeners: HashMap<String, Vec<Listener>>,
    /// Engine restarts already answered by renewing the LISTEN registrations.
    restarts_seen: u64,
    /// Declared last so the engine shuts down before a temporary directory is deleted.
    _temporary: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Pglite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pglite")
            .field("data_dir", &self.data_dir)
            .field("temporary", &self._temporary.is_some())
            .finish_non_exhaustive()
    }
}

impl Pglite {
    /// Open the database in `dir`, creating the directory and the cluster if needed.
    ///
    /// Fails with an "in use" error while another handle (in this or another process)
    /// has the directory open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Pglite, Error> {
        Pglite::builder().path(dir.as_ref()).open()
    }

    /// A fresh database in a temporary directory, deleted when the handle is dropped.
    ///
    /// It is a copy of a template cluster prepared once per machine, so it takes
    /// milliseconds rather than an initdb. Dropping it skips PostgreSQL's shutdown
    /// checkpoint: the directory is deleted anyway. With `PGLITE_PREPARE_TEMPORARY=1`,
    /// from the second temporary database on, the next one is copied and started in the
    /// background while the process works with the current one.
    pub fn temporary() -> Result<Pglite, Error> {
        Pglite::builder().temporary().open()
    }

    /// Options: path or temporary, database, user, session settings.
    pub fn builder() -> PgliteBuilder {
        PgliteBuilder::default()
    }

    pub(crate) fn from_parts(
        client: Client<EngineTransport>,
        data_dir: PathBuf,
        temporary: Option<tempfile::TempDir>,
    ) -> Pglite {
        let mut client = client;
        if temporary.is_some() {
            // The directory is deleted right after the engine: skip its checkpoint.
            client.transport_mut().discard_on_drop();
        }
        Pglite {
            client,
            data_dir,
            listeners: HashMap::new(),
            restarts_seen: 0,
            _temporary: temporary,
        }
    }

    /// The data directory (for a temporary database, the one deleted on drop).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Run one or more SQL statements with the simple protocol; one result per statement.
    pub fn exec(&mut self, sql: &str) -> Result<Vec<SimpleResult>, Error> {
        let result = self.client.simple_query(sql);
        self.dispatch_notifications();
        result
    }

    /// Run one or more SQL statements, discarding their results.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        let result = self.client.batch_execute(sql);
        self.dispatch_notifications();
        result
    }

    /// Run a statement with parameters (`$1`, `$2`, ...) and return its rows.
    ///
    /// Statements given as text are prepared once and cached.
    pub fn query<S: ToStatement + ?Sized>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let result = self.client.query(statement, params);
        self.dispatch_notifications();
        result
    }

    /// Like [`Pglite::query`], for exactly one row (an error otherwise).
    pub fn query_one<S: ToStatement + ?Sized>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let result = self.client.query_one(statement, params);
        self.dispatch_notifications();
        result
    }

    /// Like [`Pglite::query`], for zero or one row (an error for more).
    pub fn query_opt<S: ToStatement + ?Sized>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let result = self.client.query_opt(statement, params);
        self.dispatch_notifications();
        result
    }

    /// Run a statement with parameters and return the number of rows it affected.
    pub fn execute<S: ToStatement + ?Sized>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let result = self.client.execute(statement, params);
        self.dispatch_notifications();
        result
    }

    /// Prepare a named statement for repeated use.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        let result = self.client.prepare(sql);
        self.dispatch_notifications();
        result
    }

    /// Parameter and column types of `sql`, without running it.
    pub fn describe(&mut self, sql: &str) -> Result<Statement, Error> {
        let result = self.client.describe(sql);
        self.dispatch_notifications();
        result
    }

    /// Run `f` in a transaction: commit when it returns `Ok`, roll back on `Err` or panic.
    ///
    /// Inside, `tx.transaction()` opens a nested savepoint with the same rules.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), pglite::Error> {
    /// let mut db = pglite::Pglite::temporary()?;
    /// db.batch_execute("CREATE TABLE t (n int)")?;
    /// db.transaction(|tx| {
    ///     tx.execute("INSERT INTO t VALUES (1)", &[])?;
    ///     Ok::<_, pglite::Error>(())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.client.transaction()?;
        // A panic in `f` drops `tx`, which rolls back.
        let result = match f(&mut tx) {
            Ok(value) => tx.commit().map(|()| value).map_err(E::from),
            Err(e) => {
                // The caller's error matters more than a failed rollback.
                let _ = tx.rollback();
                Err(e)
            }
        };
        self.dispatch_notifications();
        result
    }

    /// Subscribe to `channel`; `callback` runs for each notification delivered after any
    /// call on this handle (see [`Pglite::poll_notifications`]).
    pub fn listen(
        &mut self,
        channel: &str,
        callback: impl FnMut(&Notification) + Send + 'static,
    ) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("LISTEN {}", quote_ident(channel)))?;
        self.listeners
            .entry(channel.to_string())
            .or_default()
            .push(Box::new(callback));
        Ok(())
    }

    /// Stop listening on `channel` and drop its callbacks.
    pub fn unlisten(&mut self, channel: &str) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("UNLISTEN {}", quote_ident(channel)))?;
        self.listeners.remove(channel);
        Ok(())
    }

    /// Send a notification on `channel`.
    pub fn notify(&mut self, channel: &str, payload: &str) -> Result<(), Error> {
        self.client
            .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])?;
        self.dispatch_notifications();
        Ok(())
    }

    /// Fetch pending notifications, run the callbacks registered with
    /// [`Pglite::listen`], and return the notifications too.
    pub fn poll_notifications(&mut self) -> Result<Vec<Notification>, Error> {
        self.renew_listens();
        let notes = self.client.poll_notifications()?;
        self.deliver(&notes);
        Ok(notes)
    }

    /// Run `COPY ... FROM STDIN` with data from `reader`; returns the rows copied.
    pub fn copy_in<R: Read>(&mut self, sql: &str, reader: R) -> Result<u64, Error> {
        let result = self.client.copy_in(sql, reader);
        self.dispatch_notifications();
        result
    }

    /// Run `COPY ... TO STDOUT` into `writer`; returns the rows copied.
    pub fn copy_out<W: Write>(&mut self, sql: &str, writer: W) -> Result<u64, Error> {
        let result = self.client.copy_out(sql, writer);
        self.dispatch_notifications();
        result
    }

    /// Whether the session is idle, in a transaction or in a failed transaction.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }

    /// The underlying client, for everything not wrapped here.
    pub fn client(&mut self) -> &mut Client<EngineTransport> {
        &mut self.client
    }

    /// The underlying client, taking the database with it: for code written against
    /// [`pglite_client::Client`] and generic over its transport.
    ///
    /// The client owns the engine (dropping it shuts PostgreSQL down) and, for a
    /// temporary database, the directory, deleted after the engine. The session's
    /// protection stays (its settings, user and prepared statements are restored after
    /// `RESET`, `DISCARD ALL` or an engine restart); what [`Pglite`] adds is gone:
    /// callbacks registered with [`Pglite::listen`] are dropped and, after an engine
    /// restart, the session's `LISTEN`s are not renewed.
    pub fn into_client(self) -> Client<EngineTransport> {
        let Pglite {
            mut client,
            _temporary: temporary,
            ..
        } = self;
        if let Some(dir) = temporary {
            client.transport_mut().own_temporary(dir);
        }
        client
    }

    /// Shut PostgreSQL down cleanly (a checkpoint, the lock released) and report errors.
    pub fn close(mut self) -> Result<(), Error> {
        let engine = self.client.transport_mut().take_engine();
        match engine {
            Some(engine) => engine.shutdown().map_err(crate::engine_error),
            None => Err(Error::new(
                ErrorKind::Closed,
                "the database was already closed",
            )),
        }
    }

    fn dispatch_notifications(&mut self) {
        if self.listeners.is_empty() {
            return;
        }
        self.renew_listens();
        let notes = self.client.notifications();
        self.deliver(&notes);
    }

    /// After the engine crashed and restarted, the new session listens to nothing:
    /// subscribe the registered channels again (once the session is idle).
    fn renew_listens(&mut self) {
        let restarts = self.client.transport().restarts();
        if restarts == self.restarts_seen
            || self.client.transaction_status() != TransactionStatus::Idle
        {
            return;
        }
        self.restarts_seen = restarts;
        if self.listeners.is_empty() {
            return;
        }
        let sql: String = self
            .listeners
            .keys()
            .map(|channel| format!("LISTEN {};", quote_ident(channel)))
            .collect();
        // A failure here surfaces with the next call; the callbacks stay registered.
        let _ = self.client.batch_execute(&sql);
    }

    fn deliver(&mut self, notes: &[Notification]) {
        for note in notes {
            if let Some(callbacks) = self.listeners.get_mut(note.channel()) {
                for callback in callbacks {
                    callback(note);
                }
            }
        }
    }
}

/// Quote an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
