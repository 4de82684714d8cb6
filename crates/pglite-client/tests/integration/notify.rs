//! Notifications a session sends itself, queued during ordinary calls. Between two
//! clients: `sockets.rs`.

#[test]
fn own_notifications_are_queued_for_notifications() {
    let mut client = crate::connect();
    client
        .batch_execute("LISTEN self; LISTEN \"Self B\"")
        .unwrap();
    client.batch_execute("NOTIFY self, 'me'").unwrap();
    client
        .execute("SELECT pg_notify('Self B', $1)", &[&"second ✓"])
        .unwrap();
    client.batch_execute("NOTIFY other, 'ignored'").unwrap();
    let own = client.notifications();
    assert_eq!(own.len(), 2, "{own:?}");
    assert_eq!((own[0].channel(), own[0].payload()), ("self", "me"));
    assert_eq!((own[1].channel(), own[1].payload()), ("Self B", "second ✓"));
    assert_eq!(own[0].process_id(), client.backend_key().unwrap().0);
    assert!(client.notifications().is_empty());
    assert!(client.poll_notifications().unwrap().is_empty());

    // UNLISTEN stops them; a notification inside a rolled-back transaction is never sent.
    client.batch_execute("UNLISTEN self").unwrap();
    client.batch_execute("NOTIFY self, 'unheard'").unwrap();
    client
        .batch_execute("BEGIN; NOTIFY \"Self B\", 'rolled back'; ROLLBACK")
        .unwrap();
    assert!(client.poll_notifications().unwrap().is_empty());
}
