//! Installing the real embedded runtime into temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pglite_assets::{
    ARCHIVE_SHA256, AssetError, MODULE_SHA256, RUNTIME_VERSION, Runtime, archive, install_in,
};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn expected_root(base: &Path) -> PathBuf {
    base.join(format!("{RUNTIME_VERSION}-{}", &ARCHIVE_SHA256[..16]))
}

/// Everything a correct tree must have.
fn assert_intact(runtime: &Runtime, base: &Path) {
    let root = runtime.root();
    assert_eq!(root, expected_root(base));
    assert_eq!(runtime.module_path(), root.join("pglite/bin/pglite.wasi"));
    let module = fs::read(runtime.module_path()).unwrap();
    assert!(module.len() > 9_000_000, "module is {} bytes", module.len());
    assert_eq!(sha256(&module), MODULE_SHA256);
    assert!(module.starts_with(b"\0asm"));
    assert_eq!(runtime.module_sha256(), MODULE_SHA256);
    assert!(root.join("pglite/share/postgresql").is_dir());
    assert!(root.join("pglite/share/postgresql/postgres.bki").is_file());
    assert!(root.join("pglite/share/postgresql/extension").is_dir());
    assert!(root.join("pglite/lib/postgresql").is_dir());
    assert!(!runtime.password().is_empty());
    assert_eq!(runtime.password(), runtime.password().trim());
    let raw = fs::read_to_string(root.join("pglite/password")).unwrap();
    assert_eq!(runtime.password(), raw.trim());
    runtime.verify().unwrap();
}

/// Names in `base` other than the runtime root (temporary or set-aside trees).
fn leftovers(base: &Path) -> Vec<String> {
    let root = expected_root(base);
    fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| *p != root)
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn embedded_archive_matches_its_pin() {
    let bytes = archive();
    assert_eq!(bytes.len(), 2_568_224);
    assert_eq!(sha256(bytes), ARCHIVE_SHA256);
    assert!(bytes.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]));
    assert_eq!(RUNTIME_VERSION, "17.5.20261006c");
    assert_eq!(ARCHIVE_SHA256.len(), 64);
    assert_eq!(MODULE_SHA256.len(), 64);
}

#[test]
fn install_unpacks_a_complete_tree_and_then_is_fast() {
    let base = tempfile::tempdir().unwrap();
    let first = install_in(base.path()).unwrap();
    assert_intact(&first, base.path());
    assert_eq!(first.password(), "password");
    assert!(
        leftovers(base.path()).is_empty(),
        "{:?}",
        leftovers(base.path())
    );

    // Later calls only check the marker: best of a few runs, to be robust
    // against a busy machine.
    let mut best = Duration::MAX;
    for _ in 0..10 {
        let start = Instant::now();
        let again = install_in(base.path()).unwrap();
        best = best.min(start.elapsed());
        assert_eq!(again, first);
    }
    println!("installed-runtime check: {best:?}");
    assert!(best < Duration::from_millis(5), "fast path took {best:?}");
}

#[test]
fn concurrent_installs_agree_on_one_intact_tree() {
    let base = tempfile::tempdir().unwrap();
    let threads = 3;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let base = base.path().to_path_buf();
            std::thread::spawn(move || {
                barrier.wait();
                install_in(&base)
            })
        })
        .collect();
    let runtimes: Vec<Runtime> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    for runtime in &runtimes {
        assert_eq!(runtime, &runtimes[0]);
    }
    assert_intact(&runtimes[0], base.path());
    assert!(
        leftovers(base.path()).is_empty(),
        "{:?}",
        leftovers(base.path())
    );
}

/// Installs, damages the tree with `damage`, installs again and checks that
/// the damage was noticed and repaired.
fn repaired_after(damage: impl FnOnce(&Path)) {
    let base = tempfile::tempdir().unwrap();
    let runtime = install_in(base.path()).unwrap();
    damage(runtime.root());
    let repaired = install_in(base.path()).unwrap();
    assert_eq!(repaired, runtime);
    assert_intact(&repaired, base.path());
    assert!(
        leftovers(base.path()).is_empty(),
        "{:?}",
        leftovers(base.path())
    );
}

#[test]
fn truncated_module_is_reextracted() {
    repaired_after(|root| {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(root.join("pglite/bin/pglite.wasi"))
            .unwrap();
        file.set_len(1000).unwrap();
    });
}

#[test]
fn rewritten_module_of_same_size_is_reextracted() {
    repaired_after(|root| {
        let path = root.join("pglite/bin/pglite.wasi");
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 0xFF;
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&path, bytes).unwrap();
    });
}

#[test]
fn deleted_share_file_is_reextracted() {
    repaired_after(|root| {
        fs::remove_file(root.join("pglite/share/postgresql/postgres.bki")).unwrap();
    });
}

#[test]
fn deleted_password_is_reextracted() {
    repaired_after(|root| fs::remove_file(root.join("pglite/password")).unwrap());
}

#[test]
fn garbled_marker_is_reextracted() {
    repaired_after(|root| {
        fs::write(root.join(".pglite-assets-complete"), "not a marker\n").unwrap();
    });
}

#[test]
fn truncated_marker_is_reextracted() {
    repaired_after(|root| {
        let path = root.join(".pglite-assets-complete");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
    });
}

#[test]
fn missing_marker_is_reextracted() {
    repaired_after(|root| fs::remove_file(root.join(".pglite-assets-complete")).unwrap());
}

#[test]
fn half_written_tree_without_marker_is_replaced() {
    let base = tempfile::tempdir().unwrap();
    let root = expected_root(base.path());
    fs::create_dir_all(root.join("pglite/bin")).unwrap();
    fs::write(root.join("pglite/bin/pglite.wasi"), b"partial").unwrap();
    let runtime = install_in(base.path()).unwrap();
    assert_intact(&runtime, base.path());
    assert!(
        leftovers(base.path()).is_empty(),
        "{:?}",
        leftovers(base.path())
    );
}

#[test]
fn file_in_place_of_the_tree_is_replaced() {
    let base = tempfile::tempdir().unwrap();
    fs::write(expected_root(base.path()), b"in the way").unwrap();
    let runtime = install_in(base.path()).unwrap();
    assert_intact(&runtime, base.path());
}

#[test]
fn verify_catches_tampering_the_fast_path_cannot_see() {
    let base = tempfile::tempdir().unwrap();
    let runtime = install_in(base.path()).unwrap();
    let path = runtime.module_path();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[4242] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    // Put the modification time back: size and mtime now look untouched.
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let err = runtime.verify().unwrap_err();
    assert!(
        matches!(&err, AssetError::ModuleHashMismatch { path: p, .. } if *p == path),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(MODULE_SHA256), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn unusable_base_reports_the_path() {
    let scratch = tempfile::tempdir().unwrap();
    let blocker = scratch.path().join("not-a-dir");
    fs::write(&blocker, b"x").unwrap();
    let base = blocker.join("runtime");
    let err = install_in(&base).unwrap_err();
    assert!(matches!(err, AssetError::Io { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
