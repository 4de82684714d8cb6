//! Real PostgreSQL 17 inside your Rust process.
//!
//! [`Pglite`] runs PostgreSQL (the PGlite WASI build) in Wasmtime, in-process: no
//! server, no Docker, no threads or sockets. Open a directory for a persistent
//! database, or take a temporary one (a copy of a prepared template cluster, deleted
//! on drop) for tests.
//!
//! ```no_run
//! use pglite::Pglite;
//!
//! # fn main() -> Result<(), pglite::Error> {
//! let mut db = Pglite::temporary()?;
//! db.batch_execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")?;
//! db.execute("INSERT INTO items (name) VALUES ($1)", &[&"apple"])?;
//! let row = db.query_one("SELECT id, name FROM items WHERE name = $1", &[&"apple"])?;
//! let id: i32 = row.get("id");
//! assert_eq!(id, 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod builder;
mod connection;
mod database;
mod transport;

pub use builder::PgliteBuilder;
pub use connection::{AnyTransport, Connection, connect};
pub use database::Pglite;
pub use pglite_client::{
    Column, DbError, Error, ErrorKind, ErrorPosition, FromSql, Interval, Json, Notification, Row,
    SimpleColumn, SimpleResult, SqlState, Statement, ToSql, ToStatement, TransactionStatus, Type,
};
pub use pglite_engine::EngineError;
pub use transport::EngineTransport;

/// The wire-protocol server: one embedded database, many PostgreSQL clients
/// (see docs/SERVER.md).
#[cfg(feature = "server")]
pub use pglite_server::{RunningServer, Server, ServerBuilder, ServerError, ServerHandle};

/// A transaction on a [`Pglite`] database; see [`Pglite::transaction`].
pub type Transaction<'a> = pglite_client::Transaction<'a, EngineTransport>;

/// Re-exported client crate, for its full API (types, transports to real servers).
pub use pglite_client as client;

/// Wrap an engine failure into the client's error type.
pub(crate) fn engine_error(e: EngineError) -> Error {
    let message = match e {
        EngineError::InUse(_) | EngineError::Cluster { .. } | EngineError::Asset(_) => {
            "cannot open the database"
        }
        _ => "the embedded engine failed",
    };
    Error::with_source(ErrorKind::Engine, message, e)
}
