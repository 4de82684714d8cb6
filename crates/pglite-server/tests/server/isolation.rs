//! What each connection keeps to itself: statement names, portals, settings.

use crate::support::{self, Raw, bind, execute, parse, rows, sync};

#[test]
fn same_statement_names_on_two_connections_stay_apart() {
    let server = support::start(|b| b);
    let mut a = Raw::connect(&server);
    let mut b = Raw::connect(&server);
    // Named statements with the same name and different SQL, interleaved.
    a.send(&[parse("stmt", "select 'from a'"), sync()].concat());
    assert_eq!(rows(&a.until_ready()).1, None);
    b.send(&[parse("stmt", "select 'from b'"), sync()].concat());
    assert_eq!(rows(&b.until_ready()).1, None);
    for _ in 0..3 {
        a.send(&[bind("", "stmt"), execute(""), sync()].concat());
        assert_eq!(rows(&a.until_ready()).0, ["from a"]);
        b.send(&[bind("", "stmt"), execute(""), sync()].concat());
        assert_eq!(rows(&b.until_ready()).0, ["from b"]);
    }
    // The unnamed statement survives another client's unnamed Parse.
    a.send(&[parse("", "select 'unnamed a'"), sync()].concat());
    a.until_ready();
    b.send(&[parse("", "select 'unnamed b'"), sync()].concat());
    b.until_ready();
    a.send(&[bind("", ""), execute(""), sync()].concat());
    assert_eq!(rows(&a.until_ready()).0, ["unnamed a"]);
    b.send(&[bind("", ""), execute(""), sync()].concat());
    assert_eq!(rows(&b.until_ready()).0, ["unnamed b"]);
    // A new unnamed Parse replaces the old one, as in PostgreSQL.
    a.send(
        &[
            parse("", "select 'second a'"),
            bind("", ""),
            execute(""),
            sync(),
        ]
        .concat(),
    );
    assert_eq!(rows(&a.until_ready()).0, ["second a"]);
    // A simple query destroys the unnamed statement.
    assert_eq!(a.query("select 1").0, ["1"]);
    a.send(&[bind("", ""), execute(""), sync()].concat());
    assert_eq!(rows(&a.until_ready()).1.as_deref(), Some("26000"));
    // Closing a statement on one connection leaves the other's alone.
    a.send(&[support::frame(b'C', b"Sstmt\0"), sync()].concat());
    a.until_ready();
    b.send(&[bind("", "stmt"), execute(""), sync()].concat());
    assert_eq!(rows(&b.until_ready()).0, ["from b"]);
    a.send(&[bind("", "stmt"), execute(""), sync()].concat());
    assert_eq!(rows(&a.until_ready()).1.as_deref(), Some("26000"));
    // Named portals with the same name inside two transactions, one after the other.
    a.send(&[parse("p", "select generate_series(1, 3)"), sync()].concat());
    a.until_ready();
    assert_eq!(a.query("begin").1, None);
    a.send(&[bind("cur", "p"), execute("cur"), sync()].concat());
    assert_eq!(rows(&a.until_ready()).0, ["1", "2", "3"]);
    assert_eq!(a.query("commit").1, None);
    // DEALLOCATE ALL frees this client's names at once (and only its names).
    a.send(&[parse("d1", "select 1"), sync()].concat());
    a.until_ready();
    assert_eq!(a.query("deallocate all").1, None);
    a.send(&[parse("d1", "select 2"), bind("", "d1"), execute(""), sync()].concat());
    assert_eq!(rows(&a.until_ready()).0, ["2"]);
    b.send(&[bind("", "stmt"), execute(""), sync()].concat());
    assert_eq!(rows(&b.until_ready()).0, ["from b"]);
    // A lone Flush does not pin the engine.
    a.send(&support::frame(b'H', &[]));
    assert_eq!(b.query("select 3").0, ["3"]);
    assert_eq!(a.query("select 4").0, ["4"]);
    drop(a);
    drop(b);
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_connections_reuse_statement_names_with_different_sql() {
    use sqlx::Connection;
    let server = support::start(|b| b);
    // Each SQLx connection names its first persistent statement `sqlx_s_1`.
    let mut a = sqlx::PgConnection::connect(server.url()).await.unwrap();
    let mut b = sqlx::PgConnection::connect(server.url()).await.unwrap();
    for i in 0..20i32 {
        let x: i32 = sqlx::query_scalar("SELECT $1::int + 1")
            .bind(i)
            .fetch_one(&mut a)
            .await
            .unwrap();
        assert_eq!(x, i + 1);
        let y: String = sqlx::query_scalar("SELECT $1::text || '!'")
            .bind(i.to_string())
            .fetch_one(&mut b)
            .await
            .unwrap();
        assert_eq!(y, format!("{i}!"));
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_statements_interleave() {
    let server = support::start(|b| b);
    let (a, _) = support::tokio_pg(server.url()).await;
    let (b, _) = support::tokio_pg(server.url()).await;
    let sa = a.prepare("SELECT $1::int * 2").await.unwrap();
    let sb = b.prepare("SELECT $1::text || 'b'").await.unwrap();
    for i in 0..20i32 {
        let text = i.to_string();
        let (pa, pb): (
            [&(dyn tokio_postgres::types::ToSql + Sync); 1],
            [&(dyn tokio_postgres::types::ToSql + Sync); 1],
        ) = ([&i], [&text]);
        let (ra, rb) = tokio::join!(a.query_one(&sa, &pa), b.query_one(&sb, &pb));
        assert_eq!(ra.unwrap().get::<_, i32>(0), i * 2);
        assert_eq!(rb.unwrap().get::<_, String>(0), format!("{i}b"));
        // Unnamed statements (query_typed) interleaved too.
        let ta_params: [(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        ); 1] = [(&i, tokio_postgres::types::Type::INT4)];
        let tb_params: [(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        ); 1] = [(&text, tokio_postgres::types::Type::TEXT)];
        let (ta, tb) = tokio::join!(
            a.query_typed("SELECT $1::int + 100", &ta_params),
            b.query_typed("SELECT 'x' || $1::text", &tb_params)
        );
        assert_eq!(ta.unwrap()[0].get::<_, i32>(0), i + 100);
        assert_eq!(tb.unwrap()[0].get::<_, String>(0), format!("x{i}"));
    }
    drop((a, b));
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_per_connection() {
    let server = support::start(|b| b);
    let url_app = format!("{}&application_name=first", server.url());
    let (a, _) = support::tokio_pg(&url_app).await;
    let (b, _) = support::tokio_pg(server.url()).await;
    a.batch_execute("SET search_path TO pg_catalog; SET work_mem TO '8MB'; SELECT set_config('myapp.tenant', 'acme', false)")
        .await
        .unwrap();
    async fn show(c: &tokio_postgres::Client, what: &str) -> Option<String> {
        c.query_one(&format!("SELECT current_setting('{what}', true)"), &[])
            .await
            .unwrap()
            .get::<_, Option<String>>(0)
    }
    for _ in 0..3 {
        assert_eq!(
            show(&b, "search_path").await.as_deref(),
            Some("\"$user\", public")
        );
        assert_eq!(show(&b, "work_mem").await.as_deref(), Some("4MB"));
        assert_ne!(show(&b, "myapp.tenant").await.as_deref(), Some("acme"));
        assert_eq!(show(&b, "application_name").await.as_deref(), Some(""));
        assert_eq!(show(&a, "search_path").await.as_deref(), Some("pg_catalog"));
        assert_eq!(show(&a, "work_mem").await.as_deref(), Some("8MB"));
        assert_eq!(show(&a, "myapp.tenant").await.as_deref(), Some("acme"));
        assert_eq!(show(&a, "application_name").await.as_deref(), Some("first"));
    }
    // RESET ALL returns to the connection's own start, not the runtime's odd defaults.
    a.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(
        show(&a, "search_path").await.as_deref(),
        Some("\"$user\", public")
    );
    assert_eq!(show(&a, "application_name").await.as_deref(), Some("first"));
    // DISCARD ALL keeps the other connection's statements.
    let stmt = b.prepare("SELECT 42").await.unwrap();
    a.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(b.query_one(&stmt, &[]).await.unwrap().get::<_, i32>(0), 42);
    assert_eq!(show(&a, "enable_seqscan").await.as_deref(), Some("on"));
    drop((a, b));
    server.stop().unwrap();
}
