//! A JSON-like tree that remembers where each value was written.
//!
//! Mapping files are YAML, expressions given to `eval` may be JSON or YAML; both load into
//! [`SNode`] so that every validation error can name the line and column it is about.

use std::fmt;

/// A 1-based line and column; `line == 0` means "unknown" (e.g. built-in defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Mark {
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<SNode>),
    /// Members in written order: (key, where the key is written, value).
    Object(Vec<(String, Mark, SNode)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SNode {
    pub value: SValue,
    pub mark: Mark,
}

/// A document that could not be read as YAML or JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{mark}: {message}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

impl SNode {
    pub fn new(value: SValue, mark: Mark) -> Self {
        SNode { value, mark }
    }

    pub fn get(&self, key: &str) -> Option<&SNode> {
        match &self.value {
            SValue::Object(members) => members.iter().find(|(k, _, _)| k == key).map(|m| &m.2),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            SValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// JavaScript's name for the value's type, as Segment's messages use it.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            SValue::Null => "null",
            SValue::Bool(_) => "boolean",
            SValue::Number(_) => "number",
            SValue::String(_) => "string",
            SValue::Array(_) => "array",
            SValue::Object(_) => "object",
        }
    }

    /// JavaScript truthiness of the value as written.
    pub fn is_truthy(&self) -> bool {
        match &self.value {
            SValue::Null => false,
            SValue::Bool(b) => *b,
            SValue::Number(n) => *n != 0.0 && !n.is_nan(),
            SValue::String(s) => !s.is_empty(),
            SValue::Array(_) | SValue::Object(_) => true,
        }
    }

    /// Plain JSON, for handing to libraries that take `serde_json::Value`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            SValue::Null => J::Null,
            SValue::Bool(b) => J::Bool(*b),
            SValue::Number(n) => number_to_json(*n),
            SValue::String(s) => J::String(s.clone()),
            SValue::Array(a) => J::Array(a.iter().map(SNode::to_json).collect()),
            SValue::Object(m) => {
                J::Object(m.iter().map(|(k, _, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Builds a tree from plain JSON (no positions known).
    pub fn from_json(v: &serde_json::Value) -> SNode {
        use serde_json::Value as J;
        let value = match v {
            J::Null => SValue::Null,
            J::Bool(b) => SValue::Bool(*b),
            J::Number(n) => SValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => SValue::String(s.clone()),
            J::Array(a) => SValue::Array(a.iter().map(SNode::from_json).collect()),
            J::Object(m) => SValue::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Mark::default(), SNode::from_json(v)))
                    .collect(),
            ),
        };
        SNode::new(value, Mark::default())
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n == n.trunc() && n.abs() < 9_007_199_254_740_992.0 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Reads JSON when the text is JSON (positions then come from a second, YAML, read so that
/// errors can still point at lines), else YAML.
pub fn parse_json_or_yaml(src: &str) -> Result<SNode, SyntaxError> {
    // YAML 1.2 is a superset of JSON, so the YAML reader gives positions for both; JSON with
    // tabs or other layouts YAML rejects is still accepted through serde_json.
    match parse_yaml(src) {
        Ok(n) => Ok(n),
        Err(yaml_err) => match serde_json::from_str::<serde_json::Value>(src) {
            Ok(v) => Ok(SNode::from_json(&v)),
            Err(_) => Err(yaml_err),
        },
    }
}

/// Reads the first YAML document of `src` (an empty document is `null`).
pub fn parse_yaml(src: &str) -> Result<SNode, SyntaxError> {
    use yaml_rust2::Event;
    use yaml_rust2::parser::MarkedEventReceiver;
    use yaml_rust2::parser::Parser;
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    // Events are pulled one at a time rather than through `Parser::load`, which recurses
    // once per nesting level (a stack overflow on deep input) before any limit could act.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            mark: Mark {
                line: e.marker().line() as u32,
                col: e.marker().col() as u32 + 1,
            },
            message: e.info().to_string(),
        })?;
        let end = matches!(ev, Event::DocumentEnd | Event::StreamEnd);
        builder.on_event(ev, mark);
        if end || builder.error.is_some() {
            break;
        }
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder
        .root
        .unwrap_or(SNode::new(SValue::Null, Mark { line: 1, col: 1 })))
}

/// How deeply collections may nest in a YAML or JSON document (aliases included): everything
/// that reads an [`SNode`] (compiling, evaluating, dropping) recurses once per level, so the
/// limit is checked while the document is read. serde_json, the JSON fallback, stops at 128.
pub const MAX_NESTING: usize = 128;

/// How many values a document may hold once its aliases are expanded: a few hundred bytes of
/// nested aliases (the "billion laughs" shape) would otherwise expand to billions of values.
pub const MAX_EXPANDED_VALUES: usize = 1_000_000;

enum Frame {
    Seq(Vec<SNode>, Mark, usize),
    Map(
        Vec<(String, Mark, SNode)>,
        Mark,
        usize,
        Option<(String, Mark)>,
    ),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Per open frame: `values` when it started, the height of its tallest child.
    sizes: Vec<(usize, usize)>,
    root: Option<SNode>,
    /// Anchored nodes with how many values they hold and how tall they are.
    anchors: std::collections::HashMap<usize, (SNode, usize, usize)>,
    /// Values read so far, aliases counted at their expanded size.
    values: usize,
    error: Option<SyntaxError>,
}

impl Builder {
    /// Counts `size` more values of height `height` at the current depth; false (with the
    /// error recorded) past a limit.
    fn count(&mut self, mark: Mark, size: usize, height: usize) -> bool {
        if self.stack.len() + height > MAX_NESTING {
            self.fail(
                mark,
                format!("values are nested more than {MAX_NESTING} levels deep"),
            );
            return false;
        }
        self.values = self.values.saturating_add(size);
        if self.values > MAX_EXPANDED_VALUES {
            self.fail(
                mark,
                format!(
                    "the document holds more than {MAX_EXPANDED_VALUES} values once its aliases are expanded"
                ),
            );
            return false;
        }
        if let Some(top) = self.sizes.last_mut() {
            top.1 = top.1.max(height);
        }
        true
    }

    fn fail(&mut self, mark: Mark, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { mark, message });
        }
    }

    fn finish(&mut self, node: SNode, anchor: usize, size: usize, height: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size, height));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(members, _, _, pending)) => match pending.take() {
                None => {
                    // This node is a key. Keys are strings in JSON; YAML scalars are turned
                    // into their text, anything else is rejected.
                    let key = match &node.value {
                        SValue::String(s) => s.clone(),
                        SValue::Number(n) => crate::json::js_number_to_string(*n),
                        SValue::Bool(b) => b.to_string(),
                        SValue::Null => "null".to_string(),
                        _ => {
                            let mark = node.mark;
                            self.fail(mark, "mapping keys must be plain values".into());
                            return;
                        }
                    };
                    if members.iter().any(|(k, _, _)| *k == key) {
                        let mark = node.mark;
                        self.fail(mark, format!("duplicate key {key:?}"));
                        return;
                    }
                    *pending = Some((key, node.mark));
                }
                Some((key, kmark)) => members.push((key, kmark, node)),
            },
        }
    }
}

fn scalar(text: String, style: yaml_rust2::scanner::TScalarStyle, tagged: bool) -> SValue {
    use yaml_rust2::Yaml;
    use yaml_rust2::scanner::TScalarStyle;
    if style != TScalarStyle::Plain || tagged {
        return SValue::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Null => SValue::Null,
        Yaml::Boolean(b) => SValue::Bool(b),
        Yaml::Integer(i) => SValue::Number(i as f64),
        Yaml::Real(r) => match r.parse::<f64>() {
            Ok(f) => SValue::Number(f),
            Err(_) => match r.as_str() {
                ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                    SValue::Number(f64::INFINITY)
                }
                "-.inf" | "-.Inf" | "-.INF" => SValue::Number(f64::NEG_INFINITY),
                ".nan" | ".NaN" | ".NAN" => SValue::Number(f64::NAN),
                _ => SValue::String(text),
            },
        },
        _ => SValue::String(text),
    }
}

impl Builder {
    /// Pops the frame's counts: the values it holds (itself included) and its height.
    fn close(&mut self) -> (usize, usize) {
        let (start, tallest) = self.sizes.pop().unwrap_or((self.values, 0));
        if let Some(parent) = self.sizes.last_mut() {
            parent.1 = parent.1.max(tallest + 1);
        }
        // `start` was taken after the frame itself was counted.
        (self.values - start + 1, tallest + 1)
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: yaml_rust2::Event, m: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        let mark = Mark {
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        };
        // After the first error nothing more is built (the reader still checks the rest).
        if self.error.is_some() {
            return;
        }
        let counted = match &ev {
            Event::Scalar(..) => self.count(mark, 1, 0),
            Event::SequenceStart(..) | Event::MappingStart(..) => self.count(mark, 1, 1),
            _ => true,
        };
        if !counted {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.is_some());
                self.finish(SNode::new(value, mark), anchor, 1, 0);
            }
            Event::SequenceStart(anchor, _) => {
                self.sizes.push((self.values, 0));
                self.stack.push(Frame::Seq(Vec::new(), mark, anchor));
            }
            Event::MappingStart(anchor, _) => {
                self.sizes.push((self.values, 0));
                self.stack.push(Frame::Map(Vec::new(), mark, anchor, None));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, start, anchor)) = self.stack.pop() {
                    let (size, height) = self.close();
                    self.finish(
                        SNode::new(SValue::Array(items), start),
                        anchor,
                        size,
                        height,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(members, start, anchor, _)) = self.stack.pop() {
                    let (size, height) = self.close();
                    let node = SNode::new(SValue::Object(members), start);
                    self.finish(node, anchor, size, height);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(&(_, size, height)) => {
                    // Counted before the copy is made, so a bomb stops before it expands.
                    if self.count(mark, size, height) {
                        let mut node = self.anchors[&id].0.clone();
                        node.mark = mark;
                        self.finish(node, 0, size, height);
                    }
                }
                None => self.fail(mark, "unknown alias".into()),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_positions() {
        let n = parse_yaml("a: 1\nb:\n  - x\n  - 'true'\n  - true\nc: {d: null}\n").unwrap();
        let b = n.get("b").unwrap();
        assert_eq!(b.mark.line, 3);
        match &b.value {
            SValue::Array(items) => {
                assert_eq!(items[1].value, SValue::String("true".into()));
                assert_eq!(items[2].value, SValue::Bool(true));
                assert_eq!(items[0].mark, Mark { line: 3, col: 5 });
            }
            _ => panic!(),
        }
        assert_eq!(n.get("a").unwrap().value, SValue::Number(1.0));
        assert_eq!(n.get("c").unwrap().get("d").unwrap().value, SValue::Null);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.mark.line, 2);
        assert!(e.message.contains("duplicate"));
    }

    #[test]
    fn json_documents() {
        let n = parse_json_or_yaml("{\"@path\": \"$.a\",\t\"x\": [1, 2.5]}").unwrap();
        assert_eq!(n.get("@path").unwrap().as_str(), Some("$.a"));
        assert_eq!(
            n.to_json(),
            serde_json::json!({"@path": "$.a", "x": [1, 2.5]})
        );
    }

    /// The "billion laughs" shape: nine aliases of the level below, nine levels deep.
    #[test]
    fn alias_bombs_stop_at_the_expansion_limit() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let e = parse_yaml(&doc).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(e.message.contains("aliases are expanded"), "{e}");
        assert!(e.mark.line > 1, "{e}");
    }

    #[test]
    fn nesting_is_limited_before_anything_recurses() {
        for deep in [
            "[".repeat(100_000),
            "- ".repeat(100_000) + "x",
            "{a: ".repeat(50_000),
        ] {
            // The reader's own flow-level limit may come first: an error either way.
            let e = parse_yaml(&deep).unwrap_err();
            assert!(
                e.message.contains("nested more than 128")
                    || e.message.contains("recursion limit exceeded"),
                "{e}"
            );
        }
        let ok = format!("{}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(parse_yaml(&ok).is_ok());
        let over = format!(
            "{}1{}",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        assert!(parse_yaml(&over).is_err());
        // Through aliases: each level adds one around the one before.
        let mut doc = String::from("l0: &l0 [1]\n");
        for i in 1..200 {
            doc.push_str(&format!("l{i}: &l{i} [*l{}]\n", i - 1));
        }
        let e = parse_yaml(&doc).unwrap_err();
        assert!(e.message.contains("nested more than 128"), "{e}");
    }

    #[test]
    fn anchors_and_aliases() {
        let n = parse_yaml("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(
            n.get("b").unwrap().get("k").unwrap().value,
            SValue::Number(1.0)
        );
    }
}
