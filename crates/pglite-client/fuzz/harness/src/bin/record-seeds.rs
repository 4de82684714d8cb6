//! Records the seed corpora of the fuzz targets from a real server.
//!
//! Starts a throw-away native PostgreSQL (pglite-testkit), runs the fuzz harness's
//! scripted session against it once per authentication method, and saves what the
//! server sent as seeds of `backend_messages`; saves each value of
//! `pglite_client_fuzz_harness::TYPES_SQL` (the server's binary encoding, prefixed by
//! its selector byte) as seeds of `values`.
//!
//! Usage: `record-seeds <seeds dir>` (writes `<dir>/backend_messages/*` and
//! `<dir>/values/*`).

use std::path::{Path, PathBuf};

use pglite_client::bytes::BytesMut;
use pglite_client::{Client, Error, StartupConfig, TcpTransport, Transport};
use pglite_client_fuzz_harness::{PASSWORD, TYPES_SQL, USER, VALUE_TYPES, session};
use pglite_testkit::{AuthMethod, NativePostgres};

/// A TCP transport that keeps a copy of everything the server sends.
struct Recording<'a> {
    inner: TcpTransport,
    received: &'a mut Vec<u8>,
}

impl Transport for Recording<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        let before = buf.len();
        self.inner.receive(buf)?;
        self.received.extend_from_slice(&buf[before..]);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .expect("usage: record-seeds <seeds dir>")
        .into();
    let pg = NativePostgres::builder()
        .prefix("pglite-fuzz-seeds-")
        .fast()
        .user(USER, PASSWORD, AuthMethod::Md5)
        .user("fuzz_scram", PASSWORD, AuthMethod::ScramSha256)
        .start()
        .unwrap_or_else(|e| panic!("cannot start the native PostgreSQL: {e}"));
    let connect = |user: &str| {
        let transport = TcpTransport::connect(pg.addr()).expect("TCP connect");
        Client::connect(
            transport,
            &StartupConfig::new(user, "postgres").password(PASSWORD),
        )
        .expect("connect")
    };
    let mut admin = connect("postgres");
    admin
        .batch_execute(&format!(
            "CREATE TYPE fuzz_mood AS ENUM ('happy', 'sad'); GRANT ALL ON SCHEMA public TO {USER}"
        ))
        .unwrap();

    // The scripted session, as the MD5 user (replays exactly) and as a SCRAM user
    // (the replay fails at the nonce check, after exercising the SASL messages).
    let sessions = out.join("backend_messages");
    let mut received = Vec::new();
    session(Recording {
        inner: TcpTransport::connect(pg.addr()).unwrap(),
        received: &mut received,
    });
    assert!(received.len() > 1000, "the session stopped early");
    write(&sessions, "md5-session", &received);
    // Each prefix that ends at a message boundary is a seed of its own: a server that
    // stops talking at every point of the session.
    let mut cut = 0;
    let mut n = 0;
    while cut + 5 <= received.len() {
        let len = u32::from_be_bytes(received[cut + 1..cut + 5].try_into().unwrap()) as usize;
        cut += 1 + len;
        n += 1;
        if n % 8 == 0 {
            write(
                &sessions,
                &format!("md5-session-cut-{n:03}"),
                &received[..cut],
            );
        }
    }

    let transport = TcpTransport::connect(pg.addr()).unwrap();
    let mut scram = Vec::new();
    let mut recording = Recording {
        inner: transport,
        received: &mut scram,
    };
    let config = StartupConfig::new("fuzz_scram", "postgres").password(PASSWORD);
    let mut client = Client::connect(&mut recording, &config).expect("SCRAM login");
    client.batch_execute("SELECT 1").unwrap();
    drop(client);
    write(&sessions, "scram-login", &scram);

    // One value seed per column of TYPES_SQL that the value target can select.
    let values = out.join("values");
    let mut client = connect(USER);
    let row = client.query_one(TYPES_SQL, &[]).unwrap();
    for (i, column) in row.columns().iter().enumerate() {
        let Some(selector) = VALUE_TYPES.iter().position(|t| t == column.type_()) else {
            continue;
        };
        let Some(raw) = row.raw(i) else { continue };
        let mut seed = vec![selector as u8];
        seed.extend_from_slice(raw);
        write(
            &values,
            &format!("{}-{}", column.name(), column.type_().name()),
            &seed,
        );
    }
    pg.stop().unwrap();
}
