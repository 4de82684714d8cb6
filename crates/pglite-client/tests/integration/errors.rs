use pglite_client::{ErrorKind, ErrorPosition, SqlState, TransactionStatus};

#[test]
fn syntax_error_fields_and_display() {
    let mut client = crate::connect();
    for via_simple in [false, true] {
        let err = if via_simple {
            client.simple_query("SELEC 1").unwrap_err()
        } else {
            client.query("SELEC 1", &[]).unwrap_err()
        };
        assert_eq!(err.kind(), ErrorKind::Db);
        assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
        let db = err.as_db_error().unwrap();
        assert_eq!(db.severity(), "ERROR");
        assert_eq!(db.parsed_severity(), Some("ERROR"));
        assert_eq!(db.message(), "syntax error at or near \"SELEC\"");
        assert_eq!(db.position(), Some(&ErrorPosition::Original(1)));
        assert!(db.file().is_some() && db.line().is_some() && db.routine().is_some());
        assert_eq!(
            err.to_string(),
            "ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)"
        );
        // The connection stays usable.
        assert_eq!(
            client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
            1
        );
    }
    // A failed Parse must not leave a cached statement behind.
    let err = client.query("SELECT nope FROM nowhere", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    client
        .batch_execute("CREATE TEMP TABLE nowhere (nope int)")
        .unwrap();
    assert!(
        client
            .query("SELECT nope FROM nowhere", &[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn constraint_violation_fields() {
    let mut client = crate::connect();
    client
        .batch_execute(
            "CREATE TEMP TABLE uv (id int CONSTRAINT uv_pkey PRIMARY KEY, v int CHECK (v > 0));
             INSERT INTO uv VALUES (1, 1);",
        )
        .unwrap();
    let err = client
        .execute("INSERT INTO uv VALUES ($1, $2)", &[&1i32, &5i32])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let db = err.as_db_error().unwrap();
    assert_eq!(db.constraint(), Some("uv_pkey"));
    assert_eq!(db.table(), Some("uv"));
    assert!(db.schema().unwrap().starts_with("pg_temp"));
    assert_eq!(db.detail(), Some("Key (id)=(1) already exists."));
    let text = err.to_string();
    assert!(
        text.contains("(SQLSTATE 23505)\nDETAIL: Key (id)=(1) already exists."),
        "{text}"
    );

    let err = client
        .execute("INSERT INTO uv VALUES ($1, $2)", &[&2i32, &-1i32])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION));
    let err = client
        .execute("INSERT INTO uv (v) VALUES ($1)", &[&1i32])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::NOT_NULL_VIOLATION));
    assert_eq!(err.as_db_error().unwrap().column(), Some("id"));
    assert_eq!(client.execute("SELECT * FROM uv", &[]).unwrap(), 1);
}

#[test]
fn errors_in_every_phase_leave_the_connection_usable() {
    let mut client = crate::connect();
    // Error while rows are already streaming.
    let err = client
        .query("SELECT 10 / (5 - g) FROM generate_series(1, 10) g", &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    // Error in Bind (the server cannot parse the text value).
    let err = client
        .query("SELECT $1::int4", &[&"not a number"])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{err}"
    );
    // Error with a hint and an internal position.
    let err = client
        .batch_execute(
            "CREATE FUNCTION pg_temp.bad() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT nope); END $$;
             SELECT pg_temp.bad();",
        )
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::UNDEFINED_COLUMN);
    assert!(
        matches!(db.position(), Some(ErrorPosition::Internal { .. })),
        "{db:?}"
    );
    assert!(db.where_().is_some());
    let err = client
        .query("SELECT * FROM generate_series(1, 'x')", &[])
        .unwrap_err();
    assert!(err.as_db_error().unwrap().hint().is_none() || err.to_string().contains("HINT: "));
    let err = client.query("SELECT length(1, 2, 3)", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_FUNCTION));
    assert!(err.to_string().contains("\nHINT: "), "{err}");

    // Inside a transaction: the error puts it in the failed state; rollback recovers.
    client.batch_execute("BEGIN").unwrap();
    assert!(client.query("SELECT 1/0", &[]).is_err());
    assert_eq!(client.transaction_status(), TransactionStatus::Failed);
    let err = client.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").unwrap();
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    for _ in 0..3 {
        assert_eq!(
            client.query_one("SELECT 2", &[]).unwrap().get::<_, i32>(0),
            2
        );
    }
}

#[test]
fn notices_reach_the_handler() {
    let mut client = crate::connect();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    client.set_notice_handler(move |notice| {
        sink.lock()
            .unwrap()
            .push((notice.severity().to_owned(), notice.message().to_owned()))
    });
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$")
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            ("NOTICE".to_owned(), "hello 42".to_owned()),
            ("WARNING".to_owned(), "careful".to_owned())
        ]
    );
}
