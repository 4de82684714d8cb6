//! `Pglite::temporary`, `Pglite::builder` options and the session defaults every
//! session must have.

mod common;

use common::{scalar, show, temp};
use pglite::client::uuid::Uuid;
use pglite::{ErrorKind, Pglite};

/// Settings every session of ours must show, whatever the runtime's own defaults are.
fn assert_normal_defaults(db: &mut Pglite) {
    assert_eq!(show(db, "SHOW fsync"), "on");
    assert_eq!(show(db, "SHOW synchronous_commit"), "on");
    assert_eq!(show(db, "SHOW search_path"), "\"$user\", public");
    assert_eq!(show(db, "SHOW client_min_messages"), "notice");
    assert_eq!(show(db, "SHOW enable_seqscan"), "on");
    assert_eq!(show(db, "SHOW allow_system_table_mods"), "off");
    assert_eq!(show(db, "SHOW exit_on_error"), "off");
    assert_eq!(show(db, "SHOW server_encoding"), "UTF8");
    // The runtime names the zone GMT; what matters is that it is UTC.
    let offset: f64 = scalar(db, "SELECT extract(timezone FROM now())::float8");
    assert_eq!(offset, 0.0, "TimeZone is {}", show(db, "SHOW TimeZone"));
    let schema: String = scalar(db, "SELECT current_schema()");
    assert_eq!(schema, "public");
}

#[test]
fn session_defaults_are_postgresql_defaults() {
    let mut db = temp();
    assert_normal_defaults(&mut db);
    let version: String = scalar(&mut db, "SHOW server_version");
    assert!(version.starts_with("17."), "{version}");
    assert_eq!(db.client().parameter("server_encoding"), Some("UTF8"));
    let database: String = scalar(&mut db, "SELECT current_database()");
    assert_eq!(database, "postgres");
    let user: String = scalar(&mut db, "SELECT current_user");
    assert_eq!(user, "postgres");

    // A freshly created directory (initdb) and a reopened one behave the same.
    let dir = tempfile::tempdir().unwrap();
    let mut fresh = Pglite::open(dir.path()).unwrap();
    assert_normal_defaults(&mut fresh);
    fresh.close().unwrap();
    let mut reopened = Pglite::open(dir.path()).unwrap();
    assert_normal_defaults(&mut reopened);
}

#[test]
fn gen_random_uuid_values_differ() {
    let mut db = temp();
    let row = db
        .query_one("SELECT gen_random_uuid(), gen_random_uuid()", &[])
        .unwrap();
    let (a, b): (Uuid, Uuid) = (row.get(0), row.get(1));
    assert_ne!(a, b);
    assert_eq!(a.get_version_num(), 4);
    let many: i64 = scalar(
        &mut db,
        "SELECT count(DISTINCT gen_random_uuid()) FROM generate_series(1, 1000)",
    );
    assert_eq!(many, 1000);
    let next: Uuid = scalar(&mut db, "SELECT gen_random_uuid()");
    assert!(next != a && next != b);
    // And across databases: no two temporary databases share a random stream.
    let mut other = temp();
    let theirs: Uuid = scalar(&mut other, "SELECT gen_random_uuid()");
    assert!(theirs != a && theirs != b && theirs != next);
    let r1: f64 = scalar(&mut db, "SELECT random()");
    let r2: f64 = scalar(&mut other, "SELECT random()");
    assert_ne!(r1, r2);
}

#[test]
fn temporary_databases_are_isolated() {
    let mut a = temp();
    let mut b = temp();
    assert_ne!(a.data_dir(), b.data_dir());
    a.batch_execute("CREATE TABLE only_in_a (n int); INSERT INTO only_in_a VALUES (1)")
        .unwrap();
    let seen: Option<String> = scalar(&mut b, "SELECT to_regclass('only_in_a')::text");
    assert_eq!(seen, None);
    b.batch_execute("CREATE TABLE only_in_a (n int)").unwrap();
    assert_eq!(common::count(&mut b, "only_in_a"), 0);
    assert_eq!(common::count(&mut a, "only_in_a"), 1);
    // A new temporary database starts from the clean template, not from an earlier one.
    drop(a);
    let mut c = temp();
    let seen: Option<String> = scalar(&mut c, "SELECT to_regclass('only_in_a')::text");
    assert_eq!(seen, None);
    let tables: i64 = scalar(
        &mut c,
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    );
    assert_eq!(tables, 0);
}

#[test]
fn temporary_directory_is_deleted_on_drop_and_on_close() {
    let mut db = temp();
    db.batch_execute("CREATE TABLE t (n int)").unwrap();
    let dir = db.data_dir().to_path_buf();
    assert!(dir.join("PG_VERSION").is_file(), "{}", dir.display());
    drop(db);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());

    let db = temp();
    let dir = db.data_dir().to_path_buf();
    assert!(dir.exists());
    db.close().unwrap();
    assert!(!dir.exists(), "{} still exists after close", dir.display());
}

/// `into_client` hands over the engine and the temporary directory: the client keeps
/// the session's protection (an error after `DISCARD ALL` is an ordinary error, not a
/// FATAL one from the runtime's `exit_on_error = on`), and dropping it shuts the engine
/// down and then deletes the directory.
#[test]
fn into_client_owns_the_engine_and_the_temporary_directory() {
    let db = Pglite::builder()
        .temporary()
        .setting("work_mem", "1MB")
        .open()
        .unwrap();
    let dir = db.data_dir().to_path_buf();
    let mut client = db.into_client();
    client.batch_execute("CREATE TABLE kept (n int)").unwrap();
    client.batch_execute("DISCARD ALL").unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('work_mem'), current_setting('search_path'), \
                    current_setting('exit_on_error')",
            &[],
        )
        .unwrap();
    let settings: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        settings,
        ("1MB".into(), "\"$user\", public".into(), "off".into())
    );
    assert!(client.query("SELEC 1", &[]).is_err());
    assert_eq!(client.execute("SELECT * FROM kept", &[]).unwrap(), 0);
    assert!(dir.join("PG_VERSION").is_file(), "{}", dir.display());
    drop(client);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn builder_database_creates_and_attaches() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut db = Pglite::builder()
            .path(dir.path())
            .database("other")
            .open()
            .unwrap();
        let name: String = scalar(&mut db, "SELECT current_database()");
        assert_eq!(name, "other");
        assert_normal_defaults(&mut db);
        db.batch_execute("CREATE TABLE in_other (n int); INSERT INTO in_other VALUES (7)")
            .unwrap();
        db.close().unwrap();
    }
    {
        // The default database is a different one.
        let mut db = Pglite::open(dir.path()).unwrap();
        let name: String = scalar(&mut db, "SELECT current_database()");
        assert_eq!(name, "postgres");
        let seen: Option<String> = scalar(&mut db, "SELECT to_regclass('in_other')::text");
        assert_eq!(seen, None);
        let dbs: Vec<String> = db
            .query(
                "SELECT datname::text FROM pg_database WHERE NOT datistemplate ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(dbs, ["other", "postgres"]);
    }
    // Attaching again finds the existing database and its data.
    let mut db = Pglite::builder()
        .path(dir.path())
        .database("other")
        .open()
        .unwrap();
    let n: i32 = scalar(&mut db, "SELECT n FROM in_other");
    assert_eq!(n, 7);
    drop(db);

    // A temporary database can have a named database too, even an odd name.
    let mut db = Pglite::builder()
        .temporary()
        .database("My App-DB")
        .open()
        .unwrap();
    let name: String = scalar(&mut db, "SELECT current_database()");
    assert_eq!(name, "My App-DB");
    assert_normal_defaults(&mut db);
}

#[test]
fn builder_setting_is_visible_in_show() {
    let mut db = Pglite::builder()
        .temporary()
        .setting("work_mem", "1MB")
        .setting("statement_timeout", "5s")
        .setting("application_name", "pglite tests")
        .open()
        .unwrap();
    assert_eq!(show(&mut db, "SHOW work_mem"), "1MB");
    assert_eq!(show(&mut db, "SHOW statement_timeout"), "5s");
    assert_eq!(show(&mut db, "SHOW application_name"), "pglite tests");
    assert_normal_defaults(&mut db);

    let err = Pglite::builder()
        .temporary()
        .setting("no_such_setting", "1")
        .open()
        .unwrap_err();
    assert!(err.to_string().contains("no_such_setting"), "{err}");
    let err = Pglite::builder()
        .temporary()
        .setting("work_mem", "lots")
        .open()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
}

#[test]
fn builder_server_level_setting_that_cannot_apply_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Pglite::builder()
        .path(dir.path())
        .setting("wal_buffers", "1MB")
        .open()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("wal_buffers"), "{err}");
    // Nothing of it stays behind in the directory.
    let mut db = Pglite::open(dir.path()).unwrap();
    let left: i64 = scalar(
        &mut db,
        "SELECT count(*) FROM pg_file_settings WHERE name = 'wal_buffers' \
         AND sourcefile LIKE '%postgresql.auto.conf'",
    );
    assert_eq!(left, 0);
}

#[test]
#[ignore = "engine: the runtime passes shared_buffers on the backend's command line, which \
            overrides postgresql.auto.conf; WasmEngineOptions has no way to set it"]
fn builder_shared_buffers_setting_takes_effect() {
    let mut db = Pglite::builder()
        .temporary()
        .setting("shared_buffers", "16MB")
        .setting("work_mem", "2MB")
        .open()
        .unwrap();
    assert_eq!(show(&mut db, "SHOW shared_buffers"), "16MB");
    assert_eq!(show(&mut db, "SHOW work_mem"), "2MB");
    assert_normal_defaults(&mut db);
}

#[test]
fn builder_username_sets_current_user() {
    let mut db = Pglite::builder()
        .temporary()
        .username("alice")
        .open()
        .unwrap();
    let row = db
        .query_one("SELECT current_user::text, session_user::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "alice");
    assert_normal_defaults(&mut db);
    let superuser: bool = scalar(
        &mut db,
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    );
    assert!(!superuser);
    // A new role may not create objects in the postgres database's public schema
    // (PostgreSQL 15 and later)...
    let err = db.batch_execute("CREATE TABLE mine (n int)").unwrap_err();
    assert_eq!(common::sqlstate(&err), "42501");
    // ...but owns a database created for it.
    let mut db = Pglite::builder()
        .temporary()
        .username("alice")
        .database("app")
        .open()
        .unwrap();
    db.batch_execute("CREATE TABLE mine (n int)").unwrap();
    let owner: String = scalar(
        &mut db,
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'",
    );
    assert_eq!(owner, "alice");
    let db_owner: String = scalar(
        &mut db,
        "SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()",
    );
    assert_eq!(db_owner, "alice");

    // With a persistent directory the role is created once and reused.
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let mut db = Pglite::builder()
            .path(dir.path())
            .username("alice")
            .database("alices")
            .open()
            .unwrap();
        let row = db
            .query_one("SELECT current_user::text, current_database()::text", &[])
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "alice");
        assert_eq!(row.get::<_, String>(1), "alices");
        db.close().unwrap();
    }
}

#[test]
fn session_settings_survive_reset_and_discard() {
    let mut db = Pglite::builder()
        .temporary()
        .username("alice")
        .database("app")
        .setting("work_mem", "1MB")
        .open()
        .unwrap();
    for reset in [
        "RESET ALL",
        "DISCARD ALL",
        "RESET work_mem; RESET search_path; RESET exit_on_error",
        "SET work_mem TO DEFAULT; SET search_path TO DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "SET SESSION AUTHORIZATION DEFAULT",
        "BEGIN; RESET ALL; COMMIT",
    ] {
        db.batch_execute(reset).unwrap();
        assert_normal_defaults(&mut db);
        assert_eq!(show(&mut db, "SHOW work_mem"), "1MB", "after {reset}");
        let user: String = scalar(&mut db, "SELECT session_user::text");
        assert_eq!(user, "alice", "after {reset}");
    }
    // After RESET ALL an error is an ordinary error (exit_on_error is off again).
    db.batch_execute("RESET ALL").unwrap();
    assert!(db.exec("SELEC 1").is_err());
    let one: i32 = scalar(&mut db, "SELECT 1");
    assert_eq!(one, 1);

    // What the application sets itself is kept, also when something else is reset.
    db.batch_execute("SET work_mem = '8MB'; SET search_path = pg_catalog, public")
        .unwrap();
    db.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(show(&mut db, "SHOW work_mem"), "8MB");
    assert_eq!(show(&mut db, "SHOW search_path"), "pg_catalog, public");
    // A reset undone by a rollback stays undone.
    db.batch_execute("SET work_mem = '2MB'").unwrap();
    db.batch_execute("BEGIN; RESET work_mem; ROLLBACK").unwrap();
    assert_eq!(show(&mut db, "SHOW work_mem"), "2MB");
}

#[test]
fn set_role_survives_unrelated_resets() {
    let dir = tempfile::tempdir().unwrap();
    let mut admin = Pglite::open(dir.path()).unwrap();
    admin
        .batch_execute("CREATE ROLE alice LOGIN; CREATE ROLE bob; GRANT bob TO alice")
        .unwrap();
    admin.close().unwrap();

    let mut db = Pglite::builder()
        .path(dir.path())
        .username("alice")
        .open()
        .unwrap();
    db.batch_execute("SET ROLE bob").unwrap();
    db.batch_execute("RESET ALL").unwrap();
    let row = db
        .query_one("SELECT session_user::text, current_user::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    // RESET ALL leaves the role alone (as in PostgreSQL), while restoring the
    // superuser-only defaults needed a detour through the superuser.
    assert_eq!(row.get::<_, String>(1), "bob");
    assert_normal_defaults(&mut db);
    db.batch_execute("RESET ROLE").unwrap();
    let current: String = scalar(&mut db, "SELECT current_user::text");
    assert_eq!(current, "alice");
}

#[test]
#[ignore = "engine: the runtime sends no ParameterStatus when a reported setting changes \
            (and reports session_authorization as empty at startup)"]
fn parameter_status_follows_setting_changes() {
    let mut db = temp();
    assert_eq!(
        db.client().parameter("session_authorization"),
        Some("postgres")
    );
    db.batch_execute("SET application_name = 'reported'; SET DateStyle = 'German'")
        .unwrap();
    assert_eq!(db.client().parameter("application_name"), Some("reported"));
    assert_eq!(db.client().parameter("DateStyle"), Some("German, DMY"));
}

#[test]
fn builder_without_a_location_is_an_error() {
    let err = Pglite::builder().open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

/// A client that asks the engine's transport for another database than the one the
/// engine is attached to is refused (SQLSTATE 3D000), not silently given that one.
#[test]
fn a_client_asking_the_engine_for_another_database_is_refused() {
    use pglite::client::{Client, StartupConfig};
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("db");
    pglite_engine::Template::shared()
        .unwrap()
        .clone_into(&dir)
        .unwrap();
    let open = || {
        let options = pglite_engine::WasmEngineOptions::default();
        pglite::EngineTransport::new(pglite_engine::WasmEngine::open(&dir, &options).unwrap())
    };
    let err = Client::connect(open(), &StartupConfig::new("postgres", "other")).unwrap_err();
    assert_eq!(common::sqlstate(&err), "3D000", "{err}");
    assert!(
        err.to_string().contains("\"postgres\", not \"other\""),
        "{err}"
    );
    assert!(err.to_string().contains("builder().database"), "{err}");
    let mut client = Client::connect(open(), &StartupConfig::new("postgres", "postgres")).unwrap();
    let name: String = client
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "postgres");
}
