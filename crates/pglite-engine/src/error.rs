//! Errors of the engine layer.

use std::path::PathBuf;

/// Everything that can go wrong below the protocol: files, the module, the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The runtime asset could not be installed.
    #[error(transparent)]
    Asset(#[from] pglite_assets::AssetError),
    /// The WebAssembly module is not the one this build knows how to host.
    #[error("PGlite module: {0}")]
    Module(String),
    /// Wasmtime failed to compile or instantiate the module.
    #[error("wasmtime: {0:#}")]
    Wasmtime(wasmtime::Error),
    /// The guest trapped; the engine refuses further use.
    #[error(
        "the PostgreSQL engine crashed ({0}); committed data is safe, reopen the database to continue"
    )]
    Trapped(String),
    /// The engine was used after it crashed or was shut down.
    #[error("the PostgreSQL engine is no longer usable: {0}")]
    Unusable(String),
    /// Another engine (in this or another process) holds the data directory.
    #[error(
        "data directory {} is in use by another pglite process or handle; close it first",
        .0.display()
    )]
    InUse(PathBuf),
    /// Creating or starting the cluster failed.
    #[error("PostgreSQL cluster at {}: {message}", path.display())]
    Cluster {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// An I/O error on a host path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<wasmtime::Error> for EngineError {
    fn from(e: wasmtime::Error) -> Self {
        EngineError::Wasmtime(e)
    }
}

impl From<crate::module::ModuleError> for EngineError {
    fn from(e: crate::module::ModuleError) -> Self {
        EngineError::Module(e.0)
    }
}
