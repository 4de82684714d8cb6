//! Connection start-up settings.

use std::fmt;

/// What the client puts in its `StartupMessage` and answers during authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct StartupConfig {
    /// The role to log in as.
    pub user: String,
    /// The database to connect to.
    pub database: String,
    /// The password, used for cleartext, MD5 and SCRAM-SHA-256 authentication.
    pub password: Option<String>,
    /// Extra run-time parameters sent at start-up, e.g. `("application_name", "app")`
    /// or `("options", "-c search_path=app")`. `client_encoding` defaults to `UTF8`
    /// (the client only speaks UTF-8) and should not be changed.
    pub params: Vec<(String, String)>,
}

impl StartupConfig {
    /// Settings for `user` on `database`, without a password.
    pub fn new(user: impl Into<String>, database: impl Into<String>) -> StartupConfig {
        StartupConfig {
            user: user.into(),
            database: database.into(),
            password: None,
            params: Vec::new(),
        }
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> StartupConfig {
        self.password = Some(password.into());
        self
    }

    /// Adds a run-time parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> StartupConfig {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The `(name, value)` pairs of the `StartupMessage`, in order.
    pub(crate) fn startup_params(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = vec![("user", &self.user)];
        if !self.database.is_empty() {
            out.push(("database", &self.database));
        }
        let mut has_encoding = false;
        for (k, v) in &self.params {
            if k == "user" || k == "database" {
                continue;
            }
            if k.eq_ignore_ascii_case("client_encoding") {
                has_encoding = true;
            }
            out.push((k, v));
        }
        if !has_encoding {
            out.push(("client_encoding", "UTF8"));
        }
        out
    }
}

impl Default for StartupConfig {
    /// User `postgres`, database `postgres`, no password.
    fn default() -> StartupConfig {
        StartupConfig::new("postgres", "postgres")
    }
}

impl fmt::Debug for StartupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartupConfig")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("params", &self.params)
            .finish()
    }
}
