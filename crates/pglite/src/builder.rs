//! [`PgliteBuilder`]: where the database lives and how its session starts.

use std::path::PathBuf;
use std::sync::OnceLock;

use pglite_client::{Client, Error, ErrorKind, StartupConfig};
use pglite_engine::{SUPERUSER, TemporaryDatabase, WasmEngine, WasmEngineOptions};

use crate::Pglite;
use crate::database::quote_ident;
use crate::transport::EngineTransport;

/// Options for opening a [`Pglite`] database.
///
/// ```no_run
/// # fn main() -> Result<(), pglite::Error> {
/// let db = pglite::Pglite::builder()
///     .temporary()
///     .database("app")
///     .setting("work_mem", "1MB")
///     .open()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct PgliteBuilder {
    path: Option<PathBuf>,
    temporary: bool,
    database: Option<String>,
    username: Option<String>,
    settings: Vec<(String, String)>,
}

impl PgliteBuilder {
    /// Keep the database in `dir` (created if missing).
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path = Some(dir.into());
        self.temporary = false;
        self
    }

    /// Use a temporary copy of the template cluster, deleted on drop.
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self.path = None;
        self
    }

    /// Attach to `database` (default `postgres`), creating it if it does not exist.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Run the session as `user` (created as a login role if missing) instead of the
    /// superuser `postgres`, via `SET SESSION AUTHORIZATION`.
    ///
    /// The role gets PostgreSQL's defaults for a new role: in the `postgres` database it
    /// may not create objects in the `public` schema. A database created by
    /// [`PgliteBuilder::database`] for this user is owned by it (like `createdb -O`), so
    /// there the user owns `public` too.
    pub fn username(mut self, user: impl Into<String>) -> Self {
        self.username = Some(user.into());
        self
    }

    /// Set a configuration parameter for the session, e.g. `("work_mem", "1MB")`.
    ///
    /// Parameters that can only be set at server start are written with `ALTER SYSTEM`
    /// and the engine is restarted, so they persist in the data directory. Opening fails
    /// with [`ErrorKind::Config`] when PostgreSQL does not apply such a parameter: the
    /// runtime fixes some (`shared_buffers`, `wal_buffers`, `temp_buffers`, ...) on the
    /// backend's command line.
    ///
    /// Session parameters stay in force for the handle's life: after `RESET`,
    /// `DISCARD ALL` or an engine restart they are set again.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Open the database.
    pub fn open(self) -> Result<Pglite, Error> {
        let (data_dir, temporary, mut client) = match (&self.path, self.temporary) {
            (Some(path), false) => (path.clone(), None, connect(path, "postgres")?),
            (None, true) => {
                let db = TemporaryDatabase::take().map_err(crate::engine_error)?;
                let dir = db.dir.path().to_path_buf();
                let client = attach(db.engine, "postgres")?;
                (dir, Some(db.dir), client)
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "choose a data directory with .path(dir) or a temporary database with .temporary()",
                ));
            }
        };
        let database = self.database.clone().unwrap_or_else(|| "postgres".into());
        let user = self.username.as_deref().filter(|u| *u != SUPERUSER);
        if let Some(user) = user {
            let exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])?
                .is_some();
            if !exists {
                client.batch_execute(&format!("CREATE ROLE {} LOGIN", quote_ident(user)))?;
            }
        }
        if database != "postgres" {
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])?
                .is_some();
            if !exists {
                // Created for a user, the database is theirs (and so is its `public`
                // schema, owned by `pg_database_owner`), as with `createdb -O`.
                let owner = user
                    .map(|u| format!(" OWNER {}", quote_ident(u)))
                    .unwrap_or_default();
                client.batch_execute(&format!(
                    "CREATE DATABASE {}{owner}",
                    quote_ident(&database)
                ))?;
            }
        }
        let server_settings = apply_server_settings(&mut client, &self.settings)?;
        if !server_settings.is_empty() || database != "postgres" {
            shutdown(client)?;
            client = connect(&data_dir, &database)?;
            check_server_settings(&mut client, &server_settings)?;
        }
        for (name, value) in &self.settings {
            if !server_settings.contains(name) {
                client.execute("SELECT set_config($1, $2, false)", &[name, value])?;
            }
        }
        if let Some(user) = user {
            client.batch_execute(&format!("SET SESSION AUTHORIZATION {}", quote_ident(user)))?;
        }
        // What the session looks like now is what it keeps: see EngineTransport. With
        // no settings, user or database of the caller's, that is the engine's session
        // defaults, the same for every database of this process: read them once.
        static DEFAULT_SESSION: OnceLock<Vec<(String, String, String)>> = OnceLock::new();
        let plain = self.settings.is_empty() && user.is_none() && database == "postgres";
        let kept = match DEFAULT_SESSION.get().filter(|_| plain) {
            Some(kept) => kept.clone(),
            None => {
                let kept = session_settings(&mut client)?;
                if plain {
                    let _ = DEFAULT_SESSION.set(kept.clone());
                }
                kept
            }
        };
        client.transport_mut().keep_session(&kept, user);
        // The statements prepared above are ours, not the application's: closed with
        // its first request, they leave its session and statement cache empty.
        client.clear_statement_cache();
        let data_dir = client
            .transport()
            .engine()
            .map(|e| e.data_dir().to_path_buf())
            .unwrap_or(data_dir);
        Ok(Pglite::from_parts(client, data_dir, temporary))
    }
}

/// The session's settings that differ from the server's: `(name, setting,
/// current_setting(name))`.
fn session_settings(
    client: &mut Client<EngineTransport>,
) -> Result<Vec<(String, String, String)>, Error> {
    Ok(client
        .query(
            "SELECT name, setting, current_setting(name) FROM pg_catalog.pg_settings \
             WHERE source = 'session' AND name <> 'session_authorization'",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

fn connect(data_dir: &std::path::Path, database: &str) -> Result<Client<EngineTransport>, Error> {
    let options = WasmEngineOptions::default().database(database);
    let engine = WasmEngine::open(data_dir, &options).map_err(crate::engine_error)?;
    attach(engine, database)
}

/// A client on an open engine whose session is attached to `database`.
fn attach(engine: WasmEngine, database: &str) -> Result<Client<EngineTransport>, Error> {
    let config = StartupConfig::new(SUPERUSER, database);
    Client::connect(EngineTransport::new(engine), &config)
}

fn shutdown(mut client: Client<EngineTransport>) -> Result<(), Error> {
    match client.transport_mut().take_engine() {
        Some(engine) => engine.shutdown().map_err(crate::engine_error),
        None => Ok(()),
    }
}

/// True when `name` can only change at server start.
fn needs_restart(client: &mut Client<EngineTransport>, name: &str) -> Result<bool, Error> {
    let row = client.query_opt("SELECT context FROM pg_settings WHERE name = $1", &[&name])?;
    let Some(row) = row else {
        return Err(Error::new(
            ErrorKind::Config,
            format!("unknown configuration parameter \"{name}\""),
        ));
    };
    let context: &str = row.get(0);
    Ok(matches!(context, "postmaster" | "sighup" | "internal"))
}

/// `ALTER SYSTEM SET` every server-level setting; returns their names.
fn apply_server_settings(
    client: &mut Client<EngineTransport>,
    settings: &[(String, String)],
) -> Result<Vec<String>, Error> {
    let mut server = Vec::new();
    for (name, value) in settings {
        if !needs_restart(client, name)? {
            continue;
        }
        let current: String = client
            .query_one("SELECT current_setting($1)", &[name])?
            .get(0);
        if current == *value {
            continue;
        }
        client.batch_execute(&format!(
            "ALTER SYSTEM SET {} = '{}'",
            quote_ident(name),
            value.replace('\'', "''")
        ))?;
        server.push(name.clone());
    }
    Ok(server)
}

/// After the restart: fail for every server-level setting PostgreSQL did not apply
/// (the runtime fixes some, such as `shared_buffers`, on the backend's command line,
/// which overrides the configuration files), and take it out of
/// `postgresql.auto.conf` again.
fn check_server_settings(
    client: &mut Client<EngineTransport>,
    names: &[String],
) -> Result<(), Error> {
    for name in names {
        let row = client.query_opt(
            "SELECT f.applied, f.error, s.source, current_setting(f.name) \
             FROM pg_file_settings f JOIN pg_settings s ON s.name = f.name \
             WHERE f.name = $1 AND f.sourcefile LIKE '%postgresql.auto.conf' \
             ORDER BY f.seqno DESC LIMIT 1",
            &[name],
        )?;
        let Some(row) = row else { continue };
        let applied: bool = row.get(0);
        if applied {
            continue;
        }
        let error: Option<String> = row.get(1);
        let source: String = row.get(2);
        let current: String = row.get(3);
        client.batch_execute(&format!("ALTER SYSTEM RESET {}", quote_ident(name)))?;
        let why = if source == "command line" {
            "the PGlite runtime sets it on the backend's command line, which overrides \
             the configuration files"
                .to_string()
        } else {
            error.unwrap_or_else(|| format!("its value comes from {source}"))
        };
        return Err(Error::new(
            ErrorKind::Config,
            format!("setting {name} cannot be changed ({why}); it stays {current}"),
        ));
    }
    Ok(())
}
