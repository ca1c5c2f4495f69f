//! `JSON.stringify` output for parsed nodes.

use super::number::write_number_text;
use super::tape::{Kind, NodeRef};

/// Something that can append its `JSON.stringify` text to a buffer.
pub trait JsonWriter {
    fn write_json(&self, out: &mut Vec<u8>);

    fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON output is UTF-8")
    }
}

impl JsonWriter for NodeRef<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_node_json(out, *self);
    }
}

/// Appends the node as `JSON.stringify(JSON.parse(raw))` would print it.
pub fn write_node_json(out: &mut Vec<u8>, n: NodeRef<'_>) {
    if n.is_canonical() {
        out.extend_from_slice(n.raw().as_bytes());
        return;
    }
    match n.kind() {
        Kind::Null => out.extend_from_slice(b"null"),
        Kind::Bool => out.extend_from_slice(if n.as_bool() == Some(true) {
            b"true"
        } else {
            b"false"
        }),
        Kind::Number => write_number_text(out, n.raw(), true),
        Kind::String => {
            let s = n.as_str().unwrap_or_default();
            write_json_string(out, &s);
        }
        Kind::Array => {
            out.push(b'[');
            for (i, e) in n.elements().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_node_json(out, e);
            }
            out.push(b']');
        }
        Kind::Object => {
            out.push(b'{');
            if n.has_duplicate_keys() {
                // JavaScript keeps a repeated key at its first position with its last value.
                let members: Vec<_> = n.members().collect();
                let mut first = true;
                for (i, (k, _)) in members.iter().enumerate() {
                    if members[..i].iter().any(|(pk, _)| pk == k) {
                        continue;
                    }
                    let last = members.iter().rev().find(|(lk, _)| lk == k).map(|m| m.1);
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_json_string(out, k);
                    out.push(b':');
                    if let Some(v) = last {
                        write_node_json(out, v);
                    }
                }
            } else {
                for (i, (k, v)) in n.members().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, &k);
                    out.push(b':');
                    write_node_json(out, v);
                }
            }
            out.push(b'}');
        }
    }
}

/// Appends `s` as a JSON string literal, escaped exactly as `JSON.stringify` escapes it.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[run..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                run = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn roundtrip(s: &str) -> String {
        let mut t = Tape::new();
        let n = t.parse(s).unwrap();
        n.to_json_string()
    }

    #[test]
    fn reserialises_like_json_stringify() {
        assert_eq!(
            roundtrip(r#"{ "a" : 631.0, "b": [1.50, 1e2, -0] }"#),
            r#"{"a":631,"b":[1.5,100,0]}"#
        );
        assert_eq!(roundtrip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        assert_eq!(
            roundtrip(r#""\u00e9\/\u001F\u0007""#),
            "\"\u{e9}/\\u001f\\u0007\""
        );
        assert_eq!(
            roundtrip(r#"{"nested":{"x":[ {"y": 2.50} ]}}"#),
            r#"{"nested":{"x":[{"y":2.5}]}}"#
        );
        let canonical = r#"{"k":"v \"q\" \n","n":[0.5,-3,true,null],"u":"é🚀"}"#;
        assert_eq!(roundtrip(canonical), canonical);
    }
}
