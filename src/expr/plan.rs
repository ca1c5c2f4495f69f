//! Direct evaluation of the commonest column shapes over the parsed event.
//!
//! Most columns are `@path` or `@if exists` over paths (Segment's default columns are all
//! of these). For them, walking the event's tape directly gives the same result as the
//! general evaluator without building intermediate values. Anything the walk cannot
//! express (`length` of an array, a character of a string, ...) falls back to [`eval`].
//!
//! [`eval`]: super::eval

use super::path::{Path, Seg};
use super::{Expr, IfMode};
use crate::json::{Kind, NodeRef, Shape};

/// What a plan found.
#[derive(Clone, Copy, Debug)]
pub enum Found<'a> {
    Node(NodeRef<'a>),
    Undefined,
    /// The result is not a piece of the event: evaluate the expression the general way.
    Other,
}

#[derive(Clone, Debug)]
pub enum Plan {
    Path(Vec<Seg>),
    IfExists {
        cond: Box<Plan>,
        then: Option<Box<Plan>>,
        otherwise: Option<Box<Plan>>,
    },
}

/// JavaScript truthiness of a node.
#[inline]
fn truthy(n: &NodeRef<'_>) -> bool {
    match n.kind() {
        Kind::Null => false,
        Kind::Bool => n.as_bool() == Some(true),
        Kind::Number => {
            let t = n.raw().trim_start_matches('-');
            // Only numbers written with a leading 0 can be zero.
            !t.starts_with('0') || n.as_f64().is_some_and(|f| f != 0.0)
        }
        Kind::String => n.str_raw().is_some_and(|(s, _)| !s.is_empty()),
        Kind::Array | Kind::Object => true,
    }
}

impl Plan {
    /// A plan for `e`, when it has one of the supported shapes.
    pub fn of(e: &Expr) -> Option<Plan> {
        match e {
            Expr::Path(Path::Keys(segs)) => Some(Plan::Path(segs.clone())),
            Expr::Path(Path::Root) => Some(Plan::Path(Vec::new())),
            Expr::If {
                mode: IfMode::Exists,
                cond,
                then,
                otherwise,
            } => Some(Plan::IfExists {
                cond: Box::new(Plan::of(cond)?),
                then: match then {
                    Some(t) => Some(Box::new(Plan::of(t)?)),
                    None => None,
                },
                otherwise: match otherwise {
                    Some(o) => Some(Box::new(Plan::of(o)?)),
                    None => None,
                },
            }),
            _ => None,
        }
    }

    /// Calls `f` with every path the plan reads (conditions and both branches).
    pub fn paths(&self, f: &mut impl FnMut(&[Seg])) {
        match self {
            Plan::Path(segs) => f(segs),
            Plan::IfExists {
                cond,
                then,
                otherwise,
            } => {
                cond.paths(f);
                for branch in [then, otherwise].into_iter().flatten() {
                    branch.paths(f);
                }
            }
        }
    }

    /// Adds what the plan reads of an event to `shape`. The value found is read as a
    /// whole, not inside (the general evaluator, when the walk falls back to it, follows
    /// the same paths).
    pub fn read_by(&self, shape: &mut Shape) {
        self.paths(&mut |segs| {
            shape.path(segs.iter().map(|s| &*s.key));
        });
    }

    pub fn run<'a>(&self, root: NodeRef<'a>) -> Found<'a> {
        match self {
            Plan::Path(segs) => {
                let mut cur = root;
                for seg in segs {
                    if !truthy(&cur) {
                        return Found::Node(cur);
                    }
                    cur = match cur.kind() {
                        Kind::Object => match cur.get(&seg.key) {
                            Some(n) => n,
                            None => return Found::Undefined,
                        },
                        Kind::Array => match seg.index {
                            Some(i) => match cur.index(i) {
                                Some(n) => n,
                                None => return Found::Undefined,
                            },
                            None if &*seg.key == "length" => return Found::Other,
                            None => return Found::Undefined,
                        },
                        Kind::String if seg.index.is_some() || &*seg.key == "length" => {
                            return Found::Other;
                        }
                        _ => return Found::Undefined,
                    };
                }
                Found::Node(cur)
            }
            Plan::IfExists {
                cond,
                then,
                otherwise,
            } => {
                let holds = match cond.run(root) {
                    Found::Node(n) => !n.is_null(),
                    Found::Undefined => false,
                    Found::Other => return Found::Other,
                };
                let branch = if holds { then } else { otherwise };
                match branch {
                    Some(p) => p.run(root),
                    None => Found::Undefined,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Value, compile, eval};
    use crate::json::Tape;
    use crate::spanned::parse_json_or_yaml;

    /// The plan and the general evaluator agree.
    #[test]
    fn plans_agree_with_eval() {
        let event = r#"{"a":{"b":0,"c":"","d":[1,{"e":2}],"s":"str","n":null,"f":false,"z":0.0,"neg":-0,"x":1.5}}"#;
        let mut tape = Tape::new();
        let root = tape.parse(event).unwrap();
        for path in [
            "$.a.b.c",
            "$.a.c.x",
            "$.a.d[1].e",
            "$.a.d.length",
            "$.a.s.length",
            "$.a.s.0",
            "$.a.n.x",
            "$.a.f.x",
            "$.a.z.x",
            "$.a.neg.x",
            "$.a.x.y",
            "$.missing.x",
            "$.",
            "$.a.d[5]",
            "$.a.s.x",
        ] {
            for src in [
                format!(r#"{{"@path": "{path}"}}"#),
                format!(
                    r#"{{"@if": {{"exists": {{"@path": "{path}"}}, "then": {{"@path": "$.a.x"}}, "else": {{"@path": "$.a.s"}}}}}}"#
                ),
            ] {
                let expr = compile(&parse_json_or_yaml(&src).unwrap(), "").unwrap();
                let general = eval(&expr, &Value::Node(root)).unwrap().to_json_string();
                let Some(plan) = Plan::of(&expr) else {
                    panic!("{src} has a plan")
                };
                match plan.run(root) {
                    Found::Node(n) => assert_eq!(
                        Some(Value::Node(n).to_json_string().unwrap()),
                        general,
                        "{src}"
                    ),
                    Found::Undefined => assert_eq!(None, general, "{src}"),
                    Found::Other => {}
                }
            }
        }
    }
}
