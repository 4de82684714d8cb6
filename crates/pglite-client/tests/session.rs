//! Cancellation, automatic reconnection with remembered parameters, and error
//! classification, against the native PostgreSQL server — blocking and async.

mod support;

use std::time::{Duration, Instant};

use pglite_client::{
    Client, ErrorClass, ErrorKind, SocketTransport, StartupConfig, TcpTransport, TransactionStatus,
};
use support::server;

fn url() -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=10",
        server().port
    )
}

/// Waits until backend `pid` sleeps in `pg_sleep` in a statement containing `needle`.
/// Waiting for `state = 'active'` is not enough: that holds from the statement's Parse
/// on, and a cancel request arriving while the backend reads its Bind or Execute is
/// ignored (PostgreSQL drops cancels that arrive while it reads a command).
fn wait_until_running(observer: &mut Client<SocketTransport>, pid: i32, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = observer
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep' \
                 AND query LIKE '%' || $2 || '%'",
                &[&pid, &needle],
            )
            .unwrap();
        if running.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Terminates backend `pid` from another connection and waits until it is gone.
fn terminate(pid: i32) {
    let mut killer = Client::connect_url(&url()).unwrap();
    let done: bool = killer
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(done);
    let deadline = Instant::now() + Duration::from_secs(10);
    while killer
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "backend {pid} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(feature = "tokio")]
fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn cancel_a_running_query_blocking() {
    let mut client = Client::connect_url(&url()).unwrap();
    let token = client.cancel_token().unwrap();
    let pid = client.backend_key().unwrap().0;
    assert_eq!(token.process_id(), pid);
    let canceller = std::thread::spawn(move || {
        let mut observer = Client::connect_url(&url()).unwrap();
        wait_until_running(&mut observer, pid, "pg_sleep(30)");
        token.cancel().unwrap();
    });
    let start = Instant::now();
    let err = client.query("SELECT pg_sleep(30)", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    canceller.join().unwrap();
    // The session goes on, on the same backend.
    let row = client.query_one("SELECT 41 + 1", &[]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(client.backend_key().unwrap().0, pid);

    // Cancelling an idle session does nothing.
    client.cancel_token().unwrap().cancel().unwrap();
    client.batch_execute("SELECT 1").unwrap();

    // Clients over a raw TCP transport and a Unix socket get tokens too.
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let raw = Client::connect(transport, &StartupConfig::default()).unwrap();
    assert_eq!(
        raw.cancel_token().unwrap().process_id(),
        raw.backend_key().unwrap().0
    );
    let unix = Client::connect_url(&format!(
        "host={} port={} user=postgres",
        server().dir.display(),
        server().port
    ))
    .unwrap();
    unix.cancel_token().unwrap().cancel().unwrap();
}

#[cfg(unix)]
#[test]
fn cancel_over_a_unix_socket() {
    let mut client = Client::connect_url(&format!(
        "host={} port={} user=postgres dbname=postgres",
        server().dir.display(),
        server().port
    ))
    .unwrap();
    let token = client.cancel_token().unwrap();
    let pid = token.process_id();
    let canceller = std::thread::spawn(move || {
        let mut observer = Client::connect_url(&url()).unwrap();
        wait_until_running(&mut observer, pid, "pg_sleep(31)");
        token.cancel().unwrap();
    });
    let err = client.batch_execute("SELECT pg_sleep(31)").unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    canceller.join().unwrap();
    client.batch_execute("SELECT 1").unwrap();
}

#[cfg(feature = "tokio")]
#[test]
fn cancel_a_running_query_async() {
    run(async {
        let mut client = pglite_client::AsyncClient::connect_url(&url())
            .await
            .unwrap();
        let token = client.cancel_token().unwrap();
        let pid = client.backend_key().unwrap().0;
        let canceller = tokio::spawn(async move {
            let mut observer = pglite_client::AsyncClient::connect_url(&url())
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while observer
                .query_opt(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep' \
                     AND query LIKE '%pg_sleep(30)%'",
                    &[&pid],
                )
                .await
                .unwrap()
                .is_none()
            {
                assert!(Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            token.cancel_async().await.unwrap();
        });
        let start = Instant::now();
        let err = client.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        canceller.await.unwrap();
        let row = client.query_one("SELECT 2::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
        assert_eq!(client.backend_key().unwrap().0, pid);
    });
}

#[test]
fn reconnect_reapplies_params_blocking() {
    let mut client = Client::connect_url(&url()).unwrap();
    client
        .set_param("application_name", "reconnect-test")
        .unwrap();
    client
        .set_param("search_path", "pg_catalog, public")
        .unwrap();
    client
        .set_param("application_name", "it's re-applied")
        .unwrap();
    let stmt = client.prepare("SELECT 7::int4").unwrap();
    client.query("SELECT 8::int4", &[]).unwrap();
    let pid = client.backend_key().unwrap().0;

    terminate(pid);
    let err = client.query("SELECT 9", &[]).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Broken, "{err}");
    assert!(client.is_closed());

    // The next call reconnects, with the remembered parameters.
    let row = client
        .query_one(
            "SELECT current_setting('application_name'), current_setting('search_path')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "it's re-applied");
    assert_eq!(row.get::<_, &str>(1), "pg_catalog, public");
    assert_ne!(client.backend_key().unwrap().0, pid);
    assert!(!client.is_closed());
    // Cached SQL is prepared again; a handle from the old session is refused.
    assert_eq!(
        client
            .query_one("SELECT 8::int4", &[])
            .unwrap()
            .get::<_, i32>(0),
        8
    );
    let err = client.query(&stmt, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("prepare it again"), "{err}");
    let stmt = client.prepare("SELECT 7::int4").unwrap();
    assert_eq!(client.query_one(&stmt, &[]).unwrap().get::<_, i32>(0), 7);
}

#[test]
fn no_silent_reconnect_inside_a_transaction() {
    let mut client = Client::connect_url(&url()).unwrap();
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS reconnect_tx (id int)")
        .unwrap();
    let pid = client.backend_key().unwrap().0;
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO reconnect_tx VALUES (1)", &[])
        .unwrap();
    terminate(pid);
    let err = tx
        .execute("INSERT INTO reconnect_tx VALUES (2)", &[])
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Broken, "{err}");
    // COMMIT must not run on a new session as if nothing happened.
    let err = tx.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    assert!(err.to_string().contains("inside a transaction"), "{err}");
    // The call after that reconnects; nothing of the transaction was kept.
    let count: i64 = client
        .query_one("SELECT count(*) FROM reconnect_tx", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    client.batch_execute("DROP TABLE reconnect_tx").unwrap();
}

#[test]
fn clients_without_a_config_stay_closed() {
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let mut client = Client::connect(transport, &StartupConfig::default()).unwrap();
    client.set_param("application_name", "raw").unwrap();
    terminate(client.backend_key().unwrap().0);
    let err = client.batch_execute("SELECT 1").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Broken);
    let err = client.batch_execute("SELECT 1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[cfg(feature = "tokio")]
#[test]
fn reconnect_reapplies_params_async() {
    run(async {
        let mut client = pglite_client::AsyncClient::connect_url(&url())
            .await
            .unwrap();
        client
            .set_param("application_name", "async reconnect")
            .await
            .unwrap();
        client.set_param("work_mem", "12MB").await.unwrap();
        let pid = client.backend_key().unwrap().0;
        tokio::task::spawn_blocking(move || terminate(pid))
            .await
            .unwrap();
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Broken, "{err}");
        let row = client
            .query_one(
                "SELECT current_setting('application_name'), current_setting('work_mem')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "async reconnect");
        assert_eq!(row.get::<_, &str>(1), "12MB");
        assert_ne!(client.backend_key().unwrap().0, pid);

        // Inside a transaction: the break, then one "lost" error, then a new session.
        let pid = client.backend_key().unwrap().0;
        let mut tx = client.transaction().await.unwrap();
        tx.batch_execute("SELECT 1").await.unwrap();
        tokio::task::spawn_blocking(move || terminate(pid))
            .await
            .unwrap();
        assert_eq!(
            tx.batch_execute("SELECT 1").await.unwrap_err().class(),
            ErrorClass::Broken
        );
        let err = tx.commit().await.unwrap_err();
        assert!(err.to_string().contains("inside a transaction"), "{err}");
        client.batch_execute("SELECT 1").await.unwrap();
        assert_ne!(client.backend_key().unwrap().0, pid);
    });
}

#[test]
fn error_classes_of_real_errors() {
    let mut client = Client::connect_url(&url()).unwrap();
    let raise = |client: &mut Client<SocketTransport>, code: &str| {
        client
            .batch_execute(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$"
            ))
            .unwrap_err()
    };
    for code in ["40001", "40P01", "55P03"] {
        let err = raise(&mut client, code);
        assert_eq!(err.code().map(|c| c.code()), Some(code));
        assert_eq!(err.class(), ErrorClass::Transient, "{code}");
    }
    for code in ["23505", "22012", "42P01"] {
        assert_eq!(raise(&mut client, code).class(), ErrorClass::Permanent);
    }
    let err = client.batch_execute("SELEC 1").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = client.query_one("SELECT 1 WHERE false", &[]).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);

    // Too many connections for a role: FATAL 53300 at start-up, worth retrying.
    client
        .batch_execute(
            "DROP ROLE IF EXISTS limited_role; CREATE ROLE limited_role LOGIN CONNECTION LIMIT 0",
        )
        .unwrap();
    let err = Client::connect_url(&format!(
        "postgres://limited_role@127.0.0.1:{}/postgres",
        server().port
    ))
    .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");
    assert_eq!(err.class(), ErrorClass::Transient);
    // Unknown database and wrong password: FATAL, but permanent.
    let err = Client::connect_url(&format!(
        "postgres://postgres@127.0.0.1:{}/no_such_db",
        server().port
    ))
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    let err = Client::connect_url(&format!(
        "postgres://{}:wrong@127.0.0.1:{}/postgres",
        support::SCRAM_USER,
        server().port
    ))
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    // Nobody listening: broken (no connection).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err =
        Client::connect_url(&format!("postgres://postgres@127.0.0.1:{dead}/postgres")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.class(), ErrorClass::Broken);
}
