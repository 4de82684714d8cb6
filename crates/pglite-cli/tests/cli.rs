//! The `pglite` binary end to end: real processes on real data directories.
//!
//! Expected table and CSV output was captured from `psql` (PostgreSQL 15 client, the
//! same text with `-X -c ...` against a native server) and must match byte for byte.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PGLITE: &str = env!("CARGO_BIN_EXE_pglite");

/// Run `pglite args...` with `stdin` (or none) and wait for it.
fn pglite(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(PGLITE)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pglite");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for pglite")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `pglite sql --temporary args... sql`, which must succeed; its stdout.
fn sql_ok(args: &[&str], sql: &str) -> String {
    let mut all = vec!["sql", "--temporary"];
    all.extend_from_slice(args);
    all.push(sql);
    let output = pglite(&all, None);
    assert!(
        output.status.success(),
        "pglite {all:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pglite-cli-test-")
        .tempdir()
        .expect("temporary directory")
}

#[test]
fn data_written_by_one_process_is_read_by_the_next() {
    let dir = tempdir();
    let data = dir.path().join("db");
    let data = data.to_str().expect("UTF-8 path");
    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "create table t (n int, s text); insert into t values (1, 'one'), (2, 'two, too')",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "CREATE TABLE\nINSERT 0 2\n");

    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "--format",
            "csv",
            "select n, s from t order by n; \
             select schemaname from pg_tables where tablename = 't'",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "n,s\n1,one\n2,\"two, too\"\nschemaname\npublic\n"
    );
}

/// The inode numbers of `dir` and of the entries directly in it.
fn inodes(dir: &Path) -> Vec<u64> {
    let mut inodes = vec![std::fs::metadata(dir).map(|m| m.ino()).unwrap_or(0)];
    if let Ok(entries) = std::fs::read_dir(dir) {
        inodes.extend(
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.ino()),
        );
    }
    inodes
}

/// Wait until process `pid` holds a lock (flock or POSIX) on `dir` or a file in it,
/// as /proc/locks shows.
fn wait_for_lock(pid: u32, dir: &Path, holder: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let locks = std::fs::read_to_string("/proc/locks").expect("/proc/locks");
        let inodes = inodes(dir);
        let held = locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE 1234 00:2a:56789 0 EOF"
            let pid_field = fields.iter().position(|f| *f == pid.to_string());
            pid_field.is_some_and(|i| {
                fields.get(i + 1).is_some_and(|device_inode| {
                    device_inode
                        .rsplit(':')
                        .next()
                        .and_then(|ino| ino.parse::<u64>().ok())
                        .is_some_and(|ino| inodes.contains(&ino))
                })
            })
        });
        if held {
            return;
        }
        if let Ok(Some(status)) = holder.try_wait() {
            panic!("the holder exited ({status}) before it opened the directory");
        }
        assert!(
            Instant::now() < deadline,
            "the holder did not lock {} in time",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_opener_gets_an_in_use_error() {
    let dir = tempdir();
    let data = dir.path().join("db");
    let output = pglite(&["init", data.to_str().expect("UTF-8 path")], None);
    assert!(output.status.success(), "{}", stderr(&output));

    // The holder opens the directory, then waits for SQL on a pipe we keep open.
    let mut holder = Command::new(PGLITE)
        .args(["sql", "--data"])
        .arg(&data)
        .args(["-t"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the holder");
    wait_for_lock(holder.id(), &data, &mut holder);

    let second = pglite(
        &["sql", "--data", data.to_str().expect("UTF-8"), "select 1"],
        None,
    );
    assert!(!second.status.success(), "a second opener succeeded");
    assert!(
        stderr(&second).contains("in use"),
        "no \"in use\" message: {}",
        stderr(&second)
    );
    assert!(stdout(&second).is_empty());

    // The holder still works and reads its SQL from standard input.
    let mut stdin = holder.stdin.take().expect("holder stdin");
    stdin
        .write_all(b"select 40 + 2 as answer;\n")
        .expect("write to the holder");
    drop(stdin);
    let output = holder.wait_with_output().expect("holder output");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "     42\n\n");

    // Released: the next opener gets in.
    let output = pglite(
        &[
            "sql",
            "--data",
            data.to_str().expect("UTF-8"),
            "-t",
            "select 1",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_syntax_error_exits_non_zero_with_its_sqlstate() {
    let output = pglite(&["sql", "--temporary", "SELEC 1"], None);
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert!(err.contains("42601"), "{err}");
    assert!(
        err.contains(
            "ERROR:  42601: syntax error at or near \"SELEC\"\nLINE 1: SELEC 1\n        ^"
        ),
        "{err}"
    );

    // The position points into the right line of a multi-line query.
    let output = pglite(
        &[
            "sql",
            "--temporary",
            "select 1;\nselect nosuch from pg_class",
        ],
        None,
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(
            "ERROR:  42703: column \"nosuch\" does not exist\n\
             LINE 2: select nosuch from pg_class\n               ^"
        ),
        "{err}"
    );
}

#[test]
fn table_output_matches_psql() {
    // Right-aligned numbers, centred headers, NULL as empty, no padding after the
    // last column.
    assert_eq!(
        sql_ok(&[], "select 1 as a, 'x' as bb, null as c, 1.5::numeric n"),
        " a | bb | c |  n  \n\
         ---+----+---+-----\n \
         1 | x  |   | 1.5\n\
         (1 row)\n\n"
    );
    // Several statements: command tags, and a table per query.
    assert_eq!(
        sql_ok(
            &[],
            "create table t(a int); insert into t values (1),(2); select * from t; \
             update t set a=a; drop table t"
        ),
        "CREATE TABLE\nINSERT 0 2\n a \n---\n 1\n 2\n(2 rows)\n\nUPDATE 2\nDROP TABLE\n"
    );
    // DML with RETURNING prints its rows and its tag.
    assert_eq!(
        sql_ok(
            &[],
            "create temp table t(a int); insert into t values (1) returning a"
        ),
        "CREATE TABLE\n a \n---\n 1\n(1 row)\n\nINSERT 0 1\n"
    );
    assert_eq!(
        sql_ok(&[], "select 1 where false"),
        " ?column? \n----------\n(0 rows)\n\n"
    );
    assert_eq!(
        sql_ok(&[], "select 'ab' as x, null::int as n"),
        " x  | n \n----+---\n ab |  \n(1 row)\n\n"
    );
    // Multi-line values and headers, wide characters.
    assert_eq!(
        sql_ok(
            &[],
            "select 'x' as longname, 12345 as n, 'é日本' as u, E'a\\nbcd\\ne' as ml, 'z' as last"
        ),
        concat!(
            " longname |   n   |   u   | ml  | last \n",
            "----------+-------+-------+-----+------\n",
            " x        | 12345 | é日本 | a  +| z\n",
            "          |       |       | bcd+| \n",
            "          |       |       | e   | \n",
            "(1 row)\n\n",
        )
    );
    assert_eq!(
        sql_ok(
            &[],
            "select E'a\\nbcd' as \"x\nyy\", 1 as n, E'q\\nrrrr' as last"
        ),
        concat!(
            "  x +| n | last \n",
            " yy  |   |      \n",
            "-----+---+------\n",
            " a  +| 1 | q   +\n",
            " bcd |   | rrrr\n",
            "(1 row)\n\n",
        )
    );
    assert_eq!(
        sql_ok(
            &[],
            "select '😀' as emo, '日本語' as j, E'a\\x01' as c, 1 as z, E'\\tx\\tyy' as t"
        ),
        concat!(
            " emo |   j    |   c   | z |         t          \n",
            "-----+--------+-------+---+--------------------\n",
            " 😀  | 日本語 | a\\x01 | 1 |         x       yy\n",
            "(1 row)\n\n",
        )
    );
}

#[test]
fn tuples_only_and_quiet() {
    // Widths still count the (unprinted) headers; a blank line ends each table.
    assert_eq!(
        sql_ok(&["-t"], "select 1 as longname, 'x' as bb"),
        "        1 | x\n\n"
    );
    assert_eq!(sql_ok(&["-t"], "select 1 where false"), "\n");
    // Like psql -t, command tags stay; -q drops them.
    assert_eq!(
        sql_ok(
            &["-t"],
            "create table t(a int); insert into t values (1),(2); select * from t; drop table t"
        ),
        "CREATE TABLE\nINSERT 0 2\n 1\n 2\n\nDROP TABLE\n"
    );
    assert_eq!(
        sql_ok(
            &["-t", "-q"],
            "create table t(a int); insert into t values (1),(2); select * from t; drop table t"
        ),
        " 1\n 2\n\n"
    );
}

#[test]
fn csv_output_matches_psql() {
    assert_eq!(
        sql_ok(
            &["--format", "csv"],
            "select 1 as a, 'x,y' as b, '' as c, null as d, E'l\\nm' as e, 'q\"' as f, \
             ' s' as g, '\\.' as h"
        ),
        "a,b,c,d,e,f,g,h\n1,\"x,y\",,,\"l\nm\",\"q\"\"\", s,\"\\.\"\n"
    );
    assert_eq!(sql_ok(&["--format", "csv", "-t"], "select 1 as a"), "1\n");
    assert_eq!(
        sql_ok(
            &["--format", "csv"],
            "create table t(a int); insert into t values(1); select * from t; drop table t"
        ),
        "CREATE TABLE\nINSERT 0 1\na\n1\nDROP TABLE\n"
    );
    assert_eq!(
        sql_ok(
            &["--format", "csv", "-q"],
            "create table t(a int); insert into t values(1); select * from t"
        ),
        "a\n1\n"
    );
}

#[test]
fn json_output_is_typed() {
    let out = sql_ok(
        &["--format", "json"],
        "create table t (a int); \
         select 1 as i, 9007199254740993::int8 as big, 2.5::float8 as f, \
         'NaN'::float8 as nan, 1.10::numeric as num, true as b, null::text as n, \
         'x' as s, '{\"k\": [1, null]}'::jsonb as j, array[1, null, 3] as ia, \
         array[['a', 'b c'], ['\"q\"', null]] as ta, '2024-01-02'::date as d; \
         select 1 as a where false",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        r#"[{"i":1,"big":9007199254740993,"f":2.5,"nan":"NaN","num":"1.10","b":true,"n":null,"s":"x","j":{"k":[1,null]},"ia":[1,null,3],"ta":[["a","b c"],["\"q\"",null]],"d":"2024-01-02"}]"#
    );
    assert_eq!(lines[1], "[]");
    let parsed: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(parsed[0]["big"], serde_json::json!(9007199254740993i64));
}

#[test]
fn sql_from_stdin_and_files() {
    let output = pglite(&["sql", "--temporary", "-t"], Some("select 1"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "        1\n\n");

    let dir = tempdir();
    let file = dir.path().join("script.sql");
    std::fs::write(
        &file,
        "create table t (n int);\ninsert into t select generate_series(1, 3);\n",
    )
    .expect("write the script");
    let file = file.to_str().expect("UTF-8");
    // Arguments run first, then files, then `-` (standard input), in order.
    let output = pglite(
        &[
            "sql",
            "--temporary",
            "-q",
            "--format",
            "csv",
            "-f",
            file,
            "-f",
            "-",
        ],
        Some("select sum(n) as total from t"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "total\n6\n");

    // A missing file fails before anything runs.
    let output = pglite(&["sql", "--temporary", "-f", "/nonexistent/x.sql"], None);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("/nonexistent/x.sql"));

    // Notices go to stderr, not into the results.
    let output = pglite(
        &["sql", "--temporary", "drop table if exists nothere"],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "DROP TABLE\n");
    assert!(
        stderr(&output).contains("NOTICE:  table \"nothere\" does not exist, skipping"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn init_then_sql() {
    let dir = tempdir();
    let data = dir.path().join("cluster");
    let data = data.to_str().expect("UTF-8");
    let output = pglite(&["init", data], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("ready"), "{}", stdout(&output));
    assert!(Path::new(data).join("PG_VERSION").is_file());
    // Again: a no-op on an existing cluster.
    let output = pglite(&["init", data], None);
    assert!(output.status.success(), "{}", stderr(&output));

    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "-t",
            "-q",
            "show search_path; show fsync; select current_database()",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        " \"$user\", public\n\n on\n\n postgres\n\n"
    );
}

#[test]
fn an_error_after_earlier_statements_keeps_nothing() {
    // One query = one implicit transaction: the failed run leaves no table behind.
    let dir = tempdir();
    let data = dir.path().join("db");
    let data = data.to_str().expect("UTF-8");
    let output = pglite(
        &["sql", "--data", data, "create table t (n int); select 1/0"],
        None,
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("22012"), "{}", stderr(&output));
    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "-t",
            "-q",
            "select count(*) from pg_tables where tablename = 't'",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "     0\n\n");
}

#[test]
fn copy_streams_data_through_stdin_and_stdout() {
    let dir = tempdir();
    let data = dir.path().join("db");
    let data = data.to_str().expect("UTF-8");
    let output = pglite(
        &["sql", "--data", data, "create table ct (a int, b text)"],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "copy ct from stdin with (format csv)",
        ],
        Some("1,x\n2,\"y,z\"\n"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "COPY 2\n");
    // Like psql: only the data, no command tag.
    let output = pglite(
        &[
            "sql",
            "--data",
            data,
            "COPY ct TO STDOUT WITH (FORMAT csv, HEADER);",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a,b\n1,x\n2,\"y,z\"\n");
}
