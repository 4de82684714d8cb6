//! [`connect`]: one client type for the embedded engine and for PostgreSQL servers,
//! chosen by URL.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use pglite_client::{
    Client, EmbeddedConfig, EmbeddedLocation, Error, ErrorKind, SocketTransport, Target, Transport,
};

use crate::{Pglite, PgliteBuilder, transport::EngineTransport};

/// The byte pipe of a [`Connection`]: the in-process engine or a socket to a server.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyTransport {
    /// The embedded engine (`pglite://` URLs).
    Embedded(Box<EngineTransport>),
    /// A PostgreSQL server over TCP, TLS or a Unix socket.
    Server(SocketTransport),
}

impl Transport for AnyTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            AnyTransport::Embedded(t) => t.send(bytes),
            AnyTransport::Server(t) => t.send(bytes),
        }
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            AnyTransport::Embedded(t) => t.receive(buf),
            AnyTransport::Server(t) => t.receive(buf),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        match self {
            AnyTransport::Embedded(t) => t.flush(),
            AnyTransport::Server(t) => t.flush(),
        }
    }

    fn receive_timeout(&mut self, buf: &mut BytesMut, timeout: Duration) -> Result<bool, Error> {
        match self {
            AnyTransport::Embedded(t) => t.receive_timeout(buf, timeout),
            AnyTransport::Server(t) => t.receive_timeout(buf, timeout),
        }
    }
}

/// A blocking client opened from a URL: the embedded engine for `pglite://` URLs, a
/// PostgreSQL server for libpq connection strings. It dereferences to
/// [`Client<AnyTransport>`](pglite_client::Client), so the same code runs against
/// both; moving an application from the embedded database to a server is a change
/// of URL.
///
/// An embedded connection owns its engine (and, for `pglite://temporary`, the
/// temporary directory, deleted when the connection is dropped). A server connection
/// reconnects by itself after the connection broke (see the client's docs).
pub struct Connection {
    client: Client<AnyTransport>,
    data_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("embedded", &self.is_embedded())
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Opens a [`Connection`] from a URL.
///
/// - `pglite://temporary`, `pglite:///absolute/path`, `pglite://./relative/path`: the
///   embedded engine on a temporary database or a data directory (created if
///   missing). Query parameters: `database` (default `postgres`, created if
///   missing), `user` (a role created if missing, see
///   [`PgliteBuilder::username`]), and any other `name=value` is a setting
///   ([`PgliteBuilder::setting`]), e.g. `pglite://temporary?work_mem=8MB`.
/// - `postgres://…`, `postgresql://…` or `keyword=value` strings: a server, as libpq
///   reads them (TLS, SCRAM, several hosts, `connect_timeout`, …).
///
/// ```no_run
/// # fn main() -> Result<(), pglite::Error> {
/// let url = std::env::var("DATABASE_URL").unwrap_or("pglite://temporary".into());
/// let mut db = pglite::connect(&url)?;
/// db.batch_execute("CREATE TABLE IF NOT EXISTS notes (id serial, body text)")?;
/// db.execute("INSERT INTO notes (body) VALUES ($1)", &[&"hello"])?;
/// let n: i64 = db.query_one("SELECT count(*) FROM notes", &[])?.get(0);
/// # Ok(()) }
/// ```
pub fn connect(url: &str) -> Result<Connection, Error> {
    match url.parse::<Target>()? {
        Target::Server(config) => Ok(Connection {
            client: Client::connect_config(&config)?.map_transport(AnyTransport::Server),
            data_dir: None,
        }),
        Target::Embedded(config) => Ok(Connection::embedded(builder_for(&config)?.open()?)),
        _ => Err(Error::new(
            ErrorKind::Config,
            "this kind of connection target is not supported",
        )),
    }
}

/// The builder a `pglite://` URL describes.
fn builder_for(config: &EmbeddedConfig) -> Result<PgliteBuilder, Error> {
    let mut builder = match &config.location {
        EmbeddedLocation::Temporary => Pglite::builder().temporary(),
        EmbeddedLocation::Path(path) => Pglite::builder().path(path),
        _ => {
            return Err(Error::new(
                ErrorKind::Config,
                "unsupported pglite:// location",
            ));
        }
    };
    for (name, value) in &config.params {
        builder = match name.as_str() {
            "database" | "dbname" => builder.database(value),
            "user" | "username" => builder.username(value),
            _ => builder.setting(name, value),
        };
    }
    Ok(builder)
}

impl Connection {
    /// Wraps an open embedded database (its temporary directory, if any, goes with
    /// it; see [`Pglite::into_client`]).
    pub fn embedded(db: Pglite) -> Connection {
        let data_dir = db.data_dir().to_path_buf();
        Connection {
            client: db
                .into_client()
                .map_transport(|t| AnyTransport::Embedded(Box::new(t))),
            data_dir: Some(data_dir),
        }
    }

    /// True for the in-process engine.
    pub fn is_embedded(&self) -> bool {
        matches!(self.client.transport(), AnyTransport::Embedded(_))
    }

    /// The data directory of an embedded connection.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Ends the session and reports failures: an embedded engine shuts down cleanly
    /// (a checkpoint, the directory lock released); a server connection sends
    /// `Terminate`.
    pub fn close(mut self) -> Result<(), Error> {
        if let AnyTransport::Embedded(t) = self.client.transport_mut() {
            return match t.take_engine() {
                Some(engine) => engine.shutdown().map_err(crate::engine_error),
                None => Ok(()),
            };
        }
        self.client.close()
    }
}

impl Deref for Connection {
    type Target = Client<AnyTransport>;

    fn deref(&self) -> &Client<AnyTransport> {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client<AnyTransport> {
        &mut self.client
    }
}
