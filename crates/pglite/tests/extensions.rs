//! The extensions linked into the runtime: pgvector, pg_trgm, hstore and friends.

mod common;

use common::{scalar, temp};

#[test]
fn vector_distance_query_orders_by_l2_distance() {
    let mut db = temp();
    db.batch_execute(
        "CREATE EXTENSION vector;
         CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));
         INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[1,1,1]'), (4, '[10,10,10]');",
    )
    .unwrap();
    let version: String = scalar(
        &mut db,
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
    );
    assert!(!version.is_empty());

    // The query vector goes in as a text parameter for the server to parse.
    let rows = db
        .query(
            "SELECT id, embedding <-> $1::vector AS dist FROM items ORDER BY embedding <-> $1::vector",
            &[&"[1,1,2]"],
        )
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get("id")).collect();
    assert_eq!(ids, [3, 1, 2, 4]);
    let dists: Vec<f64> = rows.iter().map(|r| r.get("dist")).collect();
    let expected = [1.0, 2f64.sqrt(), 41f64.sqrt(), 226f64.sqrt()];
    for (got, want) in dists.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "distance {got}, expected {want}");
    }

    // Values of the extension's type come back as text.
    let row = db
        .query_one("SELECT embedding FROM items WHERE id = $1", &[&2i32])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "[4,5,6]");

    // An HNSW index answers the same nearest-neighbour query.
    db.batch_execute(
        "CREATE INDEX items_embedding ON items USING hnsw (embedding vector_l2_ops);
         SET enable_seqscan = off;",
    )
    .unwrap();
    let plan: Vec<String> = db
        .query(
            "EXPLAIN SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|line| line.contains("items_embedding")),
        "the index is not used: {plan:#?}"
    );
    let nearest: Vec<i32> = db
        .query(
            "SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nearest, [3, 1]);
    db.batch_execute("RESET enable_seqscan").unwrap();

    // Cosine distance and inner product operators exist too.
    let cosine: f64 = scalar(&mut db, "SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector");
    assert!((cosine - 1.0).abs() < 1e-9);
    let inner: f64 = scalar(&mut db, "SELECT '[1,2,3]'::vector <#> '[4,5,6]'::vector");
    assert!((inner + 32.0).abs() < 1e-9);
}

#[test]
fn pg_trgm_similarity_and_index_search() {
    let mut db = temp();
    db.batch_execute("CREATE EXTENSION pg_trgm").unwrap();
    // "word" has 5 trigrams, "words" 6, 4 shared: 4 / 7.
    let sim: f32 = db
        .query_one("SELECT similarity($1, $2)", &[&"word", &"words"])
        .unwrap()
        .get(0);
    assert!((sim - 4.0 / 7.0).abs() < 1e-6, "similarity {sim}");
    let similar: bool = scalar(&mut db, "SELECT 'word' % 'words'");
    assert!(similar);
    let unrelated: f32 = scalar(&mut db, "SELECT similarity('abc', 'xyz')");
    assert_eq!(unrelated, 0.0);
    let trigrams: Vec<String> = scalar(&mut db, "SELECT show_trgm('cat')");
    assert_eq!(trigrams, ["  c", " ca", "at ", "cat"]);

    db.batch_execute(
        "CREATE TABLE words (w text);
         INSERT INTO words SELECT 'word' || n FROM generate_series(1, 2000) n;
         INSERT INTO words VALUES ('postgres'), ('postgresql'), ('pglite');
         CREATE INDEX words_trgm ON words USING gin (w gin_trgm_ops);
         ANALYZE words;",
    )
    .unwrap();
    let found: Vec<String> = db
        .query(
            "SELECT w FROM words WHERE w % $1 ORDER BY similarity(w, $1) DESC, w",
            &[&"postgre"],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, ["postgres", "postgresql"]);
    let like: i64 = scalar(
        &mut db,
        "SELECT count(*) FROM words WHERE w ILIKE '%ORD19%'",
    );
    assert_eq!(like, 111); // word19, word190..word199, word1900..word1999
}

#[test]
fn hstore_operators() {
    let mut db = temp();
    db.batch_execute(
        "CREATE EXTENSION hstore;
         CREATE TABLE kv (id int, attrs hstore);
         INSERT INTO kv VALUES (1, 'color => red, size => L'), (2, 'color => blue, weight => 3');",
    )
    .unwrap();
    let color: String = db
        .query_one("SELECT attrs -> $1 FROM kv WHERE id = 1", &[&"color"])
        .unwrap()
        .get(0);
    assert_eq!(color, "red");
    let missing: Option<String> = db
        .query_one("SELECT attrs -> 'weight' FROM kv WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(missing, None);
    // `?` (has key), `@>` (contains), `||` (concatenate), `-` (delete key).
    let with_weight: Vec<i32> = db
        .query("SELECT id FROM kv WHERE attrs ? 'weight' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(with_weight, [2]);
    let red: Vec<i32> = db
        .query("SELECT id FROM kv WHERE attrs @> 'color => red'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(red, [1]);
    let merged: String = scalar(
        &mut db,
        "SELECT (('a => 1'::hstore || 'b => 2'::hstore) - 'a'::text)::text",
    );
    assert_eq!(merged, "\"b\"=>\"2\"");
    let keys: Vec<String> = scalar(&mut db, "SELECT akeys(attrs) FROM kv WHERE id = 2");
    assert_eq!(keys, ["color", "weight"]);
    let json: serde_json::Value = scalar(
        &mut db,
        "SELECT hstore_to_jsonb(attrs) FROM kv WHERE id = 1",
    );
    assert_eq!(json, serde_json::json!({"color": "red", "size": "L"}));
    // hstore values come back as text and can be sent back as text parameters.
    let text: String = db
        .query_one("SELECT attrs FROM kv WHERE id = 1", &[])
        .unwrap()
        .get(0);
    let same: bool = db
        .query_one("SELECT attrs = $1::hstore FROM kv WHERE id = 1", &[&text])
        .unwrap()
        .get(0);
    assert!(same, "{text}");
}

#[test]
fn other_bundled_extensions_can_be_created() {
    let mut db = temp();
    for ext in [
        "citext",
        "ltree",
        "cube",
        "earthdistance",
        "btree_gin",
        "btree_gist",
        "unaccent",
        "fuzzystrmatch",
        "intarray",
        "tablefunc",
        "seg",
        "isn",
        "bloom",
        "tsm_system_rows",
    ] {
        db.batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS \"{ext}\" CASCADE"))
            .unwrap_or_else(|e| panic!("CREATE EXTENSION {ext}: {e}"));
    }
    let eq: bool = scalar(&mut db, "SELECT 'Hello'::citext = 'hELLO'::citext");
    assert!(eq);
    let under: bool = scalar(&mut db, "SELECT 'a.b.c'::ltree <@ 'a.b'::ltree");
    assert!(under);
    let plain: String = scalar(&mut db, "SELECT unaccent('Hôtel Crème')");
    assert_eq!(plain, "Hotel Creme");
    let lev: i32 = scalar(&mut db, "SELECT levenshtein('kitten', 'sitting')");
    assert_eq!(lev, 3);
    let sorted: Vec<i32> = scalar(&mut db, "SELECT sort('{3,1,2}'::int[])");
    assert_eq!(sorted, [1, 2, 3]);
    let digest: String = scalar(&mut db, "SELECT encode(sha256('abc'::bytea), 'hex')");
    assert_eq!(digest, common::sha256_hex(b"abc"));
}
