//! Tests that need a server reached over a socket: two clients of one database at the
//! same time, and a transport that reads from the socket directly. Run against native
//! PostgreSQL and `pglite::Server`; the engine serves one client in-process.

use bytes::BytesMut;
use pglite_client::{Error, TcpTransport, Transport};

#[test]
fn listen_notify_between_two_clients() {
    let mut listener = crate::connect();
    let mut notifier = crate::connect();
    listener
        .batch_execute("LISTEN chan_a; LISTEN \"Chan B\"")
        .unwrap();
    notifier.batch_execute("NOTIFY chan_a, 'first'").unwrap();
    notifier
        .execute("SELECT pg_notify('Chan B', $1)", &[&"second ✓"])
        .unwrap();
    notifier
        .batch_execute("NOTIFY chan_other, 'ignored'")
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(listener.poll_notifications().unwrap());
        if got.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(got.len(), 2, "{got:?}");
    let notifier_pid = notifier.backend_key().unwrap().0;
    assert_ne!(notifier_pid, listener.backend_key().unwrap().0);
    assert_eq!(got[0].channel(), "chan_a");
    assert_eq!(got[0].payload(), "first");
    assert_eq!(got[0].process_id(), notifier_pid);
    assert_eq!(got[1].channel(), "Chan B");
    assert_eq!(got[1].payload(), "second ✓");
    // The notifier did not listen: nothing for it.
    assert!(notifier.poll_notifications().unwrap().is_empty());
}

/// Collects the whole reply before handing it over, like an in-process engine.
struct Whole {
    inner: TcpTransport,
}

impl Transport for Whole {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.inner.receive(buf)?;
        // Give the server a moment to produce the rest, then take all there is.
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.inner.stream().set_nonblocking(true).unwrap();
        let mut more = BytesMut::new();
        while self.inner.receive(&mut more).is_ok() {}
        self.inner.stream().set_nonblocking(false).unwrap();
        buf.extend_from_slice(&more);
        Ok(())
    }
}

#[test]
fn whole_replies_at_once() {
    let mut client = crate::connect_with(|inner| Whole { inner });
    crate::split::exercise(&mut client);
}
