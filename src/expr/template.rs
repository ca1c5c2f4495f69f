//! `@template`: Segment's `{{ path }}` placeholders.
//!
//! Segment renders with two regular-expression passes: `{{{path}}}` first, then `{{path}}`
//! over the result. Values print as JavaScript's `String()`; missing and null print as
//! nothing; there is no HTML escaping. A template without triple braces is compiled once
//! into literal text and paths; one with triple braces keeps the two-pass behaviour (a
//! value inserted by the first pass can itself contain `{{...}}`).

use crate::value::Value;
use crate::value::{Path, PathError};

/// Why a template does not compile: one of its placeholders is not a valid path.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Path(#[from] PathError),
}

#[derive(Clone, Debug)]
enum Part {
    Lit(String),
    Var(Path),
}

#[derive(Clone, Debug)]
pub struct Template {
    /// Parts of the first pass: the `{{{ }}}` pass when `two_pass`, else the `{{ }}` pass.
    parts: Vec<Part>,
    two_pass: bool,
}

/// Finds `{`×n, one or more non-`}` characters, `}`×n, leftmost first, as the regular
/// expressions `\{\{([^}]+)\}\}` / `\{\{\{([^}]+)\}\}\}` do.
fn matches(text: &str, n: usize) -> Vec<(usize, usize, &str)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 * n < b.len() {
        if b[i..i + n].iter().all(|&c| c == b'{') {
            let body = i + n;
            let close = b[body..].iter().position(|&c| c == b'}').map(|p| body + p);
            if let Some(j) = close
                && j > body
                && j + n <= b.len()
                && b[j..j + n].iter().all(|&c| c == b'}')
            {
                out.push((i, j + n, &text[body..j]));
                i = j + n;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn compile_pass(text: &str, n: usize) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut last = 0;
    for (start, end, inner) in matches(text, n) {
        if start > last {
            parts.push(Part::Lit(text[last..start].to_string()));
        }
        parts.push(Part::Var(Path::parse(inner.trim())?));
        last = end;
    }
    if last < text.len() {
        parts.push(Part::Lit(text[last..].to_string()));
    }
    Ok(parts)
}

fn push_value(out: &mut String, v: &Value<'_>) {
    if !v.is_nullish() {
        out.push_str(&v.to_js_string());
    }
}

impl Template {
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        let two_pass = !matches(text, 3).is_empty();
        let parts = compile_pass(text, if two_pass { 3 } else { 2 })?;
        Ok(Template { parts, two_pass })
    }

    /// Whether the template has no placeholders at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    pub fn render(&self, data: &Value<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(p) => push_value(&mut out, &p.lookup(data)),
            }
        }
        if !self.two_pass {
            return out;
        }
        let first = out;
        let mut out = String::with_capacity(first.len());
        let mut last = 0;
        for (start, end, inner) in matches(&first, 2) {
            out.push_str(&first[last..start]);
            if let Ok(p) = Path::parse(inner.trim()) {
                push_value(&mut out, &p.lookup(data));
            }
            last = end;
        }
        out.push_str(&first[last..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn render(t: &str, event: &str) -> String {
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(event).unwrap());
        Template::compile(t).unwrap().render(&root)
    }

    #[test]
    fn placeholders() {
        let e = r#"{"properties":{"str":"Hello World","n":1.50,"arr":[1,2],"o":{},"nul":null,"t":true},"x":"{{properties.n}}"}"#;
        assert_eq!(render("{{ properties.str }}!", e), "Hello World!");
        assert_eq!(render("{{properties.str}}}", e), "Hello World}");
        assert_eq!(render("{{{properties.str}}}", e), "Hello World");
        assert_eq!(
            render("{{properties.n}}|{{properties.arr}}|{{properties.o}}", e),
            "1.5|1,2|[object Object]"
        );
        assert_eq!(
            render(
                "[{{properties.nul}}][{{properties.missing}}][{{properties.t}}]",
                e
            ),
            "[][][true]"
        );
        // `{{ }}` is the empty path, which Segment resolves to the whole event.
        assert_eq!(render("{{}} {{ }}", e), "{{}} [object Object]");
        assert_eq!(render("<{{properties.str}}>&", e), "<Hello World>&");
        // A value inserted by the triple pass is expanded by the double pass, as in Segment.
        assert_eq!(render("{{{x}}}", e), "1.5");
        assert_eq!(render("no placeholders", e), "no placeholders");
    }
}
