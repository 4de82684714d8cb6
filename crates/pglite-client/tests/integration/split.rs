//! Messages split at arbitrary byte boundaries (and many messages per receive), and
//! the order in which the client writes and reads.

use bytes::BytesMut;
use pglite_client::{Client, Error, Transport, Type};

/// Wraps a transport and hands its output back at most `step` bytes per `receive`.
pub(crate) struct Trickle<T> {
    inner: T,
    pending: BytesMut,
    step: usize,
    receives: usize,
}

impl<T> Trickle<T> {
    pub(crate) fn new(inner: T, step: usize) -> Self {
        Trickle {
            inner,
            pending: BytesMut::new(),
            step,
            receives: 0,
        }
    }
}

impl<T: Transport> Transport for Trickle<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        if self.pending.is_empty() {
            self.inner.receive(&mut self.pending)?;
        }
        let n = self.step.min(self.pending.len());
        buf.extend_from_slice(&self.pending.split_to(n));
        self.receives += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }
}

pub(crate) fn exercise<T: Transport>(client: &mut Client<T>) {
    let results = client
        .simple_query("SELECT 'x' AS a, 2 AS b; SELECT generate_series(1, 3)")
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].rows.len(), 3);
    let rows = client
        .query(
            "SELECT g, repeat('y', g) FROM generate_series(1, 50) g WHERE g > $1",
            &[&10i32],
        )
        .unwrap();
    assert_eq!(rows.len(), 40);
    assert_eq!(rows[39].get::<_, String>(1).len(), 50);
    let err = client.query("SELEC 1", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("CREATE TEMP TABLE split_t (v text)")
        .unwrap();
    let data: String = (0..300).map(|i| format!("row {i}\n")).collect();
    assert_eq!(
        tx.copy_in("COPY split_t FROM STDIN", data.as_bytes())
            .unwrap(),
        300
    );
    let mut out = Vec::new();
    tx.copy_out("COPY split_t TO STDOUT", &mut out).unwrap();
    assert_eq!(out, data.as_bytes());
    exercise_streams(&mut tx);
    tx.rollback().unwrap();
}

/// Streams, cursors, pipelines and binary COPY (inside a transaction).
fn exercise_streams<T: Transport>(client: &mut Client<T>) {
    let sum: i64 = client
        .query_raw("SELECT g::int8 FROM generate_series(1, 300) g", &[])
        .unwrap()
        .map(|r| r.unwrap().get::<_, i64>(0))
        .sum();
    assert_eq!(sum, 45150);
    let n = client
        .cursor(
            "SELECT repeat('z', g) FROM generate_series(1, 40) g",
            &[],
            7,
        )
        .unwrap()
        .map(|r| r.unwrap().get::<_, String>(0).len())
        .sum::<usize>();
    assert_eq!(n, 820);
    let messages = client
        .simple_query_raw("SELECT 1; SELECT 2")
        .unwrap()
        .count();
    assert_eq!(messages, 6);
    let mut batch = client.pipeline();
    batch.add("SELECT $1::int4 * 2", &[&21i32]).unwrap();
    batch.add("SELECT 1/0", &[]).unwrap();
    let outcomes = batch.run().unwrap();
    assert_eq!(outcomes[0].result().unwrap().rows()[0].get::<_, i32>(0), 42);
    assert_eq!(outcomes[1].error().unwrap().code().unwrap().code(), "22012");
}

#[test]
fn one_byte_per_receive() {
    for step in [1, 2, 3, 7, 1000] {
        let mut client = crate::connect_with(|raw| Trickle::new(raw, step));
        exercise(&mut client);
        if step == 1 {
            assert!(client.transport_mut().receives > 1000);
        }
    }
}

/// Checks that a COPY FROM STDIN stream is written completely (through CopyDone or
/// CopyFail) before the client asks for any reply, as the in-process engine needs.
struct StrictCopy<T> {
    inner: T,
    sent: Vec<u8>,
    connected: bool,
}

impl<T> StrictCopy<T> {
    /// Walks the frontend messages sent so far: panics if a COPY FROM STDIN query is
    /// not followed by CopyDone/CopyFail.
    fn check(&self) {
        let mut i = 0;
        let mut in_copy = false;
        // Extended-protocol messages not yet followed by Sync (or a Query).
        let mut unsynced = false;
        while i + 5 <= self.sent.len() {
            let tag = self.sent[i];
            let len = u32::from_be_bytes(self.sent[i + 1..i + 5].try_into().unwrap()) as usize;
            let body = &self.sent[i + 5..i + 1 + len];
            match tag {
                b'Q' => {
                    let text = String::from_utf8_lossy(body).to_uppercase();
                    in_copy = text.contains("FROM STDIN");
                }
                b'c' | b'f' => in_copy = false,
                _ => {}
            }
            match tag {
                b'P' | b'B' | b'E' | b'D' | b'C' => unsynced = true,
                b'S' | b'Q' => unsynced = false,
                _ => {}
            }
            i += 1 + len;
        }
        assert_eq!(
            i,
            self.sent.len(),
            "receive() called with a partial message sent"
        );
        assert!(
            !in_copy,
            "receive() called before the COPY data was complete"
        );
        assert!(!unsynced, "receive() called before the request's Sync");
    }
}

impl<T: Transport> Transport for StrictCopy<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.connected {
            self.sent.extend_from_slice(bytes);
        }
        self.inner.send(bytes)
    }

    fn receive(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        self.check();
        self.inner.receive(buf)
    }
}

#[test]
fn copy_in_writes_everything_before_reading() {
    let mut client = crate::connect_with(|inner| StrictCopy {
        inner,
        sent: Vec::new(),
        connected: false,
    });
    client.transport_mut().connected = true;
    client
        .batch_execute("CREATE TEMP TABLE strict_t (v int)")
        .unwrap();
    let data: String = (0..50_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        client
            .copy_in("COPY strict_t FROM STDIN", data.as_bytes())
            .unwrap(),
        50_000
    );
    assert!(
        client
            .copy_in("COPY strict_t FROM STDIN", &b"x\n"[..])
            .is_err()
    );
    assert_eq!(
        client.execute("SELECT * FROM strict_t", &[]).unwrap(),
        50_000
    );
    assert!(client.transport_mut().sent.len() > 250_000);

    // Binary COPY: finished, and aborted by dropping the writer.
    let mut writer = client
        .copy_in_binary("COPY strict_t FROM STDIN (FORMAT binary)", &[Type::INT4])
        .unwrap();
    for i in 0..50_000i32 {
        writer.write(&[&i]).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 50_000);
    let mut writer = client
        .copy_in_binary("COPY strict_t FROM STDIN (FORMAT binary)", &[Type::INT4])
        .unwrap();
    writer.write(&[&1i32]).unwrap();
    drop(writer);
    // Cursors, pipelines and streams end every request with Sync.
    let mut tx = client.transaction().unwrap();
    exercise_streams(&mut tx);
    tx.rollback().unwrap();
    assert_eq!(
        client.execute("SELECT * FROM strict_t", &[]).unwrap(),
        100_000
    );
}
