//! Compiling the PostgreSQL module once, and caching the result on disk and in memory.
//!
//! Compiling the 10 MB module with Cranelift takes ~10 CPU-seconds, so the compiled
//! artifact is serialized under `<cache dir>/modules/`, named after its key (the
//! runtime's module SHA-256, the rewrite version and stack sizes, Wasmtime's own
//! compatibility hash: see [`crate::artifact`]). Later processes map it in milliseconds.
//! Within one process every engine shares one compiled module.
//!
//! On a cache miss the module compiled by the build script is tried first
//! ([`build_artifact`]): it is installed into the cache when its record carries the same
//! key and its size and SHA-256 match; anything else is refused with a reason on stderr,
//! and the module is compiled here instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use pglite_assets::Runtime;
use wasmtime::{Engine, Module, Precompiled};

use crate::EngineError;
use crate::artifact::{ArtifactKey, ArtifactRecord, engine_config, prepare_module};

/// Path of the module compiled when this crate was built, if the build made one
/// (`PGLITE_NO_PRECOMPILE` unset, not cross-compiling). The file lives in the build's
/// output directory, so it is missing when the program runs on another machine; its
/// record is next to it ([`build_artifact_record`]).
pub fn build_artifact() -> Option<&'static Path> {
    option_env!("PGLITE_ENGINE_BUILD_ARTIFACT").map(Path::new)
}

/// The record of a compiled artifact: `<artifact>.record`, its key, size and SHA-256.
pub fn build_artifact_record(artifact: &Path) -> PathBuf {
    crate::artifact::record_path(artifact)
}

/// Environment variable that makes the engine ignore the build-time module and compile
/// on a cache miss (for measuring the compile path).
pub const NO_BUILD_ARTIFACT_ENV: &str = "PGLITE_NO_BUILD_ARTIFACT";

/// Where the compiled module of a [`CompiledRuntime`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleSource {
    /// The on-disk module cache, filled by an earlier run.
    Cache,
    /// The module compiled when this crate was built, now installed into the cache.
    BuildArtifact,
    /// Compiled with Cranelift in this process (and stored in the cache).
    Compiled,
}

/// The runtime tree, a Wasmtime engine and the compiled module, shared by all engines.
pub struct CompiledRuntime {
    pub(crate) runtime: Runtime,
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    source: ModuleSource,
}

impl std::fmt::Debug for CompiledRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRuntime")
            .field("root", &self.runtime.root())
            .finish_non_exhaustive()
    }
}

impl CompiledRuntime {
    /// The installed runtime tree.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The process-wide compiled runtime, installed and compiled (or loaded) on first use.
    pub fn shared() -> Result<Arc<CompiledRuntime>, EngineError> {
        static SHARED: OnceLock<Mutex<Option<Arc<CompiledRuntime>>>> = OnceLock::new();
        let mut slot = SHARED
            .get_or_init(|| Mutex::new(None))
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = slot.as_ref() {
            return Ok(shared.clone());
        }
        let unpack = Instant::now();
        let runtime = pglite_assets::install()?;
        // A fast path reads a marker; anything slower unpacked the embedded archive.
        if unpack.elapsed().as_millis() >= 100 {
            eprintln!(
                "pglite: unpacked the PostgreSQL runtime in {:.1} s",
                unpack.elapsed().as_secs_f64()
            );
        }
        let compiled = Arc::new(CompiledRuntime::load(
            runtime,
            &pglite_assets::cache_dir().join("modules"),
        )?);
        *slot = Some(compiled.clone());
        Ok(compiled)
    }

    /// Where the compiled module came from.
    pub fn source(&self) -> ModuleSource {
        self.source
    }

    /// Load the module of `runtime`, from `cache_dir` when a compatible artifact is
    /// there; else install the module compiled at build time ([`build_artifact`]) unless
    /// `PGLITE_NO_BUILD_ARTIFACT` is set; else compile it (and store it).
    pub fn load(runtime: Runtime, cache_dir: &Path) -> Result<CompiledRuntime, EngineError> {
        let prebuilt = if std::env::var_os(NO_BUILD_ARTIFACT_ENV).is_some_and(|v| !v.is_empty()) {
            Err(format!("{NO_BUILD_ARTIFACT_ENV} is set"))
        } else {
            build_artifact().ok_or_else(|| {
                option_env!("PGLITE_ENGINE_BUILD_ARTIFACT_SKIPPED")
                    .unwrap_or("the build made none")
                    .to_string()
            })
        };
        CompiledRuntime::load_inner(runtime, cache_dir, prebuilt)
    }

    /// Like [`CompiledRuntime::load`], with `prebuilt` (an artifact and its record, as the
    /// build script writes them) in place of the build-time module; `None` compiles on a
    /// cache miss.
    pub fn load_with(
        runtime: Runtime,
        cache_dir: &Path,
        prebuilt: Option<&Path>,
    ) -> Result<CompiledRuntime, EngineError> {
        let prebuilt = prebuilt.ok_or_else(|| "none was given".to_string());
        CompiledRuntime::load_inner(runtime, cache_dir, prebuilt)
    }

    fn load_inner(
        runtime: Runtime,
        cache_dir: &Path,
        prebuilt: Result<&Path, String>,
    ) -> Result<CompiledRuntime, EngineError> {
        let engine = Engine::new(&runtime_config())?;
        let key = ArtifactKey::new(&engine, runtime.module_sha256());
        let path = cache_dir.join(key.cache_file_name());
        let (module, source) = match load_cached(&engine, &path) {
            Some(module) => (module, ModuleSource::Cache),
            None => {
                let installed = match prebuilt {
                    Ok(artifact) => install_prebuilt(&engine, &key, artifact, &path)
                        .map_err(|why| {
                            eprintln!(
                                "pglite: not using the module compiled at build time ({}): {why}",
                                artifact.display()
                            )
                        })
                        .ok(),
                    Err(why) => {
                        eprintln!("pglite: no module compiled at build time to use: {why}");
                        None
                    }
                };
                match installed {
                    Some(module) => (module, ModuleSource::BuildArtifact),
                    None => (compile(&engine, &runtime, &path)?, ModuleSource::Compiled),
                }
            }
        };
        Ok(CompiledRuntime {
            runtime,
            engine,
            module,
            source,
        })
    }
}

/// The shared configuration plus run-time-only settings.
fn runtime_config() -> wasmtime::Config {
    let mut config = engine_config();
    // For profiling with `perf record`: /tmp/perf-<pid>.map names the guest's functions.
    if std::env::var_os("PGLITE_PERF_MAP").is_some_and(|v| !v.is_empty()) {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Compiles the runtime's module with Cranelift and stores it at `path`, with progress
/// on stderr.
fn compile(engine: &Engine, runtime: &Runtime, path: &Path) -> Result<Module, EngineError> {
    let started = Instant::now();
    eprintln!(
        "pglite: compiling PostgreSQL {} for this machine (first run only, a few seconds)...",
        pglite_assets::RUNTIME_VERSION
    );
    let wasm = std::fs::read(runtime.module_path())
        .map_err(|e| EngineError::io(runtime.module_path(), e))?;
    let prepared = prepare_module(&wasm)?;
    let rewritten = started.elapsed();
    let module = Module::new(engine, &prepared)?;
    let compiled = started.elapsed();
    if let Err(e) = module
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|bytes| write_atomically(path, &bytes).map_err(|e| e.to_string()))
    {
        eprintln!(
            "pglite: could not cache the compiled module at {}: {e}",
            path.display()
        );
    }
    let total = started.elapsed();
    eprintln!(
        "pglite: compiled in {:.1} s (rewrite {:.2} s, Cranelift {:.1} s, cache write {:.2} s), cached at {}",
        total.as_secs_f64(),
        rewritten.as_secs_f64(),
        (compiled - rewritten).as_secs_f64(),
        (total - compiled).as_secs_f64(),
        path.display()
    );
    Ok(module)
}

/// Checks the artifact at `artifact` against its record and `key`, copies it to `path`
/// (the module cache) and loads it from there. `Err` says why it was not used; nothing
/// is loaded unless key, size and SHA-256 all match.
fn install_prebuilt(
    engine: &Engine,
    key: &ArtifactKey,
    artifact: &Path,
    path: &Path,
) -> Result<Module, String> {
    let started = Instant::now();
    let record_path = build_artifact_record(artifact);
    let text = std::fs::read_to_string(&record_path)
        .map_err(|e| format!("cannot read its record {}: {e}", record_path.display()))?;
    let record = ArtifactRecord::parse(&text, key)?;
    let bytes = std::fs::read(artifact).map_err(|e| format!("cannot read it: {e}"))?;
    record.check(&bytes)?;
    if Engine::detect_precompiled(&bytes) != Some(Precompiled::Module) {
        return Err("it is not a compiled Wasmtime module".into());
    }
    let checked = started.elapsed();
    write_atomically(path, &bytes)
        .map_err(|e| format!("cannot write it to the cache at {}: {e}", path.display()))?;
    drop(bytes);
    let written = started.elapsed();
    // SAFETY: the bytes at `path` are the artifact the build script wrote with
    // `Engine::precompile_module`, checked above against the SHA-256 in its record and
    // against our key (same module, rewrite and Wasmtime compatibility hash); Wasmtime
    // checks its version and configuration header again while loading.
    let module = unsafe { Module::deserialize_file(engine, path) }.map_err(|e| {
        let _ = std::fs::remove_file(path);
        format!("Wasmtime refused it: {e}")
    })?;
    let total = started.elapsed();
    eprintln!(
        "pglite: installed the module compiled at build time in {:.2} s (check {:.2} s, \
         cache write {:.2} s, load {:.2} s), cached at {}",
        total.as_secs_f64(),
        checked.as_secs_f64(),
        (written - checked).as_secs_f64(),
        (total - written).as_secs_f64(),
        path.display()
    );
    Ok(module)
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Module> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: the file was written atomically (via rename) by `compile` from
    // `Module::serialize`, or by `install_prebuilt` after checking the artifact's
    // SHA-256, for an engine with the same key (the file name); Wasmtime checks the
    // version and config header and refuses incompatible artifacts.
    match unsafe { Module::deserialize_file(engine, path) } {
        Ok(module) => Some(module),
        Err(e) => {
            eprintln!(
                "pglite: ignoring unusable module cache {}: {e}",
                path.display()
            );
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed
/// and renamed into place, so `path` never holds a partial artifact.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let (tmp, mut file) = tempfile_in(dir)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let path = dir.join(name.replace(['(', ')'], ""));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::record_path;

    /// A scratch copy of the build-time artifact and its record, changed by `damage`,
    /// offered to `install_prebuilt`; returns its answer and what reached the cache.
    fn offer(damage: impl FnOnce(&mut Vec<u8>, &mut String)) -> (Result<(), String>, bool) {
        let artifact = build_artifact().expect("this build compiled the module (see build.rs)");
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("pglite.cwasm");
        let mut bytes = std::fs::read(artifact).unwrap();
        let mut record = std::fs::read_to_string(record_path(artifact)).unwrap();
        damage(&mut bytes, &mut record);
        std::fs::write(&copy, &bytes).unwrap();
        std::fs::write(record_path(&copy), &record).unwrap();

        let engine = Engine::new(&runtime_config()).unwrap();
        let key = ArtifactKey::new(&engine, pglite_assets::MODULE_SHA256);
        let cached = scratch.path().join("modules").join(key.cache_file_name());
        let result = install_prebuilt(&engine, &key, &copy, &cached).map(drop);
        (result, cached.exists())
    }

    /// Makes `record` state the size and SHA-256 of `bytes` (its last two lines).
    fn refit(bytes: &[u8], record: &mut String) {
        let mut lines: Vec<String> = record.lines().map(str::to_string).collect();
        let n = lines.len();
        lines[n - 2] = format!("artifact-size {}", bytes.len());
        lines[n - 1] = format!("artifact-sha256 {}", crate::artifact::sha256_hex(bytes));
        *record = lines.join("\n") + "\n";
    }

    #[test]
    fn the_build_time_module_is_installed_when_everything_matches() {
        assert_eq!(offer(|_, _| {}), (Ok(()), true));
    }

    #[test]
    fn damaged_or_foreign_build_time_modules_are_refused() {
        let refused = |damage: &dyn Fn(&mut Vec<u8>, &mut String), expected: &str| {
            let (result, cached) = offer(damage);
            let why = result.expect_err(expected);
            assert!(
                why.contains(expected),
                "{why:?} should mention {expected:?}"
            );
            assert!(!cached, "{expected}: nothing may reach the cache");
        };
        refused(
            &|bytes, _| {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 1;
            },
            "SHA-256",
        );
        refused(&|bytes, _| bytes.truncate(bytes.len() - 1), "bytes");
        refused(
            &|_, record| *record = record.replace("rewrite-version ", "rewrite-version 0"),
            "made for another engine or module",
        );
        refused(
            &|_, record| {
                let line = record.lines().find(|l| l.starts_with("wasmtime-")).unwrap();
                *record = record.replace(line, "wasmtime-compatibility 00");
            },
            "made for another engine or module",
        );
        refused(&|_, record| record.clear(), "the record ends before");
        // Bytes that are not a compiled module, with a record made to fit them.
        refused(
            &|bytes, record| {
                *bytes = b"not machine code".to_vec();
                refit(bytes, record);
            },
            "not a compiled Wasmtime module",
        );
    }

    #[test]
    fn a_module_compiled_with_another_configuration_is_refused_by_wasmtime() {
        // A real compiled module (empty) of an engine with another memory reservation
        // (a setting Wasmtime requires to be equal; a module made with fewer wasm
        // features would be accepted), with a record that claims our key: only
        // Wasmtime's own check can catch it.
        let mut other = engine_config();
        other.memory_reservation(1 << 24);
        let foreign = Engine::new(&other)
            .unwrap()
            .precompile_module(&wasm_encoder::Module::new().finish())
            .unwrap();
        let (result, cached) = offer(|bytes, record| {
            *bytes = foreign;
            refit(bytes, record);
        });
        let why = result.unwrap_err();
        assert!(why.contains("Wasmtime refused it"), "{why}");
        assert!(!cached, "a refused artifact is removed from the cache");
    }
}
