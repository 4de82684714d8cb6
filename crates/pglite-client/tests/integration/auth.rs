use pglite_client::{Client, ErrorKind, SqlState, StartupConfig, TcpTransport};

use crate::support::{self, server};

fn connect_as(
    user: &str,
    password: Option<&str>,
) -> Result<Client<TcpTransport>, pglite_client::Error> {
    let mut config = server().config(user);
    config.password = password.map(str::to_owned);
    Client::connect(TcpTransport::connect(server().addr())?, &config)
}

fn whoami(client: &mut Client<TcpTransport>) -> String {
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

#[test]
fn md5() {
    let mut client = connect_as(support::MD5_USER, Some(support::MD5_PASSWORD)).unwrap();
    assert_eq!(whoami(&mut client), support::MD5_USER);
    let err = connect_as(support::MD5_USER, Some("wrong")).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[test]
fn cleartext() {
    let mut client = connect_as(support::PLAIN_USER, Some(support::PLAIN_PASSWORD)).unwrap();
    assert_eq!(whoami(&mut client), support::PLAIN_USER);
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
    assert_eq!(whoami_unix(&mut client), "postgres");
}

#[cfg(unix)]
fn whoami_unix(client: &mut Client<pglite_client::UnixTransport>) -> String {
    client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0)
}
