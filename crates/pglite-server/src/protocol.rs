//! Protocol framing: reading frontend messages, writing backend messages, renaming
//! statement and portal names.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Protocol version 3.0 in a StartupMessage.
pub(crate) const PROTOCOL_3: i32 = 196_608;
/// SSLRequest code.
pub(crate) const SSL_REQUEST: i32 = 80_877_103;
/// GSSENCRequest code.
pub(crate) const GSSENC_REQUEST: i32 = 80_877_104;
/// CancelRequest code.
pub(crate) const CANCEL_REQUEST: i32 = 80_877_102;
/// Longest statement or portal name PostgreSQL keeps apart (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// One complete frontend message: the whole frame (tag, length, body).
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub frame: Bytes,
}

impl Msg {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.frame[0]
    }

    /// The body after the length.
    pub fn body(&self) -> &[u8] {
        &self.frame[5..]
    }

    /// Build a message from a tag and body.
    pub fn new(tag: u8, body: &[u8]) -> Msg {
        Msg {
            frame: Bytes::from(frame(tag, body)),
        }
    }
}

/// A malformed message from the client.
#[derive(Debug)]
pub(crate) struct ProtocolViolation(pub String);

/// Take the next complete typed message off `buf`, if there is one.
pub(crate) fn next_message(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<Msg>, ProtocolViolation> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len < 4 {
        return Err(ProtocolViolation(format!("invalid message length {len}")));
    }
    if len > max_len {
        return Err(ProtocolViolation(format!(
            "message of {len} bytes exceeds the server's limit of {max_len} bytes"
        )));
    }
    if !is_frontend_tag(buf[0]) {
        return Err(ProtocolViolation(format!(
            "invalid frontend message type {}",
            buf[0]
        )));
    }
    if buf.len() < 1 + len {
        buf.reserve(1 + len - buf.len());
        return Ok(None);
    }
    Ok(Some(Msg {
        frame: buf.split_to(1 + len).freeze(),
    }))
}

fn is_frontend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'B' | b'C'
            | b'd'
            | b'c'
            | b'f'
            | b'D'
            | b'E'
            | b'H'
            | b'F'
            | b'P'
            | b'p'
            | b'Q'
            | b'S'
            | b'X'
    )
}

/// Check the structure of a frontend message, so a malformed one is refused before
/// it reaches the engine.
pub(crate) fn validate(msg: &Msg) -> Result<(), ProtocolViolation> {
    let mut r = Reader::new(msg.body());
    let count = |r: &mut Reader<'_>| -> Result<usize, ProtocolViolation> {
        let n = r.i16()?;
        usize::try_from(n).map_err(|_| ProtocolViolation("negative count in message".into()))
    };
    match msg.tag() {
        b'Q' | b'f' => {
            r.cstr()?;
        }
        b'P' => {
            r.cstr()?;
            r.cstr()?;
            let n = count(&mut r)?;
            r.bytes(4 * n)?;
        }
        b'B' => {
            r.cstr()?;
            r.cstr()?;
            let formats = count(&mut r)?;
            r.bytes(2 * formats)?;
            for _ in 0..count(&mut r)? {
                let len = r.i32()?;
                if len >= 0 {
                    r.bytes(len as usize)?;
                } else if len < -1 {
                    return Err(ProtocolViolation("invalid parameter length".into()));
                }
            }
            let results = count(&mut r)?;
            r.bytes(2 * results)?;
        }
        b'D' | b'C' => {
            let kind = r.u8()?;
            if kind != b'S' && kind != b'P' {
                return Err(ProtocolViolation(format!("invalid message subtype {kind}")));
            }
            r.cstr()?;
        }
        b'E' => {
            r.cstr()?;
            r.i32()?;
        }
        b'd' | b'F' | b'p' => return Ok(()),
        _ => {}
    }
    if r.rest().is_empty() {
        Ok(())
    } else {
        Err(ProtocolViolation(format!(
            "invalid message format (type {})",
            msg.tag() as char
        )))
    }
}

/// A cursor over a message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// A NUL-terminated string.
    pub fn cstr(&mut self) -> Result<&'a str, ProtocolViolation> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| ProtocolViolation("unterminated string in message".into()))?;
        let s = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| ProtocolViolation("invalid UTF-8 in message".into()))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A big-endian i32.
    pub fn i32(&mut self) -> Result<i32, ProtocolViolation> {
        if self.buf.len() < 4 {
            return Err(ProtocolViolation("message too short".into()));
        }
        let v = (&self.buf[..4]).get_i32();
        self.buf = &self.buf[4..];
        Ok(v)
    }

    /// A big-endian i16.
    pub fn i16(&mut self) -> Result<i16, ProtocolViolation> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, ProtocolViolation> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| ProtocolViolation("message too short".into()))?;
        self.buf = rest;
        Ok(b)
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolViolation> {
        if self.buf.len() < n {
            return Err(ProtocolViolation("message too short".into()));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// Everything left.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

// The message framing the engine already has: a frame (tag, length, body), a
// NUL-terminated string, ReadyForQuery and a frontend Query.
pub(crate) use pglite_engine::wire::frame;
pub(crate) use pglite_engine::wire::frames as backend_messages;
use pglite_engine::wire::push_cstr as cstr;
pub(crate) use pglite_engine::wire::query_message as query;
pub(crate) use pglite_engine::wire::ready_for_query as ready;

/// Backend ErrorResponse (or NoticeResponse with tag `N`).
pub(crate) fn error(severity: &str, code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(kind);
        cstr(&mut body, value);
    }
    if let Some(hint) = hint {
        body.push(b'H');
        cstr(&mut body, hint);
    }
    body.push(0);
    frame(b'E', &body)
}

/// Backend NoticeResponse.
pub(crate) fn notice(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut v = error(severity, code, message, None);
    v[0] = b'N';
    v
}

/// Backend Authentication message with `code` and extra data.
pub(crate) fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(data);
    frame(b'R', &body)
}

/// Backend ParameterStatus.
pub(crate) fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, value);
    frame(b'S', &body)
}

/// Backend BackendKeyData.
pub(crate) fn backend_key(pid: i32, secret: i32) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(&secret.to_be_bytes());
    frame(b'K', &body)
}

/// Backend CommandComplete.
pub(crate) fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, tag);
    frame(b'C', &body)
}

/// Backend CopyInResponse for `columns` columns.
pub(crate) fn copy_in_response(binary: bool, columns: usize) -> Vec<u8> {
    let mut body = vec![u8::from(binary)];
    body.extend_from_slice(&(columns as i16).to_be_bytes());
    for _ in 0..columns {
        body.extend_from_slice(&i16::from(binary).to_be_bytes());
    }
    frame(b'G', &body)
}

/// Frontend Sync.
pub(crate) fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// Frontend Close of a prepared statement.
pub(crate) fn close_statement(name: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    cstr(&mut body, name);
    frame(b'C', &body)
}

/// Frontend CopyFail.
pub(crate) fn copy_fail(message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, message);
    frame(b'f', &body)
}

/// The fields of an ErrorResponse or NoticeResponse body: (code, message).
pub(crate) fn error_fields(frame: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    for field in frame[5..].split(|b| *b == 0) {
        if let Some((kind, value)) = field.split_first() {
            let value = String::from_utf8_lossy(value).into_owned();
            match kind {
                b'C' => code = value,
                b'M' => message = value,
                _ => {}
            }
        }
    }
    (code, message)
}

/// The text values of a DataRow frame.
pub(crate) fn data_row(frame: &[u8]) -> Vec<Option<String>> {
    let mut r = Reader::new(&frame[5..]);
    let mut out = Vec::new();
    let Ok(n) = r.bytes(2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return out;
    };
    for _ in 0..n {
        let Ok(len) = r.i32() else { break };
        if len < 0 {
            out.push(None);
        } else {
            match r.bytes(len as usize) {
                Ok(v) => out.push(Some(String::from_utf8_lossy(v).into_owned())),
                Err(_) => break,
            }
        }
    }
    out
}

/// The per-client name PostgreSQL sees for a statement or portal name.
///
/// Named objects become `c<id>.<name>`, the client's successive unnamed statements
/// `c<id>:<n>`; names that would exceed PostgreSQL's 63 bytes are replaced by a hash.
pub(crate) fn private_name(client: u32, name: &str) -> String {
    let full = format!("c{client}.{name}");
    if full.len() <= MAX_NAME {
        return full;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let mut h2 = std::collections::hash_map::DefaultHasher::new();
    (name, 0x5eed_u32).hash(&mut h2);
    format!("c{client}#{:016x}{:016x}", h.finish(), h2.finish())
}

/// Rewrite the leading NUL-terminated name(s) of a message body.
///
/// `skip` bytes before the first name are copied unchanged (Describe/Close kind byte).
pub(crate) fn rewrite_names(
    msg: &Msg,
    skip: usize,
    names: &[Option<String>],
) -> Result<Msg, ProtocolViolation> {
    let mut r = Reader::new(msg.body());
    let prefix = r.bytes(skip)?;
    let mut body = BytesMut::with_capacity(msg.body().len() + 32);
    body.put_slice(prefix);
    for name in names {
        let old = r.cstr()?;
        body.put_slice(name.as_deref().unwrap_or(old).as_bytes());
        body.put_u8(0);
    }
    body.put_slice(r.rest());
    Ok(Msg::new(msg.tag(), &body))
}

/// Rewrite the process id of a NotificationResponse frame.
pub(crate) fn notification_with_pid(frame_bytes: &[u8], pid: i32) -> Vec<u8> {
    let mut v = frame_bytes.to_vec();
    if v.len() >= 9 {
        v[5..9].copy_from_slice(&pid.to_be_bytes());
    }
    v
}

/// The channel of a NotificationResponse frame.
pub(crate) fn notification_channel(frame_bytes: &[u8]) -> Option<String> {
    let mut r = Reader::new(frame_bytes.get(5..)?);
    r.i32().ok()?;
    r.cstr().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_and_frames() {
        let mut body = Vec::new();
        cstr(&mut body, "s1");
        cstr(&mut body, "select 1");
        body.extend_from_slice(&0i16.to_be_bytes());
        let msg = Msg::new(b'P', &body);
        let renamed = rewrite_names(&msg, 0, &[Some("c1.s1".into())]).unwrap();
        let mut r = Reader::new(renamed.body());
        assert_eq!(r.cstr().unwrap(), "c1.s1");
        assert_eq!(r.cstr().unwrap(), "select 1");
        let mut buf = BytesMut::from(&renamed.frame[..]);
        buf.extend_from_slice(b"S\0\0");
        let m = next_message(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(m.tag(), b'P');
        assert!(next_message(&mut buf, 1 << 20).unwrap().is_none());
        let mut bad = BytesMut::from(&b"Q\0\0\0\x02"[..]);
        assert!(next_message(&mut bad, 1 << 20).is_err());
        let mut big = BytesMut::from(&b"Q\x7f\0\0\0"[..]);
        assert!(next_message(&mut big, 1 << 20).is_err());
        assert!(private_name(3, &"x".repeat(100)).len() <= MAX_NAME);
    }
}
