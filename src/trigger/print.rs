//! FQL text for a trigger tree: the inverse of the parser, for tests and fuzzing (every
//! tree the parser builds prints as FQL that parses back to the same tree).

use std::fmt::Write;

use super::{Field, Node, Ordering, Test};
use crate::value::Seg;

/// Prints `node` as FQL: groups below the root in parentheses, strings double-quoted with
/// `\` escapes, numbers in decimal (no exponent: FQL's numbers have none).
///
/// The one tree it cannot print is a path key holding `]`: FQL has no escape for it inside
/// a bracketed name (`properties['a]']` ends at the first `]`), so such a key is written
/// bracketed and reads back differently.
pub fn print(node: &Node) -> String {
    let mut out = String::new();
    write_node(&mut out, node, true);
    out
}

fn write_node(out: &mut String, node: &Node, root: bool) {
    match node {
        Node::Cond(field, test) => write_cond(out, field, test),
        Node::Group { any, items } => {
            if !root {
                out.push('(');
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if *any { " or " } else { " and " });
                }
                write_node(out, item, false);
            }
            if !root {
                out.push(')');
            }
        }
    }
}

fn write_cond(out: &mut String, field: &Field, test: &Test) {
    // `field op ` before a value.
    let compare = |out: &mut String, op: &str| {
        write_field(out, field);
        out.push(' ');
        out.push_str(op);
        out.push(' ');
    };
    // `[!]name(field, "text")`.
    let function = |out: &mut String, name: &str, negate: bool, text: &str| {
        if negate {
            out.push('!');
        }
        out.push_str(name);
        out.push('(');
        write_field(out, field);
        out.push_str(", ");
        write_string(out, text);
        out.push(')');
    };
    let eq = |negate: bool| if negate { "!=" } else { "=" };
    match test {
        Test::Exists(present) => compare(out, eq(*present)),
        Test::IsBool(_) => compare(out, "="),
        Test::NumEq(_, negate) => compare(out, eq(*negate)),
        Test::StrEq(_) => compare(out, "="),
        Test::StrNe(_) => compare(out, "!="),
        Test::Compare(ord, _) => compare(
            out,
            match ord {
                Ordering::Lt => "<",
                Ordering::Le => "<=",
                Ordering::Gt => ">",
                Ordering::Ge => ">=",
            },
        ),
        Test::Contains(s, negate) => function(out, "contains", *negate, s),
        // A quoted pattern ending in `*` tests the prefix before it.
        Test::StartsWith(s, negate) => function(out, "match", *negate, &format!("{s}*")),
        // Any other pattern tests the suffix after its first character (none: "").
        Test::EndsWith(s, negate) if s.is_empty() => function(out, "match", *negate, ""),
        Test::EndsWith(s, negate) => function(out, "match", *negate, &format!("*{s}")),
    }
    match test {
        Test::Exists(_) => out.push_str("null"),
        Test::IsBool(b) => {
            let _ = write!(out, "{b}");
        }
        Test::NumEq(n, _) | Test::Compare(_, n) => write_number(out, *n),
        Test::StrEq(s) | Test::StrNe(s) => write_string(out, s),
        Test::Contains(..) | Test::StartsWith(..) | Test::EndsWith(..) => {}
    }
}

fn write_field(out: &mut String, field: &Field) {
    let (head, path) = match field {
        Field::Type => return out.push_str("type"),
        Field::Event => return out.push_str("event"),
        Field::Name => return out.push_str("name"),
        Field::UserId => return out.push_str("userId"),
        Field::Properties(p) => ("properties", p),
        Field::Traits(p) => ("traits", p),
        Field::Context(p) => ("context", p),
    };
    out.push_str(head);
    if path.is_empty() {
        // Not a tree the parser builds (a bare `properties` is the key "properties"); the
        // nearest FQL.
        return;
    }
    for seg in path {
        write_key(out, seg);
    }
}

/// `.key` when the key is made of identifier characters, else `['key']`.
fn write_key(out: &mut String, seg: &Seg) {
    let key = &*seg.key;
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'));
    if plain && !key.is_empty() {
        out.push('.');
        out.push_str(key);
    } else {
        // The closing quote is the first quote followed by `]`: a key without `]` never
        // holds one, so either quote works; `"` reads better.
        let _ = write!(out, "[\"{key}\"]");
    }
}

/// A double-quoted FQL string.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as FQL writes one (digits, an optional fraction): Rust prints floats in
/// decimal, shortest round-trip; infinities as more digits than a float holds; NaN (a
/// comparison with a value that is not a number) as `null`.
fn write_number(out: &mut String, n: f64) {
    if n.is_nan() {
        out.push_str("null");
    } else if n.is_infinite() {
        if n < 0.0 {
            out.push('-');
        }
        out.push('1');
        out.extend(std::iter::repeat_n('0', 400));
    } else {
        let _ = write!(out, "{n}");
    }
}
