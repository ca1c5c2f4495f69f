//! Values as Segment's (JavaScript) mapping engine sees them.
//!
//! A resolved expression is usually a piece of the event itself, so [`Value::Node`] points
//! into the parsed event instead of copying it; only directives that build something new
//! (`@merge`, `@flatten`, objects written in the mapping, ...) produce owned values.
//! `Undefined` is JavaScript's `undefined`: different from `null`, dropped from objects when
//! written, and `null` inside arrays.
//!
//! A leaf module (it needs only [`crate::json`]) with [`Path`], [`Seg`] and [`walk`], so
//! that triggers, naming and expressions share values and paths without depending on
//! each other.

mod path;

pub use path::{Path, PathError, Seg, walk};

use std::borrow::Cow;

use crate::json::{
    Kind, NodeRef, js_number_to_string, write_js_number, write_json_string, write_node_json,
    write_number_text,
};

/// Object members in insertion order. Keys are unique (assignment replaces in place).
pub type Object<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

#[derive(Clone, Debug)]
pub enum Value<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
    /// A value of the parsed event, not copied.
    Node(NodeRef<'a>),
}

/// `realTypeOf` of Segment's code: the JSON type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Undefined => "undefined",
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Number => "number",
            Type::String => "string",
            Type::Array => "array",
            Type::Object => "object",
        }
    }
}

impl<'a> Value<'a> {
    pub fn str(s: &'a str) -> Value<'a> {
        Value::String(Cow::Borrowed(s))
    }

    pub fn owned_str(s: String) -> Value<'a> {
        Value::String(Cow::Owned(s))
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Undefined => Type::Undefined,
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Boolean,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::Array(_) => Type::Array,
            Value::Object(_) => Type::Object,
            Value::Node(n) => match n.kind() {
                Kind::Null => Type::Null,
                Kind::Bool => Type::Boolean,
                Kind::Number => Type::Number,
                Kind::String => Type::String,
                Kind::Array => Type::Array,
                Kind::Object => Type::Object,
            },
        }
    }

    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// `undefined` or `null`.
    pub fn is_nullish(&self) -> bool {
        matches!(self.type_of(), Type::Undefined | Type::Null)
    }

    /// JavaScript truthiness.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
            Value::Node(n) => match n.kind() {
                Kind::Null => false,
                Kind::Bool => n.as_bool() == Some(true),
                Kind::Number => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
                Kind::String => n.str_raw().is_some_and(|(s, _)| !s.is_empty()),
                Kind::Array | Kind::Object => true,
            },
        }
    }

    /// The string, when the value is a string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Node(n) => n.as_str(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Node(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Node(n) => n.as_bool(),
            _ => None,
        }
    }

    /// JavaScript `value == ''` for a value that is neither null nor undefined: true for
    /// `""`, `0`, `false` and arrays whose `join()` is empty.
    pub fn loosely_equals_empty_string(&self) -> bool {
        match self.type_of() {
            Type::String => self.as_str().is_some_and(|s| s.is_empty()),
            Type::Number => self.as_f64() == Some(0.0),
            Type::Boolean => self.as_bool() == Some(false),
            Type::Array => self.to_js_string().is_empty(),
            _ => false,
        }
    }

    /// JavaScript's `String(value)`.
    pub fn to_js_string(&self) -> Cow<'a, str> {
        match self {
            Value::Undefined => Cow::Borrowed("undefined"),
            Value::Null => Cow::Borrowed("null"),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Number(n) => Cow::Owned(js_number_to_string(*n)),
            Value::String(s) => s.clone(),
            Value::Object(_) => Cow::Borrowed("[object Object]"),
            Value::Array(items) => {
                let mut out = String::new();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if !item.is_nullish() {
                        out.push_str(&item.to_js_string());
                    }
                }
                Cow::Owned(out)
            }
            Value::Node(n) => match n.kind() {
                Kind::Null => Cow::Borrowed("null"),
                Kind::Bool => Cow::Borrowed(if n.as_bool() == Some(true) {
                    "true"
                } else {
                    "false"
                }),
                Kind::Number => {
                    let mut out = Vec::new();
                    write_number_text(&mut out, n.raw(), false);
                    Cow::Owned(String::from_utf8(out).unwrap_or_default())
                }
                Kind::String => n.as_str().unwrap_or_default(),
                Kind::Object => Cow::Borrowed("[object Object]"),
                Kind::Array => {
                    let items: Vec<Value<'a>> = n.elements().map(Value::Node).collect();
                    Value::Array(items).to_js_string()
                }
            },
        }
    }

    /// Appends `JSON.stringify(value)`. Writes nothing for `undefined` (whose stringify is
    /// `undefined`, not a string); callers decide what that means.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Undefined => {}
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Number(n) => write_js_number(out, *n, true),
            Value::String(s) => write_json_string(out, s),
            Value::Node(n) => write_node_json(out, *n),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if item.is_undefined() {
                        out.extend_from_slice(b"null");
                    } else {
                        item.write_json(out);
                    }
                }
                out.push(b']');
            }
            Value::Object(members) => {
                out.push(b'{');
                let mut first = true;
                for (k, v) in members {
                    if v.is_undefined() {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_json_string(out, k);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// `JSON.stringify(value)` as a string; `None` for `undefined`.
    pub fn to_json_string(&self) -> Option<String> {
        if self.is_undefined() {
            return None;
        }
        let mut out = Vec::new();
        self.write_json(&mut out);
        Some(String::from_utf8(out).expect("JSON output is UTF-8"))
    }

    /// Own enumerable properties as an owned object, for operations that rebuild objects.
    /// Arrays and strings expose their indexes, as `Object.keys` does.
    pub fn entries(&self) -> Object<'a> {
        match self {
            Value::Object(m) => m.clone(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Cow::Owned(i.to_string()), v.clone()))
                .collect(),
            Value::String(s) => string_entries(s),
            Value::Node(n) => match n.kind() {
                Kind::Object => {
                    let mut out: Object<'a> = Vec::with_capacity(n.len());
                    for (k, v) in n.members() {
                        set(&mut out, k, Value::Node(v));
                    }
                    out
                }
                Kind::Array => n
                    .elements()
                    .enumerate()
                    .map(|(i, v)| (Cow::Owned(i.to_string()), Value::Node(v)))
                    .collect(),
                Kind::String => string_entries(&n.as_str().unwrap_or_default()),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Array elements (for a value of array type).
    pub fn elements(&self) -> Vec<Value<'a>> {
        match self {
            Value::Array(items) => items.clone(),
            Value::Node(n) if n.kind() == Kind::Array => n.elements().map(Value::Node).collect(),
            _ => Vec::new(),
        }
    }

    /// JavaScript's `value[key]` for a property key, restricted to data properties: own
    /// object members, array indexes and `length`, string indexes and `length`.
    pub fn member(&self, key: &str, index: Option<usize>) -> Value<'a> {
        match self {
            Value::Node(n) => match n.kind() {
                Kind::Object => n.get(key).map_or(Value::Undefined, Value::Node),
                Kind::Array => match index {
                    Some(i) => n.index(i).map_or(Value::Undefined, Value::Node),
                    None if key == "length" => Value::Number(n.len() as f64),
                    None => Value::Undefined,
                },
                Kind::String => string_member(&n.as_str().unwrap_or_default(), key, index),
                _ => Value::Undefined,
            },
            Value::Object(m) => m
                .iter()
                .find(|(k, _)| k == key)
                .map_or(Value::Undefined, |(_, v)| v.clone()),
            Value::Array(items) => match index {
                Some(i) => items.get(i).cloned().unwrap_or(Value::Undefined),
                None if key == "length" => Value::Number(items.len() as f64),
                None => Value::Undefined,
            },
            Value::String(s) => string_member(s, key, index),
            _ => Value::Undefined,
        }
    }

    /// Converts to plain JSON (numbers as JavaScript would hold them).
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Undefined | Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => f64_to_serde(*n),
            Value::String(s) => J::String(s.to_string()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_serde).collect()),
            Value::Object(m) => J::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_undefined())
                    .map(|(k, v)| (k.to_string(), v.to_serde()))
                    .collect(),
            ),
            Value::Node(n) => match n.kind() {
                Kind::Null => J::Null,
                Kind::Bool => J::Bool(n.as_bool() == Some(true)),
                Kind::Number => number_node_to_serde(n.raw()),
                Kind::String => J::String(n.as_str().unwrap_or_default().into_owned()),
                Kind::Array => J::Array(n.elements().map(|e| Value::Node(e).to_serde()).collect()),
                Kind::Object => {
                    let mut m = serde_json::Map::new();
                    for (k, v) in n.members() {
                        m.insert(k.into_owned(), Value::Node(v).to_serde());
                    }
                    J::Object(m)
                }
            },
        }
    }

    /// Converts plain JSON into an owned value.
    pub fn from_serde(v: &serde_json::Value) -> Value<'static> {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::String(Cow::Owned(s.clone())),
            J::Array(a) => Value::Array(a.iter().map(Value::from_serde).collect()),
            J::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Value::from_serde(v)))
                    .collect(),
            ),
        }
    }

    /// Drops `undefined` members of objects, recursively (arrays keep their slots), as
    /// Segment's `removeUndefined` does at the end of a transform.
    pub fn remove_undefined(self) -> Value<'a> {
        match self {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_undefined())
                    .map(|(k, v)| (k, v.remove_undefined()))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::remove_undefined).collect())
            }
            other => other,
        }
    }
}

/// JavaScript assignment `obj[key] = value`: replaces in place or appends.
pub fn set<'a>(obj: &mut Object<'a>, key: Cow<'a, str>, value: Value<'a>) {
    if let Some(slot) = obj.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        obj.push((key, value));
    }
}

fn string_entries<'a>(s: &str) -> Object<'a> {
    // Object.keys of a string are its UTF-16 code unit indexes.
    let mut out = Vec::new();
    let mut i = 0;
    for c in s.chars() {
        let mut buf = [0u16; 2];
        for unit in c.encode_utf16(&mut buf).iter() {
            let text = if c.len_utf16() == 1 {
                c.to_string()
            } else {
                char::from_u32(*unit as u32).map_or("\u{fffd}".to_string(), |c| c.to_string())
            };
            out.push((Cow::Owned(i.to_string()), Value::String(Cow::Owned(text))));
            i += 1;
        }
    }
    out
}

fn string_member<'a>(s: &str, key: &str, index: Option<usize>) -> Value<'a> {
    if key == "length" {
        return Value::Number(s.encode_utf16().count() as f64);
    }
    let Some(i) = index else {
        return Value::Undefined;
    };
    if s.is_ascii() {
        return s.get(i..i + 1).map_or(Value::Undefined, |c| {
            Value::String(Cow::Owned(c.to_string()))
        });
    }
    let mut pos = 0;
    for c in s.chars() {
        let width = c.len_utf16();
        if i < pos + width {
            // Half of a surrogate pair cannot be held by a Rust string.
            let text = if width == 1 {
                c.to_string()
            } else {
                "\u{fffd}".to_string()
            };
            return Value::String(Cow::Owned(text));
        }
        pos += width;
    }
    Value::Undefined
}

fn f64_to_serde(n: f64) -> serde_json::Value {
    if n == n.trunc() && n.abs() < 9_007_199_254_740_992.0 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn number_node_to_serde(text: &str) -> serde_json::Value {
    if let Ok(i) = text.parse::<i64>() {
        return serde_json::Value::from(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return serde_json::Value::from(u);
    }
    f64_to_serde(text.parse::<f64>().unwrap_or(f64::NAN))
}

/// JSON text of a string in UTF-16 code units, as JavaScript's `.length` counts it.
pub fn js_length(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    #[test]
    fn js_string_conversion() {
        let mut t = Tape::new();
        let n = t
            .parse(r#"{"a":[1,null,[2,3],{"x":1}],"n":631.0,"s":"x"}"#)
            .unwrap();
        let v = Value::Node(n);
        assert_eq!(v.member("a", None).to_js_string(), "1,,2,3,[object Object]");
        assert_eq!(v.member("n", None).to_js_string(), "631");
        assert_eq!(v.to_js_string(), "[object Object]");
        assert_eq!(
            v.member("s", None).member("length", None).to_js_string(),
            "1"
        );
    }

    #[test]
    fn loose_empty_equality() {
        assert!(Value::Number(0.0).loosely_equals_empty_string());
        assert!(Value::Bool(false).loosely_equals_empty_string());
        assert!(Value::str("").loosely_equals_empty_string());
        assert!(Value::Array(vec![]).loosely_equals_empty_string());
        assert!(!Value::str("  ").loosely_equals_empty_string());
        assert!(!Value::str("0").loosely_equals_empty_string());
        assert!(!Value::Array(vec![Value::Number(0.0)]).loosely_equals_empty_string());
        assert!(!Value::Object(vec![]).loosely_equals_empty_string());
    }

    #[test]
    fn json_of_constructed_values() {
        let v = Value::Object(vec![
            (Cow::Borrowed("a"), Value::Undefined),
            (
                Cow::Borrowed("b"),
                Value::Array(vec![Value::Undefined, Value::Number(1.5)]),
            ),
            (Cow::Borrowed("c"), Value::str("q\"")),
        ]);
        assert_eq!(v.to_json_string().unwrap(), r#"{"b":[null,1.5],"c":"q\""}"#);
    }

    #[test]
    fn string_members_count_utf16() {
        let v = Value::str("a🚀b");
        assert_eq!(v.member("length", None).as_f64(), Some(4.0));
        assert_eq!(v.member("3", Some(3)).as_str().unwrap(), "b");
    }
}
