//! Column expressions: Segment's mapping directives (`@path`, `@template`, `@if`, ...).
//!
//! A mapping value is compiled once, when the mapping loads, into an [`Expr`]: paths are
//! split, templates scanned, Liquid parsed, and every mistake Segment would report (or would
//! only hit in the middle of a run) is reported with its location. Evaluating an [`Expr`]
//! against an event then only walks the compiled form.

mod compile;
mod eval;
mod liquid;
mod plan;
mod replace;
mod template;

pub use crate::value::{Object, Type, Value, js_length, set};
pub use crate::value::{Path, PathError, Seg, walk};
pub use compile::{DIRECTIVES, ExprError, compile, compile_top_level};
pub use eval::{EvalError, eval};
pub use liquid::{Liquid, LiquidError, strftime};
pub use plan::{Found, Memo, Plan, Steps};
pub use template::{Template, TemplateError};

/// A constant written in a mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

/// Whether `@if` tests presence (`exists`) or non-blankness (`blank`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMode {
    Exists,
    Blank,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonMode {
    Encode,
    Decode,
    /// A mode Segment's validation accepts but whose resolution does nothing (`Encode`).
    Inert,
}

/// A compiled mapping value.
#[derive(Debug)]
pub enum Expr {
    Const(Const),
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    Path(Path),
    /// `@path` whose argument is itself a directive, resolved per event.
    PathDyn(Box<Expr>),
    Template(Template),
    TemplateDyn(Box<Expr>),
    If {
        mode: IfMode,
        cond: Box<Expr>,
        then: Option<Box<Expr>>,
        otherwise: Option<Box<Expr>>,
    },
    Case {
        upper: bool,
        value: Option<Box<Expr>>,
    },
    Replace(Box<Replace>),
    ArrayPath {
        root: Box<Expr>,
        shape: Option<Box<Expr>>,
    },
    Merge {
        objects: Vec<Expr>,
        left: bool,
    },
    Transform {
        apply: Box<Expr>,
        mapping: Box<Expr>,
    },
    Flatten {
        value: Box<Expr>,
        separator: String,
        omit_arrays: bool,
    },
    Json {
        mode: JsonMode,
        value: Box<Expr>,
    },
    ExcludeWhenNull(Box<Expr>),
    Liquid(Box<Liquid>),
}

#[derive(Debug)]
pub struct Replace {
    /// `None` when the value is written as `""` (resolves to nothing).
    pub value: Option<Expr>,
    pub pattern: String,
    pub replacement: String,
    pub second: Option<(String, String)>,
    pub global: bool,
    pub ignore_case: bool,
}
