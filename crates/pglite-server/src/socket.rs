//! A client's socket, served with blocking waits on the connection's own thread.
//!
//! Each connection runs on a thread of its own that also runs the engine while the
//! connection holds it (see `docs/SERVER.md`, "How the engine is hosted"). The thread
//! waits in one `poll` for whatever may need it: the client's bytes, or a [`Waker`]
//! that other threads use (a notification for it, a connection waiting for the engine
//! it holds, the engine handed to it, a cancel request, shutdown). A request from the
//! client therefore reaches the thread that answers it straight from the kernel, with
//! no other thread woken on the way — as with a PostgreSQL backend process.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use mio::event::Source;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::spin::SpinSlot;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);
/// Bytes taken off the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Something a thread can block on until another thread wakes it or a deadline passes.
pub(crate) struct Waiter {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
}

impl Waiter {
    /// A waiter with nothing but its waker registered.
    pub fn new() -> io::Result<Waiter> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        Ok(Waiter {
            poll,
            events: Events::with_capacity(4),
            waker,
        })
    }

    /// What other threads call to wake this one.
    pub fn waker(&self) -> &Arc<Waker> {
        &self.waker
    }

    /// Block until something registered is ready, the waker is woken, or `deadline`
    /// passes (`None`: no deadline). Returns early on any of them; callers check why.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }

    /// Whether the last [`Waiter::wait`] saw the socket become writable (or fail).
    fn saw_writable(&self) -> bool {
        self.events.iter().any(|e| {
            e.token() == SOCKET && (e.is_writable() || e.is_write_closed() || e.is_error())
        })
    }
}

/// The client's stream: TCP or a Unix socket, in non-blocking mode.
pub(crate) enum Stream {
    /// A TCP connection.
    Tcp(mio::net::TcpStream),
    /// A Unix-domain socket connection.
    #[cfg(unix)]
    Unix(mio::net::UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            #[cfg(unix)]
            Stream::Unix(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

/// A client socket and the waiter of the thread that serves it.
///
/// The socket is registered for readability only (edge-triggered), so a reply that
/// leaves the send buffer does not wake the thread; writability is asked for only
/// while a write is blocked. Every wait for bytes must follow a read that found none
/// ([`Socket::try_read`]): an edge seen by an earlier wait is not reported again.
pub(crate) struct Socket {
    stream: Stream,
    waiter: Waiter,
    chunk: Box<[u8]>,
}

impl Socket {
    /// Take over `stream` for blocking use on the current thread.
    pub fn new(mut stream: Stream) -> io::Result<Socket> {
        let waiter = Waiter::new()?;
        waiter
            .poll
            .registry()
            .register(stream.source(), SOCKET, Interest::READABLE)?;
        Ok(Socket {
            stream,
            waiter,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        })
    }

    /// What other threads call to wake the thread serving this socket.
    pub fn waker(&self) -> &Arc<Waker> {
        self.waiter.waker()
    }

    /// Append what the socket holds now to `buf`, without waiting. `Ok(None)`: nothing
    /// yet; `Ok(Some(0))`: the client closed the connection.
    pub fn try_read(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        loop {
            match self.stream.read(&mut self.chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&self.chunk[..n]);
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Poll the socket without sleeping while `slot` has budget left: like
    /// [`Socket::try_read`], but keeps trying until bytes arrive or the budget is used
    /// up (`Ok(None)`; the caller then sleeps in [`Socket::wait`]).
    pub fn spin_read(&mut self, buf: &mut BytesMut, slot: &SpinSlot) -> io::Result<Option<usize>> {
        loop {
            if let Some(n) = self.try_read(buf)? {
                return Ok(Some(n));
            }
            if slot.expired() {
                return Ok(None);
            }
        }
    }

    /// Block until the client may have sent bytes, the waker is woken, or `deadline`
    /// passes. Call only after [`Socket::try_read`] found nothing.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.waiter.wait(deadline)
    }

    /// The waiter, for waits that are not about the socket (the queue for the engine).
    pub fn waiter(&mut self) -> &mut Waiter {
        &mut self.waiter
    }

    /// Write all of `data`, waiting for the client to read if its buffer is full; fails
    /// with `TimedOut` at `deadline`.
    pub fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable(deadline)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn wait_writable(&mut self, deadline: Instant) -> io::Result<()> {
        let registry = self.waiter.poll.registry();
        registry.reregister(
            self.stream.source(),
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let result = loop {
            if Instant::now() >= deadline {
                break Err(io::ErrorKind::TimedOut.into());
            }
            if let Err(e) = self.waiter.wait(Some(deadline)) {
                break Err(e);
            }
            if self.waiter.saw_writable() {
                break Ok(());
            }
        };
        let registry = self.waiter.poll.registry();
        registry.reregister(self.stream.source(), SOCKET, Interest::READABLE)?;
        result
    }

    /// Half-close: the client sees the end of the stream after what was written.
    pub fn shutdown(&self) {
        self.stream.shutdown();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spin::Spinning;

    #[test]
    fn spinning_finds_bytes_sent_while_it_polls() {
        let (ours, mut theirs) = mio::net::UnixStream::pair().unwrap();
        let mut socket = Socket::new(Stream::Unix(ours)).unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(socket.try_read(&mut buf).unwrap(), None);
        // A budget far longer than the writer's pause: the bytes must be found by
        // polling, since spin_read never sleeps in epoll.
        let spinning = Spinning::new(Duration::from_secs(60), 1);
        let slot = spinning.start().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            theirs.write_all(b"request").unwrap();
            theirs
        });
        let mut got = 0;
        while got < 7 {
            got += socket.spin_read(&mut buf, &slot).unwrap().expect("bytes");
        }
        assert_eq!(&buf[..], b"request");
        drop(writer.join().unwrap());
        // The peer is gone: the end of the stream, not a wait for the budget.
        assert_eq!(socket.spin_read(&mut buf, &slot).unwrap(), Some(0));
    }

    #[test]
    fn spinning_gives_up_when_the_budget_is_used() {
        let (ours, _theirs) = mio::net::UnixStream::pair().unwrap();
        let mut socket = Socket::new(Stream::Unix(ours)).unwrap();
        let spinning = Spinning::new(Duration::from_micros(1), 1);
        let slot = spinning.start().unwrap();
        assert_eq!(socket.spin_read(&mut BytesMut::new(), &slot).unwrap(), None);
    }
}
