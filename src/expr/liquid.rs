//! `@liquid`: Liquid templates with the tags and filters Segment disables left out.
//!
//! Segment renders with liquidjs, which prints missing variables as nothing. The Rust
//! `liquid` crate errors on them instead, so the event is handed to it through a lenient
//! view in which a missing key (at any depth) is `nil`.

use std::fmt;
use std::sync::OnceLock;

use liquid::model::{
    ArrayView, DisplayCow, KString, KStringCow, ObjectView, ScalarCow, State, Value as LValue,
    ValueView,
};

use super::value::{Value, js_length};

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

fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        use liquid_lib::stdlib;
        liquid::ParserBuilder::new()
            .tag(stdlib::AssignTag)
            .tag(stdlib::BreakTag)
            .tag(stdlib::ContinueTag)
            .tag(stdlib::CycleTag)
            .tag(stdlib::IncrementTag)
            .tag(stdlib::DecrementTag)
            .block(stdlib::RawBlock)
            .block(stdlib::IfBlock)
            .block(stdlib::UnlessBlock)
            .block(stdlib::IfChangedBlock)
            .block(stdlib::CommentBlock)
            .block(stdlib::CaptureBlock)
            .filter(stdlib::Abs)
            .filter(stdlib::Append)
            .filter(stdlib::AtLeast)
            .filter(stdlib::AtMost)
            .filter(stdlib::Capitalize)
            .filter(stdlib::Ceil)
            .filter(stdlib::Compact)
            .filter(stdlib::Date)
            .filter(stdlib::Default)
            .filter(stdlib::DividedBy)
            .filter(stdlib::Downcase)
            .filter(stdlib::Escape)
            .filter(stdlib::EscapeOnce)
            .filter(stdlib::First)
            .filter(stdlib::Floor)
            .filter(stdlib::Join)
            .filter(stdlib::Last)
            .filter(stdlib::Lstrip)
            .filter(stdlib::Minus)
            .filter(stdlib::Modulo)
            .filter(stdlib::Plus)
            .filter(stdlib::Prepend)
            .filter(stdlib::Remove)
            .filter(stdlib::RemoveFirst)
            .filter(stdlib::Replace)
            .filter(stdlib::ReplaceFirst)
            .filter(stdlib::Round)
            .filter(stdlib::Rstrip)
            .filter(stdlib::Size)
            .filter(stdlib::Slice)
            .filter(stdlib::Split)
            .filter(stdlib::Strip)
            .filter(stdlib::StripHtml)
            .filter(stdlib::StripNewlines)
            .filter(stdlib::Times)
            .filter(stdlib::Truncate)
            .filter(stdlib::TruncateWords)
            .filter(stdlib::Upcase)
            .filter(stdlib::UrlDecode)
            .filter(stdlib::UrlEncode)
            .filter(stdlib::Where)
            .build()
            .expect("the built-in Liquid parser configuration is valid")
    })
}

/// A compiled `@liquid` template.
pub struct Liquid {
    template: liquid::Template,
    empty: bool,
}

impl fmt::Debug for Liquid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Liquid(..)")
    }
}

impl Liquid {
    pub fn compile(text: &str) -> Result<Liquid, String> {
        if js_length(text) > MAX_LIQUID_LENGTH {
            return Err(format!(
                "Liquid templates are limited to {MAX_LIQUID_LENGTH} characters (this one has {})",
                js_length(text)
            ));
        }
        if let Some(tag) = disabled_tag(text) {
            return Err(format!("tag \"{tag}\" is disabled"));
        }
        if let Some(filter) = disabled_filter(text) {
            return Err(format!("filter \"{filter}\" is disabled"));
        }
        let template = parser()
            .parse(text)
            .map_err(|e| format!("invalid Liquid template: {}", first_line(&e.to_string())))?;
        Ok(Liquid {
            template,
            empty: text.is_empty(),
        })
    }

    pub fn render(&self, data: &Value<'_>) -> Result<String, String> {
        if self.empty {
            return Ok(String::new());
        }
        let root = Lenient::from_value(data);
        let globals = match &root {
            Lenient::Object(_) => root,
            _ => Lenient::Object(Vec::new()),
        };
        let Lenient::Object(_) = &globals else {
            unreachable!("globals are an object")
        };
        self.template
            .render(&LenientObject(&globals))
            .map_err(|e| format!("Liquid rendering failed: {}", first_line(&e.to_string())))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Names a disabled tag used in `{% ... %}`, for Segment's error message.
fn disabled_tag(text: &str) -> Option<&'static str> {
    let mut rest = text;
    while let Some(at) = rest.find("{%") {
        let body = rest[at + 2..].trim_start_matches('-').trim_start();
        let word: String = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(t) = DISABLED_TAGS.iter().find(|t| **t == word) {
            return Some(t);
        }
        rest = &rest[at + 2..];
    }
    None
}

/// Names a disabled filter used after a `|`, for Segment's error message.
fn disabled_filter(text: &str) -> Option<&'static str> {
    let mut rest = text;
    while let Some(at) = rest.find('|') {
        let body = rest[at + 1..].trim_start();
        let word: String = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(f) = DISABLED_FILTERS.iter().find(|f| **f == word) {
            return Some(f);
        }
        rest = &rest[at + 1..];
    }
    None
}

/// The event as Liquid sees it, with missing keys reading as `nil`.
#[derive(Debug)]
enum Lenient {
    Scalar(LValue),
    Array(Vec<Lenient>),
    Object(Vec<(KString, Lenient)>),
}

static NIL: Lenient = Lenient::Scalar(LValue::Nil);

impl Lenient {
    fn from_value(v: &Value<'_>) -> Lenient {
        Self::from_json(&v.to_serde())
    }

    fn from_json(v: &serde_json::Value) -> Lenient {
        use serde_json::Value as J;
        match v {
            J::Array(a) => Lenient::Array(a.iter().map(Self::from_json).collect()),
            J::Object(m) => Lenient::Object(
                m.iter()
                    .map(|(k, v)| (KString::from_ref(k), Self::from_json(v)))
                    .collect(),
            ),
            other => Lenient::Scalar(liquid::model::to_value(other).unwrap_or(LValue::Nil)),
        }
    }

    fn to_liquid(&self) -> LValue {
        match self {
            Lenient::Scalar(v) => v.clone(),
            Lenient::Array(a) => LValue::Array(a.iter().map(Lenient::to_liquid).collect()),
            Lenient::Object(m) => {
                LValue::Object(m.iter().map(|(k, v)| (k.clone(), v.to_liquid())).collect())
            }
        }
    }
}

struct LenientObject<'a>(&'a Lenient);

impl fmt::Debug for LenientObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ValueView for Lenient {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Scalar(v) => v.render(),
            _ => DisplayCow::Owned(Box::new(self.to_liquid().render().to_string())),
        }
    }
    fn source(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Scalar(v) => v.source(),
            _ => DisplayCow::Owned(Box::new(self.to_liquid().source().to_string())),
        }
    }
    fn type_name(&self) -> &'static str {
        match self {
            Lenient::Scalar(v) => v.type_name(),
            Lenient::Array(_) => "array",
            Lenient::Object(_) => "object",
        }
    }
    fn query_state(&self, state: State) -> bool {
        match self {
            Lenient::Scalar(v) => v.query_state(state),
            Lenient::Array(a) => match state {
                State::Truthy => true,
                State::DefaultValue | State::Empty | State::Blank => a.is_empty(),
            },
            Lenient::Object(m) => match state {
                State::Truthy => true,
                State::DefaultValue | State::Empty | State::Blank => m.is_empty(),
            },
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Lenient::Scalar(v) => v.to_kstr(),
            _ => KStringCow::from_string(self.render().to_string()),
        }
    }
    fn to_value(&self) -> LValue {
        self.to_liquid()
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Lenient::Scalar(v) => v.as_scalar(),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lenient::Array(_) => Some(self),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Lenient::Object(_) => Some(self),
            // Reading a key of nil is nil again, as in liquidjs.
            Lenient::Scalar(LValue::Nil) => Some(self),
            _ => None,
        }
    }
    fn as_state(&self) -> Option<State> {
        None
    }
    fn is_nil(&self) -> bool {
        matches!(self, Lenient::Scalar(LValue::Nil))
    }
}

impl ArrayView for Lenient {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        match self {
            Lenient::Array(a) => a.len() as i64,
            _ => 0,
        }
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Lenient::Array(a) => Box::new(a.iter().map(|v| v as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn contains_key(&self, index: i64) -> bool {
        ArrayView::get(self, index).is_some()
    }
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let Lenient::Array(a) = self else { return None };
        let i = if index < 0 {
            a.len() as i64 + index
        } else {
            index
        };
        Some(
            usize::try_from(i)
                .ok()
                .and_then(|i| <[Lenient]>::get(a, i))
                .map_or(&NIL as &dyn ValueView, |v| v as &dyn ValueView),
        )
    }
}

impl ObjectView for Lenient {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        match self {
            Lenient::Object(m) => m.len() as i64,
            _ => 0,
        }
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        match self {
            Lenient::Object(m) => Box::new(m.iter().map(|(k, _)| KStringCow::from_ref(k.as_str()))),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Lenient::Object(m) => Box::new(m.iter().map(|(_, v)| v as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        match self {
            Lenient::Object(m) => Box::new(
                m.iter()
                    .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v as &dyn ValueView)),
            ),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        let found = match self {
            Lenient::Object(m) => m
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == index)
                .map(|(_, v)| v),
            _ => None,
        };
        Some(found.map_or(&NIL as &dyn ValueView, |v| v as &dyn ValueView))
    }
}

impl ValueView for LenientObject<'_> {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> LValue {
        self.0.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for LenientObject<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        ObjectView::size(self.0)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        self.0.keys()
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(self.0)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        self.0.iter()
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        ObjectView::get(self.0, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn render(t: &str, event: &str) -> Result<String, String> {
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

    #[test]
    fn disabled_features_are_errors() {
        assert!(Liquid::compile("{{ properties.test | sort }}").is_err());
        assert!(Liquid::compile("{% include %} , {{ properties.test }}").is_err());
        assert!(Liquid::compile("{% for x in y %}{% endfor %}").is_err());
        assert!(Liquid::compile(&"x".repeat(1001)).is_err());
        assert!(Liquid::compile(&"x".repeat(1000)).is_ok());
        assert!(Liquid::compile("{{ unclosed").is_err());
    }
}
