//! Connecting with libpq connection strings against the native PostgreSQL server.

mod support;

use std::net::TcpListener;

use pglite_client::{Client, Config, ErrorKind, SqlState};
use support::server;

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn url_over_tcp_with_startup_settings() {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?application_name=from-url&options=-c%20search_path%3Dpg_catalog&connect_timeout=5",
        server().port
    );
    let mut client = Client::connect_url(&url).unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('application_name'), current_setting('search_path'), current_database()::text",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "from-url");
    assert_eq!(row.get::<_, &str>(1), "pg_catalog");
    assert_eq!(row.get::<_, &str>(2), "postgres");
    client.close().unwrap();
}

#[test]
fn keyword_value_over_unix_socket() {
    let dir = server().dir.display().to_string();
    let conninfo = format!(
        "host='{dir}' port={} user=postgres dbname=postgres application_name='unix test'",
        server().port
    );
    let mut client = Client::connect_url(&conninfo).unwrap();
    assert!(matches!(
        client.transport(),
        pglite_client::SocketTransport::Unix(_)
    ));
    let row = client
        .query_one("SELECT current_setting('application_name')", &[])
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "unix test");

    // The same through a URL with a percent-encoded socket directory.
    let url = format!(
        "postgresql://postgres@{}:{}/postgres",
        percent_encode(&dir),
        server().port
    );
    let mut client = Client::connect_url(&url).unwrap();
    client.batch_execute("SELECT 1").unwrap();
}

#[test]
fn scram_password_with_special_characters() {
    let url = format!(
        "postgresql://{}:{}@localhost:{}/postgres",
        support::SCRAM_USER,
        percent_encode(support::SCRAM_PASSWORD),
        server().port
    );
    let mut client = Client::connect_url(&url).unwrap();
    let row = client.query_one("SELECT current_user::text", &[]).unwrap();
    assert_eq!(row.get::<_, &str>(0), support::SCRAM_USER);

    let bad = format!(
        "postgresql://{}:wrong@127.0.0.1:{}/postgres",
        support::SCRAM_USER,
        server().port
    );
    let err = Client::connect_url(&bad).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[test]
fn tries_hosts_in_order() {
    // A port nobody listens on (bound, then released).
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{}/postgres",
        server().port
    );
    let mut client = Client::connect_url(&url).unwrap();
    client.batch_execute("SELECT 1").unwrap();

    let only_dead = format!("postgres://postgres@127.0.0.1:{dead},127.0.0.1:{dead}/postgres");
    let err = Client::connect_url(&only_dead).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains("could not connect to any host"),
        "{err}"
    );
}

#[test]
fn errors() {
    let err = Client::connect_url(&format!(
        "postgres://postgres@127.0.0.1:{}/no_such_db",
        server().port
    ))
    .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");

    // The test server has no TLS: modes that require it fail, prefer goes plain.
    let err = Client::connect_url(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        server().port
    ))
    .unwrap_err();
    if cfg!(feature = "tls") {
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(err.to_string().contains("does not support TLS"), "{err}");
    } else {
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }
    let mut client = Client::connect_url(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=prefer",
        server().port
    ))
    .unwrap();
    assert!(!client.transport().is_tls());
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    // verify-full needs a root certificate before anything is sent.
    #[cfg(feature = "tls")]
    {
        let err = Client::connect_url(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
            server().port
        ))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
    }

    // sslmode=require is satisfied by a Unix socket, as in libpq.
    let config = Config::new()
        .host_path(&server().dir)
        .port(server().port)
        .user("postgres")
        .dbname("postgres")
        .ssl_mode(pglite_client::SslMode::Require);
    Client::connect_config(&config).unwrap();

    let err = Client::connect_url("postgres://h?bogus=1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[test]
fn blocking_wait_for_notification() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server().port);
    let mut listener = Client::connect_url(&url).unwrap();
    let mut notifier = Client::connect_url(&url).unwrap();
    listener.batch_execute("LISTEN blocking_chan").unwrap();

    let start = std::time::Instant::now();
    let none = listener
        .wait_for_notification(std::time::Duration::from_millis(100))
        .unwrap();
    assert!(none.is_none());
    assert!(start.elapsed() >= std::time::Duration::from_millis(90));
    // The timeout left the connection usable (and without a read timeout).
    listener.batch_execute("SELECT 1").unwrap();

    let sender = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        notifier
            .execute("SELECT pg_notify('blocking_chan', 'hello')", &[])
            .unwrap();
        notifier
    });
    let n = listener
        .wait_for_notification(std::time::Duration::from_secs(10))
        .unwrap()
        .expect("a notification");
    assert_eq!((n.channel(), n.payload()), ("blocking_chan", "hello"));
    let mut notifier = sender.join().unwrap();

    // A terminated backend is reported while waiting, and closes the client.
    let pid = listener.backend_key().unwrap().0;
    notifier
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let err = listener
        .wait_for_notification(std::time::Duration::from_secs(10))
        .unwrap_err();
    assert!(listener.is_closed(), "{err}");
}
