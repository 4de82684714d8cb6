//! What the three binaries of the client's integration suite share: which backend a
//! binary runs against, and transports that wrap whichever transport it uses.
//!
//! The test modules in `tests/integration/` are compiled into three binaries:
//! `integration` (native PostgreSQL), `served` (`pglite::Server`) and `embedded` (the
//! in-process engine). Each binary's `main.rs` defines what the modules call:
//!
//! - `BACKEND: Backend`;
//! - `type Raw`: the transport a client of this backend uses (`TcpTransport`,
//!   `EngineTransport`);
//! - `connect()`: a trust-authenticated client as `postgres` on database `postgres`;
//! - `connect_with(wrap)`: the same over `wrap(raw transport)` (round-trip counting,
//!   replies cut into pieces, checks of what is written before a read);
//! - for the socket backends, `async_url()`: the URL `AsyncClient` connects to, and
//!   `unix_socket()`: the Unix socket directory and port.

#![allow(dead_code)]

use bytes::BytesMut;
use pglite_client::{Client, Error, Transport};

/// The server a test binary runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Debian's PostgreSQL, started by `pglite-testkit`: one backend process per
    /// connection.
    Native,
    /// `pglite::Server` on a temporary database: many connections share the engine's
    /// single session (docs/SERVER.md says what each keeps to itself and what leaks).
    Served,
    /// The engine in the test process, a fresh temporary database per client.
    Embedded,
}

impl Backend {
    /// The prefix the backend gives the names of the statements and portals a client
    /// prepares: `pglite::Server` renames them per connection to `c<connection>.<name>`
    /// (docs/SERVER.md), its connection number being the process id it reports in
    /// `BackendKeyData` minus 10,000. Natively and in the engine the names are the
    /// client's own. `backend_key` is the client's `backend_key()`.
    pub fn statement_prefix(self, backend_key: Option<(i32, i32)>) -> String {
        match self {
            Backend::Served => {
                let pid = backend_key.expect("BackendKeyData").0;
                format!("c{}.", pid - 10_000)
            }
            Backend::Native | Backend::Embedded => String::new(),
        }
    }
}

/// The names (as the client chose them) of the statements `client` has prepared on
/// the server, sorted; read with the simple protocol, which leaves the statement cache
/// alone. On `pglite::Server` the statements of other connections, visible in the one
/// session's `pg_prepared_statements`, are left out.
pub fn prepared_statements<T: Transport>(backend: Backend, client: &mut Client<T>) -> Vec<String> {
    let prefix = backend.statement_prefix(client.backend_key());
    let sql = format!(
        "SELECT substr(name, {}) FROM pg_prepared_statements \
         WHERE starts_with(name, '{prefix}') ORDER BY name",
        prefix.len() + 1
    );
    let results = client.simple_query(&sql).unwrap();
    results[0]
        .rows
        .iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
}

/// A transport that counts round trips (a `receive` that follows a `send`: the client
/// turning from writing to waiting for the server) and writes.
pub struct CountingTransport<T> {
    inner: T,
    sent: bool,
    /// Round trips so far.
    pub round_trips: usize,
    /// `send` calls so far.
    pub sends: usize,
}

impl<T> CountingTransport<T> {
    /// Count what goes through `inner`.
    pub fn new(inner: T) -> Self {
        CountingTransport {
            inner,
            sent: false,
            round_trips: 0,
            sends: 0,
        }
    }
}

impl<T: Transport> Transport for CountingTransport<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sent = true;
        self.sends += 1;
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        if std::mem::take(&mut self.sent) {
            self.round_trips += 1;
        }
        self.inner.receive(buf)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }
}
