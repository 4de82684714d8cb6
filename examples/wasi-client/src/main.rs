//! pglite-client on wasm32-wasip2: connects to the PostgreSQL server named by the first
//! argument (or `DATABASE_URL`) over wasi:sockets and checks CREATE, INSERT in a
//! transaction, SELECT with parameters, error recovery, COPY both ways, row streams
//! (`query_raw`, a cursor, `simple_query_raw`), a pipeline, `with_transaction` with a
//! retry, binary COPY, a cancel request, an automatic reconnect with `set_param`,
//! LISTEN/NOTIFY (from itself and from a second connection in a concurrent task, plus
//! a timeout), then the blocking `Client` over `std::net`. It prints one line per check and exits
//! with status 1 at the first failure or without a URL (WASI 0.2's `exit` knows only
//! success and failure).
//!
//! ```sh
//! cargo build -p pglite-wasi-example --target wasm32-wasip2
//! cargo run -p pglite-wasi-harness -- target/wasm32-wasip2/debug/pglite-wasi-example.wasm \
//!     postgres://postgres@127.0.0.1:5432/postgres
//! # or: wasmtime run -S inherit-network target/wasm32-wasip2/debug/pglite-wasi-example.wasm URL
//! ```

#[cfg(all(target_os = "wasi", target_env = "p2"))]
#[macro_use]
mod checks;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod features;

#[cfg(all(target_os = "wasi", target_env = "p2"))]
fn main() {
    let Some(url) = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
    else {
        eprintln!("usage: pglite-wasi-example postgres://USER@HOST:PORT/DB (or set DATABASE_URL)");
        std::process::exit(1);
    };
    match wstd::runtime::block_on(checks::run(&url)) {
        Ok(()) => println!("pglite-wasi-example: all checks passed"),
        Err(e) => {
            eprintln!("pglite-wasi-example: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
fn main() {
    eprintln!(
        "this example runs on wasm32-wasip2: \
         cargo build -p pglite-wasi-example --target wasm32-wasip2"
    );
    std::process::exit(2);
}
