//! Connection start-up settings.

use std::fmt;

use crate::auth::{AuthMethod, ChannelBinding, RequireAuth};

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
    allow_cleartext_password: bool,
    require_auth: Option<RequireAuth>,
    channel_binding: ChannelBinding,
}

impl StartupConfig {
    /// Settings for `user` on `database`, without a password.
    pub fn new(user: impl Into<String>, database: impl Into<String>) -> StartupConfig {
        StartupConfig {
            user: user.into(),
            database: database.into(),
            password: None,
            params: Vec::new(),
            allow_cleartext_password: false,
            require_auth: None,
            channel_binding: ChannelBinding::Prefer,
        }
    }

    /// Allows sending the password in cleartext when the server asks for it over a
    /// connection without TLS (refused by default). `require_auth=password` does the
    /// same.
    pub fn allow_cleartext_password(mut self, allow: bool) -> StartupConfig {
        self.allow_cleartext_password = allow;
        self
    }

    /// Restricts the authentication methods the server may use (libpq's
    /// `require_auth`).
    pub fn require_auth(mut self, require: Option<RequireAuth>) -> StartupConfig {
        self.require_auth = require;
        self
    }

    /// Sets the channel-binding policy (libpq's `channel_binding`, default `prefer`).
    pub fn channel_binding(mut self, binding: ChannelBinding) -> StartupConfig {
        self.channel_binding = binding;
        self
    }

    /// The channel-binding policy.
    pub fn get_channel_binding(&self) -> ChannelBinding {
        self.channel_binding
    }

    /// The `require_auth` restriction, if any.
    pub fn get_require_auth(&self) -> Option<&RequireAuth> {
        self.require_auth.as_ref()
    }

    /// True if a cleartext password may be sent without TLS: allowed with
    /// [`allow_cleartext_password`](StartupConfig::allow_cleartext_password) or by
    /// listing `password` in `require_auth`.
    pub fn cleartext_password_allowed(&self) -> bool {
        self.allow_cleartext_password
            || self
                .require_auth
                .as_ref()
                .is_some_and(|r| r.lists(AuthMethod::Password))
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
            .field("allow_cleartext_password", &self.allow_cleartext_password)
            .field("require_auth", &self.require_auth)
            .field("channel_binding", &self.channel_binding)
            .finish()
    }
}
