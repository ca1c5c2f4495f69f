//! Writing the few YAML shapes an imported mapping file has. Values are written as JSON
//! (YAML 1.2 reads JSON as flow style), strings single-quoted when that needs no escapes, so
//! every value reads back exactly as it was and the file can carry comments.

use serde_json::Value;

/// A string scalar: `'...'` when it has no `'` and no control characters, else JSON's
/// double-quoted form.
pub fn string(s: &str) -> String {
    if is_plain(s) {
        s.to_string()
    } else if !s.contains('\'') && !s.chars().any(char::is_control) {
        format!("'{s}'")
    } else {
        Value::from(s).to_string()
    }
}

/// Whether `s` reads back as this string when written bare: a word starting with a letter
/// (so never a number or a date), of letters, digits and `_-./:`, and not a YAML keyword.
fn is_plain(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c))
        && !s.ends_with(':')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
        )
}

/// A key: bare when it is a plain word, else quoted.
pub fn key(s: &str) -> String {
    string(s)
}

/// Any value, on one line: strings as [`string`], the rest as JSON.
pub fn value(v: &Value) -> String {
    match v {
        Value::String(s) => string(s),
        other => other.to_string(),
    }
}

/// A `# ...` comment line at `indent`, each line of `text` its own comment line.
pub fn comment(out: &mut String, indent: usize, text: &str) {
    for line in text.lines() {
        out.push_str(&" ".repeat(indent));
        out.push_str("# ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_written() {
        for s in [
            "plain",
            "it's",
            "a\tb",
            "type = \"track\"",
            "",
            "{{type}}/",
            "@x",
            "arn:aws:iam::123456789012:role/x",
            "true",
            "Null",
            "x:",
            "1e3",
            "2026-01-01",
            ".inf",
        ] {
            let text = format!("k: {}\n", string(s));
            let node = crate::spanned::parse_yaml(&text).unwrap();
            assert_eq!(node.get("k").unwrap().as_str(), Some(s), "{text}");
        }
        for k in ["a_b", "true", "1", "with space", "-x", "é"] {
            let text = format!("{}: 1\n", key(k));
            let node = crate::spanned::parse_yaml(&text).unwrap();
            assert!(node.get(k).is_some(), "{text}");
        }
    }
}
