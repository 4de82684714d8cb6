//! COPY FROM STDIN and COPY TO STDOUT.

mod common;

use std::io::{Cursor, Read};

use common::{count, scalar, sha256_hex, temp};

const ROWS: usize = 10_000;

fn text_data() -> String {
    let mut data = String::new();
    for i in 1..=ROWS {
        // Tabs, newlines and backslashes are escaped in text format; \N is NULL.
        let note = if i % 100 == 0 {
            "\\N".to_string()
        } else {
            format!("note {i}\\twith tab\\nand newline \\\\ ü")
        };
        data.push_str(&format!("{i}\tname {i}\t{note}\n"));
    }
    data
}

fn csv_data() -> String {
    let mut data = String::from("id,name,note\n");
    for i in 1..=ROWS {
        let note = if i % 100 == 0 {
            String::new()
        } else {
            format!("\"note {i}, \"\"quoted\"\"\nsecond line\"")
        };
        data.push_str(&format!("{i},name {i},{note}\n"));
    }
    data
}

#[test]
fn copy_in_text_then_copy_out_round_trips() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text, note text)")
        .unwrap();
    let data = text_data();
    let copied = db
        .copy_in("COPY t FROM STDIN", Cursor::new(data.as_bytes()))
        .unwrap();
    assert_eq!(copied, ROWS as u64);
    assert_eq!(count(&mut db, "t"), ROWS as i64);
    let nulls: i64 = scalar(&mut db, "SELECT count(*) FROM t WHERE note IS NULL");
    assert_eq!(nulls, (ROWS / 100) as i64);
    let note: String = db
        .query_one("SELECT note FROM t WHERE id = 7", &[])
        .unwrap()
        .get(0);
    assert_eq!(note, "note 7\twith tab\nand newline \\ ü");

    // COPY TO STDOUT gives back exactly what went in.
    let mut out = Vec::new();
    let n = db
        .copy_out("COPY (SELECT * FROM t ORDER BY id) TO STDOUT", &mut out)
        .unwrap();
    assert_eq!(n, ROWS as u64);
    assert_eq!(out.len(), data.len());
    assert_eq!(sha256_hex(&out), sha256_hex(data.as_bytes()));
    assert!(out == data.as_bytes());

    // The session is fine afterwards, also for another COPY into a second table.
    db.batch_execute("CREATE TABLE t2 (LIKE t)").unwrap();
    let copied = db.copy_in("COPY t2 FROM STDIN", Cursor::new(&out)).unwrap();
    assert_eq!(copied, ROWS as u64);
    let same: bool = scalar(
        &mut db,
        "SELECT NOT EXISTS (SELECT * FROM t EXCEPT SELECT * FROM t2)",
    );
    assert!(same);
}

#[test]
fn copy_in_csv_then_copy_out_csv_round_trips() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE c (id int, name text, note text)")
        .unwrap();
    let data = csv_data();
    let copied = db
        .copy_in(
            "COPY c FROM STDIN WITH (FORMAT csv, HEADER true)",
            data.as_bytes(),
        )
        .unwrap();
    assert_eq!(copied, ROWS as u64);
    let note: String = db
        .query_one("SELECT note FROM c WHERE id = 3", &[])
        .unwrap()
        .get(0);
    assert_eq!(note, "note 3, \"quoted\"\nsecond line");
    let nulls: i64 = scalar(&mut db, "SELECT count(*) FROM c WHERE note IS NULL");
    assert_eq!(nulls, (ROWS / 100) as i64);

    let mut out = Vec::new();
    let n = db
        .copy_out(
            "COPY (SELECT * FROM c ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true)",
            &mut out,
        )
        .unwrap();
    assert_eq!(n, ROWS as u64);
    assert_eq!(String::from_utf8(out).unwrap(), data);
}

#[test]
fn copy_errors_leave_the_session_usable() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        .unwrap();
    // A bad value in the middle: nothing is copied.
    let mut data = String::new();
    for i in 1..=1000 {
        if i == 500 {
            data.push_str("not a number\tx\n");
        } else {
            data.push_str(&format!("{i}\tname\n"));
        }
    }
    let err = db
        .copy_in("COPY t FROM STDIN", data.as_bytes())
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "22P02");
    assert!(
        common::db_error(&err)
            .where_()
            .is_some_and(|w| w.contains("line 500"))
    );
    assert_eq!(count(&mut db, "t"), 0);

    // A reader that fails: the COPY is aborted and reported.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            let line = b"1\tone\n";
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }
    let err = db.copy_in("COPY t FROM STDIN", Failing(3)).unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(count(&mut db, "t"), 0);

    // COPY into a missing table, and COPY through the wrong method.
    let err = db
        .copy_in("COPY missing FROM STDIN", "1\n".as_bytes())
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "42P01");
    assert!(db.exec("COPY t TO STDOUT").is_err());

    // Inside a transaction, a rolled back COPY leaves nothing.
    db.batch_execute("BEGIN").unwrap();
    db.copy_in("COPY t FROM STDIN", "1\tone\n2\ttwo\n".as_bytes())
        .unwrap();
    assert_eq!(count(&mut db, "t"), 2);
    db.batch_execute("ROLLBACK").unwrap();
    assert_eq!(count(&mut db, "t"), 0);
    db.copy_in("COPY t FROM STDIN", "1\tone\n".as_bytes())
        .unwrap();
    assert_eq!(count(&mut db, "t"), 1);
}

/// `COPY ... FROM STDIN` run without `copy_in` (through `exec`, `query`, a prepared
/// statement, inside a transaction): the engine cannot wait for data that never comes,
/// so the transport ends the COPY itself. The client reports its usage error and the
/// session goes on — no engine crash, no restart that would lose the session.
#[test]
fn copy_from_stdin_without_copy_in_is_an_error_not_a_crash() {
    let mut db = temp();
    db.batch_execute(
        "CREATE TABLE t (n int); CREATE TEMP TABLE session_only (n int); \
         INSERT INTO session_only VALUES (1)",
    )
    .unwrap();
    let usage = |err: pglite::Error| {
        assert_eq!(err.kind(), pglite::ErrorKind::Usage, "{err}");
        assert!(err.to_string().contains("copy_in"), "{err}");
    };
    usage(db.exec("COPY t FROM STDIN").unwrap_err());
    assert!(db.poll_notifications().unwrap().is_empty());
    usage(
        db.exec("SELECT 1; COPY t FROM stdin; SELECT 2")
            .unwrap_err(),
    );
    usage(db.query("COPY t FROM STDIN", &[]).unwrap_err());
    let stmt = db.prepare("COPY t (n) FROM STDIN (FORMAT csv)").unwrap();
    usage(db.query(&stmt, &[]).unwrap_err());
    assert_eq!(
        db.exec("SELECT 'simple'").unwrap()[0].rows[0][0].as_deref(),
        Some("simple")
    );
    usage(db.query(&stmt, &[]).unwrap_err());
    db.batch_execute("BEGIN; INSERT INTO t VALUES (5)").unwrap();
    usage(db.execute("COPY t FROM STDIN", &[]).unwrap_err());
    assert_eq!(db.transaction_status(), pglite::TransactionStatus::Failed);
    db.batch_execute("ROLLBACK").unwrap();

    // The same session throughout: its temporary table is still there.
    assert_eq!(count(&mut db, "session_only"), 1);
    assert_eq!(count(&mut db, "t"), 0);
    // copy_in still works, also with the statement text used above.
    db.copy_in("COPY t FROM STDIN", "1\n2\n".as_bytes())
        .unwrap();
    assert_eq!(count(&mut db, "t"), 2);
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);
}
