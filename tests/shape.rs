//! Runs parse only the parts of an event their mappings read (`Mapping::event_shape`).
//! These tests check that this never changes a result: for every bundled and test mapping
//! and every fixture event, the trigger, the folder and the encoded row are the same with
//! the shaped parse as with the full parse. (Tests build with debug assertions, which also
//! stop any code that looks inside a part the shape left unparsed.)

use std::path::Path;

use s3actions::encode::Encoder;
use s3actions::expr::Value;
use s3actions::json::{Shape, Tape};
use s3actions::mapping::{Config, Mapping};

/// Paths into arrays and objects, `@if` over nested paths, a folder printing an array, a
/// trigger on nested properties, and the audience action over `properties`.
const SHAPED_MAPPINGS: &str = r#"
mappings:
  - name: nested
    trigger: 'type = "track" and (properties.revenue > 100 or context.page.path = "/blog")'
    s3_aws_folder_name: "by-tags/{{properties.products}}/{{context.library.name}}/"
    columns:
      first_sku: { "@path": "$.properties.products[0].sku" }
      product_count: { "@path": "$.properties.products.length" }
      products: { "@path": "$.properties.products" }
      page: { "@path": "$.context.page" }
      email:
        "@if":
          exists: { "@path": "$.traits.email" }
          then: { "@path": "$.traits.email" }
          else: { "@path": "$.context.traits.email" }
      city: { "@path": "$.traits.address.city" }
      id_first_char: { "@path": "$.userId.0" }
      whole: { "@path": "$." }
  - name: audience
    trigger: 'event = "Audience Entered" or event = "Audience Exited" or type = "identify"'
    s3_aws_folder_name: "audiences/{{context.personas.computation_key}}/"
    columns:
      user_id: { "@path": "$.userId" }
      audience_action: { "@path": "$.properties.x" }
  - name: defaults
    trigger: 'type = "identify" or type = "track"'
"#;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn configs() -> Vec<Config> {
    let mut out = vec![Config::from_str(SHAPED_MAPPINGS, Path::new("shaped.yaml")).unwrap()];
    for file in [
        "mappings/events.yaml",
        "mappings/audiences.yaml",
        "mappings/reverse-etl.yaml",
        "tests/golden/edge-cases.yaml",
    ] {
        out.push(Config::load(&root().join(file)).unwrap());
    }
    out
}

fn events() -> Vec<String> {
    let mut out = Vec::new();
    for file in [
        "fixtures/events.ndjson",
        "fixtures/audiences.ndjson",
        "fixtures/reverse-etl.ndjson",
        "fixtures/bad-input.ndjson",
        "tests/golden/edge-cases.ndjson",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        out.extend(text.lines().map(str::to_string));
    }
    // Non-canonical values inside parts nobody reads are still printed the JavaScript way.
    out.push(r#"{"type":"track","event":"E","userId":"u1","properties":{"revenue":500, "products":[{"sku":"A","price":1.50}],"x":true},"context":{"page":{"path" : "/blog","n":1e3},"traits":{"email":"x@y.z"},"library":{"name":"lib"}},"traits":{"address":{"city":"Ber\u006cin"}}}"#.to_string());
    out.push(r#"{"type":"identify","userId":"u2","traits":{"email":null,"k":{"a":1,"a":2}},"context":{"personas":{"computation_key":["a",1]},"traits":{"email":"E@x.io"}},"properties":{"a,1":[1.0]}}"#.to_string());
    out
}

fn row(m: &Mapping, event: Value<'_>) -> Result<String, String> {
    let mut out = Vec::new();
    Encoder::new()
        .encode_row(m, &event, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn shaped_parse_gives_the_same_rows_as_the_full_parse() {
    let events = events();
    let mut compared = 0;
    for config in configs() {
        for m in &config.mappings {
            let shape = m.event_shape();
            let mut full_tape = Tape::new();
            let mut shaped_tape = Tape::new();
            for text in &events {
                let full = full_tape.parse(text);
                let shaped = shaped_tape.parse_shaped(text, &shape);
                let (full, shaped) = match (full, shaped) {
                    (Ok(f), Ok(s)) => (f, s),
                    (Err(f), Err(s)) => {
                        assert_eq!(f, s, "{text}");
                        continue;
                    }
                    (f, s) => panic!("parses disagree on {text}: {f:?} / {s:?}"),
                };
                if !matches!(full.kind(), s3actions::json::Kind::Object) {
                    continue;
                }
                let matched = m.trigger.matches(full);
                assert_eq!(matched, m.trigger.matches(shaped), "{}: {text}", m.name);
                let (mut a, mut b, mut scratch) = (String::new(), String::new(), String::new());
                m.folder.render_into(full, &mut a, &mut scratch);
                m.folder.render_into(shaped, &mut b, &mut scratch);
                assert_eq!(a, b, "{}: {text}", m.name);
                assert_eq!(
                    row(m, Value::Node(full)),
                    row(m, Value::Node(shaped)),
                    "{}: {text}",
                    m.name
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "only {compared} rows compared");
}

/// Mappings whose columns the shape cannot see through parse everything.
#[test]
fn general_expressions_read_the_whole_event() {
    let config = Config::from_str(
        "mappings:\n  - name: t\n    columns:\n      x: { \"@template\": \"{{userId}}\" }\n",
        Path::new("t.yaml"),
    )
    .unwrap();
    assert!(config.mappings[0].event_shape().is_all());
    let config = Config::from_str(SHAPED_MAPPINGS, Path::new("shaped.yaml")).unwrap();
    assert!(!config.mappings[0].event_shape().is_all());
    assert_ne!(config.mappings[0].event_shape(), Shape::all());
}
