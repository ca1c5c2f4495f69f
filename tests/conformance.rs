//! Cases computed by Segment's own code (`tests/conformance/*.json`): resolving a mapping
//! against an event, and evaluating a trigger against an event, must give Segment's answer.

use s3actions::expr::{Value, compile_top_level, eval};
use s3actions::json::Tape;
use s3actions::spanned::SNode;
use s3actions::trigger::Trigger;
use serde_json::Value as J;

fn cases(file: &str) -> Vec<J> {
    let path = format!("{}/tests/conformance/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str::<Vec<J>>(&text).unwrap()
}

#[test]
fn mapping_kit_cases() {
    check_mapping_cases(cases("mapping-kit-sample.json"));
}

/// `@liquid` templates rendered by liquidjs configured as Segment's mapping-kit configures it
/// (`scripts/liquidjs-cases.js`), all against one event.
#[test]
fn liquidjs_cases() {
    let path = format!(
        "{}/tests/conformance/liquidjs-event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: J = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut all = cases("liquidjs.json");
    for case in &mut all {
        case["event"] = event.clone();
    }
    assert!(all.len() > 2000, "the liquidjs cases are missing");
    check_mapping_cases(all);
}

fn check_mapping_cases(cases: Vec<J>) {
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let mapping = SNode::from_json(&case["mapping"]);
        let event = serde_json::to_string(&case["event"]).unwrap();
        let expect_error = case["expect_error"].as_bool().unwrap_or(false);
        let result = compile_top_level(&mapping)
            .map_err(|e| format!("{e:?}"))
            .and_then(|expr| {
                let mut tape = Tape::new();
                let root = tape.parse(&event).map_err(|e| e.to_string())?;
                if root.kind() != s3actions::json::Kind::Object {
                    return Err("event is not an object".to_string());
                }
                eval(&expr, &Value::Node(root))
                    .map(|v| v.remove_undefined().to_json_string())
                    .map_err(|e| e.to_string())
            });
        let ok = match (&result, expect_error) {
            (Err(_), true) => true,
            (Ok(_), true) | (Err(_), false) => false,
            (Ok(out), false) => {
                if case["expect_absent"].as_bool().unwrap_or(false) {
                    out.is_none()
                } else {
                    out.as_deref()
                        .map(|s| serde_json::from_str::<J>(s).unwrap())
                        == Some(case["expect"].clone())
                }
            }
        };
        if !ok {
            failures.push(format!(
                "case {i} ({}): {} -> {result:?}, expected {}",
                case["directive"],
                case["mapping"],
                case.get("expect").unwrap_or(&J::Null)
            ));
        }
    }
    assert_all_pass(&failures);
}

#[test]
fn fql_cases() {
    let mut failures = Vec::new();
    for (i, case) in cases("fql-sample.json").into_iter().enumerate() {
        let fql = case["fql"].as_str().unwrap();
        let event = serde_json::to_string(&case["event"]).unwrap();
        let superset = case["superset"].as_bool().unwrap_or(false);
        let expect_error = case["expect_error"].as_bool().unwrap_or(false)
            || case["deviation"].as_bool().unwrap_or(false);
        let got = Trigger::parse(fql).map(|t| {
            let mut tape = Tape::new();
            t.matches(tape.parse(&event).unwrap())
        });
        let ok = match (&got, expect_error) {
            (Err(_), true) => true,
            (Ok(_), true) => superset,
            (Err(_), false) => false,
            (Ok(b), false) => Some(*b) == case["expect"].as_bool(),
        };
        if !ok {
            failures.push(format!(
                "case {i}: {fql} -> {got:?}, expected {}",
                case.get("expect").unwrap_or(&J::Null)
            ));
        }
    }
    assert_all_pass(&failures);
}

fn assert_all_pass(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
