// Shared between `build.rs` and the library (both pull it in with `include!`).
// These pins are the single source of truth for which runtime is accepted.

/// Version of the PGlite WASI runtime this crate embeds: PostgreSQL 17.5,
/// build `20261006c`.
pub const RUNTIME_VERSION: &str = "17.5.20261006c";

/// SHA-256 (lower-case hex) of the embedded runtime archive
/// `pglite-17.5.20261006c.tar.xz`. The build script refuses any other archive.
pub const ARCHIVE_SHA256: &str = "e04abc5c3153fe8ca0411756d59863c241d5463b848ba3dc2434aa39b7a63408";

/// SHA-256 (lower-case hex) of `pglite/bin/pglite.wasi` inside the archive.
/// An installed module with any other hash is an error, never used.
pub const MODULE_SHA256: &str = "e9eaec4575b7bd51c18a78eb6b8f38c7b876bd92533d9da0534d06c73096f502";
