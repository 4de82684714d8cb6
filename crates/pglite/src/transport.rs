//! The client's [`Transport`] over an in-process engine.

use bytes::BytesMut;
use pglite_client::{Error, ErrorKind, Transport};
use pglite_engine::{Engine, WasmEngine};

/// Protocol version 3.0 as it appears in a StartupMessage.
const PROTOCOL_3: [u8; 4] = 196_608i32.to_be_bytes();

/// Feeds a [`pglite_client::Client`] from a [`WasmEngine`] in the same process.
///
/// The engine already holds an authenticated session, so the client's StartupMessage
/// is answered with the engine's recorded startup reply, and Terminate is not passed
/// on (the session outlives the client until the engine shuts down).
pub struct EngineTransport {
    engine: Option<WasmEngine>,
    pending: Vec<u8>,
    reply: Vec<u8>,
}

impl EngineTransport {
    /// Wrap an open engine.
    pub fn new(engine: WasmEngine) -> EngineTransport {
        EngineTransport {
            engine: Some(engine),
            pending: Vec::with_capacity(1024),
            reply: Vec::with_capacity(64 * 1024),
        }
    }

    /// The engine, unless it was taken for shutdown.
    pub fn engine(&self) -> Option<&WasmEngine> {
        self.engine.as_ref()
    }

    /// Take the engine out (for an explicit, error-reporting shutdown).
    pub fn take_engine(&mut self) -> Option<WasmEngine> {
        self.engine.take()
    }

    /// Remove a leading StartupMessage from `pending`; true if there was one.
    fn take_startup(&mut self) -> bool {
        if self.pending.len() < 8 || self.pending[4..8] != PROTOCOL_3 {
            return false;
        }
        let len = u32::from_be_bytes(self.pending[..4].try_into().expect("4 bytes")) as usize;
        self.pending.drain(..len.min(self.pending.len()));
        true
    }

    /// Drop Terminate messages: the engine's session is ended by shutting it down.
    fn strip_terminate(&mut self) {
        if self.pending.ends_with(&[b'X', 0, 0, 0, 4]) {
            let len = self.pending.len();
            self.pending.truncate(len - 5);
        }
    }
}

impl Transport for EngineTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        if self.engine.is_none() {
            return Err(Error::new(ErrorKind::Closed, "the database was closed"));
        }
        if self.take_startup() {
            let engine = self.engine.as_ref().expect("checked above");
            buf.extend_from_slice(engine.startup_reply());
            if self.pending.is_empty() {
                return Ok(());
            }
        }
        self.strip_terminate();
        if self.pending.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "waiting for a reply, but nothing was sent to the embedded engine",
            ));
        }
        let engine = self.engine.as_mut().expect("checked above");
        self.reply.clear();
        let result = engine.exchange(&self.pending, &mut self.reply);
        self.pending.clear();
        result.map_err(crate::engine_error)?;
        if self.reply.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the embedded engine returned no reply",
            ));
        }
        buf.extend_from_slice(&self.reply);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.strip_terminate();
        Ok(())
    }
}
