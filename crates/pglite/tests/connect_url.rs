//! `pglite::connect(url)`: the same code against the embedded engine (`pglite://`),
//! `pglite serve` and a native PostgreSQL, chosen by URL.

mod common;

use std::time::{Duration, Instant};

use pglite::client::Client;
use pglite::{AnyTransport, ErrorKind};
use pglite_testkit::NativePostgres;

/// What an application does, written once for any URL.
fn app(db: &mut Client<AnyTransport>) -> i64 {
    db.batch_execute("DROP TABLE IF EXISTS notes; CREATE TABLE notes (id serial, body text)")
        .unwrap();
    let mut tx = db.transaction().unwrap();
    for body in ["one", "two", "three"] {
        tx.execute("INSERT INTO notes (body) VALUES ($1)", &[&body])
            .unwrap();
    }
    tx.commit().unwrap();
    let long: i64 = db
        .query_one(
            "SELECT count(*) FROM notes WHERE length(body) > $1",
            &[&3i32],
        )
        .unwrap()
        .get(0);
    assert_eq!(long, 1);
    let err = db
        .execute("INSERT INTO nowhere VALUES (1)", &[])
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "42P01");
    db.query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0)
}

#[test]
fn temporary_url_opens_the_embedded_engine_with_parameters() {
    let mut db = pglite::connect("pglite://temporary?database=app&work_mem=8MB").unwrap();
    assert!(db.is_embedded());
    let dir = db.data_dir().unwrap().to_path_buf();
    assert!(dir.join("PG_VERSION").exists());
    assert_eq!(app(&mut db), 3);
    let row = db
        .query_one(
            "SELECT current_database()::text, current_setting('work_mem')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "app");
    assert_eq!(row.get::<_, &str>(1), "8MB");
    drop(db);
    assert!(!dir.exists(), "a temporary database is deleted on drop");
}

#[test]
fn path_url_keeps_data_across_connections() {
    let parent = tempfile::tempdir().unwrap();
    let url = format!("pglite://{}/db", parent.path().display());
    let mut db = pglite::connect(&url).unwrap();
    assert_eq!(app(&mut db), 3);
    db.close().unwrap();
    let mut db = pglite::connect(&url).unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    // A second opener of the same directory is refused while the first is open.
    let err = pglite::connect(&url).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Engine, "{err}");
    db.close().unwrap();
}

#[test]
fn server_urls_run_the_same_code() {
    let native = NativePostgres::start().expect("start Debian's PostgreSQL");
    let mut db = pglite::connect(&native.url("postgres", "postgres")).unwrap();
    assert!(!db.is_embedded());
    assert!(db.data_dir().is_none());
    assert_eq!(app(&mut db), 3);
    // The wrapped client still reconnects by itself after its backend is killed.
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut admin = pglite::connect(&native.url("postgres", "postgres")).unwrap();
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let broken = db.query_one("SELECT 1", &[]).unwrap_err();
    assert_eq!(
        broken.class(),
        pglite::client::ErrorClass::Broken,
        "{broken}"
    );
    let new_pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_ne!(new_pid, pid);
    db.close().unwrap();

    let server = pglite::Server::builder()
        .temporary()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    let mut db = pglite::connect(server.url()).unwrap();
    assert!(!db.is_embedded());
    assert_eq!(app(&mut db), 3);
    db.close().unwrap();
    server.stop().unwrap();
}

#[test]
fn notifications_on_every_kind_of_connection() {
    // Embedded: one session, so only its own notifications can arrive; with nothing
    // queued the wait ends at once instead of sleeping for nothing.
    let mut db = pglite::connect("pglite://temporary").unwrap();
    db.batch_execute("LISTEN jobs; NOTIFY jobs, 'first'")
        .unwrap();
    let n = db.wait_for_notification(Duration::from_secs(5)).unwrap();
    assert_eq!(n.unwrap().payload(), "first");
    let started = Instant::now();
    assert!(
        db.wait_for_notification(Duration::from_secs(5))
            .unwrap()
            .is_none()
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // A server: a notification from another session wakes the waiting one.
    let native = NativePostgres::start().expect("start Debian's PostgreSQL");
    let url = native.url("postgres", "postgres");
    let mut listener = pglite::connect(&url).unwrap();
    listener.batch_execute("LISTEN jobs").unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut db = pglite::connect(&url).unwrap();
        db.batch_execute("NOTIFY jobs, 'from afar'").unwrap();
    });
    let n = listener
        .wait_for_notification(Duration::from_secs(10))
        .unwrap()
        .expect("a notification");
    assert_eq!(n.payload(), "from afar");
    sender.join().unwrap();
    let started = Instant::now();
    assert!(
        listener
            .wait_for_notification(Duration::from_millis(300))
            .unwrap()
            .is_none()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn bad_urls_are_config_errors() {
    for url in [
        "pglite:foo",
        "pglite://",
        "pglite://nowhere-relative",
        "postgres://[::1",
    ] {
        let err = pglite::connect(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
    }
}
