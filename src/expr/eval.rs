//! Resolution of compiled expressions against an event.

use std::borrow::Cow;
use std::fmt;

use super::replace::js_replace;
use super::{Const, Expr, IfMode, JsonMode};
use crate::value::Path;
use crate::value::{Object, Type, Value, set};

/// A failure that depends on the event (e.g. `@path` given a directive that resolved to a
/// number). Reported per event, never for the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(msg.into()))
}

/// The text of a directive argument given as a nested directive (`{"@path": {"@template":
/// ...}}`): it must resolve to a string.
fn dynamic_text<'a>(
    inner: &'a Expr,
    payload: &Value<'a>,
    directive: &str,
) -> Result<String, EvalError> {
    let v = eval(inner, payload)?;
    match v.as_str() {
        Some(s) => Ok(s.into_owned()),
        None => fail(format!(
            "{directive}: expected string, got {}",
            v.type_of().name()
        )),
    }
}

/// Resolves `expr` against `payload` (the event, or the value a directive such as
/// `@arrayPath` or `@transform` resolves against).
pub fn eval<'a>(expr: &'a Expr, payload: &Value<'a>) -> Result<Value<'a>, EvalError> {
    Ok(match expr {
        Expr::Const(c) => match c {
            Const::Null => Value::Null,
            Const::Bool(b) => Value::Bool(*b),
            Const::Number(n) => Value::Number(*n),
            Const::String(s) => Value::String(Cow::Borrowed(s)),
        },
        Expr::Object(members) => {
            let mut out: Object<'a> = Vec::with_capacity(members.len());
            for (k, e) in members {
                let v = eval(e, payload)?;
                set(&mut out, Cow::Borrowed(k), v);
            }
            Value::Object(out)
        }
        Expr::Array(items) => Value::Array(
            items
                .iter()
                .map(|e| eval(e, payload))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Path(p) => p.lookup(payload),
        Expr::PathDyn(inner) => {
            let path = dynamic_text(inner, payload, "@path")?;
            Path::parse(&path)
                .map_err(|e| EvalError(e.to_string()))?
                .lookup(payload)
        }
        Expr::Template(t) => Value::owned_str(t.render(payload)),
        Expr::TemplateDyn(inner) => {
            let text = dynamic_text(inner, payload, "@template")?;
            let t = super::Template::compile(&text).map_err(|e| EvalError(e.to_string()))?;
            Value::owned_str(t.render(payload))
        }
        Expr::If {
            mode,
            cond,
            then,
            otherwise,
        } => {
            let v = eval(cond, payload)?;
            let holds = match mode {
                IfMode::Exists => !v.is_nullish(),
                IfMode::Blank => !v.is_nullish() && !v.loosely_equals_empty_string(),
            };
            match (holds, then, otherwise) {
                (true, Some(t), _) => eval(t, payload)?,
                (false, _, Some(e)) => eval(e, payload)?,
                _ => Value::Undefined,
            }
        }
        Expr::Case { upper, value } => match value {
            None => Value::Undefined,
            Some(e) => {
                let v = eval(e, payload)?;
                match v.as_str() {
                    Some(s) if *upper => Value::owned_str(s.to_uppercase()),
                    Some(s) => Value::owned_str(s.to_lowercase()),
                    None => v,
                }
            }
        },
        Expr::Replace(r) => match &r.value {
            None => Value::Undefined,
            Some(e) => {
                let v = eval(e, payload)?;
                let text = match v.type_of() {
                    Type::String | Type::Number | Type::Boolean => v.to_js_string(),
                    _ => return Ok(Value::str("")),
                };
                let mut out =
                    js_replace(&text, &r.pattern, &r.replacement, r.global, r.ignore_case);
                if let Some((p2, r2)) = &r.second {
                    out = js_replace(&out, p2, r2, r.global, r.ignore_case);
                }
                Value::owned_str(out)
            }
        },
        Expr::ArrayPath { root, shape } => {
            let root = eval(root, payload)?;
            match (root.type_of(), shape) {
                (Type::Object | Type::Array, Some(shape)) => {
                    let items = if root.type_of() == Type::Array {
                        root.elements()
                    } else {
                        vec![root]
                    };
                    Value::Array(
                        items
                            .iter()
                            .map(|item| eval(shape, item))
                            .collect::<Result<_, _>>()?,
                    )
                }
                _ => root,
            }
        }
        Expr::Merge { objects, left } => {
            let mut values = objects
                .iter()
                .map(|e| eval(e, payload))
                .collect::<Result<Vec<_>, _>>()?;
            if *left {
                values.reverse();
            }
            // Object.assign({}, ...values)
            let mut out: Object<'a> = Vec::new();
            for v in values {
                if matches!(v.type_of(), Type::Object | Type::Array | Type::String) {
                    for (k, val) in v.entries() {
                        set(&mut out, k, val);
                    }
                }
            }
            Value::Object(out)
        }
        Expr::Transform { apply, mapping } => {
            if payload.type_of() != Type::Object {
                return fail(format!(
                    "@transform: data must be an object, got {}",
                    payload.type_of().name()
                ));
            }
            let applied = eval(apply, payload)?.remove_undefined();
            eval(mapping, &applied)?
        }
        Expr::Flatten {
            value,
            separator,
            omit_arrays,
        } => {
            let v = eval(value, payload)?;
            let mut out = Vec::new();
            flatten(&mut out, v, String::new(), separator, *omit_arrays);
            Value::Object(out)
        }
        Expr::Json { mode, value } => {
            let v = eval(value, payload)?;
            match mode {
                JsonMode::Encode => v
                    .to_json_string()
                    .map_or(Value::Undefined, Value::owned_str),
                JsonMode::Decode => match v.as_str() {
                    Some(s) => match serde_json::from_str::<serde_json::Value>(&s) {
                        Ok(parsed) => Value::from_serde(&parsed),
                        Err(_) => v,
                    },
                    None => v,
                },
                JsonMode::Inert => Value::Undefined,
            }
        }
        Expr::ExcludeWhenNull(inner) => {
            let v = eval(inner, payload)?;
            if v.type_of() == Type::Null {
                Value::Undefined
            } else {
                clean_nulls(v)
            }
        }
        Expr::Liquid(l) => {
            Value::owned_str(l.render(payload).map_err(|e| EvalError(e.to_string()))?)
        }
    })
}

/// Segment's `flattenObject`: nested objects (and arrays unless `omit_arrays`) become one
/// level with joined keys; anything else is stored under the prefix.
fn flatten<'a>(out: &mut Object<'a>, v: Value<'a>, prefix: String, sep: &str, omit_arrays: bool) {
    let t = v.type_of();
    if t == Type::Object || (t == Type::Array && !omit_arrays) {
        for (k, child) in v.entries() {
            let key = if prefix.is_empty() {
                k.into_owned()
            } else {
                format!("{prefix}{sep}{k}")
            };
            flatten(out, child, key, sep, omit_arrays);
        }
    } else {
        set(out, Cow::Owned(prefix), v);
    }
}

/// `@excludeWhenNull` on an object: members that are null become undefined (and are
/// dropped), nested objects too; arrays are left as they are.
fn clean_nulls(v: Value<'_>) -> Value<'_> {
    if v.type_of() != Type::Object {
        return v;
    }
    Value::Object(
        v.entries()
            .into_iter()
            .map(|(k, child)| match child.type_of() {
                Type::Null => (k, Value::Undefined),
                Type::Object => (k, clean_nulls(child)),
                _ => (k, child),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{compile, compile_top_level};
    use crate::json::Tape;
    use crate::spanned::parse_json_or_yaml;

    /// Resolves like Segment's transform(): top-level spread, then removeUndefined.
    fn run(mapping: &str, event: &str) -> Option<String> {
        let node = parse_json_or_yaml(mapping).unwrap();
        resolve(&compile_top_level(&node).unwrap(), event)
    }

    /// One mapping value, without the top-level spread.
    fn one(mapping: &str, event: &str) -> Option<String> {
        let node = parse_json_or_yaml(mapping).unwrap();
        resolve(&compile(&node, "").unwrap(), event)
    }

    fn resolve(expr: &Expr, event: &str) -> Option<String> {
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(event).unwrap());
        eval(expr, &root)
            .unwrap()
            .remove_undefined()
            .to_json_string()
    }

    const EV: &str = r#"{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":12,"total_s":"12","zero":0,"empty":"","f":false,"t":true,"nul":null,"nested":{"a":{"b":5}},"arr":[1,2,3],"str":"Hello World","email":"A@B.com"},"traits":{"plan":"pro","vip":true},"context":{"locale":"en-US","personas":{"computation_key":"aud_x"}}}"#;

    #[test]
    fn top_level_spread() {
        assert_eq!(run("123", "{}").as_deref(), Some("{}"));
        assert_eq!(
            run(r#""ab""#, "{}").as_deref(),
            Some(r#"{"0":"a","1":"b"}"#)
        );
        assert_eq!(
            run(r#"{"a": 1, "b": {"@path": "$.foo.bar"}}"#, "{}").as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(run(r#"{"@path": "$.nope"}"#, "{}"), None);
    }

    #[test]
    fn if_exists_and_blank() {
        assert_eq!(one(r#"{"@if": {"exists": {"@path": "$.properties.nul"}, "then": "yes", "else": "no"}}"#, EV).as_deref(), Some(r#""no""#));
        assert_eq!(one(r#"{"@if": {"blank": {"@path": "$.properties.zero"}, "then": "yes", "else": "no"}}"#, EV).as_deref(), Some(r#""no""#));
        assert_eq!(
            one(
                r#"{"@if": {"blank": {"@path": "$.properties.str"}, "then": "yes", "else": "no"}}"#,
                EV
            )
            .as_deref(),
            Some(r#""yes""#)
        );
        assert_eq!(
            one(
                r#"{"@if": {"blank": {"@path": "$.properties.f"}, "then": "yes", "else": "no"}}"#,
                EV
            )
            .as_deref(),
            Some(r#""no""#)
        );
        assert_eq!(
            one(
                r#"{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": null}}"#,
                EV
            ),
            None
        );
        assert_eq!(
            one(
                r#"{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": 0}}"#,
                EV
            ),
            None
        );
        assert_eq!(
            one(r#"{"@if": {"exists": {"@path": "$.userId"}}}"#, EV),
            None
        );
    }

    #[test]
    fn case_replace_literal() {
        assert_eq!(
            one(
                r#"{"@case": {"operator": "lower", "value": {"@path": "$.properties.email"}}}"#,
                EV
            )
            .as_deref(),
            Some(r#""a@b.com""#)
        );
        assert_eq!(
            one(
                r#"{"@case": {"operator": "lower", "value": {"@path": "$.properties.nested"}}}"#,
                EV
            )
            .as_deref(),
            Some(r#"{"a":{"b":5}}"#)
        );
        assert_eq!(
            one(r#"{"@case": {"operator": "upper", "value": ""}}"#, EV),
            None
        );
        assert_eq!(one(r#"{"@replace": {"value": {"@path": "$.properties.total"}, "pattern": "1", "replacement": "x"}}"#, EV).as_deref(), Some(r#""x2""#));
        assert_eq!(
            one(
                r#"{"@replace": {"value": {"@path": "$.properties.nested"}, "pattern": "1"}}"#,
                EV
            )
            .as_deref(),
            Some(r#""""#)
        );
        assert_eq!(one(r#"{"@replace": {"value": {"@path": "$.properties.str"}, "pattern": "o", "replacement": "0", "pattern2": "l", "replacement2": "1"}}"#, EV).as_deref(), Some(r#""He110 W0r1d""#));
        assert_eq!(
            one(r#"{"@literal": {"@path": "$.properties.total"}}"#, EV).as_deref(),
            Some("12")
        );
        assert_eq!(
            one(r#"{"@literal": {"x": {"@path": "$.userId"}}}"#, EV).as_deref(),
            Some(r#"{"x":"u1"}"#)
        );
    }

    #[test]
    fn array_path_merge_transform_flatten_json() {
        assert_eq!(
            one(
                r#"{"@arrayPath": [{"@path": "$.properties.nested"}, {"k": {"@path": "$.a.b"}}]}"#,
                EV
            )
            .as_deref(),
            Some(r#"[{"k":5}]"#)
        );
        assert_eq!(
            one(
                r#"{"@arrayPath": ["$.properties.arr", {"v": {"@path": "$."}}]}"#,
                EV
            )
            .as_deref(),
            Some(r#"[{"v":1},{"v":2},{"v":3}]"#)
        );
        assert_eq!(
            one(r#"{"@arrayPath": ["$.properties.arr"]}"#, EV).as_deref(),
            Some("[1,2,3]")
        );
        assert_eq!(one(r#"{"@merge": {"objects": [{"@path": "$.traits"}, {"plan": "free", "x": 1}], "direction": "right"}}"#, EV).as_deref(), Some(r#"{"plan":"free","vip":true,"x":1}"#));
        assert_eq!(one(r#"{"@merge": {"objects": [{"@path": "$.traits"}, {"plan": "free", "x": 1}], "direction": "left"}}"#, EV).as_deref(), Some(r#"{"plan":"pro","x":1,"vip":true}"#));
        assert_eq!(one(r#"{"@merge": {"objects": [{"@path": "$.userId"}, {"@path": "$.nope"}], "direction": "right"}}"#, EV).as_deref(), Some(r#"{"0":"u","1":"1"}"#));
        assert_eq!(one(r#"{"@transform": {"apply": {"p": {"@path": "$.properties.nested"}}, "mapping": {"b": {"@path": "$.p.a.b"}}}}"#, EV).as_deref(), Some(r#"{"b":5}"#));
        assert_eq!(one(r#"{"@flatten": {"value": {"@path": "$.context"}, "separator": "_", "omitArrays": true}}"#, EV).as_deref(), Some(r#"{"locale":"en-US","personas_computation_key":"aud_x"}"#));
        assert_eq!(
            one(
                r#"{"@flatten": {"value": {"@path": "$.properties.arr"}, "separator": "."}}"#,
                EV
            )
            .as_deref(),
            Some(r#"{"0":1,"1":2,"2":3}"#)
        );
        assert_eq!(
            one(
                r#"{"@flatten": {"value": {"@path": "$.userId"}, "separator": "."}}"#,
                EV
            )
            .as_deref(),
            Some(r#"{"":"u1"}"#)
        );
        assert_eq!(
            one(
                r#"{"@json": {"mode": "encode", "value": {"@path": "$.properties.nested"}}}"#,
                EV
            )
            .as_deref(),
            Some(r#""{\"a\":{\"b\":5}}""#)
        );
        assert_eq!(
            one(r#"{"@json": {"mode": "encode", "value": "{\"a\":1}"}}"#, EV).as_deref(),
            Some(r#""\"{\\\"a\\\":1}\"""#)
        );
        assert_eq!(
            one(
                r#"{"@json": {"mode": "decode", "value": "{\"a\":1.50}"}}"#,
                EV
            )
            .as_deref(),
            Some(r#"{"a":1.5}"#)
        );
        assert_eq!(
            one(r#"{"@json": {"mode": "decode", "value": "not json"}}"#, EV).as_deref(),
            Some(r#""not json""#)
        );
        assert_eq!(
            one(r#"{"@json": {"mode": "Encode", "value": "x"}}"#, EV),
            None
        );
        assert_eq!(
            one(
                r#"{"neat": {"@json": {"mode": "encode", "value": {"@path": "$.bad"}}}}"#,
                EV
            )
            .as_deref(),
            Some("{}")
        );
    }

    #[test]
    fn exclude_when_null() {
        let ev = r#"{"foo":{"bar":null,"aces":{"a":1,"b":null,"c":{"d":null}},"arr":[null]}}"#;
        assert_eq!(
            one(r#"{"x": {"@excludeWhenNull": {"@path": "$.foo.bar"}}}"#, ev).as_deref(),
            Some("{}")
        );
        assert_eq!(
            one(r#"{"@excludeWhenNull": {"@path": "$.foo.aces"}}"#, ev).as_deref(),
            Some(r#"{"a":1,"c":{}}"#)
        );
        assert_eq!(
            one(r#"{"@excludeWhenNull": {"@path": "$.foo.arr"}}"#, ev).as_deref(),
            Some("[null]")
        );
    }

    #[test]
    fn dynamic_path_errors_per_event() {
        let node = parse_json_or_yaml(r#"{"@path": {"@path": "$.properties.total"}}"#).unwrap();
        let expr = compile(&node, "").unwrap();
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(EV).unwrap());
        assert!(eval(&expr, &root).is_err());
    }
}
