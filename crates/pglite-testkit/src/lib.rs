//! A throw-away **native PostgreSQL** for tests and benchmarks.
//!
//! pglite's tests compare against the real thing: the client's integration tests run
//! against a native server, `pglite bench` and the server's load test print native
//! figures beside pglite's. This crate is the one place that starts such a server.
//!
//! ```no_run
//! let pg = pglite_testkit::NativePostgres::builder()
//!     .fast() // fsync off: for correctness tests, not for benchmarks
//!     .user("alice", "secret", pglite_testkit::AuthMethod::ScramSha256)
//!     .start()?;
//! println!("{}", pg.url("postgres", "postgres")); // postgres://postgres@127.0.0.1:PORT/postgres
//! // … connect over TCP (pg.port()) or the Unix socket in pg.socket_dir() …
//! drop(pg); // stops the server and deletes its directory
//! # Ok::<(), pglite_testkit::Error>(())
//! ```
//!
//! What [`Builder::start`] does:
//!
//! 1. Finds the server binaries: [`Builder::bin_dir`], else the environment variable
//!    `PGLITE_NATIVE_BIN`, else the newest `/usr/lib/postgresql/<major>/bin` that has
//!    `postgres`, `initdb` and `pg_ctl` (Debian's `postgresql` package). Missing
//!    binaries are an [`Error`] that says `apt-get install postgresql`; callers decide
//!    whether that fails the test (the client's integration tests) or is reported
//!    (`pglite bench`).
//! 2. Creates a temporary directory (`$TMPDIR/<prefix>XXXXXX`) holding the data
//!    directory `data/`, the Unix socket `.s.PGSQL.<port>` and the log `server.log`.
//!    PostgreSQL refuses to run as root, so when this process is root the directory is
//!    given to the `postgres` OS user and every server program runs through
//!    `runuser -u postgres --` (the directory must then be reachable by that user:
//!    keep `TMPDIR` at `/tmp` or similar).
//! 3. `initdb -U postgres --auth=trust -E UTF8 --locale=C --no-sync` (`--no-sync`
//!    only skips initdb's own final flush). Roles with passwords ([`Builder::user`])
//!    are created in single-user mode before the server starts, and `pg_hba.conf` is
//!    written: `local` trust, the password users with their method on loopback, then
//!    trust for everyone else on loopback.
//! 4. Starts `postgres` on a free loopback port (`listen_addresses=127.0.0.1`) and the
//!    socket directory, with default durability unless [`Builder::fast`] or
//!    [`Builder::setting`] say otherwise; optional TLS with given files
//!    ([`Builder::tls`]) or generated ones ([`Builder::generated_tls`]: a CA, a server
//!    certificate for `localhost`/`127.0.0.1`/`::1` and client certificates for
//!    [`AuthMethod::Cert`] users, made with rcgen in milliseconds; see [`TlsFiles`]).
//!    Users can be limited to TLS or plain connections ([`Builder::user_with`],
//!    `hostssl`/`hostnossl` lines followed by `reject`).
//! 5. Waits until the postmaster reports `ready` in `postmaster.pid` and the port
//!    accepts TCP connections (or fails with the log when it exits or times out).
//!
//! Clean-up: dropping [`NativePostgres`] (or [`NativePostgres::stop`]) runs
//! `pg_ctl stop -m fast`, falls back to killing the server, and deletes the
//! directory. A **watchdog** shell, started in its own process group (so a Ctrl-C
//! aimed at the test does not kill it), does the same if this process dies without
//! dropping — killed tests, `panic = abort`, servers kept in a `static`: it polls for
//! this process every 0.3 s and then shuts the server down (`SIGQUIT`) and removes the
//! directory. It exits on its own once the directory is gone.

use std::fmt;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod tls;

pub use tls::{TlsFiles, write_ca};

/// Environment variable naming a directory with `postgres`, `initdb` and `pg_ctl`.
pub const BIN_ENV: &str = "PGLITE_NATIVE_BIN";

/// Why a native PostgreSQL could not be started (a readable sentence, with the log
/// when the server itself failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// How a password user authenticates over TCP (the `pg_hba.conf` method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No password asked (the role still gets one).
    Trust,
    /// `md5` (the password is stored as an MD5 hash).
    Md5,
    /// `scram-sha-256`.
    ScramSha256,
    /// `password` (cleartext over the wire).
    Password,
    /// `cert`: a TLS client certificate whose common name is the user name (the
    /// line is always `hostssl`; needs [`Builder::generated_tls`]).
    Cert,
}

/// Which connections a user's `pg_hba.conf` line matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HbaConnection {
    /// `host`: with or without TLS.
    Any,
    /// `hostssl`: TLS only (plain connections of this user are rejected).
    Ssl,
    /// `hostnossl`: without TLS only (TLS connections of this user are rejected).
    NoSsl,
}

impl AuthMethod {
    fn hba(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Password => "password",
            AuthMethod::Cert => "cert",
        }
    }

    /// `password_encryption` for storing the role's password.
    fn encryption(self) -> &'static str {
        match self {
            AuthMethod::Md5 => "md5",
            _ => "scram-sha-256",
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    name: String,
    password: String,
    method: AuthMethod,
    connection: HbaConnection,
}

/// Options for [`NativePostgres`]; [`Builder::start`] starts it.
#[derive(Debug, Clone)]
pub struct Builder {
    bin_dir: Option<PathBuf>,
    prefix: String,
    settings: Vec<(String, String)>,
    users: Vec<User>,
    tls: Option<(PathBuf, PathBuf)>,
    generated_tls: bool,
    start_timeout: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bin_dir: None,
            prefix: "pglite-native-".into(),
            settings: Vec::new(),
            users: Vec::new(),
            tls: None,
            generated_tls: false,
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl Builder {
    /// Use the binaries in `dir` instead of searching (see [`find_bin_dir`]).
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Prefix of the temporary directory's name (default `pglite-native-`), to tell
    /// servers apart in `/tmp` and `ps`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// A server setting (`postgres -c name=value`); later calls win.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Give up durability for speed: `fsync`, `synchronous_commit` and
    /// `full_page_writes` off. For correctness tests; benchmarks keep the defaults so
    /// that the comparison with pglite (which fsyncs every commit) is fair.
    pub fn fast(self) -> Self {
        self.setting("fsync", "off")
            .setting("synchronous_commit", "off")
            .setting("full_page_writes", "off")
    }

    /// A login role `name` with `password`, authenticated with `method` on loopback
    /// TCP (Unix-socket connections are always trusted).
    pub fn user(
        self,
        name: impl Into<String>,
        password: impl Into<String>,
        method: AuthMethod,
    ) -> Self {
        self.user_with(name, password, method, HbaConnection::Any)
    }

    /// Like [`Builder::user`], restricted to TLS or to plain connections: the other
    /// kind is rejected (`reject` line, SQLSTATE 28000). [`AuthMethod::Cert`] users are
    /// always TLS-only.
    pub fn user_with(
        mut self,
        name: impl Into<String>,
        password: impl Into<String>,
        method: AuthMethod,
        connection: HbaConnection,
    ) -> Self {
        let connection = if method == AuthMethod::Cert {
            HbaConnection::Ssl
        } else {
            connection
        };
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            method,
            connection,
        });
        self
    }

    /// Serve TLS with this certificate and private key (PEM files; copied into the
    /// server's directory, readable by the server only). Clients may still connect
    /// without TLS.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// Serve TLS with certificates generated for this server ([`TlsFiles`]): a CA, a
    /// server certificate for `localhost`, `127.0.0.1` and `::1`, and one client
    /// certificate per [`AuthMethod::Cert`] user; the server trusts the CA for client
    /// certificates. See [`NativePostgres::tls_files`].
    pub fn generated_tls(mut self) -> Self {
        self.generated_tls = true;
        self
    }

    /// How long to wait for the server to accept connections (default 60 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Create, start and wait for the server.
    pub fn start(self) -> Result<NativePostgres, Error> {
        NativePostgres::start_with(self)
    }
}

/// A running native PostgreSQL in a temporary directory; stopped and deleted on drop.
///
/// The superuser is `postgres` (trust authentication on loopback and the Unix socket);
/// the database `postgres` exists.
#[derive(Debug)]
pub struct NativePostgres {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    version: String,
    as_postgres: bool,
    tls_files: Option<TlsFiles>,
    /// The server process (`runuser` when we are root); `None` once stopped.
    child: Mutex<Option<Child>>,
}

impl NativePostgres {
    /// Options; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server with the default options (default durability, trust only).
    pub fn start() -> Result<NativePostgres, Error> {
        Builder::default().start()
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port (also the number in the Unix socket's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The directory that holds the Unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's temporary directory (data directory, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The server version, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `postgres://<user>@127.0.0.1:<port>/<database>` (no password; URL-encode
    /// `user` and `database` yourself if they need it).
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// The generated certificates and keys, with [`Builder::generated_tls`].
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls_files.as_ref()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Stop the server and delete its directory now, reporting failures (drop does
    /// the same and ignores them).
    pub fn stop(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn start_with(options: Builder) -> Result<NativePostgres, Error> {
        let bin = match &options.bin_dir {
            Some(dir) => check_bin_dir(dir)?,
            None => find_bin_dir()?,
        };
        let version = server_version(&bin)?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix(&options.prefix)
            .tempdir()
            .map_err(|e| Error::new(format!("creating a temporary directory: {e}")))?
            .keep();
        // From here on the directory is ours to delete, also on failure.
        let mut server = NativePostgres {
            data: dir.join("data"),
            bin,
            dir,
            port: 0,
            version,
            as_postgres,
            tls_files: None,
            child: Mutex::new(None),
        };
        server.watchdog()?;
        match server.init_and_run(&options) {
            Ok(()) => Ok(server),
            Err(e) => Err(e), // drop stops whatever started and deletes the directory
        }
    }

    fn init_and_run(&mut self, options: &Builder) -> Result<(), Error> {
        if self.as_postgres {
            run_checked(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&self.dir),
                "chown to the postgres user",
            )?;
        }
        run_checked(
            self.pg_command("initdb").arg("-D").arg(&self.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        )?;
        self.create_users(&options.users)?;
        self.write_hba(&options.users)?;
        let mut tls = self.install_tls(options.tls.as_ref())?;
        if options.generated_tls {
            tls = self.install_generated_tls(&options.users)?;
        }

        self.port = free_port()?;
        let log = fs::File::create(self.dir.join("server.log"))
            .map_err(|e| Error::new(format!("creating the server log: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::new(format!("server log: {e}")))?;
        let mut command = self.pg_command("postgres");
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for (name, value) in tls.iter().chain(&options.settings) {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::new(format!("starting postgres: {e}")))?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready(options.start_timeout)
    }

    /// `program` from the bin directory, as the `postgres` user when we are root.
    fn pg_command(&self, program: &str) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(program));
            command
        } else {
            Command::new(self.bin.join(program))
        }
    }

    /// Roles with passwords, created in single-user mode (no client needed).
    fn create_users(&self, users: &[User]) -> Result<(), Error> {
        if users.is_empty() {
            return Ok(());
        }
        let mut script = String::new();
        for user in users {
            // One statement per line: single-user mode ends a command at a newline.
            if user.password.is_empty() {
                script.push_str(&format!("CREATE ROLE {} LOGIN\n", quote_ident(&user.name)));
                continue;
            }
            script.push_str(&format!(
                "SET password_encryption = '{}'\nCREATE ROLE {} LOGIN PASSWORD {}\n",
                user.method.encryption(),
                quote_ident(&user.name),
                quote_literal(&user.password),
            ));
        }
        let script_path = self.dir.join("users.sql");
        fs::write(&script_path, script)
            .map_err(|e| Error::new(format!("writing {}: {e}", script_path.display())))?;
        let input = fs::File::open(&script_path)
            .map_err(|e| Error::new(format!("reading {}: {e}", script_path.display())))?;
        let output = self
            .pg_command("postgres")
            .args(["--single", "-D"])
            .arg(&self.data)
            .args(["-c", "fsync=off", "postgres"])
            .stdin(input)
            .output()
            .map_err(|e| Error::new(format!("postgres --single: {e}")))?;
        fs::remove_file(&script_path).ok();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() || stderr.contains("ERROR") {
            return Err(Error::new(format!(
                "creating the password users failed: {}",
                stderr.trim()
            )));
        }
        Ok(())
    }

    fn write_hba(&self, users: &[User]) -> Result<(), Error> {
        let mut hba = String::from("local all all trust\n");
        for user in users {
            let name = quote_ident(&user.name);
            let method = user.method.hba();
            for net in ["127.0.0.1/32", "::1/128"] {
                match user.connection {
                    HbaConnection::Any => {
                        hba.push_str(&format!("host all {name} {net} {method}\n"));
                    }
                    HbaConnection::Ssl => hba.push_str(&format!(
                        "hostssl all {name} {net} {method}\nhost all {name} {net} reject\n"
                    )),
                    HbaConnection::NoSsl => hba.push_str(&format!(
                        "hostnossl all {name} {net} {method}\nhost all {name} {net} reject\n"
                    )),
                }
            }
        }
        hba.push_str("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n");
        let path = self.data.join("pg_hba.conf");
        // Overwrite in place: the file keeps initdb's owner and mode.
        fs::write(&path, hba).map_err(|e| Error::new(format!("writing {}: {e}", path.display())))
    }

    /// Copy the TLS files next to the data directory; the settings that enable them.
    fn install_tls(
        &self,
        tls: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Vec<(String, String)>, Error> {
        let Some((cert, key)) = tls else {
            return Ok(Vec::new());
        };
        let mut settings = vec![("ssl".to_string(), "on".to_string())];
        for (source, name, setting) in [
            (cert, "server.crt", "ssl_cert_file"),
            (key, "server.key", "ssl_key_file"),
        ] {
            let target = self.dir.join(name);
            fs::copy(source, &target)
                .map_err(|e| Error::new(format!("copying {} for TLS: {e}", source.display())))?;
            // PostgreSQL refuses a key readable by others.
            run_checked(
                Command::new("chmod").arg("600").arg(&target),
                "chmod of the TLS files",
            )?;
            if self.as_postgres {
                run_checked(
                    Command::new("chown").arg("postgres:postgres").arg(&target),
                    "chown of the TLS files",
                )?;
            }
            settings.push((setting.to_string(), target.display().to_string()));
        }
        Ok(settings)
    }

    /// Generates the certificates into `<dir>/tls` and returns the settings that
    /// enable them; the server's key is given to the server's OS user, mode 0600.
    fn install_generated_tls(&mut self, users: &[User]) -> Result<Vec<(String, String)>, Error> {
        let clients: Vec<&str> = users
            .iter()
            .filter(|u| u.method == AuthMethod::Cert)
            .map(|u| u.name.as_str())
            .collect();
        let files = TlsFiles::generate(&self.dir.join("tls"), &clients)?;
        for path in [&files.server_cert, &files.server_key, &files.ca_cert] {
            if self.as_postgres {
                run_checked(
                    Command::new("chown").arg("postgres:postgres").arg(path),
                    "chown of the TLS files",
                )?;
            }
        }
        if self.as_postgres {
            // The server must reach its files inside the directory.
            run_checked(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&files.dir),
                "chown of the TLS directory",
            )?;
        }
        let settings = vec![
            ("ssl".to_string(), "on".to_string()),
            (
                "ssl_cert_file".to_string(),
                files.server_cert.display().to_string(),
            ),
            (
                "ssl_key_file".to_string(),
                files.server_key.display().to_string(),
            ),
            (
                "ssl_ca_file".to_string(),
                files.ca_cert.display().to_string(),
            ),
        ];
        self.tls_files = Some(files);
        Ok(settings)
    }

    /// Until `postmaster.pid` says `ready` and the port takes a TCP connection.
    fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let pid_file = self.data.join("postmaster.pid");
        loop {
            // Line 8 of postmaster.pid is the postmaster's status (what `pg_ctl -w`
            // waits for).
            let ready = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.lines().nth(7).map(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready
                && TcpStream::connect_timeout(
                    &([127, 0, 0, 1], self.port).into(),
                    Duration::from_secs(1),
                )
                .is_ok()
            {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(Error::new(format!(
                    "postgres exited ({status}) during start-up:\n{}",
                    self.log().trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "postgres did not accept connections within {timeout:?}:\n{}",
                    self.log().trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A shell that stops the server and deletes the directory once this process is
    /// gone; it exits by itself when the directory is deleted first.
    fn watchdog(&self) -> Result<(), Error> {
        let dir = shell_quote(&self.dir.display().to_string());
        let pid_file = shell_quote(&self.data.join("postmaster.pid").display().to_string());
        let script = format!(
            "while kill -0 {me} 2>/dev/null && [ -d {dir} ]; do sleep 0.3; done; \
             [ -d {dir} ] || exit 0; \
             p=$(head -n 1 {pid_file} 2>/dev/null); \
             if [ -n \"$p\" ]; then kill -QUIT \"$p\" 2>/dev/null; \
               i=0; while kill -0 \"$p\" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             fi; \
             rm -rf {dir}",
            me = std::process::id(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C for the test must not stop the clean-up.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::new(format!("starting the watchdog shell: {e}")))?;
        // Not waited for: it outlives this process when it has to. A thread reaps it
        // when it exits earlier, so it does not linger as a zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut result = Ok(());
        if let Some(mut child) = child {
            let stopped = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "20", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                result = Err(Error::new(format!(
                    "pg_ctl stop failed; killing the server:\n{}",
                    self.log().trim()
                )));
                // Immediate shutdown of the postmaster and its children.
                if let Some(pid) = fs::read_to_string(self.data.join("postmaster.pid"))
                    .ok()
                    .and_then(|s| s.lines().next().map(str::to_string))
                {
                    let _ = Command::new("kill")
                        .args(["-QUIT", pid.trim()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
            && result.is_ok()
        {
            result = Err(Error::new(format!("deleting {}: {e}", self.dir.display())));
        }
        result
    }
}

impl Drop for NativePostgres {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` with `postgres`, `initdb` and
/// `pg_ctl`, or the directory named by `PGLITE_NATIVE_BIN`.
pub fn find_bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return check_bin_dir(Path::new(&dir));
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            check_bin_dir(&bin).ok().map(|bin| (major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        Error::new(format!(
            "native PostgreSQL server binaries not found (looked for postgres, initdb and \
             pg_ctl in /usr/lib/postgresql/*/bin; {BIN_ENV} can name another directory): \
             install them with `apt-get update && apt-get install -y postgresql`"
        ))
    })
}

fn check_bin_dir(dir: &Path) -> Result<PathBuf, Error> {
    let missing: Vec<&str> = ["postgres", "initdb", "pg_ctl"]
        .into_iter()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    if missing.is_empty() {
        Ok(dir.to_path_buf())
    } else {
        Err(Error::new(format!(
            "{} lacks {} (install the server with `apt-get install postgresql`)",
            dir.display(),
            missing.join(", ")
        )))
    }
}

/// `postgres --version` → `15.14 (Debian 15.14-0+deb12u1)`.
fn server_version(bin: &Path) -> Result<String, Error> {
    let output = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|e| Error::new(format!("{}: {e}", bin.join("postgres").display())))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .split("(PostgreSQL) ")
        .nth(1)
        .unwrap_or(&text)
        .trim()
        .to_string())
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A port that was free a moment ago (PostgreSQL binds it itself).
fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("finding a free loopback port: {e}")))
}

fn run_checked(command: &mut Command, what: &str) -> Result<(), Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(format!("{what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_serves_and_cleans_up() {
        let pg = NativePostgres::builder()
            .fast()
            .user("md5 user", "it's secret", AuthMethod::Md5)
            .start()
            .unwrap();
        assert!(!pg.version().is_empty());
        assert!(
            pg.socket_dir()
                .join(format!(".s.PGSQL.{}", pg.port()))
                .exists()
        );
        TcpStream::connect(pg.addr()).unwrap();
        let hba = fs::read_to_string(pg.data_dir().join("pg_hba.conf")).unwrap();
        assert!(
            hba.contains("host all \"md5 user\" 127.0.0.1/32 md5"),
            "{hba}"
        );
        let dir = pg.dir().to_path_buf();
        pg.stop().unwrap();
        assert!(!dir.exists());
    }

    /// psql (libpq) checks the generated certificates: verify-full against the CA,
    /// a certificate-authenticated user, and the hostssl/hostnossl rules.
    #[test]
    fn generated_tls_works_with_psql() {
        let pg = NativePostgres::builder()
            .fast()
            .generated_tls()
            .user("cert_user", "", AuthMethod::Cert)
            .user_with("plain_only", "pw", AuthMethod::Trust, HbaConnection::NoSsl)
            .start()
            .unwrap();
        let tls = pg.tls_files().unwrap();
        let psql = pg.bin_dir().join("psql");
        let run = |conninfo: String| {
            Command::new(&psql)
                .args(["-XAtq", "-d", &conninfo, "-c"])
                .arg("SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .output()
                .unwrap()
        };
        let base = format!("port={} dbname=postgres", pg.port());
        let out = run(format!(
            "{base} host=localhost user=postgres sslmode=verify-full sslrootcert={}",
            tls.ca_cert.display()
        ));
        assert!(out.status.success(), "{out:?}\n{}", pg.log());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres true");

        let (cert, key) = tls.client("cert_user").unwrap();
        let out = run(format!(
            "{base} host=127.0.0.1 user=cert_user sslmode=verify-ca sslrootcert={} sslcert={} sslkey={}",
            tls.ca_cert.display(),
            cert.display(),
            key.display()
        ));
        assert!(out.status.success(), "{out:?}\n{}", pg.log());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "cert_user true"
        );

        let out = run(format!(
            "{base} host=127.0.0.1 user=plain_only sslmode=require"
        ));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("reject"),
            "{out:?}"
        );
        let out = run(format!(
            "{base} host=127.0.0.1 user=plain_only sslmode=disable"
        ));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "plain_only false"
        );
    }

    #[test]
    fn missing_binaries_name_the_package() {
        let e = NativePostgres::builder()
            .bin_dir("/nonexistent")
            .start()
            .unwrap_err();
        assert!(e.to_string().contains("apt-get install postgresql"), "{e}");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(shell_quote("/tmp/a'b"), "'/tmp/a'\\''b'");
    }
}
