//! The PGlite WASI runtime (PostgreSQL 17.5 built for WASI preview 1),
//! embedded in this crate and installed on disk on demand.
//!
//! The runtime is a `.tar.xz` archive of a `tmp/pglite/{bin,lib,share,password}`
//! tree. The build script finds it (see `docs/ASSETS.md`), checks its SHA-256
//! against [`ARCHIVE_SHA256`] and embeds it; [`archive`] returns those bytes.
//!
//! [`install`] (or [`install_in`]) unpacks the archive once into a versioned
//! directory, checks that `pglite/bin/pglite.wasi` hashes to [`MODULE_SHA256`],
//! and marks the directory complete. Later calls only read that marker and
//! `stat` the installed files, which takes well under a millisecond.
//!
//! ```no_run
//! let runtime = pglite_assets::install()?;
//! // Preopen `runtime.root()` as the guest's `/tmp`; PostgreSQL's prefix is
//! // then `/tmp/pglite`.
//! let wasm = std::fs::read(runtime.module_path())?;
//! # let _ = wasm;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

mod error;
mod install;

pub use error::AssetError;
pub use install::{Runtime, install, install_in};

include!("pins.rs");
include!("cache_dir.rs");

/// The embedded archive, verified by the build script.
static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pglite-runtime.tar.xz"));

/// Returns the embedded runtime archive: the bytes of
/// `pglite-17.5.20261006c.tar.xz`, whose SHA-256 is [`ARCHIVE_SHA256`].
pub fn archive() -> &'static [u8] {
    ARCHIVE
}

/// Returns the pglite cache directory.
///
/// `PGLITE_CACHE_DIR` if set, else `$XDG_CACHE_HOME/pglite` (when that is an
/// absolute path), else `$HOME/.cache/pglite`, else `pglite-cache` in the
/// system's temporary directory. The build script uses the same rule for
/// its copy of the archive (`<cache dir>/assets/`); [`install`] puts the
/// unpacked runtime under `<cache dir>/runtime/`.
pub fn cache_dir() -> PathBuf {
    resolve_cache_dir()
}
