//! `s3actions import segment`: Segment's destination and subscriptions → a mapping file.
//!
//! Fields are copied under the same names (Segment's field names are the mapping keys).
//! Values the loader would refuse, fields it does not know and subscriptions of other actions
//! are left out, each with a [`Note`]. The external ID is never copied: the file reads it
//! from `${S3ACTIONS_EXTERNAL_ID}`. The result is validated like any mapping file.

use std::path::Path;

use serde_json::Value;

use super::yaml;
use super::{
    DEFAULT_BATCH_KEYS, EXTENSION_FIELD, EXTERNAL_ID_VAR, MigrateError, Note,
    SEGMENT_ACTION_FIELDS, SEGMENT_SETTINGS, unwrap,
};
use crate::mapping::{
    Config, DEFAULT_BATCH_SIZE, DELIMITERS, HASH_ALGORITHMS, LoadError, MAPPING_KEYS,
    NORMALIZATIONS, check_bucket_name, check_role_arn,
};

/// Segment's slug for the AWS S3 (Actions) destination.
pub const DESTINATION_SLUG: &str = "actions-s3";

/// An imported mapping file.
#[derive(Debug)]
pub struct Imported {
    /// The mapping file's text.
    pub yaml: String,
    /// What was left out or changed, and why.
    pub notes: Vec<Note>,
    /// The problems `validate` finds in [`Imported::yaml`], if any (a trigger or expression
    /// Segment accepted but s3actions does not, say).
    pub invalid: Option<LoadError>,
}

/// Converts the bodies of "Get Destination" and "List Subscriptions from Destination"
/// (each with or without Segment's `{"data": ...}` wrapper).
pub fn import_segment(
    destination: &Value,
    subscriptions: &Value,
    names: (&str, &str),
) -> Result<Imported, MigrateError> {
    let dest = unwrap(destination, "destination");
    if !dest.is_object() {
        return Err(MigrateError::Shape {
            name: names.0.to_string(),
            message: "expected a destination object ({\"data\": {\"destination\": {...}}})".into(),
        });
    }
    let subs = match unwrap(subscriptions, "subscriptions") {
        Value::Array(a) => a,
        _ => {
            return Err(MigrateError::Shape {
                name: names.1.to_string(),
                message:
                    "expected a list of subscriptions ({\"data\": {\"subscriptions\": [...]}})"
                        .into(),
            });
        }
    };
    let mut notes = Vec::new();
    let mut out = String::new();
    header(dest, &mut out, &mut notes);
    settings(dest, &mut out, &mut notes);
    out.push_str("\nmappings:\n");
    let mut names_taken: Vec<String> = Vec::new();
    let mut written = 0;
    for (i, sub) in subs.iter().enumerate() {
        if subscription(i, sub, &mut names_taken, &mut out, &mut notes) {
            written += 1;
        }
    }
    if written == 0 {
        return Err(MigrateError::Shape {
            name: names.1.to_string(),
            message: format!(
                "no \"Sync to S3\" subscription to import{}",
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        notes
                            .iter()
                            .map(Note::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                }
            ),
        });
    }
    // Unset ${VAR}s are only warnings for validation: the file is checked as a local run.
    let invalid = Config::from_str(&out, Path::new("imported.yaml")).err();
    Ok(Imported {
        yaml: out,
        notes,
        invalid,
    })
}

fn note(notes: &mut Vec<Note>, at: impl Into<String>, message: impl Into<String>) {
    notes.push(Note {
        at: at.into(),
        message: message.into(),
    });
}

fn header(dest: &Value, out: &mut String, notes: &mut Vec<Note>) {
    out.push_str(super::SCHEMA_MODELINE);
    let name = dest.get("name").and_then(Value::as_str).unwrap_or("");
    let id = dest.get("id").and_then(Value::as_str).unwrap_or("");
    yaml::comment(
        out,
        0,
        &format!(
            "Imported from Segment destination {name:?} (id {id:?}) by s3actions import segment."
        ),
    );
    let slug = dest
        .pointer("/metadata/slug")
        .and_then(Value::as_str)
        .unwrap_or(DESTINATION_SLUG);
    if slug != DESTINATION_SLUG {
        note(
            notes,
            "destination.metadata.slug",
            format!(
                "is {slug:?}, not {DESTINATION_SLUG:?} (AWS S3 (Actions)): the fields may not mean what they mean here"
            ),
        );
    }
    if dest.get("enabled") == Some(&Value::Bool(false)) {
        note(
            notes,
            "destination.enabled",
            "the destination is disabled in Segment; its mappings are imported as they are",
        );
        yaml::comment(out, 0, "The destination was disabled in Segment.");
    }
}

fn settings(dest: &Value, out: &mut String, notes: &mut Vec<Note>) {
    out.push_str("\nsettings:\n");
    let empty = serde_json::Map::new();
    let s = match dest.get("settings") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(other) => {
            note(
                notes,
                "destination.settings",
                format!("should be an object, not {other}; no settings imported"),
            );
            &empty
        }
    };
    let mut role = false;
    for key in SEGMENT_SETTINGS {
        let at = format!("destination.settings.{key}");
        let Some(v) = s.get(*key) else { continue };
        let Some(text) = v.as_str() else {
            note(notes, at, format!("should be a string, not {v}; left out"));
            continue;
        };
        let checked = match *key {
            "s3_aws_bucket_name" => check_bucket_name(text).map_err(|e| e.to_string()),
            "iam_role_arn" => check_role_arn(text).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            note(notes, at, format!("{e}; left out"));
            continue;
        }
        role |= *key == "iam_role_arn";
        out.push_str(&format!("  {key}: {}\n", yaml::string(text)));
    }
    if role || s.contains_key("iam_external_id") {
        yaml::comment(
            out,
            2,
            &format!("Segment's external ID is not copied: set {EXTERNAL_ID_VAR} to it."),
        );
        out.push_str(&format!("  iam_external_id: ${{{EXTERNAL_ID_VAR}}}\n"));
    }
    for (key, _) in s {
        if !SEGMENT_SETTINGS.contains(&key.as_str()) && key != "iam_external_id" {
            note(
                notes,
                format!("destination.settings.{key}"),
                "is not a setting of AWS S3 (Actions); left out",
            );
        }
    }
    if s.is_empty() {
        out.push_str("  {}\n");
    }
}

/// One subscription as a mapping; false when it was skipped (with a note).
fn subscription(
    i: usize,
    sub: &Value,
    names_taken: &mut Vec<String>,
    out: &mut String,
    notes: &mut Vec<Note>,
) -> bool {
    let name = sub.get("name").and_then(Value::as_str).unwrap_or("");
    let at = format!("subscriptions[{i}] {name:?}");
    if !sub.is_object() {
        note(notes, at, "is not an object; skipped");
        return false;
    }
    let slug = sub.get("actionSlug").and_then(Value::as_str).unwrap_or("");
    if slug != "syncToS3" {
        note(
            notes,
            at,
            format!("is a subscription of action {slug:?}, not \"syncToS3\"; skipped"),
        );
        return false;
    }
    // Names are unique in a mapping file; Segment's need not be.
    let base = if name.trim().is_empty() {
        format!("sync-to-s3-{}", i + 1)
    } else {
        name.to_string()
    };
    let mut unique = base.clone();
    let mut n = 2;
    while names_taken.contains(&unique) {
        unique = format!("{base}-{n}");
        n += 1;
    }
    if unique != name {
        note(
            notes,
            &at,
            format!("named {unique:?} (mapping names must be unique and not empty)"),
        );
    }
    names_taken.push(unique.clone());
    out.push_str(&format!("  - name: {}\n", yaml::string(&unique)));
    let id = sub.get("id").and_then(Value::as_str).unwrap_or("");
    if !id.is_empty() {
        yaml::comment(out, 4, &format!("Segment subscription {id}"));
    }
    if let Some(model) = sub.get("modelId").and_then(Value::as_str)
        && !model.is_empty()
    {
        yaml::comment(
            out,
            4,
            &format!("Reverse ETL model {model}: its rows arrive as track events"),
        );
    }
    out.push_str("    action: syncToS3\n");
    match sub.get("enabled") {
        Some(Value::Bool(b)) => out.push_str(&format!("    enabled: {b}\n")),
        None => {}
        Some(other) => note(
            notes,
            format!("{at}.enabled"),
            format!("should be true or false, not {other}; left out (enabled)"),
        ),
    }
    match sub.get("trigger") {
        Some(Value::String(t)) if !t.trim().is_empty() => {
            out.push_str(&format!("    trigger: {}\n", yaml::string(t)));
        }
        None | Some(Value::Null) => {}
        Some(other) => note(
            notes,
            format!("{at}.trigger"),
            format!("should be an FQL string, not {other}; left out (Segment's default trigger)"),
        ),
    }
    let empty = serde_json::Map::new();
    let fields = match sub.get("settings") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(other) => {
            note(
                notes,
                format!("{at}.settings"),
                format!("should be an object, not {other}; no fields imported"),
            );
            &empty
        }
    };
    for (key, v) in fields {
        field(&format!("{at}.settings.{key}"), key, v, out, notes);
    }
    match sub.get(EXTENSION_FIELD) {
        None => {}
        Some(Value::Object(extra)) => {
            for (key, v) in extra {
                let here = format!("{at}.{EXTENSION_FIELD}.{key}");
                if !MAPPING_KEYS.contains(&key.as_str())
                    || SEGMENT_ACTION_FIELDS.contains(&key.as_str())
                    || ["name", "action", "enabled", "trigger"].contains(&key.as_str())
                {
                    note(
                        notes,
                        here,
                        "is not an s3actions-only mapping key; left out",
                    );
                } else {
                    out.push_str(&format!("    {key}: {}\n", yaml::value(v)));
                }
            }
        }
        Some(other) => note(
            notes,
            format!("{at}.{EXTENSION_FIELD}"),
            format!("should be an object, not {other}; left out"),
        ),
    }
    for (key, _) in sub.as_object().into_iter().flatten() {
        let known = [
            "id",
            "name",
            "actionId",
            "actionSlug",
            "destinationId",
            "modelId",
            "enabled",
            "trigger",
            "settings",
            EXTENSION_FIELD,
        ];
        if !known.contains(&key.as_str()) {
            note(
                notes,
                format!("{at}.{key}"),
                "is not a field of a subscription; left out",
            );
        }
    }
    out.push('\n');
    true
}

fn default_of(json: &str) -> Value {
    serde_json::from_str(json).expect("built-in defaults are JSON")
}

/// One action field: written as its mapping key when the loader would take it, else noted.
fn field(at: &str, key: &str, v: &Value, out: &mut String, notes: &mut Vec<Note>) {
    let mut put = |text: String| out.push_str(&format!("    {key}: {text}\n"));
    let bad = |notes: &mut Vec<Note>, why: String| note(notes, at, format!("{why}; left out"));
    match key {
        "columns" => match v {
            Value::Object(cols) if !cols.is_empty() => {
                if *v == default_of(crate::mapping::DEFAULT_COLUMNS) {
                    yaml::comment(
                        out,
                        4,
                        "columns: Segment's default columns (the key is left out for them)",
                    );
                    return;
                }
                out.push_str("    columns:\n");
                for (name, expr) in cols {
                    out.push_str(&format!(
                        "      {}: {}\n",
                        yaml::key(name),
                        yaml::value(expr)
                    ));
                }
            }
            _ => bad(
                notes,
                format!("should be an object of column name to mapping, not {v}"),
            ),
        },
        "traits_or_props" | "computation_key" => {
            let default = if key == "traits_or_props" {
                crate::mapping::DEFAULT_TRAITS_OR_PROPS
            } else {
                crate::mapping::DEFAULT_COMPUTATION_KEY
            };
            if *v != default_of(default) && !v.is_null() {
                put(yaml::value(v));
            }
        }
        "audience_action_column_name" | "batch_size_column_name" => match v {
            Value::String(s) => put(yaml::string(s)),
            Value::Null => put("null".into()),
            _ => bad(notes, format!("should be a string, not {v}")),
        },
        "s3_aws_folder_name" | "filename_prefix" => match v {
            Value::String(s) => put(yaml::string(s)),
            Value::Null => {}
            _ => bad(notes, format!("should be a string, not {v}")),
        },
        "enable_batching" => match v {
            Value::Bool(true) | Value::Null => {}
            Value::Bool(false) => {
                note(
                    notes,
                    at,
                    "is false in Segment; s3actions always batches (by batch_size)",
                );
                put("false".into());
            }
            _ => bad(notes, format!("should be true or false, not {v}")),
        },
        "batch_size" => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (1.0..=10_000_000.0).contains(&n) => {
                if n as u64 != DEFAULT_BATCH_SIZE {
                    put((n as u64).to_string());
                }
            }
            _ if v.is_null() => {}
            _ => bad(
                notes,
                format!("should be a whole number from 1 to 10000000, not {v}"),
            ),
        },
        "delimiter" => match v.as_str().and_then(crate::mapping::Delimiter::parse) {
            Some(d) => {
                if d.name() != "," {
                    put(yaml::string(d.name()));
                }
            }
            None => bad(
                notes,
                format!(
                    "should be one of {}, not {v}",
                    DELIMITERS
                        .iter()
                        .map(|(_, n)| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        },
        "file_extension" => match v.as_str() {
            Some("csv") => {}
            Some("txt") => put("txt".into()),
            _ => bad(notes, format!("should be \"csv\" or \"txt\", not {v}")),
        },
        "columns_to_transform" => transforms(at, v, out, notes),
        "batch_keys" => {
            let default: Vec<Value> = DEFAULT_BATCH_KEYS.iter().map(|k| (*k).into()).collect();
            if *v != Value::Array(default) && !v.is_null() {
                note(
                    notes,
                    at,
                    format!(
                        "is {v}; s3actions always splits batches by mapping, event type and folder; left out"
                    ),
                );
            }
        }
        _ => note(
            notes,
            at,
            "is not a field of Sync to S3 (or has no s3actions equivalent); left out",
        ),
    }
}

fn transforms(at: &str, v: &Value, out: &mut String, notes: &mut Vec<Note>) {
    let Value::Array(items) = v else {
        if !v.is_null() {
            note(
                notes,
                at,
                format!(
                    "should be a list of {{column_name, hash_algorithm, normalize}}, not {v}; left out"
                ),
            );
        }
        return;
    };
    let mut lines = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let column = item.get("column_name").and_then(Value::as_str);
        let Some(column) = column.filter(|c| !c.is_empty()) else {
            note(notes, here, "has no column_name; left out");
            continue;
        };
        let mut entry = format!("      - column_name: {}\n", yaml::string(column));
        let mut ok = true;
        for (key, table) in [
            (
                "hash_algorithm",
                HASH_ALGORITHMS.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            ),
            (
                "normalize",
                NORMALIZATIONS.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            ),
        ] {
            match item.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if table.contains(&s.as_str()) => {
                    entry.push_str(&format!("        {key}: {s}\n"));
                }
                Some(other) => {
                    note(
                        notes,
                        format!("{here}.{key}"),
                        format!(
                            "should be one of {}, not {other}; the whole entry is left out",
                            table.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        for (key, _) in item.as_object().into_iter().flatten() {
            if !["column_name", "hash_algorithm", "normalize"].contains(&key.as_str()) {
                note(
                    notes,
                    format!("{here}.{key}"),
                    "is not a field of columns_to_transform; left out",
                );
            }
        }
        if ok {
            lines.push(entry);
        }
    }
    if !lines.is_empty() {
        out.push_str("    columns_to_transform:\n");
        for l in lines {
            out.push_str(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn import(dest: Value, settings: Value) -> Imported {
        let subs = json!({"subscriptions": [
            {"name": "m", "actionSlug": "syncToS3", "enabled": true, "settings": settings},
            "not an object"
        ]});
        import_segment(&json!({ "destination": dest }), &subs, ("d", "s")).unwrap()
    }

    fn notes(i: &Imported) -> String {
        i.notes
            .iter()
            .map(Note::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn values_the_loader_would_refuse_are_left_out_with_a_note() {
        let i = import(
            json!({"settings": {"s3_aws_bucket_name": "s3://acme", "s3_aws_region": "us-east-1",
                   "acl": "private", "iam_external_id": "shh-secret"}}),
            json!({
                "batch_size": 0,
                "file_extension": "json",
                "enable_batching": "yes",
                "s3_aws_folder_name": 3,
                "columns": [],
                "columns_to_transform": [
                    {"column_name": "email", "hash_algorithm": "md5"},
                    {"hash_algorithm": "sha256"},
                    {"column_name": "user_id", "normalize": "trim", "salt": "x"}
                ]
            }),
        );
        let n = notes(&i);
        for want in [
            "destination.settings.s3_aws_bucket_name: \"s3://acme\" is a URI",
            "destination.settings.acl: is not a setting of AWS S3 (Actions)",
            "subscriptions[0] \"m\".settings.batch_size: should be a whole number",
            "settings.file_extension: should be \"csv\" or \"txt\"",
            "settings.enable_batching: should be true or false",
            "settings.s3_aws_folder_name: should be a string",
            "settings.columns: should be an object",
            "settings.columns_to_transform[0].hash_algorithm: should be one of none, sha256",
            "settings.columns_to_transform[1]: has no column_name",
            "settings.columns_to_transform[2].salt: is not a field of columns_to_transform",
            "subscriptions[1] \"\": is not an object; skipped",
        ] {
            assert!(n.contains(want), "no note {want:?} in:\n{n}");
        }
        assert!(!i.yaml.contains("shh-secret") && !n.contains("shh-secret"));
        assert!(i.yaml.contains("iam_external_id: ${S3ACTIONS_EXTERNAL_ID}"));
        assert!(
            i.yaml
                .contains("- column_name: user_id\n        normalize: trim\n")
        );
        assert!(!i.yaml.contains("md5"));
        assert!(i.invalid.is_none(), "{:?}", i.invalid);
    }

    #[test]
    fn a_destination_of_another_kind_or_disabled_is_noted() {
        let i = import(
            json!({"enabled": false, "metadata": {"slug": "webhook"}, "settings": {}}),
            json!({}),
        );
        let n = notes(&i);
        assert!(
            n.contains("destination.metadata.slug: is \"webhook\""),
            "{n}"
        );
        assert!(
            n.contains("destination.enabled: the destination is disabled"),
            "{n}"
        );
        assert!(i.invalid.is_none(), "{:?}", i.invalid);
    }
}
