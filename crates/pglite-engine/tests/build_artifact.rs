//! The module compiled by the build script: an empty module cache is filled from it
//! without compiling, and a damaged one is refused and the module compiled instead.

mod common;

use std::path::Path;
use std::sync::Arc;

use pglite_engine::{
    CompiledRuntime, ModuleSource, Template, WasmEngine, WasmEngineOptions, build_artifact,
    build_artifact_record,
};

/// The build-time module, or a panic that says why this build has none.
fn artifact() -> &'static Path {
    build_artifact().unwrap_or_else(|| {
        panic!(
            "this build of pglite-engine has no module compiled at build time ({}); \
             these tests need one: build without PGLITE_NO_PRECOMPILE",
            option_env!("PGLITE_ENGINE_BUILD_ARTIFACT_SKIPPED").unwrap_or("no reason given")
        )
    })
}

/// Files in the module cache directory `dir`.
fn cached_modules(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Starts PostgreSQL with `compiled` on a copy of the template and runs a query.
fn runs_a_query(compiled: CompiledRuntime) {
    let compiled = Arc::new(compiled);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Template::shared().unwrap().clone_into(&data).unwrap();
    let mut engine =
        WasmEngine::open_with(&compiled, &data, &WasmEngineOptions::default()).unwrap();
    let (rows, error) = common::simple(&mut engine, "select 6 * 7");
    assert_eq!(error, None);
    assert_eq!(rows, [[Some("42".to_string())]]);
    engine.shutdown().unwrap();
}

#[test]
fn an_empty_cache_is_filled_from_the_build_time_module_without_compiling() {
    let runtime = pglite_assets::install().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let modules = cache.path().join("modules");

    let compiled = CompiledRuntime::load_with(runtime.clone(), &modules, Some(artifact())).unwrap();
    assert_eq!(compiled.source(), ModuleSource::BuildArtifact);
    let files = cached_modules(&modules);
    assert_eq!(files.len(), 1, "one artifact in the cache: {files:?}");
    assert!(files[0].ends_with(".cwasm"), "{files:?}");
    assert_eq!(
        std::fs::read(modules.join(&files[0])).unwrap(),
        std::fs::read(artifact()).unwrap(),
        "the cache holds the build-time artifact as it is"
    );
    runs_a_query(compiled);

    // The next load takes it from the cache.
    let again = CompiledRuntime::load_with(runtime, &modules, Some(artifact())).unwrap();
    assert_eq!(again.source(), ModuleSource::Cache);
}

#[test]
fn a_damaged_build_time_module_is_refused_and_the_module_compiled() {
    let runtime = pglite_assets::install().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // A copy of the artifact with one byte changed in the middle, and its true record.
    let damaged = scratch.path().join("pglite.cwasm");
    let mut bytes = std::fs::read(artifact()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    std::fs::copy(
        build_artifact_record(artifact()),
        build_artifact_record(&damaged),
    )
    .unwrap();

    let modules = scratch.path().join("modules");
    let compiled = CompiledRuntime::load_with(runtime, &modules, Some(&damaged)).unwrap();
    assert_eq!(compiled.source(), ModuleSource::Compiled);
    let files = cached_modules(&modules);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_ne!(
        std::fs::read(modules.join(&files[0])).unwrap(),
        bytes,
        "the damaged artifact must not reach the cache"
    );
    runs_a_query(compiled);
}
