//! SQL errors: every field of the server's report, and the session stays usable.

mod common;

use common::{count, db_error, scalar, sqlstate, temp};
use pglite::{ErrorKind, ErrorPosition, SqlState, TransactionStatus};

#[test]
fn syntax_error_has_sqlstate_42601_and_the_next_statement_works() {
    let mut db = temp();
    let err = db.exec("SELEC 1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db);
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    let report = db_error(&err);
    assert_eq!(report.code().code(), "42601");
    assert_eq!(report.severity(), "ERROR");
    assert_eq!(report.message(), "syntax error at or near \"SELEC\"");
    assert_eq!(report.position(), Some(&ErrorPosition::Original(1)));
    let shown = err.to_string();
    assert!(shown.contains("42601"), "{shown}");
    assert!(shown.contains("syntax error"), "{shown}");
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);

    // The very next statement on the same handle works, with either protocol.
    let results = db.exec("SELECT 1").unwrap();
    assert_eq!(results[0].rows, [[Some("1".to_string())]]);
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);

    // The extended protocol reports the same error, with the position in the text.
    let err = db.query("SELECT 1 WHERE AND", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42601");
    assert_eq!(
        db_error(&err).position(),
        Some(&ErrorPosition::Original(16))
    );
    let two: i32 = scalar(&mut db, "SELECT 2");
    assert_eq!(two, 2);
}

#[test]
fn error_reports_carry_detail_hint_position_and_object_names() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (id int CONSTRAINT t_pkey PRIMARY KEY, name text NOT NULL)")
        .unwrap();
    db.execute("INSERT INTO t VALUES ($1, $2)", &[&1i32, &"one"])
        .unwrap();

    let err = db
        .execute("INSERT INTO t VALUES ($1, $2)", &[&1i32, &"again"])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let report = db_error(&err);
    assert_eq!(
        report.message(),
        "duplicate key value violates unique constraint \"t_pkey\""
    );
    assert_eq!(report.detail(), Some("Key (id)=(1) already exists."));
    assert_eq!(report.schema(), Some("public"));
    assert_eq!(report.table(), Some("t"));
    assert_eq!(report.constraint(), Some("t_pkey"));

    let err = db
        .execute("INSERT INTO t (id) VALUES (2)", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23502");
    assert_eq!(db_error(&err).column(), Some("name"));

    let err = db.query("SELECT no_such_function(1)", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_FUNCTION));
    let report = db_error(&err);
    assert!(
        report
            .hint()
            .is_some_and(|h| h.contains("No function matches")),
        "{report:?}"
    );
    assert_eq!(report.position(), Some(&ErrorPosition::Original(8)));

    let err = db.query("SELECT * FROM missing_table", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(
        db_error(&err).position(),
        Some(&ErrorPosition::Original(15))
    );

    // Run-time errors while executing, with parameters.
    let err = db.query("SELECT 10 / $1::int", &[&0i32]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));

    // An error raised by PL/pgSQL carries its own SQLSTATE, detail and hint.
    let err = db
        .batch_execute(
            "DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0042', \
             DETAIL = 'some detail', HINT = 'some hint'; END $$",
        )
        .unwrap_err();
    let report = db_error(&err);
    assert_eq!(report.code().code(), "P0042");
    assert_eq!(report.message(), "custom failure");
    assert_eq!(report.detail(), Some("some detail"));
    assert_eq!(report.hint(), Some("some hint"));

    // An error inside a function body points into the internal query.
    db.batch_execute(
        "CREATE FUNCTION broken() RETURNS int LANGUAGE plpgsql AS $$ \
         BEGIN RETURN (SELECT count(*) FROM nowhere); END $$",
    )
    .unwrap();
    let err = db.query("SELECT broken()", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let report = db_error(&err);
    assert!(
        matches!(report.position(), Some(ErrorPosition::Internal { query, .. }) if query.contains("nowhere")),
        "{report:?}"
    );
    assert!(report.where_().is_some_and(|w| w.contains("broken")));

    // After all of that the session is fine and the data is intact.
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(count(&mut db, "t"), 1);
}

#[test]
fn failed_transaction_refuses_statements_until_rollback() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    db.batch_execute("BEGIN").unwrap();
    assert_eq!(db.transaction_status(), TransactionStatus::InTransaction);
    db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let err = db.execute("INSERT INTO t VALUES (1)", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(db.transaction_status(), TransactionStatus::Failed);

    // Every statement is refused, through either protocol, until the rollback.
    for _ in 0..3 {
        let err = db.query("SELECT 1", &[]).unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        let err = db.exec("SELECT 1").unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        assert_eq!(db.transaction_status(), TransactionStatus::Failed);
    }
    db.batch_execute("ROLLBACK").unwrap();
    assert_eq!(db.transaction_status(), TransactionStatus::Idle);
    assert_eq!(count(&mut db, "t"), 0);
    db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(count(&mut db, "t"), 1);

    // COMMIT of a failed transaction rolls back.
    db.batch_execute("BEGIN; INSERT INTO t VALUES (2)").unwrap();
    assert!(db.exec("SELECT 1/0").is_err());
    let results = db.exec("COMMIT").unwrap();
    assert_eq!(results[0].command_tag, "ROLLBACK");
    assert_eq!(count(&mut db, "t"), 1);
}

#[test]
fn a_multi_statement_exec_stops_at_the_first_error() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (n int)").unwrap();
    let err = db
        .exec("INSERT INTO t VALUES (1); SELECT 1/0; INSERT INTO t VALUES (2)")
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    // A simple-protocol batch is one implicit transaction: nothing of it is kept.
    assert_eq!(count(&mut db, "t"), 0);
    let results = db
        .exec("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); SELECT n FROM t ORDER BY n")
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].command_tag, "INSERT 0 1");
    assert_eq!(results[2].rows, [[Some("1".into())], [Some("2".into())]]);
}

#[test]
fn hundreds_of_errors_in_a_row_leave_the_database_usable() {
    let mut db = temp();
    for i in 0..300 {
        let err = if i % 2 == 0 {
            db.exec("SELEC 1").unwrap_err()
        } else {
            db.query("SELECT $1::int / 0", &[&i]).unwrap_err()
        };
        assert!(matches!(sqlstate(&err), "42601" | "22012"), "{err}");
    }
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM generate_series(1, 1000)");
    assert_eq!(n, 1000);
}

#[test]
fn client_side_errors_are_not_server_errors() {
    let mut db = temp();
    let err = db.query_one("SELECT 1 WHERE false", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);
    let err = db
        .query_opt("SELECT * FROM generate_series(1, 2)", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedRowCount);
    let row = db
        .query_one("SELECT 1::int4 AS n, NULL::text AS s", &[])
        .unwrap();
    assert_eq!(
        row.try_get::<_, String>("n").unwrap_err().kind(),
        ErrorKind::Conversion
    );
    assert_eq!(
        row.try_get::<_, i32>("nope").unwrap_err().kind(),
        ErrorKind::ColumnNotFound
    );
    assert_eq!(
        row.try_get::<_, String>("s").unwrap_err().kind(),
        ErrorKind::Conversion
    );
    // Wrong parameter count or type is refused before anything reaches the server.
    let err = db.query("SELECT $1::int", &[]).unwrap_err();
    assert!(err.code().is_none() || sqlstate(&err) == "08P01", "{err:?}");
    let err = db.query("SELECT $1::int", &[&1.5f64]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion, "{err:?}");
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);
}
