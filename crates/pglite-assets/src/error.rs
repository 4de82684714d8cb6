use std::io;
use std::path::PathBuf;

/// Why the runtime could not be installed or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    /// A file-system operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"create directory"`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The embedded archive does not have the pinned SHA-256 (the crate was
    /// built from a different archive than it was written for).
    #[error(
        "the embedded runtime archive has SHA-256 {actual}, expected {expected}; \
         rebuild pglite-assets with the right archive (see PGLITE_RUNTIME_ARCHIVE)"
    )]
    ArchiveHashMismatch {
        /// The pinned hash.
        expected: &'static str,
        /// The hash of the embedded bytes.
        actual: String,
    },

    /// The embedded archive could not be decompressed or read as a tar file.
    #[error("the embedded runtime archive is unreadable: {reason}")]
    BadArchive {
        /// What went wrong while decoding it.
        reason: String,
    },

    /// An archive entry would land outside the install directory, or is of
    /// a kind (link, device, ...) this crate does not unpack.
    #[error("refusing runtime archive entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The archive lacks a file the runtime needs.
    #[error("the runtime archive did not provide {}", path.display())]
    MissingFile {
        /// The host path where the file should be.
        path: PathBuf,
    },

    /// `pglite.wasi` does not have the pinned SHA-256. It is never used in
    /// that case: the engine's memory-layout facts hold for one module only.
    #[error(
        "{} has SHA-256 {actual}, expected {expected}; refusing to use a different PGlite module",
        path.display()
    )]
    ModuleHashMismatch {
        /// The module's path.
        path: PathBuf,
        /// The pinned hash.
        expected: &'static str,
        /// The hash of the file on disk.
        actual: String,
    },

    /// An installed runtime tree does not match what was unpacked.
    #[error("the runtime installed at {} is damaged: {reason}", dir.display())]
    Corrupt {
        /// The install directory.
        dir: PathBuf,
        /// The first difference found.
        reason: String,
    },
}

impl AssetError {
    /// Builds an [`AssetError::Io`] from its parts.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        AssetError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
