//! A crash inside the engine (a trap) is an ordinary error; the handle keeps working.

mod common;

use std::sync::{Arc, Mutex};

use common::{count, scalar, show};
use pglite::{Pglite, TransactionStatus};

#[test]
fn a_trap_is_an_error_and_the_session_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Pglite::builder()
        .path(dir.path())
        .username("alice")
        .database("app")
        .setting("work_mem", "1MB")
        .open()
        .unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    db.listen("after_crash", move |n| {
        sink.lock().unwrap().push(n.payload().to_string())
    })
    .unwrap();
    db.batch_execute(
        "CREATE TABLE kept (n int);
         INSERT INTO kept VALUES (1);
         CREATE FUNCTION deep(n int) RETURNS int LANGUAGE plpgsql AS $$
           BEGIN IF n = 0 THEN RETURN 0; END IF; RETURN deep(n - 1) + 1; END $$;",
    )
    .unwrap();
    let stmt = db
        .prepare("SELECT count(*) FROM kept WHERE n = $1")
        .unwrap();

    // Uncommitted work in an open transaction, then a statement that overflows the
    // guest's stack (PostgreSQL's own stack check is inert in this build).
    db.batch_execute("BEGIN; INSERT INTO kept VALUES (2)")
        .unwrap();
    let err = db.query("SELECT deep(1000000)", &[]).unwrap_err();
    assert_eq!(common::sqlstate(&err), "XX000", "{err}");
    assert!(err.to_string().contains("crashed"), "{err}");
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);

    // The committed row is there, the uncommitted one is not.
    assert_eq!(count(&mut db, "kept"), 1);
    // The session is what the builder made it.
    let row = db
        .query_one("SELECT session_user::text, current_database()::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "app");
    assert_eq!(show(&mut db, "SHOW work_mem"), "1MB");
    assert_eq!(show(&mut db, "SHOW search_path"), "\"$user\", public");
    assert_eq!(show(&mut db, "SHOW exit_on_error"), "off");
    // Prepared statements and the statement cache are re-prepared transparently.
    let n: i64 = db.query_one(&stmt, &[&1i32]).unwrap().get(0);
    assert_eq!(n, 1);
    // LISTEN registrations are renewed.
    db.notify("after_crash", "still here").unwrap();
    assert_eq!(*heard.lock().unwrap(), ["still here"]);

    // And the directory closes and reopens normally.
    db.close().unwrap();
    let mut db = Pglite::builder()
        .path(dir.path())
        .database("app")
        .open()
        .unwrap();
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM kept");
    assert_eq!(n, 1);
}
