//! Transactions retried on serialization failures and deadlocks:
//! [`Client::with_transaction`] (and `AsyncClient::with_transaction`) with a
//! [`RetryPolicy`].

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::sqlstate::SqlState;
use crate::transaction::Transaction;
use crate::transport::Transport;

/// A transaction isolation level, for [`RetryPolicy::isolation`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// `READ UNCOMMITTED` (PostgreSQL runs it as `READ COMMITTED`).
    ReadUncommitted,
    /// `READ COMMITTED`, PostgreSQL's default.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl IsolationLevel {
    fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// How [`Client::with_transaction`] runs and retries a transaction.
///
/// A transaction that fails with a serialization failure (`40001`) or a deadlock
/// (`40P01`) — in a statement or at `COMMIT` — is rolled back and run again, up to
/// `max_attempts` times in all, waiting between attempts: the first wait is about
/// `initial_backoff`, each next one twice as long, at most `max_backoff`, each
/// randomly shortened by up to half so that competing clients spread out. Other errors
/// end it at once.
///
/// The default: 5 attempts, backoff from 10 ms up to 1 s, the server's default
/// isolation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    isolation: Option<IsolationLevel>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            isolation: None,
        }
    }
}

impl RetryPolicy {
    /// The default policy with `max_attempts` attempts in all (at least 1).
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy::default().max_attempts(max_attempts)
    }

    /// Sets the number of attempts in all (at least 1; 1 means no retry).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Sets the wait before the first retry and the longest wait.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Starts each attempt with `BEGIN ISOLATION LEVEL <level>`.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// The number of attempts in all.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// True for the errors a retry may cure: serialization failure (`40001`) and
    /// deadlock (`40P01`).
    pub fn is_retryable(error: &Error) -> bool {
        error.code().is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        })
    }

    /// The statement that starts each attempt.
    pub(crate) fn begin_sql(&self) -> String {
        match self.isolation {
            Some(level) => format!("BEGIN ISOLATION LEVEL {}", level.sql()),
            None => "BEGIN".to_owned(),
        }
    }

    /// Whether attempt `attempt` (1-based), which failed with `error`, is retried.
    pub(crate) fn retries(&self, attempt: u32, error: &Error) -> bool {
        attempt < self.max_attempts && RetryPolicy::is_retryable(error)
    }

    /// The wait after failed attempt `attempt` (1-based): exponential, capped, with
    /// jitter in [half, full].
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(attempt);
        let fraction = (hasher.finish() % 1024) as u32;
        full / 2 + (full / 2) * fraction / 1024
    }
}

/// Refuses to start a retried transaction inside another one.
pub(crate) fn check_idle(status: TransactionStatus) -> Result<(), Error> {
    if status != TransactionStatus::Idle {
        return Err(Error::new(
            ErrorKind::Usage,
            "with_transaction cannot run inside a transaction block (it issues BEGIN and \
             COMMIT itself)",
        ));
    }
    Ok(())
}

impl<T: Transport> Client<T> {
    /// Runs `f` in a transaction and commits it, retrying the whole transaction as
    /// `policy` says when it fails with a serialization failure (`40001`) or a
    /// deadlock (`40P01`), in a statement or at `COMMIT`.
    ///
    /// `f` may run several times, so it should have no effects outside the database
    /// (or ones that are fine to repeat), and it must return the errors of its
    /// statements (`?`) for the retry to see them. Any other error rolls the
    /// transaction back and is returned; after the last attempt the last error is
    /// returned. Refused (`ErrorKind::Usage`) inside a transaction block.
    ///
    /// ```no_run
    /// # fn demo(client: &mut pglite_client::Client<pglite_client::TcpTransport>) -> Result<(), pglite_client::Error> {
    /// use pglite_client::{IsolationLevel, RetryPolicy};
    /// let policy = RetryPolicy::new(10).isolation(IsolationLevel::Serializable);
    /// let balance: i64 = client.with_transaction(&policy, |tx| {
    ///     let from: i64 = tx.query_one("SELECT balance FROM accounts WHERE id = 1", &[])?.get(0);
    ///     tx.execute("UPDATE accounts SET balance = balance - $1 WHERE id = 1", &[&10i64])?;
    ///     tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = 2", &[&10i64])?;
    ///     Ok(from - 10)
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn with_transaction<R>(
        &mut self,
        policy: &RetryPolicy,
        mut f: impl FnMut(&mut Transaction<'_, T>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        check_idle(self.transaction_status())?;
        let begin = policy.begin_sql();
        let mut attempt = 1;
        loop {
            let span = tracing::debug_span!("transaction", attempt);
            let result = span.in_scope(|| {
                let mut tx = self.begin_with(&begin)?;
                let value = f(&mut tx)?;
                tx.commit()?;
                Ok(value)
            });
            match result {
                Err(e) if policy.retries(attempt, &e) => {
                    tracing::debug!(attempt, error = %e, "retrying the transaction");
                    std::thread::sleep(policy.delay(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The future a [`AsyncClient::with_transaction`](crate::AsyncClient::with_transaction)
/// closure returns: boxed, `Send`, borrowing the transaction.
#[cfg(pglite_async)]
pub type TransactionFuture<'a, R> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, Error>> + Send + 'a>>;

#[cfg(pglite_async)]
mod async_driver {
    use tracing::Instrument;

    use super::*;
    use crate::async_client::{AsyncClient, AsyncTransaction, socket};

    impl AsyncClient {
        /// Runs `f` in a transaction and commits it, retrying as `policy` says on
        /// serialization failures and deadlocks; the async twin of
        /// [`Client::with_transaction`], waiting between attempts with the async
        /// runtime's timer (`tokio::time::sleep`, or `wstd`'s on wasm32-wasip2).
        ///
        /// `f` returns a boxed future (`Box::pin(async move { ... })`), which keeps
        /// this call's future `Send`, so it can run in `tokio::spawn`. That future
        /// may borrow the transaction but nothing else of the caller's: move clones
        /// (or `Arc`s) into it. [`with_transaction_local`](AsyncClient::with_transaction_local)
        /// takes an async closure that can borrow freely, at the price of a future
        /// that is not `Send`.
        ///
        /// ```no_run
        /// # async fn demo(client: &mut pglite_client::AsyncClient) -> Result<(), pglite_client::Error> {
        /// use pglite_client::{IsolationLevel, RetryPolicy};
        /// let policy = RetryPolicy::default().isolation(IsolationLevel::Serializable);
        /// let id = 7i32;
        /// let n: u64 = client
        ///     .with_transaction(&policy, move |tx| {
        ///         Box::pin(async move {
        ///             tx.execute("UPDATE counters SET n = n + 1 WHERE id = $1", &[&id]).await
        ///         })
        ///     })
        ///     .await?;
        /// # Ok(()) }
        /// ```
        pub async fn with_transaction<R, F>(
            &mut self,
            policy: &RetryPolicy,
            mut f: F,
        ) -> Result<R, Error>
        where
            F: for<'a, 'b> FnMut(&'a mut AsyncTransaction<'b>) -> TransactionFuture<'a, R>,
        {
            check_idle(self.transaction_status())?;
            let begin = policy.begin_sql();
            let mut attempt = 1;
            loop {
                let span = tracing::debug_span!("transaction", attempt);
                let result = async {
                    let mut tx = self.begin_with(&begin).await?;
                    let value = f(&mut tx).await?;
                    tx.commit().await?;
                    Ok(value)
                }
                .instrument(span)
                .await;
                match result {
                    Err(e) if policy.retries(attempt, &e) => {
                        tracing::debug!(attempt, error = %e, "retrying the transaction");
                        socket::sleep(policy.delay(attempt)).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        }

        /// [`with_transaction`](AsyncClient::with_transaction) with an async closure,
        /// which may borrow (and mutate) the caller's variables. The returned future
        /// is not `Send` (the compiler cannot yet prove it for async closures that
        /// take a reference), so it cannot run inside `tokio::spawn`; use it in
        /// `block_on`, a current-thread `LocalSet`, or `main`.
        ///
        /// ```no_run
        /// # async fn demo(client: &mut pglite_client::AsyncClient) -> Result<(), pglite_client::Error> {
        /// use pglite_client::{AsyncTransaction, RetryPolicy};
        /// let mut attempts = 0;
        /// client
        ///     .with_transaction_local(&RetryPolicy::default(), async |tx: &mut AsyncTransaction<'_>| {
        ///         attempts += 1;
        ///         tx.execute("UPDATE counters SET n = n + 1", &[]).await
        ///     })
        ///     .await?;
        /// # Ok(()) }
        /// ```
        pub async fn with_transaction_local<R, F>(
            &mut self,
            policy: &RetryPolicy,
            mut f: F,
        ) -> Result<R, Error>
        where
            F: AsyncFnMut(&mut AsyncTransaction<'_>) -> Result<R, Error>,
        {
            check_idle(self.transaction_status())?;
            let begin = policy.begin_sql();
            let mut attempt = 1;
            loop {
                let span = tracing::debug_span!("transaction", attempt);
                let result = async {
                    let mut tx = self.begin_with(&begin).await?;
                    let value = f(&mut tx).await?;
                    tx.commit().await?;
                    Ok(value)
                }
                .instrument(span)
                .await;
                match result {
                    Err(e) if policy.retries(attempt, &e) => {
                        tracing::debug!(attempt, error = %e, "retrying the transaction");
                        socket::sleep(policy.delay(attempt)).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy =
            RetryPolicy::new(10).backoff(Duration::from_millis(10), Duration::from_millis(50));
        for _ in 0..50 {
            let d1 = policy.delay(1);
            assert!(
                d1 >= Duration::from_millis(5) && d1 <= Duration::from_millis(10),
                "{d1:?}"
            );
            let d2 = policy.delay(2);
            assert!(
                d2 >= Duration::from_millis(10) && d2 <= Duration::from_millis(20),
                "{d2:?}"
            );
            let d9 = policy.delay(9);
            assert!(
                d9 >= Duration::from_millis(25) && d9 <= Duration::from_millis(50),
                "{d9:?}"
            );
        }
        assert!(policy.delay(u32::MAX) <= Duration::from_millis(50));
        assert_eq!(RetryPolicy::new(0).get_max_attempts(), 1);
        assert_eq!(RetryPolicy::default().begin_sql(), "BEGIN");
        assert_eq!(
            RetryPolicy::default()
                .isolation(IsolationLevel::Serializable)
                .begin_sql(),
            "BEGIN ISOLATION LEVEL SERIALIZABLE"
        );
    }
}
