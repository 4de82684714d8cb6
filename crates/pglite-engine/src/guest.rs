//! One Wasmtime instance of the PostgreSQL module and the file system it sees.

use std::path::{Path, PathBuf};

use wasmtime::{Caller, Instance, Linker, Memory, Store, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::EngineError;
use crate::compile::CompiledRuntime;
use crate::module::{HOOK_MODULE, HOOK_PATH_OPEN};
use crate::reply_file::ReplyFile;

/// Data directory as the guest sees it.
pub const GUEST_PGDATA: &str = "/tmp/pglite/base";
/// Where PostgreSQL looks for its compiled time-zone files.
const GUEST_TIMEZONE_DIR: &str = "/tmp/pglite/share/postgresql/timezone";
/// Read-only parts of the shared runtime tree, mounted under `/tmp/pglite`.
const RUNTIME_DIRS: [&str; 3] = ["bin", "lib", "share"];
/// The guest file descriptor of the first preopen (0–2 are stdin, stdout, stderr).
const FIRST_PREOPEN_FD: u32 = 3;
/// The guest file descriptor of the `/dev` preopen: it is registered first.
const DEV_PREOPEN_FD: i32 = FIRST_PREOPEN_FD as i32;
/// Bytes written to `/dev/urandom` before each open (pgcrypto reads at most 1024).
const URANDOM_BYTES: usize = 4096;

/// Host directories backing one engine's guest file system.
///
/// The guest writes scratch files into `/tmp` (initdb's boot scripts) and into
/// `/tmp/pglite` (the output of emulated commands such as `locale -a`), so both are
/// private to the engine. The shared runtime tree is mounted read-only at
/// `/tmp/pglite/{bin,lib,share}` and the data directory at `/tmp/pglite/base`.
pub struct GuestLayout {
    scratch: tempfile::TempDir,
    data_dir: PathBuf,
}

impl GuestLayout {
    /// Create the private directories for an engine on `data_dir`.
    pub fn new(compiled: &CompiledRuntime, data_dir: &Path) -> Result<GuestLayout, EngineError> {
        let base = crate::scratch_dir();
        let scratch = tempfile::Builder::new()
            .prefix("pglite-guest-")
            .tempdir_in(&base)
            .map_err(|e| EngineError::io(&base, e))?;
        let layout = GuestLayout {
            scratch,
            data_dir: data_dir.to_path_buf(),
        };
        for dir in [
            layout.dir("dev"),
            layout.dir("home"),
            layout.prefix().join("base"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        }
        // Refilled before every open by `add_urandom_hook`.
        let urandom = layout.dir("dev").join("urandom");
        std::fs::write(&urandom, b"").map_err(|e| EngineError::io(&urandom, e))?;
        let password = layout.prefix().join("password");
        std::fs::write(&password, compiled.runtime.password())
            .map_err(|e| EngineError::io(&password, e))?;
        Ok(layout)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn prefix(&self) -> PathBuf {
        self.dir("tmp").join("pglite")
    }
}

/// State of a store: the WASI context, the reply file served from memory and what the
/// `/dev/urandom` hook needs.
pub struct Host {
    pub(crate) wasi: WasiP1Ctx,
    /// The guest's `.s.PGSQL.5432.lock.out` (see [`crate::wasi_overrides`]).
    pub(crate) reply_file: ReplyFile,
    /// The guest descriptor of the data directory's preopen.
    pub(crate) pgdata_fd: u32,
    /// The instance's memory, once instantiated.
    pub(crate) memory: Option<Memory>,
    /// Host path of the file served as `/dev/urandom`.
    urandom: PathBuf,
}

/// The module's exports used for the exchange.
pub struct Exports {
    pub memory: Memory,
    pub interactive_write: TypedFunc<i32, ()>,
    pub interactive_one: TypedFunc<(), ()>,
    pub interactive_read: TypedFunc<(), i32>,
    pub get_channel: TypedFunc<(), i32>,
    pub get_buffer_addr: TypedFunc<i32, i32>,
    pub get_buffer_size: TypedFunc<i32, i32>,
    pub shutdown: TypedFunc<(), ()>,
}

/// A started PostgreSQL instance: `_start`, `pgl_initdb`, wire mode, `pgl_backend`.
pub struct Guest {
    pub store: Store<Host>,
    pub exports: Exports,
}

impl Guest {
    /// Instantiate the module on `layout` and start the backend for `database`.
    pub fn start(
        compiled: &CompiledRuntime,
        layout: &GuestLayout,
        database: &str,
        guest_stderr: bool,
    ) -> Result<Guest, EngineError> {
        let root = compiled.runtime.root().join("pglite");
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .args(&["pglite", "--single", database])
            .envs(&[
                ("ENVIRONMENT", "wasi-embed"),
                ("PREFIX", "/tmp/pglite"),
                ("PGDATA", GUEST_PGDATA),
                ("PGUSER", "postgres"),
                // The backend attaches to this database; the StartupMessage's is ignored.
                ("PGDATABASE", database),
                ("REPL", "N"),
                ("PGSYSCONFDIR", "/tmp/pglite"),
                ("PGCLIENTENCODING", "UTF8"),
                ("LANG", "C.UTF-8"),
                ("TZ", "UTC"),
                ("PGTZ", "UTC"),
                ("HOME", "/home"),
            ]);
        if guest_stderr {
            wasi.inherit_stderr();
        }
        // Registration order fixes the guest descriptors (from 3): /dev must be the first.
        let mut preopens = Vec::new();
        preopens.push((layout.dir("dev"), "/dev".to_string(), FsPerms::ReadOnly));
        preopens.push((layout.dir("tmp"), "/tmp".into(), FsPerms::ReadWrite));
        preopens.push((layout.prefix(), "/tmp/pglite".into(), FsPerms::ReadWrite));
        for shared in RUNTIME_DIRS {
            let guest = format!("/tmp/pglite/{shared}");
            preopens.push((root.join(shared), guest, FsPerms::ReadOnly));
        }
        // The runtime ships no time-zone database, so only GMT and POSIX zone strings
        // would work (and clients that send `TimeZone=UTC`, like SQLx, would fail). The
        // host's compiled zone files use the same format PostgreSQL installs.
        if let Some(zoneinfo) = host_zoneinfo() {
            preopens.push((zoneinfo, GUEST_TIMEZONE_DIR.into(), FsPerms::ReadOnly));
        }
        let pgdata_fd = FIRST_PREOPEN_FD + preopens.len() as u32;
        preopens.push((
            layout.data_dir.clone(),
            GUEST_PGDATA.into(),
            FsPerms::ReadWrite,
        ));
        preopens.push((layout.dir("home"), "/home".into(), FsPerms::ReadWrite));
        for (host_dir, guest_dir, perms) in preopens {
            wasi.preopened_dir(host_dir, guest_dir, perms)?;
        }
        let host = Host {
            wasi: wasi.build_p1(),
            reply_file: ReplyFile::default(),
            pgdata_fd,
            memory: None,
            urandom: layout.dir("dev").join("urandom"),
        };

        let mut store = Store::new(&compiled.engine, host);
        let mut linker: Linker<Host> = Linker::new(&compiled.engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
        crate::wasi_overrides::add_to_linker(&mut linker)?;
        add_urandom_hook(&mut linker)?;
        let instance = linker.instantiate(&mut store, &compiled.module)?;
        store.data_mut().memory = instance.get_memory(&mut store, "memory");
        let exports = Exports::find(&instance, &mut store)?;
        let failed = |step: &str, e: wasmtime::Error| EngineError::Cluster {
            path: layout.data_dir.clone(),
            message: format!("{step} failed: {e:#}"),
        };

        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        if let Err(e) = start.call(&mut store, ())
            && !is_clean_exit(&e)
        {
            return Err(failed("runtime start", e));
        }
        let initdb = instance.get_typed_func::<(), i32>(&mut store, "pgl_initdb")?;
        // Success is reported with non-zero codes (2 after creating a cluster, 14 for an
        // existing one); failures trap, so the status carries no further information.
        let _status = initdb
            .call(&mut store, ())
            .map_err(|e| failed("initdb", e))?;
        let use_wire = instance.get_typed_func::<i32, ()>(&mut store, "use_wire")?;
        use_wire.call(&mut store, 1)?;
        let backend = instance.get_typed_func::<(), ()>(&mut store, "pgl_backend")?;
        backend
            .call(&mut store, ())
            .map_err(|e| failed("backend start", e))?;
        Ok(Guest { store, exports })
    }
}

/// The host's compiled time-zone database: `PGLITE_ZONEINFO`, else
/// `/usr/share/zoneinfo` when it holds a `UTC` zone.
pub fn host_zoneinfo() -> Option<PathBuf> {
    let dir = std::env::var_os("PGLITE_ZONEINFO")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/zoneinfo"));
    dir.join("UTC").is_file().then_some(dir)
}

/// True when a call ended through `proc_exit(0)`.
pub fn is_clean_exit(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<I32Exit>(), Some(I32Exit(0)))
}

/// Give every open of `/dev/urandom` fresh random bytes.
///
/// PostgreSQL's `pg_strong_random` opens `/dev/urandom`, reads and closes it on every
/// call. A WASI preopen can only serve a plain file, whose bytes would repeat on every
/// open (two `gen_random_uuid()` calls would return the same value). The module rewrite
/// (see [`crate::module`]) calls this hook before each `path_open`; when the guest is
/// about to open `urandom` in the `/dev` preopen, the host file is refilled first.
fn add_urandom_hook(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.func_wrap(
        HOOK_MODULE,
        HOOK_PATH_OPEN,
        |mut caller: Caller<'_, Host>,
         dirfd: i32,
         path: i32,
         path_len: i32|
         -> wasmtime::Result<()> {
            if dirfd != DEV_PREOPEN_FD {
                return Ok(());
            }
            let memory = guest_memory(&mut caller)?;
            let name = memory
                .data(&caller)
                .get(path as usize..(path as usize).saturating_add(path_len as usize));
            if name == Some(b"urandom".as_slice()) {
                let mut bytes = vec![0u8; URANDOM_BYTES];
                getrandom::fill(&mut bytes)
                    .map_err(|e| wasmtime::format_err!("random source: {e}"))?;
                std::fs::write(&caller.data().urandom, &bytes)?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

fn guest_memory(caller: &mut Caller<'_, Host>) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::format_err!("guest has no memory export"))
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
