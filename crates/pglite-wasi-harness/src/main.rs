//! `pglite-wasi-run COMPONENT.wasm [ARGS...]`: runs a wasm32-wasip2 command component
//! in Wasmtime with network access to loopback addresses only, and exits with its
//! status. For example, the pglite-client example:
//!
//! ```sh
//! cargo build -p pglite-wasi-example --target wasm32-wasip2
//! cargo run -p pglite-wasi-harness -- target/wasm32-wasip2/debug/pglite-wasi-example.wasm \
//!     postgres://postgres@127.0.0.1:5432/postgres
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(wasm) = args.next() else {
        eprintln!("usage: pglite-wasi-run COMPONENT.wasm [ARGS...]");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let env: Vec<(String, String)> = std::env::var("DATABASE_URL")
        .map(|url| vec![("DATABASE_URL".to_owned(), url)])
        .unwrap_or_default();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let result = pglite_wasi_harness::Program::load(Path::new(&wasm))
        .and_then(|program| program.run(&rest, &env, false));
    match result {
        Ok(outcome) => ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)),
        Err(e) => {
            eprintln!("pglite-wasi-run: {e:#}");
            ExitCode::from(1)
        }
    }
}
