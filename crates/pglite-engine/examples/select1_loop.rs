//! A loop of in-process `SELECT 1` exchanges, for profiling the engine's round trip
//! (`perf record`, `strace -c`). Not a benchmark: it has no baseline; `pglite bench`
//! puts the same figure beside native PostgreSQL's.
//!
//! `cargo run --release -p pglite-engine --example select1_loop -- [ROUNDS]` prints the
//! median µs per exchange of batches of 1,000, simple query and prepared statement.

use std::time::Instant;

use pglite_engine::wire::{frame, push_cstr};
use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS must be a number"))
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut engine =
        WasmEngine::open(dir.path(), &WasmEngineOptions::default()).expect("engine opens");

    let simple = pglite_engine::wire::query_message("SELECT 1");
    let mut parse = Vec::new();
    push_cstr(&mut parse, "s1");
    push_cstr(&mut parse, "SELECT 1");
    parse.extend_from_slice(&0i16.to_be_bytes());
    let mut setup = frame(b'P', &parse);
    setup.extend(frame(b'S', &[]));
    let mut out = Vec::new();
    engine.exchange(&setup, &mut out).expect("prepare");
    assert!(
        pglite_engine::wire::first_error(&out).is_none(),
        "prepare failed"
    );

    let mut bind = Vec::new();
    push_cstr(&mut bind, "");
    push_cstr(&mut bind, "s1");
    bind.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut execute = Vec::new();
    push_cstr(&mut execute, "");
    execute.extend_from_slice(&0i32.to_be_bytes());
    let mut prepared = frame(b'B', &bind);
    prepared.extend(frame(b'E', &execute));
    prepared.extend(frame(b'S', &[]));

    for (name, input) in [("simple", &simple), ("prepared", &prepared)] {
        let mut batches = Vec::new();
        let mut done = 0;
        while done < rounds {
            let started = Instant::now();
            for _ in 0..1_000 {
                out.clear();
                engine.exchange(input, &mut out).expect("exchange");
            }
            batches.push(started.elapsed().as_secs_f64() * 1e6 / 1_000.0);
            done += 1_000;
        }
        assert!(out.ends_with(&[b'Z', 0, 0, 0, 5, b'I']), "unexpected reply");
        batches.sort_by(f64::total_cmp);
        println!(
            "SELECT 1 {name}: {:.2} µs per exchange (median of {} batches of 1,000)",
            batches[batches.len() / 2],
            batches.len()
        );
    }
    engine.shutdown().expect("shutdown");
}
