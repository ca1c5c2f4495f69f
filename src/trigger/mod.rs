//! Event triggers: Segment's Filter Query Language, as destination subscriptions evaluate it.
//!
//! A trigger is parsed once into a tree of conditions whose field paths are pre-split;
//! evaluating it walks the parsed event directly and allocates nothing. Segment's quirks are
//! kept (see the README's "Triggers" section): a group applies its *last* `and`/`or` to all
//! its conditions, `=` compares strings without coercion, ordering needs a real number.
//! Input Segment silently misreads (a condition on an unknown field, a missing value) is an
//! error here instead.

mod lexer;
mod parser;
mod print;

use std::fmt;

use crate::json::{NodeRef, js_string_to_number};
use crate::value::{Seg, Value, walk};

pub use parser::{FIELDS, MAX_DEPTH};
pub use print::print;

/// A trigger that could not be parsed, with its 1-based position in the trigger text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl TriggerError {
    pub(crate) fn at(src: &str, offset: usize, message: &str) -> TriggerError {
        let before = &src[..offset.min(src.len())];
        let line = 1 + before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        TriggerError {
            line,
            col: 1 + before[line_start..].chars().count(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for TriggerError {}

/// Where a condition reads its value.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Type,
    Event,
    Name,
    UserId,
    Properties(Vec<Seg>),
    Traits(Vec<Seg>),
    Context(Vec<Seg>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    Lt,
    Le,
    Gt,
    Ge,
}

/// Trees compare as written: a comparison with a value that is not a number (NaN) equals
/// another such comparison.
#[derive(Clone, Debug)]
pub enum Test {
    /// Present and not null (`!= null`); negated for `= null`.
    Exists(bool),
    /// Is this exact boolean (`= true` / `= false`).
    IsBool(bool),
    /// A number equal (or, negated, a number not equal) to the value.
    NumEq(f64, bool),
    /// A string equal to the value.
    StrEq(String),
    /// Anything but a string equal to the value.
    StrNe(String),
    /// A number comparing true with the value.
    Compare(Ordering, f64),
    /// A string containing / starting with / ending with the text; `bool` negates the text
    /// test (the value must still be a string).
    Contains(String, bool),
    StartsWith(String, bool),
    EndsWith(String, bool),
}

impl PartialEq for Test {
    fn eq(&self, other: &Test) -> bool {
        let same = |a: &f64, b: &f64| a == b || (a.is_nan() && b.is_nan());
        match (self, other) {
            (Test::Exists(a), Test::Exists(b)) | (Test::IsBool(a), Test::IsBool(b)) => a == b,
            (Test::NumEq(a, x), Test::NumEq(b, y)) => same(a, b) && x == y,
            (Test::StrEq(a), Test::StrEq(b)) | (Test::StrNe(a), Test::StrNe(b)) => a == b,
            (Test::Compare(o, a), Test::Compare(p, b)) => o == p && same(a, b),
            (Test::Contains(a, x), Test::Contains(b, y))
            | (Test::StartsWith(a, x), Test::StartsWith(b, y))
            | (Test::EndsWith(a, x), Test::EndsWith(b, y)) => a == b && x == y,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Cond(Field, Test),
    /// `any` when the group's (last) conjunction is `or`, else `all`.
    Group {
        any: bool,
        items: Vec<Node>,
    },
}

/// A compiled trigger.
#[derive(Clone, Debug)]
pub struct Trigger {
    source: String,
    root: Node,
    warnings: Vec<String>,
}

impl Trigger {
    pub fn parse(source: &str) -> Result<Trigger, TriggerError> {
        let (root, warnings) = parser::parse(source)?;
        Ok(Trigger {
            source: source.to_string(),
            root,
            warnings,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Things that parse but probably do not mean what they say (mixed `and`/`or`, an
    /// ignored `!`), each with a suggestion.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Whether the event (a JSON object) triggers the mapping.
    pub fn matches(&self, event: NodeRef<'_>) -> bool {
        eval(&self.root, event)
    }
}

fn eval(node: &Node, event: NodeRef<'_>) -> bool {
    match node {
        Node::Group { any: true, items } => items.iter().any(|n| eval(n, event)),
        Node::Group { any: false, items } => items.iter().all(|n| eval(n, event)),
        Node::Cond(field, test) => check(test, &lookup(field, event)),
    }
}

fn lookup<'a>(field: &Field, event: NodeRef<'a>) -> Value<'a> {
    let top = |key: &str| event.get(key).map_or(Value::Undefined, Value::Node);
    match field {
        Field::Type => top("type"),
        Field::Event => top("event"),
        Field::Name => top("name"),
        Field::UserId => top("userId"),
        Field::Properties(p) => walk(&top("properties"), p),
        Field::Traits(p) => walk(&top("traits"), p),
        Field::Context(p) => walk(&top("context"), p),
    }
}

/// The value as a string without copying when it is one.
fn string_of<'v>(v: &'v Value<'_>) -> Option<std::borrow::Cow<'v, str>> {
    match v {
        Value::Node(n) => match n.str_raw() {
            Some((raw, false)) => Some(std::borrow::Cow::Borrowed(raw)),
            Some((_, true)) => n.as_str().map(|s| std::borrow::Cow::Owned(s.into_owned())),
            None => None,
        },
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        _ => None,
    }
}

fn number_of(v: &Value<'_>) -> Option<f64> {
    v.as_f64()
}

fn check(test: &Test, v: &Value<'_>) -> bool {
    match test {
        Test::Exists(want) => v.is_nullish() != *want,
        Test::IsBool(b) => v.as_bool() == Some(*b),
        Test::NumEq(n, negate) => number_of(v).is_some_and(|x| (x == *n) != *negate),
        Test::StrEq(s) => string_of(v).is_some_and(|x| x == s.as_str()),
        Test::StrNe(s) => string_of(v).is_none_or(|x| x != s.as_str()),
        Test::Compare(op, n) => number_of(v).is_some_and(|x| match op {
            Ordering::Lt => x < *n,
            Ordering::Le => x <= *n,
            Ordering::Gt => x > *n,
            Ordering::Ge => x >= *n,
        }),
        Test::Contains(s, negate) => {
            string_of(v).is_some_and(|x| x.contains(s.as_str()) != *negate)
        }
        Test::StartsWith(s, negate) => {
            string_of(v).is_some_and(|x| x.starts_with(s.as_str()) != *negate)
        }
        Test::EndsWith(s, negate) => {
            string_of(v).is_some_and(|x| x.ends_with(s.as_str()) != *negate)
        }
    }
}

/// `Number(text)` for the written value of an ordering comparison.
pub(crate) fn written_number(text: &str) -> f64 {
    js_string_to_number(text)
}

#[cfg(test)]
mod tests;
