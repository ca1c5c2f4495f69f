//! `s3actions import segment` / `export segment`: Segment's Public API bodies to a mapping
//! file and back. Imports of recorded bodies (files, stdin, a local HTTP server serving them
//! as the Public API would), and round trips of the bundled mappings that must write the
//! same files.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use common::*;
use serde_json::Value as J;

const DEST: &str = "tests/segment/destination.json";
const SUBS: &str = "tests/segment/subscriptions.json";
const EXTERNAL_ID: &str = "ext-id-NEVER-PRINT-7f3a9c";

fn import_files() -> std::process::Output {
    run(&[
        "import",
        "segment",
        "--destination",
        DEST,
        "--subscriptions",
        SUBS,
    ])
}

#[test]
fn import_converts_recorded_bodies_and_reports_what_it_leaves_out() {
    let o = import_files();
    assert_ok(&o);
    let yaml = stdout(&o);
    let err = stderr(&o);
    assert!(!yaml.contains(EXTERNAL_ID) && !err.contains(EXTERNAL_ID));
    assert!(
        yaml.contains("iam_external_id: ${S3ACTIONS_EXTERNAL_ID}"),
        "{yaml}"
    );
    assert!(
        yaml.starts_with("# yaml-language-server: $schema="),
        "{yaml}"
    );
    for expected in [
        // A subscription of another action.
        r#"subscriptions[3] "Some other action": is a subscription of action "sendToWebhook""#,
        // A value Segment's field would not take, and a field the action does not have.
        r#"subscriptions[1] "Everything".settings.delimiter: should be one of"#,
        r#"subscriptions[1] "Everything".settings.legacy_field: is not a field of Sync to S3"#,
        // Non-default batch keys; a duplicate name.
        r#"subscriptions[2] "Orders".settings.batch_keys"#,
        r#"subscriptions[2] "Orders": named "Orders-2""#,
    ] {
        assert!(err.contains(expected), "stderr lacks {expected:?}:\n{err}");
    }
    let node = s3actions::spanned::parse_yaml(&yaml).unwrap().to_json();
    assert_eq!(node["settings"]["s3_aws_bucket_name"], "acme-events");
    assert_eq!(node["settings"]["s3_aws_region"], "eu-west-1");
    let maps = node["mappings"].as_array().unwrap();
    assert_eq!(maps.len(), 3, "{yaml}");
    let orders = &maps[0];
    assert_eq!(orders["name"], "Orders");
    assert_eq!(
        orders["trigger"],
        r#"type = "track" and event = "Order Completed""#
    );
    assert_eq!(orders["delimiter"], "|");
    assert_eq!(orders["file_extension"], "txt");
    assert_eq!(orders["batch_size"], 2);
    assert_eq!(orders["audience_action_column_name"], "");
    assert_eq!(orders["batch_size_column_name"], "rows_in_file");
    assert_eq!(
        orders["columns_to_transform"][0]["hash_algorithm"],
        "sha256"
    );
    assert_eq!(
        orders["columns"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["order_id", "total", "user_id", "email", "label"]
    );
    // Defaults are left out: Segment stores them, a mapping file need not.
    assert!(orders.get("traits_or_props").is_none() && orders.get("computation_key").is_none());
    let everything = &maps[1];
    assert_eq!(everything["enabled"], false);
    assert!(
        everything.get("columns").is_none(),
        "Segment's default columns"
    );
    assert!(everything.get("delimiter").is_none());

    // The file validates and runs.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "imported.yaml", &yaml);
    assert_ok(&run(&["validate", &path]));
    let r = replay(&path, &["fixtures/events.ndjson"], &[]);
    assert_ok(&r.output);
    let orders_files: Vec<_> = r
        .files
        .keys()
        .filter(|k| k.starts_with("orders/"))
        .collect();
    assert!(!orders_files.is_empty(), "{:?}", r.files.keys());
    let first = r.text_file(orders_files[0]);
    assert!(
        first.starts_with("order_id|total|user_id|email|label|rows_in_file\n"),
        "{first}"
    );
    assert!(orders_files.iter().all(|k| k.ends_with(".txt")));
}

#[test]
fn import_takes_stdin_and_bodies_without_the_data_wrapper() {
    let want = stdout(&import_files());
    let dest: J =
        serde_json::from_str(&std::fs::read_to_string(root().join(DEST)).unwrap()).unwrap();
    let subs: J =
        serde_json::from_str(&std::fs::read_to_string(root().join(SUBS)).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // {"subscriptions": [...]} alone, and the destination object itself on stdin.
    let bare_subs = write(
        dir.path(),
        "subs.json",
        &serde_json::json!({ "subscriptions": subs["data"]["subscriptions"] }).to_string(),
    );
    let o = run_stdin(
        &[
            "import",
            "segment",
            "--destination",
            "-",
            "--subscriptions",
            &bare_subs,
        ],
        dest["data"]["destination"].to_string().as_bytes(),
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), want);
}

#[test]
fn import_names_the_file_and_line_of_a_broken_body() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "dest.json",
        "{\n  \"data\": {\n    \"destination\": ,\n}",
    );
    let o = run(&[
        "import",
        "segment",
        "--destination",
        &bad,
        "--subscriptions",
        SUBS,
    ]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("dest.json: not JSON") && err.contains("line 3"),
        "{err}"
    );

    let list = write(
        dir.path(),
        "subs.json",
        r#"{"data": {"subscriptions": {}}}"#,
    );
    let o = run(&[
        "import",
        "segment",
        "--destination",
        DEST,
        "--subscriptions",
        &list,
    ]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("subs.json: expected a list of subscriptions"),
        "{}",
        stderr(&o)
    );

    let none = write(
        dir.path(),
        "none.json",
        r#"{"data": {"subscriptions": []}}"#,
    );
    let o = run(&[
        "import",
        "segment",
        "--destination",
        DEST,
        "--subscriptions",
        &none,
    ]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("no \"Sync to S3\" subscription"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_import_that_does_not_validate_is_printed_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let subs = write(
        dir.path(),
        "subs.json",
        r#"{"subscriptions": [{"name": "x", "actionSlug": "syncToS3", "enabled": true,
            "trigger": "type = ", "settings": {"columns": {"a": {"@path": "$.a"}}}}]}"#,
    );
    let o = run(&[
        "import",
        "segment",
        "--destination",
        DEST,
        "--subscriptions",
        &subs,
    ]);
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("trigger: 'type = '"), "{}", stdout(&o));
    assert!(stderr(&o).contains("does not validate"), "{}", stderr(&o));
    assert!(stderr(&o).contains("mappings[0].trigger"), "{}", stderr(&o));
}

/// A stand-in for Segment's Public API on loopback: serves the recorded bodies, the
/// subscriptions in two pages, to requests carrying `token`. Records the request lines.
fn api_server(token: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let dest = std::fs::read_to_string(root().join(DEST)).unwrap();
    let subs: J =
        serde_json::from_str(&std::fs::read_to_string(root().join(SUBS)).unwrap()).unwrap();
    let all = subs["data"]["subscriptions"].as_array().unwrap().clone();
    let page1 = serde_json::json!({"data": {"subscriptions": all[..2],
        "pagination": {"current": "MA==", "next": "Mg==", "totalEntries": 4}}});
    let page2 = serde_json::json!({"data": {"subscriptions": all[2..],
        "pagination": {"current": "Mg==", "next": null, "totalEntries": 4}}});
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    authorized = line.trim_end() == format!("authorization: Bearer {token}")
                        || line.trim_end() == format!("Authorization: Bearer {token}");
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let (status, body) = if !authorized {
                (
                    "401 Unauthorized",
                    r#"{"errors":[{"type":"unauthorized","message":"Unauthorized"}]}"#.to_string(),
                )
            } else if path == "/destinations/fP7qoQw2HTWt9WdMr718gn" {
                ("200 OK", dest.clone())
            } else if path
                == "/destinations/fP7qoQw2HTWt9WdMr718gn/subscriptions?pagination.count=200"
            {
                ("200 OK", page1.to_string())
            } else if path
                == "/destinations/fP7qoQw2HTWt9WdMr718gn/subscriptions?pagination.count=200&pagination.cursor=Mg%3D%3D"
            {
                ("200 OK", page2.to_string())
            } else {
                (
                    "404 Not Found",
                    r#"{"errors":[{"type":"not-found","message":"Not found"}]}"#.to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.read(&mut [0; 0]);
        }
    });
    (addr, seen)
}

#[test]
fn from_api_reads_the_destination_and_every_page_of_subscriptions() {
    const TOKEN: &str = "sgp_TOKEN-never-printed-123";
    let (url, seen) = api_server(TOKEN);
    let args = [
        "import",
        "segment",
        "--from-api",
        "--destination-id",
        "fP7qoQw2HTWt9WdMr718gn",
        "--api-url",
        &url,
    ];
    let o = bin()
        .args(args)
        .env("SEGMENT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(stdout(&o), stdout(&import_files()));
    assert!(!output_text(&o).contains(TOKEN));
    assert_eq!(seen.lock().unwrap().len(), 3, "{:?}", seen.lock().unwrap());

    // A token the API refuses: the status and a hint, never the token.
    let o = bin()
        .args(args)
        .env("SEGMENT_TOKEN", "sgp_wrong-token-456")
        .output()
        .unwrap();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("HTTP 401") && err.contains("SEGMENT_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("sgp_wrong-token-456"), "{err}");

    // An unknown destination; no token at all.
    let mut unknown = args;
    unknown[4] = "nope";
    let o = bin()
        .args(unknown)
        .env("SEGMENT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("HTTP 404"), "{}", stderr(&o));
    let o = bin()
        .args(args)
        .env_remove("SEGMENT_TOKEN")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("SEGMENT_TOKEN"), "{}", stderr(&o));
}

/// Files keyed by their key with the run's time taken out (`<ts>`, `<date>`): two runs
/// name their files at different times, but must write the same bytes under the same keys.
fn normalized(files: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let ts = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z").unwrap();
    let date = regex::Regex::new(r"\d{4}-\d\d-\d\d").unwrap();
    files
        .iter()
        .map(|(k, v)| {
            let k = ts.replace_all(k, "<ts>");
            (date.replace_all(&k, "<date>").into_owned(), v.clone())
        })
        .collect()
}

#[test]
fn bundled_mappings_survive_export_and_import_byte_for_byte() {
    for (mapping, fixture) in [
        ("mappings/events.yaml", "fixtures/events.ndjson"),
        ("mappings/audiences.yaml", "fixtures/audiences.ndjson"),
        ("mappings/reverse-etl.yaml", "fixtures/reverse-etl.ndjson"),
        // File names from a template: keys compared exactly, with no time in them.
        (
            "tests/golden/edge-cases.yaml",
            "tests/golden/edge-cases.ndjson",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest.json");
        let subs = dir.path().join("subs.json");
        let o = run(&[
            "export",
            "segment",
            mapping,
            "--destination",
            dest.to_str().unwrap(),
            "--subscriptions",
            subs.to_str().unwrap(),
        ]);
        assert_ok(&o);
        let exported = std::fs::read_to_string(&dest).unwrap();
        assert!(!exported.contains("iam_external_id"), "{exported}");
        let body: J = serde_json::from_str(&std::fs::read_to_string(&subs).unwrap()).unwrap();
        for s in body["data"]["subscriptions"].as_array().unwrap() {
            assert_eq!(s["actionSlug"], "syncToS3");
            assert!(s["settings"]["columns"].is_object());
        }

        let o = run(&[
            "import",
            "segment",
            "--destination",
            dest.to_str().unwrap(),
            "--subscriptions",
            subs.to_str().unwrap(),
        ]);
        assert_ok(&o);
        let imported = write(dir.path(), "imported.yaml", &stdout(&o));
        assert_ok(&run(&["validate", &imported]));

        let before = replay(mapping, &[fixture], &[]);
        let after = replay(&imported, &[fixture], &[]);
        assert_ok(&before.output);
        assert_ok(&after.output);
        assert!(
            before.files.len() > 1,
            "{mapping}: {:?}",
            before.files.keys()
        );
        let (b, a) = (normalized(&before.files), normalized(&after.files));
        assert_eq!(
            b.iter().map(|f| &f.0).collect::<Vec<_>>(),
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{mapping}"
        );
        for ((key, want), (_, got)) in b.iter().zip(&a) {
            assert!(want == got, "{mapping}: {key} differs after the round trip");
        }
    }
}

#[test]
fn export_keeps_s3actions_only_keys_aside_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("d.json");
    let o = run(&[
        "export",
        "segment",
        "mappings/reverse-etl.yaml",
        "--destination",
        dest.to_str().unwrap(),
        "--subscriptions",
        "-",
    ]);
    assert_ok(&o);
    let subs: J = serde_json::from_str(&stdout(&o)).unwrap();
    let first = &subs["data"]["subscriptions"][0];
    assert_eq!(
        first["x-s3actions"]["filename_template"],
        "{{date}}/{{mapping}}_{{timestamp}}.{{extension}}"
    );
    assert!(first["settings"].get("filename_template").is_none());
    let err = stderr(&o);
    assert!(
        err.contains(r#"mappings "upserts".filename_template: Segment has no such field"#),
        "{err}"
    );
    assert!(
        err.contains("settings.iam_external_id: is a secret and is never exported"),
        "{err}"
    );
}
