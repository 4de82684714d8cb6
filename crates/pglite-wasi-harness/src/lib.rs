//! Runs pglite-client's wasm32-wasip2 example under Wasmtime.
//!
//! pglite-client builds for `wasm32-wasip2` without Wasmtime; this test-support crate
//! is the other side: it builds the example component (`examples/wasi-client`) with
//! `cargo build --target wasm32-wasip2` and runs it in Wasmtime with WASI preview 2
//! and network access limited to loopback — TCP connections to `127.0.0.0/8` and
//! `::1` only (and the implicit bind a connect does); no listening, no UDP. Host names
//! may be looked up (the addresses they give are checked the same way).
//!
//! Its tests (`tests/wasi_client.rs`) run the example against a native PostgreSQL and
//! against `pglite serve`; the `pglite-wasi-run` binary runs any command component
//! with the same sandbox, for people without the Wasmtime CLI.
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command as WasiCommand;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The Rust target of the example.
pub const TARGET: &str = "wasm32-wasip2";

/// The example's package (and binary) name.
pub const EXAMPLE: &str = "pglite-wasi-example";

/// Anything that went wrong outside the guest: building, loading, linking.
pub type Error = wasmtime::Error;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/pglite-wasi-harness is two levels below the workspace root")
        .to_path_buf()
}

/// Fails with the command to run when the Rust standard library for
/// [`TARGET`] is not installed.
pub fn check_target_installed() -> Result<(), Error> {
    let output = Command::new(rustc())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| wasmtime::format_err!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let lib = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib");
    if !lib.is_dir() {
        wasmtime::bail!(
            "the {TARGET} target is not installed for the toolchain in {sysroot}: \
             run `rustup target add {TARGET}`"
        );
    }
    Ok(())
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

/// The result of [`build_example`].
#[derive(Debug, Clone)]
pub struct Built {
    /// The component (`.wasm`).
    pub wasm: PathBuf,
    /// How long `cargo build` took (near zero when nothing changed).
    pub build_time: Duration,
}

/// Builds the example with `cargo build -p pglite-wasi-example --target wasm32-wasip2`
/// (debug profile) into `target_dir` — a directory of its own, so that a `cargo test`
/// holding the outer target directory's lock cannot deadlock with it.
pub fn build_example(target_dir: &Path) -> Result<Built, Error> {
    check_target_installed()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = Instant::now();
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", EXAMPLE, "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir)
        // Settings of the outer build that must not leak into this one.
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| wasmtime::format_err!("cannot run cargo: {e}"))?;
    let build_time = start.elapsed();
    if !output.status.success() {
        wasmtime::bail!(
            "cargo build -p {EXAMPLE} --target {TARGET} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let wasm = target_dir
        .join(TARGET)
        .join("debug")
        .join(format!("{EXAMPLE}.wasm"));
    if !wasm.is_file() {
        wasmtime::bail!("cargo build succeeded but {} is missing", wasm.display());
    }
    Ok(Built { wasm, build_time })
}

/// The sandbox's network rule: TCP connections to loopback addresses only (plus the
/// wildcard bind a connect performs); no listening, accepting or UDP.
pub fn loopback_only(addr: SocketAddr, usage: SocketAddrUse) -> bool {
    match usage {
        SocketAddrUse::TcpConnect => addr.ip().is_loopback(),
        SocketAddrUse::TcpBind => addr.ip().is_loopback() || addr.ip().is_unspecified(),
        _ => false,
    }
}

/// What a run of the guest produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit status: 0 for success, 1 for failure (WASI 0.2's `exit` carries only
    /// success or failure, so `exit(2)` in the guest is 1 too); a trap is an [`Error`]
    /// instead.
    pub exit_code: i32,
    /// Standard output (empty when inherited).
    pub stdout: String,
    /// Standard error (empty when inherited).
    pub stderr: String,
}

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// A compiled command component, ready to run any number of times.
pub struct Program {
    /// The guest's `argv[0]`: the file name without `.wasm`.
    name: String,
    engine: Engine,
    component: Component,
    linker: Linker<Host>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").finish_non_exhaustive()
    }
}

/// Bytes of standard output or error kept when captured.
const CAPTURE_LIMIT: usize = 1 << 20;

impl Program {
    /// Compiles the component at `wasm` (a `wasi:cli/command`, as `cargo build
    /// --target wasm32-wasip2` makes for a binary).
    pub fn load(wasm: &Path) -> Result<Program, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, wasm)
            .map_err(|e| e.context(format!("cannot compile {}", wasm.display())))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let name = wasm
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Program {
            name,
            engine,
            component,
            linker,
        })
    }

    /// Runs the component's `main` with `args` (after the program name) and
    /// environment `env`, in the loopback-only sandbox, on the calling thread. With
    /// `capture`, standard output and error are collected into the [`Outcome`];
    /// otherwise they go to this process's.
    pub fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        capture: bool,
    ) -> Result<Outcome, Error> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&self.name)
            .args(args)
            .envs(env)
            .allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(true)
            .socket_addr_check(|addr, usage| Box::pin(async move { loopback_only(addr, usage) }));
        let pipes = capture.then(|| {
            let stdout = MemoryOutputPipe::new(CAPTURE_LIMIT);
            let stderr = MemoryOutputPipe::new(CAPTURE_LIMIT);
            wasi.stdout(stdout.clone()).stderr(stderr.clone());
            (stdout, stderr)
        });
        if !capture {
            wasi.inherit_stdio();
        }
        let mut store = Store::new(
            &self.engine,
            Host {
                ctx: wasi.build(),
                table: ResourceTable::new(),
            },
        );
        let command = WasiCommand::instantiate(&mut store, &self.component, &self.linker)?;
        let exit_code = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(e.context("the guest trapped")),
            },
        };
        let text = |pipe: &MemoryOutputPipe| String::from_utf8_lossy(&pipe.contents()).into_owned();
        let (stdout, stderr) = match &pipes {
            Some((out, err)) => (text(out), text(err)),
            None => (String::new(), String::new()),
        };
        Ok(Outcome {
            exit_code,
            stdout,
            stderr,
        })
    }
}
