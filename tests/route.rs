//! One routing step: `preview` and `replay` agree on the same events (rows, reject
//! reasons, filename fallbacks), and file layers apply after a batch is sealed.

mod common;

use std::io::Read;

use common::*;

/// A folder per event (`{{properties.folder}}`) and a filename template that reads an event
/// field.
const MAPPING: &str = r#"
mappings:
  - name: m
    trigger: 'type = "track"'
    s3_aws_folder_name: 'f/{{properties.folder}}'
    filename_template: '{{properties.name}}.csv'
    columns:
      id: {'@path': '$.messageId'}
"#;

fn events() -> Vec<String> {
    let long = "x".repeat(800);
    let long_name = "n".repeat(1100);
    vec![
        // Plain row.
        r#"{"type":"track","messageId":"a","properties":{"folder":"ok","name":"good","n":1}}"#
            .into(),
        // Folder over 768 bytes: rejected alone, with the same reason in both.
        format!(
            r#"{{"type":"track","messageId":"b","properties":{{"folder":"{long}","name":"x"}}}}"#
        ),
        // A name too long for a key: Segment's naming instead, with a warning.
        format!(
            r#"{{"type":"track","messageId":"c","properties":{{"folder":"ok2","name":"{long_name}"}}}}"#
        ),
        // Not matched.
        r#"{"type":"identify","messageId":"d"}"#.into(),
    ]
}

fn preview(mapping: &str, event: &str, dir: &std::path::Path) -> serde_json::Value {
    let path = write(dir, "event.json", event);
    let o = run(&["preview", mapping, "--event", &path, "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

#[test]
fn preview_and_replay_agree() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", MAPPING);
    let events = events();
    let input = write(dir.path(), "events.ndjson", &(events.join("\n") + "\n"));
    let r = replay(&mapping, &[&input], &[]);
    // A rejected event makes the run exit 1.
    assert_exit(&r.output, 1);

    let rejects: Vec<serde_json::Value> = r
        .text_file("_rejected.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0]["line"], 2);

    // The folder-too-long event: preview reports the run's reject reason.
    let p = preview(&mapping, &events[1], dir.path());
    assert_eq!(p["matched"], true);
    assert_eq!(p["error"], rejects[0]["reason"], "{p}");
    assert!(p["row"].is_null() && p["key"].is_null(), "{p}");

    // The plain event: same key and same content as the run's file.
    let p = preview(&mapping, &events[0], dir.path());
    assert_eq!(p["error"], serde_json::Value::Null, "{p}");
    assert_eq!(p["key"], "f/ok/good.csv");
    let file = &r.files["f/ok/good.csv"];
    assert_eq!(p["file"].as_str().unwrap().as_bytes(), &file[..]);

    // The event whose name cannot be a key: the run fell back to Segment's naming, and
    // preview shows that name (timestamps aside) with the reason as a warning.
    let p = preview(&mapping, &events[2], dir.path());
    assert_eq!(p["error"], serde_json::Value::Null, "{p}");
    assert!(p["warning"].as_str().is_some_and(|w| !w.is_empty()), "{p}");
    let key = p["key"].as_str().unwrap();
    let written: Vec<&String> = r.files.keys().filter(|k| k.starts_with("f/ok2/")).collect();
    assert_eq!(written.len(), 1, "{:?}", r.files.keys());
    let shape = |k: &str| {
        k.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    // Segment's names end in a timestamp and an id: compare what is not digits or hex.
    assert!(key.starts_with("f/ok2/") && key.ends_with(".csv"), "{key}");
    assert_eq!(
        shape(key).len(),
        shape(written[0]).len(),
        "{key} vs {}",
        written[0]
    );
    assert_eq!(
        p["file"].as_str().unwrap().as_bytes(),
        &r.files[written[0]][..]
    );

    // Not matched: nothing else.
    let p = preview(&mapping, &events[3], dir.path());
    assert_eq!(p["matched"], false);
}

/// A column error: preview's `error` is the reject's reason, word for word.
#[test]
fn a_failing_column_gives_the_same_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    columns:\n      v: {'@path': {'@path': '$.properties.p'}}\n",
    );
    let event = r#"{"type":"track","properties":{"p":5}}"#;
    let input = write(dir.path(), "e.ndjson", &format!("{event}\n"));
    let r = replay(&mapping, &[&input], &[]);
    let reject: serde_json::Value =
        serde_json::from_str(r.text_file("_rejected.ndjson").lines().next().unwrap()).unwrap();
    let p = preview(&mapping, event, dir.path());
    assert_eq!(p["error"], reject["reason"], "{p} vs {reject}");
}

/// `compression: gzip`: the sealed file (batch-size column already fixed) is streamed
/// through gzip; the key gets `.gz`; a taken name gets its number before `.csv.gz`.
#[test]
fn gzip_files_hold_the_plain_files_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(
        dir.path(),
        "plain.yaml",
        "mappings:\n  - name: m\n    filename_template: 'x/{{event_type}}.csv'\n",
    );
    let gz = write(
        dir.path(),
        "gz.yaml",
        "mappings:\n  - name: m\n    filename_template: 'x/{{event_type}}.csv'\n    compression: gzip\n",
    );
    let a = replay(&plain, &["fixtures/events.ndjson"], &[]);
    assert_ok(&a.output);
    let out = dir.path().join("gz-out");
    let b = replay_into(&out, &gz, &["fixtures/events.ndjson"], &[]);
    assert_ok(&b.output);
    for (key, content) in a.files.iter().filter(|(k, _)| k.ends_with(".csv")) {
        let packed = &b.files[&format!("{key}.gz")];
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert!(unpacked == *content, "{key}");
    }
    // Again into the same folder: the names are taken.
    let c = replay_into(&out, &gz, &["fixtures/events.ndjson"], &[]);
    assert_ok(&c.output);
    assert!(
        c.files.contains_key("x/track-1.csv.gz"),
        "{:?}",
        c.files.keys()
    );
    // A bad value is an error at load, with its location.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "mappings:\n  - name: m\n    compression: lz4\n",
    );
    let o = run(&["validate", &bad]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("mappings[0].compression") && stderr(&o).contains("\"gzip\""),
        "{}",
        stderr(&o)
    );
}
