//! Unpacking the embedded archive into a versioned directory, once.
//!
//! Layout under a base directory `B`:
//!
//! ```text
//! B/17.5.20261006c-e04abc5c3153fe8c/          the runtime root (guest `/tmp`)
//!     pglite/bin/pglite.wasi, pglite/lib, pglite/share, pglite/password
//!     .pglite-assets-complete                 completion marker (see below)
//! B/.17.5.20261006c-e04abc5c3153fe8c.tmp-*    an unpack in progress
//! B/.17.5.20261006c-e04abc5c3153fe8c.stale-*  a damaged tree being removed
//! ```
//!
//! A tree is unpacked into a fresh `.tmp-*` sibling, checked (the module's
//! SHA-256 included), given its marker, and only then renamed to its final
//! name, so the final name never holds a half-written tree. When two
//! installers race, the first rename wins; the loser sees a complete tree,
//! uses it and deletes its own copy.
//!
//! The marker records the pins, the module's size and modification time (its
//! hash was checked before the marker was written) and the size of every
//! unpacked file. The fast path reads the marker and `stat`s those files;
//! any difference (file missing, truncated, module rewritten, marker
//! garbled or from another version) makes the tree count as damaged, and it
//! is unpacked again and swapped in. [`Runtime::verify`] goes further and
//! re-hashes the module.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::{ARCHIVE_SHA256, AssetError, MODULE_SHA256, RUNTIME_VERSION};

/// Name of the completion marker inside a runtime root.
const MARKER: &str = ".pglite-assets-complete";
/// First line of the marker; bump when its format changes.
const MARKER_HEADER: &str = "pglite-assets install marker 1";
/// The module, relative to the root.
const MODULE_REL: &str = "pglite/bin/pglite.wasi";
/// The superuser password file, relative to the root.
const PASSWORD_REL: &str = "pglite/password";
/// PostgreSQL's share directory, relative to the root.
const SHARE_REL: &str = "pglite/share/postgresql";
/// Top-level directory of every archive entry; it maps to the root.
const ARCHIVE_TOP: &str = "tmp";
/// Leftover temporary trees older than this are removed.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);
/// How often the rename into place is retried when others interfere.
const PUBLISH_ATTEMPTS: usize = 8;

/// An installed PGlite WASI runtime tree.
///
/// Obtained from [`install`] or [`install_in`]; the tree was checked when it
/// was unpacked (module SHA-256 equal to [`MODULE_SHA256`]) and its files
/// still had their unpacked sizes when this value was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    root: PathBuf,
    password: String,
}

impl Runtime {
    /// The host directory that the guest sees as `/tmp`: it contains
    /// `pglite/bin/pglite.wasi`, `pglite/lib`, `pglite/share` and
    /// `pglite/password`, so PostgreSQL's prefix is `/tmp/pglite` in the guest.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Host path of the WASI module, `<root>/pglite/bin/pglite.wasi`.
    pub fn module_path(&self) -> PathBuf {
        self.root.join(MODULE_REL)
    }

    /// The superuser password shipped with the runtime (the trimmed content
    /// of `<root>/pglite/password`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// SHA-256 (lower-case hex) of the installed module; always
    /// [`MODULE_SHA256`], since no other module is ever accepted. Suitable as
    /// a cache key for compiled code.
    pub fn module_sha256(&self) -> &str {
        MODULE_SHA256
    }

    /// Checks the tree thoroughly: re-hashes the module (about 10 MB) and
    /// compares every unpacked file with the sizes recorded at install time.
    /// [`install_in`] does the cheap part of this on every call; use this
    /// when a tree may have been tampered with in place.
    pub fn verify(&self) -> Result<(), AssetError> {
        let module = self.module_path();
        let actual = sha256_file(&module)?;
        if actual != MODULE_SHA256 {
            return Err(AssetError::ModuleHashMismatch {
                path: module,
                expected: MODULE_SHA256,
                actual,
            });
        }
        check_installed(&self.root)
            .map(|_| ())
            .map_err(|reason| AssetError::Corrupt {
                dir: self.root.clone(),
                reason,
            })
    }
}

/// Installs the runtime under the user cache:
/// `install_in(&cache_dir().join("runtime"))`.
///
/// See [`install_in`] for what happens and what it costs.
pub fn install() -> Result<Runtime, AssetError> {
    install_in(&crate::cache_dir().join("runtime"))
}

/// Installs the runtime into `base/<RUNTIME_VERSION>-<first 16 hex digits of
/// ARCHIVE_SHA256>/` and returns it.
///
/// When a complete, undamaged tree is already there, this only reads its
/// marker and `stat`s its files (well under a millisecond on a warm cache).
/// Otherwise it unpacks the embedded archive (about a second) into a
/// temporary sibling, checks that `pglite.wasi` hashes to [`MODULE_SHA256`],
/// and renames it into place, replacing a damaged tree if there was one.
/// Safe to call from several threads and processes at once: all of them get
/// the same complete tree.
pub fn install_in(base: &Path) -> Result<Runtime, AssetError> {
    let name = install_dir_name();
    let dir = base.join(&name);
    if let Ok(runtime) = check_installed(&dir) {
        return Ok(runtime);
    }

    fs::create_dir_all(base).map_err(|e| AssetError::io("create directory", base, e))?;
    remove_leftovers(base, &name);

    let staging = TempTree::new(unique_sibling(base, &name, "tmp"));
    fs::create_dir(&staging.path)
        .map_err(|e| AssetError::io("create directory", &staging.path, e))?;
    unpack(crate::archive(), &staging.path)?;
    publish(staging, &dir, base, &name)
}

/// `<RUNTIME_VERSION>-<first 16 hex digits of ARCHIVE_SHA256>`.
fn install_dir_name() -> String {
    format!("{RUNTIME_VERSION}-{}", &ARCHIVE_SHA256[..16])
}

/// Renames the checked `staging` tree to `dir`, coping with other installers.
fn publish(
    mut staging: TempTree,
    dir: &Path,
    base: &Path,
    name: &str,
) -> Result<Runtime, AssetError> {
    let mut set_aside = Vec::new();
    let mut last_error = None;
    let mut result = None;
    for _ in 0..PUBLISH_ATTEMPTS {
        let err = match fs::rename(&staging.path, dir) {
            Ok(()) => {
                staging.keep();
                result = Some(check_installed(dir).map_err(|reason| AssetError::Corrupt {
                    dir: dir.to_path_buf(),
                    reason,
                }));
                break;
            }
            Err(err) => err,
        };
        if fs::symlink_metadata(dir).is_err() {
            // Nothing there (someone moved a damaged tree away meanwhile):
            // the rename failed for another reason, or may now succeed.
            last_error = Some(err);
            continue;
        }
        // Someone else finished first: use theirs; `staging` goes on drop.
        if let Ok(runtime) = check_installed(dir) {
            result = Some(Ok(runtime));
            break;
        }
        // What is there is damaged or incomplete: move it out of the way.
        let aside = unique_sibling(base, name, "stale");
        match fs::rename(dir, &aside) {
            Ok(()) => set_aside.push(aside),
            Err(_) if fs::symlink_metadata(dir).is_err() => {}
            Err(e) => {
                result = Some(Err(AssetError::io(
                    "move a damaged runtime out of the way:",
                    dir,
                    e,
                )));
                break;
            }
        }
        last_error = Some(err);
    }
    for path in set_aside {
        remove_path(&path);
    }
    result.unwrap_or_else(|| {
        Err(AssetError::io(
            "rename the unpacked runtime into place at",
            dir,
            last_error.unwrap_or_else(|| io::Error::other("too many attempts")),
        ))
    })
}

/// The fast path: reads the marker of the tree at `dir` and checks the tree
/// against it. `Err` carries the reason the tree cannot be used as is.
fn check_installed(dir: &Path) -> Result<Runtime, String> {
    let marker_path = dir.join(MARKER);
    let text = match fs::read_to_string(&marker_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err("no completion marker".to_string());
        }
        Err(e) => return Err(format!("cannot read {}: {e}", marker_path.display())),
    };
    let marker = Marker::parse(&text).map_err(|why| format!("marker: {why}"))?;
    marker.check(dir)?;
    let password_path = dir.join(PASSWORD_REL);
    let password = fs::read_to_string(&password_path)
        .map_err(|e| format!("cannot read {}: {e}", password_path.display()))?;
    Ok(Runtime {
        root: dir.to_path_buf(),
        password: password.trim().to_string(),
    })
}

/// What the completion marker records about an unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    module_size: u64,
    /// Modification time of the module as (seconds, nanoseconds) since the
    /// epoch, when the platform reports one.
    module_mtime: Option<(u64, u32)>,
    /// Every unpacked regular file: size and `/`-separated relative path.
    files: Vec<(u64, String)>,
}

impl Marker {
    fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(MARKER_HEADER);
        out.push('\n');
        out.push_str(&format!("version {RUNTIME_VERSION}\n"));
        out.push_str(&format!("archive-sha256 {ARCHIVE_SHA256}\n"));
        out.push_str(&format!("module-sha256 {MODULE_SHA256}\n"));
        out.push_str(&format!("module-size {}\n", self.module_size));
        match self.module_mtime {
            Some((secs, nanos)) => out.push_str(&format!("module-mtime {secs}.{nanos:09}\n")),
            None => out.push_str("module-mtime -\n"),
        }
        for (size, path) in &self.files {
            out.push_str(&format!("file {size} {path}\n"));
        }
        out.push_str("end\n");
        out
    }

    fn parse(text: &str) -> Result<Marker, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MARKER_HEADER) {
            return Err("unknown format".to_string());
        }
        let mut expect = |key: &str| -> Result<&str, String> {
            let line = lines.next().ok_or_else(|| format!("missing {key}"))?;
            match line.split_once(' ') {
                Some((k, value)) if k == key => Ok(value),
                _ => Err(format!("expected {key}, found {line:?}")),
            }
        };
        for (key, pinned) in [
            ("version", RUNTIME_VERSION),
            ("archive-sha256", ARCHIVE_SHA256),
            ("module-sha256", MODULE_SHA256),
        ] {
            let value = expect(key)?;
            if value != pinned {
                return Err(format!("{key} is {value}, expected {pinned}"));
            }
        }
        let module_size = expect("module-size")?
            .parse()
            .map_err(|_| "bad module-size".to_string())?;
        let module_mtime = match expect("module-mtime")? {
            "-" => None,
            value => Some(parse_mtime(value).ok_or("bad module-mtime")?),
        };
        let mut files = Vec::new();
        let mut ended = false;
        for line in lines {
            if line == "end" {
                ended = true;
                break;
            }
            let entry = line.strip_prefix("file ").and_then(|rest| {
                let (size, path) = rest.split_once(' ')?;
                Some((size.parse().ok()?, path.to_string()))
            });
            files.push(entry.ok_or_else(|| format!("bad line {line:?}"))?);
        }
        if !ended {
            return Err("truncated".to_string());
        }
        Ok(Marker {
            module_size,
            module_mtime,
            files,
        })
    }

    /// Compares the tree at `dir` with the record (sizes, module mtime).
    fn check(&self, dir: &Path) -> Result<(), String> {
        let module = dir.join(MODULE_REL);
        let meta = fs::metadata(&module).map_err(|e| format!("{}: {e}", module.display()))?;
        if meta.len() != self.module_size {
            return Err(format!(
                "{} has {} bytes, expected {}",
                module.display(),
                meta.len(),
                self.module_size
            ));
        }
        if self.module_mtime.is_some() && mtime_of(&meta) != self.module_mtime {
            return Err(format!("{} was modified after install", module.display()));
        }
        if !self.files.iter().any(|(_, path)| path == PASSWORD_REL) {
            return Err(format!("marker lists no {PASSWORD_REL}"));
        }
        for (size, rel) in &self.files {
            let path = dir.join(rel);
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() && meta.len() == *size => {}
                Ok(meta) if meta.is_file() => {
                    return Err(format!(
                        "{} has {} bytes, expected {size}",
                        path.display(),
                        meta.len()
                    ));
                }
                Ok(_) => return Err(format!("{} is not a file", path.display())),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(())
    }
}

fn parse_mtime(value: &str) -> Option<(u64, u32)> {
    let (secs, nanos) = value.split_once('.')?;
    Some((secs.parse().ok()?, nanos.parse().ok()?))
}

fn mtime_of(meta: &fs::Metadata) -> Option<(u64, u32)> {
    let since = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((since.as_secs(), since.subsec_nanos()))
}

/// Unpacks `archive` (the `.tar.xz`) into the empty directory `dest`, checks
/// the result and writes the completion marker.
fn unpack(archive: &[u8], dest: &Path) -> Result<(), AssetError> {
    let actual = hex::encode(Sha256::digest(archive));
    if actual != ARCHIVE_SHA256 {
        return Err(AssetError::ArchiveHashMismatch {
            expected: ARCHIVE_SHA256,
            actual,
        });
    }
    let mut tar_bytes = Vec::with_capacity(archive.len() * 5);
    lzma_rs::xz_decompress(&mut &archive[..], &mut tar_bytes).map_err(|e| {
        AssetError::BadArchive {
            reason: format!("xz: {e}"),
        }
    })?;
    let files = unpack_tar(&tar_bytes[..], dest)?;
    drop(tar_bytes);

    for rel in [SHARE_REL, PASSWORD_REL, MODULE_REL] {
        let path = dest.join(rel);
        if fs::symlink_metadata(&path).is_err() {
            return Err(AssetError::MissingFile { path });
        }
    }
    let module = dest.join(MODULE_REL);
    let actual = sha256_file(&module)?;
    if actual != MODULE_SHA256 {
        return Err(AssetError::ModuleHashMismatch {
            path: module,
            expected: MODULE_SHA256,
            actual,
        });
    }
    let meta = fs::metadata(&module).map_err(|e| AssetError::io("inspect", &module, e))?;
    let marker = Marker {
        module_size: meta.len(),
        module_mtime: mtime_of(&meta),
        files,
    };
    let marker_path = dest.join(MARKER);
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&marker_path)?;
        file.write_all(marker.render().as_bytes())?;
        file.sync_all()
    };
    write().map_err(|e| AssetError::io("write", &marker_path, e))
}

/// Unpacks a tar stream whose entries all live under `tmp/` into `dest`
/// (`tmp/x` lands at `dest/x`). Only directories and regular files are
/// accepted. Returns the unpacked files with their sizes, sorted by path.
fn unpack_tar(reader: impl io::Read, dest: &Path) -> Result<Vec<(u64, String)>, AssetError> {
    let bad = |e: io::Error| AssetError::BadArchive {
        reason: format!("tar: {e}"),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_mtime(true);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = entry_target(&raw)? else {
            continue;
        };
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target)
                    .map_err(|e| AssetError::io("create directory", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| AssetError::io("create directory", parent, e))?;
                }
                entry
                    .unpack(&target)
                    .map_err(|e| AssetError::io("unpack archive entry to", &target, e))?;
                let size = fs::metadata(&target)
                    .map_err(|e| AssetError::io("inspect", &target, e))?
                    .len();
                files.push((size, rel));
            }
            _ => {
                return Err(AssetError::UnsafeEntry {
                    entry: raw,
                    reason: "only directories and regular files are unpacked",
                });
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

/// Maps an archive path to a `/`-separated path relative to the root: strips
/// the leading `tmp/`, refuses absolute paths, `..` and anything outside
/// `tmp/`. `Ok(None)` for `tmp/` itself.
fn entry_target(raw: &str) -> Result<Option<String>, AssetError> {
    let refuse = |reason| AssetError::UnsafeEntry {
        entry: raw.to_string(),
        reason,
    };
    if raw.contains('\\') {
        return Err(refuse("backslash in path"));
    }
    let mut parts = Vec::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => {
                parts.push(part.to_str().ok_or_else(|| refuse("path is not UTF-8"))?)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("path contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
        }
    }
    match parts.split_first() {
        Some((&top, rest)) if top == ARCHIVE_TOP => Ok((!rest.is_empty()).then(|| rest.join("/"))),
        _ => Err(refuse("path is outside tmp/")),
    }
}

fn sha256_file(path: &Path) -> Result<String, AssetError> {
    let mut file = fs::File::open(path).map_err(|e| AssetError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| AssetError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A fresh sibling name `.<name>.<kind>-<pid>-<counter>-<nanos>` in `base`.
fn unique_sibling(base: &Path, name: &str, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base.join(format!(
        ".{name}.{kind}-{}-{count}-{nanos}",
        std::process::id()
    ))
}

/// Best effort: removes temporary and set-aside trees of `name` in `base`
/// that are older than [`LEFTOVER_AGE`] (left by killed processes).
fn remove_leftovers(base: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let prefixes = [format!(".{name}.tmp-"), format!(".{name}.stale-")];
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEFTOVER_AGE);
        if old {
            remove_path(&entry.path());
        }
    }
}

fn remove_path(path: &Path) {
    if fs::remove_dir_all(path).is_err() {
        let _ = fs::remove_file(path);
    }
}

/// A directory that is deleted on drop unless [`TempTree::keep`] was called.
struct TempTree {
    path: PathBuf,
    keep: bool,
}

impl TempTree {
    fn new(path: PathBuf) -> Self {
        TempTree { path, keep: false }
    }

    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if !self.keep {
            remove_path(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_mapped_or_refused() {
        assert_eq!(entry_target("tmp/").unwrap(), None);
        assert_eq!(entry_target("./tmp").unwrap(), None);
        assert_eq!(
            entry_target("tmp/pglite/bin/pglite.wasi")
                .unwrap()
                .as_deref(),
            Some("pglite/bin/pglite.wasi")
        );
        assert_eq!(
            entry_target("./tmp/./pglite/share/").unwrap().as_deref(),
            Some("pglite/share")
        );
        for bad in [
            "/etc/passwd",
            "/tmp/pglite/x",
            "tmp/../etc/passwd",
            "tmp/pglite/../../x",
            "../tmp/x",
            "pglite/bin/x",
            "tmp\\..\\x",
            "",
        ] {
            let err = entry_target(bad).expect_err(bad);
            assert!(
                matches!(err, AssetError::UnsafeEntry { .. }),
                "{bad}: {err}"
            );
        }
    }

    /// Builds a one-entry tar whose name is written raw, bypassing the
    /// `tar` crate's own path checks, as a hostile archive would.
    fn raw_tar(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        let mut out = Vec::new();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn hostile_tar_entries_are_refused_and_write_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("dest");
        fs::create_dir(&dest).unwrap();
        for (name, kind) in [
            ("tmp/../escaped", tar::EntryType::Regular),
            ("/abs-escaped", tar::EntryType::Regular),
            ("elsewhere/file", tar::EntryType::Regular),
            ("tmp/link", tar::EntryType::Symlink),
            ("tmp/hard", tar::EntryType::Link),
        ] {
            let tar = raw_tar(name, kind, b"boom");
            let err = unpack_tar(&tar[..], &dest).expect_err(name);
            assert!(
                matches!(err, AssetError::UnsafeEntry { .. }),
                "{name}: {err}"
            );
        }
        assert!(!scratch.path().join("escaped").exists());
        assert!(fs::read_dir(&dest).unwrap().next().is_none());

        // And a well-formed entry goes where it should.
        let tar = raw_tar("tmp/pglite/ok.txt", tar::EntryType::Regular, b"fine");
        let files = unpack_tar(&tar[..], &dest).unwrap();
        assert_eq!(files, vec![(4, "pglite/ok.txt".to_string())]);
        assert_eq!(fs::read(dest.join("pglite/ok.txt")).unwrap(), b"fine");
    }

    #[test]
    fn marker_round_trips_and_rejects_garbage() {
        let marker = Marker {
            module_size: 10,
            module_mtime: Some((1_790_000_000, 5)),
            files: vec![(3, "pglite/password".into()), (7, "pglite/a b".into())],
        };
        assert_eq!(Marker::parse(&marker.render()).unwrap(), marker);
        let none = Marker {
            module_mtime: None,
            ..marker.clone()
        };
        assert_eq!(Marker::parse(&none.render()).unwrap(), none);

        let text = marker.render();
        assert!(Marker::parse("").is_err());
        assert!(Marker::parse(&text[..text.len() - 4]).is_err(), "truncated");
        assert!(Marker::parse(&text.replace(MODULE_SHA256, &"0".repeat(64))).is_err());
        assert!(Marker::parse(&text.replace(RUNTIME_VERSION, "17.4.0")).is_err());
        assert!(Marker::parse(&text.replace("file 7", "file x")).is_err());
    }
}
