//! Authentication policy: which methods the client accepts (libpq's `require_auth`),
//! channel binding (`channel_binding`), and whether a cleartext password may be sent
//! over a connection without TLS.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// An authentication method a server can ask for, as named by libpq's `require_auth`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// No authentication exchange at all (`trust`, `peer`, `cert`): `none`.
    None,
    /// A cleartext password: `password`.
    Password,
    /// An MD5-hashed password: `md5`.
    Md5,
    /// GSSAPI: `gss`.
    Gss,
    /// SSPI: `sspi`.
    Sspi,
    /// SCRAM-SHA-256 (with or without channel binding): `scram-sha-256`.
    ScramSha256,
}

impl AuthMethod {
    /// The `require_auth` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::Gss => "gss",
            AuthMethod::Sspi => "sspi",
            AuthMethod::ScramSha256 => "scram-sha-256",
        }
    }

    /// What the server asked for, in words (for error messages).
    pub(crate) fn request(self) -> &'static str {
        match self {
            AuthMethod::None => "no authentication",
            AuthMethod::Password => "a cleartext password",
            AuthMethod::Md5 => "an MD5-hashed password",
            AuthMethod::Gss => "GSSAPI authentication",
            AuthMethod::Sspi => "SSPI authentication",
            AuthMethod::ScramSha256 => "SCRAM-SHA-256 (SASL) authentication",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's `require_auth` (PostgreSQL 16): the authentication methods the client
/// accepts, e.g. `scram-sha-256`, `password,md5`, or all but some (`!password,!md5`).
/// A server that asks for another method — or, unless `none` is listed, skips
/// authentication — is refused before anything is sent.
///
/// ```
/// use pglite_client::{AuthMethod, RequireAuth};
/// let r: RequireAuth = "scram-sha-256,none".parse().unwrap();
/// assert!(r.allows(AuthMethod::ScramSha256) && r.allows(AuthMethod::None));
/// assert!(!r.allows(AuthMethod::Password));
/// let r: RequireAuth = "!password".parse().unwrap();
/// assert!(r.allows(AuthMethod::Md5) && !r.allows(AuthMethod::Password));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequireAuth {
    methods: Vec<AuthMethod>,
    negated: bool,
}

impl RequireAuth {
    /// Accept exactly these methods.
    pub fn only(methods: impl IntoIterator<Item = AuthMethod>) -> RequireAuth {
        RequireAuth {
            methods: methods.into_iter().collect(),
            negated: false,
        }
    }

    /// Accept every method except these.
    pub fn except(methods: impl IntoIterator<Item = AuthMethod>) -> RequireAuth {
        RequireAuth {
            methods: methods.into_iter().collect(),
            negated: true,
        }
    }

    /// True if the server may use `method`.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method) != self.negated
    }

    /// True if `method` is listed as accepted (not merely "not excluded"): this is
    /// what explicitly allows a cleartext password without TLS (`require_auth=password`).
    pub fn lists(&self, method: AuthMethod) -> bool {
        !self.negated && self.methods.contains(&method)
    }

    /// Refuses `method` with an error naming the requirement, unless it is allowed.
    pub(crate) fn check(&self, method: AuthMethod) -> Result<(), Error> {
        if self.allows(method) {
            return Ok(());
        }
        let detail = match method {
            AuthMethod::None => "the server did not complete authentication".to_owned(),
            other => format!("the server requested {}", other.request()),
        };
        Err(Error::new(
            ErrorKind::Authentication,
            format!("authentication method requirement \"{self}\" failed: {detail}"),
        ))
    }
}

impl fmt::Display for RequireAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.methods.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if self.negated {
                f.write_str("!")?;
            }
            f.write_str(m.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for RequireAuth {
    type Err = Error;

    /// Parses a comma-separated list as libpq does: every entry negated with `!` or
    /// none, no duplicates, methods `password`, `md5`, `gss`, `sspi`,
    /// `scram-sha-256`, `none`.
    fn from_str(s: &str) -> Result<RequireAuth, Error> {
        let config = |m: String| Error::new(ErrorKind::Config, m);
        let mut methods = Vec::new();
        let mut negated = None;
        for entry in s.split(',') {
            let (neg, name) = match entry.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            match negated {
                None => negated = Some(neg),
                Some(n) if n != neg => {
                    return Err(config(format!(
                        "negative require_auth method \"{entry}\" cannot be mixed with \
                         non-negative methods"
                    )));
                }
                Some(_) => {}
            }
            let method = match name {
                "none" => AuthMethod::None,
                "password" => AuthMethod::Password,
                "md5" => AuthMethod::Md5,
                "gss" => AuthMethod::Gss,
                "sspi" => AuthMethod::Sspi,
                "scram-sha-256" => AuthMethod::ScramSha256,
                _ => {
                    return Err(config(format!(
                        "invalid require_auth value: \"{entry}\" (expected password, md5, gss, \
                         sspi, scram-sha-256 or none, optionally each with a leading \"!\")"
                    )));
                }
            };
            if methods.contains(&method) {
                return Err(config(format!(
                    "require_auth method \"{name}\" is specified more than once"
                )));
            }
            methods.push(method);
        }
        Ok(RequireAuth {
            methods,
            negated: negated.unwrap_or(false),
        })
    }
}

/// libpq's `channel_binding`: whether SCRAM authentication binds itself to the TLS
/// connection (`SCRAM-SHA-256-PLUS` with `tls-server-end-point`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelBinding {
    /// Never use channel binding.
    Disable,
    /// Use it when the connection has TLS and the server offers it (the default).
    #[default]
    Prefer,
    /// Refuse to authenticate without it: needs TLS, SCRAM and a server that offers
    /// `SCRAM-SHA-256-PLUS`.
    Require,
}

impl ChannelBinding {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBinding::Disable => "disable",
            ChannelBinding::Prefer => "prefer",
            ChannelBinding::Require => "require",
        }
    }
}

impl fmt::Display for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelBinding {
    type Err = Error;

    fn from_str(s: &str) -> Result<ChannelBinding, Error> {
        match s {
            "disable" => Ok(ChannelBinding::Disable),
            "prefer" => Ok(ChannelBinding::Prefer),
            "require" => Ok(ChannelBinding::Require),
            other => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "invalid channel_binding value: \"{other}\" (expected disable, prefer or \
                     require)"
                ),
            )),
        }
    }
}

/// What the authentication exchange needs to know about the connection's TLS.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsBinding {
    /// `tls-server-end-point` data: the hash of the server's certificate, `None` when
    /// its signature algorithm has no defined hash (channel binding impossible).
    pub(crate) server_end_point: Option<Vec<u8>>,
}

/// The error for a cleartext password request over a connection without TLS.
pub(crate) fn cleartext_refused(user: &str) -> Error {
    Error::new(
        ErrorKind::Authentication,
        format!(
            "the server asks for user \"{user}\"'s password in cleartext over a connection \
             without TLS; refused so that the password does not cross the network \
             unencrypted. Use TLS (sslmode=require or stronger), or allow it explicitly with \
             require_auth=password in the connection string, Config::allow_cleartext_password(true) \
             or StartupConfig::allow_cleartext_password(true)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_auth_parsing() {
        let r: RequireAuth = "password,md5".parse().unwrap();
        assert!(r.allows(AuthMethod::Password) && r.allows(AuthMethod::Md5));
        assert!(!r.allows(AuthMethod::None) && !r.allows(AuthMethod::ScramSha256));
        assert!(r.lists(AuthMethod::Password));
        assert_eq!(r.to_string(), "password,md5");
        let r: RequireAuth = "!none,!password".parse().unwrap();
        assert!(!r.allows(AuthMethod::None) && r.allows(AuthMethod::ScramSha256));
        assert!(!r.lists(AuthMethod::Password) && !r.lists(AuthMethod::ScramSha256));
        assert_eq!(r.to_string(), "!none,!password");
        for (bad, what) in [
            ("password,!md5", "cannot be mixed"),
            ("md5,md5", "more than once"),
            ("kerberos", "invalid require_auth value"),
            ("", "invalid require_auth value"),
        ] {
            let e = bad.parse::<RequireAuth>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(what), "{bad}: {e}");
        }
        let e = RequireAuth::only([AuthMethod::ScramSha256])
            .check(AuthMethod::Password)
            .unwrap_err();
        assert!(
            e.to_string().contains(
                "requirement \"scram-sha-256\" failed: the server requested a cleartext password"
            ),
            "{e}"
        );
        let e = RequireAuth::only([AuthMethod::Md5])
            .check(AuthMethod::None)
            .unwrap_err();
        assert!(e.to_string().contains("did not complete authentication"));
    }

    #[test]
    fn channel_binding_parsing() {
        assert_eq!(
            "require".parse::<ChannelBinding>().unwrap(),
            ChannelBinding::Require
        );
        assert_eq!(ChannelBinding::default(), ChannelBinding::Prefer);
        assert!("yes".parse::<ChannelBinding>().is_err());
    }
}
