use pglite_client::{Client, Transport};

/// Names of the statements this client prepared (see `common::prepared_statements`).
fn prepared<T: Transport>(client: &mut Client<T>) -> Vec<String> {
    crate::common::prepared_statements(crate::BACKEND, client)
}

#[test]
fn reuse_and_eviction() {
    let mut client = crate::connect();
    assert_eq!(client.statement_cache_capacity(), 256);
    assert!(prepared(&mut client).is_empty());
    for i in 0..5i32 {
        let row = client.query_one("SELECT $1::int4 + 1", &[&i]).unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    assert_eq!(prepared(&mut client).len(), 1, "one statement, reused");

    client.set_statement_cache_capacity(2);
    client.query("SELECT 2", &[]).unwrap();
    client.query("SELECT 3", &[]).unwrap(); // evicts "SELECT $1::int4 + 1"
    let names = prepared(&mut client);
    assert_eq!(names.len(), 2, "{names:?}");
    client.query("SELECT 3", &[]).unwrap(); // hit: "SELECT 3" is now the most recent
    client.query("SELECT 4", &[]).unwrap(); // evicts "SELECT 2"
    let after = prepared(&mut client);
    assert_eq!(after.len(), 2);
    assert!(after.contains(&names[1]) || after.contains(&names[0]));

    // A statement the caller holds stays prepared until it is dropped.
    let held = client.prepare("SELECT 'held'").unwrap();
    assert_eq!(prepared(&mut client).len(), 3);
    client.set_statement_cache_capacity(0);
    assert_eq!(prepared(&mut client), vec![held.name().to_owned()]);
    assert_eq!(
        client.query_one(&held, &[]).unwrap().get::<_, &str>(0),
        "held"
    );
    drop(held);
    assert!(prepared(&mut client).is_empty());

    // Without a cache, SQL text still works and leaves nothing prepared.
    assert_eq!(
        client
            .query_one("SELECT $1::text", &[&"x"])
            .unwrap()
            .get::<_, String>(0),
        "x"
    );
    assert!(prepared(&mut client).is_empty());
}

#[test]
fn stale_cached_statement_is_replaced() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE stale (a int); INSERT INTO stale VALUES (1)")
        .unwrap();
    assert_eq!(
        client.query_one("SELECT * FROM stale", &[]).unwrap().len(),
        1
    );
    client
        .batch_execute("ALTER TABLE stale ADD COLUMN b text DEFAULT 'b'")
        .unwrap();
    let row = client.query_one("SELECT * FROM stale", &[]).unwrap();
    assert_eq!(row.len(), 2);
    assert_eq!(row.get::<_, &str>("b"), "b");
}

#[test]
fn deallocate_and_discard_behind_the_cache() {
    let mut client = crate::connect();
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
    assert_eq!(prepared(&mut client).len(), 1);
    client.batch_execute("DEALLOCATE ALL").unwrap();
    assert!(prepared(&mut client).is_empty());
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
    client.query("SELECT 2", &[]).unwrap();
    client.simple_query("DISCARD ALL").unwrap();
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
    // A single statement deallocated by name: the cache notices and re-prepares.
    let name = prepared(&mut client).into_iter().next().unwrap();
    // By the name the server knows it by (pglite::Server's is private to the
    // connection; SQL-level DEALLOCATE passes through).
    let prefix = crate::BACKEND.statement_prefix(client.backend_key());
    client
        .batch_execute(&format!("DEALLOCATE \"{prefix}{name}\""))
        .unwrap();
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
}
