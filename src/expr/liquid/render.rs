//! Rendering a parsed template against an event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::filters::{FilterError, apply_filter};
use super::parse::{CmpOp, Cond, Expr, Node, Operand};
use super::value::{LValue, equals, less_than};

/// liquidjs gives up on ranges longer than this (its memory limit); so do we.
const MAX_RANGE: f64 = 100_000.0;

/// liquidjs's `memoryLimit` as Segment sets it (1e8): what one render may allocate,
/// counted in characters.
pub const MEMORY_LIMIT: u64 = 100_000_000;

/// liquidjs's `renderLimit` as Segment sets it: 500 ms per render. The memory count is what
/// stops runaway templates (deterministically, whatever the machine's load); the clock is
/// a backstop with its own reason.
pub const RENDER_LIMIT: Duration = Duration::from_millis(500);

/// Why rendering failed. Each displays as liquidjs-style text (Liquid's render error adds
/// its prefix).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the range ({from}..{to}) is too long")]
    RangeTooLong { from: f64, to: f64 },
    #[error(
        "memory alloc limit exceeded (the template would use more than {MEMORY_LIMIT} characters)"
    )]
    MemoryLimit,
    #[error("template render limit exceeded (more than {} ms)", RENDER_LIMIT.as_millis())]
    TimeLimit,
    #[error(transparent)]
    Filter(#[from] FilterError),
}

pub struct Context<'e> {
    event: &'e LValue,
    vars: HashMap<String, LValue>,
    counters: HashMap<String, f64>,
    cycles: HashMap<String, usize>,
    /// Characters counted against [`MEMORY_LIMIT`] so far.
    used: u64,
    deadline: Instant,
}

/// A value's size as liquidjs counts it: a string's JavaScript length, an array's length.
fn size(v: &LValue) -> u64 {
    match v {
        LValue::Str(s) => crate::value::js_length(s) as u64,
        LValue::Arr(a) => a.len() as u64,
        _ => 0,
    }
}

/// What a filter will allocate beyond its input, when that can be much more than the input
/// (counted before it runs, so that it never runs past the limit).
fn expansion(name: &str, v: &LValue, args: &[LValue]) -> u64 {
    let text = |i: usize| args.get(i).map(LValue::render).unwrap_or_default();
    match name {
        "replace" => {
            let (p, r) = (text(0), text(1));
            let input = v.render();
            let hits = if p.is_empty() {
                input.chars().count() as u64 + 1
            } else {
                input.matches(p.as_str()).count() as u64
            };
            hits.saturating_mul(r.len() as u64)
        }
        "join" => match v {
            LValue::Arr(a) => (a.len() as u64).saturating_mul(1 + text(0).len() as u64),
            _ => 0,
        },
        "date" => super::date::padding(&text(0)),
        _ => 0,
    }
}

impl<'e> Context<'e> {
    /// A context whose render clock allows `limit` (tests lift it to show that the memory
    /// count alone stops a template).
    pub fn with_clock(event: &'e LValue, limit: Duration) -> Context<'e> {
        Context {
            event,
            vars: HashMap::new(),
            counters: HashMap::new(),
            cycles: HashMap::new(),
            used: 0,
            deadline: Instant::now() + limit,
        }
    }

    /// Counts `n` characters against the memory limit.
    fn charge(&mut self, n: u64) -> Result<(), RenderError> {
        self.used = self.used.saturating_add(n);
        if self.used > MEMORY_LIMIT {
            return Err(RenderError::MemoryLimit);
        }
        Ok(())
    }

    pub fn render(&mut self, nodes: &[Node], out: &mut String) -> Result<(), RenderError> {
        for node in nodes {
            if Instant::now() > self.deadline {
                return Err(RenderError::TimeLimit);
            }
            let before = out.len();
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Output(e) => self.eval(e)?.render_into(out),
                Node::If(branches, otherwise) => {
                    let mut taken = None;
                    for (cond, body) in branches {
                        if self.test(cond)? {
                            taken = Some(body);
                            break;
                        }
                    }
                    self.render(taken.unwrap_or(otherwise), out)?;
                }
                Node::Assign(name, e) => {
                    let v = self.eval(e)?;
                    self.vars.insert(name.clone(), v);
                }
                Node::Capture(name, body) => {
                    // Counted as it is written, by the nodes inside.
                    let mut text = String::new();
                    self.render(body, &mut text)?;
                    self.vars.insert(name.clone(), LValue::Str(text));
                }
                Node::Increment(name) => {
                    let n = self.counters.entry(name.clone()).or_insert(0.0);
                    LValue::Num(*n).render_into(out);
                    *n += 1.0;
                }
                Node::Decrement(name) => {
                    let n = self.counters.entry(name.clone()).or_insert(0.0);
                    *n -= 1.0;
                    LValue::Num(*n).render_into(out);
                }
                Node::Cycle(group, values) => {
                    let i = self.cycles.entry(group.clone()).or_insert(0);
                    let at = *i % values.len().max(1);
                    *i += 1;
                    if let Some(v) = values.get(at) {
                        self.value(v)?.render_into(out);
                    }
                }
            }
            // What a node writes is counted too (liquidjs's count leaves output out, but its
            // clock would stop a template doubling captures; this stops it the same way on
            // every machine).
            self.charge((out.len() - before) as u64)?;
        }
        Ok(())
    }

    fn eval(&mut self, e: &Expr) -> Result<LValue, RenderError> {
        let mut v = self.value(&e.head)?;
        for f in &e.filters {
            if Instant::now() > self.deadline {
                return Err(RenderError::TimeLimit);
            }
            let args = f
                .args
                .iter()
                .map(|a| self.value(a))
                .collect::<Result<Vec<_>, _>>()?;
            let named = f
                .named
                .iter()
                .map(|(k, a)| Ok((k.as_str(), self.value(a)?)))
                .collect::<Result<Vec<_>, RenderError>>()?;
            // As liquidjs: a filter counts the size of its input and arguments; filters
            // that can write far more than that count it first.
            let input = size(&v) + args.iter().map(size).sum::<u64>();
            self.charge(input.saturating_add(expansion(&f.name, &v, &args)))?;
            v = apply_filter(&f.name, v, &args, &named)?;
            self.charge(size(&v))?;
        }
        Ok(v)
    }

    fn value(&self, op: &Operand) -> Result<LValue, RenderError> {
        match op {
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Range(from, to) => {
                let (a, b) = (self.value(from)?.number(), self.value(to)?.number());
                let (a, b) = (a.trunc(), b.trunc());
                if b - a > MAX_RANGE {
                    return Err(RenderError::RangeTooLong { from: a, to: b });
                }
                let mut items = Vec::new();
                let mut i = a;
                while i <= b {
                    items.push(LValue::Num(i));
                    i += 1.0;
                }
                Ok(LValue::Arr(items))
            }
            Operand::Var(path) => {
                let mut segs = path.iter();
                let Some(first) = segs.next() else {
                    return Ok(LValue::Nil);
                };
                let root = self.value(first)?;
                let mut cur = match &root {
                    LValue::Str(name) => match self.vars.get(name) {
                        Some(v) => v.clone(),
                        None => self.event.member(&root),
                    },
                    other => self.event.member(other),
                };
                for seg in segs {
                    let key = self.value(seg)?;
                    cur = cur.member(&key);
                }
                Ok(cur)
            }
        }
    }

    fn test(&self, cond: &Cond) -> Result<bool, RenderError> {
        Ok(match cond {
            Cond::Value(v) => self.value(v)?.truthy(),
            Cond::Not(c) => !self.test(c)?,
            Cond::And(a, b) => self.test(a)? && self.test(b)?,
            Cond::Or(a, b) => self.test(a)? || self.test(b)?,
            Cond::Compare(a, op, b) => {
                let (l, r) = (self.value(a)?, self.value(b)?);
                match op {
                    CmpOp::Eq => equals(&l, &r),
                    CmpOp::Ne => !equals(&l, &r),
                    CmpOp::Lt => less_than(&l, &r),
                    CmpOp::Gt => less_than(&r, &l),
                    CmpOp::Le => {
                        !matches!((&l, &r), (LValue::Obj(_), _) | (_, LValue::Obj(_)))
                            && (less_than(&l, &r) || loosely_equal(&l, &r))
                    }
                    CmpOp::Ge => {
                        !matches!((&l, &r), (LValue::Obj(_), _) | (_, LValue::Obj(_)))
                            && (less_than(&r, &l) || loosely_equal(&l, &r))
                    }
                    CmpOp::Contains => contains(&l, &r),
                }
            }
        })
    }
}

/// Whether JavaScript's `<=` holds given `<` does not: the values are neither NaN nor
/// ordered, i.e. they compare equal after conversion.
fn loosely_equal(l: &LValue, r: &LValue) -> bool {
    !less_than(l, r) && !less_than(r, l) && {
        let (a, b) = (l.js_number(), r.js_number());
        match (l, r) {
            (LValue::Str(_), LValue::Str(_)) => true,
            _ => !a.is_nan() && !b.is_nan(),
        }
    }
}

/// `contains`: a substring of a string, or an element (strictly equal) of an array.
fn contains(l: &LValue, r: &LValue) -> bool {
    match l {
        LValue::Str(s) => s.contains(r.js_string().as_str()),
        LValue::Arr(a) => a.iter().any(|x| match (x, r) {
            (LValue::Arr(_), _) | (LValue::Obj(_), _) => false,
            _ => x == r,
        }),
        _ => false,
    }
}
