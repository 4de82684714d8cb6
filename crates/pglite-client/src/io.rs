//! The byte-pipe abstraction the protocol core is written against, and the adapter
//! that lets a blocking [`Transport`] drive it.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;

use crate::error::{Error, ErrorKind};
use crate::transport::Transport;

/// What a driver gives the core: the async twin of [`Transport`].
pub(crate) trait Io {
    /// Queues frontend bytes (may buffer).
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Error>>;
    /// Flushes, then appends at least one byte of backend output to `buf`.
    fn receive(&mut self, buf: &mut BytesMut) -> impl Future<Output = Result<(), Error>>;
    /// Flushes queued bytes.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>>;
}

/// A blocking [`Transport`] seen as an [`Io`]: each future does its work when first
/// polled and is ready at once.
#[derive(Debug)]
pub(crate) struct Blocking<T>(pub(crate) T);

impl<T: Transport> Io for Blocking<T> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0.send(bytes)
    }
    async fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.0.receive(buf)
    }
    async fn flush(&mut self) -> Result<(), Error> {
        self.0.flush()
    }
}

/// Runs a core future whose only awaits are on [`Blocking`] I/O: it completes on the
/// first poll, so no executor is needed.
pub(crate) fn run_blocking<F: Future<Output = Result<R, Error>>, R>(future: F) -> Result<R, Error> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(Error::new(
            ErrorKind::Protocol,
            "internal error: a blocking call did not complete",
        )),
    }
}
