//! `pglite serve` with a real psql client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_answers_psql_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_pglite"))
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--spin-us", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim();
    assert!(
        url.starts_with("postgres://"),
        "first line is the URL: {url:?}"
    );

    let psql = Command::new("psql")
        .args([url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-c",
            "create table kept (n int)",
            "-c",
            "insert into kept values (42)",
        ])
        .args(["-c", "select n from kept"])
        .output()
        .expect("psql (Debian postgresql-client) must be installed");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    assert!(
        String::from_utf8_lossy(&psql.stdout)
            .lines()
            .any(|l| l == "42")
    );

    // SIGTERM: clean shutdown, lock released, data kept.
    let status = Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        server.wait().unwrap().success(),
        "serve exits 0 after SIGTERM"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pglite"))
        .args(["sql", "-t", "--data"])
        .arg(data.path())
        .arg("select n from kept")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"));
}
