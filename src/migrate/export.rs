//! `s3actions export segment`: a mapping file → the bodies Segment's Public API returns for
//! "Get Destination" and "List Subscriptions from Destination" (with the `{"data": ...}`
//! wrapper), which `import segment` reads back.
//!
//! Every field Segment's "Sync to S3" action has is written with its effective value
//! (defaults included, as Segment stores them). The external ID is never written. Keys only
//! s3actions has (`filename_template`, `compression`, ...) go under [`EXTENSION_FIELD`] of
//! their subscription, each with a [`Note`], so that a round trip keeps them.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{
    DEFAULT_BATCH_KEYS, EXTENSION_FIELD, MigrateError, Note, SEGMENT_ACTION_FIELDS,
    SEGMENT_SETTINGS,
};
use crate::mapping::{
    Config, DEFAULT_BATCH_SIZE, DEFAULT_COLUMNS, DEFAULT_COMPUTATION_KEY, DEFAULT_TRAITS_OR_PROPS,
    DEFAULT_TRIGGER, Delimiter,
};
use crate::spanned::{SNode, SValue, parse_yaml};

/// A mapping file in Segment's shapes.
#[derive(Debug)]
pub struct Exported {
    /// The "Get Destination" body.
    pub destination: Value,
    /// The "List Subscriptions from Destination" body.
    pub subscriptions: Value,
    pub notes: Vec<Note>,
}

/// Loads (and so validates) the mapping file at `path` and writes it in Segment's shapes.
pub fn export_segment(path: &Path) -> Result<Exported, MigrateError> {
    let config = Config::load(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Read {
        name: path.display().to_string(),
        source,
    })?;
    let root = parse_yaml(&text).map_err(|err| crate::mapping::LoadError::Syntax {
        path: path.to_path_buf(),
        err,
    })?;
    let mut notes = Vec::new();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let destination = destination(&config, root.get("settings"), &name, &mut notes);
    let mut subs = Vec::new();
    if let Some(SNode {
        value: SValue::Array(items),
        ..
    }) = root.get("mappings")
    {
        for (m, node) in config.mappings.iter().zip(items) {
            subs.push(subscription(&m.name, node, &mut notes));
        }
    }
    let total = subs.len();
    Ok(Exported {
        destination: json!({ "data": { "destination": destination } }),
        subscriptions: json!({
            "data": {
                "subscriptions": subs,
                "pagination": { "current": "MA==", "next": null, "totalEntries": total }
            }
        }),
        notes,
    })
}

fn note(notes: &mut Vec<Note>, at: impl Into<String>, message: impl Into<String>) {
    notes.push(Note {
        at: at.into(),
        message: message.into(),
    });
}

fn destination(config: &Config, node: Option<&SNode>, name: &str, notes: &mut Vec<Note>) -> Value {
    let s = &config.settings;
    let mut settings = Map::new();
    // The values as loaded: `${VAR}`s resolved (Segment has no environment).
    for (key, value) in [
        ("s3_aws_bucket_name", &s.bucket),
        ("s3_aws_region", &s.region),
        ("iam_role_arn", &s.role_arn),
    ] {
        match value {
            Some(v) => {
                settings.insert(key.into(), v.clone().into());
            }
            None if node.and_then(|n| n.get(key)).is_some() => note(
                notes,
                format!("settings.{key}"),
                "reads an environment variable that is not set; left out",
            ),
            None => {}
        }
    }
    debug_assert!(
        settings
            .keys()
            .all(|k| SEGMENT_SETTINGS.contains(&k.as_str()))
    );
    if let Some(SNode {
        value: SValue::Object(members),
        ..
    }) = node
    {
        for (key, _, _) in members {
            if key == "iam_external_id" {
                note(
                    notes,
                    "settings.iam_external_id",
                    "is a secret and is never exported: enter it in Segment",
                );
            } else if !SEGMENT_SETTINGS.contains(&key.as_str()) {
                note(
                    notes,
                    format!("settings.{key}"),
                    "is not a setting of Segment's AWS S3 (Actions); left out",
                );
            }
        }
    }
    json!({
        "id": "",
        "name": name,
        "enabled": true,
        "metadata": { "slug": super::import::DESTINATION_SLUG, "name": "AWS S3 (Actions)" },
        "settings": settings
    })
}

fn raw(node: &SNode, key: &str, default: impl FnOnce() -> Value) -> Value {
    match node.get(key) {
        Some(v) => v.to_json(),
        None => default(),
    }
}

fn subscription(name: &str, node: &SNode, notes: &mut Vec<Note>) -> Value {
    let parse = |json: &str| -> Value { serde_json::from_str(json).expect("defaults are JSON") };
    let mut settings = Map::new();
    let s = |k: &str, v: Value, settings: &mut Map<String, Value>| {
        settings.insert(k.to_string(), v);
    };
    s(
        "columns",
        raw(node, "columns", || parse(DEFAULT_COLUMNS)),
        &mut settings,
    );
    for (key, default) in [
        ("audience_action_column_name", "audience_action"),
        ("batch_size_column_name", "batch_size"),
    ] {
        s(key, raw(node, key, || default.into()), &mut settings);
    }
    s(
        "traits_or_props",
        raw(node, "traits_or_props", || parse(DEFAULT_TRAITS_OR_PROPS)),
        &mut settings,
    );
    s(
        "computation_key",
        raw(node, "computation_key", || parse(DEFAULT_COMPUTATION_KEY)),
        &mut settings,
    );
    s(
        "enable_batching",
        raw(node, "enable_batching", || true.into()),
        &mut settings,
    );
    s(
        "batch_size",
        raw(node, "batch_size", || DEFAULT_BATCH_SIZE.into()),
        &mut settings,
    );
    for key in ["s3_aws_folder_name", "filename_prefix"] {
        if let Some(v) = node.get(key)
            && !matches!(v.value, SValue::Null)
        {
            s(key, v.to_json(), &mut settings);
        }
    }
    // Segment's names: "tab", not a tab.
    let delimiter = node
        .get("delimiter")
        .and_then(SNode::as_str)
        .and_then(Delimiter::parse)
        .unwrap_or(Delimiter::Comma);
    s("delimiter", delimiter.name().into(), &mut settings);
    let extension = node
        .get("file_extension")
        .and_then(SNode::as_str)
        .map_or("csv", |e| e.trim_start_matches('.'));
    s("file_extension", extension.into(), &mut settings);
    if let Some(t) = node.get("columns_to_transform") {
        s("columns_to_transform", t.to_json(), &mut settings);
    }
    s("batch_keys", json!(DEFAULT_BATCH_KEYS), &mut settings);
    debug_assert!(
        settings
            .keys()
            .all(|k| SEGMENT_ACTION_FIELDS.contains(&k.as_str()))
    );

    let mut extra = Map::new();
    if let SValue::Object(members) = &node.value {
        for (key, _, v) in members {
            let segment_has = SEGMENT_ACTION_FIELDS.contains(&key.as_str())
                || ["name", "action", "enabled", "trigger"].contains(&key.as_str());
            if !segment_has {
                note(
                    notes,
                    format!("mappings {name:?}.{key}"),
                    format!(
                        "Segment has no such field; written under {EXTENSION_FIELD:?}, which only s3actions import reads"
                    ),
                );
                extra.insert(key.clone(), v.to_json());
            }
        }
    }
    let enabled = node
        .get("enabled")
        .map_or(Value::Bool(true), SNode::to_json);
    let trigger = node
        .get("trigger")
        .and_then(SNode::as_str)
        .unwrap_or(DEFAULT_TRIGGER);
    let mut sub = json!({
        "id": "",
        "name": name,
        "actionId": "",
        "actionSlug": "syncToS3",
        "destinationId": "",
        "modelId": "",
        "enabled": enabled,
        "trigger": trigger,
        "settings": settings
    });
    if !extra.is_empty() {
        sub[EXTENSION_FIELD] = Value::Object(extra);
    }
    sub
}
