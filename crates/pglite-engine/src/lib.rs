//! The pglite engine boundary: PostgreSQL protocol bytes in, bytes out.
//!
//! [`Engine`] is the stable interface every backend implements. [`WasmEngine`] runs
//! PostgreSQL 17 (the PGlite WASI build) inside Wasmtime on one data directory; a
//! native engine loaded as a plugin can later sit behind the same trait. This crate
//! knows nothing of rows or types.
#![deny(missing_docs)]

mod artifact;
mod compile;
mod datadir;
mod error;
mod guest;
pub mod module;
mod pool;
mod reply_file;
mod template;
mod wasi_overrides;
mod wasm;
pub mod wire;

pub use artifact::MAX_WASM_STACK;
pub use compile::{
    CompiledRuntime, ModuleSource, NO_BUILD_ARTIFACT_ENV, build_artifact, build_artifact_record,
};
pub use datadir::{DataDirLock, scratch_dir};
pub use error::EngineError;
pub use guest::GUEST_PGDATA;
pub use pool::TemporaryDatabase;
pub use template::Template;
pub use wasm::{SESSION_DEFAULTS_SQL, SUPERUSER, WasmEngine, WasmEngineOptions};

/// A PostgreSQL backend reached by exchanging protocol bytes.
///
/// One engine serves one session at a time. `exchange` hands the backend a batch of
/// complete frontend messages and appends everything the backend answered to `out`.
pub trait Engine {
    /// Send `input` (whole frontend messages) and append the backend's reply to `out`.
    fn exchange(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError>;
}
