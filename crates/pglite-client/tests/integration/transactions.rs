use pglite_client::{Client, ErrorKind, TransactionStatus, Transport};

fn count<T: Transport>(client: &mut Client<T>, table: &str) -> i64 {
    client
        .query_one(&*format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn commit_rollback_and_drop() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE txn (v int)")
        .unwrap();

    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO txn VALUES ($1)", &[&1i32]).unwrap();
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    tx.commit().unwrap();
    assert_eq!(count(&mut client, "txn"), 1);

    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO txn VALUES ($1)", &[&2i32]).unwrap();
    tx.rollback().unwrap();
    assert_eq!(count(&mut client, "txn"), 1);

    {
        let mut tx = client.transaction().unwrap();
        tx.execute("INSERT INTO txn VALUES ($1)", &[&3i32]).unwrap();
        assert_eq!(tx.query("SELECT * FROM txn", &[]).unwrap().len(), 2);
        // dropped without commit
    }
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    assert_eq!(count(&mut client, "txn"), 1);

    // A failed transaction: commit reports the rollback.
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO txn VALUES ($1)", &[&4i32]).unwrap();
    assert!(tx.execute("SELECT 1/0", &[]).is_err());
    let err = tx.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RolledBack);
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    assert_eq!(count(&mut client, "txn"), 1);
}

#[test]
fn savepoints() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE sp (v int)")
        .unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO sp VALUES (1)", &[]).unwrap();
    {
        let mut sp = tx.transaction().unwrap();
        sp.execute("INSERT INTO sp VALUES (2)", &[]).unwrap();
        sp.rollback().unwrap();
    }
    {
        let mut sp = tx.transaction().unwrap();
        sp.execute("INSERT INTO sp VALUES (3)", &[]).unwrap();
        {
            let mut inner = sp.transaction().unwrap();
            inner.execute("INSERT INTO sp VALUES (4)", &[]).unwrap();
            // An error inside the savepoint, then drop: rolls back to the savepoint only.
            assert!(inner.execute("SELECT 1/0", &[]).is_err());
        }
        assert_eq!(sp.transaction_status(), TransactionStatus::InTransaction);
        sp.commit().unwrap();
    }
    {
        let mut sp = tx.transaction().unwrap();
        sp.execute("INSERT INTO sp VALUES (5)", &[]).unwrap();
        // dropped: rolled back
    }
    let values: Vec<i32> = tx
        .query("SELECT v FROM sp ORDER BY v", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, vec![1, 3]);
    tx.commit().unwrap();
    assert_eq!(count(&mut client, "sp"), 2);
}
