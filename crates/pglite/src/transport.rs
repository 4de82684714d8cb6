//! The client's [`Transport`] over an in-process engine.

use std::collections::{HashMap, HashSet};

use bytes::BytesMut;
use pglite_client::{Error, ErrorKind, Transport};
use pglite_engine::{Engine, SUPERUSER, WasmEngine, wire};

/// Protocol version 3.0 as it appears in a StartupMessage.
const PROTOCOL_3: [u8; 4] = 196_608i32.to_be_bytes();

/// The CopyFail the transport sends after a `COPY ... FROM STDIN` that no data follows.
const NO_COPY_DATA: &[u8] = b"no COPY data followed the command: the embedded engine \
    cannot wait for it (use copy_in)\0";

/// Feeds a [`pglite_client::Client`] from a [`WasmEngine`] in the same process.
///
/// The engine already holds an authenticated session, so the client's StartupMessage
/// is answered with the engine's recorded startup reply, and Terminate is not passed
/// on (the session outlives the client until the engine shuts down).
///
/// The transport also keeps the session's settings as they were when the database was
/// opened (PostgreSQL's normal defaults, the builder's settings and user). The runtime
/// starts its backend with unusual *reset* values (`search_path = pg_catalog`,
/// `exit_on_error = on`, ...), so after `RESET`, `SET ... TO DEFAULT`, `DISCARD ALL` or
/// an engine restart the transport puts back every such setting that is no longer
/// set in the session, before the client sees the reply. Settings the application set
/// itself are left alone.
pub struct EngineTransport {
    engine: Option<WasmEngine>,
    pending: Vec<u8>,
    reply: Vec<u8>,
    /// A cheap query that returns a row when the session differs from how it was
    /// opened...
    check_sql: Option<String>,
    /// ...and the SQL that then puts the opening settings back where the session lost
    /// them.
    restore_sql: String,
    /// The `Parse` message of every named statement the server holds, by name, so
    /// that they can be prepared again after an engine restart.
    prepared: HashMap<String, Vec<u8>>,
    /// How many times the engine answered with a crash-and-restart.
    restarts: u64,
    /// Drop the engine without its shutdown checkpoint: the data directory is a
    /// temporary one, deleted right after.
    discard_on_drop: bool,
    /// Statements (`(b'S', name)`) whose text may be `COPY ... FROM STDIN`, and
    /// portals (`(b'P', name)`) bound to them.
    copy_in_names: HashSet<(u8, Vec<u8>)>,
    /// The last request had a COPY FROM STDIN ended by the transport (after a Query,
    /// `Q`, or an Execute, `E`): the client's own answer to its CopyInResponse
    /// (CopyFail, and Sync after an Execute) is at the start of the next request and
    /// must not reach the engine again.
    copy_in_refused: Option<u8>,
    /// A temporary data directory this transport owns ([`crate::Pglite::into_client`]);
    /// declared last so that it is deleted after the engine has shut down.
    temporary: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for EngineTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineTransport")
            .field("open", &self.engine.is_some())
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

impl Drop for EngineTransport {
    fn drop(&mut self) {
        if self.discard_on_drop
            && let Some(engine) = self.engine.take()
        {
            engine.discard();
        }
    }
}

impl EngineTransport {
    /// Wrap an open engine.
    pub fn new(engine: WasmEngine) -> EngineTransport {
        EngineTransport {
            engine: Some(engine),
            pending: Vec::with_capacity(1024),
            reply: Vec::with_capacity(64 * 1024),
            check_sql: None,
            restore_sql: String::new(),
            prepared: HashMap::new(),
            restarts: 0,
            discard_on_drop: false,
            copy_in_names: HashSet::new(),
            copy_in_refused: None,
            temporary: None,
        }
    }

    /// When dropped, drop the engine without a shutdown checkpoint (for a temporary
    /// data directory that is deleted next). An explicit shutdown still checkpoints.
    pub(crate) fn discard_on_drop(&mut self) {
        self.discard_on_drop = true;
    }

    /// The engine, unless it was taken for shutdown.
    pub fn engine(&self) -> Option<&WasmEngine> {
        self.engine.as_ref()
    }

    /// Take the engine out (for an explicit, error-reporting shutdown).
    pub fn take_engine(&mut self) -> Option<WasmEngine> {
        self.engine.take()
    }

    /// Take ownership of the temporary data directory the engine runs on: it is deleted
    /// when the transport is dropped, after the engine.
    pub(crate) fn own_temporary(&mut self, dir: tempfile::TempDir) {
        self.temporary = Some(dir);
    }

    /// How many times the engine reported a crash and restart (an internal error with
    /// the session left idle); the session was restored each time.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Keep these session settings and session user: they are restored whenever the
    /// session loses them. Each setting is `(name, pg_settings.setting,
    /// current_setting(name))`.
    ///
    /// Some settings can only be set by a superuser, so while restoring them the session
    /// is switched to the authenticated superuser and back (with its `SET ROLE`).
    pub(crate) fn keep_session(
        &mut self,
        settings: &[(String, String, String)],
        user: Option<&str>,
    ) {
        if settings.is_empty() && user.is_none() {
            self.check_sql = None;
            return;
        }
        let mut differs: Vec<String> = settings
            .iter()
            .map(|(name, _, shown)| {
                format!(
                    "pg_catalog.current_setting({}) IS DISTINCT FROM {}",
                    text_literal(name),
                    text_literal(shown)
                )
            })
            .collect();
        if let Some(user) = user {
            differs.push(format!("session_user::text <> {}", text_literal(user)));
        }
        self.check_sql = Some(format!("SELECT 1 WHERE {}", differs.join(" OR ")));
        let values: Vec<String> = settings
            .iter()
            .map(|(name, value, _)| format!("({}, {})", text_literal(name), text_literal(value)))
            .collect();
        let lost = if values.is_empty() {
            "SELECT NULL::text AS name, NULL::text AS setting WHERE false".to_string()
        } else {
            format!(
                "SELECT w.name, w.setting FROM (VALUES {}) AS w(name, setting) \
                 JOIN pg_catalog.pg_settings s ON s.name = w.name WHERE s.source <> 'session'",
                values.join(", ")
            )
        };
        let user = user.map_or_else(|| "NULL".to_string(), text_literal);
        let superuser = text_literal(SUPERUSER);
        self.restore_sql = format!(
            "DO $pglite_restore$
DECLARE
  want_user text := {user};
  saved_role text := pg_catalog.current_setting('role');
  switched boolean := false;
  r record;
BEGIN
  FOR r IN {lost} LOOP
    IF NOT switched AND session_user <> {superuser} THEN
      PERFORM pg_catalog.set_config('session_authorization', {superuser}, false);
      switched := true;
    END IF;
    PERFORM pg_catalog.set_config(r.name, r.setting, false);
  END LOOP;
  IF want_user IS NOT NULL AND (switched OR session_user <> want_user) THEN
    PERFORM pg_catalog.set_config('session_authorization', want_user, false);
    IF switched AND saved_role <> 'none' THEN
      PERFORM pg_catalog.set_config('role', saved_role, false);
    END IF;
  END IF;
END
$pglite_restore$"
        );
    }

    /// Remove a leading StartupMessage from `pending` and return the database it asks
    /// for (empty when it names none); `None` if there was no StartupMessage.
    fn take_startup(&mut self) -> Option<String> {
        if self.pending.len() < 8 || self.pending[4..8] != PROTOCOL_3 {
            return None;
        }
        let len = u32::from_be_bytes(self.pending[..4].try_into().expect("4 bytes")) as usize;
        let message: Vec<u8> = self.pending.drain(..len.min(self.pending.len())).collect();
        let mut fields = message[8..].split(|b| *b == 0);
        let mut database = String::new();
        while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
            if key == b"database" {
                database = String::from_utf8_lossy(value).into_owned();
            }
        }
        Some(database)
    }

    /// Drop Terminate messages: the engine's session is ended by shutting it down.
    fn strip_terminate(&mut self) {
        if self.pending.ends_with(&[b'X', 0, 0, 0, 4]) {
            let len = self.pending.len();
            self.pending.truncate(len - 5);
        }
    }

    /// The engine cannot pause in the middle of a command to wait for more input: a
    /// `COPY ... FROM STDIN` with no data after it in the same request (sent through
    /// `query` or `simple_query` rather than `copy_in`) makes it trap, which restarts it
    /// and loses the session. So after every Query or Execute that may run such a COPY
    /// and is not followed by copy data, a CopyFail is added (PostgreSQL ignores
    /// CopyFail outside COPY): the COPY fails with an error, as the client's own
    /// CopyFail would make it fail on a server. Returns the tag of the last command
    /// one was added after.
    fn end_copy_in_without_data(&mut self) -> Option<u8> {
        let mut ends = Vec::new();
        let mut offset = 0;
        for (tag, frame) in wire::frames(&self.pending) {
            let body = &frame[5..];
            offset += frame.len();
            let may_copy_in = match tag {
                b'Q' => mentions_stdin(body),
                b'P' => {
                    let name = (b'S', c_bytes(body).to_vec());
                    if mentions_stdin(body) {
                        self.copy_in_names.insert(name);
                    } else if !self.copy_in_names.is_empty() {
                        self.copy_in_names.remove(&name);
                    }
                    false
                }
                b'B' if !self.copy_in_names.is_empty() => {
                    let portal = c_bytes(body);
                    let statement = c_bytes(body.get(portal.len() + 1..).unwrap_or(&[]));
                    let name = (b'P', portal.to_vec());
                    if self.copy_in_names.contains(&(b'S', statement.to_vec())) {
                        self.copy_in_names.insert(name);
                    } else {
                        self.copy_in_names.remove(&name);
                    }
                    false
                }
                b'C' if !self.copy_in_names.is_empty() => {
                    let kind = body.first().copied().unwrap_or(0);
                    self.copy_in_names
                        .remove(&(kind, c_bytes(body.get(1..).unwrap_or(&[])).to_vec()));
                    false
                }
                b'E' => self.copy_in_names.contains(&(b'P', c_bytes(body).to_vec())),
                _ => false,
            };
            let data_follows = matches!(self.pending.get(offset), Some(b'd' | b'c' | b'f'));
            if may_copy_in && !data_follows {
                ends.push((offset, tag));
            }
        }
        let last = ends.last().map(|(_, tag)| *tag);
        let copy_fail = wire::frame(b'f', NO_COPY_DATA);
        for (end, _) in ends.into_iter().rev() {
            self.pending.splice(end..end, copy_fail.iter().copied());
        }
        last
    }

    /// Drop the client's answer to a CopyInResponse the transport already answered
    /// (a leading CopyFail, and after an Execute the Sync that follows it).
    fn drop_answered_copy_fail(&mut self) {
        let Some(command) = self.copy_in_refused.take() else {
            return;
        };
        let mut cut = 0;
        for (n, (tag, frame)) in wire::frames(&self.pending).take(2).enumerate() {
            match (n, tag) {
                (0, b'f') => cut += frame.len(),
                (1, b'S') if command == b'E' => cut += frame.len(),
                _ => break,
            }
        }
        self.pending.drain(..cut);
    }

    /// Record the named statements `request` prepares (when the reply reports no error,
    /// so that they exist) and forget the ones it closes.
    fn track_statements(&mut self, request: &[u8], reply: &Reply) {
        let mut offset = 0;
        for (tag, body) in wire::messages(request) {
            let len = 5 + body.len();
            match tag {
                b'P' if !reply.error => {
                    let name = c_str(body);
                    if !name.is_empty() {
                        self.prepared
                            .insert(name.to_string(), request[offset..offset + len].to_vec());
                    }
                }
                b'C' if body.first() == Some(&b'S') => {
                    self.prepared.remove(c_str(&body[1..]));
                }
                _ => {}
            }
            offset += len;
        }
    }

    /// After the engine restarted (it answers a crash with an internal error and an
    /// idle session): prepare every named statement again, so that statements held by
    /// the client keep working. Failures are ignored (the statement then fails as it
    /// would after any reconnect); existing statements are left as they are.
    fn replay_statements(&mut self, reply: &Reply) -> Result<(), Error> {
        if !reply.internal_error || reply.status != Some(b'I') {
            return Ok(());
        }
        self.restarts += 1;
        if self.prepared.is_empty() {
            return Ok(());
        }
        let mut request = Vec::new();
        for parse in self.prepared.values() {
            request.extend_from_slice(parse);
            request.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        }
        let engine = self.engine.as_mut().expect("checked by the caller");
        let mut ignored = Vec::new();
        engine
            .exchange(&request, &mut ignored)
            .map_err(crate::engine_error)
    }

    /// After a reply that may have reset settings, put the opening ones back.
    ///
    /// Runs only when the request ended with the session usable (idle or in a healthy
    /// transaction): in a failed transaction the reset is undone by the rollback anyway.
    /// `ParameterStatus`, notices and notifications of the restoring query are passed on
    /// to the client, ahead of the reply's final `ReadyForQuery`; so is an error, should
    /// restoring fail.
    fn restore_session(&mut self, request: &[u8], reply: &Reply) -> Result<(), Error> {
        let Some(check) = self.check_sql.as_deref() else {
            return Ok(());
        };
        let (Some(z), Some(b'I' | b'T')) = (reply.ready_at, reply.status) else {
            return Ok(());
        };
        let set_default = reply.set && mentions_default(request);
        if !reply.reset && !reply.internal_error && !set_default {
            return Ok(());
        }
        let engine = self.engine.as_mut().expect("checked by the caller");
        let mut extra = Vec::new();
        engine
            .exchange(&wire::query_message(check), &mut extra)
            .map_err(crate::engine_error)?;
        let lost = wire::messages(&extra).any(|(tag, _)| tag == b'D');
        if !lost && wire::first_error(&extra).is_none() {
            return Ok(());
        }
        extra.clear();
        engine
            .exchange(&wire::query_message(&self.restore_sql), &mut extra)
            .map_err(crate::engine_error)?;
        let mut forward = Vec::new();
        let mut offset = 0;
        for (tag, body) in wire::messages(&extra) {
            let len = 5 + body.len();
            if matches!(tag, b'S' | b'N' | b'A') {
                forward.extend_from_slice(&extra[offset..offset + len]);
            }
            offset += len;
        }
        // If restoring failed, the request reports it (the session stays usable), and
        // the final transaction status is the one after the attempt.
        let after = Reply::summarize(&extra);
        if let Some(error) = wire::first_error(&extra) {
            forward.extend_from_slice(&wire::error_response(
                "58000",
                &format!("pglite could not restore the session's settings: {error}"),
            ));
        }
        if let Some(status) = after.status {
            self.reply[z + 5] = status;
        }
        if !forward.is_empty() {
            self.reply.splice(z..z, forward);
        }
        Ok(())
    }
}

/// The NUL-terminated string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or("")
}

/// The FATAL ErrorResponse (SQLSTATE 3D000) refusing a client that asks for another
/// database than the engine's.
fn other_database_refused(asked: &str, attached: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in [
        (b'S', "FATAL".to_string()),
        (b'V', "FATAL".to_string()),
        (b'C', "3D000".to_string()),
        (
            b'M',
            format!("this embedded engine serves the database \"{attached}\", not \"{asked}\""),
        ),
        (
            b'H',
            "Open the other database with Pglite::builder().database(...).".to_string(),
        ),
    ] {
        body.push(kind);
        wire::push_cstr(&mut body, &value);
    }
    body.push(0);
    wire::frame(b'E', &body)
}

/// The NUL-terminated bytes at the start of `bytes` (all of them without a NUL).
fn c_bytes(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// True when `sql` contains `stdin` in any case: it may be a `COPY ... FROM STDIN`
/// (a false alarm only costs a CopyFail the engine ignores).
fn mentions_stdin(sql: &[u8]) -> bool {
    sql.windows(5).any(|w| w.eq_ignore_ascii_case(b"stdin"))
}

/// What the transport needs to know about a reply, found in one pass.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reply {
    /// It holds an ErrorResponse.
    error: bool,
    /// It holds an ErrorResponse with SQLSTATE XX000 (the engine answers a crash and
    /// restart that way).
    internal_error: bool,
    /// It reports a command that resets settings: `RESET`, `DISCARD ALL`.
    reset: bool,
    /// It reports a `SET` (which resets with `SET ... TO DEFAULT`).
    set: bool,
    /// It holds a CopyInResponse.
    copy_in: bool,
    /// The offset of the final ReadyForQuery, if the reply ends with one...
    ready_at: Option<usize>,
    /// ...and its transaction status (`I`, `T` or `E`).
    status: Option<u8>,
}

impl Reply {
    fn summarize(reply: &[u8]) -> Reply {
        let mut summary = Reply::default();
        let mut offset = 0;
        for (tag, body) in wire::messages(reply) {
            match tag {
                b'E' => {
                    summary.error = true;
                    summary.internal_error |=
                        body.split(|b| *b == 0).any(|field| field == b"CXX000");
                }
                b'G' => summary.copy_in = true,
                b'C' => match body {
                    b"RESET\0" | b"DISCARD ALL\0" => summary.reset = true,
                    b"SET\0" => summary.set = true,
                    _ => {}
                },
                _ => {}
            }
            let len = 5 + body.len();
            if tag == b'Z' && body.len() == 1 && offset + len == reply.len() {
                summary.ready_at = Some(offset);
                summary.status = Some(body[0]);
            }
            offset += len;
        }
        summary
    }
}

/// True when `request` may hold `SET ... TO DEFAULT` or `SET SESSION AUTHORIZATION`
/// (only looked at when the reply reports a `SET`, so ordinary `SET`s cost nothing).
fn mentions_default(request: &[u8]) -> bool {
    const WORDS: [&[u8]; 2] = [b"default", b"authorization"];
    request.windows(7).enumerate().any(|(i, w)| {
        WORDS.iter().any(|word| {
            w.eq_ignore_ascii_case(&word[..7])
                && request
                    .get(i..i + word.len())
                    .is_some_and(|full| full.eq_ignore_ascii_case(word))
        })
    })
}

/// A SQL expression for `text` that reads the same whatever the quoting settings
/// (`standard_conforming_strings`, `backslash_quote`) are.
fn text_literal(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), 'UTF8')")
}

impl Transport for EngineTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        if self.engine.is_none() {
            return Err(Error::new(ErrorKind::Closed, "the database was closed"));
        }
        if let Some(database) = self.take_startup() {
            let engine = self.engine.as_ref().expect("checked above");
            if !database.is_empty() && database != engine.database() {
                // The session is attached to one database (docs/RUNTIME.md): refuse
                // the start-up rather than hand over another database than asked for.
                self.pending.clear();
                buf.extend_from_slice(&other_database_refused(&database, engine.database()));
                return Ok(());
            }
            buf.extend_from_slice(engine.startup_reply());
            if self.pending.is_empty() {
                return Ok(());
            }
        }
        self.strip_terminate();
        self.drop_answered_copy_fail();
        if self.pending.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "waiting for a reply, but nothing was sent to the embedded engine",
            ));
        }
        let copy_fail_after = self.end_copy_in_without_data();
        let engine = self.engine.as_mut().expect("checked above");
        self.reply.clear();
        let result = engine.exchange(&self.pending, &mut self.reply);
        let request = std::mem::take(&mut self.pending);
        result.map_err(crate::engine_error)?;
        if self.reply.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the embedded engine returned no reply",
            ));
        }
        let summary = Reply::summarize(&self.reply);
        self.copy_in_refused = copy_fail_after.filter(|_| summary.copy_in);
        self.track_statements(&request, &summary);
        // Settings first: they decide how the statements' names resolve.
        let restored = self
            .restore_session(&request, &summary)
            .and_then(|()| self.replay_statements(&summary));
        // Keep the request buffer's capacity.
        self.pending = request;
        self.pending.clear();
        restored?;
        buf.extend_from_slice(&self.reply);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.strip_terminate();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(tag: &str) -> Vec<u8> {
        let mut body = tag.as_bytes().to_vec();
        body.push(0);
        let mut msg = vec![b'C'];
        msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn summarizes_replies() {
        for tag in ["RESET", "DISCARD ALL"] {
            assert!(Reply::summarize(&complete(tag)).reset, "{tag}");
        }
        assert!(Reply::summarize(&complete("SET")).set);
        for tag in ["SELECT 1", "DISCARD PLANS", "SHOW"] {
            assert!(!Reply::summarize(&complete(tag)).reset, "{tag}");
        }
        let mut reply = complete("SELECT 1");
        reply.extend_from_slice(&wire::error_response("XX000", "crash"));
        let at = reply.len();
        reply.extend_from_slice(&wire::ready_for_query(b'I'));
        let summary = Reply::summarize(&reply);
        assert!(summary.error && summary.internal_error && !summary.reset);
        assert_eq!((summary.ready_at, summary.status), (Some(at), Some(b'I')));

        let mut reply = wire::error_response("42601", "syntax");
        let summary = Reply::summarize(&reply);
        assert!(summary.error && !summary.internal_error);
        assert_eq!(summary.ready_at, None);
        reply.extend_from_slice(&wire::ready_for_query(b'E'));
        assert_eq!(Reply::summarize(&reply).status, Some(b'E'));
    }

    #[test]
    fn finds_set_to_default() {
        assert!(mentions_default(b"SET search_path TO DEFAULT"));
        assert!(mentions_default(b"set session Authorization default"));
        assert!(mentions_default(b"SET SESSION AUTHORIZATION alice"));
        assert!(!mentions_default(b"SET work_mem = '2MB'"));
        assert!(!mentions_default(b"SET defaul"));
    }

    #[test]
    fn literals_survive_any_quoting() {
        assert_eq!(
            text_literal("a'\\"),
            "pg_catalog.convert_from(pg_catalog.decode('61275c', 'hex'), 'UTF8')"
        );
    }
}
