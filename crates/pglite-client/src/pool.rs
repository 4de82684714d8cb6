//! A connection pool of [`AsyncClient`]s (feature `pool`).
//!
//! - At most `max_size` connections exist at once; callers of [`Pool::get`] beyond that
//!   wait in arrival order (a fair tokio [`Semaphore`]) for up to `acquire_timeout`.
//! - A connection is handed out only after a check: it must not be closed, the server
//!   must not have sent anything while it sat idle (a terminated backend's `FATAL`
//!   error or end of file — read without waiting), and after `health_check_after` of
//!   idleness it must answer an empty query. Connections that fail are dropped and the
//!   next one (or a new one) is tried.
//! - [`PooledClient`] dereferences to the [`AsyncClient`]; dropping it returns the
//!   connection. One left inside a transaction block is rolled back (in a spawned task
//!   that holds the connection's slot until done) before anyone gets it again; a
//!   broken one, or one whose call was abandoned, is closed.
//! - A background task (spawned by [`PoolBuilder::build`]) closes connections idle for
//!   longer than `idle_timeout` (keeping `min_idle`), retires connections older than
//!   `max_lifetime`, and opens connections until `min_idle` are idle.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::{Instant, timeout_at};

use crate::async_client::AsyncClient;
use crate::connstr::Config;
use crate::error::{Error, ErrorKind};
use crate::io::Io;
use crate::protocol::TransactionStatus;

/// Settings of a [`Pool`]; see [`PoolBuilder`] for their meaning and defaults.
#[derive(Debug, Clone)]
struct Options {
    max_size: usize,
    min_idle: usize,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    acquire_timeout: Duration,
    health_check_after: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_size: 10,
            min_idle: 0,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            acquire_timeout: Duration::from_secs(30),
            health_check_after: Duration::from_secs(1),
        }
    }
}

impl Options {
    /// How often the maintenance task runs, if one is needed.
    fn maintenance_period(&self) -> Option<Duration> {
        let shortest = [self.idle_timeout, self.max_lifetime]
            .into_iter()
            .flatten()
            .min();
        if shortest.is_none() && self.min_idle == 0 {
            return None;
        }
        let period = shortest.unwrap_or(Duration::from_secs(30)) / 2;
        Some(period.clamp(Duration::from_millis(10), Duration::from_secs(15)))
    }
}

/// Builds a [`Pool`]: `Pool::builder(config).max_size(16).build()?`.
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    config: Config,
    options: Options,
}

impl PoolBuilder {
    /// The most connections open at once, checked out or idle (default 10; at least 1).
    pub fn max_size(mut self, max_size: usize) -> PoolBuilder {
        self.options.max_size = max_size;
        self
    }

    /// Keep at least this many idle connections open: the maintenance task opens them
    /// (also right after `build`) and the idle timeout spares them (default 0).
    pub fn min_idle(mut self, min_idle: usize) -> PoolBuilder {
        self.options.min_idle = min_idle;
        self
    }

    /// Close connections that were idle for longer than this, beyond `min_idle`
    /// (default 10 minutes; `None` keeps them).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> PoolBuilder {
        self.options.idle_timeout = timeout;
        self
    }

    /// Close connections older than this when they are idle or returned (default 30
    /// minutes; `None`: no limit).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> PoolBuilder {
        self.options.max_lifetime = lifetime;
        self
    }

    /// How long [`Pool::get`] waits in total — for a free slot, for a new connection
    /// and for its health check — before failing with [`ErrorKind::PoolTimeout`]
    /// (default 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> PoolBuilder {
        self.options.acquire_timeout = timeout;
        self
    }

    /// A connection idle for at least this long answers an empty query before it is
    /// handed out (default 1 s; `Duration::ZERO`: on every checkout). Independently of
    /// this, every checkout reads (without waiting) whatever the server sent while the
    /// connection was idle, which catches terminated backends at no cost.
    pub fn health_check_after(mut self, idle: Duration) -> PoolBuilder {
        self.options.health_check_after = idle;
        self
    }

    /// Creates the pool. No connection is opened here except the `min_idle` ones,
    /// which the maintenance task opens in the background.
    ///
    /// When the pool needs its maintenance task (an idle timeout, a maximum lifetime
    /// or `min_idle`, as by default), this must be called inside a tokio runtime; the
    /// task runs there until the last clone of the pool is dropped. Use a pool within
    /// the runtime it was built in (tokio sockets belong to their runtime).
    pub fn build(self) -> Result<Pool, Error> {
        let options = self.options;
        if options.max_size == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "the pool's max_size must be at least 1",
            ));
        }
        if options.min_idle > options.max_size {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the pool's min_idle ({}) exceeds its max_size ({})",
                    options.min_idle, options.max_size
                ),
            ));
        }
        // Reports bad host/port lists now rather than at the first checkout.
        self.config.endpoints()?;
        let period = options.maintenance_period();
        let runtime = match period {
            Some(_) => Some(Handle::try_current().map_err(|_| {
                Error::new(
                    ErrorKind::Usage,
                    "Pool::build must be called inside a tokio runtime (the pool's \
                     maintenance task runs there)",
                )
            })?),
            None => None,
        };
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(options.max_size)),
            config: self.config,
            options,
            idle: Mutex::new(IdleList {
                conns: VecDeque::new(),
                closed: false,
            }),
            open: Arc::new(AtomicUsize::new(0)),
            waiting: AtomicUsize::new(0),
        });
        if let (Some(period), Some(runtime)) = (period, runtime) {
            runtime.spawn(maintain(Arc::downgrade(&shared), period));
        }
        Ok(Pool { shared })
    }
}

/// A pool of [`AsyncClient`] connections to one server, built from a [`Config`].
///
/// Cloning is cheap (clones share the connections). [`Pool::get`] hands out a
/// [`PooledClient`], which dereferences to [`AsyncClient`] and goes back to the pool
/// when dropped. See the module documentation in `docs/CLIENT.md` for the checks a
/// connection passes before it is handed out and what happens when it comes back.
///
/// ```no_run
/// # async fn demo() -> Result<(), pglite_client::Error> {
/// use std::time::Duration;
/// use pglite_client::Pool;
/// let pool = Pool::builder("postgres://app@db/app".parse()?)
///     .max_size(16)
///     .acquire_timeout(Duration::from_secs(5))
///     .build()?;
/// let mut client = pool.get().await?;
/// let row = client.query_one("SELECT $1::int4 + 1", &[&41i32]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// A snapshot of a [`Pool`]'s counters.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now (idle, checked out, or being rolled back).
    pub size: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Callers of [`Pool::get`] waiting for a free slot.
    pub waiting: usize,
}

struct Shared {
    config: Config,
    options: Options,
    /// One permit per connection slot; whoever holds one may hold one connection.
    permits: Arc<Semaphore>,
    idle: Mutex<IdleList>,
    /// Open connections (each [`Conn`] counts itself).
    open: Arc<AtomicUsize>,
    waiting: AtomicUsize,
}

struct IdleList {
    /// Least recently returned first; checkouts take from the back (the warmest).
    conns: VecDeque<IdleConn>,
    closed: bool,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// An open connection and its birth time; counted in `Shared::open` while it lives.
struct Conn {
    client: AsyncClient,
    created: Instant,
    counted: OpenCount,
}

struct OpenCount(Arc<AtomicUsize>);

impl OpenCount {
    fn new(open: &Arc<AtomicUsize>) -> OpenCount {
        open.fetch_add(1, Ordering::SeqCst);
        OpenCount(open.clone())
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a caller of [`Pool::get`] waiting for a permit, also when its future is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// A builder with the default settings (see [`PoolBuilder`]).
    pub fn builder(config: Config) -> PoolBuilder {
        PoolBuilder {
            config,
            options: Options::default(),
        }
    }

    /// A pool with the default settings; see [`PoolBuilder::build`].
    pub fn new(config: Config) -> Result<Pool, Error> {
        Pool::builder(config).build()
    }

    /// Checks out a connection: waits (first come, first served) for a free slot, then
    /// takes the most recently returned idle connection that passes its health check,
    /// or opens a new one. Fails with [`ErrorKind::PoolTimeout`] when this takes
    /// longer than the acquire timeout, with the connection error when a new
    /// connection cannot be opened, and with [`ErrorKind::Closed`] after
    /// [`Pool::close`].
    pub async fn get(&self) -> Result<PooledClient, Error> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.options.acquire_timeout;
        let permit = {
            shared.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&shared.waiting);
            match timeout_at(deadline, shared.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(pool_closed()),
                Err(_) => return Err(shared.timeout_error()),
            }
        };
        loop {
            let popped = shared.lock_idle().conns.pop_back();
            let Some(idle) = popped else {
                let conn = timeout_at(deadline, shared.open_conn())
                    .await
                    .map_err(|_| shared.timeout_error())??;
                return Ok(shared.clone().hand_out(conn, permit));
            };
            if shared.expired(&idle.conn) {
                retire(idle.conn);
                continue;
            }
            match timeout_at(deadline, shared.check(idle)).await {
                Ok(Some(conn)) => return Ok(shared.clone().hand_out(conn, permit)),
                Ok(None) => continue,
                Err(_) => return Err(shared.timeout_error()),
            }
        }
    }

    /// The pool's counters now.
    pub fn status(&self) -> PoolStatus {
        let shared = &self.shared;
        PoolStatus {
            max_size: shared.options.max_size,
            size: shared.open.load(Ordering::SeqCst),
            idle: shared.lock_idle().conns.len(),
            waiting: shared.waiting.load(Ordering::SeqCst),
        }
    }

    /// Closes the pool: idle connections are closed now, checked-out ones when they
    /// come back, and waiting and later [`Pool::get`] calls fail with
    /// [`ErrorKind::Closed`]. Affects every clone.
    pub async fn close(&self) {
        self.shared.permits.close();
        let conns: Vec<IdleConn> = {
            let mut idle = self.shared.lock_idle();
            idle.closed = true;
            idle.conns.drain(..).collect()
        };
        for idle in conns {
            let _ = idle.conn.client.close().await;
        }
    }

    /// True after [`Pool::close`].
    pub fn is_closed(&self) -> bool {
        self.shared.lock_idle().closed
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

fn pool_closed() -> Error {
    Error::new(ErrorKind::Closed, "the connection pool is closed")
}

impl Shared {
    fn lock_idle(&self) -> MutexGuard<'_, IdleList> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timeout_error(&self) -> Error {
        Error::new(
            ErrorKind::PoolTimeout,
            format!(
                "no connection became available within the pool's acquire timeout ({:?}; \
                 max_size {})",
                self.options.acquire_timeout, self.options.max_size
            ),
        )
    }

    fn expired(&self, conn: &Conn) -> bool {
        self.options
            .max_lifetime
            .is_some_and(|max| conn.created.elapsed() >= max)
    }

    async fn open_conn(&self) -> Result<Conn, Error> {
        let client = AsyncClient::connect(&self.config).await?;
        Ok(Conn {
            client,
            created: Instant::now(),
            counted: OpenCount::new(&self.open),
        })
    }

    /// The checkout check: `Some` if the connection may be handed out.
    async fn check(&self, idle: IdleConn) -> Option<Conn> {
        let IdleConn { mut conn, since } = idle;
        if read_idle_input(&mut conn.client).await.is_err() {
            return None;
        }
        if since.elapsed() >= self.options.health_check_after
            && conn.client.batch_execute("").await.is_err()
        {
            return None;
        }
        (!conn.client.is_closed()).then_some(conn)
    }

    fn hand_out(self: Arc<Self>, conn: Conn, permit: OwnedSemaphorePermit) -> PooledClient {
        PooledClient {
            conn: Some(conn),
            permit: Some(permit),
            shared: self,
        }
    }

    /// Puts a returned connection back (or closes it); the permit is released after.
    fn check_in(self: Arc<Self>, conn: Conn, permit: OwnedSemaphorePermit) {
        if conn.client.is_closed() {
            return;
        }
        if self.expired(&conn) || self.lock_idle().closed {
            retire(conn);
            return;
        }
        if conn.client.transaction_status() == TransactionStatus::Idle {
            self.push_idle(conn);
            drop(permit);
            return;
        }
        // Inside a transaction block: roll it back before anyone else gets it. That
        // needs a round trip, so it runs in a task that keeps the slot meanwhile.
        // Without a runtime (e.g. dropped while the runtime shuts down) the connection
        // is closed, which makes the server roll back.
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut conn = conn;
            let deadline = Instant::now() + self.options.acquire_timeout;
            let rolled_back = timeout_at(deadline, conn.client.batch_execute("ROLLBACK")).await;
            if matches!(rolled_back, Ok(Ok(())))
                && conn.client.transaction_status() == TransactionStatus::Idle
                && !conn.client.is_closed()
            {
                self.push_idle(conn);
            }
            drop(permit);
        });
    }

    fn push_idle(&self, conn: Conn) {
        let mut idle = self.lock_idle();
        if idle.closed {
            drop(idle);
            retire(conn);
            return;
        }
        idle.conns.push_back(IdleConn {
            conn,
            since: Instant::now(),
        });
    }

    /// One maintenance round: close idle connections past their idle timeout (beyond
    /// `min_idle`) or lifetime, then open connections until `min_idle` are idle.
    async fn maintain_once(&self) {
        let now = Instant::now();
        let stale: Vec<Conn> = {
            let mut idle = self.lock_idle();
            if idle.closed {
                return;
            }
            let mut keep = VecDeque::with_capacity(idle.conns.len());
            let mut stale = Vec::new();
            let mut idle_to_spare = idle.conns.len().saturating_sub(self.options.min_idle);
            // Oldest returned first, so the warm connections at the back stay.
            for entry in idle.conns.drain(..) {
                let timed_out = idle_to_spare > 0
                    && self
                        .options
                        .idle_timeout
                        .is_some_and(|t| now.duration_since(entry.since) >= t);
                if timed_out || self.expired(&entry.conn) {
                    idle_to_spare = idle_to_spare.saturating_sub(1);
                    stale.push(entry.conn);
                } else {
                    keep.push_back(entry);
                }
            }
            idle.conns = keep;
            stale
        };
        for conn in stale {
            let _ = conn.client.close().await;
        }
        loop {
            let idle_now = self.lock_idle().conns.len();
            if idle_now >= self.options.min_idle {
                return;
            }
            // Opening takes a slot like a checkout, so max_size holds.
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => return,
            };
            let deadline = Instant::now() + self.options.acquire_timeout;
            match timeout_at(deadline, self.open_conn()).await {
                Ok(Ok(conn)) => self.push_idle(conn),
                // The server is unreachable: try again next round.
                _ => return,
            }
            drop(permit);
        }
    }
}

/// The maintenance task: runs until the pool is dropped or closed.
async fn maintain(shared: Weak<Shared>, period: Duration) {
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(period).await;
        }
        first = false;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.lock_idle().closed {
            return;
        }
        shared.maintain_once().await;
    }
}

/// Closes a healthy connection with `Terminate` when a runtime is at hand (so the
/// server does not log an unexpected EOF), else just drops its socket.
fn retire(conn: Conn) {
    if let Ok(runtime) = Handle::try_current() {
        runtime.spawn(async move {
            let Conn {
                client, counted, ..
            } = conn;
            let _ = client.close().await;
            drop(counted);
        });
    }
}

/// Reads, without waiting, what the server sent while the connection was idle. Only
/// asynchronous messages may arrive between requests (notifications stay queued for
/// the next user); anything else — a terminated backend's `FATAL` error — or end of
/// file closes the client and is returned.
async fn read_idle_input(client: &mut AsyncClient) -> Result<(), Error> {
    loop {
        client.core.check_open()?;
        if let Some(notification) = client.core.idle_poll()? {
            client.core.session.notifications.push_front(notification);
        }
        let core = &mut client.core;
        // `unconstrained`: tokio's cooperative budget must not make a ready socket
        // look idle.
        let receive = tokio::task::unconstrained(core.io.receive(&mut core.session.input));
        let mut receive = pin!(receive);
        match poll_fn(|cx| Poll::Ready(receive.as_mut().poll(cx))).await {
            // Nothing arrived (dropping `receive` loses nothing: `read_buf` is
            // cancel-safe and no output was queued between requests).
            Poll::Pending => return Ok(()),
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                core.broken = true;
                return Err(e);
            }
        }
    }
}

/// A connection checked out of a [`Pool`]; dereferences to [`AsyncClient`].
///
/// Dropping it returns the connection to the pool: as is when it is idle, after a
/// `ROLLBACK` (run in a spawned task) when it is inside a transaction block, and not
/// at all when it is broken or a call on it was abandoned midway. Session state other
/// than the transaction — `SET` values, temporary tables, `LISTEN`s, prepared
/// statements, the notice handler, queued notifications — stays with the connection
/// for its next user.
pub struct PooledClient {
    conn: Option<Conn>,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl PooledClient {
    /// Takes the connection out of the pool for good: its slot is freed and the pool
    /// may open another.
    pub fn detach(mut self) -> AsyncClient {
        let conn = self
            .conn
            .take()
            .expect("a PooledClient holds its connection");
        conn.client
    }

    /// When the connection was opened.
    pub fn created(&self) -> std::time::Instant {
        self.conn().created.into_std()
    }

    fn conn(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a PooledClient holds its connection")
    }
}

impl Deref for PooledClient {
    type Target = AsyncClient;

    fn deref(&self) -> &AsyncClient {
        &self.conn().client
    }
}

impl DerefMut for PooledClient {
    fn deref_mut(&mut self) -> &mut AsyncClient {
        &mut self
            .conn
            .as_mut()
            .expect("a PooledClient holds its connection")
            .client
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            self.shared.clone().check_in(conn, permit);
        }
    }
}

impl fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledClient")
            .field("client", &self.conn.as_ref().map(|c| &c.client))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn thread_safety() {
        send_sync::<Pool>();
        send::<PooledClient>();
    }

    #[test]
    fn maintenance_period() {
        let mut o = Options::default();
        assert_eq!(o.maintenance_period(), Some(Duration::from_secs(15)));
        o.idle_timeout = Some(Duration::from_millis(300));
        assert_eq!(o.maintenance_period(), Some(Duration::from_millis(150)));
        o.idle_timeout = None;
        o.max_lifetime = None;
        assert_eq!(o.maintenance_period(), None);
        o.min_idle = 1;
        assert_eq!(o.maintenance_period(), Some(Duration::from_secs(15)));
        o.max_lifetime = Some(Duration::from_micros(1));
        assert_eq!(o.maintenance_period(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn invalid_sizes_are_refused() {
        let err = Pool::builder(Config::new())
            .max_size(0)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let err = Pool::builder(Config::new())
            .max_size(2)
            .min_idle(3)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("min_idle (3)"), "{err}");
    }

    #[test]
    fn build_outside_a_runtime_says_why() {
        let err = Pool::new(Config::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(err.to_string().contains("tokio runtime"), "{err}");
        // Without maintenance no runtime is needed.
        Pool::builder(Config::new())
            .idle_timeout(None)
            .max_lifetime(None)
            .build()
            .unwrap();
    }
}
