//! libpq-compatible connection strings: `postgres://` / `postgresql://` URLs,
//! `keyword=value` strings, and `pglite://` URLs for the embedded engine.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::auth::{ChannelBinding, RequireAuth};
use crate::config::StartupConfig;
use crate::error::{Error, ErrorKind};

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;

/// How (and whether) TLS is negotiated, as libpq's `sslmode`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plain first, TLS only if the server insists.
    Allow,
    /// TLS if the server supports it, plain otherwise (libpq's default).
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS, the certificate must be signed by a trusted CA.
    VerifyCa,
    /// TLS, trusted CA and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True for the modes that refuse a connection without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode, Error> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(config_error(format!(
                    "invalid sslmode value: \"{other}\" (expected disable, allow, prefer, \
                     require, verify-ca or verify-full)"
                )));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server location of a [`Config`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name or IP address reached over TCP.
    Tcp(String),
    /// A directory holding the server's Unix socket (`<dir>/.s.PGSQL.<port>`); libpq's
    /// `host=/dir`.
    Unix(PathBuf),
}

impl Host {
    /// Parses a libpq host: an absolute path is a Unix-socket directory, anything else
    /// a TCP host name or address.
    pub fn parse(s: &str) -> Host {
        if s.starts_with('/') {
            Host::Unix(PathBuf::from(s))
        } else {
            Host::Tcp(s.to_owned())
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(h) => f.write_str(h),
            Host::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where a `pglite://` URL points.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EmbeddedLocation {
    /// `pglite://temporary`: a fresh database deleted when closed.
    Temporary,
    /// `pglite:///abs/path` or `pglite://./rel/path`: a data directory on disk.
    Path(PathBuf),
}

/// An embedded-engine target parsed from a `pglite://` URL. The client cannot open
/// it (it does not depend on the engine); the `pglite` facade does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The data directory, or a temporary database.
    pub location: EmbeddedLocation,
    /// The query parameters (`?database=app&...`), percent-decoded, in order.
    pub params: Vec<(String, String)>,
}

impl EmbeddedConfig {
    /// The last value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Any connection target: a PostgreSQL server or the embedded engine.
///
/// ```
/// use pglite_client::{Target, EmbeddedLocation};
/// let t: Target = "pglite://temporary".parse().unwrap();
/// assert!(matches!(t, Target::Embedded(ref e) if e.location == EmbeddedLocation::Temporary));
/// let t: Target = "postgres://app@db.example/app".parse().unwrap();
/// assert!(matches!(t, Target::Server(_)));
/// ```
#[allow(clippy::large_enum_variant)] // built once per connection
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A server reached over TCP or a Unix socket.
    Server(Config),
    /// The in-process engine (`pglite://`).
    Embedded(EmbeddedConfig),
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Target, Error> {
        let trimmed = s.trim_start();
        if let Some(rest) = strip_prefix_ci(trimmed, "pglite://") {
            return parse_pglite(rest).map(Target::Embedded);
        }
        if strip_prefix_ci(trimmed, "pglite:").is_some() {
            return Err(config_error(
                "a pglite URL is pglite://temporary, pglite:///absolute/path or pglite://./relative/path",
            ));
        }
        Config::from_str(s).map(Target::Server)
    }
}

/// Settings for connecting to a PostgreSQL server, parsed from a libpq connection
/// string (URL or `keyword=value`) or built with the setters.
///
/// ```
/// use pglite_client::{Config, Host, SslMode};
/// let c: Config = "postgresql://alice:s%40cret@[::1]:6543/shop?sslmode=require&application_name=web"
///     .parse()
///     .unwrap();
/// assert_eq!(c.get_user(), Some("alice"));
/// assert_eq!(c.get_password(), Some("s@cret"));
/// assert_eq!(c.get_hosts(), &[Host::Tcp("::1".into())]);
/// assert_eq!(c.get_ports(), &[6543]);
/// assert_eq!(c.get_dbname(), Some("shop"));
/// assert_eq!(c.get_ssl_mode(), SslMode::Require);
///
/// let c: Config = "host=/var/run/postgresql dbname='my db' user=bob".parse().unwrap();
/// assert_eq!(c.get_hosts(), &[Host::Unix("/var/run/postgresql".into())]);
/// assert_eq!(c.get_dbname(), Some("my db"));
///
/// let c = Config::new().host("localhost").port(5433).user("me").dbname("app");
/// assert_eq!(c.get_ports(), &[5433]);
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Config {
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    hosts: Vec<Host>,
    hostaddrs: Vec<IpAddr>,
    ports: Vec<u16>,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    application_name: Option<String>,
    fallback_application_name: Option<String>,
    connect_timeout: Option<Duration>,
    options: Option<String>,
    params: Vec<(String, String)>,
    channel_binding: Option<ChannelBinding>,
    require_auth: Option<RequireAuth>,
    allow_cleartext_password: bool,
}

/// One place to connect to: where the socket goes (`host`, or `hostaddr` when given)
/// and the name a TLS certificate must carry (`host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The address to open a socket to.
    pub(crate) host: Host,
    /// The port.
    pub(crate) port: u16,
    /// The host name for TLS (SNI and `verify-full`).
    pub(crate) tls_name: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("hosts", &self.hosts)
            .field("hostaddrs", &self.hostaddrs)
            .field("ports", &self.ports)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("channel_binding", &self.channel_binding)
            .field("require_auth", &self.require_auth)
            .field("allow_cleartext_password", &self.allow_cleartext_password)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

impl Config {
    /// An empty configuration: every setting at its default.
    pub fn new() -> Config {
        Config::default()
    }

    /// Sets the user name.
    pub fn user(mut self, user: impl Into<String>) -> Config {
        self.user = Some(user.into());
        self
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> Config {
        self.password = Some(password.into());
        self
    }

    /// Sets the database name.
    pub fn dbname(mut self, dbname: impl Into<String>) -> Config {
        self.dbname = Some(dbname.into());
        self
    }

    /// Adds a host: a name or address for TCP, or an absolute directory path for a
    /// Unix socket (as libpq's `host`).
    pub fn host(mut self, host: &str) -> Config {
        self.hosts.push(Host::parse(host));
        self
    }

    /// Adds a Unix-socket directory.
    pub fn host_path(mut self, dir: impl AsRef<Path>) -> Config {
        self.hosts.push(Host::Unix(dir.as_ref().to_owned()));
        self
    }

    /// Adds a numeric address used instead of resolving the matching host (`hostaddr`).
    pub fn hostaddr(mut self, addr: IpAddr) -> Config {
        self.hostaddrs.push(addr);
        self
    }

    /// Adds a port (one for all hosts, or one per host).
    pub fn port(mut self, port: u16) -> Config {
        self.ports.push(port);
        self
    }

    /// Sets `sslmode`.
    pub fn ssl_mode(mut self, mode: SslMode) -> Config {
        self.ssl_mode = Some(mode);
        self
    }

    /// Sets the CA certificate file (`sslrootcert`; `system` = the operating system's
    /// trust store); without an explicit `sslmode` this selects `verify-full`.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Config {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// Sets the client certificate file (`sslcert`, PEM; may hold intermediate
    /// certificates after the client's own).
    pub fn ssl_cert(mut self, path: impl Into<PathBuf>) -> Config {
        self.ssl_cert = Some(path.into());
        self
    }

    /// Sets the client certificate's private key file (`sslkey`, PEM: PKCS#8,
    /// PKCS#1 RSA or SEC1 EC).
    pub fn ssl_key(mut self, path: impl Into<PathBuf>) -> Config {
        self.ssl_key = Some(path.into());
        self
    }

    /// Sets `channel_binding` (default `prefer`).
    pub fn channel_binding(mut self, binding: ChannelBinding) -> Config {
        self.channel_binding = Some(binding);
        self
    }

    /// Sets `require_auth`: the authentication methods the server may use.
    pub fn require_auth(mut self, require: RequireAuth) -> Config {
        self.require_auth = Some(require);
        self
    }

    /// Allows sending a cleartext password over a connection without TLS when the
    /// server asks for one (refused by default; `require_auth=password` also allows
    /// it).
    pub fn allow_cleartext_password(mut self, allow: bool) -> Config {
        self.allow_cleartext_password = allow;
        self
    }

    /// Sets `application_name`.
    pub fn application_name(mut self, name: impl Into<String>) -> Config {
        self.application_name = Some(name.into());
        self
    }

    /// Sets the time allowed for connecting and authenticating (`connect_timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets `options` (command-line options for the backend, e.g.
    /// `-c search_path=app`).
    pub fn options(mut self, options: impl Into<String>) -> Config {
        self.options = Some(options.into());
        self
    }

    /// Adds another run-time parameter sent at start-up (e.g. `search_path`,
    /// `TimeZone`): any keyword libpq does not interpret itself is treated like this.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Config {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The user name, if set.
    pub fn get_user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// The password, if set.
    pub fn get_password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    /// The database name, if set.
    pub fn get_dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }
    /// The hosts, in the order they are tried (empty: `localhost`).
    pub fn get_hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The `hostaddr` values.
    pub fn get_hostaddrs(&self) -> &[IpAddr] {
        &self.hostaddrs
    }
    /// The ports (empty: 5432).
    pub fn get_ports(&self) -> &[u16] {
        &self.ports
    }
    /// The `sslmode` given explicitly, if any.
    pub fn get_ssl_mode_explicit(&self) -> Option<SslMode> {
        self.ssl_mode
    }
    /// The effective `sslmode`: the explicit one; else `verify-full` when TLS was asked
    /// for by naming the certificates to trust (`sslrootcert`, a file or `system`:
    /// "verify-full is the default when TLS is on"); else `prefer`, as libpq. libpq
    /// does the same for `sslrootcert=system`; for a file it would stay at `prefer`
    /// (which checks the chain when TLS happens to be used) — this client is stricter.
    pub fn get_ssl_mode(&self) -> SslMode {
        match (self.ssl_mode, &self.ssl_root_cert) {
            (Some(mode), _) => mode,
            (None, Some(_)) => SslMode::VerifyFull,
            (None, None) => SslMode::Prefer,
        }
    }
    /// `sslrootcert`, if set.
    pub fn get_ssl_root_cert(&self) -> Option<&Path> {
        self.ssl_root_cert.as_deref()
    }
    /// `sslcert`, if set.
    pub fn get_ssl_cert(&self) -> Option<&Path> {
        self.ssl_cert.as_deref()
    }
    /// `sslkey`, if set.
    pub fn get_ssl_key(&self) -> Option<&Path> {
        self.ssl_key.as_deref()
    }
    /// `channel_binding` (default `prefer`).
    pub fn get_channel_binding(&self) -> ChannelBinding {
        self.channel_binding.unwrap_or_default()
    }
    /// `require_auth`, if set.
    pub fn get_require_auth(&self) -> Option<&RequireAuth> {
        self.require_auth.as_ref()
    }
    /// True if a cleartext password may be sent without TLS (see
    /// [`Config::allow_cleartext_password`]).
    pub fn get_allow_cleartext_password(&self) -> bool {
        self.allow_cleartext_password
    }
    /// `application_name` (or `fallback_application_name`), if set.
    pub fn get_application_name(&self) -> Option<&str> {
        self.application_name
            .as_deref()
            .or(self.fallback_application_name.as_deref())
    }
    /// `connect_timeout`, if set (libpq's `0` means none).
    pub fn get_connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }
    /// `options`, if set.
    pub fn get_options(&self) -> Option<&str> {
        self.options.as_deref()
    }
    /// Extra start-up parameters, in order.
    pub fn get_params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The `(host, port)` pairs to try, in order: hosts default to `localhost`, ports
    /// to 5432; one port applies to every host; a `hostaddr` replaces the address of
    /// the host at the same position.
    pub fn endpoints(&self) -> Result<Vec<(Host, u16)>, Error> {
        Ok(self
            .targets()?
            .into_iter()
            .map(|e| (e.host, e.port))
            .collect())
    }

    /// The endpoints with the host names TLS checks certificates against (libpq: the
    /// `host`, also when `hostaddr` gives the address).
    pub(crate) fn targets(&self) -> Result<Vec<Endpoint>, Error> {
        let hosts: Vec<(Host, String)> = if self.hosts.is_empty() {
            if self.hostaddrs.is_empty() {
                vec![(Host::Tcp("localhost".to_owned()), "localhost".to_owned())]
            } else {
                self.hostaddrs
                    .iter()
                    .map(|a| (Host::Tcp(a.to_string()), a.to_string()))
                    .collect()
            }
        } else {
            self.hosts
                .iter()
                .enumerate()
                .map(|(i, h)| match (h, self.hostaddrs.get(i)) {
                    (Host::Tcp(name), Some(addr)) => (Host::Tcp(addr.to_string()), name.clone()),
                    (h, _) => (h.clone(), h.to_string()),
                })
                .collect()
        };
        let host_count = hosts.len();
        let port_for = |i: usize| -> Result<u16, Error> {
            match self.ports.len() {
                0 => Ok(DEFAULT_PORT),
                1 => Ok(self.ports[0]),
                n if n == host_count => Ok(self.ports[i]),
                n => Err(config_error(format!(
                    "could not match {n} port numbers to {host_count} hosts"
                ))),
            }
        };
        hosts
            .into_iter()
            .enumerate()
            .map(|(i, (host, tls_name))| {
                Ok(Endpoint {
                    host,
                    port: port_for(i)?,
                    tls_name,
                })
            })
            .collect()
    }

    /// The user to log in as: the configured one, else `$PGUSER`, `$USER`, then
    /// `postgres`.
    pub fn effective_user(&self) -> String {
        self.user
            .clone()
            .or_else(|| std::env::var("PGUSER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "postgres".to_owned())
    }

    /// The start-up settings (user, database — defaulting to the user name —,
    /// password, `application_name`, `options` and extra parameters).
    pub fn startup_config(&self) -> StartupConfig {
        let user = self.effective_user();
        let database = self.dbname.clone().unwrap_or_else(|| user.clone());
        let mut startup = StartupConfig::new(user, database);
        startup.password = self.password.clone();
        if let Some(name) = self.get_application_name() {
            startup
                .params
                .push(("application_name".into(), name.into()));
        }
        if let Some(options) = &self.options {
            startup.params.push(("options".into(), options.clone()));
        }
        startup.params.extend(self.params.iter().cloned());
        startup
            .allow_cleartext_password(self.allow_cleartext_password)
            .require_auth(self.require_auth.clone())
            .channel_binding(self.get_channel_binding())
    }

    /// Applies one libpq keyword; unknown keywords are an error, as in libpq.
    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "dbname" => self.dbname = Some(value.to_owned()),
            "host" => {
                self.hosts = split_list(value).map(Host::parse).collect();
            }
            "hostaddr" => {
                self.hostaddrs = split_list(value)
                    .map(|a| {
                        a.parse::<IpAddr>().map_err(|_| {
                            config_error(format!("could not parse network address \"{a}\""))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "port" => {
                self.ports = split_list(value)
                    .map(|p| {
                        if p.is_empty() {
                            return Ok(DEFAULT_PORT);
                        }
                        p.trim()
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| config_error(format!("invalid port number: \"{p}\"")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "sslmode" => self.ssl_mode = Some(value.parse()?),
            // JDBC compatibility, as libpq: ssl=true means sslmode=require.
            "ssl" if value == "true" => self.ssl_mode = Some(SslMode::Require),
            "requiressl" => {
                self.ssl_mode = Some(match value {
                    "1" => SslMode::Require,
                    "0" => SslMode::Prefer,
                    _ => {
                        return Err(config_error(format!(
                            "invalid requiressl value: \"{value}\""
                        )));
                    }
                })
            }
            "sslrootcert" => self.ssl_root_cert = Some(value.into()),
            "sslcert" => self.ssl_cert = Some(value.into()),
            "sslkey" => self.ssl_key = Some(value.into()),
            "application_name" => self.application_name = Some(value.to_owned()),
            "fallback_application_name" => self.fallback_application_name = Some(value.to_owned()),
            "connect_timeout" => {
                let secs: i64 = value.trim().parse().map_err(|_| {
                    config_error(format!(
                        "invalid integer value \"{value}\" for connection option \"connect_timeout\""
                    ))
                })?;
                // As libpq: zero or negative means wait indefinitely, 1 becomes 2.
                self.connect_timeout = match secs {
                    ..=0 => None,
                    1 => Some(Duration::from_secs(2)),
                    n => Some(Duration::from_secs(n as u64)),
                };
            }
            "options" => self.options = Some(value.to_owned()),
            "channel_binding" => self.channel_binding = Some(value.parse()?),
            "require_auth" => self.require_auth = Some(value.parse()?),
            "client_encoding" => {
                if !value.eq_ignore_ascii_case("utf8") && !value.eq_ignore_ascii_case("utf-8") {
                    return Err(config_error(format!(
                        "client_encoding \"{value}\" is not supported: this client speaks UTF8 only"
                    )));
                }
            }
            // Accepted and ignored (no effect on this client).
            "keepalives"
            | "keepalives_idle"
            | "keepalives_interval"
            | "keepalives_count"
            | "tcp_user_timeout"
            | "target_session_attrs"
            | "load_balance_hosts"
            | "gssencmode"
            | "sslcompression"
            | "sslcrl"
            | "sslcrldir"
            | "sslsni"
            | "ssl_min_protocol_version"
            | "ssl_max_protocol_version"
            | "sslpassword"
            | "sslcertmode"
            | "sslnegotiation"
            | "krbsrvname"
            | "gsslib"
            | "gssdelegation"
            | "passfile"
            | "service"
            | "replication"
            | "requirepeer" => {}
            other => {
                return Err(config_error(format!(
                    "invalid connection option \"{other}\""
                )));
            }
        }
        Ok(())
    }

    fn parse_keyword_value(s: &str) -> Result<Config, Error> {
        let mut config = Config::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('=') {
                return Err(config_error(format!(
                    "missing \"=\" after \"{key}\" in connection info string"
                )));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next() {
                        None => {
                            return Err(config_error(
                                "unterminated quoted string in connection info string",
                            ));
                        }
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => {
                                return Err(config_error(
                                    "unterminated quoted string in connection info string",
                                ));
                            }
                        },
                        Some(c) => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        if let Some(next) = chars.next() {
                            value.push(next);
                        }
                    } else {
                        value.push(c);
                    }
                }
            }
            config.set(&key, &value)?;
        }
        Ok(config)
    }

    fn parse_url(s: &str, rest: &str) -> Result<Config, Error> {
        let mut config = Config::new();
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
            None => (before_query, None),
        };
        let hostspec = match authority.rfind('@') {
            Some(i) => {
                let userinfo = &authority[..i];
                let (user, password) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                if !user.is_empty() {
                    config.user = Some(percent_decode(user)?);
                }
                if let Some(p) = password {
                    config.password = Some(percent_decode(p)?);
                }
                &authority[i + 1..]
            }
            None => authority,
        };
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        let mut any_port = false;
        if !hostspec.is_empty() {
            for part in hostspec.split(',') {
                let (host, port) = if let Some(inner) = part.strip_prefix('[') {
                    let end = inner.find(']').ok_or_else(|| {
                        config_error(format!(
                            "missing \"]\" in IPv6 host address in URI: \"{s}\""
                        ))
                    })?;
                    let host = &inner[..end];
                    if host.is_empty() {
                        return Err(config_error(format!(
                            "IPv6 host address may not be empty in URI: \"{s}\""
                        )));
                    }
                    let after = &inner[end + 1..];
                    let port = match after.strip_prefix(':') {
                        Some(p) => Some(p),
                        None if after.is_empty() => None,
                        None => {
                            return Err(config_error(format!(
                                "unexpected character after IPv6 host address in URI: \"{s}\""
                            )));
                        }
                    };
                    (host.to_owned(), port)
                } else {
                    match part.rsplit_once(':') {
                        Some((h, p)) => (percent_decode(h)?, Some(p)),
                        None => (percent_decode(part)?, None),
                    }
                };
                hosts.push(host);
                ports.push(port.map(percent_decode).transpose()?);
                any_port |= port.is_some();
            }
        }
        if hosts.iter().any(|h| !h.is_empty()) || hosts.len() > 1 {
            let joined: Vec<&str> = hosts.iter().map(String::as_str).collect();
            config.set("host", &joined.join(","))?;
        }
        if any_port {
            let joined: Vec<&str> = ports.iter().map(|p| p.as_deref().unwrap_or("")).collect();
            config.set("port", &joined.join(","))?;
        }
        if let Some(path) = path
            && !path.is_empty()
        {
            config.dbname = Some(percent_decode(path)?);
        }
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    config_error(format!(
                        "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
                    ))
                })?;
                let k = percent_decode(k)?;
                let v = percent_decode(v)?;
                config.set(&k, &v)?;
            }
        }
        Ok(config)
    }
}

/// Splits a libpq comma-separated list (`host`, `hostaddr`, `port`).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',')
}

/// Decodes `%XX` escapes (libpq does not turn `+` into a space).
fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| config_error(format!("invalid percent-encoded token: \"{s}\"")))?;
            if hex == 0 {
                return Err(config_error(format!(
                    "forbidden value %00 in percent-encoded value: \"{s}\""
                )));
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| config_error(format!("percent-encoded value is not UTF-8: \"{s}\"")))
}

fn parse_pglite(rest: &str) -> Result<EmbeddedConfig, Error> {
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, Some(q)),
        None => (rest, None),
    };
    let location = if location.eq_ignore_ascii_case("temporary") {
        EmbeddedLocation::Temporary
    } else if location.starts_with('/')
        || location == "."
        || location.starts_with("./")
        || location.starts_with("../")
        || location == ".."
    {
        EmbeddedLocation::Path(PathBuf::from(percent_decode(location)?))
    } else if location.is_empty() {
        return Err(config_error(
            "pglite URL without a location: use pglite://temporary, pglite:///absolute/path \
             or pglite://./relative/path",
        ));
    } else {
        return Err(config_error(format!(
            "unknown pglite location \"{location}\": use pglite://temporary, \
             pglite:///absolute/path or pglite://./relative/path"
        )));
    };
    let mut params = Vec::new();
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                config_error(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
                ))
            })?;
            params.push((percent_decode(k)?, percent_decode(v)?));
        }
    }
    Ok(EmbeddedConfig { location, params })
}

impl FromStr for Config {
    type Err = Error;

    /// Parses a `postgres://`/`postgresql://` URL or a libpq `keyword=value` string.
    fn from_str(s: &str) -> Result<Config, Error> {
        let trimmed = s.trim();
        if let Some(rest) = strip_prefix_ci(trimmed, "postgresql://")
            .or_else(|| strip_prefix_ci(trimmed, "postgres://"))
        {
            return Config::parse_url(trimmed, rest);
        }
        if strip_prefix_ci(trimmed, "pglite:").is_some() {
            return Err(config_error(
                "a pglite:// URL names the embedded engine: parse it as a pglite_client::Target \
                 (or open it with pglite::Pglite)",
            ));
        }
        if let Some(i) = trimmed.find("://")
            && !trimmed[..i].contains('=')
        {
            return Err(config_error(format!(
                "unsupported URL scheme \"{}\" (expected postgres:// or postgresql://)",
                &trimmed[..i]
            )));
        }
        Config::parse_keyword_value(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Config {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        let e = s.parse::<Config>().expect_err(s);
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        e.to_string()
    }

    fn tcp(h: &str) -> Host {
        Host::Tcp(h.to_owned())
    }

    #[test]
    fn url_full() {
        let c = parse(
            "postgresql://user:pw@host.example:6000/db?connect_timeout=10&application_name=app",
        );
        assert_eq!(c.get_user(), Some("user"));
        assert_eq!(c.get_password(), Some("pw"));
        assert_eq!(c.get_hosts(), &[tcp("host.example")]);
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_dbname(), Some("db"));
        assert_eq!(c.get_connect_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_application_name(), Some("app"));
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(c.get_ssl_mode_explicit(), None);
    }

    #[test]
    fn url_minimal_forms() {
        let c = parse("postgres://");
        assert_eq!(c, Config::new());
        assert_eq!(c.endpoints().unwrap(), vec![(tcp("localhost"), 5432)]);
        let c = parse("postgresql://localhost");
        assert_eq!(c.get_hosts(), &[tcp("localhost")]);
        assert!(c.get_ports().is_empty());
        let c = parse("postgresql://localhost:5433");
        assert_eq!(c.get_ports(), &[5433]);
        let c = parse("postgresql://localhost/mydb");
        assert_eq!(c.get_dbname(), Some("mydb"));
        let c = parse("postgresql://user@localhost");
        assert_eq!(c.get_user(), Some("user"));
        assert_eq!(c.get_password(), None);
        let c = parse("postgresql://user:@localhost");
        assert_eq!(c.get_password(), Some(""));
        let c = parse("postgresql:///mydb");
        assert!(c.get_hosts().is_empty());
        assert_eq!(c.get_dbname(), Some("mydb"));
        let c = parse("POSTGRES://h/");
        assert_eq!(c.get_dbname(), None);
        assert_eq!(c.get_hosts(), &[tcp("h")]);
    }

    #[test]
    fn url_percent_encoding() {
        let c = parse("postgresql://us%40er:p%3Aw%2F%25@h/d%20b");
        assert_eq!(c.get_user(), Some("us@er"));
        assert_eq!(c.get_password(), Some("p:w/%"));
        assert_eq!(c.get_dbname(), Some("d b"));
        // libpq does not decode '+'.
        let c = parse("postgresql://h/a+b?application_name=x+y%20z");
        assert_eq!(c.get_dbname(), Some("a+b"));
        assert_eq!(c.get_application_name(), Some("x+y z"));
        // A password containing '@': the last '@' separates the host.
        let c = parse("postgres://u:a@b@host/db");
        assert_eq!(c.get_password(), Some("a@b"));
        assert_eq!(c.get_hosts(), &[tcp("host")]);
        // UTF-8.
        let c = parse("postgres://%C3%A9l%C3%A8ve@h/");
        assert_eq!(c.get_user(), Some("élève"));
        assert!(err("postgres://h/db%zz").contains("percent"));
        assert!(err("postgres://h/db%4").contains("percent"));
        assert!(err("postgres://h/db%00").contains("%00"));
        assert!(err("postgres://h/%ff").contains("UTF-8"));
    }

    #[test]
    fn url_unix_socket_hosts() {
        let c = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/dbname");
        assert_eq!(c.get_hosts(), &[Host::Unix("/var/run/postgresql".into())]);
        assert_eq!(c.get_dbname(), Some("dbname"));
        let c = parse("postgresql:///dbname?host=/var/lib/postgresql&port=5499");
        assert_eq!(c.get_hosts(), &[Host::Unix("/var/lib/postgresql".into())]);
        assert_eq!(
            c.endpoints().unwrap(),
            vec![(Host::Unix("/var/lib/postgresql".into()), 5499)]
        );
        let c = parse("postgresql://%2Ftmp:5433");
        assert_eq!(
            c.endpoints().unwrap(),
            vec![(Host::Unix("/tmp".into()), 5433)]
        );
    }

    #[test]
    fn url_ipv6_and_multi_host() {
        let c = parse("postgresql://[::1]:5433/db");
        assert_eq!(c.get_hosts(), &[tcp("::1")]);
        assert_eq!(c.get_ports(), &[5433]);
        let c = parse("postgresql://[2001:db8::1234]/database");
        assert_eq!(c.get_hosts(), &[tcp("2001:db8::1234")]);
        assert!(c.get_ports().is_empty());
        let c = parse("postgresql://host1:123,host2:456/somedb?application_name=myapp");
        assert_eq!(c.get_hosts(), &[tcp("host1"), tcp("host2")]);
        assert_eq!(
            c.endpoints().unwrap(),
            vec![(tcp("host1"), 123), (tcp("host2"), 456)]
        );
        let c = parse("postgresql://a,[::1]:7,b:8/db");
        assert_eq!(c.get_hosts(), &[tcp("a"), tcp("::1"), tcp("b")]);
        assert_eq!(
            c.endpoints().unwrap(),
            vec![(tcp("a"), 5432), (tcp("::1"), 7), (tcp("b"), 8)]
        );
        assert!(err("postgresql://[::1/db").contains("]"));
        assert!(err("postgresql://[]/db").contains("empty"));
        assert!(err("postgresql://[::1]x/db").contains("after IPv6"));
    }

    #[test]
    fn url_ports() {
        assert!(err("postgres://h:abc/db").contains("invalid port"));
        assert!(err("postgres://h:0/db").contains("invalid port"));
        assert!(err("postgres://h:70000/db").contains("invalid port"));
        let c = parse("host=a,b,c port=1,2");
        assert!(c.endpoints().unwrap_err().to_string().contains("3 hosts"));
        let c = parse("host=a,b port=7");
        assert_eq!(c.endpoints().unwrap(), vec![(tcp("a"), 7), (tcp("b"), 7)]);
    }

    #[test]
    fn url_query_params() {
        let c = parse(
            "postgres://h/db?sslmode=verify-ca&options=-c%20search_path%3Dapp&connect_timeout=0&user=q&dbname=other",
        );
        assert_eq!(c.get_ssl_mode(), SslMode::VerifyCa);
        assert_eq!(c.get_options(), Some("-c search_path=app"));
        assert_eq!(c.get_connect_timeout(), None);
        // Query parameters override the URL parts, as in libpq.
        assert_eq!(c.get_user(), Some("q"));
        assert_eq!(c.get_dbname(), Some("other"));
        let c = parse("postgres://h?ssl=true");
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let c = parse("postgres://h?sslrootcert=/ca.pem");
        assert_eq!(c.get_ssl_mode(), SslMode::VerifyFull);
        assert_eq!(c.get_ssl_root_cert(), Some(Path::new("/ca.pem")));
        let c = parse("postgres://h?sslrootcert=/ca.pem&sslmode=require");
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let c = parse("postgres://h?connect_timeout=1");
        assert_eq!(c.get_connect_timeout(), Some(Duration::from_secs(2)));
        assert!(err("postgres://h?sslmode=bogus").contains("sslmode"));
        assert!(err("postgres://h?nope=1").contains("invalid connection option \"nope\""));
        assert!(err("postgres://h?novalue").contains("separator"));
        assert!(err("postgres://h?connect_timeout=x").contains("connect_timeout"));
        assert!(err("postgres://h?client_encoding=LATIN1").contains("UTF8"));
        parse("postgres://h?client_encoding=UTF8&target_session_attrs=any&keepalives=1");
    }

    #[test]
    fn ssl_modes() {
        for (s, m) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(parse(&format!("sslmode={s}")).get_ssl_mode(), m);
            assert_eq!(m.as_str(), s);
            assert_eq!(
                m.requires_tls(),
                matches!(s, "require" | "verify-ca" | "verify-full")
            );
        }
        assert_eq!(parse("").get_ssl_mode(), SslMode::Prefer);
        assert_eq!(parse("requiressl=1").get_ssl_mode(), SslMode::Require);
        assert_eq!(
            parse("sslrootcert=system").get_ssl_mode(),
            SslMode::VerifyFull
        );
    }

    #[test]
    fn auth_keywords() {
        use crate::auth::{AuthMethod, ChannelBinding};
        let c = parse("channel_binding=require require_auth=scram-sha-256,none");
        assert_eq!(c.get_channel_binding(), ChannelBinding::Require);
        let r = c.get_require_auth().unwrap();
        assert!(r.allows(AuthMethod::None) && !r.allows(AuthMethod::Md5));
        assert!(!c.startup_config().cleartext_password_allowed());
        assert_eq!(
            c.startup_config().get_channel_binding(),
            ChannelBinding::Require
        );
        assert_eq!(parse("").get_channel_binding(), ChannelBinding::Prefer);
        // require_auth=password is the libpq way to allow cleartext without TLS.
        assert!(
            parse("require_auth=password")
                .startup_config()
                .cleartext_password_allowed()
        );
        assert!(
            Config::new()
                .allow_cleartext_password(true)
                .startup_config()
                .cleartext_password_allowed()
        );
        assert!(err("channel_binding=maybe").contains("channel_binding"));
        assert!(err("require_auth=md5,!password").contains("cannot be mixed"));
    }

    #[test]
    fn hostaddr_keeps_the_host_name_for_tls() {
        let c = parse("host=db.example,other hostaddr=10.0.0.5 port=6000");
        let t = c.targets().unwrap();
        assert_eq!(t[0].host, Host::Tcp("10.0.0.5".into()));
        assert_eq!(t[0].tls_name, "db.example");
        assert_eq!(t[1].host, Host::Tcp("other".into()));
        assert_eq!(t[1].tls_name, "other");
        assert_eq!(t[1].port, 6000);
    }

    #[test]
    fn keyword_value() {
        let c = parse("host=localhost port=5432 dbname=mydb connect_timeout=10");
        assert_eq!(c.get_hosts(), &[tcp("localhost")]);
        assert_eq!(c.get_ports(), &[5432]);
        assert_eq!(c.get_dbname(), Some("mydb"));
        assert_eq!(c.get_connect_timeout(), Some(Duration::from_secs(10)));
        let c = parse("  user = alice   password='secret'  ");
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_password(), Some("secret"));
        // '' is not an escape in libpq: the value ends, and "'s'" is not a keyword.
        assert!(err("password='it''s'").contains("missing \"=\""));
        let c = parse(r"password='it\'s a \\ secret' dbname='my db'");
        assert_eq!(c.get_password(), Some(r"it's a \ secret"));
        assert_eq!(c.get_dbname(), Some("my db"));
        let c = parse(r"password=a\ b application_name=");
        assert_eq!(c.get_password(), Some("a b"));
        assert_eq!(c.get_application_name(), Some(""));
        let c = parse("password='' user=x");
        assert_eq!(c.get_password(), Some(""));
        assert_eq!(c.get_user(), Some("x"));
        let c = parse("host=/tmp host=/var/run/postgresql");
        assert_eq!(c.get_hosts(), &[Host::Unix("/var/run/postgresql".into())]);
        let c = parse("options='-c geqo=off -c statement_timeout=5min'");
        assert_eq!(
            c.get_options(),
            Some("-c geqo=off -c statement_timeout=5min")
        );
        let c = parse("hostaddr=127.0.0.1 host=db.example");
        assert_eq!(c.endpoints().unwrap(), vec![(tcp("127.0.0.1"), 5432)]);
        let c = parse("hostaddr=::1");
        assert_eq!(c.endpoints().unwrap(), vec![(tcp("::1"), 5432)]);
        let c = parse("fallback_application_name=fb");
        assert_eq!(c.get_application_name(), Some("fb"));
        let c = parse("fallback_application_name=fb application_name=app");
        assert_eq!(c.get_application_name(), Some("app"));
        assert_eq!(parse(""), Config::new());
        assert!(err("host").contains("missing \"=\""));
        assert!(err("host localhost").contains("missing \"=\""));
        assert!(err("password='abc").contains("unterminated"));
        assert!(err("bogus=1").contains("invalid connection option \"bogus\""));
        assert!(err("hostaddr=not-an-ip").contains("network address"));
        assert!(err("mysql://h/db").contains("scheme"));
    }

    #[test]
    fn startup_config_and_builder() {
        let c = Config::new()
            .host("db")
            .host_path("/run/pg")
            .port(1)
            .port(2)
            .user("u")
            .password("p")
            .dbname("d")
            .application_name("a")
            .options("-c x=y")
            .param("search_path", "s")
            .connect_timeout(Duration::from_secs(3))
            .ssl_mode(SslMode::Disable);
        assert_eq!(
            c.endpoints().unwrap(),
            vec![(tcp("db"), 1), (Host::Unix("/run/pg".into()), 2)]
        );
        let s = c.startup_config();
        assert_eq!(s.user, "u");
        assert_eq!(s.database, "d");
        assert_eq!(s.password.as_deref(), Some("p"));
        assert_eq!(
            s.params,
            vec![
                ("application_name".to_owned(), "a".to_owned()),
                ("options".to_owned(), "-c x=y".to_owned()),
                ("search_path".to_owned(), "s".to_owned()),
            ]
        );
        // The database defaults to the user name.
        assert_eq!(Config::new().user("zed").startup_config().database, "zed");
        assert!(!format!("{c:?}").contains("\"p\""), "password redacted");
    }

    #[test]
    fn pglite_targets() {
        let t: Target = "pglite://temporary".parse().unwrap();
        assert_eq!(
            t,
            Target::Embedded(EmbeddedConfig {
                location: EmbeddedLocation::Temporary,
                params: vec![]
            })
        );
        let emb = |s: &str| match s.parse::<Target>().unwrap() {
            Target::Embedded(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            emb("pglite:///var/lib/app%20data").location,
            EmbeddedLocation::Path("/var/lib/app data".into())
        );
        assert_eq!(
            emb("pglite://./data/db").location,
            EmbeddedLocation::Path("./data/db".into())
        );
        assert_eq!(
            emb("pglite://../db").location,
            EmbeddedLocation::Path("../db".into())
        );
        let e = emb("pglite://temporary?database=app&user=u");
        assert_eq!(e.param("database"), Some("app"));
        assert_eq!(e.param("user"), Some("u"));
        assert_eq!(e.param("x"), None);
        for bad in [
            "pglite://",
            "pglite://somewhere",
            "pglite:temporary",
            "pglite://temporary?x",
        ] {
            let e = bad.parse::<Target>().expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Config);
        }
        assert!(err("pglite://temporary").contains("Target"));
        match "host=h".parse::<Target>().unwrap() {
            Target::Server(c) => assert_eq!(c.get_hosts(), &[tcp("h")]),
            other => panic!("{other:?}"),
        }
        match "postgres://h".parse::<Target>().unwrap() {
            Target::Server(c) => assert_eq!(c.get_hosts(), &[tcp("h")]),
            other => panic!("{other:?}"),
        }
    }
}
