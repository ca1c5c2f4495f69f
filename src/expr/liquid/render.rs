//! Rendering a parsed template against an event.

use std::collections::HashMap;

use super::filters::{FilterError, apply_filter};
use super::parse::{CmpOp, Cond, Expr, Node, Operand};
use super::value::{LValue, equals, less_than};

/// liquidjs gives up on ranges longer than this (its memory limit); so do we.
const MAX_RANGE: f64 = 100_000.0;

/// Why rendering failed. Each displays as liquidjs-style text (Liquid's render error adds
/// its prefix).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the range ({from}..{to}) is too long")]
    RangeTooLong { from: f64, to: f64 },
    #[error(transparent)]
    Filter(#[from] FilterError),
}

pub struct Context<'e> {
    event: &'e LValue,
    vars: HashMap<String, LValue>,
    counters: HashMap<String, f64>,
    cycles: HashMap<String, usize>,
}

impl<'e> Context<'e> {
    pub fn new(event: &'e LValue) -> Context<'e> {
        Context {
            event,
            vars: HashMap::new(),
            counters: HashMap::new(),
            cycles: HashMap::new(),
        }
    }

    pub fn render(&mut self, nodes: &[Node], out: &mut String) -> Result<(), RenderError> {
        for node in nodes {
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
        }
        Ok(())
    }

    fn eval(&self, e: &Expr) -> Result<LValue, RenderError> {
        let mut v = self.value(&e.head)?;
        for f in &e.filters {
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
            v = apply_filter(&f.name, v, &args, &named)?;
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
