//! Temporary databases prepared ahead of use.
//!
//! A temporary database costs a copy of the template cluster (~28 MB, ~1,000 files) and
//! a PostgreSQL start: tens of milliseconds that a test suite pays for every test. With
//! `PGLITE_PREPARE_TEMPORARY=1`, once a process has asked for a second temporary
//! database, each time one is handed out the next is copied and started on a
//! background thread. One prepared database (one idle engine, ~50 MB) is kept at most.
//!
//! It is off by default: in `pglite bench`'s loop (open, one query, drop, open again at
//! once) it gained nothing measurable, since the next database has had no time to get
//! ready, and it keeps an extra engine resident. It can help callers that work between
//! temporary databases on a machine with idle cores. A database left unused when the
//! process exits is deleted by an exit handler, which also waits for one still being
//! prepared; a killed process leaves it behind in the scratch directory, like any
//! temporary database.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use crate::{EngineError, Template, WasmEngine, WasmEngineOptions};

/// A fresh copy of the template with PostgreSQL started on it (database `postgres`).
#[derive(Debug)]
pub struct TemporaryDatabase {
    /// The directory, deleted when dropped (after the engine is gone).
    pub dir: tempfile::TempDir,
    /// The engine, with its session open.
    pub engine: WasmEngine,
}

/// A new, empty directory for a temporary database in the scratch directory.
fn new_database_dir() -> Result<tempfile::TempDir, EngineError> {
    let base = crate::scratch_dir();
    tempfile::Builder::new()
        .prefix("pglite-")
        .tempdir_in(&base)
        .map_err(|e| EngineError::io(&base, e))
}

impl TemporaryDatabase {
    /// Copy the template and start PostgreSQL on the copy, on this thread.
    pub fn prepare() -> Result<TemporaryDatabase, EngineError> {
        let template = Template::shared()?;
        Self::prepare_in(&template, new_database_dir()?)
    }

    fn prepare_in(
        template: &Template,
        dir: tempfile::TempDir,
    ) -> Result<TemporaryDatabase, EngineError> {
        template.clone_into(dir.path())?;
        let engine = WasmEngine::open(dir.path(), &WasmEngineOptions::default())?;
        Ok(TemporaryDatabase { dir, engine })
    }

    /// A temporary database: the one prepared in the background if it is ready (or
    /// about to be), else one prepared now. With `PGLITE_PREPARE_TEMPORARY=1`, starts
    /// preparing the next one when this process has asked before.
    pub fn take() -> Result<TemporaryDatabase, EngineError> {
        let pool = Pool::get();
        let mut state = pool.lock();
        state.requests += 1;
        // A preparation under way finishes sooner than a new one would; but only one
        // caller waits for it, others (parallel tests) prepare their own at once.
        if state.preparing && state.ready.is_none() && !state.waiting {
            state.waiting = true;
            while state.preparing && state.ready.is_none() {
                state = pool.done.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.waiting = false;
        }
        let ready = state.ready.take();
        let start_next = state.requests >= 2 && !state.preparing && !state.closed && enabled();
        if start_next {
            state.preparing = true;
        }
        drop(state);
        if start_next {
            pool.prepare_next();
        }
        match ready {
            Some(Ok(db)) => Ok(db),
            // A failure in the background is retried in the foreground, where it is
            // reported.
            Some(Err(_)) | None => Self::prepare(),
        }
    }

    /// Drop the database without a shutdown checkpoint (it is deleted right after).
    pub fn discard(self) {
        self.engine.discard();
        drop(self.dir);
    }
}

fn enabled() -> bool {
    cfg!(unix) && std::env::var_os("PGLITE_PREPARE_TEMPORARY").is_some_and(|v| v == "1")
}

#[derive(Default)]
struct State {
    requests: u64,
    preparing: bool,
    /// A caller is waiting for the preparation under way.
    waiting: bool,
    /// The directory being prepared, deleted at exit if it is still there.
    preparing_dir: Option<PathBuf>,
    ready: Option<Result<TemporaryDatabase, EngineError>>,
    /// The process is exiting: prepare nothing more.
    closed: bool,
}

struct Pool {
    state: Mutex<State>,
    done: Condvar,
}

static POOL: OnceLock<Pool> = OnceLock::new();

impl Pool {
    fn get() -> &'static Pool {
        POOL.get_or_init(|| {
            register_exit_cleanup();
            Pool {
                state: Mutex::new(State::default()),
                done: Condvar::new(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prepare one database on a background thread (the caller set `preparing`).
    fn prepare_next(&'static self) {
        let spawned = std::thread::Builder::new()
            .name("pglite-prepare".into())
            .stack_size(16 << 20)
            .spawn(move || {
                let result = (|| {
                    let template = Template::shared()?;
                    let dir = new_database_dir()?;
                    self.lock().preparing_dir = Some(dir.path().to_path_buf());
                    TemporaryDatabase::prepare_in(&template, dir)
                })();
                let mut state = self.lock();
                if state.closed {
                    // The process is exiting; `cleanup` waits for this.
                    drop(state);
                    if let Ok(db) = result {
                        db.discard();
                    }
                    state = self.lock();
                } else {
                    state.ready = Some(result);
                }
                state.preparing = false;
                state.preparing_dir = None;
                drop(state);
                self.done.notify_all();
            });
        if spawned.is_err() {
            self.lock().preparing = false;
            self.done.notify_all();
        }
    }

    /// At exit: delete the prepared database, and wait (a few seconds at most) for one
    /// being prepared, which then deletes itself.
    fn cleanup(&self) {
        let mut state = self.lock();
        state.closed = true;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state.preparing {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                // Give up waiting; at least remove its copy of the template.
                if let Some(dir) = state.preparing_dir.take() {
                    let _ = std::fs::remove_dir_all(dir);
                }
                break;
            }
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let ready = state.ready.take();
        drop(state);
        if let Some(Ok(db)) = ready {
            db.discard();
        }
    }
}

#[cfg(unix)]
fn register_exit_cleanup() {
    extern "C" fn at_exit() {
        if let Some(pool) = POOL.get() {
            pool.cleanup();
        }
    }
    // SAFETY: registers a plain `extern "C"` function. `Pool::cleanup` only waits for
    // the background thread, which never waits for anything while holding the lock.
    unsafe {
        libc::atexit(at_exit);
    }
}

#[cfg(not(unix))]
fn register_exit_cleanup() {}
