//! The few protocol messages the engine itself sends: the startup handshake and
//! housekeeping queries. Everything else passes through as opaque bytes.

use md5::{Digest, Md5};

/// Frontend StartupMessage (protocol 3.0) for `user` and `database`.
pub fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes());
    for (key, value) in [("user", user), ("database", database)] {
        push_cstr(&mut body, key);
        push_cstr(&mut body, value);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// Frontend PasswordMessage answering an MD5 challenge.
pub fn md5_password_message(user: &str, password: &str, salt: &[u8]) -> Vec<u8> {
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = hex(&Md5::digest([inner.as_bytes(), salt].concat()));
    let mut body = Vec::new();
    push_cstr(&mut body, &format!("md5{outer}"));
    frame(b'p', &body)
}

/// Frontend Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    push_cstr(&mut body, sql);
    frame(b'Q', &body)
}

/// Frontend Terminate message.
pub fn terminate_message() -> Vec<u8> {
    frame(b'X', &[])
}

/// Backend ErrorResponse with severity ERROR.
pub fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.push(kind);
        push_cstr(&mut body, value);
    }
    body.push(0);
    frame(b'E', &body)
}

/// Backend ReadyForQuery with transaction `status` (`I`, `T` or `E`).
pub fn ready_for_query(status: u8) -> Vec<u8> {
    frame(b'Z', &[status])
}

/// Iterate over the complete messages in `buf` as `(tag, whole frame)`; an incomplete
/// trailing message is not returned.
pub fn frames(buf: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len < 4 || rest.len() < 1 + len {
            return None;
        }
        let (item, tail) = rest.split_at(1 + len);
        rest = tail;
        Some((item[0], item))
    })
}

/// Iterate over the complete backend messages in `buf` as `(tag, body)`.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    frames(buf).map(|(tag, frame)| (tag, &frame[5..]))
}

/// The SQLSTATE and message of the first ErrorResponse in `buf`, as "message (SQLSTATE x)".
pub fn first_error(buf: &[u8]) -> Option<String> {
    let (_, body) = messages(buf).find(|(tag, _)| *tag == b'E')?;
    let mut code = "";
    let mut message = "";
    for field in body.split(|b| *b == 0) {
        if let Some((kind, value)) = field.split_first() {
            let value = std::str::from_utf8(value).unwrap_or("?");
            match kind {
                b'C' => code = value,
                b'M' => message = value,
                _ => {}
            }
        }
    }
    Some(format!("{message} (SQLSTATE {code})"))
}

/// A backend or frontend message: tag, length (including itself), body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(body.len() + 5);
    msg.push(tag);
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

/// Append `s` as a NUL-terminated string.
pub fn push_cstr(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_postgres_rule() {
        // md5(md5(password || user) || salt), as PostgreSQL documents it.
        let msg = md5_password_message("postgres", "password", &[1, 2, 3, 4]);
        let inner = hex(&Md5::digest(b"passwordpostgres"));
        let outer = hex(&Md5::digest([inner.as_bytes(), &[1, 2, 3, 4]].concat()));
        assert_eq!(&msg[5..msg.len() - 1], format!("md5{outer}").as_bytes());
    }

    #[test]
    fn splits_messages_and_finds_errors() {
        let mut buf = frame(b'E', b"SERROR\0C42601\0Msyntax error\0\0");
        buf.extend(frame(b'Z', b"I"));
        let tags: Vec<u8> = messages(&buf).map(|(t, _)| t).collect();
        assert_eq!(tags, b"EZ");
        assert_eq!(first_error(&buf).unwrap(), "syntax error (SQLSTATE 42601)");
    }
}
