//! The shared side of the server: the engine, the FIFO lock around the one backend
//! session, and the bookkeeping every connection sees (clients, LISTEN
//! channels, statements waiting to be closed, session settings).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;
use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};
use tokio::sync::Semaphore;

use crate::lock::EngineLock;
use crate::protocol;
use crate::scram::Verifier;
use crate::spin::Spinning;
use crate::sql::{quote_ident, quote_literal};

/// Session settings (lowercased name → value) that differ from their reset values.
pub(crate) type Settings = BTreeMap<String, String>;

/// The settings of the session that differ from the reset values, as the server tracks
/// them per client. Transaction-scoped parameters are left out.
const SNAPSHOT_SQL: &str = "SELECT lower(name), setting FROM pg_catalog.pg_settings \
     WHERE context IN ('user', 'superuser') AND setting IS DISTINCT FROM reset_val \
     AND name NOT LIKE 'transaction\\_%'";

/// What opening the engine reports.
pub(crate) struct Opened {
    pub startup_reply: Vec<u8>,
    pub data_dir: PathBuf,
    pub baseline: Settings,
}

/// Stack of the threads that run the engine: the one that opens it (initdb and
/// recovery run there) and every connection's thread. Guest code itself is held to
/// `pglite_engine::MAX_WASM_STACK` (1 MiB); this leaves room for the host's frames.
/// Only the pages a thread touches become resident.
pub(crate) const ENGINE_STACK: usize = 16 << 20;

/// Open the engine on `dir` (on a thread of its own with a large stack) and read the
/// session's baseline settings. The engine is then driven by whichever connection
/// holds the [`EngineLock`], on that connection's thread.
pub(crate) fn open_engine(dir: &Path, database: &str) -> Result<(WasmEngine, Opened), String> {
    let dir = dir.to_path_buf();
    let options = WasmEngineOptions::default().database(database);
    let thread = std::thread::Builder::new()
        .name("pglite-engine-open".into())
        .stack_size(ENGINE_STACK)
        .spawn(move || -> Result<(WasmEngine, Opened), String> {
            let mut engine = WasmEngine::open(&dir, &options).map_err(|e| e.to_string())?;
            let mut reply = Vec::new();
            engine
                .exchange(&protocol::query(SNAPSHOT_SQL), &mut reply)
                .map_err(|e| e.to_string())?;
            let opened = Opened {
                startup_reply: engine.startup_reply().to_vec(),
                data_dir: engine.data_dir().to_path_buf(),
                baseline: parse_snapshot(&reply),
            };
            Ok((engine, opened))
        })
        .map_err(|e| format!("starting the engine thread: {e}"))?;
    thread
        .join()
        .unwrap_or_else(|_| Err("opening the database panicked".into()))
}

/// Parse the rows of [`SNAPSHOT_SQL`].
fn parse_snapshot(reply: &[u8]) -> Settings {
    protocol::backend_messages(reply)
        .filter(|(tag, _)| *tag == b'D')
        .filter_map(|(_, frame)| {
            let mut row = protocol::data_row(frame).into_iter();
            Some((row.next()??, row.next()?.unwrap_or_default()))
        })
        .collect()
}

/// The one backend session, behind the FIFO lock. Whoever holds the lock owns it.
pub(crate) struct EngineState {
    /// The engine; `None` after it panicked or was shut down.
    engine: Option<WasmEngine>,
    /// The last message the engine processed completed a Query or Sync and nothing
    /// is pending (no half-sent extended-protocol batch).
    pub clean: bool,
    /// Transaction status from the last ReadyForQuery.
    pub status: u8,
    /// The session's settings as last applied or observed.
    pub settings: Settings,
}

impl EngineState {
    /// Send whole frontend messages to the engine and return its reply.
    ///
    /// `clean` is cleared first, so a caller that fails mid-exchange leaves the
    /// session marked for recovery. Runs the engine on the calling thread, which must
    /// not be a tokio runtime worker (Wasmtime's synchronous WASI would panic there).
    pub fn exchange(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.exchange_into(input, &mut out)?;
        Ok(out)
    }

    /// [`EngineState::exchange`] appending the reply to `out` (a reused buffer).
    pub fn exchange_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.clean = false;
        let Some(engine) = self.engine.as_mut() else {
            return Err("the engine is no longer available".into());
        };
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.exchange(input, out)));
        match run {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => {
                // The instance is in an unknown state: stop using it.
                self.engine = None;
                Err("the engine panicked".into())
            }
        }
    }

    /// Take the engine out (for the final shutdown).
    pub fn take_engine(&mut self) -> Option<WasmEngine> {
        self.engine.take()
    }
}

/// Another connection's entry in the registry.
pub(crate) struct ClientEntry {
    pub pid: i32,
    pub secret: i32,
    /// Notifications for the connection; send, then wake it.
    pub mailbox: std::sync::mpsc::Sender<Bytes>,
    /// Wakes the connection's thread.
    pub waker: Arc<Waker>,
    pub channels: HashSet<String>,
    /// Set by a CancelRequest: the connection stops waiting for the engine.
    pub cancel: Arc<AtomicBool>,
}

impl ClientEntry {
    /// Hand `note` to the connection and wake it.
    pub fn deliver(&self, note: Bytes) {
        if self.mailbox.send(note).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Server configuration used by connections.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub database: String,
    pub queue_timeout: Duration,
    pub holder_timeout: Duration,
    pub max_message_size: usize,
    pub max_copy_size: usize,
    /// How long a connection polls its socket after a reply before sleeping.
    pub spin: Duration,
}

/// State shared by all connections.
pub(crate) struct Core {
    pub config: Config,
    /// The one session, behind the FIFO lock.
    pub engine: Arc<EngineLock>,
    pub clients: Mutex<HashMap<u32, ClientEntry>>,
    /// Wakers of every open connection (also before startup completes), for shutdown.
    live: Mutex<HashMap<u32, Arc<Waker>>>,
    shutting_down: AtomicBool,
    /// Statement names of gone or replaced statements, closed by the next owner.
    pub pending_close: Mutex<Vec<String>>,
    /// The backend's LISTEN set must be rebuilt from the clients' channels.
    pub listen_dirty: AtomicBool,
    /// Settings of a fresh session (after the engine's session defaults).
    pub baseline: Settings,
    /// ParameterStatus values of the engine's session.
    pub parameter_status: Vec<(String, String)>,
    pub next_id: AtomicU32,
    /// Custom (dotted) settings some client has set; `pg_settings` does not list them.
    pub custom_names: Mutex<BTreeSet<String>>,
    pub verifier: Option<Verifier>,
    pub connections: Arc<Semaphore>,
    pub connections_limit: usize,
    /// The spin budget and the slots of the threads spinning now.
    pub spinning: Spinning,
}

impl Core {
    pub fn new(
        config: Config,
        engine: WasmEngine,
        opened: &Opened,
        verifier: Option<Verifier>,
        max_connections: usize,
    ) -> Core {
        let mut parameter_status: Vec<(String, String)> =
            protocol::backend_messages(&opened.startup_reply)
                .filter(|(tag, _)| *tag == b'S')
                .filter_map(|(_, frame)| {
                    let mut r = protocol::Reader::new(&frame[5..]);
                    Some((r.cstr().ok()?.to_string(), r.cstr().ok()?.to_string()))
                })
                .collect();
        for (name, value) in &mut parameter_status {
            if name == "session_authorization" && value.is_empty() {
                *value = pglite_engine::SUPERUSER.to_string();
            }
        }
        Core {
            spinning: Spinning::new(config.spin, Spinning::default_limit()),
            config,
            engine: Arc::new(EngineLock::new(EngineState {
                engine: Some(engine),
                clean: true,
                status: b'I',
                settings: opened.baseline.clone(),
            })),
            clients: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            pending_close: Mutex::new(Vec::new()),
            listen_dirty: AtomicBool::new(false),
            baseline: opened.baseline.clone(),
            parameter_status,
            next_id: AtomicU32::new(1),
            custom_names: Mutex::new(BTreeSet::new()),
            verifier,
            connections: Arc::new(Semaphore::new(max_connections)),
            connections_limit: max_connections,
        }
    }

    pub fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u32, ClientEntry>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Waker>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection's thread starts: shutdown will wake it.
    pub fn connection_opened(&self, id: u32, waker: Arc<Waker>) {
        self.live().insert(id, waker);
    }

    /// A connection's thread ends.
    pub fn connection_closed(&self, id: u32) {
        self.live().remove(&id);
    }

    /// The server is stopping: every connection ends at its next wait.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for waker in self.live().values() {
            let _ = waker.wake();
        }
    }

    /// Whether the server is stopping.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Queue statement names to be closed by the next owner of the engine.
    pub fn close_later(&self, names: impl IntoIterator<Item = String>) {
        self.pending_close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(names);
    }

    /// Remember custom settings named in `sql`.
    pub fn note_custom_settings(&self, sql: &str) {
        let names = crate::sql::custom_settings(sql);
        if !names.is_empty() {
            self.custom_names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(names);
        }
    }

    /// CancelRequest: a connection waiting for the engine stops waiting and gets
    /// 57014. A statement already running inside the engine cannot be interrupted.
    pub fn cancel(&self, pid: i32, secret: i32) {
        if let Some(c) = self
            .clients()
            .values()
            .find(|c| c.pid == pid && c.secret == secret)
        {
            c.cancel.store(true, Ordering::SeqCst);
            let _ = c.waker.wake();
        }
    }

    /// The union of every connection's LISTEN channels.
    fn listen_union(&self) -> BTreeSet<String> {
        self.clients()
            .values()
            .flat_map(|c| c.channels.iter().cloned())
            .collect()
    }

    /// Make the session ready for a new owner whose settings are `desired`: recover
    /// from an abandoned batch or transaction, close statements of gone clients,
    /// rebuild the LISTEN set and apply the owner's settings.
    ///
    /// Returns the ErrorResponse frame if the settings could not be applied.
    pub fn prepare(
        &self,
        st: &mut EngineState,
        desired: &Settings,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut input = Vec::new();
        if !st.clean || st.status != b'I' {
            input.extend(protocol::sync());
            input.extend(protocol::query("ROLLBACK"));
        }
        let names =
            std::mem::take(&mut *self.pending_close.lock().unwrap_or_else(|e| e.into_inner()));
        if !names.is_empty() {
            for name in &names {
                input.extend(protocol::close_statement(name));
            }
            input.extend(protocol::sync());
        }
        if self.listen_dirty.swap(false, Ordering::SeqCst) {
            let mut sql = String::from("UNLISTEN *");
            for channel in self.listen_union() {
                sql.push_str("; LISTEN ");
                sql.push_str(&quote_ident(&channel));
            }
            input.extend(protocol::query(&sql));
        }
        if !input.is_empty() {
            let reply = st.exchange(&input)?;
            self.after_housekeeping(st, &reply);
        }
        self.apply_settings(st, desired)
    }

    /// Make the session's settings `desired` (inside the owner's transaction, if it has
    /// one open). Returns the ErrorResponse frame if they could not be applied.
    pub fn apply_settings(
        &self,
        st: &mut EngineState,
        desired: &Settings,
    ) -> Result<Option<Vec<u8>>, String> {
        if st.settings == *desired {
            return Ok(None);
        }
        let sql = reconcile_sql(&st.settings, desired);
        let reply = st.exchange(&protocol::query(&sql))?;
        self.after_housekeeping(st, &reply);
        let error = protocol::backend_messages(&reply)
            .find(|(tag, _)| *tag == b'E')
            .map(|(_, f)| f.to_vec());
        if error.is_some() {
            st.settings = self.snapshot(st)?;
        } else {
            st.settings = desired.clone();
        }
        Ok(error)
    }

    /// Read the session's current settings.
    pub fn snapshot(&self, st: &mut EngineState) -> Result<Settings, String> {
        let mut sql = String::from(SNAPSHOT_SQL);
        for name in self
            .custom_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let name = quote_literal(name);
            sql.push_str(&format!(
                " UNION ALL SELECT {name}, pg_catalog.current_setting({name}, true) \
                 WHERE coalesce(pg_catalog.current_setting({name}, true), '') <> ''"
            ));
        }
        let reply = st.exchange(&protocol::query(&sql))?;
        self.after_housekeeping(st, &reply);
        Ok(parse_snapshot(&reply))
    }

    /// Update the session state after an exchange whose reply nobody else sees.
    fn after_housekeeping(&self, st: &mut EngineState, reply: &[u8]) {
        let mut last = None;
        for (tag, frame) in protocol::backend_messages(reply) {
            match tag {
                b'Z' => {
                    st.status = frame[5];
                    last = Some(b'Z');
                }
                b'E' => {
                    self.check_crash(st, frame);
                    last = Some(b'E');
                }
                b'A' | b'N' | b'S' => {}
                other => last = Some(other),
            }
        }
        st.clean = last == Some(b'Z');
    }

    /// If `frame` is the engine's "crashed and restarted" error, forget the session
    /// state it lost.
    pub fn check_crash(&self, st: &mut EngineState, frame: &[u8]) {
        let (code, message) = protocol::error_fields(frame);
        if code == "XX000" && message.contains("engine crashed") {
            st.settings = self.baseline.clone();
            self.listen_dirty.store(true, Ordering::SeqCst);
        }
    }
}

/// SQL that turns the session's `current` settings into `desired`.
fn reconcile_sql(current: &Settings, desired: &Settings) -> String {
    let mut parts = Vec::new();
    for name in current.keys() {
        if !desired.contains_key(name) {
            let quoted: Vec<String> = name.split('.').map(quote_ident).collect();
            parts.push(format!("RESET {}", quoted.join(".")));
        }
    }
    let sets: Vec<String> = desired
        .iter()
        .filter(|(name, value)| current.get(*name) != Some(*value))
        .map(|(name, value)| {
            format!(
                "pg_catalog.set_config({}, {}, false)",
                quote_literal(name),
                quote_literal(value)
            )
        })
        .collect();
    if !sets.is_empty() {
        parts.push(format!("SELECT {}", sets.join(", ")));
    }
    parts.join("; ")
}
