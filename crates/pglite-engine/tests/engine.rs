//! The real PostgreSQL engine, driven with raw protocol bytes.

mod common;

use pglite_engine::{WasmEngine, WasmEngineOptions};

#[test]
fn initdb_startup_and_select() {
    let dir = tempfile::tempdir().unwrap();
    let options = WasmEngineOptions { guest_stderr: std::env::var_os("PGLITE_GUEST_STDERR").is_some() };
    let t = std::time::Instant::now();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    eprintln!("open (initdb) took {:?}, status {}", t.elapsed(), engine.init_status());
    let password = pglite_engine::CompiledRuntime::shared().unwrap().runtime().password().to_string();
    let tags = common::startup(&mut engine, "template1", &password);
    eprintln!("startup tags: {}", String::from_utf8_lossy(&tags));
    for sql in ["select 1", "show search_path", "show client_min_messages", "show fsync", "select datname from pg_database", "select gen_random_uuid(), gen_random_uuid()", "select nspname from pg_namespace", "show log_min_messages"] {
        let (rows, err) = common::simple(&mut engine, sql);
        eprintln!("{sql}: {rows:?} {err:?}");
    }
}
