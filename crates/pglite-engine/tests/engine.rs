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

/// Resident size of this process in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The runtime never reset PostgreSQL's `MessageContext`, so each simple query left
/// ~6.6 KB and each extended one ~1 KB behind in guest memory (10,000 of each: ~77 MB);
/// the module rewrite now resets it at the start of every exchange (docs/RUNTIME.md).
#[test]
fn many_queries_do_not_grow_guest_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    let extended = extended_select_one();
    let round = |engine: &mut WasmEngine| {
        show(engine, "select 1");
        let mut out = Vec::new();
        engine.exchange(&extended, &mut out).unwrap();
        let tags = common::tags_of(&out);
        assert!(tags.ends_with(b"DCZ") && !tags.contains(&b'E'), "{tags:?}");
    };
    for _ in 0..500 {
        round(&mut engine);
    }
    let before = resident_kib();
    for _ in 0..10_000 {
        round(&mut engine);
    }
    let grown = resident_kib().saturating_sub(before);
    eprintln!("10,000 simple and 10,000 extended queries: +{grown} KiB resident");
    assert!(
        grown < 16 * 1024,
        "10,000 simple and 10,000 extended queries grew the process by {grown} KiB"
    );
}

/// Parse, Bind, Execute and Sync of an unnamed `select 1`.
fn extended_select_one() -> Vec<u8> {
    fn message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
        out.push(tag);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut out = Vec::new();
    message(&mut out, b'P', b"\0select 1\0\0\0");
    message(&mut out, b'B', b"\0\0\0\0\0\0\0\0");
    message(&mut out, b'E', b"\0\0\0\0\0");
    message(&mut out, b'S', b"");
    out
}
