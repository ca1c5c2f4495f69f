//! Property tests of the typed formats: random events (every JSON type, integers beyond
//! 2^53, extreme doubles, dates at the ends of the range, any text) through an NDJSON and a
//! Parquet mapping. Whatever the values, the run ends normally, every event is written or
//! rejected with a reason, NDJSON rows keep the event's values with their JSON types, and
//! the Parquet file is readable and holds every row that was written.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "4",
            "-7",
            "1.5",
            "1e3",
            "true",
            "2026-11-01T07:30:00Z",
            "2026-11-01T07:30:00.123456+05:30",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "",
            "é😀\u{0}\n\"",
            "NaN",
            "9223372036854775808",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Equal as JavaScript sees them: numbers by their double value (Segment's pipeline is
/// JavaScript, so 2^53 + 1 is written as 2^53).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

const MAPPING: &str = r#"
mappings:
  - name: nd
    trigger: 'type = "track"'
    format: ndjson
    columns:
      id: { "@path": "$.messageId" }
      a: { "@path": "$.properties.a" }
      b: { "@path": "$.properties.b" }
  - name: pq
    trigger: 'type = "track"'
    format: parquet
    columns:
      id: { "@path": "$.messageId" }
      a: { "@path": "$.properties.a" }
      b: { "@path": "$.properties.b" }
      t: { "@path": "$.properties.t" }
      j: { "@path": "$.properties.j" }
    column_types: { a: int64, b: double, t: timestamp, j: json }
"#;

fn mapping_stats<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["mappings"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no mapping {name} in {summary}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn typed_formats_take_any_values(
        props in prop::collection::vec((value(), value(), value(), value()), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mapping = write(dir.path(), "m.yaml", MAPPING);
        let events: Vec<Value> = props
            .iter()
            .enumerate()
            .map(|(i, (a, b, t, j))| json!({
                "type": "track",
                "messageId": format!("m{i}"),
                "properties": {"a": a, "b": b, "t": t, "j": j}
            }))
            .collect();
        let input: String = events.iter().map(|e| format!("{e}\n")).collect();
        let input = write(dir.path(), "events.ndjson", &input);
        let r = replay(&mapping, &[&input], &[]);
        let code = r.output.status.code();
        prop_assert!(matches!(code, Some(0 | 1)), "{}", output_text(&r.output));
        let n = events.len() as u64;
        let summary = r.summary();
        let nd = mapping_stats(summary, "nd");
        let pq = mapping_stats(summary, "pq");
        prop_assert_eq!(nd["rows"].as_u64(), Some(n), "NDJSON writes any value");
        prop_assert_eq!(
            pq["rows"].as_u64().unwrap() + pq["failed"].as_u64().unwrap(),
            n,
            "every event written or rejected"
        );

        // NDJSON: the event's values, in column order, with their types.
        let (_, nd_file) = r.files.iter().find(|(k, _)| k.ends_with(".json")).expect("an NDJSON file");
        let lines: Vec<&str> = std::str::from_utf8(nd_file).unwrap().lines().collect();
        prop_assert_eq!(lines.len() as u64, n);
        for (line, (event, (a, b, _, _))) in lines.iter().zip(events.iter().zip(&props)) {
            let row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let keys: Vec<&str> = row.keys().map(String::as_str).take(3).collect();
            prop_assert_eq!(keys, ["id", "a", "b"]);
            prop_assert_eq!(&row["id"], &event["messageId"]);
            prop_assert!(same(&row["a"], a), "a: {} written as {}", a, row["a"]);
            prop_assert!(same(&row["b"], b), "b: {} written as {}", b, row["b"]);
        }

        // Parquet: readable, with every row written.
        let written = pq["rows"].as_u64().unwrap();
        let pq_file = r.files.iter().find(|(k, _)| k.ends_with(".parquet"));
        match pq_file {
            None => prop_assert_eq!(written, 0),
            Some((key, bytes)) => {
                use parquet::file::reader::{FileReader, SerializedFileReader};
                let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone()))
                    .unwrap_or_else(|e| panic!("{key} is not a Parquet file: {e}"));
                prop_assert_eq!(reader.metadata().file_metadata().num_rows() as u64, written);
            }
        }
    }
}
