//! Moving between Segment and s3actions: `import segment` turns what Segment's Public API
//! returns for an AWS S3 (Actions) destination ("Get Destination" and "List Subscriptions
//! from Destination") into a mapping file; `export segment` writes a mapping file in those
//! shapes (for moving back, and for the round-trip tests).
//!
//! Nothing is dropped silently: every field that is not carried over is a [`Note`] saying
//! what was left out and why.

pub mod api;
pub mod export;
pub mod import;
mod yaml;

use std::fmt;

use serde_json::Value;

pub use export::{Exported, export_segment};
pub use import::{Imported, import_segment};

/// The field under which `export` keeps a subscription's s3actions-only keys
/// (`filename_template`, `compression`, ...): Segment has no such fields, and only
/// `import` reads them back.
pub const EXTENSION_FIELD: &str = "x-s3actions";

/// The first lines of files `import` and `init` write: editors with the YAML language server
/// validate against `mapping.schema.json` next to the file (`s3actions schema` writes it).
pub const SCHEMA_MODELINE: &str = "# yaml-language-server: $schema=mapping.schema.json\n# (for completion in your editor: s3actions schema > mapping.schema.json)\n";

/// The environment variable the imported file reads the external ID from.
pub const EXTERNAL_ID_VAR: &str = "S3ACTIONS_EXTERNAL_ID";

/// The fields of Segment's "Sync to S3" action (its subscription `settings`), which are
/// also mapping keys of the same name and meaning.
pub const SEGMENT_ACTION_FIELDS: &[&str] = &[
    "columns",
    "audience_action_column_name",
    "batch_size_column_name",
    "traits_or_props",
    "computation_key",
    "enable_batching",
    "batch_size",
    "s3_aws_folder_name",
    "filename_prefix",
    "delimiter",
    "file_extension",
    "columns_to_transform",
    "batch_keys",
];

/// Segment's default `batch_keys` (the hidden field saying which fields split batches).
pub const DEFAULT_BATCH_KEYS: &[&str] = &["s3_aws_folder_name", "columns_to_transform"];

/// The destination settings Segment has (besides the external ID, never copied).
pub const SEGMENT_SETTINGS: &[&str] = &["s3_aws_bucket_name", "s3_aws_region", "iam_role_arn"];

/// Something not carried over, or carried over with a change, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where: `destination.settings.acl`, `subscriptions[2] "name".settings.batch_keys`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why an import or export could not be done.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: not JSON: {source}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{name}: {message}")]
    Shape { name: String, message: String },
    #[error(transparent)]
    Mapping(#[from] crate::mapping::LoadError),
    #[error("{0}")]
    Api(#[from] api::ApiError),
}

/// Parses a response body; `name` (a file name, `stdin`, a URL) is used in messages.
pub fn parse_body(text: &str, name: &str) -> Result<Value, MigrateError> {
    serde_json::from_str(text).map_err(|source| MigrateError::Json {
        name: name.to_string(),
        source,
    })
}

/// The object under `key` of a body, with or without Segment's `{"data": ...}` wrapper.
fn unwrap<'v>(body: &'v Value, key: &str) -> &'v Value {
    let inner = match body.get("data") {
        Some(d) if d.is_object() && body.get(key).is_none() => d,
        _ => body,
    };
    inner.get(key).unwrap_or(inner)
}
