//! NDJSON files: one JSON object per row (keys in column order, values keeping their JSON
//! types), or, with `raw: true`, each event as it was received (Segment classic's logs).
//!
//! Every row ends with `\n` (the file too, as NDJSON readers expect), instead of starting
//! with it as CSV rows do: there is no header line to follow.

use super::{ColumnTransform, Encoder, Format, RowError, TailFix, audience_action, eval_planned};
use crate::expr::{Type, Value};
use crate::json::{NodeRef, write_json_string, write_node_json};
use crate::mapping::RowLayout;

/// One JSON object per row, built from the mapping's columns.
pub struct Ndjson<'m> {
    row: &'m RowLayout,
    /// `"name":` of each column, in order (JSON-escaped once).
    keys: Vec<Vec<u8>>,
    audience_key: Vec<u8>,
    /// The batch-size member of a full batch and the closing brace and line break.
    full_suffix: Vec<u8>,
    content_type: &'static str,
}

fn member_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 3);
    write_json_string(&mut k, name);
    k.push(b':');
    k
}

impl<'m> Ndjson<'m> {
    pub fn new(row: &'m RowLayout, batch_size: u64, content_type: &'static str) -> Ndjson<'m> {
        Ndjson {
            row,
            keys: row.columns.iter().map(|c| member_key(&c.name)).collect(),
            audience_key: row
                .audience_action
                .as_ref()
                .map(|a| member_key(&a.name))
                .unwrap_or_default(),
            full_suffix: suffix(row, batch_size),
            content_type,
        }
    }
}

/// `,"batch_size":N}\n` (or `}\n` without the column); the comma only after other members.
fn suffix(row: &RowLayout, rows: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(c) = &row.batch_size_column {
        if !row.columns.is_empty() || row.audience_action.is_some() {
            out.push(b',');
        }
        out.extend_from_slice(&member_key(&c.name));
        match &c.transform {
            // A transformed count is text, as the transform makes it.
            Some(t) => {
                let mut text = String::new();
                t.apply(&rows.to_string(), &mut text);
                write_json_string(&mut out, &text);
            }
            None => out.extend_from_slice(rows.to_string().as_bytes()),
        }
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Appends `v` as JSON: missing values are `null`.
fn write_value(out: &mut Vec<u8>, v: &Value<'_>, t: Option<&ColumnTransform>, enc: &mut Encoder) {
    match t {
        Some(t) => {
            enc.scratch.clear();
            super::csv::write_text(&mut enc.scratch, v);
            let s = String::from_utf8_lossy(&enc.scratch);
            t.apply(&s, &mut enc.text);
            write_json_string(out, &enc.text);
        }
        None => match v {
            Value::Undefined => out.extend_from_slice(b"null"),
            v if v.type_of() == Type::Undefined => out.extend_from_slice(b"null"),
            v => v.write_json(out),
        },
    }
}

/// The members of one row, up to (not including) the batch-size member.
fn fields<'a>(
    m: &'a RowLayout,
    keys: &[Vec<u8>],
    audience_key: &[u8],
    enc: &mut Encoder,
    event: &Value<'a>,
    out: &mut Vec<u8>,
) -> Result<(), RowError> {
    out.push(b'{');
    let mut first = true;
    for (c, key) in m.columns.iter().zip(keys) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key);
        let v = if let Some(a) = m.audience_action.as_ref().filter(|a| a.name == c.name) {
            let v = audience_action(m, event, &mut enc.memo).map_err(|e| RowError {
                column: a.name.clone(),
                message: e.0,
            })?;
            write_value(out, &v, a.transform.as_ref(), enc);
            continue;
        } else {
            eval_planned(&c.expr, c.plan.as_ref(), event, &m.steps, &mut enc.memo).map_err(|e| {
                RowError {
                    column: c.name.clone(),
                    message: e.0,
                }
            })?
        };
        write_value(out, &v, c.transform.as_ref(), enc);
    }
    if let Some(a) = &m.audience_action {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(audience_key);
        let v = audience_action(m, event, &mut enc.memo).map_err(|e| RowError {
            column: a.name.clone(),
            message: e.0,
        })?;
        write_value(out, &v, a.transform.as_ref(), enc);
    }
    Ok(())
}

impl Format for Ndjson<'_> {
    fn header(&self) -> &[u8] {
        b""
    }

    fn encode_row<'a>(
        &self,
        enc: &mut Encoder,
        event: &Value<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let start = out.len();
        enc.memo.reset(&self.row.steps);
        match fields(self.row, &self.keys, &self.audience_key, enc, event, out) {
            Ok(()) => {
                out.extend_from_slice(&self.full_suffix);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn batch_size_fix(&self, rows: u64) -> Option<TailFix> {
        self.row.batch_size_column.as_ref()?;
        Some(TailFix {
            old: self.full_suffix.clone(),
            new: suffix(self.row, rows),
        })
    }

    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn cells(&self, file: &[u8]) -> Vec<(String, String)> {
        json_cells(file)
    }
}

/// The members of the first line's object: strings as they are, other values as JSON.
fn json_cells(file: &[u8]) -> Vec<(String, String)> {
    let line = file.split(|&b| b == b'\n').next().unwrap_or_default();
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(obj) => obj
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `raw: true`: each line is the event as received. An event that was one line of NDJSON
/// is copied byte for byte; one that spanned lines (pretty-printed, an element of a JSON
/// array file) is written as compact JSON.
pub struct RawNdjson {
    content_type: &'static str,
}

impl RawNdjson {
    pub fn new(content_type: &'static str) -> RawNdjson {
        RawNdjson { content_type }
    }
}

/// Appends the event itself and a line break.
fn write_raw(out: &mut Vec<u8>, n: NodeRef<'_>) {
    let raw = n.raw().as_bytes();
    if memchr::memchr2(b'\n', b'\r', raw).is_none() {
        out.extend_from_slice(raw);
    } else {
        write_node_json(out, n);
    }
    out.push(b'\n');
}

impl Format for RawNdjson {
    fn header(&self) -> &[u8] {
        b""
    }

    fn encode_row<'a>(
        &self,
        _enc: &mut Encoder,
        event: &Value<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        match event {
            Value::Node(n) => write_raw(out, *n),
            other => {
                other.write_json(out);
                out.push(b'\n');
            }
        }
        Ok(())
    }

    fn batch_size_fix(&self, _rows: u64) -> Option<TailFix> {
        None
    }

    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn cells(&self, file: &[u8]) -> Vec<(String, String)> {
        json_cells(file)
    }
}
