//! Liquid values with liquidjs's (JavaScript's) conversions and comparisons.

use crate::json::{js_number_to_string, js_string_to_number};

/// A value inside a template: JSON's values plus the `empty` and `blank` literals, which
/// only compare.
#[derive(Clone, Debug, PartialEq)]
pub enum LValue {
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<LValue>),
    Obj(Vec<(String, LValue)>),
    Empty,
    Blank,
}

impl LValue {
    pub fn from_json(v: &serde_json::Value) -> LValue {
        use serde_json::Value as J;
        match v {
            J::Null => LValue::Nil,
            J::Bool(b) => LValue::Bool(*b),
            J::Number(n) => LValue::Num(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => LValue::Str(s.clone()),
            J::Array(a) => LValue::Arr(a.iter().map(LValue::from_json).collect()),
            J::Object(m) => LValue::Obj(
                m.iter()
                    .map(|(k, v)| (k.clone(), LValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Liquid truthiness: only `false` and nil are false.
    pub fn truthy(&self) -> bool {
        !matches!(self, LValue::Nil | LValue::Bool(false))
    }

    /// What liquidjs prints: arrays print their elements one after another, objects as
    /// JavaScript's `[object Object]`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    pub fn render_into(&self, out: &mut String) {
        match self {
            LValue::Nil | LValue::Empty | LValue::Blank => {}
            LValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            LValue::Num(n) => out.push_str(&js_number_to_string(*n)),
            LValue::Str(s) => out.push_str(s),
            LValue::Arr(a) => a.iter().for_each(|v| v.render_into(out)),
            LValue::Obj(_) => out.push_str("[object Object]"),
        }
    }

    /// JavaScript's `String(v)`, used where liquidjs hands a value to a JavaScript string
    /// function (arrays join with commas there).
    pub fn js_string(&self) -> String {
        match self {
            LValue::Nil | LValue::Empty | LValue::Blank => String::new(),
            LValue::Arr(a) => a
                .iter()
                .map(LValue::js_string)
                .collect::<Vec<_>>()
                .join(","),
            other => other.render(),
        }
    }

    /// liquidjs's `toNumber`: JavaScript's `Number(v)`, and 0 where that is NaN.
    pub fn number(&self) -> f64 {
        let n = self.js_number();
        if n.is_nan() { 0.0 } else { n }
    }

    /// JavaScript's `Number(v)` (nil as null: 0). Arrays convert through their text, so
    /// `[]` is 0, `[5]` is 5 and longer arrays are NaN; objects are NaN.
    pub fn js_number(&self) -> f64 {
        match self {
            LValue::Nil | LValue::Empty | LValue::Blank => 0.0,
            LValue::Bool(b) => f64::from(u8::from(*b)),
            LValue::Num(n) => *n,
            LValue::Str(s) => js_string_to_number(s),
            LValue::Arr(_) => js_string_to_number(&self.js_string()),
            LValue::Obj(_) => f64::NAN,
        }
    }

    /// The JavaScript `length` of a string or array.
    pub fn length(&self) -> Option<usize> {
        match self {
            LValue::Str(s) => Some(s.encode_utf16().count()),
            LValue::Arr(a) => Some(a.len()),
            _ => None,
        }
    }

    /// A member as liquidjs reads it: object keys, array indexes (negative from the end),
    /// and the `size`, `first` and `last` properties.
    pub fn member(&self, key: &LValue) -> LValue {
        match (self, key) {
            (LValue::Obj(m), LValue::Str(k)) => {
                if let Some((_, v)) = m.iter().rev().find(|(name, _)| name == k) {
                    return v.clone();
                }
                if k == "size" {
                    return LValue::Num(m.len() as f64);
                }
                LValue::Nil
            }
            (LValue::Arr(a), LValue::Num(i)) => index(a, *i),
            (LValue::Arr(a), LValue::Str(k)) => match k.as_str() {
                "size" => LValue::Num(a.len() as f64),
                "first" => a.first().cloned().unwrap_or(LValue::Nil),
                "last" => a.last().cloned().unwrap_or(LValue::Nil),
                _ => match k.parse::<i64>() {
                    Ok(i) => index(a, i as f64),
                    Err(_) => LValue::Nil,
                },
            },
            (LValue::Str(s), LValue::Str(k)) if k == "size" => {
                LValue::Num(s.encode_utf16().count() as f64)
            }
            (LValue::Str(s), LValue::Num(i)) if *i >= 0.0 && i.fract() == 0.0 => {
                let units: Vec<u16> = s.encode_utf16().collect();
                units.get(*i as usize).map_or(LValue::Nil, |u| {
                    LValue::Str(String::from_utf16_lossy(&[*u]))
                })
            }
            (LValue::Obj(_), LValue::Num(n)) => self.member(&LValue::Str(js_number_to_string(*n))),
            _ => LValue::Nil,
        }
    }

    fn is_empty_value(&self) -> bool {
        match self {
            LValue::Str(s) => s.is_empty(),
            LValue::Arr(a) => a.is_empty(),
            LValue::Obj(m) => m.is_empty(),
            _ => false,
        }
    }

    fn is_blank_value(&self) -> bool {
        match self {
            LValue::Nil | LValue::Bool(false) => true,
            LValue::Str(s) => s.chars().all(char::is_whitespace),
            other => other.is_empty_value(),
        }
    }
}

fn index(a: &[LValue], i: f64) -> LValue {
    if i.fract() != 0.0 {
        return LValue::Nil;
    }
    let i = if i < 0.0 { a.len() as f64 + i } else { i };
    if i < 0.0 {
        return LValue::Nil;
    }
    a.get(i as usize).cloned().unwrap_or(LValue::Nil)
}

/// `==` in liquidjs: `empty` and `blank` test the other side; arrays compare element by
/// element; anything else is JavaScript's strict equality.
pub fn equals(l: &LValue, r: &LValue) -> bool {
    match (l, r) {
        (LValue::Empty, v) | (v, LValue::Empty) => v.is_empty_value(),
        (LValue::Blank, v) | (v, LValue::Blank) => v.is_blank_value(),
        (LValue::Arr(a), LValue::Arr(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equals(x, y))
        }
        (LValue::Num(a), LValue::Num(b)) => a == b,
        (LValue::Obj(_), LValue::Obj(_)) => false,
        (a, b) => a == b,
    }
}

/// JavaScript's relational comparison (`<`), after its conversions: two strings compare by
/// UTF-16 code units, anything else as numbers (NaN compares false).
pub fn less_than(l: &LValue, r: &LValue) -> bool {
    match (primitive(l), primitive(r)) {
        (LValue::Str(a), LValue::Str(b)) => a.encode_utf16().lt(b.encode_utf16()),
        (a, b) => a.js_number() < b.js_number(),
    }
}

/// JavaScript's ToPrimitive for the values a template can hold.
fn primitive(v: &LValue) -> LValue {
    match v {
        LValue::Arr(_) | LValue::Obj(_) => LValue::Str(v.js_string()),
        LValue::Empty | LValue::Blank => LValue::Nil,
        other => other.clone(),
    }
}
