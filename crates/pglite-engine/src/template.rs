//! Template clusters: initdb once per machine, copy for every temporary database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::EngineError;
use crate::compile::CompiledRuntime;
use crate::wasm::{WasmEngine, WasmEngineOptions};

/// Bump when what a fresh cluster contains changes (setup SQL, initdb options).
const TEMPLATE_VERSION: u32 = 3;
/// Marks a template directory as complete.
const COMPLETE_MARKER: &str = ".pglite-template-complete";

/// A cleanly shut down cluster, ready to be copied.
#[derive(Debug, Clone)]
pub struct Template {
    dir: PathBuf,
    /// What is in `dir`, listed at the first copy.
    tree: Arc<OnceLock<Tree>>,
}

/// The directories and files of a template, relative to its directory.
#[derive(Debug)]
struct Tree {
    /// Every directory below the root, parents before children.
    dirs: Vec<PathBuf>,
    /// Every file, largest first.
    files: Vec<(PathBuf, u64)>,
}

impl Template {
    /// The process-wide template in the user cache, created on first use.
    pub fn shared() -> Result<Template, EngineError> {
        static SHARED: OnceLock<Mutex<Option<Template>>> = OnceLock::new();
        let mut slot = SHARED
            .get_or_init(|| Mutex::new(None))
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(template) = slot.as_ref() {
            return Ok(template.clone());
        }
        let compiled = CompiledRuntime::shared()?;
        let template =
            Template::prepare_in(&compiled, &pglite_assets::cache_dir().join("templates"))?;
        *slot = Some(template.clone());
        Ok(template)
    }

    /// Find or create the template for `compiled` under `base`.
    pub fn prepare_in(
        compiled: &Arc<CompiledRuntime>,
        base: &Path,
    ) -> Result<Template, EngineError> {
        let sha = compiled.runtime().module_sha256();
        let dir = base.join(format!("{}-v{TEMPLATE_VERSION}", &sha[..sha.len().min(16)]));
        if dir.join(COMPLETE_MARKER).is_file() {
            return Ok(Template::at(dir));
        }
        std::fs::create_dir_all(base).map_err(|e| EngineError::io(base, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(base)
            .map_err(|e| EngineError::io(base, e))?;
        let cluster = staging.path().join("cluster");
        let started = std::time::Instant::now();
        eprintln!("pglite: creating the template cluster (initdb, first run only)...");
        let engine = WasmEngine::open_with(compiled, &cluster, &WasmEngineOptions::default())?;
        engine.shutdown()?;
        remove_recycled_wal(&cluster)?;
        std::fs::write(cluster.join(COMPLETE_MARKER), b"")
            .map_err(|e| EngineError::io(&cluster, e))?;
        eprintln!(
            "pglite: template cluster ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        match std::fs::rename(&cluster, &dir) {
            Ok(()) => {}
            // Another process finished first: use theirs.
            Err(_) if dir.join(COMPLETE_MARKER).is_file() => {}
            Err(e) => return Err(EngineError::io(&dir, e)),
        }
        Ok(Template::at(dir))
    }

    fn at(dir: PathBuf) -> Template {
        Template {
            dir,
            tree: Arc::default(),
        }
    }

    /// The template's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copy the template into `dest` (created; must not exist or be empty).
    ///
    /// The files are copied on two threads: copying into a fresh tmpfs directory is bound
    /// by the kernel allocating and filling pages, which a second core does in parallel.
    pub fn clone_into(&self, dest: &Path) -> Result<(), EngineError> {
        let tree = match self.tree.get() {
            Some(tree) => tree,
            None => {
                let mut tree = Tree {
                    dirs: Vec::new(),
                    files: Vec::new(),
                };
                tree.scan(&self.dir, Path::new(""))?;
                tree.files.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
                self.tree.get_or_init(|| tree)
            }
        };
        std::fs::create_dir_all(dest).map_err(|e| EngineError::io(dest, e))?;
        for dir in &tree.dirs {
            let target = dest.join(dir);
            std::fs::create_dir(&target).map_err(|e| EngineError::io(&target, e))?;
        }
        // Largest first, dealt alternately: each thread gets about half of the bytes.
        let copy_every_other = |first: usize| -> Result<(), EngineError> {
            for (file, _) in tree.files.iter().skip(first).step_by(2) {
                let source = self.dir.join(file);
                std::fs::copy(&source, dest.join(file)).map_err(|e| EngineError::io(&source, e))?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| copy_every_other(1));
            let mine = copy_every_other(0);
            let theirs = helper.join().unwrap_or_else(|_| {
                Err(EngineError::Unusable(
                    "the template copy thread panicked".into(),
                ))
            });
            mine.and(theirs)
        })
    }
}

impl Tree {
    /// Add what is below `root.join(rel)` (the marker file excepted).
    fn scan(&mut self, root: &Path, rel: &Path) -> Result<(), EngineError> {
        let dir = root.join(rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| EngineError::io(&dir, e))? {
            let entry = entry.map_err(|e| EngineError::io(&dir, e))?;
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| EngineError::io(&dir, e))?;
            if kind.is_dir() {
                self.dirs.push(path.clone());
                self.scan(root, &path)?;
            } else if entry.file_name() != COMPLETE_MARKER {
                let len = entry
                    .metadata()
                    .map_err(|e| EngineError::io(&dir, e))?
                    .len();
                self.files.push((path, len));
            }
        }
        Ok(())
    }
}

/// Delete the WAL segments a clean shutdown left for reuse, keeping the current one.
///
/// After the shutdown checkpoint every segment older than the checkpoint's has been
/// removed or renamed to a future name for reuse, so the lowest-numbered segment holds
/// the checkpoint and the others are spare (4 of the template's ~27 MB). PostgreSQL
/// creates new segments when it needs them; every temporary database is spared copying
/// the spare ones.
fn remove_recycled_wal(cluster: &Path) -> Result<(), EngineError> {
    let wal = cluster.join("pg_wal");
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(&wal).map_err(|e| EngineError::io(&wal, e))? {
        let name = entry.map_err(|e| EngineError::io(&wal, e))?.file_name();
        let name = name.to_string_lossy();
        if name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            segments.push(name.into_owned());
        }
    }
    segments.sort();
    for spare in segments.iter().skip(1) {
        let path = wal.join(spare);
        std::fs::remove_file(&path).map_err(|e| EngineError::io(&path, e))?;
    }
    Ok(())
}
