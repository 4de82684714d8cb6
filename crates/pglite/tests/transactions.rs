//! `Pglite::transaction`: commit on Ok, rollback on Err or panic, nested savepoints.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{count, temp};
use pglite::{Error, ErrorKind, Pglite, TransactionStatus};

fn with_table() -> Pglite {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (n int PRIMARY KEY)")
        .unwrap();
    db
}

fn values(db: &mut Pglite) -> Vec<i32> {
    db.query("SELECT n FROM t ORDER BY n", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn ok_commits_and_returns_the_value() {
    let mut db = with_table();
    let returned = db
        .transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (1), (2)", &[])?;
            // Inside, the transaction sees its own rows.
            let n: i64 = tx.query_one("SELECT count(*) FROM t", &[])?.get(0);
            assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
            Ok::<_, Error>(n)
        })
        .unwrap();
    assert_eq!(returned, 2);
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [1, 2]);
}

#[test]
fn err_rolls_back_and_returns_the_callers_error() {
    #[derive(Debug)]
    enum AppError {
        Db(Error),
        Invalid(&'static str),
    }
    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Db(e)
        }
    }

    let mut db = with_table();
    db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let result: Result<(), AppError> = db.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (2)", &[])?;
        tx.execute("DELETE FROM t WHERE n = 1", &[])?;
        Err(AppError::Invalid("changed my mind"))
    });
    assert!(matches!(result, Err(AppError::Invalid("changed my mind"))));
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [1]);

    // A SQL error inside rolls back everything done before it.
    let result: Result<(), AppError> = db.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (3)", &[])?;
        tx.execute("INSERT INTO t VALUES (1)", &[])?; // duplicate key
        Ok(())
    });
    match result {
        Err(AppError::Db(e)) => assert_eq!(common::sqlstate(&e), "23505"),
        other => panic!("expected the duplicate-key error, got {other:?}"),
    }
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [1]);

    // Swallowing the SQL error and returning Ok cannot commit a failed transaction.
    let result = db.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (4)", &[])?;
        let _ = tx.execute("INSERT INTO t VALUES (1)", &[]);
        Ok::<_, Error>(())
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::RolledBack);
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [1]);
}

#[test]
fn panic_rolls_back_and_the_database_stays_usable() {
    let mut db = with_table();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        db.transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", &[])?;
            if tx
                .query_one("SELECT count(*) FROM t", &[])?
                .get::<_, i64>(0)
                == 1
            {
                panic!("boom inside the transaction");
            }
            Ok::<_, Error>(())
        })
    }));
    assert!(outcome.is_err(), "the panic propagates");
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(
        count(&mut db, "t"),
        0,
        "the row inserted before the panic is gone"
    );
    // Fully usable: a new transaction commits.
    db.transaction(|tx| tx.execute("INSERT INTO t VALUES (2)", &[]).map(|_| ()))
        .unwrap();
    assert_eq!(values(&mut db), [2]);

    // A panic inside a savepoint rolls back the whole transaction.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        db.transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (3)", &[])?;
            let mut sp = tx.transaction()?;
            let inserted = sp.execute("INSERT INTO t VALUES (4)", &[])?;
            if inserted == 1 {
                panic!("boom inside the savepoint");
            }
            Ok::<_, Error>(())
        })
    }));
    assert!(outcome.is_err());
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [2]);
}

#[test]
fn nested_savepoints_commit_and_roll_back_independently() {
    let mut db = with_table();
    db.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (1)", &[])?;

        // Inner savepoint rolled back: only its rows go.
        {
            let mut sp = tx.transaction()?;
            sp.execute("INSERT INTO t VALUES (2)", &[])?;
            sp.rollback()?;
        }
        // Inner savepoint committed (released): its rows stay.
        {
            let mut sp = tx.transaction()?;
            sp.execute("INSERT INTO t VALUES (3)", &[])?;
            // Two levels deep: the innermost is dropped without commit, which rolls back.
            {
                let mut inner = sp.transaction()?;
                inner.execute("INSERT INTO t VALUES (4)", &[])?;
            }
            {
                let mut inner = sp.transaction()?;
                inner.execute("INSERT INTO t VALUES (5)", &[])?;
                inner.commit()?;
            }
            sp.commit()?;
        }
        // A SQL error inside a savepoint does not fail the outer transaction.
        {
            let mut sp = tx.transaction()?;
            let err = sp.execute("INSERT INTO t VALUES (1)", &[]).unwrap_err();
            assert_eq!(common::sqlstate(&err), "23505");
            assert_eq!(sp.transaction_status(), TransactionStatus::Failed);
            sp.rollback()?;
        }
        assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
        tx.execute("INSERT INTO t VALUES (6)", &[])?;
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(values(&mut db), [1, 3, 5, 6]);

    // A committed savepoint is still undone when the outer transaction fails.
    let result = db.transaction(|tx| {
        let mut sp = tx.transaction()?;
        sp.execute("INSERT INTO t VALUES (7)", &[])?;
        sp.commit()?;
        Err::<(), _>(Error::new(ErrorKind::Usage, "abort the outer transaction"))
    });
    assert!(result.is_err());
    assert_eq!(values(&mut db), [1, 3, 5, 6]);
}

#[test]
fn explicit_transaction_commands_work_too() {
    let mut db = with_table();
    db.batch_execute("BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a; INSERT INTO t VALUES (2);")
        .unwrap();
    assert_eq!(db.transaction_status(), TransactionStatus::InTransaction);
    db.batch_execute("ROLLBACK TO SAVEPOINT a; COMMIT").unwrap();
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(values(&mut db), [1]);
    // Rows of an open transaction are visible to its own later statements only.
    db.batch_execute("BEGIN").unwrap();
    db.execute("INSERT INTO t VALUES (2)", &[]).unwrap();
    assert_eq!(values(&mut db), [1, 2]);
    db.batch_execute("ROLLBACK").unwrap();
    assert_eq!(values(&mut db), [1]);
}
