//! A blocking PostgreSQL client for pglite: the wire-protocol core shared by the
//! embedded database (`pglite::Pglite`, which feeds it an in-process engine) and by
//! connections to real servers over TCP or Unix sockets.
//!
//! The blocking [`Client`] speaks the v3 protocol over any [`Transport`] — a byte pipe
//! with `send` and `receive`; it spawns no threads and needs no runtime.
//! `AsyncClient` runs the same protocol core on async sockets: tokio TCP/TLS/Unix
//! sockets (feature `tokio`), or wasi:sockets TCP driven by `wstd` on wasm32-wasip2
//! (feature `wstd`); both features are on by default and each is a no-op on the
//! other's targets. Both connect from libpq connection strings ([`Config`]) — with TLS
//! (feature `tls`, not on WASI: rustls, libpq's `sslmode` rules, SCRAM-SHA-256-PLUS),
//! cancel requests ([`CancelToken`]), automatic reconnection with remembered settings
//! ([`Client::set_param`]) and [`Error::class`] for retry decisions; [`Target`] also
//! parses `pglite://` URLs for the embedded engine. MD5 authentication needs the
//! `md5` feature.
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
//!
//! # Beyond request and reply
//! Both drivers stream rows as they arrive ([`Client::query_raw`],
//! [`Client::simple_query_raw`]), read cursors in batches ([`Client::cursor`]), send
//! pipelined batches in one round trip ([`Client::pipeline`]), retry transactions on
//! serialization failures and deadlocks ([`Client::with_transaction`],
//! [`RetryPolicy`]) and copy rows in PostgreSQL's binary COPY format
//! ([`Client::copy_in_binary`], [`Client::copy_out_binary`]). Operations are traced
//! with `tracing` spans (statement text truncated, parameter values never recorded).
#![deny(missing_docs)]

#[cfg(pglite_async)]
mod async_client;
#[cfg(pglite_async)]
mod async_connect;
#[cfg(pglite_async)]
mod async_stream;
mod auth;
mod binary_copy;
mod cache;
mod cancel;
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
mod pipeline;
#[cfg(pglite_pool)]
mod pool;
mod protocol;
mod reconnect;
mod retry;
mod row;
mod rows;
mod simple;
mod sqlstate;
mod statement;
mod stream;
mod text;
#[cfg(pglite_tls)]
mod tls;
mod transaction;
mod transport;
mod typeinfo;
mod types;

#[cfg(pglite_async)]
pub use crate::async_client::{AsyncClient, AsyncTransaction};
#[cfg(pglite_async)]
pub use crate::async_stream::{AsyncRowStream, AsyncSimpleQueryStream};
pub use crate::auth::{AuthMethod, ChannelBinding, RequireAuth};
#[cfg(pglite_async)]
pub use crate::binary_copy::{AsyncBinaryCopyInWriter, AsyncBinaryCopyOutReader};
pub use crate::binary_copy::{
    BinaryCopyDecoder, BinaryCopyEncoder, BinaryCopyInWriter, BinaryCopyOutReader, BinaryRow,
};
pub use crate::cancel::CancelToken;
pub use crate::client::Client;
pub use crate::config::StartupConfig;
pub use crate::connect::SocketTransport;
pub use crate::connstr::{
    Config, DEFAULT_PORT, EmbeddedConfig, EmbeddedLocation, Host, SslMode, Target,
};
pub use crate::error::{DbError, Error, ErrorClass, ErrorKind, ErrorPosition};
pub use crate::notify::Notification;
#[cfg(pglite_async)]
pub use crate::pipeline::AsyncPipeline;
pub use crate::pipeline::{BatchOutcome, BatchResult, Pipeline};
#[cfg(pglite_pool)]
pub use crate::pool::{Pool, PoolBuilder, PoolStatus, PooledClient};
pub use crate::protocol::TransactionStatus;
#[cfg(pglite_async)]
pub use crate::retry::TransactionFuture;
pub use crate::retry::{IsolationLevel, RetryPolicy};
pub use crate::row::{Row, RowIndex, SimpleColumn, SimpleResult};
pub use crate::simple::{SimpleQueryMessage, SimpleRow};
pub use crate::sqlstate::SqlState;
pub use crate::statement::{Column, Statement, StatementSource, ToStatement};
pub use crate::stream::{RowStream, SimpleQueryStream};
pub use crate::transaction::Transaction;
#[cfg(pglite_tls)]
pub use crate::transport::TlsTransport;
#[cfg(unix)]
pub use crate::transport::UnixTransport;
pub use crate::transport::{TcpTransport, Transport};
pub use crate::types::Interval;

pub use postgres_types::{FromSql, IsNull, Json, Kind, Oid, ToSql, Type};

/// Re-exported rustls (feature `tls`), whose connection type [`TlsTransport`] exposes.
#[cfg(pglite_tls)]
pub use rustls;

/// Re-exported tokio (feature `tokio`), whose I/O traits appear in [`AsyncClient`]'s API.
#[cfg(pglite_tokio)]
pub use tokio;

/// Re-exported wstd (feature `wstd`, wasm32-wasip2), whose runtime drives `AsyncClient`
/// there and whose I/O traits appear in its COPY methods.
#[cfg(pglite_wstd)]
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
        send_sync::<CancelToken>();
        send::<Client<SocketTransport>>();
        send::<RowStream<'static, TcpTransport>>();
        send::<SimpleQueryStream<'static, TcpTransport>>();
        send::<Pipeline<'static, TcpTransport>>();
        send::<BinaryCopyInWriter<'static, TcpTransport>>();
        send::<BinaryCopyOutReader<'static, TcpTransport>>();
        send_sync::<SimpleRow>();
        send_sync::<BinaryRow>();
        send_sync::<BatchOutcome>();
        send_sync::<RetryPolicy>();
        #[cfg(pglite_async)]
        {
            send::<AsyncRowStream<'static>>();
            send::<AsyncSimpleQueryStream<'static>>();
            send::<AsyncPipeline<'static>>();
            send::<AsyncBinaryCopyInWriter<'static>>();
            send::<AsyncBinaryCopyOutReader<'static>>();
        }
    }
}
