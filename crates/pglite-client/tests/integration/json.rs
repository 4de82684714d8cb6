use serde_json::json;

#[test]
fn row_to_json() {
    let mut client = crate::connect();
    client.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let row = client
        .query_one(
            "SELECT NULL::int AS n, true AS b, 42::int2 AS i2, 7::int4 AS i4, 9007199254740993::int8 AS i8,
                    1.5::float4 AS f4, 1.1::float4 AS f4b, 'NaN'::float8 AS nan, '-Infinity'::float8 AS ninf,
                    12345678901234567890.10::numeric AS num, 'txt'::text AS t, 'v'::varchar AS v,
                    '{\"a\": [1, null]}'::json AS j, '{\"b\": {\"c\": 2}}'::jsonb AS jb,
                    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,
                    '2024-03-04'::date AS d, '05:06:07.25'::time AS tm,
                    '2024-03-04 05:06:07.5'::timestamp AS ts, '2024-03-04 05:06:07+02'::timestamptz AS tstz,
                    '1 day 02:00:00'::interval AS iv, '\\x00ff'::bytea AS by,
                    ARRAY[1, NULL, 3] AS arr, ARRAY[['a','b'],['c','d']] AS arr2, '{}'::int4[] AS empty,
                    '10.0.0.1'::inet AS inet, 12.5::float8 AS f8",
            &[],
        )
        .unwrap();
    let expected = json!({
        "n": null, "b": true, "i2": 42, "i4": 7, "i8": 9007199254740993i64,
        "f4": 1.5, "f4b": 1.1, "nan": "NaN", "ninf": "-Infinity",
        "num": "12345678901234567890.10", "t": "txt", "v": "v",
        "j": {"a": [1, null]}, "jb": {"b": {"c": 2}},
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "d": "2024-03-04", "tm": "05:06:07.25",
        "ts": "2024-03-04T05:06:07.5", "tstz": "2024-03-04T03:06:07+00:00",
        "iv": "1 day 02:00:00", "by": "\\x00ff",
        "arr": [1, null, 3], "arr2": [["a", "b"], ["c", "d"]], "empty": [],
        "inet": "10.0.0.1", "f8": 12.5
    });
    assert_eq!(row.to_json(), expected);
    // Column order is kept.
    let keys: Vec<String> = row.to_json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys[0], "n");
    assert_eq!(row.get_json("arr"), Some(json!([1, null, 3])));
    assert_eq!(row.get_text("ts").as_deref(), Some("2024-03-04 05:06:07.5"));
    assert_eq!(
        row.get_text("tstz").as_deref(),
        Some("2024-03-04 03:06:07+00")
    );
    assert_eq!(row.get_text("by").as_deref(), Some("\\x00ff"));
    assert_eq!(row.get_text("arr2").as_deref(), Some("{{a,b},{c,d}}"));
}
