//! Replies larger than the shared buffer, and replies to inputs larger than it: both go
//! through the guest's reply file, which the engine keeps in memory.

mod common;

use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};

/// The reply file and the name it is renamed to, in the data directory.
const REPLY_FILES: [&str; 2] = [".s.PGSQL.5432.lock.out", ".s.PGSQL.5432.out"];

fn open() -> (tempfile::TempDir, WasmEngine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default()).unwrap();
    (dir, engine)
}

fn one_value(engine: &mut WasmEngine, sql: &str) -> String {
    let (rows, error) = common::simple(engine, sql);
    assert_eq!(error, None, "{}", &sql[..sql.len().min(80)]);
    assert_eq!(rows.len(), 1);
    rows[0][0].clone().unwrap()
}

fn assert_no_reply_file_on_disk(engine: &WasmEngine) {
    for name in REPLY_FILES {
        assert!(
            !engine.data_dir().join(name).exists(),
            "{name} was written to the data directory"
        );
    }
}

#[test]
fn replies_around_and_far_past_the_shared_buffer_arrive_intact() {
    let (_dir, mut engine) = open();
    // The shared buffer holds ~2 MiB: sizes on both sides of it, then far past it.
    for len in [
        1_000_000, 2_090_000, 2_097_100, 2_097_200, 2_200_000, 5_000_000,
    ] {
        let sql = format!("SELECT repeat('ab', {}) || 'end'", len / 2);
        let value = one_value(&mut engine, &sql);
        assert_eq!(value.len(), len + 3, "length of a {len}-byte reply");
        assert!(value.starts_with("abab") && value.ends_with("ababend"));
        assert!(value.as_bytes()[..len].chunks(2).all(|c| c == b"ab"));
        // The next small reply comes back through memory again.
        assert_eq!(one_value(&mut engine, "SELECT 1"), "1");
    }
    assert_no_reply_file_on_disk(&engine);
}

#[test]
fn many_rows_past_the_shared_buffer_arrive_in_order() {
    let (_dir, mut engine) = open();
    let (rows, error) = common::simple(
        &mut engine,
        "SELECT n, md5(n::text) FROM generate_series(1, 100000) n ORDER BY n",
    );
    assert_eq!(error, None);
    assert_eq!(rows.len(), 100_000);
    for (i, row) in rows.iter().enumerate() {
        let n = i + 1;
        assert_eq!(row[0].as_deref(), Some(n.to_string().as_str()));
        assert_eq!(row[1].as_ref().map(String::len), Some(32));
    }
    assert_eq!(one_value(&mut engine, "SELECT 2"), "2");
    assert_no_reply_file_on_disk(&engine);
}

#[test]
fn an_input_past_the_shared_buffer_is_answered_through_the_reply_file() {
    let (_dir, mut engine) = open();
    // Inputs that would not leave room for the reply go through a file; the guest then
    // answers through its reply file even when the answer is small.
    let literal = "x".repeat(1_500_000);
    let length = one_value(&mut engine, &format!("SELECT length('{literal}')"));
    assert_eq!(length, "1500000");
    // A large input with a large answer.
    let echoed = one_value(&mut engine, &format!("SELECT '{literal}' || 'y'"));
    assert_eq!(echoed.len(), 1_500_001);
    assert!(echoed.ends_with("xy"));
    assert_eq!(one_value(&mut engine, "SELECT 3"), "3");
    assert_no_reply_file_on_disk(&engine);
}

#[test]
fn an_error_in_the_middle_of_a_large_reply_keeps_the_session_in_sync() {
    let (_dir, mut engine) = open();
    // Rows stream out past the buffer, then the statement fails: the rows sent so far,
    // the error and ReadyForQuery must all arrive, in order.
    let sql = "SELECT CASE WHEN n < 60000 THEN repeat('z', 40) ELSE (1/(n-n))::text END \
               FROM generate_series(1, 60000) n";
    let mut out = Vec::new();
    engine
        .exchange(&pglite_engine::wire::query_message(sql), &mut out)
        .unwrap();
    let (rows, error) = common::parse_rows(&out);
    assert_eq!(rows.len(), 59_999);
    assert!(
        error.unwrap().contains("22012"),
        "division by zero expected"
    );
    assert_eq!(one_value(&mut engine, "SELECT 4"), "4");
}
