//! Guest memory stays flat over many queries. Its own test binary: it measures the
//! resident size of the process, which other tests running beside it would disturb.

mod common;

use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};

fn show(engine: &mut WasmEngine, sql: &str) -> Vec<Vec<Option<String>>> {
    let (rows, err) = common::simple(engine, sql);
    assert_eq!(err, None, "{sql}");
    rows
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
