//! What each mapping does with one event: trigger result, the row, and where it would go.
//! The tool for editing a mapping (`s3actions preview`).

use crate::encode::{Encoder, batch_size_suffix};
use crate::expr::Value;
use crate::json::NodeRef;
use crate::mapping::{Config, Mapping};
use crate::naming::{BatchInfo, BatchTime, object_key};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MappingPreview {
    pub mapping: String,
    pub enabled: bool,
    pub trigger: String,
    pub matched: bool,
    /// Column name and cell text, in file order (present when the trigger matched).
    pub row: Option<Vec<(String, String)>>,
    /// Why no row could be made, when that happened.
    pub error: Option<String>,
    /// The object key the row would go to (its timestamp is "now").
    pub key: Option<String>,
    /// The exact file content if this event were alone in its batch.
    pub file: Option<String>,
}

/// Previews every mapping of `config` for one event (a JSON object).
pub fn preview(config: &Config, event: NodeRef<'_>) -> Vec<MappingPreview> {
    let mut encoder = Encoder::new();
    config
        .mappings
        .iter()
        .map(|m| preview_mapping(m, event, &mut encoder))
        .collect()
}

fn preview_mapping(m: &Mapping, event: NodeRef<'_>, encoder: &mut Encoder) -> MappingPreview {
    let matched = m.trigger.matches(event);
    let mut p = MappingPreview {
        mapping: m.name.clone(),
        enabled: m.enabled,
        trigger: m.trigger.source().to_string(),
        matched,
        row: None,
        error: None,
        key: None,
        file: None,
    };
    if !matched {
        return p;
    }
    let mut content = m.header.clone();
    let root = Value::Node(event);
    if let Err(e) = encoder.encode_row(m, &root, &mut content) {
        p.error = Some(e.to_string());
        return p;
    }
    content.extend_from_slice(&batch_size_suffix(m, 1));
    let text = String::from_utf8_lossy(&content).into_owned();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(m.delimiter)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map(|h| h.iter().map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(Ok(record)) = reader.records().next() {
        p.row = Some(
            headers
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect(),
        );
    }
    p.file = Some(text);
    let (mut folder, mut scratch) = (String::new(), String::new());
    m.folder.render_into(event, &mut folder, &mut scratch);
    let event_type = event
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    let first = m.filename.uses_event().then(|| root.to_serde());
    let info = BatchInfo {
        prefix: &m.filename_prefix,
        extension: m.extension.as_str(),
        time: BatchTime::next(),
        event_type: &event_type,
        mapping: &m.name,
        part: 1,
        rows: 1,
        first_event: first.as_ref(),
    };
    match m
        .filename
        .render(&info)
        .and_then(|f| object_key(&folder, &f))
    {
        Ok(k) => p.key = Some(k),
        Err(e) => p.error = Some(e),
    }
    p
}
