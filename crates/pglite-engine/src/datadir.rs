//! Exclusive ownership of a data directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::EngineError;

/// An exclusive advisory lock (`flock`) on a data directory, held while an engine runs.
///
/// The lock is taken on the directory itself, so nothing is added to it (initdb refuses
/// a non-empty directory).
///
/// The operating system releases it when the process dies, so a lock left by a killed
/// process never blocks the next opener. A second opener, in this process or another,
/// gets [`EngineError::InUse`].
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Lock `dir` (which must exist) or fail with [`EngineError::InUse`].
    pub fn acquire(dir: &Path) -> Result<DataDirLock, EngineError> {
        let path = dir.to_path_buf();
        let file = File::open(&path).map_err(|e| EngineError::io(&path, e))?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(DataDirLock { file, path }),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                Err(EngineError::InUse(dir.to_path_buf()))
            }
            Err(e) => Err(EngineError::io(&path, e)),
        }
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// Where throw-away directories go: `PGLITE_TMPDIR` if set, else `/dev/shm` when it is
/// a writable directory (a RAM file system: creating the ~1,000 files of a cluster
/// takes ~50 ms there against ~1 s on some disks), else the system temporary directory.
///
/// Used for temporary databases and each engine's private guest directories, which
/// are deleted when their owner is dropped.
pub fn scratch_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGLITE_TMPDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm)
        .map(|m| m.is_dir() && !m.permissions().readonly())
        .unwrap_or(false);
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
