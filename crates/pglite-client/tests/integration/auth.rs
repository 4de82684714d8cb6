//! Authentication methods, `pg_hba.conf` users and the client's authentication
//! policy: native PostgreSQL only (`pglite::Server` has one optional password for
//! every user and is tested by its own crate; the engine has no authentication).

#[cfg(feature = "tokio")]
use pglite_client::AsyncClient;
use pglite_client::{Client, ErrorKind, SqlState, StartupConfig, TcpTransport};

#[cfg(feature = "tokio")]
use crate::async_query::run;
use crate::support::{self, server};

fn connect_as(
    user: &str,
    password: Option<&str>,
) -> Result<Client<TcpTransport>, pglite_client::Error> {
    let mut config = server().config(user);
    config.password = password.map(str::to_owned);
    Client::connect(TcpTransport::connect(server().addr())?, &config)
}

fn whoami<T: pglite_client::Transport>(client: &mut Client<T>) -> String {
    client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get::<_, String>(0)
}

#[test]
fn trust() {
    let mut client = support::connect();
    assert_eq!(whoami(&mut client), "postgres");
    assert!(client.backend_key().is_some());
    assert_eq!(client.parameter("client_encoding"), Some("UTF8"));
    assert!(client.parameter("server_version").is_some());
    assert_eq!(
        client.parameter("application_name"),
        Some("pglite-client-tests")
    );
    client.close().unwrap();
}

#[test]
fn scram_sha_256() {
    let mut client = connect_as(support::SCRAM_USER, Some(support::SCRAM_PASSWORD)).unwrap();
    assert_eq!(whoami(&mut client), support::SCRAM_USER);
    let err = connect_as(support::SCRAM_USER, Some("wrong")).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// With the `md5` feature (`cargo test -p pglite-client --features md5`).
#[cfg(feature = "md5")]
#[test]
fn md5() {
    let mut client = connect_as(support::MD5_USER, Some(support::MD5_PASSWORD)).unwrap();
    assert_eq!(whoami(&mut client), support::MD5_USER);
    let err = connect_as(support::MD5_USER, Some("wrong")).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// Without the `md5` feature an MD5 request is refused before the password is used,
/// and the error names the feature.
#[cfg(not(feature = "md5"))]
#[test]
fn md5_needs_the_feature() {
    let err = connect_as(support::MD5_USER, Some(support::MD5_PASSWORD)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(err.to_string().contains("`md5` cargo feature"), "{err}");
}

#[test]
fn cleartext_is_refused_without_tls_unless_allowed() {
    let err = connect_as(support::PLAIN_USER, Some(support::PLAIN_PASSWORD)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cleartext") && text.contains("require_auth=password"),
        "{text}"
    );
    assert!(text.contains("allow_cleartext_password(true)"), "{text}");

    let mut config = server()
        .config(support::PLAIN_USER)
        .password(support::PLAIN_PASSWORD)
        .allow_cleartext_password(true);
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let mut client = Client::connect(transport, &config).unwrap();
    assert_eq!(whoami(&mut client), support::PLAIN_USER);

    // require_auth=password allows it too (libpq's way to insist on it).
    config = server()
        .config(support::PLAIN_USER)
        .password(support::PLAIN_PASSWORD)
        .require_auth(Some("password".parse().unwrap()));
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let mut client = Client::connect(transport, &config).unwrap();
    assert_eq!(whoami(&mut client), support::PLAIN_USER);
}

#[test]
fn require_auth_refuses_other_methods() {
    // The server trusts postgres: "none" is not in the list.
    let config = server()
        .config("postgres")
        .require_auth(Some("scram-sha-256".parse().unwrap()));
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let err = Client::connect(transport, &config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(
        err.to_string().contains("did not complete authentication"),
        "{err}"
    );
    // The SCRAM user with "!scram-sha-256": refused before the password is sent.
    let config = server()
        .config(support::SCRAM_USER)
        .password(support::SCRAM_PASSWORD)
        .require_auth(Some("!scram-sha-256".parse().unwrap()));
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let err = Client::connect(transport, &config).unwrap_err();
    assert!(err.to_string().contains("SCRAM-SHA-256"), "{err}");
    // A list that includes the method works.
    let config = server()
        .config(support::SCRAM_USER)
        .password(support::SCRAM_PASSWORD)
        .require_auth(Some("password,scram-sha-256".parse().unwrap()));
    let transport = TcpTransport::connect(server().addr()).unwrap();
    let mut client = Client::connect(transport, &config).unwrap();
    assert_eq!(whoami(&mut client), support::SCRAM_USER);
}

#[test]
fn missing_password_is_a_config_error() {
    let err = connect_as(support::SCRAM_USER, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn unknown_database() {
    let config = StartupConfig::new("postgres", "no_such_db");
    let err =
        Client::connect(TcpTransport::connect(server().addr()).unwrap(), &config).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");
    assert!(err.to_string().starts_with("FATAL: "), "{err}");
}

#[cfg(unix)]
#[test]
fn unix_socket() {
    let transport =
        pglite_client::UnixTransport::connect_dir(&server().dir, server().port).unwrap();
    let mut client = Client::connect(transport, &StartupConfig::default()).unwrap();
    assert_eq!(whoami(&mut client), "postgres");
}

#[cfg(feature = "tokio")]
#[test]
fn async_scram_and_wrong_password() {
    run(async {
        let err = AsyncClient::connect_url(&format!(
            "postgres://{}:wrong@127.0.0.1:{}/postgres",
            support::SCRAM_USER,
            server().port
        ))
        .await
        .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
        let client = AsyncClient::connect_url(&format!(
            "postgres://{}:{}@127.0.0.1:{}/postgres?connect_timeout=5",
            support::SCRAM_USER,
            support::SCRAM_PASSWORD
                .replace('é', "%C3%A9")
                .replace(' ', "%20"),
            server().port
        ))
        .await
        .unwrap();
        client.close().await.unwrap();
    });
}

#[cfg(feature = "tokio")]
#[test]
fn async_authentication_policy() {
    run(async {
        let url = |user: &str, password: &str, extra: &str| {
            format!(
                "postgres://{user}:{}@127.0.0.1:{}/postgres?{extra}",
                password.replace(' ', "%20"),
                server().port
            )
        };
        // Cleartext over plain TCP: refused, with the way to allow it.
        let err = AsyncClient::connect_url(&url(
            support::PLAIN_USER,
            support::PLAIN_PASSWORD,
            "sslmode=disable",
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(err.to_string().contains("require_auth=password"), "{err}");
        let mut client = AsyncClient::connect_url(&url(
            support::PLAIN_USER,
            support::PLAIN_PASSWORD,
            "sslmode=disable&require_auth=password",
        ))
        .await
        .unwrap();
        let row = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), support::PLAIN_USER);

        // MD5 depends on the cargo feature.
        let md5 = AsyncClient::connect_url(&url(
            support::MD5_USER,
            support::MD5_PASSWORD,
            "sslmode=disable",
        ))
        .await;
        if cfg!(feature = "md5") {
            md5.unwrap();
        } else {
            let err = md5.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
            assert!(err.to_string().contains("`md5` cargo feature"), "{err}");
        }
    });
}

/// SCRAM-SHA-256 with the server's messages handed over one byte at a time.
#[test]
fn scram_one_byte_per_receive() {
    let transport = crate::split::Trickle::new(TcpTransport::connect(server().addr()).unwrap(), 1);
    let config = server()
        .config(support::SCRAM_USER)
        .password(support::SCRAM_PASSWORD);
    let mut client = Client::connect(transport, &config).unwrap();
    crate::split::exercise(&mut client);
    assert_eq!(whoami(&mut client), support::SCRAM_USER);
}
