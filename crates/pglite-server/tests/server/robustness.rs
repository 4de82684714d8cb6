//! Clients that die, idle, misbehave or wait too long never stop the others.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{self, Raw};

#[test]
fn a_client_killed_mid_transaction_is_rolled_back() {
    let server = support::start(|b| b);
    let mut setup = Raw::connect(&server);
    assert_eq!(setup.query("create table k (v text)").1, None);
    // A raw client dies (socket closed) inside a transaction.
    let mut dying = Raw::connect(&server);
    assert_eq!(dying.query("begin; insert into k values ('raw')").1, None);
    drop(dying);
    // A psql process is SIGKILLed inside a transaction.
    let mut psql = std::process::Command::new("psql")
        .args(["-X", "-q"])
        .arg(server.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = psql.stdin.as_mut().unwrap();
    stdin
        .write_all(b"begin;\ninsert into k values ('psql');\nselect 'inside';\n")
        .unwrap();
    stdin.flush().unwrap();
    // Wait until psql has run the insert (its output arrives).
    let mut stdout = psql.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("inside") {
        use std::io::Read;
        let n = stdout.read(&mut chunk).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&chunk[..n]);
    }
    psql.kill().unwrap();
    psql.wait().unwrap();
    let started = Instant::now();
    let mut other = Raw::connect(&server);
    assert_eq!(other.query("insert into k values ('other')").1, None);
    assert_eq!(other.query("select v from k order by v").0, ["other"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(setup);
    server.stop().unwrap();
}

#[test]
fn an_idle_transaction_does_not_block_others_past_the_holder_timeout() {
    let server = support::start(|b| b.holder_timeout(Duration::from_millis(500)));
    let mut idle = Raw::connect(&server);
    assert_eq!(idle.query("create table h (v int)").1, None);
    assert_eq!(idle.query("begin; insert into h values (1)").1, None);
    // Alone, the holder is not disturbed.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(idle.query("insert into h values (2)").1, None);
    let started = Instant::now();
    let mut other = Raw::connect(&server);
    assert_eq!(other.query("select count(*) from h").0, ["0"]);
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    // The idle holder was rolled back and told so.
    let msgs = idle.until_ready();
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(support::sqlstate(body), "25P03");
    assert!(idle.next().is_none());
    assert_eq!(other.query("select count(*) from h").0, ["0"]);
    server.stop().unwrap();
}

#[test]
fn a_waiting_client_gives_up_after_the_queue_timeout() {
    let server = support::start(|b| {
        b.queue_timeout(Duration::from_millis(300))
            .holder_timeout(Duration::from_secs(30))
    });
    let mut holder = Raw::connect(&server);
    assert_eq!(holder.query("begin").1, None);
    let mut waiter = Raw::connect_bare(&server);
    waiter.send(&support::startup("postgres", "postgres"));
    waiter.until_ready();
    let started = Instant::now();
    assert_eq!(waiter.query("select 1").1.as_deref(), Some("57014"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Extended protocol: the error, then ReadyForQuery at Sync.
    waiter.send(
        &[
            support::parse("", "select 1"),
            support::bind("", ""),
            support::execute(""),
            support::sync(),
        ]
        .concat(),
    );
    assert_eq!(
        support::rows(&waiter.until_ready()).1.as_deref(),
        Some("57014")
    );
    assert_eq!(holder.query("commit").1, None);
    assert_eq!(waiter.query("select 2").0, ["2"]);
    server.stop().unwrap();
}

#[test]
fn a_cancel_request_ends_a_wait_in_the_queue() {
    let server = support::start(|b| {
        b.queue_timeout(Duration::from_secs(30))
            .holder_timeout(Duration::from_secs(30))
    });
    let mut holder = Raw::connect(&server);
    assert_eq!(holder.query("begin").1, None);
    let mut waiter = Raw::connect_bare(&server);
    waiter.send(&support::startup("postgres", "postgres"));
    let (_, key) = waiter
        .until_ready()
        .into_iter()
        .find(|(t, _)| *t == b'K')
        .expect("BackendKeyData");
    let started = Instant::now();
    waiter.send(&support::query("select 1"));
    // Let the query reach the queue, then cancel it from another connection.
    std::thread::sleep(Duration::from_millis(300));
    let mut cancel = Raw::connect_bare(&server);
    let mut req = 16i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80_877_102i32.to_be_bytes());
    req.extend_from_slice(&key[..8]);
    cancel.send(&req);
    assert!(cancel.next().is_none());
    let msgs = waiter.until_ready();
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(support::sqlstate(body), "57014");
    assert!(String::from_utf8_lossy(body).contains("user request"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The holder kept its transaction; the waiter is usable once it ends.
    assert_eq!(holder.query("commit").1, None);
    assert_eq!(waiter.query("select 2").0, ["2"]);
    server.stop().unwrap();
}

#[test]
fn garbage_closes_only_that_client() {
    let server = support::start(|b| b.max_message_size(1 << 20));
    let mut good = Raw::connect(&server);
    assert_eq!(
        good.query("begin; create table g (v int); insert into g values (1)")
            .1,
        None
    );
    let cases: Vec<Vec<u8>> = vec![
        b"\xff\xff\xff\xff garbage".to_vec(),
        // A message claiming 1 GiB.
        [b'Q', 0x40, 0, 0, 0].to_vec(),
        // An invalid length.
        [b'Q', 0, 0, 0, 1].to_vec(),
        // A Query whose string is not terminated.
        support::frame(b'Q', b"select 1"),
        // A Parse cut short.
        support::frame(b'P', b"name\0"),
    ];
    for bytes in cases {
        let mut bad = Raw::connect(&server);
        bad.send(&bytes);
        let msgs = bad.until_ready();
        let (_, body) = msgs
            .iter()
            .find(|(t, _)| *t == b'E')
            .unwrap_or_else(|| panic!("no error for {bytes:?}: {msgs:?}"));
        assert_eq!(support::sqlstate(body), "08P01", "{bytes:?}");
        assert!(bad.next().is_none());
    }
    // A garbage startup packet and a truncated message followed by a hang-up.
    let mut bad = Raw::connect_bare(&server);
    bad.send(b"GET / HTTP/1.1\r\n\r\n");
    let msgs = bad.until_ready();
    assert!(msgs.iter().any(|(t, _)| *t == b'E'));
    let mut bad = Raw::connect(&server);
    bad.send(&support::query("select 1")[..6]);
    drop(bad);
    // The good client's transaction is intact.
    assert_eq!(good.query("insert into g values (2)").1, None);
    assert_eq!(good.query("commit").1, None);
    assert_eq!(good.query("select count(*) from g").0, ["2"]);
    server.stop().unwrap();
}

#[test]
fn shutdown_releases_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::start(|b| b.data_dir(&data));
    let mut c = Raw::connect(&server);
    assert_eq!(
        c.query("create table s (v int); insert into s values (1)")
            .1,
        None
    );
    assert_eq!(c.query("begin; insert into s values (2)").1, None);
    server.stop().unwrap();
    // The open connection was told and closed.
    let msgs = c.until_ready();
    assert!(
        msgs.iter()
            .any(|(t, b)| *t == b'E' && support::sqlstate(b) == "57P01"),
        "{msgs:?}"
    );
    // The directory can be served again at once, with the committed row only.
    let server = support::start(|b| b.data_dir(&data));
    let mut c = Raw::connect(&server);
    assert_eq!(c.query("select count(*) from s").0, ["1"]);
    drop(c);
    server.stop().unwrap();
}
