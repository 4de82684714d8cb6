//! Protocol front: SSL refusal, startup errors, connection limits, passwords.

use std::io::Read;

use crate::support::{self, Raw};

#[test]
fn ssl_is_refused_and_startup_errors_are_proper() {
    let server = support::start(|b| b.max_connections(2));
    // SSLRequest and GSSENCRequest get 'N', then the startup goes on.
    let mut raw = Raw::connect_bare(&server);
    for code in [80_877_103i32, 80_877_104] {
        let mut req = 8i32.to_be_bytes().to_vec();
        req.extend_from_slice(&code.to_be_bytes());
        raw.send(&req);
        let mut answer = [0u8; 1];
        raw.stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"N");
    }
    raw.send(&support::startup("postgres", "postgres"));
    raw.until_ready();
    assert_eq!(raw.query("select 7").0, ["7"]);
    // Another database: 3D000 with a hint.
    let mut other = Raw::connect_bare(&server);
    other.send(&support::startup("postgres", "elsewhere"));
    let msgs = other.until_ready();
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E').unwrap();
    assert_eq!(support::sqlstate(body), "3D000");
    assert!(String::from_utf8_lossy(body).contains("serves only the database"));
    assert!(other.next().is_none());
    // Too many connections: 53300.
    let _second = Raw::connect(&server);
    let mut third = Raw::connect_bare(&server);
    third.send(&support::startup("postgres", "postgres"));
    let msgs = third.until_ready();
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E').unwrap();
    assert_eq!(support::sqlstate(body), "53300");
    // A CancelRequest is accepted (and closes its own connection).
    let mut cancel = Raw::connect_bare(&server);
    let mut req = 16i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80_877_102i32.to_be_bytes());
    req.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    cancel.send(&req);
    assert!(cancel.next().is_none());
    assert_eq!(raw.query("select 8").0, ["8"]);
    drop(raw);
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_password() {
    let server = support::start(|b| b.password("s3cret pass"));
    assert!(server.url().contains("postgres:s3cret%20pass@"));
    let (client, _) = support::tokio_pg(server.url()).await;
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let addr = server.local_addr().unwrap();
    let wrong = format!(
        "postgres://postgres:nope@{}:{}/postgres",
        addr.ip(),
        addr.port()
    );
    let err = tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().unwrap().code(), "28P01");
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server.url()).await.unwrap();
    let x: i32 = sqlx::query_scalar("SELECT 5")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(x, 5);
    drop(client);
    server.stop().unwrap();
}
