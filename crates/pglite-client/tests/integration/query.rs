use pglite_client::{ErrorKind, TransactionStatus, Type};

use crate::Backend;

/// What the server reports at start-up, and the start-up parameters it applies (every
/// binary's `connect_with` asks for `application_name=pglite-client-tests`).
#[test]
fn startup_parameters() {
    let mut client = crate::connect_with(|raw| raw);
    assert_eq!(client.parameter("client_encoding"), Some("UTF8"));
    assert!(client.backend_key().is_some());
    let version = client.parameter("server_version").unwrap().to_owned();
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('application_name')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), version);
    let application_name: &str = row.get(1);
    match crate::BACKEND {
        Backend::Native => {}
        Backend::Served | Backend::Embedded => assert!(version.starts_with("17."), "{version}"),
    }
    match crate::BACKEND {
        Backend::Native | Backend::Served => {
            assert_eq!(application_name, "pglite-client-tests");
            assert_eq!(
                client.parameter("application_name"),
                Some("pglite-client-tests")
            );
        }
        // The engine's session is opened before the client's StartupMessage, which the
        // transport answers with the engine's own start-up reply: start-up parameters
        // are not applied there (set them with SET; pglite::Pglite's builder has
        // `setting`).
        Backend::Embedded => assert_eq!(application_name, ""),
    }
}

#[test]
fn simple_query_several_statements() {
    let mut client = crate::connect();
    let results = client
        .simple_query(
            "CREATE TEMP TABLE sq (id int PRIMARY KEY, name text);
             INSERT INTO sq VALUES (1, 'one'), (2, NULL);
             SELECT id, name FROM sq ORDER BY id;
             UPDATE sq SET name = 'two' WHERE id = 2;
             ;
             SELECT 'a b' AS x",
        )
        .unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].command_tag, "CREATE TABLE");
    assert_eq!(results[0].rows_affected, None);
    assert!(results[0].columns.is_empty());
    assert_eq!(results[1].command_tag, "INSERT 0 2");
    assert_eq!(results[1].rows_affected, Some(2));
    let select = &results[2];
    assert_eq!(select.command_tag, "SELECT 2");
    assert_eq!(select.rows_affected, Some(2));
    assert_eq!(select.columns.len(), 2);
    assert_eq!(select.columns[0].name, "id");
    assert_eq!(select.columns[0].type_oid, Type::INT4.oid());
    assert_eq!(select.columns[1].type_(), Some(Type::TEXT));
    assert_eq!(
        select.rows,
        vec![
            vec![Some("1".to_owned()), Some("one".to_owned())],
            vec![Some("2".to_owned()), None],
        ]
    );
    assert_eq!(results[3].rows_affected, Some(1));
    assert_eq!(results[4].rows, vec![vec![Some("a b".to_owned())]]);
    assert!(client.simple_query("").unwrap().is_empty());
}

#[test]
fn simple_query_stops_at_first_error() {
    let mut client = crate::connect();
    let err = client
        .simple_query("CREATE TEMP TABLE sqe (x int); SELECT 1/0; INSERT INTO sqe VALUES (1)")
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    // The implicit transaction of the multi-statement query was rolled back.
    let err = client.simple_query("SELECT * FROM sqe").unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
}

#[test]
fn batch_execute_and_execute() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE be (id serial, v int); INSERT INTO be (v) SELECT g FROM generate_series(1, 10) g")
        .unwrap();
    assert_eq!(
        client
            .execute("UPDATE be SET v = v + 1 WHERE v > $1", &[&5i32])
            .unwrap(),
        5
    );
    assert_eq!(
        client
            .execute("DELETE FROM be WHERE v > $1", &[&9i32])
            .unwrap(),
        2
    );
    assert_eq!(client.execute("SELECT * FROM be", &[]).unwrap(), 8);
    assert_eq!(
        client
            .execute("CREATE TEMP TABLE be2 (x int)", &[])
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .execute("INSERT INTO be2 VALUES ($1), ($2)", &[&1i32, &2i32])
            .unwrap(),
        2
    );
}

#[test]
fn query_one_and_opt() {
    let mut client = crate::connect();
    let row = client.query_one("SELECT $1::int + 1", &[&41i32]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);

    let err = client.query_one("SELECT 1 WHERE false", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);
    let err = client
        .query_one("SELECT generate_series(1, 3)", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);
    assert!(err.to_string().contains('3'), "{err}");

    assert!(
        client
            .query_opt("SELECT 1 WHERE false", &[])
            .unwrap()
            .is_none()
    );
    let row = client.query_opt("SELECT 'x'::text", &[]).unwrap().unwrap();
    assert_eq!(row.get::<_, &str>(0), "x");
    let err = client
        .query_opt("SELECT generate_series(1, 2)", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);

    // Still usable.
    assert_eq!(
        client
            .query("SELECT generate_series(1, 4)", &[])
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn prepared_statements() {
    let mut client = crate::connect();
    let stmt = client
        .prepare("SELECT $1::int8 * 2 AS doubled, $2::text AS label")
        .unwrap();
    assert!(!stmt.name().is_empty());
    assert_eq!(stmt.params(), &[Type::INT8, Type::TEXT]);
    assert_eq!(stmt.columns().len(), 2);
    assert_eq!(stmt.columns()[0].name(), "doubled");
    assert_eq!(stmt.columns()[0].type_(), &Type::INT8);
    for i in 0..3i64 {
        let row = client.query_one(&stmt, &[&i, &"n"]).unwrap();
        assert_eq!(row.get::<_, i64>("doubled"), i * 2);
        assert_eq!(row.get::<_, String>("label"), "n");
    }

    let typed = client.prepare_typed("SELECT $1", &[Type::FLOAT8]).unwrap();
    assert_eq!(typed.params(), &[Type::FLOAT8]);
    assert_eq!(typed.columns()[0].type_(), &Type::FLOAT8);
    assert_eq!(
        client
            .query_one(&typed, &[&1.5f64])
            .unwrap()
            .get::<_, f64>(0),
        1.5
    );

    // Wrong parameter count is a usage error, and the connection stays fine.
    let err = client.query(&stmt, &[&1i64]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    // A value of the wrong Rust type.
    let err = client.query(&stmt, &[&true, &"x"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion, "{err}");
    assert_eq!(
        client
            .query_one(&stmt, &[&5i64, &"z"])
            .unwrap()
            .get::<_, i64>(0),
        10
    );

    // Column metadata of a table column.
    client
        .batch_execute("CREATE TEMP TABLE meta (a int, b text)")
        .unwrap();
    let stmt = client.prepare("SELECT b, a FROM meta").unwrap();
    assert!(stmt.columns()[0].table_oid().is_some());
    assert_eq!(stmt.columns()[0].column_id(), Some(2));
    let stmt = client.prepare("SELECT 1").unwrap();
    assert_eq!(stmt.columns()[0].table_oid(), None);
}

#[test]
fn describe_leaves_nothing_prepared() {
    let mut client = crate::connect();
    client.set_statement_cache_capacity(0);
    assert_eq!(
        crate::common::prepared_statements(crate::BACKEND, &mut client),
        Vec::<String>::new()
    );
    let stmt = client.describe("SELECT $1::int4 AS a, now() AS b").unwrap();
    assert_eq!(stmt.name(), "");
    assert_eq!(stmt.params(), &[Type::INT4]);
    assert_eq!(stmt.columns()[1].type_(), &Type::TIMESTAMPTZ);
    // An unnamed statement still runs (it is parsed again).
    let row = client.query_one(&stmt, &[&7i32]).unwrap();
    assert_eq!(row.get::<_, i32>("a"), 7);
    // Nothing named was prepared. (pglite::Server keeps a connection's unnamed
    // statement under a private name, `c<connection>:<n>`, which is not the client's.)
    assert_eq!(
        crate::common::prepared_statements(crate::BACKEND, &mut client),
        Vec::<String>::new()
    );
}

#[test]
fn copy_statements_through_query_are_refused_cleanly() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE cq (x int)")
        .unwrap();
    let err = client.query("COPY cq FROM STDIN", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    let err = client.simple_query("COPY cq FROM STDIN").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    let err = client.query("COPY (SELECT 1) TO STDOUT", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert_eq!(
        client.query_one("SELECT 3", &[]).unwrap().get::<_, i32>(0),
        3
    );
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
}
