//! Direct evaluation of the commonest column shapes over the parsed event.
//!
//! Most columns are `@path` or `@if exists` over paths (Segment's default columns are all
//! of these). For them, walking the event's tape directly gives the same result as the
//! general evaluator without building intermediate values. Anything the walk cannot
//! express (`length` of an array, a character of a string, ...) falls back to [`eval`].
//!
//! [`eval`]: super::eval

use super::{Expr, IfMode};
use crate::json::{Kind, NodeRef};
use crate::value::{Path, Seg};

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
    /// A path, and its last step in the mapping's [`Steps`] once interned.
    Path(Vec<Seg>, u32),
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
            Expr::Path(Path::Keys(segs)) => Some(Plan::Path(segs.clone(), NO_STEP)),
            Expr::Path(Path::Root) => Some(Plan::Path(Vec::new(), NO_STEP)),
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

    /// Gives every path a step in `steps`, shared with the other plans of the mapping.
    pub fn intern(&mut self, steps: &mut Steps) {
        match self {
            Plan::Path(segs, step) => *step = steps.intern(segs),
            Plan::IfExists {
                cond,
                then,
                otherwise,
            } => {
                cond.intern(steps);
                for branch in [then, otherwise].into_iter().flatten() {
                    branch.intern(steps);
                }
            }
        }
    }

    pub fn run<'a>(&self, root: NodeRef<'a>) -> Found<'a> {
        self.run_with(root, None)
    }

    /// Like [`Plan::run`], with the steps of interned paths taken from (and saved in)
    /// `memo`, which holds this event's results of `steps`.
    pub fn run_memo<'a>(&self, root: NodeRef<'a>, steps: &Steps, memo: &mut Memo) -> Found<'a> {
        self.run_with(root, Some((steps, memo)))
    }

    fn run_with<'a>(&self, root: NodeRef<'a>, mut memo: Option<(&Steps, &mut Memo)>) -> Found<'a> {
        match self {
            Plan::Path(segs, last) => match memo {
                Some((steps, memo)) if *last != NO_STEP => {
                    decode(root, steps.resolve(*last, root, memo))
                }
                _ => {
                    let mut found = Found::Node(root);
                    for seg in segs {
                        match found {
                            Found::Node(cur) => found = step(cur, seg),
                            _ => break,
                        }
                    }
                    found
                }
            },
            Plan::IfExists {
                cond,
                then,
                otherwise,
            } => {
                let holds = match cond.run_with(root, memo.as_mut().map(|(s, m)| (*s, &mut **m))) {
                    Found::Node(n) => !n.is_null(),
                    Found::Undefined => false,
                    Found::Other => return Found::Other,
                };
                let branch = if holds { then } else { otherwise };
                match branch {
                    Some(p) => p.run_with(root, memo),
                    None => Found::Undefined,
                }
            }
        }
    }
}

/// One step of a path walk, as mapping-kit's `get` takes it: a falsy value stops the walk
/// (and is the result), objects are looked up by key, arrays by index.
#[inline]
fn step<'a>(cur: NodeRef<'a>, seg: &Seg) -> Found<'a> {
    if !truthy(&cur) {
        return Found::Node(cur);
    }
    match cur.kind() {
        Kind::Object => cur.get(&seg.key).map_or(Found::Undefined, Found::Node),
        Kind::Array => match seg.index {
            Some(i) => cur.index(i).map_or(Found::Undefined, Found::Node),
            None if &*seg.key == "length" => Found::Other,
            None => Found::Undefined,
        },
        Kind::String if seg.index.is_some() || &*seg.key == "length" => Found::Other,
        _ => Found::Undefined,
    }
}

/// No step: a path not interned, or the parent of a first segment.
const NO_STEP: u32 = u32::MAX;
/// Memo values besides node positions.
const UNSET: u32 = u32::MAX;
const UNDEFINED: u32 = u32::MAX - 1;
const OTHER: u32 = u32::MAX - 2;

/// The path prefixes of a mapping's plans, each once: the default columns read
/// `context.traits.email`, `context.personas.computation_key`, `.computation_id`, ...,
/// and with shared prefixes `context` and `context.personas` are looked up once per event.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    /// (previous step or `NO_STEP`, segment)
    steps: Vec<(u32, Seg)>,
}

impl Steps {
    /// The step for the whole path (`NO_STEP` for the empty path).
    fn intern(&mut self, segs: &[Seg]) -> u32 {
        let mut at = NO_STEP;
        for seg in segs {
            at = match self
                .steps
                .iter()
                .position(|(prev, s)| *prev == at && s.key == seg.key)
            {
                Some(i) => i as u32,
                None => {
                    self.steps.push((at, seg.clone()));
                    (self.steps.len() - 1) as u32
                }
            };
        }
        at
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    fn resolve(&self, id: u32, root: NodeRef<'_>, memo: &mut Memo) -> u32 {
        let known = memo.slots[id as usize];
        if known != UNSET {
            return known;
        }
        let (prev, seg) = &self.steps[id as usize];
        let from = if *prev == NO_STEP {
            root.index_in_tape()
        } else {
            self.resolve(*prev, root, memo)
        };
        let result = match from {
            UNDEFINED | OTHER => from,
            at => match step(root.at(at), seg) {
                Found::Node(n) => n.index_in_tape(),
                Found::Undefined => UNDEFINED,
                Found::Other => OTHER,
            },
        };
        memo.slots[id as usize] = result;
        result
    }
}

fn decode(root: NodeRef<'_>, v: u32) -> Found<'_> {
    match v {
        UNDEFINED => Found::Undefined,
        OTHER => Found::Other,
        at => Found::Node(root.at(at)),
    }
}

/// One event's results of a mapping's [`Steps`].
#[derive(Debug, Default)]
pub struct Memo {
    slots: Vec<u32>,
}

impl Memo {
    /// Forgets the previous event.
    pub fn reset(&mut self, steps: &Steps) {
        self.slots.clear();
        self.slots.resize(steps.len(), UNSET);
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
        let mut steps = Steps::default();
        let mut plans = Vec::new();
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
                let mut interned = plan.clone();
                interned.intern(&mut steps);
                plans.push((src.clone(), plan.clone(), interned));
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
        // Shared steps, one memo for the event, any order: same results.
        assert!(steps.len() < plans.len() * 3, "prefixes are shared");
        let mut memo = Memo::default();
        for order in [false, true] {
            memo.reset(&steps);
            let mut all: Vec<_> = plans.iter().collect();
            if order {
                all.reverse();
            }
            for (src, plain, interned) in all {
                let a = format!("{:?}", plain.run(root));
                let b = format!("{:?}", interned.run_memo(root, &steps, &mut memo));
                assert_eq!(a, b, "{src}");
            }
        }
    }
}
