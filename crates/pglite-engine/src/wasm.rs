//! [`WasmEngine`]: PostgreSQL 17 (the PGlite WASI build) in a Wasmtime instance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compile::CompiledRuntime;
use crate::datadir::DataDirLock;
use crate::guest::{Guest, GuestLayout, is_clean_exit};
use crate::{Engine, EngineError, wire};

/// Input file the guest reads when a message is too large for the shared buffer.
const INPUT_FILE: &str = ".s.PGSQL.5432.in";
/// Name the input file is written under before being renamed into place.
const INPUT_LOCK_FILE: &str = ".s.PGSQL.5432.lock.in";
/// Output file the guest renames its reply file to when a reply is too large for the
/// shared buffer. The reply file is kept in memory (see [`crate::reply_file`]), so the
/// rename hands the bytes to the host without touching the disk; the file on disk is
/// still read if it ever appears.
const OUTPUT_FILE: &str = crate::reply_file::REPLY_FILE;
/// A reply file left on disk by an engine that predates the in-memory one.
const OUTPUT_LOCK_FILE: &str = crate::reply_file::REPLY_LOCK_FILE;
/// The only role the runtime's cluster has.
pub const SUPERUSER: &str = "postgres";

/// Session settings that restore PostgreSQL's normal behaviour, and memory settings
/// suited to a guest whose memory never shrinks.
///
/// The runtime starts its backend with initdb's single-user command line, which
/// leaves `search_path = pg_catalog`, `enable_seqscan = off`,
/// `allow_system_table_mods = on`, `exit_on_error = on` and `log_min_messages = debug1`
/// as the *reset* values; the runtime also ignores StartupMessage options and role or
/// database settings (`ALTER ROLE ... SET`). So every session is given the normal
/// values with `SET` right after the handshake. `RESET ALL` or `DISCARD ALL` bring the
/// runtime's values back; run [`SESSION_DEFAULTS_SQL`] again after them.
///
/// WebAssembly linear memory only grows: one `CREATE INDEX` with PostgreSQL's default
/// `maintenance_work_mem` (64 MB) would keep that much resident for the engine's life.
/// So `maintenance_work_mem` is 16 MB (sorts beyond it spill to temporary files, as
/// PostgreSQL does), parallel workers are off (a single-user backend has no workers to
/// start) and `jit` is off (the runtime has no JIT provider). All of them can be
/// changed per session with `SET` (or `PgliteBuilder::setting`).
pub const SESSION_DEFAULTS_SQL: &str = "SET search_path TO \"$user\", public; \
     SET enable_seqscan TO on; SET allow_system_table_mods TO off; \
     SET exit_on_error TO off; SET log_min_messages TO warning; \
     SET client_min_messages TO notice; \
     SET maintenance_work_mem TO '16MB'; SET max_parallel_workers_per_gather TO 0; \
     SET max_parallel_maintenance_workers TO 0; SET jit TO off";

/// Options for starting a [`WasmEngine`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WasmEngineOptions {
    /// Database the backend session attaches to (default `postgres`).
    pub database: String,
    /// Print the guest's stderr (PostgreSQL's log) to this process's stderr.
    pub guest_stderr: bool,
}

impl Default for WasmEngineOptions {
    fn default() -> Self {
        WasmEngineOptions {
            database: "postgres".into(),
            guest_stderr: std::env::var_os("PGLITE_GUEST_STDERR").is_some(),
        }
    }
}

impl WasmEngineOptions {
    /// Attach the session to `database`.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }
}

/// PostgreSQL running inside Wasmtime on one data directory, with one session open.
///
/// Opening creates the cluster when the directory has none, starts the backend and
/// completes the startup handshake; [`WasmEngine::startup_reply`] holds what the backend
/// answered (AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery). After
/// that, [`Engine::exchange`] carries ordinary protocol messages.
///
/// The engine holds an exclusive lock on the data directory for its whole life. After
/// a trap it refuses further use: PostgreSQL's WAL keeps every committed row, and
/// reopening the directory continues from there.
pub struct WasmEngine {
    compiled: Arc<CompiledRuntime>,
    guest_stderr: bool,
    guest: Guest,
    layout: GuestLayout,
    data_dir: PathBuf,
    database: String,
    password: String,
    created: bool,
    startup_reply: Vec<u8>,
    buffer_addr: usize,
    buffer_size: usize,
    broken: Option<String>,
    closed: bool,
    _lock: DataDirLock,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
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
        let created = !data_dir.join("PG_VERSION").exists();
        if created {
            let mut entries =
                std::fs::read_dir(&data_dir).map_err(|e| EngineError::io(&data_dir, e))?;
            if entries.next().is_some() {
                return Err(EngineError::Cluster {
                    path: data_dir,
                    message: "the directory is not empty and holds no PostgreSQL cluster \
                              (PG_VERSION is missing); use an empty or new directory"
                        .into(),
                });
            }
        }
        remove_exchange_leftovers(&data_dir);
        let layout = GuestLayout::new(compiled, &data_dir)?;
        let database = if created {
            "postgres"
        } else {
            options.database.as_str()
        };
        let guest = Guest::start(compiled, &layout, database, options.guest_stderr)?;
        let mut engine = WasmEngine::attach(
            compiled,
            options.guest_stderr,
            guest,
            layout,
            data_dir,
            database,
            lock,
        )?;
        if created {
            // The session that ran initdb keeps initdb's state (search_path =
            // information_schema, client_min_messages = debug3, ...): start over.
            engine.shutdown_in_place()?;
            engine.restart(&options.database)?;
            engine.created = true;
        }
        Ok(engine)
    }

    fn attach(
        compiled: &Arc<CompiledRuntime>,
        guest_stderr: bool,
        mut guest: Guest,
        layout: GuestLayout,
        data_dir: PathBuf,
        database: &str,
        lock: DataDirLock,
    ) -> Result<WasmEngine, EngineError> {
        let buffer_addr = guest.exports.get_buffer_addr.call(&mut guest.store, 0)? as usize;
        let buffer_size = guest.exports.get_buffer_size.call(&mut guest.store, 0)? as usize;
        let mut engine = WasmEngine {
            compiled: compiled.clone(),
            guest_stderr,
            guest,
            layout,
            data_dir,
            database: database.to_string(),
            password: compiled.runtime.password().to_string(),
            created: false,
            startup_reply: Vec::new(),
            buffer_addr,
            buffer_size,
            broken: None,
            closed: false,
            _lock: lock,
        };
        engine.handshake()?;
        Ok(engine)
    }

    /// Start a fresh instance on the same directory and lock (the old one must be shut
    /// down or dead) and open its session.
    fn restart(&mut self, database: &str) -> Result<(), EngineError> {
        remove_exchange_leftovers(&self.data_dir);
        self.guest = Guest::start(&self.compiled, &self.layout, database, self.guest_stderr)?;
        self.database = database.to_string();
        self.closed = false;
        self.broken = None;
        self.handshake()
    }

    /// After a trap: start a new instance (PostgreSQL recovers from its WAL, as after a
    /// crash) and answer the failed request with an ErrorResponse and ReadyForQuery, so
    /// the client sees an ordinary error. If the restart fails, the engine is unusable.
    fn recover(&mut self, trap: &wasmtime::Error, out: &mut Vec<u8>) -> Result<(), EngineError> {
        let reason = describe_trap(trap);
        let database = self.database.clone();
        if let Err(e) = self.restart(&database) {
            let message = format!("{reason}; restarting it failed: {e}");
            self.broken = Some(message.clone());
            return Err(EngineError::Trapped(message));
        }
        out.extend_from_slice(&wire::error_response(
            "XX000",
            &format!(
                "the PostgreSQL engine crashed ({reason}) and was restarted; \
                 the session was reset and uncommitted work is lost"
            ),
        ));
        out.extend_from_slice(&wire::ready_for_query(b'I'));
        Ok(())
    }

    /// Run the startup handshake the runtime requires (MD5 as `postgres`).
    fn handshake(&mut self) -> Result<(), EngineError> {
        let mut reply = Vec::new();
        self.exchange_no_recovery(
            &wire::startup_message(SUPERUSER, &self.database),
            &mut reply,
        )?;
        let salt = wire::messages(&reply).find_map(|(tag, body)| {
            (tag == b'R' && body.len() == 8 && body[..4] == [0, 0, 0, 5])
                .then(|| body[4..].to_vec())
        });
        if let Some(salt) = salt {
            let password = self.password.clone();
            reply.clear();
            self.exchange_no_recovery(
                &wire::md5_password_message(SUPERUSER, &password, &salt),
                &mut reply,
            )?;
        }
        if let Some(error) = wire::first_error(&reply) {
            return Err(EngineError::Cluster {
                path: self.data_dir.clone(),
                message: format!("session start failed: {error}"),
            });
        }
        if !wire::messages(&reply).any(|(tag, _)| tag == b'Z') {
            return Err(EngineError::Cluster {
                path: self.data_dir.clone(),
                message: "session start did not complete (no ReadyForQuery)".into(),
            });
        }
        self.startup_reply = reply;
        // The runtime falls back to GMT; with the host's zone files mounted (see
        // `guest::host_zoneinfo`) the configured UTC can be used, as PostgreSQL would.
        // One exchange for both: each costs a round trip into the guest.
        if crate::guest::host_zoneinfo().is_some() {
            self.housekeeping(&format!("{SESSION_DEFAULTS_SQL}; SET TimeZone TO 'UTC'"))
        } else {
            self.housekeeping(SESSION_DEFAULTS_SQL)
        }
    }

    /// Run SQL the engine needs for itself; any ErrorResponse fails.
    pub fn housekeeping(&mut self, sql: &str) -> Result<(), EngineError> {
        let mut reply = Vec::new();
        self.exchange_no_recovery(&wire::query_message(sql), &mut reply)?;
        match wire::first_error(&reply) {
            None => Ok(()),
            Some(error) => Err(EngineError::Cluster {
                path: self.data_dir.clone(),
                message: format!("setup query failed: {error}"),
            }),
        }
    }

    /// The backend's answer to the startup handshake: AuthenticationOk, ParameterStatus
    /// messages, BackendKeyData and ReadyForQuery.
    pub fn startup_reply(&self) -> &[u8] {
        &self.startup_reply
    }

    /// The data directory this engine runs on (canonical path).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database the session is attached to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// True when this open created the cluster (ran initdb).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Shut PostgreSQL down cleanly (checkpoint) and release the data directory.
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.shutdown_in_place()
    }

    /// Stop using the engine without shutting PostgreSQL down: no checkpoint, the lock
    /// released, the instance dropped. Only for a directory that is deleted next (a
    /// temporary database); anything else would be reopened with crash recovery.
    pub fn discard(mut self) {
        self.closed = true;
    }

    fn shutdown_in_place(&mut self) -> Result<(), EngineError> {
        if self.closed || self.broken.is_some() {
            return Ok(());
        }
        self.closed = true;
        let shutdown = self.guest.exports.shutdown.clone();
        match shutdown.call(&mut self.guest.store, ()) {
            Ok(()) => Ok(()),
            Err(e) if is_clean_exit(&e) => Ok(()),
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

    /// Exchange without trap recovery (used while starting a session).
    fn exchange_no_recovery(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        self.check_usable()?;
        self.exchange_inner(input, out).map_err(|e| match e {
            EngineError::Wasmtime(trap) => {
                let reason = describe_trap(&trap);
                self.broken = Some(reason.clone());
                EngineError::Trapped(reason)
            }
            other => other,
        })
    }

    fn exchange_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        let store = &mut self.guest.store;
        let ex = &self.guest.exports;
        // Small inputs go into the shared buffer at its start and the reply follows them;
        // inputs that would not leave room for the reply go through a file.
        if input.len() < self.buffer_size / 2 {
            ex.interactive_write.call(&mut *store, input.len() as i32)?;
            let start = self.buffer_addr;
            ex.memory.data_mut(&mut *store)[start..start + input.len()].copy_from_slice(input);
        } else {
            let lock = self.data_dir.join(INPUT_LOCK_FILE);
            std::fs::write(&lock, input).map_err(|e| EngineError::io(&lock, e))?;
            let target = self.data_dir.join(INPUT_FILE);
            std::fs::rename(&lock, &target).map_err(|e| EngineError::io(&target, e))?;
            ex.interactive_write.call(&mut *store, 0)?;
        }
        ex.interactive_one.call(&mut *store, ())?;
        // After a call the channel is the address of the reply in memory, or negative
        // when the reply went to the output file.
        let channel = ex.get_channel.call(&mut *store, ())?;
        if channel >= 0 {
            let n = ex.interactive_read.call(&mut *store, ())?;
            if n > 0 {
                let start = channel as usize;
                let end = start + n as usize;
                let data = ex.memory.data(&*store);
                let reply = data.get(start..end).ok_or_else(|| {
                    EngineError::Unusable(format!(
                        "reply of {n} bytes at {start} lies outside guest memory"
                    ))
                })?;
                out.extend_from_slice(reply);
            }
        } else if let Some(reply) = store.data_mut().reply_file.take_reply() {
            if out.is_empty() {
                *out = reply;
            } else {
                out.extend_from_slice(&reply);
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

/// Delete the exchange files an engine killed mid-exchange may have left in `data_dir`:
/// the next instance would read them as its input or reply.
fn remove_exchange_leftovers(data_dir: &Path) {
    for stale in [INPUT_FILE, INPUT_LOCK_FILE, OUTPUT_FILE, OUTPUT_LOCK_FILE] {
        let _ = std::fs::remove_file(data_dir.join(stale));
    }
}

impl Engine for WasmEngine {
    fn exchange(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        self.check_usable()?;
        match self.exchange_inner(input, out) {
            Ok(()) => Ok(()),
            Err(EngineError::Wasmtime(trap)) => self.recover(&trap, out),
            Err(other) => Err(other),
        }
    }
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_in_place() {
            eprintln!(
                "pglite: shutdown of {} failed: {e}",
                self.data_dir.display()
            );
        }
    }
}

/// A short description of a trap, without Wasmtime's backtrace.
fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => {
            "stack overflow: the statement recursed too deeply".to_string()
        }
        Some(trap) => format!("wasm trap: {trap}"),
        None => e.root_cause().to_string(),
    }
}
