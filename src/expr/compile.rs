//! Validation and compilation of mapping values.
//!
//! The rules are Segment's validator plus the checks Segment only makes while resolving
//! (a missing `@if` condition, an unknown `@case` operator, an over-long `pattern2`): here
//! they all fail when the mapping loads, with the location of the offending value.

use std::fmt;

use super::liquid::Liquid;
use super::template::Template;
use super::{Const, Expr, IfMode, JsonMode, Replace};
use crate::spanned::{Mark, SNode, SValue};
use crate::value::Path;
use crate::value::js_length;

/// Directives, in the order the README documents them.
pub const DIRECTIVES: &[&str] = &[
    "@path",
    "@template",
    "@literal",
    "@if",
    "@arrayPath",
    "@case",
    "@replace",
    "@merge",
    "@transform",
    "@flatten",
    "@json",
    "@liquid",
    "@excludeWhenNull",
];

const MAX_PATTERN_LENGTH: usize = 10;
const MAX_REPLACEMENT_LENGTH: usize = 10;

/// A problem with a mapping value, located by its path inside the value (`.@if.then`) and,
/// when known, its line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub at: String,
    pub mark: Mark,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.strip_prefix('.').unwrap_or(&self.at);
        if at.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{at}: {}", self.message)
        }
    }
}

type Errors = Vec<ExprError>;

fn err(at: &str, node: &SNode, message: impl Into<String>) -> Errors {
    vec![ExprError {
        at: at.to_string(),
        mark: node.mark,
        message: message.into(),
    }]
}

fn is_directive(node: &SNode) -> bool {
    matches!(&node.value, SValue::Object(m) if m.iter().any(|(k, _, _)| k.starts_with('@')))
}

/// Segment's "realTypeOrDirective" with an article: "a string", "an object", "a directive".
fn described(node: &SNode) -> &'static str {
    if is_directive(node) {
        return "a directive";
    }
    match &node.value {
        SValue::Null => "null",
        SValue::Bool(_) => "a boolean",
        SValue::Number(_) => "a number",
        SValue::String(_) => "a string",
        SValue::Array(_) => "an array",
        SValue::Object(_) => "an object",
    }
}

fn child(at: &str, key: &str) -> String {
    format!("{at}.{key}")
}

/// Compiled options by (node address, path), and how many `compile` calls are running.
type Compiled = (usize, std::collections::HashMap<(usize, String), Expr>);

thread_local! {
    /// Values a directive's [`options`] compiled (to report every option's errors), kept
    /// for the directive to take instead of compiling them a second time: compiled twice
    /// per level, nested directives took exponential time. Keyed by node address and path,
    /// cleared when the outermost `compile` returns.
    static COMPILED: std::cell::RefCell<Compiled> = Default::default();
}

/// Compiles a mapping value (a column, or any nested value).
pub fn compile(node: &SNode, at: &str) -> Result<Expr, Errors> {
    let key = (node as *const SNode as usize, at.to_string());
    if let Some(done) = COMPILED.with(|c| c.borrow_mut().1.remove(&key)) {
        return Ok(done);
    }
    COMPILED.with(|c| c.borrow_mut().0 += 1);
    let result = compile_once(node, at);
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        c.0 -= 1;
        if c.0 == 0 {
            c.1.clear();
        }
    });
    result
}

fn compile_once(node: &SNode, at: &str) -> Result<Expr, Errors> {
    match &node.value {
        SValue::Null => Ok(Expr::Const(Const::Null)),
        SValue::Bool(b) => Ok(Expr::Const(Const::Bool(*b))),
        SValue::Number(n) => Ok(Expr::Const(Const::Number(*n))),
        SValue::String(s) => Ok(Expr::Const(Const::String(s.clone()))),
        SValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match compile(item, &format!("{at}[{i}]")) {
                    Ok(e) => out.push(e),
                    Err(e) => errors.extend(e),
                }
            }
            if errors.is_empty() {
                Ok(Expr::Array(out))
            } else {
                Err(errors)
            }
        }
        SValue::Object(members) => {
            if is_directive(node) {
                return directive(node, members, at);
            }
            let mut out = Vec::with_capacity(members.len());
            let mut errors = Vec::new();
            for (k, _, v) in members {
                match compile(v, &child(at, k)) {
                    Ok(e) => out.push((k.clone(), e)),
                    Err(e) => errors.extend(e),
                }
            }
            if errors.is_empty() {
                Ok(Expr::Object(out))
            } else {
                Err(errors)
            }
        }
    }
}

/// Compiles an expression the way Segment's `transform()` takes a whole mapping: the value
/// is spread into an object first (`{...mapping}`), so a top-level string becomes an object
/// of its characters, an array an object of its elements, and any other scalar `{}`.
pub fn compile_top_level(node: &SNode) -> Result<Expr, Errors> {
    let spread = match &node.value {
        SValue::Object(_) => return compile(node, ""),
        SValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.mark, v.clone()))
            .collect(),
        SValue::String(s) => {
            let mut out = Vec::new();
            let mut i = 0;
            for c in s.chars() {
                // Characters outside the BMP are two UTF-16 units, hence two keys in JS.
                let units = c.len_utf16();
                let text = if units == 1 {
                    c.to_string()
                } else {
                    "\u{fffd}".to_string()
                };
                for _ in 0..units {
                    let v = SNode::new(SValue::String(text.clone()), node.mark);
                    out.push((i.to_string(), node.mark, v));
                    i += 1;
                }
            }
            out
        }
        _ => Vec::new(),
    };
    compile(&SNode::new(SValue::Object(spread), node.mark), "")
}

fn directive(node: &SNode, members: &[(String, Mark, SNode)], at: &str) -> Result<Expr, Errors> {
    let names: Vec<&str> = members
        .iter()
        .filter(|(k, _, _)| k.starts_with('@'))
        .map(|(k, _, _)| k.as_str())
        .collect();
    if names.len() > 1 {
        return Err(err(
            at,
            node,
            format!(
                "a directive object has exactly one @-key, this one has {} ({})",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    if let Some((other, _, _)) = members
        .iter()
        .find(|(k, _, _)| !k.starts_with('@') && k != "_metadata")
    {
        return Err(err(
            at,
            node,
            format!(
                "{} cannot be mixed with other keys (found {other:?}); wrap the value in an object key instead",
                names[0]
            ),
        ));
    }
    let name = names[0];
    let (_, _, arg) = members
        .iter()
        .find(|(k, _, _)| k == name)
        .expect("the directive key is present");
    let here = child(at, name);
    let at = here.as_str();
    match name {
        "@path" => match &arg.value {
            SValue::String(s) => Path::parse(s)
                .map(Expr::Path)
                .map_err(|m| err(at, arg, m.to_string())),
            _ if is_directive(arg) => Ok(Expr::PathDyn(Box::new(compile(arg, at)?))),
            _ => Err(err(
                at,
                arg,
                format!(
                    "should be a string or a directive, but it is {}",
                    described(arg)
                ),
            )),
        },
        "@template" => match &arg.value {
            SValue::String(s) => Template::compile(s)
                .map(Expr::Template)
                .map_err(|m| err(at, arg, m.to_string())),
            _ if is_directive(arg) => Ok(Expr::TemplateDyn(Box::new(compile(arg, at)?))),
            _ => Err(err(
                at,
                arg,
                format!(
                    "should be a string or a directive, but it is {}",
                    described(arg)
                ),
            )),
        },
        "@literal" | "@excludeWhenNull" => {
            let inner = compile(arg, at)?;
            Ok(if name == "@literal" {
                inner
            } else {
                Expr::ExcludeWhenNull(Box::new(inner))
            })
        }
        "@if" => compile_if(arg, at),
        "@case" => compile_case(arg, at),
        "@replace" => compile_replace(arg, at),
        "@arrayPath" => compile_array_path(arg, at),
        "@merge" => compile_merge(arg, at),
        "@transform" => compile_transform(arg, at),
        "@flatten" => compile_flatten(arg, at),
        "@json" => compile_json(arg, at),
        "@liquid" => match &arg.value {
            SValue::String(s) => Liquid::compile(s)
                .map(|l| Expr::Liquid(Box::new(l)))
                .map_err(|m| err(at, arg, m.to_string())),
            _ => Err(err(
                at,
                arg,
                format!(
                    "should be a Liquid template string, but it is {}",
                    described(arg)
                ),
            )),
        },
        _ => {
            let hint = crate::suggest::did_you_mean(name, DIRECTIVES.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            Err(err(
                &here,
                node,
                format!(
                    "unknown directive {name}{hint}; directives are {}",
                    DIRECTIVES.join(", ")
                ),
            ))
        }
    }
}

/// The options object of a directive: a plain object (not a directive), whose every value
/// is itself a valid mapping value.
fn options<'n>(arg: &'n SNode, at: &str) -> Result<&'n [(String, Mark, SNode)], Errors> {
    match &arg.value {
        SValue::Object(m) if !is_directive(arg) => {
            let mut errors = Vec::new();
            for (k, _, v) in m {
                let path = child(at, k);
                match compile(v, &path) {
                    Ok(e) => COMPILED.with(|c| {
                        c.borrow_mut()
                            .1
                            .insert((v as *const SNode as usize, path), e);
                    }),
                    Err(e) => errors.extend(e),
                }
            }
            if errors.is_empty() {
                Ok(m)
            } else {
                Err(errors)
            }
        }
        _ => Err(err(
            at,
            arg,
            format!(
                "should be an object of options, but it is {}",
                described(arg)
            ),
        )),
    }
}

fn field<'n>(opts: &'n [(String, Mark, SNode)], key: &str) -> Option<&'n SNode> {
    opts.iter().find(|(k, _, _)| k == key).map(|m| &m.2)
}

fn compile_if(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let exists = field(opts, "exists");
    let blank = field(opts, "blank");
    if !exists.is_some_and(SNode::is_truthy) && !blank.is_some_and(SNode::is_truthy) {
        return Err(err(
            at,
            arg,
            "needs an \"exists\" or a \"blank\" condition (a directive or a value other than false, 0 or \"\")",
        ));
    }
    let (mode, cond) = match exists {
        Some(e) => (IfMode::Exists, e),
        None => (IfMode::Blank, blank.expect("checked above")),
    };
    let key = if mode == IfMode::Exists {
        "exists"
    } else {
        "blank"
    };
    let cond = compile(cond, &child(at, key))?;
    let then = field(opts, "then")
        .map(|t| compile(t, &child(at, "then")))
        .transpose()?;
    // Segment only resolves `else` when it is truthy as written.
    let otherwise = field(opts, "else")
        .filter(|e| e.is_truthy())
        .map(|e| compile(e, &child(at, "else")))
        .transpose()?;
    Ok(Expr::If {
        mode,
        cond: Box::new(cond),
        then: then.map(Box::new),
        otherwise: otherwise.map(Box::new),
    })
}

fn directive_or_string(node: &SNode, at: &str) -> Result<(), Errors> {
    if is_directive(node) || matches!(node.value, SValue::String(_)) {
        Ok(())
    } else {
        Err(err(
            at,
            node,
            format!(
                "should be a string or a directive, but it is {}",
                described(node)
            ),
        ))
    }
}

fn compile_case(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let upper = match field(opts, "operator") {
        Some(SNode {
            value: SValue::String(op),
            ..
        }) if op == "lower" => false,
        Some(SNode {
            value: SValue::String(op),
            ..
        }) if op == "upper" => true,
        Some(
            op @ SNode {
                value: SValue::String(s),
                ..
            },
        ) if !s.is_empty() => {
            return Err(err(
                &child(at, "operator"),
                op,
                format!("should be \"lower\" or \"upper\", not {s:?}"),
            ));
        }
        Some(
            op @ SNode {
                value: SValue::String(_),
                ..
            },
        )
        | Some(
            op @ SNode {
                value: SValue::Null,
                ..
            },
        ) => {
            return Err(err(
                &child(at, "operator"),
                op,
                "is required: \"lower\" or \"upper\"",
            ));
        }
        Some(op) => {
            return Err(err(
                &child(at, "operator"),
                op,
                format!("should be a string, but it is {}", described(op)),
            ));
        }
        None => {
            return Err(err(
                at,
                arg,
                "needs an \"operator\": \"lower\" or \"upper\"",
            ));
        }
    };
    let value = match field(opts, "value") {
        Some(v) => {
            directive_or_string(v, &child(at, "value"))?;
            v.is_truthy()
                .then(|| compile(v, &child(at, "value")))
                .transpose()?
        }
        None => None,
    };
    Ok(Expr::Case {
        upper,
        value: value.map(Box::new),
    })
}

fn string_field(
    opts: &[(String, Mark, SNode)],
    key: &str,
    at: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, Errors> {
    match field(opts, key) {
        None => Ok(None),
        Some(
            n @ SNode {
                value: SValue::String(s),
                ..
            },
        ) => {
            let len = js_length(s);
            if len < min {
                Err(err(
                    &child(at, key),
                    n,
                    format!("should be a string of length {min} or more"),
                ))
            } else if len > max {
                Err(err(
                    &child(at, key),
                    n,
                    format!("should be a string of at most {max} characters (it has {len})"),
                ))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(n) => Err(err(
            &child(at, key),
            n,
            format!("should be a string, but it is {}", described(n)),
        )),
    }
}

fn bool_field(
    opts: &[(String, Mark, SNode)],
    key: &str,
    at: &str,
    default: bool,
) -> Result<bool, Errors> {
    match field(opts, key) {
        None => Ok(default),
        Some(SNode {
            value: SValue::Bool(b),
            ..
        }) => Ok(*b),
        Some(n) => Err(err(
            &child(at, key),
            n,
            format!("should be a boolean, but it is {}", described(n)),
        )),
    }
}

fn compile_replace(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let mut errors = Vec::new();
    let pattern = match string_field(opts, "pattern", at, 1, MAX_PATTERN_LENGTH) {
        Ok(Some(p)) => Some(p),
        Ok(None) => {
            errors.extend(err(at, arg, "needs a \"pattern\" (the text to replace)"));
            None
        }
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let replacement = string_field(opts, "replacement", at, 0, MAX_REPLACEMENT_LENGTH)
        .unwrap_or_else(|e| {
            errors.extend(e);
            None
        })
        .unwrap_or_default();
    let global = bool_field(opts, "global", at, true).unwrap_or_else(|e| {
        errors.extend(e);
        true
    });
    let ignore_case = bool_field(opts, "ignorecase", at, false).unwrap_or_else(|e| {
        errors.extend(e);
        false
    });
    let value = match field(opts, "value") {
        None => {
            errors.extend(err(at, arg, "needs a \"value\" (a directive or a string)"));
            None
        }
        Some(v) => match directive_or_string(v, &child(at, "value")) {
            Err(e) => {
                errors.extend(e);
                None
            }
            Ok(()) if !v.is_truthy() => None,
            Ok(()) => match compile(v, &child(at, "value")) {
                Ok(e) => Some(e),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        },
    };
    // Segment applies pattern2 only when it is a non-empty string and replacement2 (default
    // "") is a string; their lengths are checked then.
    let mut second = None;
    if let Some(
        p2 @ SNode {
            value: SValue::String(p2s),
            ..
        },
    ) = field(opts, "pattern2")
        && !p2s.is_empty()
    {
        let r2 = match field(opts, "replacement2") {
            None
            | Some(SNode {
                value: SValue::Null,
                ..
            }) => Some(String::new()),
            Some(SNode {
                value: SValue::String(s),
                ..
            }) => Some(s.clone()),
            Some(_) => None,
        };
        if js_length(p2s) > MAX_PATTERN_LENGTH {
            errors.extend(err(
                &child(at, "pattern2"),
                p2,
                format!("should be a string of at most {MAX_PATTERN_LENGTH} characters"),
            ));
        }
        if let Some(r2) = r2 {
            if js_length(&r2) > MAX_REPLACEMENT_LENGTH {
                errors.extend(err(
                    &child(at, "replacement2"),
                    field(opts, "replacement2").unwrap_or(p2),
                    format!("should be a string of at most {MAX_REPLACEMENT_LENGTH} characters"),
                ));
            }
            second = Some((p2s.clone(), r2));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Expr::Replace(Box::new(Replace {
        value,
        pattern: pattern.expect("errors checked"),
        replacement,
        second,
        global,
        ignore_case,
    })))
}

fn compile_array_path(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let SValue::Array(items) = &arg.value else {
        return Err(err(
            at,
            arg,
            format!(
                "should be an array [path, itemShape], but it is {}",
                described(arg)
            ),
        ));
    };
    let Some(first) = items.first() else {
        return Err(err(at, arg, "needs a path as its first element"));
    };
    let root = match &first.value {
        // A plain string is looked up directly (not through @path).
        SValue::String(s) => {
            Expr::Path(Path::parse(s).map_err(|m| err(&format!("{at}[0]"), first, m.to_string()))?)
        }
        _ if is_directive(first) => compile(first, &format!("{at}[0]"))?,
        _ => {
            return Err(err(
                &format!("{at}[0]"),
                first,
                format!(
                    "should be a string or a directive, but it is {}",
                    described(first)
                ),
            ));
        }
    };
    let shape = match items.get(1) {
        Some(s) => {
            let compiled = compile(s, &format!("{at}[1]"))?;
            matches!(&s.value, SValue::Object(m) if !m.is_empty()).then_some(compiled)
        }
        None => None,
    };
    Ok(Expr::ArrayPath {
        root: Box::new(root),
        shape: shape.map(Box::new),
    })
}

fn directive_or_object(node: &SNode, at: &str) -> Result<Expr, Errors> {
    match &node.value {
        SValue::Object(_) => compile(node, at),
        _ => Err(err(
            at,
            node,
            format!(
                "should be an object or a directive, but it is {}",
                described(node)
            ),
        )),
    }
}

fn compile_merge(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let left = match field(opts, "direction") {
        Some(SNode {
            value: SValue::String(d),
            ..
        }) if d.eq_ignore_ascii_case("left") || d.eq_ignore_ascii_case("right") => {
            // Validation ignores case; resolution only recognises exactly "left".
            d == "left"
        }
        Some(
            d @ SNode {
                value: SValue::String(s),
                ..
            },
        ) if !s.is_empty() => {
            return Err(err(
                &child(at, "direction"),
                d,
                format!("should be \"left\" or \"right\", not {s:?}"),
            ));
        }
        Some(
            d @ SNode {
                value: SValue::String(_) | SValue::Null,
                ..
            },
        )
        | Some(
            d @ SNode {
                value: SValue::Bool(false),
                ..
            },
        ) => {
            return Err(err(
                &child(at, "direction"),
                d,
                "is required: \"left\" or \"right\"",
            ));
        }
        Some(d) => {
            return Err(err(
                &child(at, "direction"),
                d,
                format!(
                    "should be \"left\" or \"right\", but it is {}",
                    described(d)
                ),
            ));
        }
        None => return Err(err(at, arg, "needs a \"direction\": \"left\" or \"right\"")),
    };
    let objects = match field(opts, "objects") {
        Some(SNode {
            value: SValue::Array(items),
            ..
        }) => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match directive_or_object(item, &format!("{at}.objects[{i}]")) {
                    Ok(e) => out.push(e),
                    Err(e) => errors.extend(e),
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            out
        }
        Some(o) => {
            return Err(err(
                &child(at, "objects"),
                o,
                format!("should be an array, but it is {}", described(o)),
            ));
        }
        None => {
            return Err(err(
                at,
                arg,
                "needs \"objects\": an array of objects or directives",
            ));
        }
    };
    Ok(Expr::Merge { objects, left })
}

fn compile_transform(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let apply = match field(opts, "apply") {
        Some(a) => directive_or_object(a, &child(at, "apply"))?,
        None => return Err(err(at, arg, "needs \"apply\": an object or a directive")),
    };
    let mapping = match field(opts, "mapping") {
        Some(m) => directive_or_object(m, &child(at, "mapping"))?,
        None => return Err(err(at, arg, "needs \"mapping\": an object or a directive")),
    };
    Ok(Expr::Transform {
        apply: Box::new(apply),
        mapping: Box::new(mapping),
    })
}

fn compile_flatten(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let separator = match field(opts, "separator") {
        Some(SNode {
            value: SValue::String(s),
            ..
        }) if !s.is_empty() => s.clone(),
        Some(
            s @ SNode {
                value: SValue::String(_),
                ..
            },
        ) => {
            return Err(err(
                &child(at, "separator"),
                s,
                "should be a non-empty string",
            ));
        }
        Some(s) => {
            return Err(err(
                &child(at, "separator"),
                s,
                format!("should be a string, but it is {}", described(s)),
            ));
        }
        None => return Err(err(at, arg, "needs a \"separator\" string (e.g. \".\")")),
    };
    let value = match field(opts, "value") {
        Some(v) => compile(v, &child(at, "value"))?,
        None => return Err(err(at, arg, "needs a \"value\" to flatten")),
    };
    let omit_arrays = field(opts, "omitArrays").is_some_and(SNode::is_truthy);
    Ok(Expr::Flatten {
        value: Box::new(value),
        separator,
        omit_arrays,
    })
}

fn compile_json(arg: &SNode, at: &str) -> Result<Expr, Errors> {
    let opts = options(arg, at)?;
    let mode = match field(opts, "mode") {
        Some(SNode {
            value: SValue::String(m),
            ..
        }) if m == "encode" => JsonMode::Encode,
        Some(SNode {
            value: SValue::String(m),
            ..
        }) if m == "decode" => JsonMode::Decode,
        Some(SNode {
            value: SValue::String(m),
            ..
        }) if m.eq_ignore_ascii_case("encode") || m.eq_ignore_ascii_case("decode") => {
            JsonMode::Inert
        }
        Some(m) => {
            return Err(err(
                &child(at, "mode"),
                m,
                "should be \"encode\" or \"decode\"",
            ));
        }
        None => return Err(err(at, arg, "needs a \"mode\": \"encode\" or \"decode\"")),
    };
    let value = match field(opts, "value") {
        Some(v) if v.is_truthy() => compile(v, &child(at, "value"))?,
        Some(v) => {
            return Err(err(
                &child(at, "value"),
                v,
                "should be a directive or a value other than false, 0, \"\" or null",
            ));
        }
        None => return Err(err(at, arg, "needs a \"value\"")),
    };
    Ok(Expr::Json {
        mode,
        value: Box::new(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spanned::parse_json_or_yaml;

    fn errors(src: &str) -> Vec<String> {
        let node = parse_json_or_yaml(src).unwrap();
        match compile(&node, "") {
            Ok(_) => vec![],
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn valid_mappings_compile() {
        for ok in [
            r#"{"@path": "$.a"}"#,
            r#"{"@path": {"@template": "$.{{x}}"}}"#,
            r#"{"@if": {"exists": {"@path": "$.a"}, "then": 1, "else": false}}"#,
            r#"{"@if": {"blank": {"@path": "$.a"}, "then": 1}}"#,
            r#"{"@case": {"operator": "upper", "value": {"@path": "$.a"}}}"#,
            r#"{"@replace": {"value": {"@path": "$.a"}, "pattern": "x", "pattern2": "y"}}"#,
            r#"{"@arrayPath": ["$.a", {"k": {"@path": "$.b"}}]}"#,
            r#"{"@merge": {"objects": [{"@path": "$.a"}, {"x": 1}], "direction": "LEFT"}}"#,
            r#"{"@transform": {"apply": {"p": {"@path": "$.a"}}, "mapping": {"@path": "$.p"}}}"#,
            r#"{"@flatten": {"value": {"@path": "$.a"}, "separator": "_"}}"#,
            r#"{"@json": {"mode": "Encode", "value": {"@path": "$.a"}}}"#,
            r#"{"@excludeWhenNull": {"@path": "$.a"}}"#,
            r#"{"@liquid": "{{ a | upcase }}"}"#,
            r#"{"@path": "$.a", "_metadata": {"label": "x"}}"#,
            r#"{"a": [1, {"@path": "$.x"}], "b": null}"#,
        ] {
            assert_eq!(errors(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn invalid_mappings_are_located() {
        let cases = [
            (
                r#"{"neat": {"@path": {}}}"#,
                "neat.@path: should be a string or a directive, but it is an object",
            ),
            (r#"{"@path": "$.a", "x": 1}"#, "cannot be mixed"),
            (r#"{"@path": "$.a", "@template": "x"}"#, "exactly one @-key"),
            (r#"{"@pth": "$.a"}"#, "did you mean @path?"),
            (r#"{"@if": {"then": 1}}"#, "@if: needs an \"exists\""),
            (
                r#"{"@if": {"exists": false, "then": 1}}"#,
                "@if: needs an \"exists\"",
            ),
            (
                r#"{"@case": {"operator": "title", "value": "x"}}"#,
                "@case.operator: should be \"lower\" or \"upper\"",
            ),
            (
                r#"{"@case": {"operator": "lower", "value": 3}}"#,
                "@case.value: should be a string or a directive",
            ),
            (
                r#"{"@replace": {"value": "abc", "pattern": ""}}"#,
                "@replace.pattern: should be a string of length 1",
            ),
            (
                r#"{"@replace": {"value": "abc", "pattern": "01234567890"}}"#,
                "at most 10",
            ),
            (
                r#"{"@replace": {"value": "abc", "pattern": "a", "global": "yes"}}"#,
                "@replace.global: should be a boolean",
            ),
            (r#"{"@replace": {"pattern": "a"}}"#, "needs a \"value\""),
            (r#"{"@arrayPath": "$.a"}"#, "should be an array"),
            (
                r#"{"@merge": {"objects": [1], "direction": "left"}}"#,
                "@merge.objects[0]: should be an object or a directive",
            ),
            (r#"{"@merge": {"objects": []}}"#, "needs a \"direction\""),
            (
                r#"{"@merge": {"objects": [], "direction": "up"}}"#,
                "should be \"left\" or \"right\"",
            ),
            (
                r#"{"@transform": {"apply": 1, "mapping": {}}}"#,
                "@transform.apply",
            ),
            (
                r#"{"@flatten": {"value": {"@path": "$.a"}}}"#,
                "needs a \"separator\"",
            ),
            (r#"{"@json": {"mode": "zip", "value": "x"}}"#, "@json.mode"),
            (
                r#"{"@json": {"mode": "encode", "value": 0}}"#,
                "@json.value",
            ),
            (
                r#"{"@liquid": {}}"#,
                "@liquid: should be a Liquid template string",
            ),
            (
                r#"{"@liquid": "{{ a | sort }}"}"#,
                "filter \"sort\" is disabled",
            ),
            (
                r#"{"@if": {"exists": {"@path": "$.a"}, "then": {"@nope": 1}}}"#,
                "@if.then.@nope: unknown directive",
            ),
            (r#"{"a": [{"@bad": 1}]}"#, "a[0].@bad: unknown directive"),
        ];
        for (src, want) in cases {
            let got = errors(src);
            assert!(
                got.iter().any(|g| g.contains(want)),
                "{src}: expected an error containing {want:?}, got {got:?}"
            );
        }
    }

    /// Each level compiled once: 100 nested `@if`s compile in linear time (they took
    /// 2^depth compilations).
    #[test]
    fn nested_directives_compile_in_linear_time() {
        let n = 60;
        let src = format!(
            "{}\"x\"{}",
            "{\"@if\": {\"exists\": {\"@path\": \"$.event\"}, \"then\": ".repeat(n),
            "}}".repeat(n)
        );
        let node = crate::spanned::parse_json_or_yaml(&src).unwrap();
        let started = std::time::Instant::now();
        assert!(compile(&node, "a").is_ok());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn errors_carry_line_numbers() {
        let node = crate::spanned::parse_yaml("a:\n  '@if':\n    then: 1\n").unwrap();
        let e = compile(&node, "").unwrap_err();
        assert_eq!(e[0].mark.line, 3);
    }
}
