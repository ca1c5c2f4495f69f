//! `@liquid`: Liquid templates rendered the way liquidjs (Segment's engine) renders them.
//!
//! Segment renders `@liquid` with liquidjs, whose output differs from Shopify's Liquid and
//! from Rust Liquid crates in many small ways that land in files: objects print as
//! `[object Object]`, math filters read text as JavaScript numbers, `divided_by` does not
//! truncate, unknown filters pass their input through, `and`/`or` group from the right. This
//! module implements that behaviour directly, with the tags and filters Segment disables
//! left out. Templates are parsed once, when the mapping is loaded.

mod date;
/// liquidjs's strftime, shared with the `format_time` template helper.
pub use date::strftime;
mod filters;
mod parse;
mod render;
mod value;

use std::fmt;

use crate::value::{Value, js_length};
use parse::{Node, ParseError};
use render::{Context, RenderError};
use value::LValue;

/// Segment's limit on template length (JavaScript string length).
pub const MAX_LIQUID_LENGTH: usize = 1000;

/// Tags Segment disables (liquidjs names).
pub const DISABLED_TAGS: &[&str] = &["case", "for", "include", "layout", "render", "tablerow"];

/// Filters Segment disables (liquidjs names).
pub const DISABLED_FILTERS: &[&str] = &[
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
];

/// Why a `@liquid` template does not compile or render. Each displays as the message
/// mappings and events get.
#[derive(Debug, thiserror::Error)]
pub enum LiquidError {
    #[error(
        "Liquid templates are limited to {MAX_LIQUID_LENGTH} characters (this one has {length})"
    )]
    TooLong { length: usize },
    /// A disabled tag or filter: shown without the "invalid Liquid template" prefix.
    #[error("{0}")]
    Disabled(#[source] ParseError),
    #[error("invalid Liquid template: {0}")]
    Invalid(#[source] ParseError),
    #[error("Liquid rendering failed: {0}")]
    Render(#[source] RenderError),
}

impl LiquidError {
    fn from_parse(e: ParseError) -> LiquidError {
        // The message has always been shown bare when it says "is disabled", which includes
        // other errors that quote template text saying so (`unexpected "is disabled" in
        // ...`); kept so that no message changes.
        if e.is_disabled() || e.to_string().contains("is disabled") {
            LiquidError::Disabled(e)
        } else {
            LiquidError::Invalid(e)
        }
    }
}

/// A compiled `@liquid` template.
pub struct Liquid {
    nodes: Vec<Node>,
}

impl fmt::Debug for Liquid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Liquid(..)")
    }
}

impl Liquid {
    pub fn compile(text: &str) -> Result<Liquid, LiquidError> {
        let length = js_length(text);
        if length > MAX_LIQUID_LENGTH {
            return Err(LiquidError::TooLong { length });
        }
        let nodes = parse::parse(text).map_err(LiquidError::from_parse)?;
        Ok(Liquid { nodes })
    }

    pub fn render(&self, data: &Value<'_>) -> Result<String, LiquidError> {
        self.render_within(data, render::RENDER_LIMIT)
    }

    /// [`Liquid::render`] with the render clock at `limit`.
    fn render_within(
        &self,
        data: &Value<'_>,
        limit: std::time::Duration,
    ) -> Result<String, LiquidError> {
        if self.nodes.is_empty() {
            return Ok(String::new());
        }
        let event = LValue::from_json(&data.to_serde());
        let mut out = String::new();
        Context::with_clock(&event, limit)
            .render(&self.nodes, &mut out)
            .map_err(LiquidError::Render)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn render(t: &str, event: &str) -> Result<String, LiquidError> {
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(event).unwrap());
        Liquid::compile(t)?.render(&root)
    }

    #[test]
    fn renders_and_tolerates_missing_values() {
        let e = r#"{"properties":{"test":"abc","n":3,"list":[1,2]}}"#;
        assert_eq!(render("test", e).unwrap(), "test");
        assert_eq!(render("{{ properties.test | upcase }}", e).unwrap(), "ABC");
        assert_eq!(
            render("[{{ properties.missing }}][{{ nope.a.b }}]", e).unwrap(),
            "[][]"
        );
        assert_eq!(
            render("{% if properties.n > 2 %}big{% else %}small{% endif %}", e).unwrap(),
            "big"
        );
        assert_eq!(
            render("{{ properties.list | join: '-' }}", e).unwrap(),
            "1-2"
        );
    }

    /// A number of seconds beyond JavaScript's dates is no date: `date` gives its input
    /// back, as liquidjs does (found by the `liquid` fuzz target: it overflowed).
    #[test]
    fn date_of_a_number_beyond_javascripts_dates_is_the_number() {
        let e = "{}";
        let huge = "7777777777777777000000000000013277330";
        assert_eq!(
            render(&format!("{{{{ {huge} | date: '%Y' }}}}"), e).unwrap(),
            render(&format!("{{{{ {huge} }}}}"), e).unwrap()
        );
        assert_eq!(
            render("{{ 8640000000001 | date: '%Y' }}", e).unwrap(),
            "8640000000001"
        );
        assert_eq!(
            render("{{ 253402300799 | date: '%Y-%m-%d' }}", e).unwrap(),
            "9999-12-31"
        );
    }

    /// Where liquidjs differs from Shopify's Liquid, Segment's files follow liquidjs.
    #[test]
    fn liquidjs_behaviour() {
        let e = r#"{"p":{"o":{"a":1},"n":10,"s":"7","l":[1,2]}}"#;
        assert_eq!(
            render("{{ p.o }}|{{ p.l }}", e).unwrap(),
            "[object Object]|12"
        );
        assert_eq!(render("{{ p.n | divided_by: 4 }}", e).unwrap(), "2.5");
        assert_eq!(
            render("{{ p.s | plus: 1 }}|{{ 'x' | times: 2 }}", e).unwrap(),
            "8|0"
        );
        assert_eq!(render("{{ p.n | no_such_filter }}", e).unwrap(), "10");
        assert_eq!(
            render("{% if false and false or true %}T{% else %}F{% endif %}", e).unwrap(),
            "F"
        );
        assert_eq!(
            render("{{ -2.5 | round }}|{{ 1.005 | round: 2 }}", e).unwrap(),
            "-3|1.01"
        );
        assert_eq!(
            render("{{ '2024-01-15T10:30:00Z' | date: '%b %-d, %Y %l%P' }}", e).unwrap(),
            "Jan 15, 2024 10am"
        );
    }

    #[test]
    fn disabled_features_are_errors() {
        assert!(Liquid::compile("{{ properties.test | sort }}").is_err());
        assert!(Liquid::compile("{% include %} , {{ properties.test }}").is_err());
        assert!(Liquid::compile("{% for x in y %}{% endfor %}").is_err());
        assert!(Liquid::compile(&"x".repeat(1001)).is_err());
        assert!(Liquid::compile(&"x".repeat(1000)).is_ok());
        assert!(Liquid::compile("{{ unclosed").is_err());
    }

    /// Renders with the render clock lifted (the memory count alone must stop it), within
    /// the time a test allows, or fails the test.
    fn bounded(t: &str) -> Result<String, LiquidError> {
        let started = std::time::Instant::now();
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(r#"{"s":"0123456789"}"#).unwrap());
        let r = Liquid::compile(t)?.render_within(&root, std::time::Duration::from_secs(3600));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{t:?} took {:?}",
            started.elapsed()
        );
        r
    }

    #[test]
    fn runaway_templates_stop_at_the_memory_limit() {
        let doubling = format!(
            "{{% assign s = s %}}{}{{{{ s | size }}}}",
            "{% assign s = s | append: s %}".repeat(30)
        );
        assert!(doubling.len() <= MAX_LIQUID_LENGTH, "{}", doubling.len());
        let captures = format!(
            "{{% assign s = 'x' %}}{}{{{{ s }}}}",
            "{%capture s%}{{s}}{{s}}{{s}}{%endcapture%}".repeat(23)
        );
        assert!(captures.len() <= MAX_LIQUID_LENGTH, "{}", captures.len());
        let padding = "{{ '2024-01-15T10:30:00Z' | date: '%999999999Y' }}".to_string();
        // Each step multiplies the text by 250: the fourth would make 625 million.
        let replacing = format!(
            "{{% assign s = '{}' %}}{}",
            "a".repeat(40),
            format!("{{% assign s = s | replace: 'a', '{}' %}}", "a".repeat(250)).repeat(3)
        );
        assert!(replacing.len() <= MAX_LIQUID_LENGTH, "{}", replacing.len());
        for t in [doubling, captures, padding, replacing] {
            let e = bounded(&t).unwrap_err();
            assert!(
                matches!(e, LiquidError::Render(RenderError::MemoryLimit)),
                "{t:?}: {e}"
            );
            assert!(e.to_string().contains("memory alloc limit exceeded"), "{e}");
        }
        // Well below the limit, the same shapes render.
        let ten = "{% assign s = s | append: s %}".repeat(10);
        let out = bounded(&format!("{ten}{{{{ s | size }}}}")).unwrap();
        assert_eq!(out, "10240");
        assert_eq!(
            bounded("{{ '2024-01-15T10:30:00Z' | date: '%12Y' }}").unwrap(),
            "        2024"
        );
    }

    /// The clock is a backstop with its own reason: a render past it stops at the next node.
    #[test]
    fn the_render_clock_is_a_backstop() {
        let t = format!("{}{{{{ s }}}}", "{% assign s = s | append: s %}".repeat(20));
        let mut tape = Tape::new();
        let root = Value::Node(tape.parse(r#"{"s":"0123456789"}"#).unwrap());
        let e = Liquid::compile(&t)
            .unwrap()
            .render_within(&root, std::time::Duration::ZERO)
            .unwrap_err();
        assert!(
            matches!(e, LiquidError::Render(RenderError::TimeLimit)),
            "{e}"
        );
        assert!(
            e.to_string().contains("template render limit exceeded"),
            "{e}"
        );
    }

    /// Malformed templates with multi-byte characters anywhere are errors, never panics
    /// (byte offsets inside a character).
    #[test]
    fn multibyte_text_never_panics() {
        assert!(Liquid::compile("{% capture é").is_err());
        assert!(Liquid::compile("{% capture é %}").is_err());
        let pieces = [
            "{%",
            "%}",
            "{{",
            "}}",
            "é",
            "日本",
            "😀",
            "'",
            "\"",
            "|",
            ":",
            ",",
            " ",
            "-",
            "capture",
            "if",
            "endif",
            "assign",
            "=",
            "x",
            "(",
            ")",
            "..",
            "[",
            "]",
            ".",
            "raw",
            "endraw",
            "append",
            "1",
            "liquid",
            "\n",
            "comment",
            "endcapture",
        ];
        let mut rng = fastrand::Rng::with_seed(19);
        for _ in 0..20_000 {
            let n = rng.usize(1..12);
            let t: String = (0..n).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            if let Ok(l) = Liquid::compile(&t) {
                let _ = l.render(&Value::Undefined);
            }
        }
    }

    #[test]
    fn errors_keep_their_cause() {
        use std::error::Error;
        let e = Liquid::compile("{{ a | sort }}").unwrap_err();
        assert!(matches!(e, LiquidError::Disabled(_)));
        assert_eq!(e.to_string(), "filter \"sort\" is disabled");
        let e = Liquid::compile("{{ a b }}").unwrap_err();
        assert!(matches!(
            e,
            LiquidError::Invalid(ParseError::Unexpected { .. })
        ));
        assert_eq!(
            e.source().unwrap().to_string(),
            "unexpected \"b\" in \"a b\""
        );
        assert_eq!(
            e.to_string(),
            "invalid Liquid template: unexpected \"b\" in \"a b\""
        );
        let e = render("{{ '%ff' | url_decode }}", "{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Liquid rendering failed: url_decode: URI malformed"
        );
        // The render error, then the UTF-8 error (the filter error is transparent).
        assert!(e.source().and_then(Error::source).is_some());
    }
}
