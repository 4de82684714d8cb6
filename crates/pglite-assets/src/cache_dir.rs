// Shared between `build.rs` and the library (both pull it in with `include!`),
// so that the build script and the running program agree on where the
// cache lives. Keep this file free of inner attributes and `use` items.

/// Resolves the pglite cache directory from the environment.
///
/// Order: `PGLITE_CACHE_DIR`; else `$XDG_CACHE_HOME/pglite` (only when that
/// variable holds an absolute path, as the XDG spec asks); else
/// `$HOME/.cache/pglite`; else `<system temp dir>/pglite-cache`.
/// Empty variables count as unset.
fn resolve_cache_dir() -> std::path::PathBuf {
    fn non_empty(name: &str) -> Option<std::path::PathBuf> {
        std::env::var_os(name)
            .filter(|value| !value.is_empty())
            .map(std::path::PathBuf::from)
    }
    if let Some(dir) = non_empty("PGLITE_CACHE_DIR") {
        return dir;
    }
    if let Some(xdg) = non_empty("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("pglite");
    }
    if let Some(home) = non_empty("HOME") {
        return home.join(".cache").join("pglite");
    }
    std::env::temp_dir().join("pglite-cache")
}
