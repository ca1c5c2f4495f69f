//! Paths into an event: Segment's dot notation, plus full JSONPath.
//!
//! Segment resolves `$.a.b[0]` by dropping the first `$.`, splitting on dots and on brackets
//! around a number or a quoted name, then walking with JavaScript's `obj && obj[key]`: the
//! walk stops at the first falsy value and returns it. That covers nearly every real path and
//! is compiled here into a list of keys walked directly over the parsed event, without
//! allocating. Paths that use JSONPath features Segment lacks (wildcards, filters, slices,
//! unions, recursive descent) go to `jsonpath-rust` and yield the array of matches.

use std::borrow::Cow;
use std::fmt;

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::JpQuery;

use super::Value;

/// One step of a dot path: the property key, and its value as an array index when the key
/// is a canonical index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seg {
    pub key: Box<str>,
    pub index: Option<usize>,
}

impl Seg {
    pub fn new(key: &str) -> Seg {
        Seg {
            key: key.into(),
            index: canonical_index(key),
        }
    }
}

/// `"0"`, `"17"`: the keys JavaScript treats as array indexes.
fn canonical_index(key: &str) -> Option<usize> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&n| n < u32::MAX as u64)
        .map(|n| n as usize)
}

/// Why a path does not compile.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("invalid JSONPath {path:?}: {source}")]
    InvalidJsonPath {
        path: String,
        #[source]
        source: JsonPathError,
    },
}

#[derive(Clone)]
pub enum Path {
    /// `""`, `"."`, `"$."`: the whole value.
    Root,
    Keys(Vec<Seg>),
    JsonPath(Box<JpQuery>),
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => write!(f, "Root"),
            Path::Keys(k) => f.debug_tuple("Keys").field(k).finish(),
            Path::JsonPath(q) => write!(f, "JsonPath({q})"),
        }
    }
}

/// Whether the text uses JSONPath syntax that Segment's dot notation does not have.
fn is_extended_jsonpath(path: &str) -> bool {
    if !path.starts_with('$') {
        return false;
    }
    if path.starts_with("$[") || path.contains("..") || path.contains('*') || path.contains("[?") {
        return true;
    }
    // Slices and unions: a bracket holding ':' or ','.
    let b = path.as_bytes();
    let mut i = 0;
    while let Some(open) = b[i..].iter().position(|&c| c == b'[') {
        let start = i + open + 1;
        match b[start..].iter().position(|&c| c == b']') {
            Some(close) => {
                let inner = &b[start..start + close];
                let quoted = matches!(inner.first(), Some(b'\'') | Some(b'"'));
                if !quoted && inner.iter().any(|&c| c == b':' || c == b',') {
                    return true;
                }
                i = start + close + 1;
            }
            None => break,
        }
    }
    false
}

impl Path {
    /// Compiles a path as `@path` receives it.
    pub fn parse(path: &str) -> Result<Path, PathError> {
        if is_extended_jsonpath(path) {
            return jsonpath_rust::parser::parse_json_path(path)
                .map(|q| Path::JsonPath(Box::new(q)))
                .map_err(|source| PathError::InvalidJsonPath {
                    path: path.to_string(),
                    source,
                });
        }
        // Segment: path.replace('$.', '') removes the first occurrence, wherever it is.
        let stripped: Cow<'_, str> = match path.find("$.") {
            Some(at) => Cow::Owned(format!("{}{}", &path[..at], &path[at + 2..])),
            None => Cow::Borrowed(path),
        };
        Ok(Path::keys(&stripped))
    }

    /// Compiles a path without the `$.` handling (Segment's `get()` on its own).
    pub fn keys(path: &str) -> Path {
        if path.is_empty() || path == "." {
            return Path::Root;
        }
        Path::Keys(split(path).into_iter().map(|k| Seg::new(&k)).collect())
    }

    /// The plain key list, when the path is a dot path.
    pub fn segments(&self) -> Option<&[Seg]> {
        match self {
            Path::Keys(k) => Some(k),
            Path::Root => Some(&[]),
            Path::JsonPath(_) => None,
        }
    }

    /// Resolves the path against `root`; `Value::Undefined` when there is nothing.
    pub fn lookup<'a>(&self, root: &Value<'a>) -> Value<'a> {
        match self {
            Path::Root => root.clone(),
            Path::Keys(segs) => walk(root, segs),
            Path::JsonPath(q) => {
                let json = root.to_serde();
                match jsonpath_rust::query::js_path_process(q, &json) {
                    Ok(found) if !found.is_empty() => Value::Array(
                        found
                            .into_iter()
                            .map(|r| Value::from_serde(r.val()))
                            .collect(),
                    ),
                    _ => Value::Undefined,
                }
            }
        }
    }
}

/// `segs.reduce((obj, key) => obj && obj[key], root)`.
pub fn walk<'a>(root: &Value<'a>, segs: &[Seg]) -> Value<'a> {
    let mut cur = root.clone();
    for seg in segs {
        if !cur.is_truthy() {
            return cur;
        }
        cur = cur.member(&seg.key, seg.index);
    }
    cur
}

/// Splits on `.` and on brackets around a number or a quoted name; any other bracket is part
/// of the key. Empty pieces are dropped.
fn split(path: &str) -> Vec<String> {
    let b = path.as_bytes();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while i < b.len() {
        match b[i] {
            b'.' => {
                flush(&mut cur, &mut out);
                i += 1;
            }
            b'[' => {
                if let Some((piece, next)) = bracket(path, i) {
                    flush(&mut cur, &mut out);
                    out.push(piece);
                    i = next;
                } else {
                    cur.push('[');
                    i += 1;
                }
            }
            _ => {
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                cur.push_str(&path[start..i]);
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// At `path[i] == '['`: `[123]` or `['name']` / `["name"]`; returns the key and the index
/// just past `]`.
fn bracket(path: &str, i: usize) -> Option<(String, usize)> {
    let b = path.as_bytes();
    let rest = &b[i + 1..];
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && rest.get(digits) == Some(&b']') {
        return Some((path[i + 1..i + 1 + digits].to_string(), i + digits + 2));
    }
    let q = *rest.first()?;
    if q != b'\'' && q != b'"' {
        return None;
    }
    let body = &path[i + 2..];
    let close = body
        .as_bytes()
        .windows(2)
        .position(|w| w[0] == q && w[1] == b']')?;
    Some((body[..close].to_string(), i + 2 + close + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn keys(p: &str) -> Vec<String> {
        match Path::parse(p).unwrap() {
            Path::Keys(k) => k.iter().map(|s| s.key.to_string()).collect(),
            Path::Root => vec![],
            Path::JsonPath(_) => vec!["<jsonpath>".into()],
        }
    }

    #[test]
    fn splitting() {
        assert_eq!(keys("$.a.b[0].c"), ["a", "b", "0", "c"]);
        assert_eq!(keys("a['b c']"), ["a", "b c"]);
        assert_eq!(keys("a[\"x.y\"]"), ["a", "x.y"]);
        assert_eq!(keys("a[b]"), ["a[b]"]);
        assert_eq!(keys("$."), Vec::<String>::new());
        assert_eq!(keys("."), Vec::<String>::new());
        assert_eq!(keys("x.$.y"), ["x", "y"]);
        assert_eq!(keys("a..b"), ["a", "b"]);
        assert_eq!(keys("$.a.*"), ["<jsonpath>"]);
        assert_eq!(keys("$..a"), ["<jsonpath>"]);
        assert_eq!(keys("$.a[0:2]"), ["<jsonpath>"]);
        assert_eq!(keys("$.a[?(@.b > 1)]"), ["<jsonpath>"]);
    }

    #[test]
    fn falsy_values_stop_the_walk() {
        let mut t = Tape::new();
        let root = Value::Node(
            t.parse(r#"{"a":0,"n":null,"s":"","o":{"k":[10,20]}}"#)
                .unwrap(),
        );
        let get = |p: &str| Path::parse(p).unwrap().lookup(&root).to_json_string();
        assert_eq!(get("$.a.b").as_deref(), Some("0"));
        assert_eq!(get("$.n.b").as_deref(), Some("null"));
        assert_eq!(get("$.s.length").as_deref(), Some("\"\""));
        assert_eq!(get("$.o.k[1]").as_deref(), Some("20"));
        assert_eq!(get("$.o.k.length").as_deref(), Some("2"));
        assert_eq!(get("$.o.k[2]"), None);
        assert_eq!(get("$.missing.x"), None);
    }

    #[test]
    fn jsonpath_matches() {
        let mut t = Tape::new();
        let root = Value::Node(
            t.parse(r#"{"p":[{"sku":"a","n":1},{"sku":"b","n":3}]}"#)
                .unwrap(),
        );
        let get = |p: &str| Path::parse(p).unwrap().lookup(&root).to_json_string();
        assert_eq!(get("$.p[*].sku").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(get("$..n").as_deref(), Some("[1,3]"));
        assert_eq!(get("$.p[?(@.n > 2)].sku").as_deref(), Some(r#"["b"]"#));
        assert_eq!(get("$.p[*].zzz"), None);
        assert!(Path::parse("$.p[?(@.n >").is_err());
    }
}
