//! Transactions and savepoints with rollback on drop.

use std::ops::{Deref, DerefMut};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::transport::Transport;

/// A transaction block (`BEGIN`) or, when nested, a savepoint.
///
/// Dereferences to the [`Client`], so `query`, `execute`, `copy_in`, ... run inside it.
/// End it with [`commit`](Transaction::commit) or [`rollback`](Transaction::rollback);
/// dropping it without either rolls it back.
#[derive(Debug)]
pub struct Transaction<'a, T: Transport> {
    client: &'a mut Client<T>,
    savepoint: Option<String>,
    depth: u32,
    done: bool,
}

impl<T: Transport> Client<T> {
    /// Starts a transaction block (`BEGIN`).
    pub fn transaction(&mut self) -> Result<Transaction<'_, T>, Error> {
        self.begin_with("BEGIN")
    }

    /// Starts a transaction block with `begin` (`BEGIN ISOLATION LEVEL ...`).
    pub(crate) fn begin_with(&mut self, begin: &str) -> Result<Transaction<'_, T>, Error> {
        self.batch_execute(begin)?;
        Ok(Transaction {
            client: self,
            savepoint: None,
            depth: 0,
            done: false,
        })
    }
}

impl<'a, T: Transport> Transaction<'a, T> {
    /// Starts a nested transaction: a `SAVEPOINT` that commits with `RELEASE` and rolls
    /// back with `ROLLBACK TO SAVEPOINT`.
    pub fn transaction(&mut self) -> Result<Transaction<'_, T>, Error> {
        let depth = self.depth + 1;
        let name = format!("pglite_sp_{depth}");
        self.client.batch_execute(&format!("SAVEPOINT {name}"))?;
        Ok(Transaction {
            client: &mut *self.client,
            savepoint: Some(name),
            depth,
            done: false,
        })
    }

    /// Commits the transaction (or releases the savepoint).
    ///
    /// If the transaction had failed, PostgreSQL answers `COMMIT` with a rollback;
    /// that is reported as an error of kind [`ErrorKind::RolledBack`].
    pub fn commit(mut self) -> Result<(), Error> {
        self.done = true;
        match &self.savepoint {
            Some(name) => self
                .client
                .batch_execute(&format!("RELEASE SAVEPOINT {name}")),
            None => {
                let tag = self.client.command("COMMIT")?;
                if tag == "ROLLBACK" {
                    return Err(Error::new(
                        ErrorKind::RolledBack,
                        "the transaction had failed, so COMMIT rolled it back",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Rolls the transaction (or back to the savepoint) back.
    pub fn rollback(mut self) -> Result<(), Error> {
        self.done = true;
        self.rollback_inner()
    }

    fn rollback_inner(&mut self) -> Result<(), Error> {
        match &self.savepoint {
            Some(name) => self.client.batch_execute(&format!(
                "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
            )),
            None => self.client.batch_execute("ROLLBACK"),
        }
    }

    /// The client the transaction runs on.
    pub fn client(&mut self) -> &mut Client<T> {
        self.client
    }
}

impl<T: Transport> Deref for Transaction<'_, T> {
    type Target = Client<T>;

    fn deref(&self) -> &Client<T> {
        self.client
    }
}

impl<T: Transport> DerefMut for Transaction<'_, T> {
    fn deref_mut(&mut self) -> &mut Client<T> {
        self.client
    }
}

impl<T: Transport> Drop for Transaction<'_, T> {
    fn drop(&mut self) {
        if self.done
            || self.client.is_closed()
            || self.client.transaction_status() == TransactionStatus::Idle
        {
            return;
        }
        let _ = self.rollback_inner();
    }
}
