//! The real PostgreSQL engine, driven with raw protocol bytes.

mod common;

use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};

fn show(engine: &mut WasmEngine, sql: &str) -> Vec<Vec<Option<String>>> {
    let (rows, err) = common::simple(engine, sql);
    assert_eq!(err, None, "{sql}");
    rows
}

#[test]
fn fresh_and_reopened_clusters_have_normal_session_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let options = WasmEngineOptions::default();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    assert!(engine.created());
    assert!(common::tags_of(engine.startup_reply()).ends_with(b"KZ"));
    for _ in 0..2 {
        assert_eq!(show(&mut engine, "select 1"), [[Some("1".into())]]);
        assert_eq!(
            show(&mut engine, "show search_path"),
            [[Some("\"$user\", public".into())]]
        );
        assert_eq!(
            show(&mut engine, "show client_min_messages"),
            [[Some("notice".into())]]
        );
        assert_eq!(
            show(&mut engine, "show log_min_messages"),
            [[Some("warning".into())]]
        );
        assert_eq!(show(&mut engine, "show fsync"), [[Some("on".into())]]);
        assert_eq!(
            show(&mut engine, "select current_database()"),
            [[Some("postgres".into())]]
        );
        assert_eq!(
            show(&mut engine, "show enable_seqscan"),
            [[Some("on".into())]]
        );
        assert_eq!(
            show(&mut engine, "show allow_system_table_mods"),
            [[Some("off".into())]]
        );
        assert_eq!(
            show(&mut engine, "show exit_on_error"),
            [[Some("off".into())]]
        );
        // Memory settings for a guest whose memory never shrinks.
        assert_eq!(
            show(&mut engine, "show maintenance_work_mem"),
            [[Some("16MB".into())]]
        );
        assert_eq!(
            show(&mut engine, "show max_parallel_workers_per_gather"),
            [[Some("0".into())]]
        );
        assert_eq!(show(&mut engine, "show jit"), [[Some("off".into())]]);
        show(&mut engine, "create table t (a int)");
        assert_eq!(
            show(
                &mut engine,
                "select table_schema from information_schema.tables where table_name = 't'"
            ),
            [[Some("public".into())]]
        );
        show(&mut engine, "drop table t");
        drop(engine);
        engine = WasmEngine::open(dir.path(), &options).unwrap();
        assert!(!engine.created());
    }
}

#[test]
fn random_values_differ() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    let rows = show(
        &mut engine,
        "select gen_random_uuid()::text, gen_random_uuid()::text",
    );
    assert_ne!(rows[0][0], rows[0][1]);
    let again = show(&mut engine, "select gen_random_uuid()::text");
    assert_ne!(rows[0][0], again[0][0]);
}

#[test]
fn second_opener_is_refused_while_the_first_holds_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    let err = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(engine);
    WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
}

#[test]
fn sql_errors_leave_the_session_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    for _ in 0..50 {
        let (_, err) = common::simple(&mut engine, "SELEC 1");
        assert!(err.unwrap().contains("42601"));
    }
    assert_eq!(show(&mut engine, "select 2"), [[Some("2".into())]]);
    let mut out = Vec::new();
    engine
        .exchange(&pglite_engine::wire::query_message("select 3"), &mut out)
        .unwrap();
    assert_eq!(common::parse_rows(&out).0, [[Some("3".into())]]);
}

#[test]
fn a_trap_is_reported_as_an_error_and_the_engine_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    show(
        &mut engine,
        "create table kept (n int); insert into kept values (1)",
    );
    show(
        &mut engine,
        "create function f(int) returns int as 'select f($1 + 1)' language sql",
    );
    show(&mut engine, "begin");
    show(&mut engine, "insert into kept values (2)");
    let (_, err) = common::simple(&mut engine, "select f(1)");
    let err = err.expect("deep recursion must fail");
    assert!(
        err.contains("XX000") && err.contains("stack overflow"),
        "{err}"
    );
    // Committed rows survive; the open transaction is gone; the session works.
    assert_eq!(
        show(
            &mut engine,
            "select array_agg(n order by n)::text from kept"
        ),
        [[Some("{1}".into())]]
    );
    assert_eq!(
        show(&mut engine, "show search_path"),
        [[Some("\"$user\", public".into())]]
    );
}

#[test]
fn shared_buffers_is_16mb() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    assert_eq!(
        show(&mut engine, "show shared_buffers"),
        [[Some("16MB".into())]]
    );
}

#[test]
fn time_zones_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    assert_eq!(show(&mut engine, "show timezone"), [[Some("UTC".into())]]);
    show(&mut engine, "set timezone to 'Europe/Paris'");
    assert_eq!(
        show(
            &mut engine,
            "select '2026-07-01 12:00:00+00'::timestamptz::text"
        ),
        [[Some("2026-07-01 14:00:00+02".into())]]
    );
}

#[test]
fn discard_releases_the_directory_and_keeps_committed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let options = WasmEngineOptions::default();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    show(
        &mut engine,
        "create table kept (a int); insert into kept values (1)",
    );
    // No shutdown checkpoint: the next open recovers from the WAL.
    engine.discard();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    assert_eq!(
        show(&mut engine, "select count(*) from kept"),
        [[Some("1".into())]]
    );
    engine.shutdown().unwrap();
}

/// The template keeps only the WAL segment holding its checkpoint; a copy writes new
/// segments as it needs them and recovers through them after a crash.
#[test]
fn template_copies_grow_their_own_wal() {
    let template = pglite_engine::Template::shared().unwrap();
    let segments = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("pg_wal"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
            .count()
    };
    assert_eq!(segments(template.dir()), 1);
    let dir = tempfile::tempdir().unwrap();
    template.clone_into(dir.path()).unwrap();
    let options = WasmEngineOptions::default();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    show(
        &mut engine,
        "create table filler as select g, repeat('x', 200) as pad from generate_series(1, 20000) g",
    );
    assert!(segments(dir.path()) > 1);
    // No shutdown checkpoint: the next open replays the WAL across the new segments.
    engine.discard();
    let mut engine = WasmEngine::open(dir.path(), &options).unwrap();
    assert_eq!(
        show(&mut engine, "select count(*), sum(length(pad)) from filler"),
        [[Some("20000".into()), Some("4000000".into())]]
    );
    engine.shutdown().unwrap();
}
