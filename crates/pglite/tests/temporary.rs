//! Temporary databases: fresh, isolated, durable like any other, deleted on drop, also
//! when the next one was prepared in the background.

mod common;

use common::{scalar, show};
use pglite::Pglite;

/// One test function, so that setting the environment races with no other thread.
#[test]
fn temporary_databases() {
    for prepare in ["0", "1"] {
        // SAFETY: this binary runs this one test; no other thread reads the environment.
        unsafe { std::env::set_var("PGLITE_PREPARE_TEMPORARY", prepare) };
        temporaries_are_fresh_isolated_and_deleted();
        two_temporaries_at_once_are_independent();
    }
}

fn temporaries_are_fresh_isolated_and_deleted() {
    let mut dirs = Vec::new();
    // With PGLITE_PREPARE_TEMPORARY=1, from the second one on, the next is prepared in
    // the background.
    for i in 0..4 {
        let mut db = Pglite::temporary().unwrap();
        let leftovers: i64 = scalar(
            &mut db,
            "SELECT count(*) FROM pg_class WHERE relname = 'leftover'",
        );
        assert_eq!(leftovers, 0, "temporary database {i} is not fresh");
        db.batch_execute("CREATE TABLE leftover (i int); INSERT INTO leftover VALUES (1)")
            .unwrap();
        assert_eq!(show(&mut db, "SHOW fsync"), "on");
        assert_eq!(show(&mut db, "SHOW search_path"), "\"$user\", public");
        let dir = db.data_dir().to_path_buf();
        assert!(dir.join("PG_VERSION").is_file());
        assert!(!dirs.contains(&dir));
        drop(db);
        assert!(!dir.exists(), "{} was not deleted", dir.display());
        dirs.push(dir);
    }
}

fn two_temporaries_at_once_are_independent() {
    let mut a = Pglite::temporary().unwrap();
    let mut b = Pglite::temporary().unwrap();
    a.batch_execute("CREATE TABLE only_in_a (i int)").unwrap();
    let in_b: i64 = scalar(
        &mut b,
        "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'",
    );
    assert_eq!(in_b, 0);
    assert_ne!(a.data_dir(), b.data_dir());
    // An explicit close still shuts down cleanly and reports success.
    a.close().unwrap();
    b.close().unwrap();
}
