use super::*;
use crate::json::Tape;

fn m(fql: &str, event: &str) -> bool {
    let t = Trigger::parse(fql).unwrap_or_else(|e| panic!("{fql}: {e}"));
    let mut tape = Tape::new();
    t.matches(tape.parse(event).unwrap())
}

fn err(fql: &str) -> String {
    Trigger::parse(fql)
        .map(|_| "no error".to_string())
        .unwrap_or_else(|e| e.to_string())
}

const TRACK: &str = r#"{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":12,"total_s":"12","zero":0,"str":"Hello World","flag":true,"sflag":"true","nul":null,"nested":{"a":{"b":5}},"arr":[1,2]},"context":{"ip":"1.1.1.1","personas":{"computation_key":"aud"}}}"#;
const IDENTIFY: &str = r#"{"type":"identify","userId":"u2","traits":{"plan":"pro","logins":12,"vip":false,"name":"O'Brien, \"Jr\""}}"#;

#[test]
fn fields() {
    assert!(m(r#"type = "track""#, TRACK));
    assert!(!m(r#"type = "track""#, IDENTIFY));
    assert!(m(r#"event = "Order Completed""#, TRACK));
    assert!(m(r#"userId = "u1""#, TRACK));
    assert!(m(r#"name = null"#, TRACK));
    assert!(m(r#"properties.nested.a.b = 5"#, TRACK));
    assert!(m(r#"traits.plan = "pro""#, IDENTIFY));
    assert!(m(r#"context.personas.computation_key = "aud""#, TRACK));
    assert!(m(r#"properties.arr[1] = 2"#, TRACK));
    // properties are not traits, whatever the event type.
    assert!(!m(r#"properties.plan = "pro""#, IDENTIFY));
}

#[test]
fn null_and_presence() {
    assert!(m("userId != null", TRACK));
    assert!(m("properties.nul = null", TRACK));
    assert!(m("properties.missing = null", TRACK));
    assert!(!m("properties.nul != null", TRACK));
    assert!(m("properties.zero != null", TRACK));
    // On type and event, null is the string "null".
    assert!(m("type != null", TRACK));
    assert!(!m("event = null", TRACK));
    assert!(m(r#"event = null"#, r#"{"event":"null"}"#));
}

#[test]
fn typing_rules() {
    assert!(m("properties.flag = true", TRACK));
    assert!(!m("properties.sflag = true", TRACK));
    assert!(m(r#"properties.sflag = "true""#, TRACK));
    assert!(!m(r#"properties.flag = "true""#, TRACK));
    assert!(m("traits.vip = false", IDENTIFY));
    assert!(m("properties.total = 12", TRACK));
    assert!(!m("properties.total_s = 12", TRACK));
    assert!(!m(r#"properties.total = "12""#, TRACK));
    assert!(m(r#"properties.total_s = "12""#, TRACK));
    assert!(
        !m("properties.total_s != 12", TRACK),
        "a non-number never matches != <number>"
    );
    assert!(m("properties.total != 13", TRACK));
    assert!(!m("properties.missing != 13", TRACK));
    assert!(
        m(r#"properties.missing != "x""#, TRACK),
        "absent values match != <string>"
    );
    assert!(m(r#"properties.total != "12""#, TRACK));
    assert!(m("properties.total > 10", TRACK));
    assert!(m(r#"properties.total > "10""#, TRACK));
    assert!(!m("properties.total_s > 10", TRACK));
    assert!(m("properties.total <= 12", TRACK));
    assert!(!m("properties.total < 12", TRACK));
    assert!(m("properties.total >= 11.5", TRACK));
    assert!(!m("properties.missing < 100", TRACK));
    assert!(m("type = track", TRACK), "a bare word is a string");
    assert!(m("type = 123", r#"{"type":"123"}"#));
    assert!(
        m("type = 5.0", r#"{"type":"5"}"#),
        "numbers are written as JavaScript prints them"
    );
    assert!(m("userId = 5", r#"{"userId":"5"}"#));
    assert!(!m("userId = 5", r#"{"userId":5}"#));
    assert!(m("userId = true", r#"{"userId":true}"#));
    assert!(m("name = true", r#"{"name":"true"}"#));
}

#[test]
fn functions() {
    assert!(m(r#"contains(event, "Order")"#, TRACK));
    assert!(!m(r#"contains(properties.total, "1")"#, TRACK));
    assert!(m(r#"!contains(event, "Refund")"#, TRACK));
    assert!(
        !m(r#"!contains(properties.missing, "x")"#, TRACK),
        "a non-string never matches, negated or not"
    );
    assert!(m(r#"match(event, "Order*")"#, TRACK));
    assert!(m(r#"match(event, "*Completed")"#, TRACK));
    assert!(
        m(r#"match(event, "xCompleted")"#, TRACK),
        "the first character is taken as '*'"
    );
    assert!(
        m(r#"match(event, "Completed")"#, TRACK),
        "tests the suffix \"ompleted\""
    );
    assert!(!m(r#"match(event, "Order")"#, TRACK));
    assert!(m(r#"match(event, "*d")"#, TRACK));
    assert!(!m(r#"!match(event, "Order*")"#, TRACK));
    assert!(m(r#"!match(properties.str, "x*")"#, TRACK));
    assert!(m(r#"contains(traits.name, "\"Jr\"")"#, IDENTIFY));
    assert!(m(r#"traits.name = "O'Brien, \"Jr\"""#, IDENTIFY));
}

#[test]
fn grouping_and_segments_quirk() {
    assert!(m(r#"type = "identify" or type = "track""#, TRACK));
    assert!(m(
        r#"type = "track" and (event = "x" or event = "Order Completed")"#,
        TRACK
    ));
    assert!(!m(
        r#"type = "track" and (event = "x" or event = "y")"#,
        TRACK
    ));
    // Segment applies the last conjunction of a group to all of it: a and b or c = a or b or c.
    assert!(m(
        r#"type = "page" and event = "x" or userId = "u1""#,
        TRACK
    ));
    // ... and the last 'and' makes everything 'and'.
    assert!(!m(
        r#"type = "track" or event = "x" and userId = "u1""#,
        TRACK
    ));
    let t = Trigger::parse(r#"type = "page" and event = "x" or userId = "u1""#).unwrap();
    assert!(t.warnings()[0].contains("parentheses"));
    // Nested parentheses work (Segment's own parser cannot nest).
    assert!(m(
        r#"(type = "track" and (userId = "u1" or userId = "u9")) or type = "page""#,
        TRACK
    ));
    // '!' before a condition is ignored, as Segment ignores it, with a warning.
    let t = Trigger::parse(r#"!type = "track""#).unwrap();
    assert!(!t.warnings().is_empty());
    assert!(m(r#"!type = "track""#, TRACK));
}

#[test]
fn errors_with_positions() {
    assert_eq!(
        err(""),
        "1:1: the trigger is empty; expected a condition such as type = \"track\""
    );
    assert_eq!(
        err("type = "),
        "1:8: expected a value after '=', found the end of the trigger"
    );
    assert_eq!(
        err("type"),
        "1:5: expected an operator (=, !=, <, <=, >, >=) after 'type', found the end of the trigger"
    );
    assert!(err(r#"type * "x""#).starts_with("1:6: unexpected character '*'"));
    assert!(err(r#"foo = "x" and type = "track""#).starts_with("1:1: unknown field 'foo'"));
    assert!(err(r#"evnt = "x""#).contains("did you mean event?"));
    assert!(err(r#"(type = "track""#).contains("expected ')'"));
    assert!(err(r#"type = "track")"#).contains("unmatched ')'"));
    assert!(err(r#"contains(type, "t")"#).contains("does not work on 'type'"));
    assert!(err(r#"type = "track" and"#).contains("expected a condition after 'and'"));
    assert!(err("()").contains("empty parentheses"));
    assert!(err(r#"type = "a" "b""#).contains("expected 'and', 'or'"));
}

/// Thousands of parentheses (or '!'s) are an error naming the position, not a stack
/// overflow; nesting up to the limit still parses.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        "{}type = \"track\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let e = Trigger::parse(&deep).unwrap_err();
    assert_eq!((e.line, e.col), (1, 101));
    assert!(e.message.contains("nested more than 100"), "{e}");
    let ok = format!(
        "{}type = \"track\"{}",
        "(".repeat(parser::MAX_DEPTH),
        ")".repeat(parser::MAX_DEPTH)
    );
    assert!(Trigger::parse(&ok).is_ok());
    let bangs = format!("{}type = \"track\"", "!".repeat(100_000));
    let t = Trigger::parse(&bangs).unwrap();
    assert_eq!(t.root(), Trigger::parse("type = \"track\"").unwrap().root());
    let negated = format!("{}contains(event, \"a\")", "!".repeat(1_000));
    assert_eq!(
        Trigger::parse(&negated).unwrap().root(),
        Trigger::parse("!contains(event, \"a\")").unwrap().root()
    );
}

/// Random token soup, multi-byte characters included: parsed or refused, never a panic.
#[test]
fn random_triggers_never_panic() {
    let pieces = [
        "(",
        ")",
        "!",
        "and",
        "or",
        " ",
        "type",
        "=",
        "!=",
        "<",
        ">=",
        "\"",
        "'",
        "é",
        "😀",
        "properties.a",
        "contains",
        "match",
        ",",
        "\"x*\"",
        "1e999",
        "-",
        ".",
        "[",
        "]",
        "\\",
        "\n",
        "null",
        "true",
    ];
    let mut tape = crate::json::Tape::new();
    let event = tape
        .parse(r#"{"type":"track","properties":{"a":"é"}}"#)
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20_000 {
        let n = rng.usize(1..14);
        let t: String = (0..n).map(|_| pieces[rng.usize(..pieces.len())]).collect();
        if let Ok(t) = Trigger::parse(&t) {
            let _ = t.matches(event);
        }
    }
}
