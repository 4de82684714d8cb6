//! Compiling the PostgreSQL module once, and caching the result on disk and in memory.
//!
//! Compiling the 10 MB module with Cranelift takes seconds, so the compiled artifact is
//! serialized under `<cache dir>/modules/`, keyed by the runtime's module SHA-256, the
//! stack size of the rewrite, Wasmtime's own compatibility hash (version, target and
//! configuration). Later processes map it in milliseconds. Within one process every
//! engine shares one compiled module.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use pglite_assets::Runtime;
use wasmtime::{Config, Engine, Module, OptLevel};

use crate::EngineError;
use crate::module::{DEFAULT_STACK_PAGES, patch_settings, rewrite_module};

/// Deepest native stack that guest code may use before Wasmtime traps. It must stay
/// below the relocated guest stack (8 MiB) so that deep recursion traps cleanly rather
/// than running off the guest stack into the heap, and below the smallest host thread
/// stack we run on (Rust's 2 MiB default for spawned threads).
pub const MAX_WASM_STACK: usize = 1 << 20;

/// The runtime tree, a Wasmtime engine and the compiled module, shared by all engines.
pub struct CompiledRuntime {
    pub(crate) runtime: Runtime,
    pub(crate) engine: Engine,
    pub(crate) module: Module,
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

    /// Load the module of `runtime`, from `cache_dir` when a compatible artifact is there,
    /// compiling (and storing) it otherwise.
    pub fn load(runtime: Runtime, cache_dir: &Path) -> Result<CompiledRuntime, EngineError> {
        let engine = Engine::new(&engine_config())?;
        let path = cache_path(&engine, &runtime, cache_dir);
        if let Some(module) = load_cached(&engine, &path) {
            return Ok(CompiledRuntime {
                runtime,
                engine,
                module,
            });
        }
        let started = Instant::now();
        eprintln!(
            "pglite: compiling PostgreSQL {} for this machine (first run only, a few seconds)...",
            pglite_assets::RUNTIME_VERSION
        );
        let wasm = std::fs::read(runtime.module_path())
            .map_err(|e| EngineError::io(runtime.module_path(), e))?;
        let mut patched = rewrite_module(&wasm, DEFAULT_STACK_PAGES)?;
        patch_settings(&mut patched)?;
        let rewritten = started.elapsed();
        let module = Module::new(&engine, &patched)?;
        let compiled = started.elapsed();
        if let Err(e) = store_cached(&module, &path) {
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
        Ok(CompiledRuntime {
            runtime,
            engine,
            module,
        })
    }
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_exceptions(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.parallel_compilation(true);
    // For profiling with `perf record`: /tmp/perf-<pid>.map names the guest's functions.
    if std::env::var_os("PGLITE_PERF_MAP").is_some_and(|v| !v.is_empty()) {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

fn cache_path(engine: &Engine, runtime: &Runtime, dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    DEFAULT_STACK_PAGES.hash(&mut hasher);
    crate::module::REWRITE_VERSION.hash(&mut hasher);
    MAX_WASM_STACK.hash(&mut hasher);
    let module = runtime.module_sha256();
    dir.join(format!(
        "pglite-{}-{:016x}.cwasm",
        &module[..module.len().min(16)],
        hasher.finish()
    ))
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Module> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: the file was written by `store_cached` below (atomically, via rename) from
    // `Module::serialize` for a compatible engine; Wasmtime checks the version and config
    // header and refuses incompatible artifacts.
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

fn store_cached(module: &Module, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = path.parent().ok_or("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let bytes = module.serialize()?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(&bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    Ok(())
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
