//! Automatic reconnection and remembered session settings.
//!
//! A client made from a [`Config`](crate::Config) (`connect_url`/`connect_config`)
//! keeps an opener. When a call finds the connection broken, the client opens a new
//! session with the same settings (hosts, TLS, authentication), re-applies the
//! parameters given to `set_param`, and goes on — with these rules:
//!
//! - The call during which the connection breaks returns the error (class
//!   [`Broken`](crate::ErrorClass::Broken)); it is never re-run, as it may or may not
//!   have taken effect.
//! - If a transaction was open when it broke, the *next* call fails too, saying that
//!   the transaction is lost (its changes were rolled back by the server), so that no
//!   statement meant for the transaction — a `COMMIT` above all — runs in a new session
//!   by accident. The call after that reconnects.
//! - The new session starts empty: the statement cache is cleared, named statements of
//!   the old session are gone (using an old [`Statement`](crate::Statement) gives an
//!   `ErrorKind::Usage` error saying to prepare it again), and temporary tables,
//!   `LISTEN`s and settings made with plain `SET` are lost; `set_param` settings are
//!   applied again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::client::Client;
use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::io::{Io, run_blocking};
use crate::protocol::TransactionStatus;
use crate::statement::Statement;
use crate::transport::Transport;

/// A boxed future of a fresh session.
pub(crate) type OpenFuture<'a, I> =
    Pin<Box<dyn Future<Output = Result<Core<I>, Error>> + Send + 'a>>;

/// Opens a new session like the one a client was made with.
pub(crate) trait Reopen<I>: Send + Sync {
    /// Connects again. A blocking opener does all its work in this call and returns a
    /// ready future; an async one returns a future to await.
    fn reopen(&self) -> OpenFuture<'_, I>;

    /// True if [`reopen`](Reopen::reopen) is blocking (its future is ready at once).
    fn is_blocking(&self) -> bool;

    /// The `connect_timeout` of the configuration (also bounds cancel requests).
    fn connect_timeout(&self) -> Option<std::time::Duration>;
}

/// What a client keeps across reconnects.
pub(crate) struct Reconnect<I> {
    /// `None` for clients not made from a `Config`: a broken connection stays broken.
    pub(crate) opener: Option<Arc<dyn Reopen<I>>>,
    /// `set_param` settings in the order given (a name appears once).
    pub(crate) params: Vec<(String, String)>,
    /// How many times the client reconnected.
    pub(crate) generation: u64,
}

impl<I> Default for Reconnect<I> {
    fn default() -> Self {
        Reconnect {
            opener: None,
            params: Vec::new(),
            generation: 0,
        }
    }
}

/// `SELECT set_config(...)` for each setting, as one simple query.
fn set_config_sql(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(name, value)| {
            format!(
                "SELECT pg_catalog.set_config({}, {}, false);",
                quote_literal(name),
                quote_literal(value)
            )
        })
        .collect()
}

/// An escape-string literal, correct whatever `standard_conforming_strings` is.
fn quote_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl<I: Io> Core<I> {
    /// Whether the broken connection may be replaced now: `Ok(true)` to reconnect;
    /// an error when it cannot be (no opener), or once after a break inside a
    /// transaction.
    fn may_reconnect(&mut self) -> Result<bool, Error> {
        if self.reconnect.opener.is_none() {
            return Err(Error::closed());
        }
        if self.session.status != TransactionStatus::Idle {
            // Reported once; the next call reconnects.
            self.session.status = TransactionStatus::Idle;
            return Err(Error::new(
                ErrorKind::Closed,
                "the connection was lost inside a transaction, so the server rolled the \
                 transaction back; nothing of it was committed. The next call reconnects",
            ));
        }
        Ok(true)
    }

    /// Replaces a broken connection with a blocking opener, from a synchronous
    /// context (`check_open`). Async drivers reconnect earlier, with
    /// [`Core::reconnect_async`]; if they did not, the connection stays closed.
    pub(crate) fn reconnect_blocking(&mut self) -> Result<(), Error> {
        self.may_reconnect()?;
        let opener = self.reconnect.opener.clone().expect("checked");
        if !opener.is_blocking() {
            return Err(Error::closed());
        }
        let fresh = run_blocking(opener.reopen()).map_err(reconnect_failed)?;
        self.take_over(fresh);
        let sql = set_config_sql(&self.reconnect.params);
        if !sql.is_empty() {
            run_blocking(self.batch_execute(&sql))?;
        }
        Ok(())
    }

    /// Replaces a broken connection (async drivers, before each call). Does nothing
    /// when the connection is fine or the client cannot reconnect.
    #[cfg(pglite_async)]
    pub(crate) async fn reconnect_async(&mut self) -> Result<(), Error> {
        if !self.broken || self.reconnect.opener.is_none() {
            return Ok(());
        }
        self.may_reconnect()?;
        let opener = self.reconnect.opener.clone().expect("checked");
        let fresh = opener.reopen().await.map_err(reconnect_failed)?;
        self.take_over(fresh);
        let sql = set_config_sql(&self.reconnect.params);
        if !sql.is_empty() {
            self.batch_execute(&sql).await?;
        }
        Ok(())
    }

    /// Moves a fresh session in, keeping what belongs to the client: the notice
    /// handler, queued notifications, cache capacity, statement numbering, settings.
    fn take_over(&mut self, fresh: Core<I>) {
        let Core {
            io,
            mut session,
            close_queue,
            ..
        } = fresh;
        self.io = io;
        session.notice_handler = self.session.notice_handler.take();
        session.notifications = std::mem::take(&mut self.session.notifications);
        self.session = session;
        // A new queue first: statements of the old session then close nothing.
        self.close_queue = close_queue;
        self.cache.clear();
        self.types.clear();
        // Portals and unread replies belonged to the old session.
        self.portals_to_close.clear();
        self.stream_open = false;
        self.broken = false;
        self.reconnect.generation += 1;
    }

    /// Sets a run-time parameter for this session (`set_config(name, value, false)`)
    /// and remembers it, so that a reconnect applies it again.
    pub(crate) async fn set_param(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let setting = [(name.to_owned(), value.to_owned())];
        self.batch_execute(&set_config_sql(&setting)).await?;
        let params = &mut self.reconnect.params;
        params.retain(|(n, _)| n != name);
        params.extend(setting);
        Ok(())
    }

    /// Refuses a named statement prepared on another session (before a reconnect,
    /// or by another client).
    pub(crate) fn check_statement(&self, stmt: &Statement) -> Result<(), Error> {
        if stmt.usable_on(&self.close_queue) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Usage,
            format!(
                "statement \"{}\" was prepared on another connection (this client has \
                 reconnected since, or it belongs to another client); prepare it again",
                stmt.name()
            ),
        ))
    }
}

/// Says that a failure happened while reconnecting (server errors stay as they are,
/// with their SQLSTATE).
impl<T: Transport> Client<T> {
    /// Sets a run-time parameter for the session (`set_config(name, value, false)`,
    /// so `value` is read as in `postgresql.conf`: `search_path` takes a list) and
    /// remembers it: a client made from a `Config` sets it again after an automatic
    /// reconnect (see the module docs in docs/CLIENT.md). A later call for the same
    /// name replaces the remembered value.
    pub fn set_param(&mut self, name: &str, value: &str) -> Result<(), Error> {
        run_blocking(self.core.set_param(name, value))
    }
}

fn reconnect_failed(e: Error) -> Error {
    if e.as_db_error().is_some() {
        return e;
    }
    Error::with_source(e.kind(), "reconnecting failed", e)
}

/// Reopens with another opener and wraps the new session's I/O (see
/// [`Core::map_io`]).
struct MappedOpener<I, J> {
    inner: Arc<dyn Reopen<I>>,
    wrap: Arc<dyn Fn(I) -> J + Send + Sync>,
}

impl<I: Send + 'static, J: Send + 'static> Reopen<J> for MappedOpener<I, J> {
    fn reopen(&self) -> OpenFuture<'_, J> {
        let wrap = self.wrap.clone();
        let fresh = self.inner.reopen();
        Box::pin(async move { fresh.await.map(|core| core.map_io(wrap)) })
    }

    fn is_blocking(&self) -> bool {
        self.inner.is_blocking()
    }

    fn connect_timeout(&self) -> Option<std::time::Duration> {
        self.inner.connect_timeout()
    }
}

impl<I: Send + 'static> Core<I> {
    /// The same session over `wrap(io)`; a reconnect wraps the new I/O the same way.
    pub(crate) fn map_io<J: Send + 'static>(
        self,
        wrap: Arc<dyn Fn(I) -> J + Send + Sync>,
    ) -> Core<J> {
        let Core {
            io,
            session,
            cache,
            close_queue,
            next_statement,
            broken,
            types,
            reconnect,
            portals_to_close,
            next_portal,
            stream_open,
        } = self;
        let opener = reconnect.opener.map(|inner| {
            Arc::new(MappedOpener {
                inner,
                wrap: wrap.clone(),
            }) as Arc<dyn Reopen<J>>
        });
        Core {
            io: wrap(io),
            session,
            cache,
            close_queue,
            next_statement,
            broken,
            types,
            reconnect: Reconnect {
                opener,
                params: reconnect.params,
                generation: reconnect.generation,
            },
            portals_to_close,
            next_portal,
            stream_open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_config_quoting() {
        let sql = set_config_sql(&[
            ("search_path".into(), "a, \"B\"".into()),
            ("app.x".into(), "it's a \\ test".into()),
        ]);
        assert_eq!(
            sql,
            "SELECT pg_catalog.set_config(E'search_path', E'a, \"B\"', false);\
             SELECT pg_catalog.set_config(E'app.x', E'it''s a \\\\ test', false);"
        );
    }
}
