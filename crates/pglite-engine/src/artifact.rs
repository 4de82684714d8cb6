//! What the build script and the engine must agree on to share compiled code: the
//! Wasmtime configuration, the preparation of the module (the load-time rewrite), and
//! the key that says which engine a compiled artifact fits.
//!
//! The library compiles this file as `crate::artifact` and the build script as its own
//! `artifact` module (`#[path]`), so both sides run exactly this code. It may use only
//! `wasmtime`, `sha2`, `hex` and `crate::module`.
//!
//! An artifact is accepted only when its *record* (a small text file next to it) starts
//! with the key the running engine computes — module SHA-256, rewrite version, stack
//! sizes, Wasmtime's compatibility hash (its version, target, CPU flags and
//! configuration) — and the artifact's size and SHA-256 equal those in the record.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, OptLevel};

use crate::module::{
    DEFAULT_STACK_PAGES, ModuleError, REWRITE_VERSION, patch_settings, rewrite_module,
};

/// Deepest native stack that guest code may use before Wasmtime traps. It must stay
/// below the relocated guest stack (8 MiB) so that deep recursion traps cleanly rather
/// than running off the guest stack into the heap, and below the smallest host thread
/// stack we run on (Rust's 2 MiB default for spawned threads).
pub const MAX_WASM_STACK: usize = 1 << 20;

/// First line of a key; bump when the key's format or meaning changes.
const KEY_HEADER: &str = "pglite compiled-module key 1";

/// The Wasmtime configuration every compiled module is made with, at build time and at
/// run time. Settings that do not change the compiled code (the profiler) are added by
/// the caller.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_exceptions(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.parallel_compilation(true);
    // PostgreSQL calls through function pointers everywhere (fmgr, executor nodes,
    // memory contexts); with lazily initialised tables every `call_indirect` first
    // checks whether its table entry was filled in yet.
    config.table_lazy_init(false);
    config
}

/// The module as the engine runs it: the stack moved out of the transfer buffer, the
/// `path_open` hook added and `shared_buffers` lowered (see [`crate::module`]).
pub fn prepare_module(wasm: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut prepared = rewrite_module(wasm, DEFAULT_STACK_PAGES)?;
    patch_settings(&mut prepared)?;
    Ok(prepared)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where the record of the artifact at `artifact` lives: `<artifact>.record`.
pub fn record_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".record");
    PathBuf::from(name)
}

/// Which engine and which module a compiled artifact was made for, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactKey {
    text: String,
}

impl ArtifactKey {
    /// The key for compiling the module whose (unrewritten) SHA-256 is `module_sha256`
    /// with `engine`.
    pub fn new(engine: &Engine, module_sha256: &str) -> ArtifactKey {
        let mut hasher = Sha256Hasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let wasmtime = hex::encode(hasher.0.finalize());
        ArtifactKey {
            text: format!(
                "{KEY_HEADER}\nmodule-sha256 {module_sha256}\nrewrite-version {REWRITE_VERSION}\n\
                 stack-pages {DEFAULT_STACK_PAGES}\nmax-wasm-stack {MAX_WASM_STACK}\n\
                 wasmtime-compatibility {wasmtime}\n"
            ),
        }
    }

    /// The key as text, one `name value` pair a line.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// File name of the artifact in the module cache:
    /// `pglite-<module hash, 16 digits>-<key hash, 16 digits>.cwasm`.
    pub fn cache_file_name(&self) -> String {
        let module = self
            .text
            .lines()
            .find_map(|line| line.strip_prefix("module-sha256 "))
            .unwrap_or("");
        format!(
            "pglite-{}-{}.cwasm",
            &module[..module.len().min(16)],
            &sha256_hex(self.text.as_bytes())[..16]
        )
    }
}

/// What the record next to a compiled artifact says about it, after its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// SHA-256 of the prepared (rewritten) module that was compiled.
    pub prepared_sha256: String,
    /// Size of the artifact in bytes.
    pub artifact_size: u64,
    /// SHA-256 of the artifact.
    pub artifact_sha256: String,
}

impl ArtifactRecord {
    /// The record file's text for an artifact made under `key`.
    // Only the build script writes records; the library reads them.
    #[allow(dead_code)]
    pub fn render(&self, key: &ArtifactKey) -> String {
        format!(
            "{}prepared-sha256 {}\nartifact-size {}\nartifact-sha256 {}\n",
            key.text, self.prepared_sha256, self.artifact_size, self.artifact_sha256
        )
    }

    /// Reads a record file's text, which must start with exactly `key`; the error says
    /// what differs.
    pub fn parse(text: &str, key: &ArtifactKey) -> Result<ArtifactRecord, String> {
        let Some(rest) = text.strip_prefix(key.text()) else {
            return Err(first_difference(key.text(), text));
        };
        let mut lines = rest.lines();
        let mut field = |name: &str| -> Result<String, String> {
            let line = lines
                .next()
                .ok_or_else(|| format!("the record has no {name}"))?;
            line.strip_prefix(name)
                .and_then(|value| value.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("expected {name} in the record, found {line:?}"))
        };
        let prepared_sha256 = field("prepared-sha256")?;
        let artifact_size = field("artifact-size")?;
        let artifact_sha256 = field("artifact-sha256")?;
        if lines.next().is_some() {
            return Err("the record has extra lines".into());
        }
        Ok(ArtifactRecord {
            prepared_sha256,
            artifact_size: artifact_size
                .parse()
                .map_err(|_| format!("bad artifact-size {artifact_size:?}"))?,
            artifact_sha256,
        })
    }

    /// Checks `artifact` against the recorded size and SHA-256.
    pub fn check(&self, artifact: &[u8]) -> Result<(), String> {
        if artifact.len() as u64 != self.artifact_size {
            return Err(format!(
                "it has {} bytes, the record says {}",
                artifact.len(),
                self.artifact_size
            ));
        }
        let actual = sha256_hex(artifact);
        if actual != self.artifact_sha256 {
            return Err(format!(
                "its SHA-256 is {actual}, the record says {}",
                self.artifact_sha256
            ));
        }
        Ok(())
    }
}

/// Names the first key line that differs between what was `expected` and what a record
/// holds.
fn first_difference(expected: &str, found: &str) -> String {
    let mut found_lines = found.lines();
    for want in expected.lines() {
        match found_lines.next() {
            Some(got) if got == want => {}
            Some(got) => {
                return format!(
                    "made for another engine or module: {got:?}, this one has {want:?}"
                );
            }
            None => return format!("the record ends before {want:?}"),
        }
    }
    "the record does not match the key".into()
}

/// Feeds what a `Hash` implementation writes into SHA-256, so that the key does not
/// depend on the standard library's (unspecified, per-release) `DefaultHasher`.
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
    }
}
