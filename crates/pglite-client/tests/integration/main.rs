//! The client's integration suite against native PostgreSQL (Debian's server, started
//! once for this binary by `tests/support`). The same modules also run against
//! `pglite::Server` (`tests/served`) and the in-process engine (`tests/embedded`);
//! `tests/common` says what each binary defines, docs/CLIENT.md which modules run where.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

use pglite_client::{Client, TcpTransport, Transport};

pub use common::Backend;

/// This binary's backend.
pub const BACKEND: Backend = Backend::Native;

/// The transport of this backend's clients.
pub type Raw = TcpTransport;

/// A trust-authenticated client as `postgres` on database `postgres`.
pub fn connect() -> Client<Raw> {
    support::connect()
}

/// The same over `wrap(transport)`.
pub fn connect_with<W: Transport>(wrap: impl FnOnce(Raw) -> W) -> Client<W> {
    let server = support::server();
    let transport = TcpTransport::connect(server.addr()).expect("TCP connect");
    Client::connect(wrap(transport), &server.config("postgres")).expect("connect as postgres")
}

/// The URL `AsyncClient` connects to, with `application_name=async-tests`.
#[cfg(feature = "tokio")]
pub fn async_url() -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/postgres?application_name=async-tests",
        support::server().port
    )
}

/// The Unix socket directory and port.
pub fn unix_socket() -> (std::path::PathBuf, u16) {
    let server = support::server();
    (server.dir.clone(), server.port)
}

// Modules for every backend.
mod binary_copy;
mod cache;
mod copy;
mod errors;
mod fuzz_regressions;
mod json;
mod notify;
mod pipeline;
mod query;
mod retry;
mod split;
mod stream;
mod transactions;
mod types;

// Modules for servers reached over a socket (native and `pglite::Server`).
#[cfg(feature = "tokio")]
mod async_client;
#[cfg(feature = "tokio")]
mod async_query;
mod sockets;

// Native only.
mod auth;
mod separate_backends;
