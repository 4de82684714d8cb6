//! Prepared statements, the automatic statement cache, `describe`.

mod common;

use common::{scalar, temp};
use pglite::{Pglite, Type};

/// How many prepared statements the backend holds for exactly this SQL text.
fn prepared_on_server(db: &mut Pglite, sql: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
        &[&sql],
    )
    .unwrap()
    .get(0)
}

/// Opening a database prepares statements of its own (settings, roles): none of them is
/// left in the session or in the statement cache for the application to trip over.
#[test]
fn a_new_session_holds_no_prepared_statements() {
    let builders = [
        Pglite::builder().temporary(),
        Pglite::builder()
            .temporary()
            .username("alice")
            .database("app")
            .setting("work_mem", "2MB"),
    ];
    for builder in builders {
        let mut db = builder.open().unwrap();
        let names = db
            .exec("SELECT string_agg(name || ': ' || statement, '; ') FROM pg_prepared_statements")
            .unwrap();
        assert_eq!(
            names[0].rows[0][0], None,
            "left prepared: {:?}",
            names[0].rows
        );
        let one: i32 = scalar(&mut db, "SELECT 1");
        assert_eq!(one, 1);
        assert_eq!(prepared_on_server(&mut db, "SELECT 1"), 1);
    }
}

#[test]
fn prepare_then_run_many_times() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        .unwrap();
    let insert = db.prepare("INSERT INTO t VALUES ($1, $2)").unwrap();
    assert_eq!(insert.params(), [Type::INT4, Type::TEXT]);
    assert!(insert.columns().is_empty());
    assert!(!insert.name().is_empty(), "a named server-side statement");
    db.transaction(|tx| {
        for i in 0..1000i32 {
            tx.execute(&insert, &[&i, &format!("name {i}")])?;
        }
        Ok::<_, pglite::Error>(())
    })
    .unwrap();
    let select = db.prepare("SELECT name FROM t WHERE id = $1").unwrap();
    for i in [0i32, 500, 999] {
        let name: String = db.query_one(&select, &[&i]).unwrap().get(0);
        assert_eq!(name, format!("name {i}"));
    }
    assert_eq!(
        prepared_on_server(&mut db, "SELECT name FROM t WHERE id = $1"),
        1
    );

    // A dropped statement is closed on the server with the next request.
    let name = select.name().to_string();
    drop(select);
    let _: i32 = scalar(&mut db, "SELECT 1");
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    // Fixed parameter types.
    let typed = db
        .client()
        .prepare_typed("SELECT $1 + 1", &[Type::INT8])
        .unwrap();
    assert_eq!(typed.params(), [Type::INT8]);
    let n: i64 = db.query_one(&typed, &[&41i64]).unwrap().get(0);
    assert_eq!(n, 42);
}

#[test]
fn sql_text_is_prepared_once_and_reused_from_the_cache() {
    let mut db = temp();
    let sql = "SELECT $1::int * 2 AS doubled";
    for i in 0..50i32 {
        let v: i32 = db.query_one(sql, &[&i]).unwrap().get(0);
        assert_eq!(v, i * 2);
    }
    // Fifty runs, one statement on the server.
    assert_eq!(prepared_on_server(&mut db, sql), 1);
    // execute, query_opt and query share the cache entry.
    db.execute(sql, &[&1i32]).unwrap();
    db.query_opt(sql, &[&1i32]).unwrap();
    db.query(sql, &[&1i32]).unwrap();
    assert_eq!(prepared_on_server(&mut db, sql), 1);

    // With the cache off, nothing new is kept on the server.
    db.client().set_statement_cache_capacity(0);
    let uncached = "SELECT $1::int + 100";
    for i in 0..5i32 {
        let v: i32 = db.query_one(uncached, &[&i]).unwrap().get(0);
        assert_eq!(v, i + 100);
    }
    assert_eq!(prepared_on_server(&mut db, uncached), 0);
}

#[test]
fn cached_statements_survive_schema_changes_and_discard() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)")
        .unwrap();
    let sql = "SELECT * FROM t";
    assert_eq!(db.query_one(sql, &[]).unwrap().len(), 1);
    db.batch_execute("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'")
        .unwrap();
    // The cached plan's result type changed: the client prepares it again.
    let row = db.query_one(sql, &[]).unwrap();
    assert_eq!(row.len(), 2);
    assert_eq!(row.get::<_, String>("b"), "x");

    // DEALLOCATE ALL behind the cache's back.
    db.batch_execute("DEALLOCATE ALL").unwrap();
    assert_eq!(db.query_one(sql, &[]).unwrap().len(), 2);
}

#[test]
fn discard_all_keeps_normal_session_defaults() {
    let mut db = temp();
    let sql = "SELECT $1::text AS v";
    db.query_one(sql, &[&"x"]).unwrap();
    db.batch_execute("DISCARD ALL").unwrap();
    assert_eq!(db.query_one(sql, &[&"y"]).unwrap().get::<_, String>(0), "y");
    // Resetting the session must not bring back the runtime's odd reset values.
    assert_eq!(
        common::show(&mut db, "SHOW search_path"),
        "\"$user\", public"
    );
    db.batch_execute("RESET ALL").unwrap();
    assert_eq!(
        common::show(&mut db, "SHOW search_path"),
        "\"$user\", public"
    );
    db.batch_execute("CREATE TABLE after_reset (n int)")
        .unwrap();
    let schema: String = scalar(
        &mut db,
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'after_reset'",
    );
    assert_eq!(schema, "public");
}

#[test]
fn describe_gives_parameter_and_column_types() {
    let mut db = temp();
    db.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(20), price numeric(10,2), \
         tags text[], meta jsonb, created timestamptz DEFAULT now())",
    )
    .unwrap();
    let stmt = db
        .describe(
            "SELECT id, name, price, tags, meta, created, price * $3 AS total \
             FROM items WHERE id = $1 AND name LIKE $2",
        )
        .unwrap();
    // `name LIKE $2` resolves to text LIKE text, as in any PostgreSQL.
    assert_eq!(stmt.params(), [Type::INT8, Type::TEXT, Type::NUMERIC]);
    let columns: Vec<(String, Type)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect();
    assert_eq!(
        columns,
        [
            ("id".to_string(), Type::INT8),
            ("name".into(), Type::VARCHAR),
            ("price".into(), Type::NUMERIC),
            ("tags".into(), Type::TEXT_ARRAY),
            ("meta".into(), Type::JSONB),
            ("created".into(), Type::TIMESTAMPTZ),
            ("total".into(), Type::NUMERIC),
        ]
    );
    // Columns of a table carry its OID and attribute number.
    let table_oid: u32 = scalar(&mut db, "SELECT 'items'::regclass::oid");
    assert_eq!(stmt.columns()[1].table_oid(), Some(table_oid));
    assert_eq!(stmt.columns()[1].column_id(), Some(2));
    assert_eq!(stmt.columns()[6].table_oid(), None);

    let insert = db
        .describe("INSERT INTO items (id, name, meta) VALUES ($1, $2, $3)")
        .unwrap();
    assert_eq!(insert.params(), [Type::INT8, Type::VARCHAR, Type::JSONB]);
    assert!(insert.columns().is_empty());
    let returning = db
        .describe("INSERT INTO items (id) VALUES ($1) RETURNING created")
        .unwrap();
    assert_eq!(returning.columns()[0].type_(), &Type::TIMESTAMPTZ);

    // Describing runs nothing.
    assert_eq!(common::count(&mut db, "items"), 0);
    // And an invalid statement is a normal SQL error.
    let err = db.describe("SELECT nope FROM items").unwrap_err();
    assert_eq!(common::sqlstate(&err), "42703");
}
