//! The wasm32-wasip2 example of pglite-client, built with `cargo build --target
//! wasm32-wasip2` and run in Wasmtime (loopback-only network) against real servers:
//! a native PostgreSQL (Debian's, via pglite-testkit) and `pglite serve`
//! (`pglite_server::Server`). Without the wasm32-wasip2 target these tests fail and
//! say to run `rustup target add wasm32-wasip2`.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pglite_wasi_harness::{Outcome, Program, TARGET, build_example, workspace_root};

/// The example, built and compiled once per test binary.
fn example() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        // A target directory of its own (<target>/tmp/wasi-example): the outer
        // `cargo test` may still hold the lock of its own.
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-example");
        let built = build_example(&target_dir).unwrap_or_else(|e| panic!("{e:#}"));
        let size = std::fs::metadata(&built.wasm).map(|m| m.len()).unwrap_or(0);
        let start = Instant::now();
        let program = Program::load(&built.wasm).unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "{}: {} bytes, cargo build {:.1} s, Wasmtime compile {:.1} s",
            built.wasm.display(),
            size,
            built.build_time.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
        program
    })
}

/// How long one run may take before the test gives up on it (a hung guest cannot be
/// interrupted while it blocks in a host call, so it is left behind on its thread).
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn run(args: &[&str]) -> Outcome {
    let program = example();
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (done, result) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let _ = done.send(program.run(&args, &[], true));
    });
    let outcome = result
        .recv_timeout(RUN_LIMIT)
        .unwrap_or_else(|_| panic!("the example did not finish within {RUN_LIMIT:?}: {args:?}"))
        .unwrap_or_else(|e| panic!("running the example failed: {e:#}"));
    eprintln!(
        "run {args:?}: exit {} in {:.2} s\n--- stdout\n{}--- stderr\n{}",
        outcome.exit_code,
        start.elapsed().as_secs_f64(),
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// Every check of the example printed its line and the run passed.
fn assert_all_checks_passed(outcome: &Outcome) {
    assert_eq!(
        outcome.exit_code, 0,
        "the example failed:\n{}",
        outcome.stderr
    );
    for line in [
        "connected: server_version ",
        "created table wasi_items",
        "inserted 4 rows in a transaction",
        "select with parameters: 2 rows, ids [2, 4], names [\"bread\", \"cheese, \\\"aged\\\"\"]",
        "query_one: 42 WASI 0.5",
        "error recovery: SQLSTATE 22012 then count = 4",
        "copy in/out: 2 rows round-tripped",
        "200 round trips of one cached statement: ",
        "query_raw: 100000 rows streamed (sum 5000050000), Some(\"SELECT 100000\"); early drop ok",
        "cursor: 100 rows in batches of 7",
        "simple_query_raw: columns 1, row Some(\"a\"), row None, done SELECT 2, columns 1, \
         row Some(\"42\"), done SELECT 1",
        "pipeline: 5 statements in one round trip: INSERT 0 1, 1, 22012, skipped, 1",
        "with_transaction: 40001 on attempt 1, committed on attempt 2 after ",
        "binary copy: 1000 rows in and out, a dropped writer aborted its COPY",
        "cancel_async: lock wait ended with 57014 after ",
        "reconnect: new backend after an abandoned call, application_name \"wasi reconnect\" \
         re-applied",
        "wait_for_notification: none within 200 ms",
        "notification from myself: wasi_events \"from myself\"",
        "notification from another connection: \"from another task\"",
        "blocking client (std::net): query, LISTEN, timeout and notification ok",
        "pglite-wasi-example: all checks passed",
    ] {
        assert!(
            outcome.stdout.contains(line),
            "missing {line:?} in the output:\n{}",
            outcome.stdout
        );
    }
}

#[test]
fn example_against_native_postgres() {
    let pg = pglite_testkit::NativePostgres::builder()
        .fast()
        .start()
        .unwrap_or_else(|e| panic!("cannot start the native PostgreSQL: {e}"));
    // By host name: resolved through wasi:sockets/ip-name-lookup (async driver) and
    // wasi-libc's getaddrinfo (blocking driver); each address is then tried in turn.
    let url = pg
        .url("postgres", "postgres")
        .replace("@127.0.0.1:", "@localhost:");
    assert!(url.contains("@localhost:"), "{url}");
    let outcome = run(&[&url]);
    assert_all_checks_passed(&outcome);
    assert!(
        outcome.stdout.contains("server_version 1") && !outcome.stdout.contains("17.5"),
        "expected the native server (not pglite's 17.5):\n{}",
        outcome.stdout
    );
}

#[test]
fn example_against_pglite_serve() {
    let server = pglite_server::Server::builder()
        .temporary()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .and_then(|s| s.spawn())
        .unwrap_or_else(|e| panic!("cannot start pglite serve: {e}"));
    let outcome = run(&[server.url()]);
    assert_all_checks_passed(&outcome);
    assert!(
        outcome.stdout.contains("server_version 17."),
        "pglite serves PostgreSQL 17:\n{}",
        outcome.stdout
    );
    server.stop().unwrap();
}

#[test]
fn network_outside_loopback_is_denied() {
    // 192.0.2.1 is TEST-NET-1: never reachable, and not loopback, so the sandbox
    // refuses the connect before any packet is sent.
    let outcome = run(&["postgres://postgres@192.0.2.1:5432/postgres?connect_timeout=5"]);
    assert_eq!(outcome.exit_code, 1);
    assert!(
        outcome.stderr.contains("FAILED: connect:") && outcome.stderr.contains("access-denied"),
        "expected an access-denied connect error:\n{}",
        outcome.stderr
    );
}

#[test]
fn refused_connection_and_usage_errors() {
    // A loopback port nobody listens on: allowed by the sandbox, refused by the OS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let outcome = run(&[&format!("postgres://postgres@127.0.0.1:{port}/postgres")]);
    assert_eq!(outcome.exit_code, 1);
    assert!(
        outcome.stderr.contains("connection-refused"),
        "expected connection-refused:\n{}",
        outcome.stderr
    );

    let outcome = run(&[]);
    assert_eq!(outcome.exit_code, 1);
    assert!(outcome.stderr.contains("usage: pglite-wasi-example"));
}

#[test]
fn tls_modes_are_refused_without_tls() {
    // The default features include `tls`, a no-op on WASI: a mode that needs TLS is a
    // configuration error before any socket is opened (the port does not matter).
    let outcome = run(&["postgres://postgres@127.0.0.1:9/postgres?sslmode=require"]);
    assert_eq!(outcome.exit_code, 1);
    assert!(
        outcome.stderr.contains("FAILED: connect: ")
            && outcome.stderr.contains(
                "sslmode=require needs TLS, and this build of pglite-client has no TLS: TLS \
                 is not available on WASI"
            ),
        "expected the no-TLS configuration error:\n{}",
        outcome.stderr
    );
}

#[test]
fn silent_server_hits_connect_timeout() {
    // The kernel completes the handshake (the listener's backlog), but nobody ever
    // answers the start-up message: `connect_timeout=1` (2 s, as libpq) must end the
    // wait through wstd's timer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let start = Instant::now();
    let outcome = run(&[&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=1"
    )]);
    let elapsed = start.elapsed();
    assert_eq!(outcome.exit_code, 1);
    assert!(
        outcome
            .stderr
            .contains("timeout expired while connecting (connect_timeout)"),
        "expected a connect timeout:\n{}",
        outcome.stderr
    );
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(20),
        "the 2 s connect timeout took {elapsed:?}"
    );
    drop(silent);
}

/// `cargo tree` of a WASI build: the dependency lines of `args`.
fn wasi_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "tree", "--target", TARGET, "-e", "normal", "--prefix", "none",
        ])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn wasi_builds_never_pull_wasmtime_tokio_or_ring() {
    for args in [
        &[
            "-p",
            "pglite-client",
            "--no-default-features",
            "--features",
            "wstd",
        ][..],
        &["-p", "pglite-client"][..],
        &["-p", "pglite-client", "--all-features"][..],
        &["-p", "pglite-wasi-example"][..],
    ] {
        let tree = wasi_tree(args);
        assert!(tree.contains("wstd v"), "no wstd in {args:?}:\n{tree}");
        for forbidden in [
            "wasmtime",
            "cranelift",
            "tokio v",
            "mio v",
            "ring v",
            "rustls v",
        ] {
            assert!(
                !tree.contains(forbidden),
                "the {TARGET} build {args:?} depends on {forbidden}:\n{tree}"
            );
        }
    }
}
