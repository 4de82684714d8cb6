use std::io::{self, Read};

use pglite_client::{ErrorKind, TransactionStatus};

#[test]
fn copy_round_trip_10000_rows() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE cp (id int, name text, score float8)")
        .unwrap();
    let mut data = String::new();
    for i in 0..10_000 {
        data.push_str(&format!("{i}\tname {i}\t{}\n", i as f64 / 4.0));
    }
    let n = client
        .copy_in("COPY cp FROM STDIN", data.as_bytes())
        .unwrap();
    assert_eq!(n, 10_000);
    let sum: i64 = client
        .query_one("SELECT sum(id)::int8 FROM cp", &[])
        .unwrap()
        .get(0);
    assert_eq!(sum, (0..10_000i64).sum::<i64>());

    let mut out = Vec::new();
    let n = client
        .copy_out("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT", &mut out)
        .unwrap();
    assert_eq!(n, 10_000);
    assert_eq!(String::from_utf8(out).unwrap(), data);

    // CSV too.
    let mut csv = Vec::new();
    client
        .copy_out("COPY (SELECT id, name FROM cp WHERE id < 2 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)", &mut csv)
        .unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "id,name\n0,name 0\n1,name 1\n"
    );
    let n = client
        .copy_in(
            "COPY cp (id, name) FROM STDIN (FORMAT csv)",
            &b"20000,\"a,b\"\n20001,c\n"[..],
        )
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn copy_errors_leave_the_connection_usable() {
    let mut client = crate::connect();
    client
        .batch_execute("CREATE TEMP TABLE cpe (id int)")
        .unwrap();
    // Bad data: the server's error is returned.
    let err = client
        .copy_in("COPY cpe FROM STDIN", &b"1\nnot a number\n3\n"[..])
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    assert_eq!(client.transaction_status(), TransactionStatus::Idle);
    // Bad SQL.
    let err = client
        .copy_in("COPY nope FROM STDIN", &b"1\n"[..])
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    let err = client
        .copy_out("COPY nope TO STDOUT", Vec::new())
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    // Not a COPY at all.
    let err = client.copy_in("SELECT 1", &b"1\n"[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    // A failing reader aborts the COPY.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            buf[..2].copy_from_slice(b"7\n");
            Ok(2)
        }
    }
    let err = client
        .copy_in("COPY cpe FROM STDIN", Failing(3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(client.execute("SELECT * FROM cpe", &[]).unwrap(), 0);
    // Inside a transaction.
    let mut tx = client.transaction().unwrap();
    assert_eq!(
        tx.copy_in("COPY cpe FROM STDIN", &b"1\n2\n"[..]).unwrap(),
        2
    );
    tx.commit().unwrap();
    assert_eq!(client.execute("SELECT * FROM cpe", &[]).unwrap(), 2);
}
