//! The client's integration suite (the modules of `tests/integration`) against the
//! in-process engine: every client gets a fresh temporary database (a copy of the
//! template cluster) and runs PostgreSQL on the test's own thread. Modules that need a
//! socket or a second session at the same time are not included (see docs/CLIENT.md).

#[path = "../common/mod.rs"]
mod common;

use std::ops::{Deref, DerefMut};

use pglite::EngineTransport;
use pglite_client::{Client, StartupConfig, Transport};
use pglite_engine::{Template, WasmEngine, WasmEngineOptions};

pub use common::Backend;

/// This binary's backend.
pub const BACKEND: Backend = Backend::Embedded;

/// The transport of this backend's clients.
pub type Raw = EngineTransport;

/// A client on a fresh temporary database, as `pglite::Pglite` opens it (the session's
/// settings are put back after `RESET`/`DISCARD ALL`); dropping it shuts the engine
/// down and deletes the database.
pub fn connect() -> Client<Raw> {
    pglite::Pglite::temporary()
        .unwrap_or_else(|e| panic!("cannot open a temporary database: {e}"))
        .into_client()
}

/// A client over `wrap(transport)`, the transport made from an engine on a fresh
/// temporary database (`EngineTransport::new`: without the facade's restoring of
/// session settings, which none of the tests that wrap the transport touch).
pub fn connect_with<W: Transport>(wrap: impl FnOnce(Raw) -> W) -> Embedded<W> {
    let template = Template::shared().expect("the template cluster");
    let dir = tempfile::Builder::new()
        .prefix("pglite-client-embedded-")
        .tempdir_in(pglite_engine::scratch_dir())
        .expect("a temporary directory");
    template.clone_into(dir.path()).expect("copy the template");
    let engine =
        WasmEngine::open(dir.path(), &WasmEngineOptions::default()).expect("start the engine");
    let startup =
        StartupConfig::new("postgres", "postgres").param("application_name", "pglite-client-tests");
    let client = Client::connect(wrap(EngineTransport::new(engine)), &startup)
        .expect("connect to the engine");
    Embedded { client, _dir: dir }
}

/// A client whose engine runs on a temporary directory it owns.
pub struct Embedded<W: Transport> {
    /// Declared first: the engine shuts down before the directory is deleted.
    client: Client<W>,
    _dir: tempfile::TempDir,
}

impl<W: Transport> Deref for Embedded<W> {
    type Target = Client<W>;

    fn deref(&self) -> &Client<W> {
        &self.client
    }
}

impl<W: Transport> DerefMut for Embedded<W> {
    fn deref_mut(&mut self) -> &mut Client<W> {
        &mut self.client
    }
}

// Modules for every backend.
#[path = "../integration/binary_copy.rs"]
mod binary_copy;
#[path = "../integration/cache.rs"]
mod cache;
#[path = "../integration/copy.rs"]
mod copy;
#[path = "../integration/errors.rs"]
mod errors;
#[path = "../integration/fuzz_regressions.rs"]
mod fuzz_regressions;
#[path = "../integration/json.rs"]
mod json;
#[path = "../integration/notify.rs"]
mod notify;
#[path = "../integration/pipeline.rs"]
mod pipeline;
#[path = "../integration/query.rs"]
mod query;
#[path = "../integration/retry.rs"]
mod retry;
#[path = "../integration/split.rs"]
mod split;
#[path = "../integration/stream.rs"]
mod stream;
#[path = "../integration/transactions.rs"]
mod transactions;
#[path = "../integration/types.rs"]
mod types;
