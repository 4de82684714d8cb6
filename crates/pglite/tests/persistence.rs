//! Data directories: create, close, reopen, exclusive use, killed owners.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{count, scalar, show};
use pglite::{ErrorKind, Pglite};

/// Set for the child process of `another_process_is_refused_and_a_killed_owner_leaves_no_lock`.
const HOLD_DIR_VAR: &str = "PGLITE_TEST_HOLD_DIR";
/// What the child prints once its row is committed.
const READY: &str = "pglite-child-ready";

fn assert_in_use(result: Result<Pglite, pglite::Error>) {
    let err = result.expect_err("a second opener must be refused");
    let shown = err.to_string();
    let chain = format!("{shown} / {:?}", std::error::Error::source(&err));
    assert!(
        chain.contains("in use"),
        "the error must say the directory is in use: {chain}"
    );
    assert_ne!(err.kind(), ErrorKind::Db, "{err:?}");
}

#[test]
fn tables_without_a_schema_land_in_public_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let mut db = Pglite::open(&path).unwrap();
        let schema: String = scalar(&mut db, "SELECT current_schema()");
        assert_eq!(schema, "public");
        db.batch_execute(
            "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
             CREATE INDEX notes_body ON notes (body);
             CREATE VIEW note_bodies AS SELECT body FROM notes;",
        )
        .unwrap();
        for body in ["first", "second", "third"] {
            db.execute("INSERT INTO notes (body) VALUES ($1)", &[&body])
                .unwrap();
        }
        let placed: Vec<(String, String)> = db
            .query(
                "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                 WHERE table_name IN ('notes', 'note_bodies') ORDER BY table_name",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            placed,
            [
                ("public".to_string(), "note_bodies".to_string()),
                ("public".to_string(), "notes".to_string())
            ]
        );
        db.close().unwrap();
    }
    // Reopened: same defaults, the table is found without a schema.
    let mut db = Pglite::open(&path).unwrap();
    assert_eq!(show(&mut db, "SHOW search_path"), "\"$user\", public");
    let regclass: String = scalar(&mut db, "SELECT 'notes'::regclass::text");
    assert_eq!(regclass, "notes");
    let bodies: Vec<String> = db
        .query("SELECT body FROM note_bodies ORDER BY body", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    let qualified: i64 = scalar(&mut db, "SELECT count(*) FROM public.notes");
    assert_eq!(qualified, 3);
    // The sequence continues where it was.
    let id: i32 = db
        .query_one(
            "INSERT INTO notes (body) VALUES ('fourth') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(id, 4);
}

#[test]
fn data_survives_close_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, several levels deep.
    let path = dir.path().join("a").join("b").join("db");
    let mut db = Pglite::open(&path).unwrap();
    assert!(path.join("PG_VERSION").is_file());
    db.batch_execute("CREATE TABLE t (n int, s text)").unwrap();
    db.execute(
        "INSERT INTO t SELECT n, md5(n::text) FROM generate_series(1, 1000) n",
        &[],
    )
    .unwrap();
    // Committed in a transaction, and an uncommitted one that must not survive.
    db.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (1001, 'tx')", &[])?;
        Ok::<_, pglite::Error>(())
    })
    .unwrap();
    db.batch_execute("BEGIN; INSERT INTO t VALUES (-1, 'uncommitted')")
        .unwrap();
    db.close().unwrap();

    // Reopen after close(), write more, then just drop the handle.
    let mut db = Pglite::open(&path).unwrap();
    assert_eq!(count(&mut db, "t"), 1001);
    let missing: i64 = scalar(&mut db, "SELECT count(*) FROM t WHERE n < 0");
    assert_eq!(missing, 0);
    db.execute("UPDATE t SET s = 'changed' WHERE n <= 10", &[])
        .unwrap();
    db.execute("DELETE FROM t WHERE n > 1000", &[]).unwrap();
    drop(db);

    let mut db = Pglite::open(&path).unwrap();
    assert_eq!(count(&mut db, "t"), 1000);
    let changed: i64 = scalar(&mut db, "SELECT count(*) FROM t WHERE s = 'changed'");
    assert_eq!(changed, 10);
    let same: bool = scalar(
        &mut db,
        "SELECT bool_and(s = md5(n::text)) FROM t WHERE n > 10",
    );
    assert!(same);
    db.close().unwrap();
}

#[test]
fn close_returns_ok_and_the_directory_can_be_reopened() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3i32 {
        let mut db = Pglite::open(dir.path()).unwrap();
        db.batch_execute("CREATE TABLE IF NOT EXISTS rounds (n int)")
            .unwrap();
        db.execute("INSERT INTO rounds VALUES ($1)", &[&round])
            .unwrap();
        assert_eq!(count(&mut db, "rounds"), i64::from(round) + 1);
        db.close().expect("a clean close");
    }
    // The temporary database closes cleanly too.
    let db = Pglite::temporary().unwrap();
    db.close().unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Pglite::open(dir.path()).unwrap();
    first
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        .unwrap();

    assert_in_use(Pglite::open(dir.path()));
    // Another spelling of the same path is the same directory.
    assert_in_use(Pglite::open(dir.path().join(".")));
    assert_in_use(Pglite::builder().path(dir.path()).database("other").open());
    // The refused openers did not disturb the first handle.
    assert_eq!(count(&mut first, "t"), 1);
    first.execute("INSERT INTO t VALUES (2)", &[]).unwrap();

    drop(first);
    let mut second = Pglite::open(dir.path()).expect("free again after the drop");
    assert_eq!(count(&mut second, "t"), 2);
    // And the same after close().
    second.close().unwrap();
    let mut third = Pglite::open(dir.path()).unwrap();
    assert_eq!(count(&mut third, "t"), 2);
}

#[test]
fn a_directory_with_foreign_content_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a cluster").unwrap();
    let err = Pglite::open(dir.path()).unwrap_err();
    assert!(err.to_string().len() > 10);
    // Nothing was written into it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

/// Child process: opens the directory, commits a row, says so, then waits to be killed.
#[test]
#[ignore = "child process of another_process_is_refused_and_a_killed_owner_leaves_no_lock"]
fn hold_directory_child() {
    let Ok(dir) = std::env::var(HOLD_DIR_VAR) else {
        return; // only meaningful as the parent test's child
    };
    let mut db = Pglite::open(&dir).unwrap();
    db.batch_execute("CREATE TABLE held (n int); INSERT INTO held VALUES (42)")
        .unwrap();
    println!("{READY}");
    std::thread::sleep(Duration::from_secs(60));
    panic!("the parent should have killed this process");
}

#[test]
fn another_process_is_refused_and_a_killed_owner_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_directory_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.contains(READY)));
    if !ready {
        let _ = child.kill();
        panic!(
            "the child exited without opening the database: {:?}",
            child.wait()
        );
    }

    // The other process holds the directory.
    assert_in_use(Pglite::open(dir.path()));

    // Killed without any shutdown: the lock goes with the process, the row stays.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut db = Pglite::open(dir.path()).expect("a killed owner leaves no lock behind");
    let n: i32 = scalar(&mut db, "SELECT n FROM held");
    assert_eq!(n, 42);
    db.close().unwrap();
}
