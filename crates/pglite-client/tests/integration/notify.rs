use crate::support;

#[test]
fn listen_notify_between_two_clients() {
    let mut listener = support::connect();
    let mut notifier = support::connect();
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
    assert_eq!(got[0].channel(), "chan_a");
    assert_eq!(got[0].payload(), "first");
    assert_eq!(got[0].process_id(), notifier_pid);
    assert_eq!(got[1].channel(), "Chan B");
    assert_eq!(got[1].payload(), "second ✓");

    // Notifications that arrive during an ordinary call are queued for notifications().
    listener.batch_execute("LISTEN self").unwrap();
    listener.batch_execute("NOTIFY self, 'me'").unwrap();
    let own = listener.notifications();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].payload(), "me");
    assert!(listener.notifications().is_empty());
}
