//! `tracing` spans: connect, simple query, prepare, execute, pipeline, copy and
//! transaction, with the statement text truncated and parameter values never recorded.
//! A small recording subscriber, installed per test thread.

mod support;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pglite_client::{RetryPolicy, Type};
use support::server;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span as recorded: its name and `field=value` pairs.
#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    fields: Vec<(String, String)>,
}

impl SpanRecord {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    events: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(SpanRecord {
            name: span.metadata().name(),
            fields,
        });
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = span.into_u64() as usize - 1;
        if let Some(record) = spans.get_mut(index) {
            values.record(&mut Fields(&mut record.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(format!("{fields:?}"));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const SECRET: &str = "s3cret-parameter-value";

#[test]
fn spans_name_the_operation_and_truncate_sql_without_parameters() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let mut client = server().connect();
        client
            .batch_execute("CREATE TEMP TABLE tr (v text)")
            .unwrap();
        client
            .execute("INSERT INTO tr VALUES ($1)", &[&SECRET])
            .unwrap();
        let long = format!("SELECT 1 /* {} */", "é".repeat(500));
        client.query(&long, &[]).unwrap();
        for row in client
            .query_raw("SELECT v FROM tr WHERE v = $1", &[&SECRET])
            .unwrap()
        {
            row.unwrap();
        }
        let mut batch = client.pipeline();
        batch.add("SELECT $1::text", &[&SECRET]).unwrap();
        batch.add("SELECT 2", &[]).unwrap();
        batch.run().unwrap();
        let mut writer = client
            .copy_in_binary("COPY tr FROM STDIN (FORMAT binary)", &[Type::TEXT])
            .unwrap();
        writer.write(&[&SECRET]).unwrap();
        writer.finish().unwrap();
        client
            .copy_in("COPY tr FROM STDIN", SECRET.as_bytes())
            .unwrap();
        client
            .with_transaction(&RetryPolicy::default(), |tx| tx.execute("SELECT 1", &[]))
            .unwrap();
    });
    let spans = recorder.spans.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name).collect();
    for name in [
        "connect",
        "simple_query",
        "prepare",
        "execute",
        "pipeline",
        "copy",
        "transaction",
    ] {
        assert!(names.contains(&name), "no {name} span in {names:?}");
    }
    let connect = spans.iter().find(|s| s.name == "connect").unwrap();
    assert_eq!(connect.field("user"), Some("postgres"));
    let insert = spans
        .iter()
        .find(|s| s.name == "execute" && s.field("sql") == Some("INSERT INTO tr VALUES ($1)"))
        .expect("execute span of the INSERT");
    assert_eq!(insert.field("params"), Some("1"));
    let pipeline = spans.iter().find(|s| s.name == "pipeline").unwrap();
    assert_eq!(pipeline.field("statements"), Some("2"));
    let copies: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "copy")
        .map(|s| s.field("direction").unwrap_or("").to_owned())
        .collect();
    assert_eq!(copies, ["in", "in"]);

    // Long statement text is cut (at a character boundary) to 200 bytes.
    let long = spans
        .iter()
        .find(|s| {
            s.name == "execute" && s.field("sql").is_some_and(|q| q.starts_with("SELECT 1 /*"))
        })
        .unwrap();
    let sql = long.field("sql").unwrap();
    assert!(sql.len() <= 200 && sql.len() >= 190, "{} bytes", sql.len());

    // Parameter values appear nowhere.
    let everything = format!("{spans:?} {:?}", recorder.events.lock().unwrap());
    assert!(
        !everything.contains(SECRET),
        "a parameter value was recorded"
    );
}
