//! Raw-protocol helpers for engine tests (the real client lives in pglite-client).
#![allow(dead_code)]

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use pglite_engine::Engine;
use postgres_protocol::message::{backend, frontend};

/// Run the startup handshake (MD5 with the runtime's password) and return the
/// messages that followed authentication, as tags.
pub fn startup(engine: &mut impl Engine, database: &str, password: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frontend::startup_message([("user", "postgres"), ("database", database), ("options", "-c search_path=\"$user\",public -c log_min_messages=warning -c client_min_messages=notice"), ("application_name", "x")], &mut buf).unwrap();
    let mut out = Vec::new();
    engine.exchange(&buf, &mut out).unwrap();
    if std::env::var_os("DUMP").is_some() {
        eprintln!("startup {:?}", &out[..out.len().min(400)]);
    }
    let mut reply = BytesMut::from(&out[..]);
    let mut tags = Vec::new();
    while let Some(msg) = backend::Message::parse(&mut reply).unwrap() {
        match msg {
            backend::Message::AuthenticationMd5Password(body) => {
                let hash = postgres_protocol::authentication::md5_hash(
                    b"postgres",
                    password.as_bytes(),
                    body.salt(),
                );
                let mut buf = BytesMut::new();
                frontend::password_message(hash.as_bytes(), &mut buf).unwrap();
                let mut out = Vec::new();
                engine.exchange(&buf, &mut out).unwrap();
                return tags_of(&out);
            }
            backend::Message::AuthenticationOk => tags.push(b'R'),
            other => tags.push(tag(&other)),
        }
    }
    tags
}

/// Send one simple query; return the text values of every DataRow and any error message.
pub fn simple(engine: &mut impl Engine, sql: &str) -> (Vec<Vec<Option<String>>>, Option<String>) {
    let mut buf = BytesMut::new();
    frontend::query(sql, &mut buf).unwrap();
    let mut out = Vec::new();
    engine.exchange(&buf, &mut out).unwrap();
    if std::env::var_os("DUMP").is_some() {
        eprintln!("{:?}", String::from_utf8_lossy(&out));
    }
    parse_rows(&out)
}

pub fn parse_rows(out: &[u8]) -> (Vec<Vec<Option<String>>>, Option<String>) {
    let mut reply = BytesMut::from(out);
    let mut rows = Vec::new();
    let mut error = None;
    let mut ready = false;
    while let Some(msg) = backend::Message::parse(&mut reply).unwrap() {
        match msg {
            backend::Message::DataRow(body) => {
                let mut row = Vec::new();
                let mut ranges = body.ranges();
                while let Some(r) = ranges.next().unwrap() {
                    row.push(r.map(|r| String::from_utf8_lossy(&body.buffer()[r]).into_owned()));
                }
                rows.push(row);
            }
            backend::Message::ErrorResponse(body) => {
                let mut fields = body.fields();
                let mut text = String::new();
                while let Some(f) = fields.next().unwrap() {
                    if f.type_() == b'C' || f.type_() == b'M' {
                        text.push_str(&String::from_utf8_lossy(f.value_bytes()));
                        text.push(' ');
                    }
                }
                error = Some(text);
            }
            backend::Message::ReadyForQuery(_) => ready = true,
            _ => {}
        }
    }
    assert!(ready, "reply did not end with ReadyForQuery");
    (rows, error)
}

pub fn tags_of(out: &[u8]) -> Vec<u8> {
    if std::env::var_os("DUMP").is_some() {
        eprintln!("tags_of {:?}", &out[..out.len().min(400)]);
    }
    let mut reply = BytesMut::from(out);
    let mut tags = Vec::new();
    while let Some(msg) = backend::Message::parse(&mut reply).unwrap() {
        tags.push(tag(&msg));
    }
    tags
}

fn tag(msg: &backend::Message) -> u8 {
    match msg {
        backend::Message::AuthenticationOk => b'R',
        backend::Message::ParameterStatus(_) => b'S',
        backend::Message::BackendKeyData(_) => b'K',
        backend::Message::ReadyForQuery(_) => b'Z',
        backend::Message::ErrorResponse(_) => b'E',
        backend::Message::NoticeResponse(_) => b'N',
        backend::Message::RowDescription(_) => b'T',
        backend::Message::DataRow(_) => b'D',
        backend::Message::CommandComplete(_) => b'C',
        _ => b'?',
    }
}
