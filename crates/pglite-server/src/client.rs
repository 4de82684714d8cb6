//! One client connection: startup, authentication, and the protocol loop that pins
//! the shared engine from the client's first message until ReadyForQuery `I`.
//!
//! A connection runs on a thread of its own with blocking waits ([`Socket`]); while it
//! holds the engine, that thread runs the engine too, so a request is read, executed
//! and answered without handing anything to another thread.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;

use crate::core::{ClientEntry, Core, Settings};
use crate::lock::EngineGuard;
use crate::protocol::{self, Msg, ProtocolViolation, Reader};
use crate::scram;
use crate::socket::{Socket, Stream};
use crate::sql::{self, ListenOp};

/// The longest startup packet accepted.
const MAX_STARTUP: usize = 10_000;
/// Message of the CopyFail the server appends after queries as a safety net.
const SAFETY_COPY_FAIL: &str = "COPY FROM STDIN was not recognised by the pglite server; \
     send it as a statement of its own";

/// Why a connection ends.
#[derive(Debug)]
enum Exit {
    /// The client sent Terminate.
    Terminate,
    /// The client closed the socket.
    Disconnected,
    /// Idle inside a transaction while another client waited.
    HolderTimeout,
    /// The server is shutting down.
    Shutdown,
    /// A malformed message.
    Protocol(String),
    /// The engine failed.
    Engine(String),
    /// A socket error.
    Io,
    /// Close after sending this frame (errors during startup).
    Fatal(Vec<u8>),
    /// A bug in the server (a panic on the connection's thread).
    Panic,
}

impl From<ProtocolViolation> for Exit {
    fn from(e: ProtocolViolation) -> Self {
        Exit::Protocol(e.0)
    }
}

impl From<std::io::Error> for Exit {
    fn from(_: std::io::Error) -> Self {
        Exit::Io
    }
}

/// What the server knows about one of the client's prepared statements.
#[derive(Default)]
struct StmtInfo {
    copy: Option<sql::CopyIn>,
    listen: Vec<ListenOp>,
    set_config: bool,
}

/// Serve one connection until it ends, on the calling thread (a thread of its own
/// with [`crate::core::ENGINE_STACK`], outside any tokio runtime).
pub(crate) fn serve(core: Arc<Core>, stream: Stream, permit: Option<OwnedSemaphorePermit>) {
    let Ok(socket) = Socket::new(stream) else {
        return;
    };
    let mut conn = Conn::new(core, socket);
    let session = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conn.startup(permit.is_some())?;
        conn.run()
    }));
    let exit = match session {
        Ok(Ok(())) => Exit::Terminate,
        Ok(Err(exit)) => exit,
        Err(_) => Exit::Panic,
    };
    conn.finish(exit, permit);
}

fn fatal(code: &str, message: &str, hint: Option<&str>) -> Exit {
    Exit::Fatal(protocol::error("FATAL", code, message, hint))
}

/// Buffers that grew past this are released after use rather than kept.
const KEEP_BUFFER: usize = 1 << 20;

struct Conn {
    core: Arc<Core>,
    socket: Socket,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    id: u32,
    pid: i32,
    registered: bool,
    mailbox: Option<mpsc::Receiver<Bytes>>,
    cancel: Arc<AtomicBool>,
    /// The client's session settings.
    desired: Settings,
    /// The settings right after startup (what RESET ALL / DISCARD ALL return to).
    initial: Settings,
    statements: HashMap<String, StmtInfo>,
    portals: HashMap<String, String>,
    unnamed_seq: u64,
    unnamed: Option<String>,
    guard: Option<EngineGuard>,
    /// Frontend messages gathered for the next engine call.
    input: Vec<u8>,
    /// The engine's last reply (a reused buffer).
    reply: Vec<u8>,
    /// The last forwarded message that matters for `clean` (Q, S or another type).
    last_sig: u8,
    /// The engine reported an error since the last ReadyForQuery.
    error_pending: bool,
    listen_queue: VecDeque<ListenOp>,
    settings_dirty: bool,
    discard_until_sync: bool,
    copy_probe: Option<Probe>,
    /// A message taken off the socket that must be handled next.
    pushed_back: Option<Msg>,
}

impl Conn {
    fn new(core: Arc<Core>, socket: Socket) -> Self {
        let id = core.next_id.fetch_add(1, Ordering::Relaxed);
        core.connection_opened(id, socket.waker().clone());
        let baseline = core.baseline.clone();
        Conn {
            core,
            socket,
            rbuf: BytesMut::with_capacity(8192),
            wbuf: Vec::new(),
            id,
            pid: 10_000 + (id % 2_000_000_000) as i32,
            registered: false,
            mailbox: None,
            cancel: Arc::new(AtomicBool::new(false)),
            desired: baseline.clone(),
            initial: baseline,
            statements: HashMap::new(),
            portals: HashMap::new(),
            unnamed_seq: 0,
            unnamed: None,
            guard: None,
            input: Vec::new(),
            reply: Vec::new(),
            last_sig: b'S',
            error_pending: false,
            listen_queue: VecDeque::new(),
            settings_dirty: false,
            discard_until_sync: false,
            copy_probe: None,
            pushed_back: None,
        }
    }

    // ---------------------------------------------------------------- startup

    fn read_exact_buf(&mut self, n: usize) -> Result<Bytes, Exit> {
        while self.rbuf.len() < n {
            self.read_more()?;
        }
        Ok(self.rbuf.split_to(n).freeze())
    }

    /// Take what the client has sent so far: `Ok(true)` when bytes arrived, `Ok(false)`
    /// when there are none yet.
    fn try_read(&mut self) -> Result<bool, Exit> {
        match self.socket.try_read(&mut self.rbuf)? {
            Some(0) => Err(Exit::Disconnected),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Poll the socket without sleeping for up to the spin budget (right after a
    /// reply, when a quick client's next request is likely): `Ok(true)` when bytes
    /// arrived. Returns at once when spinning is off or enough threads spin already.
    fn spin_read(&mut self) -> Result<bool, Exit> {
        let Some(slot) = self.core.spinning.start() else {
            return Ok(false);
        };
        match self.socket.spin_read(&mut self.rbuf, &slot)? {
            Some(0) => Err(Exit::Disconnected),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Wait for more bytes from the client (startup and authentication).
    fn read_more(&mut self) -> Result<(), Exit> {
        loop {
            if self.try_read()? {
                return Ok(());
            }
            if self.core.is_shutting_down() {
                return Err(Exit::Shutdown);
            }
            self.socket.wait(None)?;
        }
    }

    /// Write `data` now (startup and authentication).
    fn send(&mut self, data: &[u8]) -> Result<(), Exit> {
        let deadline = Instant::now() + self.write_limit();
        self.socket.write_all(data, deadline)?;
        Ok(())
    }

    /// How long a client may take to read a reply: one that stops reading while
    /// holding the engine must not block everyone.
    fn write_limit(&self) -> Duration {
        self.core.config.holder_timeout.max(Duration::from_secs(30))
    }

    fn startup(&mut self, admitted: bool) -> Result<(), Exit> {
        let params = loop {
            let len = self.read_exact_buf(4)?;
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            if !(8..=MAX_STARTUP as i32).contains(&len) {
                return Err(fatal("08P01", "invalid length of startup packet", None));
            }
            let body = self.read_exact_buf(len as usize - 4)?;
            let mut r = Reader::new(&body);
            let code = r.i32()?;
            match code {
                protocol::SSL_REQUEST | protocol::GSSENC_REQUEST => {
                    self.send(b"N")?;
                }
                protocol::CANCEL_REQUEST => {
                    let pid = r.i32()?;
                    let secret = r.i32()?;
                    self.core.cancel(pid, secret);
                    return Err(Exit::Disconnected);
                }
                code if code >> 16 == 3 => {
                    let mut params = Vec::new();
                    loop {
                        let key = r.cstr()?;
                        if key.is_empty() {
                            break;
                        }
                        params.push((key.to_string(), r.cstr()?.to_string()));
                    }
                    if code & 0xffff != 0 {
                        self.negotiate(&params)?;
                    }
                    break params;
                }
                _ => {
                    return Err(fatal(
                        "0A000",
                        &format!(
                            "unsupported frontend protocol {}.{}: server supports 3.0",
                            code >> 16,
                            code & 0xffff
                        ),
                        None,
                    ));
                }
            }
        };
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let Some(user) = get("user") else {
            return Err(fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet",
                None,
            ));
        };
        if !admitted {
            return Err(fatal("53300", "sorry, too many clients already", None));
        }
        let database = get("database")
            .filter(|d| !d.is_empty())
            .unwrap_or(user.clone());
        if database != self.core.config.database {
            return Err(fatal(
                "3D000",
                &format!("database \"{database}\" does not exist on this pglite server"),
                Some(&format!(
                    "This server serves only the database \"{}\"; connect to it instead.",
                    self.core.config.database
                )),
            ));
        }
        self.authenticate(&user)?;
        // The client's settings: startup parameters and `options` (-c name=value).
        let mut requested = Vec::new();
        for (key, value) in &params {
            match key.as_str() {
                "user" | "database" | "replication" => {}
                "options" => {
                    for (k, v) in parse_options(value) {
                        requested.push((k.to_lowercase(), v));
                    }
                }
                k if k.starts_with("_pq_.") => {}
                k => requested.push((k.to_lowercase(), value.clone())),
            }
        }
        for (key, value) in &mut requested {
            // The runtime ships no time zone database: only GMT and POSIX zone specs
            // work, so the many clients that ask for UTC get GMT (the same clock).
            if key == "timezone" && is_utc_alias(value) {
                *value = "GMT".into();
            }
        }
        let mut desired = self.core.baseline.clone();
        desired.extend(requested.iter().cloned());
        self.register();
        let mut warnings = Vec::new();
        if desired != self.core.baseline {
            // Validate and normalise the settings in the session itself.
            self.acquire_raw()?;
            let core = self.core.clone();
            let st = self.guard.as_mut().expect("engine held");
            if core.prepare(st, &desired).map_err(Exit::Engine)?.is_some() {
                // Keep the settings that work; warn about the others.
                let mut accepted = core.baseline.clone();
                for (key, value) in &requested {
                    let mut trial = accepted.clone();
                    trial.insert(key.clone(), value.clone());
                    match core.prepare(st, &trial).map_err(Exit::Engine)? {
                        None => accepted = trial,
                        Some(frame) => {
                            let (_, message) = protocol::error_fields(&frame);
                            warnings.extend(protocol::notice(
                                "WARNING",
                                "22023",
                                &format!("startup parameter \"{key}\" ignored: {message}"),
                            ));
                        }
                    }
                }
                core.prepare(st, &accepted).map_err(Exit::Engine)?;
            }
            let snapshot = core.snapshot(st).map_err(Exit::Engine)?;
            st.settings = snapshot.clone();
            desired = snapshot;
            self.guard = None;
        }
        self.desired = desired.clone();
        self.initial = desired;
        let mut out = protocol::auth(0, &[]);
        out.extend(warnings);
        for (name, value) in &self.core.parameter_status {
            let value = self
                .desired
                .get(&name.to_lowercase())
                .unwrap_or(value)
                .clone();
            out.extend(protocol::parameter_status(name, &value));
        }
        let secret = self
            .core
            .clients()
            .get(&self.id)
            .map(|c| c.secret)
            .unwrap_or(0);
        out.extend(protocol::backend_key(self.pid, secret));
        out.extend(protocol::ready(b'I'));
        self.send(&out)
    }

    /// Answer a request for a newer minor protocol version with 3.0.
    fn negotiate(&mut self, params: &[(String, String)]) -> Result<(), Exit> {
        let unknown: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.as_str())
            .collect();
        let mut body = PROTOCOL_MINOR.to_be_bytes().to_vec();
        body.extend_from_slice(&(unknown.len() as i32).to_be_bytes());
        for name in unknown {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
        }
        self.send(&protocol::frame(b'v', &body))
    }

    fn read_password_message(&mut self) -> Result<Bytes, Exit> {
        loop {
            if let Some(msg) = protocol::next_message(&mut self.rbuf, MAX_STARTUP)? {
                if msg.tag() != b'p' {
                    return Err(fatal("08P01", "expected a password response", None));
                }
                return Ok(msg.frame.slice(5..));
            }
            self.read_more()?;
        }
    }

    fn authenticate(&mut self, user: &str) -> Result<(), Exit> {
        let core = self.core.clone();
        let Some(verifier) = core.verifier.as_ref() else {
            return Ok(());
        };
        let failed = || {
            fatal(
                "28P01",
                &format!("password authentication failed for user \"{user}\""),
                None,
            )
        };
        let mut mechanisms = scram::MECHANISM.as_bytes().to_vec();
        mechanisms.extend_from_slice(b"\0\0");
        self.send(&protocol::auth(10, &mechanisms))?;
        let initial = self.read_password_message()?;
        let mut r = Reader::new(&initial);
        if r.cstr()? != scram::MECHANISM {
            return Err(fatal(
                "28000",
                "the client selected an unsupported SASL authentication mechanism",
                None,
            ));
        }
        let len = r.i32()?;
        let data = r.bytes(len.max(0) as usize)?;
        let (exchange, server_first) =
            scram::Exchange::start(verifier, data).map_err(|_| failed())?;
        self.send(&protocol::auth(11, server_first.as_bytes()))?;
        let response = self.read_password_message()?;
        let server_final = exchange.finish(&response).map_err(|_| failed())?;
        self.send(&protocol::auth(12, server_final.as_bytes()))?;
        Ok(())
    }

    fn register(&mut self) {
        let (tx, rx) = mpsc::channel();
        let mut secret = [0u8; 4];
        let _ = getrandom::fill(&mut secret);
        self.core.clients().insert(
            self.id,
            ClientEntry {
                pid: self.pid,
                secret: i32::from_be_bytes(secret),
                mailbox: tx,
                waker: self.socket.waker().clone(),
                channels: Default::default(),
                cancel: self.cancel.clone(),
            },
        );
        self.mailbox = Some(rx);
        self.registered = true;
    }

    // ---------------------------------------------------------------- main loop

    fn run(&mut self) -> Result<(), Exit> {
        loop {
            if self.guard.is_none() {
                // A client that keeps sending never reaches an idle wait: stop here.
                if self.core.is_shutting_down() {
                    return Err(Exit::Shutdown);
                }
                let Some(first) = self.peek_tag()? else {
                    self.wait_idle()?;
                    continue;
                };
                if self.discard_until_sync {
                    let msg = self.next_buffered()?.expect("peeked");
                    if msg.tag() == b'S' {
                        self.discard_until_sync = false;
                        self.wbuf.extend(protocol::ready(b'I'));
                        self.write_out()?;
                    }
                    continue;
                }
                match first {
                    b'X' => return Err(Exit::Terminate),
                    // Stray copy messages outside COPY are ignored, as PostgreSQL does;
                    // a Flush with nothing pending has nothing to flush.
                    b'd' | b'c' | b'f' | b'H' => {
                        self.next_buffered()?;
                        continue;
                    }
                    _ => {}
                }
                if !self.acquire()? {
                    continue;
                }
            }
            while let Some(msg) = self.next_buffered()? {
                self.handle(msg)?;
            }
            self.flush_engine()?;
            self.write_out()?;
            let done = self
                .guard
                .as_ref()
                .is_some_and(|st| st.clean && st.status == b'I');
            if done {
                self.end_pin()?;
            } else if self.guard.is_some() {
                self.wait_holding()?;
            }
        }
    }

    /// The type of the next complete buffered message.
    fn peek_tag(&mut self) -> Result<Option<u8>, Exit> {
        if let Some(m) = &self.pushed_back {
            return Ok(Some(m.tag()));
        }
        if let Some(msg) =
            protocol::next_message(&mut self.rbuf, self.core.config.max_message_size)?
        {
            protocol::validate(&msg)?;
            let tag = msg.tag();
            self.pushed_back = Some(msg);
            return Ok(Some(tag));
        }
        Ok(None)
    }

    fn next_buffered(&mut self) -> Result<Option<Msg>, Exit> {
        if let Some(m) = self.pushed_back.take() {
            return Ok(Some(m));
        }
        let msg = protocol::next_message(&mut self.rbuf, self.core.config.max_message_size)?;
        if let Some(msg) = &msg {
            protocol::validate(msg)?;
        }
        Ok(msg)
    }

    /// Wait for bytes while not holding the engine; deliver notifications meanwhile.
    fn wait_idle(&mut self) -> Result<(), Exit> {
        if self.spin_read()? {
            return Ok(());
        }
        loop {
            if self.try_read()? {
                return Ok(());
            }
            if self.core.is_shutting_down() {
                return Err(Exit::Shutdown);
            }
            if self.take_notifications() {
                self.write_out()?;
                continue;
            }
            self.socket.wait(None)?;
        }
    }

    /// Move notifications other connections sent to this one into the write buffer.
    fn take_notifications(&mut self) -> bool {
        let Some(mailbox) = self.mailbox.as_mut() else {
            return false;
        };
        let mut any = false;
        while let Ok(note) = mailbox.try_recv() {
            self.wbuf.extend_from_slice(&note);
            any = true;
        }
        any
    }

    /// Wait for bytes while holding the engine. An idle holder is timed out once it
    /// has been idle for the holder timeout *and* another client is waiting (a client
    /// that starts waiting wakes the holder).
    fn wait_holding(&mut self) -> Result<(), Exit> {
        let idle_since = Instant::now();
        let holder_timeout = self.core.config.holder_timeout;
        if self.spin_read()? {
            return Ok(());
        }
        loop {
            if self.try_read()? {
                return Ok(());
            }
            if self.core.is_shutting_down() {
                return Err(Exit::Shutdown);
            }
            let deadline = if self.core.engine.has_waiters() {
                let deadline = idle_since + holder_timeout;
                if Instant::now() >= deadline {
                    return Err(Exit::HolderTimeout);
                }
                Some(deadline)
            } else {
                None
            };
            self.socket.wait(deadline)?;
        }
    }

    /// Read until a complete message is available (used during COPY).
    fn next_message_wait(&mut self) -> Result<Msg, Exit> {
        loop {
            if let Some(msg) = self.next_buffered()? {
                return Ok(msg);
            }
            self.wait_holding()?;
        }
    }

    /// Send the write buffer to the client (one write for a whole reply).
    fn write_out(&mut self) -> Result<(), Exit> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.write_limit();
        let result = self.socket.write_all(&self.wbuf, deadline);
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_BUFFER {
            self.wbuf = Vec::new();
        }
        result.map_err(|_| Exit::Io)
    }

    // ---------------------------------------------------------------- the engine

    /// Wait for the engine in FIFO order. Returns false when the wait ended with an
    /// error answered to the client (queue timeout or cancel).
    fn acquire(&mut self) -> Result<bool, Exit> {
        match self.acquire_wait()? {
            Ok(guard) => {
                let st = self.guard.insert(guard);
                // Borrowed, not cloned: this runs before every request.
                if self
                    .core
                    .prepare(st, &self.desired)
                    .map_err(Exit::Engine)?
                    .is_some()
                {
                    // Settings that no longer apply: keep what the session has.
                    self.desired = st.settings.clone();
                }
                Ok(true)
            }
            Err(message) => {
                self.answer_first_batch_with(&protocol::error("ERROR", "57014", &message, None))?;
                Ok(false)
            }
        }
    }

    /// Acquire without answering anything (startup).
    fn acquire_raw(&mut self) -> Result<(), Exit> {
        match self.acquire_wait()? {
            Ok(guard) => {
                self.guard = Some(guard);
                Ok(())
            }
            Err(message) => Err(fatal("57014", &message, None)),
        }
    }

    /// Queue for the engine until it is handed over, the queue timeout passes, a
    /// CancelRequest arrives or the server stops.
    fn acquire_wait(&mut self) -> Result<Result<EngineGuard, String>, Exit> {
        enum GaveUp {
            Timeout,
            Cancel,
            Shutdown,
            Io,
        }
        let core = self.core.clone();
        let timeout = core.config.queue_timeout;
        let deadline = Instant::now() + timeout;
        // A CancelRequest cancels the wait it finds, not a later one.
        self.cancel.store(false, Ordering::SeqCst);
        let cancel = self.cancel.clone();
        let waker = self.socket.waker().clone();
        let waiter = self.socket.waiter();
        let result = core.engine.acquire(&waker, Some(&core.spinning), || {
            if core.is_shutting_down() {
                Err(GaveUp::Shutdown)
            } else if cancel.swap(false, Ordering::SeqCst) {
                Err(GaveUp::Cancel)
            } else if Instant::now() >= deadline {
                Err(GaveUp::Timeout)
            } else {
                waiter.wait(Some(deadline)).map_err(|_| GaveUp::Io)
            }
        });
        match result {
            Ok(guard) => Ok(Ok(guard)),
            Err(GaveUp::Timeout) => Ok(Err(format!(
                "canceling statement: waited {} ms for the pglite engine, which another connection is using (queue timeout)",
                timeout.as_millis()
            ))),
            Err(GaveUp::Cancel) => Ok(Err("canceling statement due to user request".into())),
            Err(GaveUp::Shutdown) => Err(Exit::Shutdown),
            Err(GaveUp::Io) => Err(Exit::Io),
        }
    }

    /// Answer the first buffered query or extended batch with `error` without running
    /// it.
    fn answer_first_batch_with(&mut self, error: &[u8]) -> Result<(), Exit> {
        self.wbuf.extend_from_slice(error);
        let first = self.next_buffered()?.expect("a message is buffered");
        if matches!(first.tag(), b'Q' | b'F' | b'S') {
            self.wbuf.extend(protocol::ready(b'I'));
        } else {
            self.discard_until_sync = true;
            while let Some(msg) = self.next_buffered()? {
                if msg.tag() == b'S' {
                    self.discard_until_sync = false;
                    self.wbuf.extend(protocol::ready(b'I'));
                    break;
                }
            }
        }
        self.write_out()
    }

    /// The pin ends (ReadyForQuery `I` after a complete batch): record settings the
    /// client changed, release the engine, deliver notifications.
    fn end_pin(&mut self) -> Result<(), Exit> {
        if self.settings_dirty {
            self.settings_dirty = false;
            let core = self.core.clone();
            let st = self.guard.as_mut().expect("held");
            let snapshot = core.snapshot(st).map_err(Exit::Engine)?;
            st.settings = snapshot.clone();
            self.desired = snapshot;
        }
        self.guard = None;
        self.take_notifications();
        self.write_out()
    }

    fn push(&mut self, frame: &[u8]) {
        self.input.extend_from_slice(frame);
        match frame[0] {
            b'H' | b'd' | b'c' | b'f' => {}
            tag => self.last_sig = tag,
        }
    }

    /// Send the gathered messages to the engine and forward the reply.
    fn flush_engine(&mut self) -> Result<(), Exit> {
        if self.input.is_empty() {
            return Ok(());
        }
        let st = self.guard.as_mut().expect("engine held");
        let was_clean = st.clean;
        let mut reply = std::mem::take(&mut self.reply);
        reply.clear();
        let result = st.exchange_into(&self.input, &mut reply);
        self.input.clear();
        if self.input.capacity() > KEEP_BUFFER {
            self.input = Vec::new();
        }
        result.map_err(Exit::Engine)?;
        let last = self.process_reply(&reply);
        if reply.capacity() <= KEEP_BUFFER {
            self.reply = reply;
        }
        let st = self.guard.as_mut().expect("engine held");
        // Clean: the last significant message was a Query or Sync and the engine has
        // answered it completely (a Flush alone leaves the state as it was).
        st.clean = matches!(self.last_sig, b'Q' | b'S')
            && (last == Some(b'Z') || (last.is_none() && was_clean));
        Ok(())
    }

    /// Forward a reply to the client, routing notifications and tracking state.
    /// Returns the last message type that is not asynchronous.
    fn process_reply(&mut self, reply: &[u8]) -> Option<u8> {
        let mut last = None;
        for (tag, frame) in protocol::backend_messages(reply) {
            match tag {
                b'A' => {
                    self.route_notification(frame);
                    continue;
                }
                // CopyInResponse was already sent (probe or synthetic), or must never
                // reach the client (safety-net CopyFail).
                b'G' => {
                    last = Some(tag);
                    continue;
                }
                b'Z' => {
                    let st = self.guard.as_mut().expect("held");
                    st.status = frame[5];
                    self.error_pending = false;
                    self.listen_queue.clear();
                }
                b'E' => {
                    self.error_pending = true;
                    let core = self.core.clone();
                    let st = self.guard.as_mut().expect("held");
                    core.check_crash(st, frame);
                }
                b'C' => self.on_command_complete(frame),
                b'S' => self.settings_dirty = true,
                _ => {}
            }
            if !matches!(tag, b'N' | b'S') {
                last = Some(tag);
            }
            self.wbuf.extend_from_slice(frame);
        }
        last
    }

    fn on_command_complete(&mut self, frame: &[u8]) {
        let tag = Reader::new(&frame[5..]).cstr().unwrap_or_default();
        let word = tag.split(' ').next().unwrap_or_default();
        match word {
            "LISTEN" | "UNLISTEN" => {
                if let Some(op) = self.listen_queue.pop_front() {
                    self.apply_listen(op);
                }
            }
            "SET" | "RESET" | "DISCARD" => self.settings_dirty = true,
            _ => {}
        }
    }

    fn apply_listen(&mut self, op: ListenOp) {
        let mut clients = self.core.clients();
        let Some(me) = clients.get_mut(&self.id) else {
            return;
        };
        match op {
            ListenOp::Listen(channel) => {
                me.channels.insert(channel);
            }
            ListenOp::Unlisten(channel) => {
                me.channels.remove(&channel);
                self.core.listen_dirty.store(true, Ordering::SeqCst);
            }
            ListenOp::UnlistenAll => {
                me.channels.clear();
                self.core.listen_dirty.store(true, Ordering::SeqCst);
            }
        }
    }

    fn route_notification(&mut self, frame: &[u8]) {
        let Some(channel) = protocol::notification_channel(frame) else {
            return;
        };
        let note = Bytes::from(protocol::notification_with_pid(frame, self.pid));
        let clients = self.core.clients();
        for (id, client) in clients.iter() {
            if client.channels.contains(&channel) {
                if *id == self.id {
                    self.wbuf.extend_from_slice(&note);
                } else {
                    client.deliver(note.clone());
                }
            }
        }
    }

    // ---------------------------------------------------------------- messages

    fn handle(&mut self, msg: Msg) -> Result<(), Exit> {
        match msg.tag() {
            b'X' => {
                self.flush_engine()?;
                self.write_out()?;
                Err(Exit::Terminate)
            }
            b'Q' => self.on_query(msg),
            b'P' => self.on_parse(msg),
            b'B' => self.on_bind(msg),
            b'D' | b'C' => self.on_describe_or_close(msg),
            b'E' => self.on_execute(msg),
            b'S' | b'H' | b'F' => {
                self.push(&msg.frame);
                Ok(())
            }
            // Stray copy messages outside COPY are ignored, as PostgreSQL does.
            b'd' | b'c' | b'f' => Ok(()),
            b'p' => Err(Exit::Protocol("unexpected password message".into())),
            other => Err(Exit::Protocol(format!(
                "invalid frontend message type {other}"
            ))),
        }
    }

    fn engine_status(&self) -> u8 {
        self.guard.as_ref().map_or(b'I', |st| st.status)
    }

    fn engine_clean(&self) -> bool {
        self.input.is_empty() && self.guard.as_ref().is_some_and(|st| st.clean)
    }

    fn retire_unnamed(&mut self) {
        if let Some(old) = self.unnamed.take() {
            self.statements.remove(&old);
            self.core.close_later([old]);
        }
    }

    fn statement_name(&self, name: &str) -> String {
        if name.is_empty() {
            self.unnamed
                .clone()
                .unwrap_or_else(|| format!("c{}:0", self.id))
        } else {
            protocol::private_name(self.id, name)
        }
    }

    fn portal_name(&self, name: &str) -> String {
        if name.is_empty() {
            String::new()
        } else {
            protocol::private_name(self.id, name)
        }
    }

    fn on_query(&mut self, msg: Msg) -> Result<(), Exit> {
        let text = Reader::new(msg.body()).cstr()?.to_string();
        if sql::is_exactly(&text, &["discard", "all"])
            || sql::is_exactly(&text, &["reset", "all"])
            || sql::is_exactly(&text, &["deallocate", "all"])
            || sql::is_exactly(&text, &["deallocate", "prepare", "all"])
        {
            self.flush_engine()?;
            if self.intercept(&text)? {
                return Ok(());
            }
        }
        // A simple Query destroys the unnamed statement.
        self.retire_unnamed();
        let statements = sql::statements(&text);
        for stmt in &statements {
            if let Some(op) = sql::listen_op(stmt) {
                self.listen_queue.push_back(op);
            }
        }
        if sql::mentions_set_config(&text) {
            self.settings_dirty = true;
        }
        self.core.note_custom_settings(&text);
        let copy = statements
            .iter()
            .enumerate()
            .find_map(|(i, s)| sql::copy_in(s).map(|c| (i, c)));
        let Some((index, copy)) = copy else {
            self.push(&msg.frame);
            self.push(&protocol::copy_fail(SAFETY_COPY_FAIL));
            return Ok(());
        };
        self.flush_engine()?;
        let probe = if index == 0 && self.engine_clean() && self.engine_status() != b'E' {
            self.probe_copy(&copy.text)?
        } else {
            None
        };
        match probe {
            Some(Probe::Failed) => {
                // The engine will answer with the same error, without COPY mode.
                self.push(&msg.frame);
                self.push(&protocol::copy_fail(SAFETY_COPY_FAIL));
                Ok(())
            }
            _ if self.engine_status() == b'E' => {
                self.push(&msg.frame);
                self.push(&protocol::copy_fail(SAFETY_COPY_FAIL));
                Ok(())
            }
            Some(Probe::Copy(g)) => self.copy_in(&msg.frame, g, true),
            None => {
                let g = protocol::copy_in_response(copy.binary, copy.columns);
                self.copy_in(&msg.frame, g, true)
            }
        }
    }

    /// DISCARD ALL, RESET ALL and DEALLOCATE ALL act on this client's share of the
    /// session only. Returns false when the statement should go to the engine (where
    /// it fails the way PostgreSQL would, e.g. DISCARD ALL inside a transaction).
    fn intercept(&mut self, text: &str) -> Result<bool, Exit> {
        let status = self.engine_status();
        let discard = sql::is_exactly(text, &["discard", "all"]);
        let reset = discard || sql::is_exactly(text, &["reset", "all"]);
        let deallocate = discard || !reset;
        if (discard && status != b'I') || status == b'E' {
            return Ok(false);
        }
        let core = self.core.clone();
        if deallocate {
            let mut names: Vec<String> = self.statements.drain().map(|(n, _)| n).collect();
            names.extend(self.unnamed.take());
            // Close them now: the client may prepare the same names again at once.
            let st = self.guard.as_mut().expect("held");
            if st.clean && !names.is_empty() {
                let mut input = Vec::new();
                for name in &names {
                    input.extend(protocol::close_statement(name));
                }
                input.extend(protocol::sync());
                let reply = st.exchange(&input).map_err(Exit::Engine)?;
                for (tag, frame) in protocol::backend_messages(&reply) {
                    if tag == b'Z' {
                        st.status = frame[5];
                    }
                }
                st.clean = true;
            } else {
                core.close_later(names);
            }
        }
        if discard {
            self.apply_listen(ListenOp::UnlistenAll);
        }
        if reset {
            self.desired = self.initial.clone();
            // Inside the client's transaction where there is one, like RESET ALL.
            let desired = self.desired.clone();
            let st = self.guard.as_mut().expect("held");
            if core
                .apply_settings(st, &desired)
                .map_err(Exit::Engine)?
                .is_some()
            {
                self.desired = st.settings.clone();
            }
        }
        let st = self.guard.as_ref().expect("held");
        let tag = if discard {
            "DISCARD ALL"
        } else if reset {
            "RESET"
        } else {
            "DEALLOCATE ALL"
        };
        self.wbuf.extend(protocol::command_complete(tag));
        self.wbuf.extend(protocol::ready(st.status));
        Ok(true)
    }

    fn on_parse(&mut self, msg: Msg) -> Result<(), Exit> {
        let mut r = Reader::new(msg.body());
        let name = r.cstr()?;
        let text = r.cstr()?;
        self.core.note_custom_settings(text);
        let mut info = StmtInfo {
            set_config: sql::mentions_set_config(text),
            ..StmtInfo::default()
        };
        for stmt in sql::statements(text) {
            if let Some(op) = sql::listen_op(stmt) {
                info.listen.push(op);
            }
            if info.copy.is_none() {
                info.copy = sql::copy_in(stmt);
            }
        }
        let engine_name = if name.is_empty() {
            self.retire_unnamed();
            self.unnamed_seq += 1;
            let n = format!("c{}:{}", self.id, self.unnamed_seq);
            self.unnamed = Some(n.clone());
            n
        } else {
            protocol::private_name(self.id, name)
        };
        let renamed = protocol::rewrite_names(&msg, 0, &[Some(engine_name.clone())])?;
        self.statements.insert(engine_name, info);
        self.push(&renamed.frame);
        Ok(())
    }

    fn on_bind(&mut self, msg: Msg) -> Result<(), Exit> {
        let mut r = Reader::new(msg.body());
        let portal = self.portal_name(r.cstr()?);
        let statement = self.statement_name(r.cstr()?);
        let renamed =
            protocol::rewrite_names(&msg, 0, &[Some(portal.clone()), Some(statement.clone())])?;
        let copy = self.statements.get(&statement).and_then(|s| s.copy.clone());
        if let Some(copy) = copy {
            // Ask the engine for the real CopyInResponse while the session is at a
            // clean point (before this batch's Bind reaches it).
            self.flush_engine()?;
            if self.engine_clean() && self.engine_status() != b'E' {
                self.copy_probe = self.probe_copy(&copy.text)?;
            }
        }
        self.portals.insert(portal, statement);
        self.push(&renamed.frame);
        Ok(())
    }

    fn on_describe_or_close(&mut self, msg: Msg) -> Result<(), Exit> {
        let mut r = Reader::new(msg.body());
        let kind = r.u8()?;
        let name = r.cstr()?;
        let engine_name = match kind {
            b'S' => self.statement_name(name),
            b'P' => self.portal_name(name),
            _ => {
                return Err(Exit::Protocol(format!(
                    "invalid {} message subtype {kind}",
                    if msg.tag() == b'D' {
                        "DESCRIBE"
                    } else {
                        "CLOSE"
                    }
                )));
            }
        };
        if msg.tag() == b'C' && kind == b'S' {
            self.statements.remove(&engine_name);
            if name.is_empty() {
                self.unnamed = None;
            }
        }
        let renamed = protocol::rewrite_names(&msg, 1, &[Some(engine_name)])?;
        self.push(&renamed.frame);
        Ok(())
    }

    fn on_execute(&mut self, msg: Msg) -> Result<(), Exit> {
        let mut r = Reader::new(msg.body());
        let portal = self.portal_name(r.cstr()?);
        let renamed = protocol::rewrite_names(&msg, 0, &[Some(portal.clone())])?;
        let info = self
            .portals
            .get(&portal)
            .and_then(|s| self.statements.get(s));
        let (copy, listen, set_config) = match info {
            Some(i) => (i.copy.clone(), i.listen.clone(), i.set_config),
            None => (None, Vec::new(), false),
        };
        self.listen_queue.extend(listen);
        self.settings_dirty |= set_config;
        if let Some(copy) = copy {
            self.flush_engine()?;
            let probe = self.copy_probe.take();
            if !self.error_pending && self.engine_status() != b'E' {
                match probe {
                    // The engine will answer the Execute with the error, without COPY.
                    Some(Probe::Failed) => {}
                    Some(Probe::Copy(g)) => return self.copy_in(&renamed.frame, g, false),
                    None => {
                        let g = protocol::copy_in_response(copy.binary, copy.columns);
                        return self.copy_in(&renamed.frame, g, false);
                    }
                }
            }
        }
        self.copy_probe = None;
        self.push(&renamed.frame);
        self.push(&protocol::copy_fail(SAFETY_COPY_FAIL));
        Ok(())
    }

    /// Learn the CopyInResponse for `text` by running it against a CopyFail, in a
    /// savepoint when inside a transaction so nothing changes.
    fn probe_copy(&mut self, text: &str) -> Result<Option<Probe>, Exit> {
        let st = self.guard.as_mut().expect("held");
        let in_tx = st.status == b'T';
        let mut input = Vec::new();
        if in_tx {
            input.extend(protocol::query("SAVEPOINT pglite_copy_probe"));
        }
        input.extend(protocol::query(text));
        input.extend(protocol::copy_fail("pglite-server COPY probe"));
        if in_tx {
            input.extend(protocol::query(
                "ROLLBACK TO SAVEPOINT pglite_copy_probe; RELEASE SAVEPOINT pglite_copy_probe",
            ));
        }
        let reply = st.exchange(&input).map_err(Exit::Engine)?;
        let mut g = None;
        for (tag, frame) in protocol::backend_messages(&reply) {
            match tag {
                b'G' => g = Some(frame.to_vec()),
                b'Z' => st.status = frame[5],
                _ => {}
            }
        }
        st.clean = true;
        Ok(Some(match g {
            Some(g) => Probe::Copy(g),
            None => Probe::Failed,
        }))
    }

    /// COPY FROM STDIN: tell the client to send its data, gather all of it, and hand
    /// the command and its data to the engine in one call.
    fn copy_in(&mut self, start: &[u8], g: Vec<u8>, simple: bool) -> Result<(), Exit> {
        self.wbuf.extend(g);
        self.write_out()?;
        self.push(start);
        let limit = self.core.config.max_copy_size;
        let mut size = 0usize;
        let mut too_large = false;
        loop {
            let msg = self.next_message_wait()?;
            match msg.tag() {
                b'd' => {
                    size += msg.frame.len();
                    if size > limit {
                        too_large = true;
                    } else {
                        self.push(&msg.frame);
                    }
                }
                b'c' => {
                    if too_large {
                        self.push(&protocol::copy_fail(&format!(
                            "COPY data exceeds the pglite server's limit of {limit} bytes"
                        )));
                    } else {
                        self.push(&msg.frame);
                    }
                    break;
                }
                b'f' => {
                    self.push(&msg.frame);
                    break;
                }
                b'H' | b'S' => self.push(&msg.frame),
                _ => {
                    self.push(&protocol::copy_fail(&format!(
                        "unexpected message type 0x{:02X} during COPY from stdin",
                        msg.tag()
                    )));
                    self.pushed_back = Some(msg);
                    break;
                }
            }
        }
        if simple {
            // A later COPY FROM STDIN in the same query string gets an error, never
            // a wait for data the engine cannot do.
            self.push(&protocol::copy_fail(SAFETY_COPY_FAIL));
        }
        self.flush_engine()
    }

    // ---------------------------------------------------------------- the end

    fn finish(&mut self, exit: Exit, permit: Option<OwnedSemaphorePermit>) {
        if std::env::var_os("PGLITE_SERVER_DEBUG").is_some() {
            eprintln!("pglite-server: connection {} ends: {exit:?}", self.id);
        }
        let hint_holder = format!(
            "This pglite server shares one PostgreSQL session between connections; a \
             transaction idle for more than {} ms while another connection waited was rolled back.",
            self.core.config.holder_timeout.as_millis()
        );
        let frame = match &exit {
            Exit::Terminate | Exit::Disconnected | Exit::Io => None,
            Exit::HolderTimeout => Some(protocol::error(
                "FATAL",
                "25P03",
                "terminating connection due to idle-in-transaction timeout",
                Some(&hint_holder),
            )),
            Exit::Shutdown => Some(protocol::error(
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
                None,
            )),
            Exit::Protocol(message) => Some(protocol::error("FATAL", "08P01", message, None)),
            Exit::Engine(message) => Some(protocol::error(
                "FATAL",
                "XX000",
                &format!("pglite engine failure: {message}"),
                None,
            )),
            Exit::Fatal(frame) => Some(frame.clone()),
            Exit::Panic => Some(protocol::error(
                "FATAL",
                "XX000",
                "internal error in the pglite server",
                None,
            )),
        };
        let mut names: Vec<String> = self.statements.drain().map(|(n, _)| n).collect();
        names.extend(self.unnamed.take());
        if let Some(mut st) = self.guard.take() {
            // Roll back and deallocate before anyone else gets the engine.
            if !matches!(exit, Exit::Engine(_)) {
                let mut input = Vec::new();
                if !st.clean || st.status != b'I' {
                    input.extend(protocol::sync());
                    input.extend(protocol::query("ROLLBACK"));
                }
                for name in &names {
                    input.extend(protocol::close_statement(name));
                }
                input.extend(protocol::sync());
                names.clear();
                if let Ok(reply) = st.exchange(&input) {
                    let mut last = None;
                    for (tag, frame) in protocol::backend_messages(&reply) {
                        if tag == b'Z' {
                            st.status = frame[5];
                        }
                        if !matches!(tag, b'A' | b'N' | b'S') {
                            last = Some(tag);
                        }
                    }
                    st.clean = last == Some(b'Z');
                }
            }
        }
        self.core.close_later(names);
        if self.registered {
            let entry = self.core.clients().remove(&self.id);
            if entry.is_some_and(|e| !e.channels.is_empty()) {
                self.core.listen_dirty.store(true, Ordering::SeqCst);
            }
        }
        // The slot is free before the client sees the connection end.
        drop(permit);
        if let Some(frame) = frame {
            self.wbuf.extend(frame);
        }
        let _ = self
            .socket
            .write_all(&self.wbuf, Instant::now() + Duration::from_secs(2));
        self.socket.shutdown();
        self.core.connection_closed(self.id);
    }
}

enum Probe {
    Copy(Vec<u8>),
    Failed,
}

/// The newest protocol version the server speaks (3.0).
const PROTOCOL_MINOR: i32 = protocol::PROTOCOL_3;

/// Names of the UTC time zone, which the runtime cannot load (it has no zone files).
fn is_utc_alias(zone: &str) -> bool {
    matches!(
        zone.to_ascii_lowercase().as_str(),
        "utc"
            | "etc/utc"
            | "uct"
            | "etc/uct"
            | "universal"
            | "etc/universal"
            | "zulu"
            | "etc/zulu"
            | "z"
            | "etc/gmt"
            | "gmt0"
            | "etc/gmt0"
            | "greenwich"
            | "etc/greenwich"
    )
}

/// Parse the `options` startup parameter: `-c name=value` and `--name=value`, with
/// backslash escapes for spaces.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(word) = it.next() {
        let setting = if word == "-c" {
            it.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            word.strip_prefix("-c").map(str::to_string)
        };
        if let Some((k, v)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_options;

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_options("-c search_path=a,b --work-mem=4MB -capplication_name=x\\ y"),
            vec![
                ("search_path".to_string(), "a,b".to_string()),
                ("work_mem".to_string(), "4MB".to_string()),
                ("application_name".to_string(), "x y".to_string()),
            ]
        );
    }
}
