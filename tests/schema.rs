//! `s3actions schema`: the committed schema is what the binary prints, it is valid
//! draft-07, every bundled and test mapping passes it, mappings `validate` refuses for
//! type reasons fail it, and its descriptions are the README's.

mod common;

use common::*;
use serde_json::Value as J;

fn schema() -> J {
    let text = std::fs::read_to_string(root().join("schema/mapping.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&schema()).expect("the schema compiles as draft-07")
}

fn yaml_to_json(text: &str) -> J {
    s3actions::spanned::parse_yaml(text).unwrap().to_json()
}

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn committed_schema_is_what_schema_prints() {
    let o = run(&["schema"]);
    assert_ok(&o);
    let committed = std::fs::read_to_string(root().join("schema/mapping.schema.json")).unwrap();
    assert!(
        stdout(&o) == committed,
        "schema/mapping.schema.json is stale: run `cargo run -- schema > schema/mapping.schema.json`"
    );
}

#[test]
fn schema_is_draft_07() {
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::draft7::meta::validate(&s).expect("a valid draft-07 schema");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(
        s["properties"]["mappings"]["items"]["additionalProperties"],
        false
    );
    assert_eq!(s["properties"]["settings"]["additionalProperties"], false);
}

#[test]
fn every_bundled_and_test_mapping_passes_the_schema() {
    let v = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("mappings"), &mut files);
    yaml_files(&root().join("tests"), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let o = run(&["validate", f.to_str().unwrap()]);
        assert_ok(&o);
        let text = std::fs::read_to_string(&f).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&yaml_to_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
    // And a mapping using every key and directive.
    let full = r#"
settings:
  s3_aws_bucket_name: acme-events
  s3_aws_region: us-east-1
  iam_role_arn: arn:aws:iam::123456789012:role/w
  iam_external_id: ${X}
  intermediate_role_arn: arn:aws:iam::123456789012:role/i
  intermediate_external_id: ${Y}
  endpoint_url: http://127.0.0.1:1
  server_side_encryption: aws:kms
  ssekms_key_id: k
  acl: ${ACL}
  storage_class: STANDARD_IA
  tags: { team: data, n: 1 }
  upload_concurrency: 4
  requests_per_second: 100
  multipart_threshold_mb: 16
  multipart_part_size_mb: 8
  max_retries: 3
  outbox_dir: /tmp/o
  spool_max_bytes: 4096
  dedupe_window: 24h
  role_session_name: s3a
  role_session_duration_seconds: 900
mappings:
  - name: all
    action: syncToS3
    enabled: true
    trigger: 'type = "track"'
    columns:
      a: { "@path": "$.a" }
      b: { "@template": "{{a}}" }
      c: { "@literal": { "@path": "x" } }
      d: { "@if": { "blank": { "@path": "$.a" }, "then": 1, "else": [1, { "@path": "$.b" }] } }
      e: { "@arrayPath": ["$.items", { "id": { "@path": "$.id" } }] }
      f: { "@case": { "operator": "upper", "value": { "@path": "$.a" } } }
      g: { "@replace": { "value": { "@path": "$.a" }, "pattern": "x", "replacement": "y", "global": false } }
      h: { "@merge": { "objects": [{ "@path": "$.a" }, { "k": 1 }], "direction": "left" } }
      i: { "@transform": { "apply": { "p": { "@path": "$.a" } }, "mapping": { "@path": "$.p" } } }
      j: { "@flatten": { "value": { "@path": "$.a" }, "separator": "." } }
      k: { "@json": { "mode": "encode", "value": { "@path": "$.a" } } }
      l: { "@liquid": "{{ a | upcase }}" }
      m: { "@excludeWhenNull": { "@path": "$.a" } }
      n: { "@path": "$.a", "_metadata": { "label": "x" } }
      event_name: ""
    audience_action_column_name: null
    batch_size_column_name: rows
    batch_size: 10
    batch_max_bytes: 1048576
    batch_max_age_seconds: 60
    s3_aws_folder_name: "x/{{type}}/"
    filename_prefix: p
    filename_template: "{{prefix}}.{{extension}}"
    delimiter: tab
    file_extension: txt
    compression: gzip
    columns_to_transform:
      - { column_name: a, hash_algorithm: sha256, normalize: lowercase_trim }
    enable_batching: true
    traits_or_props: { "@path": "$.traits" }
    computation_key: { "@path": "$.context.personas.computation_key" }
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "full.yaml", full);
    assert_ok(&run(&["validate", &path]));
    let errors: Vec<String> = v
        .iter_errors(&yaml_to_json(full))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn mappings_validate_refuses_for_type_reasons_fail_the_schema() {
    let v = validator();
    let m = |body: &str| format!("mappings:\n  - name: m\n{body}");
    let cases = [
        "settings:\n  s3_aws_bucket_nam: x\nmappings:\n  - name: m\n".to_string(),
        "mapping:\n  - name: m\n".to_string(),
        "settings:\n  upload_concurrency: \"8\"\nmappings:\n  - name: m\n".to_string(),
        "settings:\n  acl: everyone\nmappings:\n  - name: m\n".to_string(),
        "settings:\n  tags: [a, b]\nmappings:\n  - name: m\n".to_string(),
        "settings:\n  dedupe_window: 1 day\nmappings:\n  - name: m\n".to_string(),
        "settings:\n  role_session_duration_seconds: 60\nmappings:\n  - name: m\n".to_string(),
        "mappings: []\n".to_string(),
        "mappings: {}\n".to_string(),
        m("    triger: 'type = \"track\"'\n"),
        m("    enabled: yes please\n"),
        m("    batch_size: 0\n"),
        m("    batch_size: 1.5\n"),
        m("    batch_size: \"100\"\n"),
        m("    delimiter: \";;\"\n"),
        m("    file_extension: pdf\n"),
        m("    compression: zip\n"),
        m("    action: sendToWebhook\n"),
        m("    trigger: 3\n"),
        m("    columns: [a, b]\n"),
        m("    columns: {}\n"),
        m("    columns:\n      a: { \"@pth\": \"$.a\" }\n"),
        m("    columns:\n      a: { \"@path\": \"$.a\", \"@template\": \"x\" }\n"),
        m("    columns:\n      a: { \"@path\": \"$.a\", \"x\": 1 }\n"),
        m("    columns:\n      a: { \"@if\": { \"then\": 1 } }\n"),
        m("    columns:\n      a: { \"@case\": { \"operator\": \"title\", \"value\": \"x\" } }\n"),
        m("    columns:\n      a: { \"@liquid\": 3 }\n"),
        m("    columns:\n      a: { \"@arrayPath\": \"$.a\" }\n"),
        m("    columns_to_transform:\n      - { column_name: event_name, hash_algorithm: md5 }\n"),
        m("    columns_to_transform:\n      - { hash_algorithm: sha256 }\n"),
        m("    columns_to_transform:\n      - { column_name: event_name, salt: x }\n"),
        m("    traits_or_props: { \"@nope\": 1 }\n"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad-{i}.yaml"), case);
        let o = run(&["validate", &path]);
        assert_exit(&o, 2);
        assert!(
            !v.is_valid(&yaml_to_json(case)),
            "the schema accepts what validate refuses:\n{case}\nvalidate said: {}",
            output_text(&o)
        );
    }
}

/// The rows of the README's "Mapping keys" and "Settings keys" tables: (key, meaning).
fn readme_rows(section: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("### {section}\n"))
        .unwrap_or_else(|| panic!("README has no ### {section}"));
    let mut rows = Vec::new();
    for line in readme[start..].lines().skip(1) {
        if line.starts_with("###") || line.starts_with("## ") {
            break;
        }
        if !line.starts_with("| `") {
            if !rows.is_empty() && !line.starts_with('|') {
                break;
            }
            continue;
        }
        // Cells are split on | not written as \|.
        let cells: Vec<String> = line
            .replace("\\|", "\u{0}")
            .split('|')
            .map(|c| c.trim().replace('\u{0}', "|"))
            .collect();
        let (keys, meaning) = (&cells[1], &cells[3]);
        for key in keys.split(", ") {
            rows.push((key.trim_matches('`').to_string(), meaning.clone()));
        }
    }
    rows
}

#[test]
fn descriptions_are_the_readme_tables() {
    let s = schema();
    for (section, props) in [
        (
            "Mapping keys",
            &s["properties"]["mappings"]["items"]["properties"],
        ),
        ("Settings keys", &s["properties"]["settings"]["properties"]),
    ] {
        let rows = readme_rows(section);
        let props = props.as_object().unwrap();
        for (key, meaning) in &rows {
            let p = props
                .get(key)
                .unwrap_or_else(|| panic!("README {section}: `{key}` has no schema entry"));
            assert_eq!(
                p["description"],
                J::from(meaning.as_str()),
                "{section}: {key}"
            );
        }
        for key in props.keys() {
            assert!(
                rows.iter().any(|(k, _)| k == key),
                "`{key}` is in the schema but not in the README's {section} table"
            );
        }
    }
}

#[test]
fn init_writes_starters_that_validate_and_pass_the_schema() {
    let v = validator();
    for flag in ["--classic", "--audiences", "--reverse-etl"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        let o = run(&["init", flag, file.to_str().unwrap()]);
        assert_ok(&o);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema=mapping.schema.json\n"));
        assert!(v.is_valid(&yaml_to_json(&text)), "{flag}");
        assert_ok(&run(&["validate", file.to_str().unwrap()]));
        let schema = std::fs::read_to_string(dir.path().join("mapping.schema.json")).unwrap();
        assert_eq!(serde_json::from_str::<J>(&schema).unwrap(), self::schema());
        // Never replaced.
        std::fs::write(&file, "mine").unwrap();
        let o = run(&["init", flag, file.to_str().unwrap()]);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    }
    let o = run(&["init", "--classic", "--audiences", "x.yaml"]);
    assert_exit(&o, 2);
}

#[test]
fn completions_and_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert_ok(&o);
        let text = stdout(&o);
        for cmd in [
            "replay",
            "import",
            "export",
            "schema",
            "init",
            "completions",
        ] {
            assert!(text.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let o = run(&["man"]);
    assert_ok(&o);
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") && page.contains(".TH s3actions 1"),
        "{page}"
    );
    assert!(page.contains("import") && page.contains("schema"));
}
