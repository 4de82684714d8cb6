//! Turns features and target into the cfgs the code is written against, so that a
//! feature that cannot work on a target is a no-op there instead of a build error:
//!
//! - `pglite_tokio`: the tokio driver (feature `tokio`, not WASI);
//! - `pglite_wstd`: the wasi:sockets driver (feature `wstd`, wasm32-wasip2);
//! - `pglite_async`: either of them, i.e. `AsyncClient` exists;
//! - `pglite_tls`: TLS with rustls/ring (feature `tls`, not WASI);
//! - `pglite_pool`: the connection pool (feature `pool`, which needs tokio).

fn main() {
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let wasi = target_os == "wasi";
    let wasip2 = wasi && target_env == "p2";

    let tokio = feature("TOKIO") && !wasi;
    let wstd = feature("WSTD") && wasip2;
    for (cfg, on) in [
        ("pglite_tokio", tokio),
        ("pglite_wstd", wstd),
        ("pglite_async", tokio || wstd),
        ("pglite_tls", feature("TLS") && !wasi),
        ("pglite_pool", feature("POOL") && tokio),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if on {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
