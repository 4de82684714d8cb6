//! A blocking PostgreSQL client for pglite: the wire-protocol core shared by the
//! embedded database (`pglite::Pglite`, which feeds it an in-process engine) and by
//! connections to real servers over TCP or Unix sockets.
//!
//! The blocking [`Client`] speaks the v3 protocol over any [`Transport`] — a byte pipe
//! with `send` and `receive`; it spawns no threads and needs no runtime.
//! `AsyncClient` runs the same protocol core on async sockets: tokio TCP/Unix sockets
//! (feature `tokio`), or wasi:sockets TCP driven by `wstd` on wasm32-wasip2 (feature
//! `wstd`); both features are on by default and each is a no-op on the other's
//! targets. Both connect from libpq connection strings ([`Config`]); [`Target`] also
//! parses `pglite://` URLs for the embedded engine.
//!
//! ```no_run
//! use pglite_client::{Client, StartupConfig, TcpTransport};
//!
//! # fn main() -> Result<(), pglite_client::Error> {
//! let transport = TcpTransport::connect("127.0.0.1:5432")?;
//! let mut client = Client::connect(transport, &StartupConfig::new("postgres", "postgres"))?;
//! client.batch_execute("CREATE TEMP TABLE t (id int, name text)")?;
//! client.execute("INSERT INTO t VALUES ($1, $2)", &[&1i32, &"one"])?;
//! let row = client.query_one("SELECT id, name FROM t WHERE id = $1", &[&1i32])?;
//! let name: &str = row.get("name");
//! assert_eq!(name, "one");
//! # Ok(()) }
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), pglite_client::Error> {
//! let mut client = pglite_client::Client::connect_url("host=/var/run/postgresql user=postgres")?;
//! client.batch_execute("SELECT 1")?;
//! # Ok(()) }
//! ```
//!
//! # Types
//! Results of these types arrive in binary and convert with [`FromSql`] (and to JSON
//! with [`Row::to_json`]): `bool`, `int2/4/8`, `oid`, `float4/8`, `numeric`
//! ([`rust_decimal::Decimal`]), `text`, `varchar`, `bpchar`, `name`, `bytea`, `json`,
//! `jsonb` (`serde_json::Value`, [`Json`]), `uuid`, `date`, `time`, `timestamp`,
//! `timestamptz` (chrono), `interval` ([`Interval`]) and one-dimensional arrays of
//! them (`Vec<T>`). Values of any other type arrive as text and read as
//! `String`/`&str`. Parameters use [`ToSql`]; a text value (`&str`, `String`) given for
//! a parameter of another type is sent as text for the server to parse.
#![deny(missing_docs)]

#[cfg(any(
    all(feature = "tokio", not(target_os = "wasi")),
    all(feature = "wstd", target_os = "wasi", target_env = "p2")
))]
mod async_client;
mod cache;
mod client;
mod config;
mod connect;
mod connstr;
mod copy;
mod core;
mod error;
mod io;
mod json;
mod notify;
mod protocol;
mod row;
mod sqlstate;
mod statement;
mod text;
mod transaction;
mod transport;
mod typeinfo;
mod types;

#[cfg(any(
    all(feature = "tokio", not(target_os = "wasi")),
    all(feature = "wstd", target_os = "wasi", target_env = "p2")
))]
pub use crate::async_client::{AsyncClient, AsyncTransaction};
pub use crate::client::Client;
pub use crate::config::StartupConfig;
pub use crate::connect::SocketTransport;
pub use crate::connstr::{
    Config, DEFAULT_PORT, EmbeddedConfig, EmbeddedLocation, Host, SslMode, Target,
};
pub use crate::error::{DbError, Error, ErrorKind, ErrorPosition};
pub use crate::notify::Notification;
pub use crate::protocol::TransactionStatus;
pub use crate::row::{Row, RowIndex, SimpleColumn, SimpleResult};
pub use crate::sqlstate::SqlState;
pub use crate::statement::{Column, Statement, StatementSource, ToStatement};
pub use crate::transaction::Transaction;
#[cfg(unix)]
pub use crate::transport::UnixTransport;
pub use crate::transport::{TcpTransport, Transport};
pub use crate::types::Interval;

pub use postgres_types::{FromSql, IsNull, Json, Kind, Oid, ToSql, Type};

/// Re-exported tokio (feature `tokio`), whose I/O traits appear in [`AsyncClient`]'s API.
#[cfg(all(feature = "tokio", not(target_os = "wasi")))]
pub use tokio;

/// Re-exported wstd (feature `wstd`, wasm32-wasip2), whose runtime drives `AsyncClient`
/// there and whose I/O traits appear in its COPY methods.
#[cfg(all(feature = "wstd", target_os = "wasi", target_env = "p2"))]
pub use wstd;

/// Re-exported dependencies whose types appear in this crate's API.
pub use {
    bytes, chrono, fallible_iterator, postgres_protocol, postgres_types, rust_decimal, serde_json,
    uuid,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn thread_safety() {
        send::<Client<TcpTransport>>();
        send_sync::<Row>();
        send_sync::<Statement>();
        send_sync::<Error>();
        send_sync::<SimpleResult>();
        send_sync::<Notification>();
    }
}
