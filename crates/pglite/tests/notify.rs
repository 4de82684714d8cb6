//! LISTEN/NOTIFY: callbacks, polling, unlisten.

mod common;

use std::sync::{Arc, Mutex};

use common::temp;
use pglite::Notification;

type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn recorder(seen: &Seen) -> impl FnMut(&Notification) + Send + 'static {
    let seen = Arc::clone(seen);
    move |n: &Notification| {
        seen.lock()
            .unwrap()
            .push((n.channel().to_string(), n.payload().to_string()))
    }
}

fn take(seen: &Seen) -> Vec<(String, String)> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn pair(channel: &str, payload: &str) -> (String, String) {
    (channel.to_string(), payload.to_string())
}

#[test]
fn listen_callback_receives_notify_and_unlisten_stops_it() {
    let mut db = temp();
    let seen: Seen = Arc::default();
    db.listen("events", recorder(&seen)).unwrap();

    db.notify("events", "first").unwrap();
    assert_eq!(take(&seen), [pair("events", "first")]);

    // NOTIFY in SQL, and notifications of other channels are not delivered.
    db.batch_execute("NOTIFY events, 'second'; NOTIFY other, 'ignored'")
        .unwrap();
    assert_eq!(take(&seen), [pair("events", "second")]);

    // Inside a transaction, delivery waits for the commit; a rollback drops them.
    db.transaction(|tx| {
        tx.execute("SELECT pg_notify('events', 'in tx')", &[])?;
        Ok::<_, pglite::Error>(())
    })
    .unwrap();
    assert_eq!(take(&seen), [pair("events", "in tx")]);
    db.batch_execute("BEGIN; NOTIFY events, 'rolled back'; ROLLBACK")
        .unwrap();
    assert_eq!(take(&seen), []);

    // Payloads keep their bytes; identical notifications in one transaction collapse.
    db.notify("events", "ünïcode, 'quotes' and \"more\"")
        .unwrap();
    assert_eq!(
        take(&seen),
        [pair("events", "ünïcode, 'quotes' and \"more\"")]
    );
    db.batch_execute(
        "BEGIN; NOTIFY events, 'dup'; NOTIFY events, 'dup'; NOTIFY events, 'x'; COMMIT",
    )
    .unwrap();
    assert_eq!(take(&seen), [pair("events", "dup"), pair("events", "x")]);

    // Two callbacks on one channel both run; a channel name with odd characters works.
    let second: Seen = Arc::default();
    db.listen("events", recorder(&second)).unwrap();
    db.listen("Mixed Case-channel", recorder(&second)).unwrap();
    db.notify("events", "both").unwrap();
    db.notify("Mixed Case-channel", "odd").unwrap();
    assert_eq!(take(&seen), [pair("events", "both")]);
    assert_eq!(
        take(&second),
        [pair("events", "both"), pair("Mixed Case-channel", "odd")]
    );

    db.unlisten("events").unwrap();
    db.notify("events", "after unlisten").unwrap();
    db.poll_notifications().unwrap();
    assert_eq!(take(&seen), []);
    assert_eq!(take(&second), []);
    let listening: Vec<String> = db
        .query("SELECT pg_listening_channels()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listening, ["Mixed Case-channel"]);
}

#[test]
fn poll_notifications_returns_pending_notifications() {
    let mut db = temp();
    let seen: Seen = Arc::default();
    db.listen("jobs", recorder(&seen)).unwrap();
    // Raised by a trigger, with the process id of our own session.
    db.batch_execute(
        "CREATE TABLE jobs (id int);
         CREATE FUNCTION announce() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_notify('jobs', NEW.id::text); RETURN NEW; END $$;
         CREATE TRIGGER jobs_announce AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION announce();",
    )
    .unwrap();
    db.execute("INSERT INTO jobs VALUES (1), (2)", &[]).unwrap();
    assert_eq!(take(&seen), [pair("jobs", "1"), pair("jobs", "2")]);

    // Nothing pending: an empty poll.
    assert!(db.poll_notifications().unwrap().is_empty());

    // poll_notifications returns them and runs the callbacks.
    db.notify("jobs", "3").unwrap();
    let _ = take(&seen);
    db.client().batch_execute("NOTIFY jobs, '4'").unwrap();
    let polled = db.poll_notifications().unwrap();
    let polled: Vec<_> = polled
        .iter()
        .map(|n| pair(n.channel(), n.payload()))
        .collect();
    assert_eq!(polled, [pair("jobs", "4")]);
    assert_eq!(take(&seen), [pair("jobs", "4")]);
    let pid: i32 = common::scalar(&mut db, "SELECT pg_backend_pid()");
    db.client().batch_execute("NOTIFY jobs, '5'").unwrap();
    let polled = db.poll_notifications().unwrap();
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0].process_id(), pid);
}
