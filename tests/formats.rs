//! Every file format and layer end to end, read back by independent readers: Python's
//! `json`/`gzip`, pyarrow and DuckDB for Parquet, `zstd -d`, and `gpg --decrypt` with a
//! throwaway keyring. The readers come from `scripts/readers.sh` (run by
//! `scripts/test.sh`); without them these tests fail saying so, they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EVENTS: &str = "fixtures/events.ndjson";

/// The virtualenv python with pyarrow and duckdb.
fn python() -> String {
    std::env::var("S3ACTIONS_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "S3ACTIONS_TEST_PYTHON is not set: the format tests read files back with pyarrow, \
             DuckDB, gpg and zstd; run ./scripts/test.sh, or `. scripts/readers.sh && \
             readers_install` in this shell first"
        )
    })
}

/// Runs `code` with the readers' python; `args` become `sys.argv[1:]`. Returns stdout.
#[track_caller]
fn py(code: &str, args: &[&str]) -> String {
    let o = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python");
    assert!(o.status.success(), "python failed:\n{}", output_text(&o));
    stdout(&o)
}

/// Runs a command-line tool; returns its stdout bytes.
#[track_caller]
fn tool(cmd: &str, args: &[&str]) -> Vec<u8> {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd} ({e}): run ./scripts/test.sh, which installs it")
    });
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed:\n{}",
        output_text(&o)
    );
    o.stdout
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn input_lines() -> Vec<String> {
    std::fs::read_to_string(root().join(EVENTS))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `format: ndjson` with columns: one object per row, keys in column order, JSON types kept,
/// the audience-action and batch-size members included (the count fixed for a partial
/// batch), read back by Python's json.
#[test]
fn ndjson_rows_keep_json_types_and_column_order() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: m
    trigger: 'type = "track"'
    format: ndjson
    filename_template: '{{event_type}}-{{part}}.{{extension}}'
    batch_size: 150
    columns:
      id: {'@path': '$.messageId'}
      props: {'@path': '$.properties'}
      missing: {'@path': '$.nope'}
      ts: {'@path': '$.timestamp'}
"#,
    );
    let r = replay(&mapping, &[EVENTS], &[]);
    assert_ok(&r.output);
    let keys: Vec<&String> = r.files.keys().collect();
    assert_eq!(keys, ["track-1.json", "track-2.json"], "{keys:?}");
    let first = &r.files["track-1.json"];
    assert!(
        first.ends_with(b"}\n"),
        "NDJSON files end with a line break"
    );
    // Python reads the files: key order, types, counts.
    let out = py(
        r#"
import json, sys
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path)]
    print(len(rows), list(rows[0].keys()), {r["batch_size"] for r in rows}, type(rows[0]["props"]).__name__, rows[0]["missing"])
"#,
        &[
            r.out().join("track-1.json").to_str().unwrap(),
            r.out().join("track-2.json").to_str().unwrap(),
        ],
    );
    assert_eq!(
        out,
        "150 ['id', 'props', 'missing', 'ts', 'audience_action', 'batch_size'] {150} dict None\n\
         43 ['id', 'props', 'missing', 'ts', 'audience_action', 'batch_size'] {43} dict None\n"
    );
    // The values are the event's own JSON values.
    let tracks: Vec<serde_json::Value> = input_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "track")
        .collect();
    let rows = json_lines(first);
    // Numbers print as JavaScript prints them (5.0 → 5): compared as numbers.
    fn numbers_as_f64(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
            serde_json::Value::Array(a) => a.iter().map(numbers_as_f64).collect(),
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
            other => other.clone(),
        }
    }
    assert_eq!(rows.len(), 150);
    for (row, event) in rows.iter().zip(&tracks) {
        assert_eq!(row["id"], event["messageId"]);
        assert_eq!(
            numbers_as_f64(&row["props"]),
            numbers_as_f64(&event["properties"])
        );
    }
}

/// `raw: true`: each line is the event exactly as received; `split_by_event_type: false`
/// puts every type in one file; gzip and zstd files hold the same bytes (read back with
/// Python's gzip and `zstd -d`).
#[test]
fn raw_ndjson_copies_events_byte_for_byte_and_compresses() {
    let dir = tempfile::tempdir().unwrap();
    let base = "mappings:\n  - name: logs\n    trigger: 'type != \"nothing\"'\n    format: ndjson\n    raw: true\n    split_by_event_type: false\n    filename_template: 'logs.json'\n";
    let plain = write(dir.path(), "plain.yaml", base);
    let r = replay(&plain, &[EVENTS], &[]);
    assert_ok(&r.output);
    let keys: Vec<&String> = r.files.keys().filter(|k| !k.starts_with('_')).collect();
    assert_eq!(keys, ["logs.json"]);
    let valid: Vec<String> = input_lines()
        .into_iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        .collect();
    assert_eq!(
        String::from_utf8(r.files["logs.json"].clone()).unwrap(),
        valid.join("\n") + "\n"
    );
    for (compression, file) in [("gzip", "logs.json.gz"), ("zstd", "logs.json.zst")] {
        let m = write(
            dir.path(),
            &format!("{compression}.yaml"),
            &format!("{base}    compression: {compression}\n"),
        );
        let c = replay(&m, &[EVENTS], &[]);
        let path = c.out().join(file);
        let unpacked = match compression {
            "gzip" => py(
                "import gzip, sys; sys.stdout.write(gzip.open(sys.argv[1], 'rt').read())",
                &[path.to_str().unwrap()],
            )
            .into_bytes(),
            _ => tool("zstd", &["-d", "-c", "-q", path.to_str().unwrap()]),
        };
        assert!(unpacked == r.files["logs.json"], "{compression}");
        if compression == "zstd" {
            assert_frame_says_its_size(&c.files[file], unpacked.len());
        }
    }
    // Pretty-printed events (a JSON array file) come out as compact single lines.
    let pretty = write(
        dir.path(),
        "pretty.json",
        "[\n  {\"type\": \"track\",\n   \"n\": 1.50},\n  {\"type\": \"page\", \"name\": \"a\\nb\"}\n]\n",
    );
    let p = replay(&plain, &[&pretty], &[]);
    assert_ok(&p.output);
    assert_eq!(
        std::str::from_utf8(&p.files["logs.json"]).unwrap(),
        "{\"type\":\"track\",\"n\":1.5}\n{\"type\": \"page\", \"name\": \"a\\nb\"}\n"
    );
}

/// `format: parquet` with `column_types`: pyarrow sees the types and values, DuckDB
/// queries the file; a value that does not convert rejects its event with the column and
/// the reason; `compression` is Parquet's codec and adds no suffix.
#[test]
fn parquet_files_are_typed_and_readable_by_pyarrow_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(
        dir.path(),
        "events.ndjson",
        &[
            r#"{"type":"track","messageId":"m1","timestamp":"2026-11-01T07:30:00.250Z","properties":{"n":3,"price":9.5,"ok":true,"tags":["a","b"]}}"#,
            r#"{"type":"track","messageId":"m2","timestamp":"2026-11-01T08:00:00+01:00","properties":{"n":"4","price":1,"ok":false}}"#,
            r#"{"type":"track","messageId":"m3","timestamp":"2026-11-01T09:00:00Z","properties":{"n":1.5,"price":2,"ok":true}}"#,
            r#"{"type":"track","messageId":"m4","timestamp":"yesterday","properties":{"n":5}}"#,
            r#"{"type":"track","messageId":"m5","properties":{}}"#,
        ]
        .join("\n"),
    );
    for (compression, codec) in [("none", "UNCOMPRESSED"), ("zstd", "ZSTD"), ("gzip", "GZIP")] {
        let mapping = write(
            dir.path(),
            &format!("{compression}.yaml"),
            &format!(
                r#"
mappings:
  - name: m
    trigger: 'type = "track"'
    format: parquet
    compression: {compression}
    filename_template: 'out/{{{{event_type}}}}.{{{{extension}}}}'
    columns:
      id: {{'@path': '$.messageId'}}
      ts: {{'@path': '$.timestamp'}}
      n: {{'@path': '$.properties.n'}}
      price: {{'@path': '$.properties.price'}}
      ok: {{'@path': '$.properties.ok'}}
      tags: {{'@path': '$.properties.tags'}}
    column_types:
      ts: timestamp
      n: int64
      price: double
      ok: boolean
      tags: json
"#
            ),
        );
        let r = replay(&mapping, &[&events], &[]);
        // Two events do not convert: the run says so (exit 1) and writes the rest.
        assert_exit(&r.output, 1);
        let rejects = r.text_file("_rejected.ndjson");
        assert!(
            rejects.contains(
                "column \\\"n\\\": 1.5 is not a whole number that fits int64 (column_types: int64)"
            ),
            "{rejects}"
        );
        assert!(
            rejects.contains("column \\\"ts\\\": \\\"yesterday\\\" is not an ISO-8601 timestamp"),
            "{rejects}"
        );
        let keys: Vec<&String> = r.files.keys().filter(|k| !k.starts_with('_')).collect();
        assert_eq!(keys, ["out/track.parquet"], "no suffix for the codec");
        let path = r.out().join("out/track.parquet");
        let out = py(
            r#"
import sys, pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
print(f.metadata.row_group(0).column(0).compression)
t = f.read()
print([(fl.name, str(fl.type)) for fl in t.schema])
for row in t.to_pylist():
    print(row["id"], row["ts"].isoformat() if row["ts"] else None, row["n"], row["price"], row["ok"], row["tags"], row["audience_action"], row["batch_size"])
"#,
            &[path.to_str().unwrap()],
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(codec));
        assert_eq!(
            lines.next(),
            Some(
                "[('id', 'string'), ('ts', 'timestamp[us, tz=UTC]'), ('n', 'int64'), ('price', 'double'), ('ok', 'bool'), ('tags', 'extension<arrow.json>'), ('audience_action', 'string'), ('batch_size', 'int64')]"
            )
        );
        assert_eq!(
            lines.collect::<Vec<_>>(),
            [
                "m1 2026-11-01T07:30:00.250000+00:00 3 9.5 True [\"a\",\"b\"] None 3",
                "m2 2026-11-01T07:00:00+00:00 4 1.0 False None None 3",
                "m5 None None None None None None 3",
            ]
        );
        let duck = py(
            r#"
import sys, duckdb
print(duckdb.sql(f"select count(*), sum(n), max(ts)::varchar from read_parquet('{sys.argv[1]}')").fetchall())
"#,
            &[path.to_str().unwrap()],
        );
        assert_eq!(
            duck.trim(),
            "[(3, 7, '2026-11-01 07:30:00.25+00')]",
            "{duck}"
        );
    }
}

/// A throwaway GnuPG home under target/ with one key pair; `args` choose the algorithm
/// and expiry. Returns the home and the armored public key's path.
fn gpg_home(name: &str, gen_args: &[&str]) -> (PathBuf, String) {
    let home = root()
        .join("target/gpg-test")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let h = home.to_str().unwrap().to_string();
    let mut args = vec![
        "--homedir",
        &h,
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ];
    args.extend_from_slice(gen_args);
    tool("gpg", &args);
    let public = tool(
        "gpg",
        &[
            "--homedir",
            &h,
            "--batch",
            "--armor",
            "--export",
            "test@example.com",
        ],
    );
    let path = home.join("public.asc");
    std::fs::write(&path, public).unwrap();
    (home, path.to_string_lossy().into_owned())
}

fn gpg_decrypt(home: &Path, file: &Path) -> Vec<u8> {
    tool(
        "gpg",
        &[
            "--homedir",
            home.to_str().unwrap(),
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--decrypt",
            file.to_str().unwrap(),
        ],
    )
}

/// `encryption: { pgp_public_key_file }`: each file is encrypted (after compression) to the
/// key, `.gpg` appended; `gpg --decrypt` gives the plain (or gzipped) file back, for an
/// RSA key and for an ed25519/cv25519 key.
#[test]
fn pgp_files_decrypt_with_gpg_to_the_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(
        dir.path(),
        "plain.yaml",
        "mappings:\n  - name: m\n    filename_template: '{{event_type}}.csv'\n",
    );
    let expected = replay(&plain, &[EVENTS], &[]);
    for (name, algo) in [("rsa", "default"), ("ecc", "future-default")] {
        let (home, public) = gpg_home(
            name,
            &[
                "--quick-gen-key",
                "Test <test@example.com>",
                algo,
                "default",
                "never",
            ],
        );
        for compression in ["none", "gzip"] {
            let m = write(
                dir.path(),
                &format!("{name}-{compression}.yaml"),
                &format!(
                    "mappings:\n  - name: m\n    filename_template: '{{{{event_type}}}}.csv'\n    compression: {compression}\n    encryption:\n      pgp_public_key_file: {public}\n"
                ),
            );
            let r = replay(&m, &[EVENTS], &[]);
            assert_ok(&r.output);
            let suffix = if compression == "gzip" {
                ".gz.gpg"
            } else {
                ".gpg"
            };
            for (key, content) in expected.files.iter().filter(|(k, _)| k.ends_with(".csv")) {
                let file = r.out().join(format!("{key}{suffix}"));
                assert!(file.exists(), "{file:?}: {:?}", r.files.keys());
                let mut back = gpg_decrypt(&home, &file);
                if compression == "gzip" {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&back[..]),
                        &mut out,
                    )
                    .unwrap();
                    back = out;
                }
                assert!(back == *content, "{name} {compression} {key}");
            }
        }
        let _ = std::fs::remove_dir_all(&home);
    }
}

/// Bad settings are errors at load, each with its location.
#[test]
fn bad_format_settings_are_errors_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let (home, expired) = gpg_home(
        "expired",
        &[
            "--faked-system-time",
            "20200101T000000",
            "--quick-gen-key",
            "Test <test@example.com>",
            "rsa2048",
            "default",
            "1d",
        ],
    );
    let h = home.to_str().unwrap();
    let secret = tool(
        "gpg",
        &[
            "--homedir",
            h,
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--armor",
            "--export-secret-keys",
            "test@example.com",
        ],
    );
    let secret_path = write(
        dir.path(),
        "secret.asc",
        std::str::from_utf8(&secret).unwrap(),
    );
    let garbage = write(
        dir.path(),
        "garbage.asc",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n",
    );
    let cases: Vec<(String, &str)> = vec![
        (
            "format: xml".into(),
            r#"mappings[0].format: should be one of "csv", "ndjson", "parquet", not "xml""#,
        ),
        (
            "raw: true".into(),
            "mappings[0].raw: only works with format: ndjson",
        ),
        (
            "format: parquet\n    column_types: { event_nam: int64 }".into(),
            r#"mappings[0].column_types.event_nam: "event_nam" is not a column of this mapping; did you mean "event_name"?"#,
        ),
        (
            "format: parquet\n    column_types: { event_name: integer }".into(),
            r#"mappings[0].column_types.event_name: should be one of "string", "int64""#,
        ),
        (
            "column_types: { event_name: int64 }".into(),
            "mappings[0].column_types: only works with format: parquet",
        ),
        (
            "format: ndjson\n    file_extension: csv".into(),
            r#"mappings[0].file_extension: should be one of "json", "ndjson", "jsonl" for format: ndjson, not "csv""#,
        ),
        (
            format!("encryption: {{ pgp_public_key_file: {garbage} }}"),
            "mappings[0].encryption.pgp_public_key_file: is not an OpenPGP public key",
        ),
        (
            format!("encryption: {{ pgp_public_key_file: {secret_path} }}"),
            "mappings[0].encryption.pgp_public_key_file: is a PGP private key",
        ),
        (
            format!("encryption: {{ pgp_public_key_file: {expired} }}"),
            "expired on 2020-01-02",
        ),
        (
            "encryption: { pgp_public_key: 'garbage' }".into(),
            "mappings[0].encryption.pgp_public_key: is not an OpenPGP public key",
        ),
        (
            "format: parquet\n    column_types: { batch_size: boolean }".into(),
            "mappings[0].column_types.batch_size: the batch-size column holds a row count",
        ),
        (
            "format: parquet\n    columns: { audience_action: {'@path': '$.a'} }".into(),
            "\"audience_action\" names two columns",
        ),
        (
            "quote: ab".into(),
            r#"mappings[0].quote: should be one ASCII character, not "ab""#,
        ),
        (
            "format: ndjson\n    header: false".into(),
            "mappings[0].header: only works with format: csv, not with format: ndjson",
        ),
        (
            "quote_style: sometimes".into(),
            r#"mappings[0].quote_style: should be one of "always", "necessary", not "sometimes""#,
        ),
    ];
    for (i, (yaml, message)) in cases.iter().enumerate() {
        let m = write(
            dir.path(),
            &format!("bad-{i}.yaml"),
            &format!("mappings:\n  - name: m\n    {yaml}\n"),
        );
        let o = run(&["validate", &m]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(message), "{yaml}: {err}");
        assert!(
            err.contains(&format!("bad-{i}.yaml:")),
            "{yaml}: location: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// `mappings/segment-classic.yaml` works as it is: raw gzipped NDJSON under
/// `segment-logs/local/<received day in ms>/<first receivedAt in ms>-<uuid>.gz`, every
/// event type in the same files, each line the event as received.
#[test]
fn segment_classic_layout() {
    let r = replay("mappings/segment-classic.yaml", &[EVENTS], &[]);
    assert_ok(&r.output);
    let mut lines = Vec::new();
    for key in r.files.keys().filter(|k| !k.starts_with('_')) {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(&parts[..2], ["segment-logs", "local"], "{key}");
        let day: i64 = parts[2].parse().unwrap_or_else(|_| panic!("{key}"));
        assert_eq!(day % 86_400_000, 0, "{key}: a UTC midnight in ms");
        // `<stamp>-<36-character uuid>.gz`
        let (stamp, rest) = parts[3].split_at(parts[3].len() - 40);
        assert!(rest.starts_with('-') && rest.ends_with(".gz"), "{key}");
        let text = py(
            "import gzip, sys; sys.stdout.write(gzip.open(sys.argv[1], 'rt').read())",
            &[r.out().join(key).to_str().unwrap()],
        );
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        if let Some(received) = first["receivedAt"].as_str() {
            assert!(received.starts_with("2026-11-01T"), "{received}");
            assert_eq!(day, 1_793_491_200_000, "{key}");
            assert!(stamp.starts_with("17934912"), "{key}");
        }
        lines.extend(text.lines().map(str::to_string));
    }
    let mut expected = input_lines();
    expected.sort();
    lines.sort();
    assert_eq!(lines, expected);
}

/// AEP's CSV options: quote and escape characters, quoting only when necessary, null and
/// empty values as given, no header, CRLF; Python's csv module reads the file back with the
/// same dialect. Giving Segment's defaults explicitly changes no byte.
#[test]
fn csv_options_are_read_back_by_pythons_csv() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(
        dir.path(),
        "events.ndjson",
        &[
            r#"{"type":"track","messageId":"m1","properties":{"a":"it's; \"x\"","b":"","c":null,"d":"back\\slash"}}"#,
            r#"{"type":"track","messageId":"m2","properties":{"a":"two\nlines","b":"plain","d":7}}"#,
        ]
        .join("\n"),
    );
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: m
    trigger: 'type = "track"'
    filename_template: 'out.csv'
    delimiter: ";"
    quote: "'"
    escape: "\\"
    quote_style: necessary
    null_value: NULL
    empty_value: ""
    header: false
    line_ending: crlf
    columns:
      id: {'@path': '$.messageId'}
      a: {'@path': '$.properties.a'}
      b: {'@path': '$.properties.b'}
      c: {'@path': '$.properties.c'}
      d: {'@path': '$.properties.d'}
"#,
    );
    let r = replay(&mapping, &[&events], &[]);
    assert_ok(&r.output);
    assert_eq!(
        std::str::from_utf8(&r.files["out.csv"]).unwrap(),
        "m1;'it\\'s; \"x\"';;NULL;'back\\\\slash';NULL;2\r\nm2;'two\nlines';plain;NULL;7;NULL;2\r\n"
    );
    let rows = py(
        r#"
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    print(json.dumps(list(csv.reader(f, delimiter=";", quotechar="'", escapechar="\\", doublequote=False))))
"#,
        &[r.out().join("out.csv").to_str().unwrap()],
    );
    let rows: Vec<Vec<String>> = serde_json::from_str(&rows).unwrap();
    assert_eq!(
        rows,
        [
            ["m1", "it's; \"x\"", "", "NULL", "back\\slash", "NULL", "2"],
            ["m2", "two\nlines", "plain", "NULL", "7", "NULL", "2"],
        ]
    );
    // Segment's defaults given explicitly: the same bytes as without them.
    let plain = write(
        dir.path(),
        "plain.yaml",
        "mappings:\n  - name: m\n    filename_template: '{{event_type}}.csv'\n",
    );
    let explicit = write(
        dir.path(),
        "explicit.yaml",
        "mappings:\n  - name: m\n    filename_template: '{{event_type}}.csv'\n    quote: '\"'\n    escape: double\n    quote_style: always\n    null_value: '\"\"'\n    empty_value: '\"\"'\n    header: true\n    line_ending: lf\n",
    );
    let a = replay(&plain, &[EVENTS], &[]);
    let b = replay(&explicit, &[EVENTS], &[]);
    assert_ok(&b.output);
    assert!(a.files == b.files);
}

/// `manifest: true`: after the run's files, a manifest in AEP's shape at the folder
/// template's fixed prefix lists every file of the mapping with its size, rows and SHA-256,
/// checked by Python against the files themselves.
#[test]
fn manifest_lists_every_file_with_size_rows_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: feed\n    trigger: 'type = \"track\" or type = \"page\"'\n    s3_aws_folder_name: 'exports/{{type}}/'\n    filename_template: '{{event_type}}-{{part}}.csv'\n    batch_size: 100\n    compression: zstd\n    manifest: true\n  - name: other\n    filename_template: 'other.csv'\n",
    );
    let r = replay(&mapping, &[EVENTS], &[]);
    assert_ok(&r.output);
    let manifests: Vec<&String> = r.files.keys().filter(|k| k.contains("manifest-")).collect();
    assert_eq!(manifests.len(), 1, "{:?}", r.files.keys());
    let manifest = manifests[0];
    assert!(
        manifest.starts_with("exports/manifest-feed-") && manifest.ends_with(".json"),
        "{manifest}"
    );
    let out = py(
        r#"
import hashlib, json, os, sys
root, manifest = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(root, manifest)))
assert manifest.endswith(m["flowRunId"] + ".json"), m["flowRunId"]
assert m["scheduledTime"].endswith("Z"), m["scheduledTime"]
rows = 0
for e in m["exportResults"]:
    path = os.path.join(root, e["sinkPath"].lstrip("/"), e["name"])
    data = open(path, "rb").read()
    assert len(data) == e["size"], (path, e)
    assert hashlib.sha256(data).hexdigest() == e["sha256"], (path, e)
    rows += e["rows"]
print(len(m["exportResults"]), rows, sorted(e["sinkPath"] + "/" + e["name"] for e in m["exportResults"]))
"#,
        &[r.out().to_str().unwrap(), manifest],
    );
    assert_eq!(
        out.trim(),
        "3 225 ['/exports/page/page-1.csv.zst', '/exports/track/track-1.csv.zst', '/exports/track/track-2.csv.zst']"
    );
    // Partial batches (their batch-size field rewritten on the way into the compressor)
    // still say exactly how long their content is.
    for (key, frame) in r.files.iter().filter(|(k, _)| k.ends_with(".zst")) {
        let plain = zstd::decode_all(&frame[..]).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_frame_says_its_size(frame, plain.len());
    }
}

/// zstd files record their content size in the frame header: one-shot decoders
/// (python-zstandard's `decompress`) refuse frames that do not.
#[track_caller]
fn assert_frame_says_its_size(frame: &[u8], len: usize) {
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(frame).ok(),
        Some(Some(len as u64)),
        "the frame header's content size"
    );
}

/// The formats through `serve`: posted events (a batch holding two types) land, on
/// shutdown, in an event-time folder as raw zstd NDJSON with every type in one file, and
/// as Parquet; `zstd -d` and pyarrow read them back.
#[test]
fn serve_writes_every_format() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: raw
    trigger: 'type = "track" or type = "identify"'
    format: ndjson
    raw: true
    compression: zstd
    split_by_event_type: false
    s3_aws_folder_name: 'raw/dt={{format_time timestamp "%Y-%m-%d"}}/'
    filename_template: 'all.{{extension}}'
  - name: pq
    trigger: 'type = "track"'
    format: parquet
    filename_template: 'pq/{{event_type}}.{{extension}}'
    columns:
      id: { "@path": "$.messageId" }
      revenue: { "@path": "$.properties.revenue" }
    column_types:
      revenue: double
"#,
    );
    let out = dir.path().join("out");
    let mut child = bin()
        .args(["serve", &mapping, "--listen", "127.0.0.1:0", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let body = r#"{"batch": [
        {"type": "track", "messageId": "m1", "timestamp": "2026-11-01T07:00:00Z", "properties": {"revenue": 631.5}},
        {"type": "identify", "messageId": "m2", "timestamp": "2026-11-01T08:00:00Z"}
    ]}"#;
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let o = stop_serve(child);
    assert!(o.status.success(), "{}", output_text(&o));
    let raw = tool(
        "zstd",
        &[
            "-d",
            "-c",
            "-q",
            out.join("raw/dt=2026-11-01/all.json.zst").to_str().unwrap(),
        ],
    );
    let lines = json_lines(&raw);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["messageId"], "m1");
    assert_eq!(lines[1]["type"], "identify");
    let rows = py(
        "import sys, pyarrow.parquet as pq; print(pq.read_table(sys.argv[1]).to_pylist())",
        &[out.join("pq/track.parquet").to_str().unwrap()],
    );
    assert_eq!(
        rows.trim(),
        "[{'id': 'm1', 'revenue': 631.5, 'audience_action': None, 'batch_size': 1}]"
    );
}
