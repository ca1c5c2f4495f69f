use super::*;

fn load(yaml: &str) -> Result<Config, String> {
    Config::from_str(yaml, Path::new("m.yaml")).map_err(|e| e.to_string())
}

/// Loads with `${VAR}` looked up in `vars` instead of the process environment.
fn load_with_env(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .ok_or(std::env::VarError::NotPresent)
    };
    Config::from_str_with_env(yaml, Path::new("m.yaml"), &env).map_err(|e| e.to_string())
}

#[test]
fn minimal_mapping_gets_segment_defaults() {
    let c = load("mappings:\n  - name: events\n").unwrap();
    let m = &c.mappings[0];
    assert_eq!(m.trigger.source(), DEFAULT_TRIGGER);
    assert_eq!(m.batch_size, 100_000);
    assert_eq!(m.row.delimiter, b',');
    assert_eq!(m.extension, Extension::Csv);
    assert_eq!(
        String::from_utf8(crate::encode::format_for(m).header().to_vec()).unwrap(),
        "event_name,event_type,user_id,anonymous_id,email,properties,traits,context,timestamp,message_id,integrations,audience_name,audience_id,audience_space_id,audience_action,batch_size"
    );
}

#[test]
fn columns_order_blank_and_header_cleaning() {
    let c = load(
        r#"
mappings:
  - name: m
    delimiter: "|"
    columns:
      b: {"@path": "$.b"}
      "a|x": {"@path": "$.a"}
      skipped: ""
    audience_action_column_name: ""
    batch_size_column_name: "rows"
"#,
    )
    .unwrap();
    let m = &c.mappings[0];
    assert_eq!(
        String::from_utf8(crate::encode::format_for(m).header().to_vec()).unwrap(),
        "b|ax|rows"
    );
    assert!(m.row.audience_action.is_none());
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let err = load(
        r#"settings:
  s3_aws_bucket_name: s3://acme
  iam_role_arn: arn:aws:iam::123:role/x
  regoin: us-east-1
mappings:
  - name: a
    trigger: 'type = '
    delimeter: ","
    batch_size: 0
    columns:
      email: {"@if": {"then": 1}}
    file_extension: xls
    columns_to_transform:
      - column_name: emial
        hash_algorithm: md5
"#,
    )
    .unwrap_err();
    for want in [
        "m.yaml:2:23: settings.s3_aws_bucket_name: \"s3://acme\" is a URI or ARN",
        "m.yaml:3:17: settings.iam_role_arn:",
        "the account ID must be 12 digits",
        "m.yaml:4:3: settings: unknown key \"regoin\"; did you mean \"s3_aws_region\"?",
        "m.yaml:7:14: mappings[0].trigger: 1:8: expected a value after '='",
        "unknown key \"delimeter\"; did you mean \"delimiter\"?",
        "mappings[0].batch_size: should be a whole number from 1 to 10000000, not 0",
        "mappings[0].columns.email.@if: needs an \"exists\" or a \"blank\" condition",
        "mappings[0].file_extension: should be \"csv\" or \"txt\", not \"xls\"",
        "mappings[0].columns_to_transform[0].column_name: \"emial\" is not a column of this mapping; did you mean \"email\"?",
        "mappings[0].columns_to_transform[0].hash_algorithm: should be one of none, sha256, not \"md5\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn delimiters_come_from_one_table() {
    for &(d, name) in DELIMITERS {
        let c = load(&format!(
            "mappings:\n  - name: m\n    delimiter: {name:?}\n"
        ))
        .unwrap();
        assert_eq!(c.mappings[0].row.delimiter, d.byte(), "{name}");
    }
    assert_eq!(Delimiter::parse("\t"), Some(Delimiter::Tab));
    assert_eq!(Delimiter::Tab.name(), "tab");
}

#[test]
fn settings_and_secrets() {
    let env = [("S3ACTIONS_TEST_EXTERNAL_ID", "ext-123")];
    let c = load_with_env(
        r#"
settings:
  s3_aws_bucket_name: acme-events
  s3_aws_region: us-east-1
  iam_role_arn: arn:aws:iam::123456789012:role/s3-actions-writer
  iam_external_id: ${S3ACTIONS_TEST_EXTERNAL_ID}
  tags: {team: data, n: 3}
mappings:
  - name: m
"#,
        &env,
    )
    .unwrap();
    assert_eq!(c.settings.external_id.as_ref().unwrap().expose(), "ext-123");
    assert!(!format!("{:?}", c.settings).contains("ext-123"));
    assert_eq!(
        c.settings.tags,
        vec![("team".into(), "data".into()), ("n".into(), "3".into())]
    );
    // An unset variable only matters for uploading: a warning at load, an error for upload.
    let c = load_with_env(
        "settings:\n  iam_external_id: ${S3ACTIONS_NOT_SET_ANYWHERE}\nmappings:\n  - name: m\n",
        &env,
    )
    .unwrap();
    assert!(
        c.warnings[0]
            .to_string()
            .contains("environment variable S3ACTIONS_NOT_SET_ANYWHERE is not set")
    );
    let problems = c.settings.check_for_upload().unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(text[0].contains("S3ACTIONS_NOT_SET_ANYWHERE"), "{text:?}");
    assert!(
        text.iter()
            .any(|t| t.contains("s3_aws_bucket_name: is required to upload")),
        "{text:?}"
    );
}

#[test]
fn duplicate_names_and_bad_structure() {
    assert!(
        load("mappings:\n  - name: a\n  - name: a\n")
            .unwrap_err()
            .contains("duplicate mapping name")
    );
    assert!(
        load("mappings: {}\n")
            .unwrap_err()
            .contains("should be a list of mappings")
    );
    assert!(
        load("settings: {}\n")
            .unwrap_err()
            .contains("mappings: is missing")
    );
    assert!(
        load("mappings:\n  - name: a\n    columns: {batch_size: {'@path': '$.x'}}\n")
            .unwrap_err()
            .contains("rename one")
    );
    let e = load("mappings:\n  - name: a\n    columns:\n      x: {'@path': '$.a'}\n     y: 1\n")
        .unwrap_err();
    assert!(e.starts_with("m.yaml:"), "{e}");
}

#[test]
fn batch_age_limit() {
    let c = load("mappings:\n  - name: m\n    batch_max_age_seconds: 30\n").unwrap();
    assert_eq!(
        c.mappings[0].batch_max_age,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        load("mappings:\n  - name: m\n").unwrap().mappings[0].batch_max_age,
        None
    );
    for bad in ["0", "1.5", "\"30s\"", "999999999"] {
        let e = load(&format!(
            "mappings:\n  - name: m\n    batch_max_age_seconds: {bad}\n"
        ))
        .unwrap_err();
        assert!(e.contains("batch_max_age_seconds"), "{bad}: {e}");
    }
}

/// Found by fuzzing (`fuzz/fuzz_targets/csv_roundtrip.rs`): a quote or escape character
/// that is the delimiter made files that no reader can split; they are refused. An escape
/// character that is the quote is the quote doubled.
#[test]
fn csv_quote_and_escape_must_differ_from_the_delimiter() {
    let with = |keys: &str| load(&format!("mappings:\n  - name: m\n    {keys}\n"));
    let err = with("delimiter: \";\"\n    quote: \";\"").unwrap_err();
    assert!(
        err.contains("mappings[0].quote: \";\" is the delimiter"),
        "{err}"
    );
    let err = with("delimiter: \"|\"\n    escape: \"|\"").unwrap_err();
    assert!(
        err.contains("mappings[0].escape: \"|\" is the delimiter"),
        "{err}"
    );
    let c = with("quote: \"'\"\n    escape: \"'\"").unwrap();
    assert_eq!(c.mappings[0].csv.escape, Escape::Double);
    let c = with("quote: \"'\"\n    escape: \"\\\\\"").unwrap();
    assert_eq!(c.mappings[0].csv.escape, Escape::Char(b'\\'));
}
