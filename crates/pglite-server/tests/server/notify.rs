//! LISTEN/NOTIFY routed to subscribers only.

use std::time::Duration;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_subscribers_only() {
    let server = support::start(|b| b);
    let (listener, mut listener_rx) = support::tokio_pg(server.url()).await;
    let (other, mut other_rx) = support::tokio_pg(server.url()).await;
    let (sender, mut sender_rx) = support::tokio_pg(server.url()).await;
    let (quitter, mut quitter_rx) = support::tokio_pg(server.url()).await;
    listener.batch_execute("LISTEN events").await.unwrap();
    quitter
        .batch_execute("LISTEN events; LISTEN \"Other\"")
        .await
        .unwrap();
    sender.batch_execute("NOTIFY events, 'one'").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.channel(), n.payload()), ("events", "one"));
    let q = tokio::time::timeout(Duration::from_secs(5), quitter_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.payload(), "one");
    // One client's UNLISTEN does not unsubscribe the others.
    quitter.batch_execute("UNLISTEN events").await.unwrap();
    sender
        .execute("SELECT pg_notify('events', $1)", &[&"two"])
        .await
        .unwrap();
    sender
        .batch_execute("NOTIFY \"Other\", 'three'")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "two");
    let q = tokio::time::timeout(Duration::from_secs(5), quitter_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q.channel(), q.payload()), ("Other", "three"));
    // Notifications sent inside a transaction arrive at commit.
    let tx_sender = sender;
    tx_sender
        .batch_execute("BEGIN; NOTIFY events, 'four'; COMMIT")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "four");
    // Nobody else heard anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.batch_execute("SELECT 1").await.unwrap();
    assert!(other_rx.try_recv().is_err());
    assert!(sender_rx.try_recv().is_err());
    assert!(quitter_rx.try_recv().is_err());
    drop((listener, other, tx_sender, quitter));
    server.stop().unwrap();
}
