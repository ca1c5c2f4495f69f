//! End-to-end: `s3actions replay` over fixtures, files checked row by row.

mod common;

use common::*;
use serde_json::Value as J;

#[test]
fn golden_files_are_byte_identical() {
    let r = replay(
        "tests/golden/edge-cases.yaml",
        &["tests/golden/edge-cases.ndjson"],
        &["--quiet"],
    );
    assert_ok(&r.output);
    let got = &r.files;
    let want = files(&root().join("tests/golden/expected"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert_eq!(
            String::from_utf8_lossy(&got[k]),
            String::from_utf8_lossy(v),
            "{k}"
        );
    }
}

#[test]
fn bundled_events_mapping_writes_every_row() {
    let r = replay("mappings/events.yaml", &["fixtures/events.ndjson"], &[]);
    assert_ok(&r.output);
    let summary = r.summary();

    // Independently count what the trigger should take.
    let text = std::fs::read_to_string(root().join("fixtures/events.ndjson")).unwrap();
    let events: Vec<J> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let wanted: Vec<&J> = events
        .iter()
        .filter(|e| e["type"] == "track" || e["type"] == "identify")
        .collect();
    assert_eq!(summary["events_read"], events.len());
    assert_eq!(summary["matched"], wanted.len());
    assert_eq!(summary["not_matched"], events.len() - wanted.len());
    assert_eq!(summary["rejected"], 0);

    let written = &r.files;
    let mut rows_by_id = std::collections::HashMap::new();
    for (key, content) in written {
        let event_type = key.split('/').nth(1).unwrap();
        assert!(
            key.starts_with(&format!("exports/{event_type}/segment_")) && key.ends_with(".csv"),
            "{key}"
        );
        let (header, rows) = read_csv(content, b',');
        assert_eq!(header.len(), 16);
        assert_eq!(header[0], "event_name");
        assert_eq!(header[15], "batch_size");
        for row in rows {
            assert_eq!(
                row[1], event_type,
                "all rows of a file share the event type"
            );
            assert_eq!(row[15], written_rows(content).to_string());
            rows_by_id.insert(row[9].clone(), row);
        }
    }
    assert_eq!(rows_by_id.len(), wanted.len());
    for e in wanted {
        let row = &rows_by_id[e["messageId"].as_str().unwrap()];
        assert_eq!(row[0], e["event"].as_str().unwrap_or(""));
        assert_eq!(row[2], e["userId"].as_str().unwrap_or(""));
        let email = e["traits"]["email"]
            .as_str()
            .or(e["context"]["traits"]["email"].as_str())
            .unwrap_or("");
        assert_eq!(row[4], email);
        if let Some(p) = e.get("properties") {
            assert_eq!(
                numbers_as_f64(serde_json::from_str::<J>(&row[5]).unwrap()),
                numbers_as_f64(p.clone())
            );
        }
        match e.get("context") {
            Some(c) => assert_eq!(
                numbers_as_f64(serde_json::from_str::<J>(&row[7]).unwrap()),
                numbers_as_f64(c.clone())
            ),
            None => assert_eq!(row[7], ""),
        }
        assert_eq!(
            row[11],
            e["context"]["personas"]["computation_key"]
                .as_str()
                .unwrap_or("")
        );
    }
}

/// JSON numbers compared by value (the files print 5.0 as 5, as JavaScript does).
fn numbers_as_f64(v: J) -> J {
    match v {
        J::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        J::Array(a) => J::Array(a.into_iter().map(numbers_as_f64).collect()),
        J::Object(m) => J::Object(m.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect()),
        other => other,
    }
}

fn written_rows(content: &[u8]) -> usize {
    read_csv(content, b',').1.len()
}

#[test]
fn batches_split_by_row_count_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    batch_size: 40\n    filename_template: \"{{event_type}}-{{part}}-{{rows}}.csv\"\n",
    );
    let r = replay(&mapping, &["fixtures/events.ndjson"], &["-q"]);
    assert_ok(&r.output);
    let written = &r.files;
    let names: Vec<&str> = written.keys().map(String::as_str).collect();
    // 193 track rows: 4 full files of 40 and one of 33; 57 identify rows: 40 + 17.
    assert_eq!(
        names,
        vec![
            "identify-1-40.csv",
            "identify-2-17.csv",
            "track-1-40.csv",
            "track-2-40.csv",
            "track-3-40.csv",
            "track-4-40.csv",
            "track-5-33.csv"
        ]
    );
    for (k, content) in written {
        let rows: usize = k
            .trim_end_matches(".csv")
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (_, parsed) = read_csv(content, b',');
        assert_eq!(parsed.len(), rows);
        assert!(parsed.iter().all(|r| r[15] == rows.to_string()), "{k}");
        assert!(
            !content.ends_with(b"\n"),
            "the last row has no trailing newline"
        );
    }
}

#[test]
fn rejects_are_reported_and_counted() {
    let r = replay("mappings/events.yaml", &["fixtures/bad-input.ndjson"], &[]);
    // Rejected input makes the run fail.
    assert_exit(&r.output, 1);
    let summary = r.summary();
    assert_eq!(summary["events_read"], 8);
    assert_eq!(summary["rejected"], 5);
    assert_eq!(summary["matched"], 2);
    assert_eq!(summary["not_matched"], 1);
    let rejects = r.text_file("_rejected.ndjson");
    let lines: Vec<J> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3, 4, 6, 7]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["input"] == "fixtures/bad-input.ndjson")
    );
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON at column 1")
    );
    assert!(
        lines[1]["reason"]
            .as_str()
            .unwrap()
            .contains("not a JSON object")
    );
    assert!(lines[2]["reason"].as_str().unwrap().contains("incomplete"));
    assert_eq!(lines[1]["event"], serde_json::json!([1, 2, 3]));
}

#[test]
fn input_layouts_gzip_stdin_and_several_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let events = [
        r#"{"type":"track","event":"A","messageId":"1"}"#,
        r#"{"type":"track","event":"B","messageId":"2"}"#,
        r#"{"type":"identify","userId":"c","messageId":"3"}"#,
    ];
    let array = write(
        dir.path(),
        "a.json",
        &format!("[\n  {},\n  {}\n]\n", events[0], events[1]),
    );
    let single = write(
        dir.path(),
        "one.json",
        "{\n  \"type\": \"identify\",\n  \"userId\": \"c\",\n  \"messageId\": \"3\"\n}\n",
    );
    let gz_path = dir.path().join("b.ndjson.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz_path).unwrap(),
            flate2::Compression::default(),
        );
        std::io::Write::write_all(
            &mut enc,
            format!("{}\n{}\n", events[0], events[2]).as_bytes(),
        )
        .unwrap();
        enc.finish().unwrap();
    }
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    columns:\n      id: {'@path': '$.messageId'}\n    batch_size_column_name: ''\n    audience_action_column_name: ''\n    filename_template: '{{event_type}}.csv'\n",
    );
    let r = replay_stdin(
        &mapping,
        &[&array, gz_path.to_str().unwrap(), "-", &single],
        &[],
        format!("{}\n", events[1]).as_bytes(),
    );
    assert_ok(&r.output);
    let written = &r.files;
    assert_eq!(
        String::from_utf8_lossy(&written["track.csv"]),
        "id\n\"1\"\n\"2\"\n\"1\"\n\"2\""
    );
    assert_eq!(
        String::from_utf8_lossy(&written["identify.csv"]),
        "id\n\"3\"\n\"3\""
    );
}

#[test]
fn mapping_filter_and_disabled_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: tracks\n    trigger: 'type = \"track\"'\n    filename_template: 'tracks.csv'\n  - name: ids\n    trigger: 'type = \"identify\"'\n    filename_template: 'ids.csv'\n  - name: off\n    enabled: false\n    filename_template: 'off.csv'\n",
    );
    let all = replay(&mapping, &["fixtures/events.ndjson"], &["-q"]);
    assert_ok(&all.output);
    assert_eq!(
        all.files.keys().cloned().collect::<Vec<_>>(),
        vec!["ids.csv", "tracks.csv"]
    );
    let ids = replay(
        &mapping,
        &["fixtures/events.ndjson"],
        &["--mapping", "ids", "-q"],
    );
    assert_ok(&ids.output);
    assert_eq!(
        ids.files.keys().cloned().collect::<Vec<_>>(),
        vec!["ids.csv"]
    );
    let nope = replay_into(
        ids.out(),
        &mapping,
        &["fixtures/events.ndjson"],
        &["--mapping", "nope"],
    );
    let o = &nope.output;
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(o).contains("no mapping named \"nope\""),
        "{}",
        stderr(o)
    );
}

#[test]
fn existing_files_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    filename_template: 'fixed.csv'\n",
    );
    let input = ["tests/golden/edge-cases.ndjson"];
    let first = replay(&mapping, &input, &["-q"]);
    assert_ok(&first.output);
    let second = replay_into(first.out(), &mapping, &input, &["-q"]);
    assert_ok(&second.output);
    let names: Vec<String> = second.files.keys().cloned().collect();
    assert_eq!(
        names,
        vec!["fixed-1.csv", "fixed-2.csv", "fixed-3.csv", "fixed.csv"]
    );
}

#[test]
fn delimiters_tab_and_txt() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    delimiter: tab\n    file_extension: txt\n    filename_prefix: feed\n    columns:\n      \"a|b\": {'@path': '$.event'}\n      note: {'@path': '$.properties.note'}\n",
    );
    let r = replay(&mapping, &["tests/golden/edge-cases.ndjson"], &["-q"]);
    assert_ok(&r.output);
    let written = &r.files;
    assert_eq!(written.len(), 2);
    for (k, content) in written {
        assert!(k.starts_with("feed_") && k.ends_with(".txt"), "{k}");
        let (header, rows) = read_csv(content, b'\t');
        assert_eq!(header, vec!["a|b", "note", "audience_action", "batch_size"]);
        for r in rows {
            assert_eq!(r.len(), 4);
        }
    }
    let track = written
        .values()
        .find(|c| c.windows(5).any(|w| w == b"Order"))
        .unwrap();
    let (_, rows) = read_csv(track, b'\t');
    assert_eq!(rows[0][1], "comma, \"quote\" and\nnewline");
}

#[test]
fn validate_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "bad.yaml",
        "mappings:\n  - name: m\n    trigger: 'type = '\n    columns:\n      email: {'@if': {then: 1}}\n    delimiter: ';;'\n",
    );
    let o = run(&["validate", &mapping]);
    assert_exit(&o, 2);
    let err = output_text(&o);
    assert!(
        err.contains("bad.yaml:3:14: mappings[0].trigger: 1:8: expected a value after '='"),
        "{err}"
    );
    assert!(
        err.contains("mappings[0].columns.email.@if: needs an \"exists\""),
        "{err}"
    );
    assert!(err.contains("mappings[0].delimiter"), "{err}");
    let o = run(&["validate", "mappings/events.yaml"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("valid (1 mapping"));
}

#[test]
fn no_temporary_files_are_left_behind() {
    let r = replay("mappings/events.yaml", &["fixtures/events.ndjson"], &["-q"]);
    assert_ok(&r.output);
    assert!(!r.out().join(".s3actions-tmp").exists());
    assert!(r.files.keys().all(|k| !k.contains(".batch-")));
}

/// Live input on stdin: events are written while the producer is still running, once a
/// batch is `batch_max_age_seconds` old, without waiting for more input or a full batch.
#[test]
fn live_stdin_batches_close_on_age() {
    use std::io::Write as _;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: live\n    batch_max_age_seconds: 1\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let out = dir.path().join("out");
    let mut child = bin()
        .args([
            "replay",
            &mapping,
            "-",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let event = |i: u32| format!("{{\"type\":\"track\",\"event\":\"E\",\"messageId\":\"m{i}\"}}\n");
    for i in 1..=3 {
        stdin.write_all(event(i).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    // The producer keeps stdin open; the first file must still appear.
    let first = wait_for(
        Duration::from_secs(20),
        "no file written while stdin stayed open",
        || Some(csv_tables(&out)).filter(|t| !t.is_empty()),
    );
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0],
        vec![
            vec!["m1", "", "3"],
            vec!["m2", "", "3"],
            vec!["m3", "", "3"],
        ]
    );
    stdin.write_all(event(4).as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    let rows = csv_tables(&out);
    assert_eq!(rows.len(), 2);
    assert!(rows.contains(&vec![vec![
        "m4".to_string(),
        String::new(),
        "1".to_string()
    ]]));
}

/// A folder too long for an S3 key is one event's problem: it is rejected with the reason,
/// and the run writes every other row.
#[test]
fn events_whose_folder_is_too_long_are_rejected_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    s3_aws_folder_name: \"by-event/{{event}}/\"\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let long = "x".repeat(2000);
    let input = write(
        dir.path(),
        "e.ndjson",
        &format!(
            "{{\"type\":\"track\",\"event\":\"A\",\"messageId\":\"1\"}}\n{{\"type\":\"track\",\"event\":\"{long}\",\"messageId\":\"2\"}}\n{{\"type\":\"track\",\"event\":\"A\",\"messageId\":\"3\"}}\n"
        ),
    );
    let r = replay(&mapping, &[&input], &[]);
    assert_exit(&r.output, 1);
    let written = &r.files;
    let csvs: Vec<_> = written
        .iter()
        .filter(|(k, _)| k.ends_with(".csv"))
        .collect();
    assert_eq!(csvs.len(), 1, "{:?}", written.keys());
    let (key, csv) = csvs[0];
    assert!(key.starts_with("by-event/A/"), "{key}");
    assert_eq!(read_csv(csv, b',').1.len(), 2);
    let rejects = r.text_file("_rejected.ndjson");
    let entry: J = serde_json::from_str(rejects.lines().next().unwrap()).unwrap();
    assert_eq!(entry["line"], 2);
    assert_eq!(entry["mapping"], "m");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("s3_aws_folder_name renders to"),
        "{entry}"
    );
    assert_eq!(r.summary()["events_read"], 3);
}

/// A file name template that cannot name a batch (here: an event field too long for a key)
/// falls back to Segment's naming: the rows are never lost to a name.
#[test]
fn a_failing_filename_template_falls_back_to_segment_naming() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    filename_prefix: exp\n    filename_template: \"{{event}}.{{extension}}\"\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let long = "y".repeat(1500);
    let input = write(
        dir.path(),
        "e.ndjson",
        &format!("{{\"type\":\"track\",\"event\":\"{long}\",\"messageId\":\"1\"}}\n"),
    );
    let r = replay(&mapping, &[&input], &[]);
    let o = &r.output;
    assert_ok(o);
    assert!(
        stderr(o).contains("filename_template failed"),
        "{}",
        stderr(o)
    );
    let written = &r.files;
    let csvs: Vec<_> = written.keys().filter(|k| k.ends_with(".csv")).collect();
    assert_eq!(csvs.len(), 1);
    assert!(
        csvs[0].starts_with("exp_") && csvs[0].len() < 40,
        "{csvs:?}"
    );
}

/// The helpers above must let a failing run fail its test.
#[test]
#[should_panic(expected = "exit status")]
fn assert_ok_fails_on_a_failed_run() {
    let r = replay(
        "tests/no-such-mapping.yaml",
        &["fixtures/events.ndjson"],
        &[],
    );
    assert_ok(&r.output);
}

/// `batch_interval: 1h`: files are cut at UTC hour boundaries of `receivedAt` (else
/// `timestamp`), a file holds one hour's rows, the batch's time variables are the hour's
/// start, and so two replays of the same
/// events, whenever they run, write the same files under the same names.
#[test]
fn batch_interval_cuts_files_at_utc_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    batch_interval: 1h\n    batch_size: 2\n    filename_template: \"{{date}}/{{hour}}-{{timestamp}}-{{part}}.csv\"\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let events = [
        ("a", r#""receivedAt":"2026-11-01T10:59:59.999Z""#),
        ("b", r#""receivedAt":"2026-11-01T11:00:00.000Z""#),
        ("c", r#""receivedAt":"2026-11-01T11:30:00+01:00""#), // 10:30 UTC: late, hour 10
        (
            "d",
            r#""receivedAt":"2026-11-01T11:59:00Z","timestamp":"2026-11-01T09:00:00Z""#,
        ),
        ("e", r#""timestamp":"2026-11-01T11:15:00Z""#),
        ("f", r#""receivedAt":"2026-11-01T11:45:00Z""#),
    ];
    let input: String = events
        .iter()
        .map(|(id, t)| format!("{{\"type\":\"track\",\"messageId\":\"{id}\",{t}}}\n"))
        .collect();
    let input = write(dir.path(), "in.ndjson", &input);
    let first = replay(&mapping, &[&input], &["-q"]);
    assert_ok(&first.output);
    let files: Vec<(String, Vec<String>)> = first
        .files
        .iter()
        .filter(|(k, _)| k.ends_with(".csv"))
        .map(|(k, v)| {
            let (_, rows) = read_csv(v, b',');
            (k.clone(), rows.into_iter().map(|r| r[0].clone()).collect())
        })
        .collect();
    // The late event (c) joins its hour's rows of the same chunk; hour 11 has four rows:
    // two files of two.
    let hour = |h: u64| format!("2026-11-01T{h}-00-00-000Z");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        files,
        vec![
            (
                format!("2026-11-01/10-{}-1.csv", hour(10)),
                ids(&["a", "c"])
            ),
            (
                format!("2026-11-01/11-{}-2.csv", hour(11)),
                ids(&["b", "d"])
            ),
            (
                format!("2026-11-01/11-{}-3.csv", hour(11)),
                ids(&["e", "f"])
            ),
        ]
    );
    let second = replay(&mapping, &[&input], &["-q"]);
    assert_ok(&second.output);
    assert_eq!(
        second.files, first.files,
        "a second replay wrote other files"
    );
}

/// A `batch_interval` that does not divide a day is refused with its location.
#[test]
fn batch_interval_must_divide_a_day() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["7m", "2d", "1x", "0s"] {
        let mapping = write(
            dir.path(),
            "m.yaml",
            &format!("mappings:\n  - name: m\n    batch_interval: {bad}\n"),
        );
        let o = run(&["validate", &mapping]);
        assert_exit(&o, 2);
        let text = output_text(&o);
        assert!(
            text.contains("m.yaml:3:") && text.contains("batch_interval"),
            "{bad}: {text}"
        );
    }
}

/// Output files (plain, compressed, manifests) are created the way any program creates a
/// file, mode 0666 less the umask: a loader running as another user can read them under
/// the usual umask 022, and `umask 077` keeps them private. Never tempfile's 0600.
#[cfg(unix)]
#[test]
fn output_files_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: plain\n    trigger: 'type = \"track\"'\n  - name: packed\n    trigger: 'type = \"identify\"'\n    compression: gzip\n    manifest: true\n",
    );
    for umask in [0o022, 0o077, 0o002] {
        let out = dir.path().join(format!("out-{umask:o}"));
        let mut cmd = bin();
        cmd.args(["replay", &mapping, "fixtures/events.ndjson", "--out"])
            .arg(&out);
        // SAFETY: only umask(2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(umask);
                Ok(())
            });
        }
        let o = cmd.output().unwrap();
        assert_ok(&o);
        let found = files(&out);
        assert!(found.keys().any(|k| k.ends_with(".csv")), "{found:?}");
        assert!(found.keys().any(|k| k.ends_with(".csv.gz")), "{found:?}");
        assert!(found.keys().any(|k| k.contains("manifest-")), "{found:?}");
        for key in found.keys() {
            let mode = std::fs::metadata(out.join(key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o666 & !umask, "{key} under umask {umask:o}");
        }
    }
}
