//! Build script: compile the PostgreSQL module ahead of time, so that the first run of a
//! program built on this machine loads ready machine code instead of spending ~10
//! CPU-seconds in Cranelift.
//!
//! It takes the module that pglite-assets took out of the verified runtime archive
//! (`DEP_PGLITE_RUNTIME_MODULE_PATH`), prepares it with the engine's own rewrite and
//! compiles it with the engine's own Wasmtime configuration — both are the library's
//! source files, compiled into this script with `#[path]` — and writes to `OUT_DIR`:
//!
//! - `pglite.cwasm`, the output of `Engine::precompile_module`;
//! - `pglite.cwasm.record`, its key (module SHA-256, rewrite version, stack sizes,
//!   Wasmtime's compatibility hash), the prepared module's SHA-256 and the artifact's
//!   size and SHA-256.
//!
//! The library gets the artifact's path as `PGLITE_ENGINE_BUILD_ARTIFACT`. When the
//! record already matches the inputs, nothing is compiled again. `PGLITE_NO_PRECOMPILE=1`
//! skips all of this (the library then compiles at first use, as before); so does a
//! cross-compilation, whose artifact could not be checked here.

use std::path::{Path, PathBuf};
use std::time::Instant;

#[allow(dead_code)]
#[path = "src/module.rs"]
mod module;

#[allow(dead_code)]
#[path = "src/artifact.rs"]
mod artifact;

use artifact::{
    ArtifactKey, ArtifactRecord, engine_config, prepare_module, record_path, sha256_hex,
};

/// Opt-out for packagers: no compilation at build time.
const OPT_OUT_ENV: &str = "PGLITE_NO_PRECOMPILE";
const ARTIFACT_FILE: &str = "pglite.cwasm";

fn main() {
    for file in [
        "build.rs",
        "src/module.rs",
        "src/message_context.rs",
        "src/artifact.rs",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-env-changed={OPT_OUT_ENV}");

    if let Some(reason) = skip_reason() {
        println!("cargo:rustc-env=PGLITE_ENGINE_BUILD_ARTIFACT_SKIPPED={reason}");
        return;
    }
    let module_path = PathBuf::from(required_env("DEP_PGLITE_RUNTIME_MODULE_PATH"));
    let module_sha256 = required_env("DEP_PGLITE_RUNTIME_MODULE_SHA256");
    println!("cargo:rerun-if-changed={}", module_path.display());
    let out_dir = PathBuf::from(required_env("OUT_DIR"));
    let artifact = out_dir.join(ARTIFACT_FILE);

    if let Err(why) = precompile(&module_path, &module_sha256, &artifact) {
        panic!(
            "pglite-engine: cannot compile the PostgreSQL module ahead of time: {why}\n\
             Set {OPT_OUT_ENV}=1 to build without it (the module is then compiled at first use)."
        );
    }
    println!(
        "cargo:rustc-env=PGLITE_ENGINE_BUILD_ARTIFACT={}",
        artifact.display()
    );
}

/// Why no artifact is made, if none is.
fn skip_reason() -> Option<String> {
    if std::env::var_os(OPT_OUT_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Some(format!("the crate was built with {OPT_OUT_ENV} set"));
    }
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    (host != target).then(|| format!("the crate was cross-compiled for {target} on {host}"))
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("pglite-engine: {name} is not set"))
}

/// Writes the artifact and its record unless the record on disk already describes the
/// same key, the same prepared module and the artifact that is there.
fn precompile(module_path: &Path, module_sha256: &str, artifact: &Path) -> Result<(), String> {
    let wasm = std::fs::read(module_path)
        .map_err(|e| format!("cannot read {}: {e}", module_path.display()))?;
    let actual = sha256_hex(&wasm);
    if actual != module_sha256 {
        return Err(format!(
            "{} has SHA-256 {actual}, expected {module_sha256}",
            module_path.display()
        ));
    }
    let prepared = prepare_module(&wasm).map_err(|e| e.to_string())?;
    let prepared_sha256 = sha256_hex(&prepared);
    let engine = wasmtime::Engine::new(&engine_config()).map_err(|e| format!("Wasmtime: {e:#}"))?;
    let key = ArtifactKey::new(&engine, module_sha256);
    let record_path = record_path(artifact);

    if up_to_date(&key, &prepared_sha256, artifact, &record_path) {
        return Ok(());
    }
    // A stale record must never describe a new artifact, even for a moment.
    let _ = std::fs::remove_file(&record_path);
    let started = Instant::now();
    let bytes = engine
        .precompile_module(&prepared)
        .map_err(|e| format!("Wasmtime: {e:#}"))?;
    let record = ArtifactRecord {
        prepared_sha256,
        artifact_size: bytes.len() as u64,
        artifact_sha256: sha256_hex(&bytes),
    };
    std::fs::write(artifact, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", artifact.display()))?;
    std::fs::write(&record_path, record.render(&key))
        .map_err(|e| format!("cannot write {}: {e}", record_path.display()))?;
    // Shown with `cargo build -vv`; a warning would repeat on every build.
    println!(
        "pglite-engine: compiled {} ({} bytes) in {:.1} s",
        artifact.display(),
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn up_to_date(key: &ArtifactKey, prepared_sha256: &str, artifact: &Path, record: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(record) else {
        return false;
    };
    let Ok(record) = ArtifactRecord::parse(&text, key) else {
        return false;
    };
    record.prepared_sha256 == prepared_sha256
        && std::fs::read(artifact).is_ok_and(|bytes| record.check(&bytes).is_ok())
}
