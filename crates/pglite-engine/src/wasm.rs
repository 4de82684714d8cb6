//! [`WasmEngine`]: PostgreSQL 17 (the PGlite WASI build) in a Wasmtime instance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Instance, Linker, Memory, Store, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::compile::CompiledRuntime;
use crate::datadir::DataDirLock;
use crate::{Engine, EngineError};

/// Data directory as the guest sees it.
const GUEST_PGDATA: &str = "/tmp/pglite/base";
/// Input file the guest reads when a message is too large for the shared buffer.
const INPUT_FILE: &str = ".s.PGSQL.5432.in";
/// Name the input file is written under before being renamed into place.
const INPUT_LOCK_FILE: &str = ".s.PGSQL.5432.lock.in";
/// Output file the guest writes when a reply is too large for the shared buffer.
const OUTPUT_FILE: &str = ".s.PGSQL.5432.out";
/// Size of the random file served as `/dev/urandom`.
const URANDOM_BYTES: usize = 64 * 1024;

struct Host {
    wasi: WasiP1Ctx,
}

struct Exports {
    memory: Memory,
    interactive_write: TypedFunc<i32, ()>,
    interactive_one: TypedFunc<(), ()>,
    interactive_read: TypedFunc<(), i32>,
    get_channel: TypedFunc<(), i32>,
    get_buffer_addr: TypedFunc<i32, i32>,
    get_buffer_size: TypedFunc<i32, i32>,
    shutdown: TypedFunc<(), ()>,
}

/// Options for starting a [`WasmEngine`].
#[derive(Debug, Clone, Default)]
pub struct WasmEngineOptions {
    /// Print the guest's stderr (PostgreSQL's log) to this process's stderr.
    pub guest_stderr: bool,
}

/// PostgreSQL running inside Wasmtime on one data directory.
///
/// It holds an exclusive lock on the data directory for its whole life. After a trap
/// it refuses further use (PostgreSQL's WAL makes every committed row survive; reopen
/// the directory to continue).
pub struct WasmEngine {
    store: Store<Host>,
    exports: Exports,
    data_dir: PathBuf,
    init_status: i32,
    broken: Option<String>,
    closed: bool,
    _scratch: tempfile::TempDir,
    _lock: DataDirLock,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("data_dir", &self.data_dir)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// Start PostgreSQL on `data_dir`, creating the cluster (initdb) if the directory has
    /// none. The directory is locked until the engine is dropped or shut down.
    pub fn open(data_dir: &Path, options: &WasmEngineOptions) -> Result<WasmEngine, EngineError> {
        let compiled = CompiledRuntime::shared()?;
        WasmEngine::open_with(&compiled, data_dir, options)
    }

    /// Like [`WasmEngine::open`] with an explicit compiled runtime.
    pub fn open_with(
        compiled: &Arc<CompiledRuntime>,
        data_dir: &Path,
        options: &WasmEngineOptions,
    ) -> Result<WasmEngine, EngineError> {
        std::fs::create_dir_all(data_dir).map_err(|e| EngineError::io(data_dir, e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| EngineError::io(data_dir, e))?;
        let lock = DataDirLock::acquire(&data_dir)?;
        // Leftovers of an engine that was killed mid-exchange would be read as input.
        for stale in [INPUT_FILE, INPUT_LOCK_FILE, OUTPUT_FILE] {
            let _ = std::fs::remove_file(data_dir.join(stale));
        }
        let scratch = tempfile::Builder::new()
            .prefix("pglite-guest-")
            .tempdir()
            .map_err(|e| EngineError::io(std::env::temp_dir(), e))?;
        let dev = scratch.path().join("dev");
        let home = scratch.path().join("home");
        for dir in [&dev, &home] {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        }
        std::fs::write(dev.join("urandom"), random_bytes(URANDOM_BYTES))
            .map_err(|e| EngineError::io(dev.join("urandom"), e))?;

        let root = compiled.runtime.root();
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .args(&["/tmp/pglite/bin/postgres"])
            .envs(&[
                ("PREFIX", "/tmp/pglite"),
                ("PGDATA", GUEST_PGDATA),
                ("PGUSER", "postgres"),
                ("PGDATABASE", "template1"),
                ("MODE", "REACT"),
                ("REPL", "N"),
                ("PGSYSCONFDIR", "/tmp/pglite"),
                ("PGCLIENTENCODING", "UTF8"),
                ("LC_CTYPE", "C.UTF-8"),
                ("TZ", "UTC"),
                ("PGTZ", "UTC"),
                ("HOME", "/home"),
            ]);
        if options.guest_stderr {
            wasi.inherit_stderr();
        }
        wasi.preopened_dir(root, "/tmp", FsPerms::ReadOnly)?
            .preopened_dir(&data_dir, GUEST_PGDATA, FsPerms::ReadWrite)?
            .preopened_dir(&home, "/home", FsPerms::ReadWrite)?
            .preopened_dir(&dev, "/dev", FsPerms::ReadOnly)?;
        let host = Host {
            wasi: wasi.build_p1(),
        };

        let mut store = Store::new(&compiled.engine, host);
        let mut linker: Linker<Host> = Linker::new(&compiled.engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
        let instance = linker.instantiate(&mut store, &compiled.module)?;
        let exports = Exports::find(&instance, &mut store)?;

        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        if let Err(e) = start.call(&mut store, ()) {
            if !matches!(e.downcast_ref::<I32Exit>(), Some(I32Exit(0))) {
                return Err(EngineError::Cluster {
                    path: data_dir,
                    message: format!("runtime start failed: {e:#}"),
                });
            }
        }
        let initdb = instance.get_typed_func::<(), i32>(&mut store, "pgl_initdb")?;
        let init_status = initdb.call(&mut store, ()).map_err(|e| EngineError::Cluster {
            path: data_dir.clone(),
            message: format!("initdb failed: {e:#}"),
        })?;
        let use_wire = instance.get_typed_func::<i32, ()>(&mut store, "use_wire")?;
        use_wire.call(&mut store, 1)?;
        let backend = instance.get_typed_func::<(), ()>(&mut store, "pgl_backend")?;
        backend.call(&mut store, ()).map_err(|e| EngineError::Cluster {
            path: data_dir.clone(),
            message: format!("backend start failed: {e:#}"),
        })?;

        Ok(WasmEngine {
            store,
            exports,
            data_dir,
            init_status,
            broken: None,
            closed: false,
            _scratch: scratch,
            _lock: lock,
        })
    }

    /// The data directory this engine runs on (canonical path).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The status `pgl_initdb` returned (the runtime reports success with non-zero codes:
    /// observed 2 for a fresh cluster and 14 for an existing one).
    pub fn init_status(&self) -> i32 {
        self.init_status
    }

    /// Shut PostgreSQL down cleanly (checkpoint) and release the data directory.
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.shutdown_in_place()
    }

    fn shutdown_in_place(&mut self) -> Result<(), EngineError> {
        if self.closed || self.broken.is_some() {
            return Ok(());
        }
        self.closed = true;
        let shutdown = self.exports.shutdown;
        match shutdown.call(&mut self.store, ()) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.downcast_ref::<I32Exit>(), Some(I32Exit(0))) => Ok(()),
            Err(e) => Err(EngineError::Trapped(format!("during shutdown: {e:#}"))),
        }
    }

    fn check_usable(&self) -> Result<(), EngineError> {
        if let Some(reason) = &self.broken {
            return Err(EngineError::Unusable(reason.clone()));
        }
        if self.closed {
            return Err(EngineError::Unusable("it was shut down".into()));
        }
        Ok(())
    }

    fn trapped(&mut self, e: wasmtime::Error) -> EngineError {
        let reason = format!("{e:#}");
        self.broken = Some(format!("it crashed earlier ({reason})"));
        EngineError::Trapped(reason)
    }

    fn exchange_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        let store = &mut self.store;
        let ex = &self.exports;
        let channel = ex.get_channel.call(&mut *store, ())?;
        let addr = ex.get_buffer_addr.call(&mut *store, channel.max(0))? as usize;
        let size = ex.get_buffer_size.call(&mut *store, channel.max(0))? as usize;
        // The reply starts after the input and one separator byte; leave room for it.
        let in_memory = input.len() < size / 2;
        let sent = if in_memory {
            ex.interactive_write.call(&mut *store, input.len() as i32)?;
            ex.memory.data_mut(&mut *store)[addr..addr + input.len()].copy_from_slice(input);
            input.len()
        } else {
            let lock = self.data_dir.join(INPUT_LOCK_FILE);
            std::fs::write(&lock, input).map_err(|e| EngineError::io(&lock, e))?;
            let target = self.data_dir.join(INPUT_FILE);
            std::fs::rename(&lock, &target).map_err(|e| EngineError::io(&target, e))?;
            ex.interactive_write.call(&mut *store, 0)?;
            0
        };
        ex.interactive_one.call(&mut *store, ())?;
        let channel = ex.get_channel.call(&mut *store, ())?;
        if channel >= 0 {
            let n = ex.interactive_read.call(&mut *store, ())?;
            if n > 0 {
                let start = addr + sent + 1;
                let data = ex.memory.data(&*store);
                let end = start + n as usize;
                if end > data.len() {
                    return Err(EngineError::Unusable(format!(
                        "reply of {n} bytes at {start} lies outside guest memory"
                    )));
                }
                out.extend_from_slice(&data[start..end]);
            }
        } else {
            let path = self.data_dir.join(OUTPUT_FILE);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    out.extend_from_slice(&bytes);
                    std::fs::remove_file(&path).map_err(|e| EngineError::io(&path, e))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EngineError::io(&path, e)),
            }
        }
        ex.interactive_write.call(&mut *store, 0)?;
        Ok(())
    }
}

impl Engine for WasmEngine {
    fn exchange(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        self.check_usable()?;
        match self.exchange_inner(input, out) {
            Ok(()) => Ok(()),
            Err(EngineError::Wasmtime(e)) => Err(self.trapped(e)),
            Err(other) => Err(other),
        }
    }
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_in_place() {
            eprintln!("pglite: shutdown of {} failed: {e}", self.data_dir.display());
        }
    }
}

impl Exports {
    fn find(instance: &Instance, store: &mut Store<Host>) -> Result<Exports, EngineError> {
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| EngineError::Module("no exported memory".into()))?;
        Ok(Exports {
            memory,
            interactive_write: instance.get_typed_func(&mut *store, "interactive_write")?,
            interactive_one: instance.get_typed_func(&mut *store, "interactive_one")?,
            interactive_read: instance.get_typed_func(&mut *store, "interactive_read")?,
            get_channel: instance.get_typed_func(&mut *store, "get_channel")?,
            get_buffer_addr: instance.get_typed_func(&mut *store, "get_buffer_addr")?,
            get_buffer_size: instance.get_typed_func(&mut *store, "get_buffer_size")?,
            shutdown: instance.get_typed_func(&mut *store, "pgl_shutdown")?,
        })
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}
