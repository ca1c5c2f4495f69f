//! The JSON Schema (draft-07) of mapping files, for editors (`s3actions schema`).
//!
//! The schema is built from the loader's own key lists ([`super::MAPPING_KEYS`],
//! [`super::SETTINGS_KEYS`]) and name tables ([`super::DELIMITERS`], [`super::ACLS`], ...),
//! with one row per key in [`MAPPING_DOCS`] / [`SETTINGS_DOCS`] saying its type, default and
//! description (the README's words). Tests fail when the loader accepts a key without a row
//! here, when a row names a key the loader refuses, and when a description differs from the
//! README, so the schema cannot drift from what `validate` accepts. A key added to the loader
//! needs one row in these tables.
//!
//! Draft-07 because it is the draft the YAML language server validates.

use serde_json::{Map, Value, json};

use super::settings::SETTINGS_KEYS;
use super::{
    ACLS, Compression, DELIMITERS, HASH_ALGORITHMS, MAPPING_KEYS, NORMALIZATIONS, STORAGE_CLASSES,
    TOP_KEYS, TRANSFORM_KEYS,
};

/// What values a key takes (each becomes a JSON Schema type).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string (`null` counts as not given, as the loader reads it).
    Text,
    /// A string that may hold `${VAR}` references (settings).
    EnvText,
    /// One of a closed set of names.
    Names(&'static [&'static str]),
    /// One of a closed set of names, or a `${VAR}` reference (settings).
    EnvNames(&'static [&'static str]),
    /// A string, or `null` to turn the column off.
    NullableText,
    Bool,
    /// A whole number in this range.
    Integer {
        min: u64,
        max: u64,
    },
    /// A duration such as `24h`, `30m`, `90s`, `2d`, or `off`.
    Duration,
    /// A mapping value: a literal or a directive.
    Expression,
    /// `columns`: column name → mapping value, or `""` to leave a default column out.
    Columns,
    /// `columns_to_transform`: a list of `{column_name, hash_algorithm, normalize}`.
    Transforms,
    /// `tags`: name → text.
    Tags,
    /// A block of its own keys (checked by the loader, which names any it refuses).
    Object,
}

/// One key of the mapping file: its values, default and description.
#[derive(Clone, Copy, Debug)]
pub struct KeyDoc {
    pub key: &'static str,
    pub kind: Kind,
    /// The default as JSON text, when the key has one that can be written as a value.
    pub default: Option<&'static str>,
    /// The README's "Meaning" column for this key, word for word.
    pub description: &'static str,
}

const fn doc(
    key: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    description: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        kind,
        default,
        description,
    }
}

const ACTIONS: &[&str] = &["syncToS3"];
const EXTENSIONS: &[&str] = &[
    "csv", "txt", ".csv", ".txt", "json", "ndjson", "jsonl", ".json", ".ndjson", ".jsonl",
    "parquet", ".parquet",
];
const SSE: &[&str] = &["AES256", "aws:kms"];

/// Keys of a mapping (an entry of `mappings:`), in README order.
pub const MAPPING_DOCS: &[KeyDoc] = &[
    doc(
        "name",
        Kind::Text,
        None,
        "Unique name; used by `--mapping`, summaries and the `{{mapping}}` variable.",
    ),
    doc(
        "action",
        Kind::Names(ACTIONS),
        Some(r#""syncToS3""#),
        "The only action of this destination.",
    ),
    doc(
        "enabled",
        Kind::Bool,
        Some("true"),
        "Disabled mappings are skipped (unless named with `--mapping`).",
    ),
    doc(
        "trigger",
        Kind::Text,
        Some(r#""type = \"identify\" or type = \"track\"""#),
        "FQL deciding which events the mapping takes ([Triggers](#triggers)).",
    ),
    doc(
        "columns",
        Kind::Columns,
        None,
        "Column name → expression ([Column expressions](#column-expressions)), in file order. A column written as `\"\"` is left out (Segment's way to switch a default column off).",
    ),
    doc(
        "audience_action_column_name",
        Kind::NullableText,
        Some(r#""audience_action""#),
        "Name of the audience-action column; `\"\"` (or `null`) turns it off.",
    ),
    doc(
        "batch_size_column_name",
        Kind::NullableText,
        Some(r#""batch_size""#),
        "Name of the column holding the file's row count; `\"\"` turns it off.",
    ),
    doc(
        "batch_size",
        Kind::Integer {
            min: 1,
            max: 10_000_000,
        },
        Some("100000"),
        "Maximum rows per file (1 to 10,000,000).",
    ),
    doc(
        "batch_max_bytes",
        Kind::Integer {
            min: 1024,
            max: 5 * 1024 * 1024 * 1024 * 1024,
        },
        None,
        "Also close a file before it grows past this many bytes (at least one row per file).",
    ),
    doc(
        "batch_max_age_seconds",
        Kind::Integer {
            min: 1,
            max: 604_800,
        },
        None,
        "Also close a file this many seconds (1 to 604800) after its first row, for live input: rows never wait longer than that for the file to fill.",
    ),
    doc(
        "batch_interval",
        Kind::Text,
        None,
        "Cut files at UTC-aligned boundaries of this length (`15m`, `1h`, `3h`, `6h`, `8h`, `12h`, `24h`: a duration that divides a day) by each event's `receivedAt`, else its `timestamp`, else now: a file holds one interval's rows (those of one input chunk stay together, so a late event joins its interval's file when it comes close enough) and its time variables (`{{timestamp}}`, `{{date}}`, `{{hour}}`, Segment's default name) are the interval's start, so a replay gives the same files whenever it runs. Live input (`serve`, stdin) also closes a file once its interval has ended on the clock. Not under `consume`.",
    ),
    doc(
        "s3_aws_folder_name",
        Kind::Text,
        Some(r#""""#),
        "Folder [template](#object-keys), rendered per event.",
    ),
    doc(
        "filename_prefix",
        Kind::Text,
        Some(r#""""#),
        "Prefix of Segment's file names.",
    ),
    doc(
        "filename_template",
        Kind::Text,
        None,
        "Handlebars template for the file name (replaces Segment's naming).",
    ),
    doc(
        "delimiter",
        Kind::Names(DELIMITER_NAMES),
        Some(r#"",""#),
        "One of `,` `|` `tab` `;` `:`.",
    ),
    doc(
        "file_extension",
        Kind::Names(EXTENSIONS),
        Some(r#""csv""#),
        "`csv` or `txt` for `csv` (same content; Content-Type `text/csv` or `text/plain`); `json` (default), `ndjson` or `jsonl` for `ndjson` (`application/x-ndjson`); `parquet` for `parquet` (`application/vnd.apache.parquet`).",
    ),
    doc(
        "compression",
        Kind::Names(COMPRESSION_NAMES),
        Some(r#""none""#),
        "`none`, `gzip` or `zstd`: each finished file is compressed (streamed, never whole in memory), its key gets `.gz` or `.zst` (a taken name gets its `-N` before the whole suffix: `track-1.csv.gz`), its Content-Type stays that of the format and gzip uploads carry `Content-Encoding: gzip`. For `parquet`, Parquet's own column codec instead, with no suffix. `batch_max_bytes` counts uncompressed bytes.",
    ),
    doc(
        "columns_to_transform",
        Kind::Transforms,
        None,
        "Normalise and hash columns ([Audience syncs](#audience-syncs)).",
    ),
    doc(
        "traits_or_props",
        Kind::Expression,
        Some(super::DEFAULT_TRAITS_OR_PROPS),
        "Segment's hidden field the audience action reads from.",
    ),
    doc(
        "computation_key",
        Kind::Expression,
        Some(super::DEFAULT_COMPUTATION_KEY),
        "Segment's hidden field naming the audience key.",
    ),
    doc(
        "enable_batching",
        Kind::Bool,
        Some("true"),
        "Accepted for compatibility; files are always batched.",
    ),
    doc(
        "format",
        Kind::Text,
        None,
        "`csv` (Segment's files), `ndjson` or `parquet` ([Other file formats](#other-file-formats)).",
    ),
    doc(
        "raw",
        Kind::Bool,
        None,
        "`ndjson` only: each line is the event as received instead of the columns ([Raw NDJSON](#raw-ndjson-segment-classics-logs)).",
    ),
    doc(
        "column_types",
        Kind::Object,
        None,
        "`parquet` only: column name → `string`, `int64`, `double`, `boolean`, `timestamp` or `json` ([Parquet](#parquet)).",
    ),
    doc(
        "split_by_event_type",
        Kind::Bool,
        None,
        "`false`: events of every type the mapping takes share the same files (as Segment classic's logs); `{{event_type}}` is then empty.",
    ),
    doc(
        "encryption",
        Kind::Object,
        None,
        "`{ pgp_public_key_file: PATH }` (relative to the mapping file) or `{ pgp_public_key: ARMORED }`: each file is encrypted to that OpenPGP key after compression, `.gpg` appended ([PGP encryption](#pgp-encryption)).",
    ),
    doc(
        "quote",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "escape",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "quote_style",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "null_value",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "empty_value",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "header",
        Kind::Bool,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "line_ending",
        Kind::Text,
        None,
        "`csv` only: AEP's formatting options ([CSV options](#csv-options)).",
    ),
    doc(
        "manifest",
        Kind::Bool,
        None,
        "`true`: after the run's files, a manifest lists them ([Manifests](#manifests)).",
    ),
];

/// Keys of `settings:`, in README order.
pub const SETTINGS_DOCS: &[KeyDoc] = &[
    doc(
        "s3_aws_bucket_name",
        Kind::EnvText,
        None,
        "Bucket name (3–63 characters: lowercase letters, digits, dots, hyphens; not an IP address or URI).",
    ),
    doc("s3_aws_region", Kind::EnvText, None, "The bucket's region."),
    doc(
        "iam_role_arn",
        Kind::EnvText,
        None,
        "Role to assume (`arn:aws:iam::<12 digits>:role/<name>`).",
    ),
    doc(
        "iam_external_id",
        Kind::EnvText,
        None,
        "External ID for the AssumeRole call; required with a role. Never printed.",
    ),
    doc(
        "intermediate_role_arn",
        Kind::EnvText,
        None,
        "Role chaining: assume this role first, then `iam_role_arn` with its credentials (as Segment does).",
    ),
    doc(
        "intermediate_external_id",
        Kind::EnvText,
        None,
        "Role chaining: assume this role first, then `iam_role_arn` with its credentials (as Segment does).",
    ),
    doc(
        "endpoint_url",
        Kind::EnvText,
        None,
        "S3/STS-compatible endpoint (path-style addressing is used). `AWS_ENDPOINT_URL` is honoured too.",
    ),
    doc(
        "server_side_encryption",
        Kind::EnvNames(SSE),
        None,
        "`AES256` or `aws:kms` (with `ssekms_key_id`).",
    ),
    doc(
        "ssekms_key_id",
        Kind::EnvText,
        None,
        "KMS key for `aws:kms`.",
    ),
    doc(
        "acl",
        Kind::EnvNames(ACL_NAMES),
        None,
        "Canned ACL, e.g. `bucket-owner-full-control`.",
    ),
    doc(
        "storage_class",
        Kind::EnvNames(STORAGE_CLASS_NAMES),
        None,
        "e.g. `STANDARD_IA`, `INTELLIGENT_TIERING`.",
    ),
    doc(
        "tags",
        Kind::Tags,
        None,
        "Object tags: a mapping of name to value.",
    ),
    doc(
        "upload_concurrency",
        Kind::Integer { min: 1, max: 256 },
        Some("8"),
        "Uploads in flight.",
    ),
    doc(
        "requests_per_second",
        Kind::Integer {
            min: 1,
            max: 100_000,
        },
        Some("3500"),
        "Rate limit on S3 requests (S3 throttles around 3,500 PUT/s per prefix).",
    ),
    doc(
        "multipart_threshold_mb",
        Kind::Integer {
            min: 5,
            max: 5 * 1024 * 1024,
        },
        Some("16"),
        "Files larger than this go up as multipart uploads.",
    ),
    doc(
        "multipart_part_size_mb",
        Kind::Integer {
            min: 5,
            max: 5 * 1024,
        },
        Some("8"),
        "Part size (at least 5).",
    ),
    doc(
        "max_retries",
        Kind::Integer { min: 0, max: 100 },
        Some("8"),
        "Retries per request for throttling, 5xx, timeouts and connection errors.",
    ),
    doc(
        "outbox_dir",
        Kind::EnvText,
        None,
        "Where files wait until they are uploaded.",
    ),
    doc(
        "spool_max_bytes",
        Kind::Integer {
            min: 4096,
            max: 1 << 50,
        },
        Some("1073741824"),
        "`serve`: the spool's size at which requests get `503` with `Retry-After` (at least 4096).",
    ),
    doc(
        "dedupe_window",
        Kind::Duration,
        Some(r#""24h""#),
        "`serve`: drop events whose `messageId` was accepted this recently (`90s`, `30m`, `24h`, up to `7d`), as Segment's API does; `off` keeps every event.",
    ),
    doc(
        "dedupe_max_ids",
        Kind::Integer {
            min: 1000,
            max: 1 << 32,
        },
        Some("2000000"),
        "`serve`: message ids remembered for `dedupe_window` at most (about 60 bytes each); past it the oldest are forgotten first.",
    ),
    doc(
        "role_session_name",
        Kind::EnvText,
        Some(r#""s3actions""#),
        "The AssumeRole session name (shows in CloudTrail).",
    ),
    doc(
        "role_session_duration_seconds",
        Kind::Integer {
            min: 900,
            max: 43_200,
        },
        Some("3600"),
        "Requested session length (900–43200); credentials are refreshed 5 minutes before they expire.",
    ),
    doc(
        "open_batch_buffer_mb",
        Kind::Integer { min: 1, max: 65536 },
        None,
        "Write buffer shared by all open batches (each grows on demand up to 256 KB while the budget lasts, then writes straight to its file; the files are the same).",
    ),
    doc(
        "source_id",
        Kind::EnvText,
        None,
        "What `{{source_id}}` renders in folder and filename templates (Segment classic's `segment-logs/<source id>/`).",
    ),
    doc(
        "archive",
        Kind::Object,
        None,
        "How `s3://` inputs are read, when not with the settings above ([Backfilling](#backfilling-from-a-segment-classic-archive)).",
    ),
    doc(
        "state_dir",
        Kind::EnvText,
        None,
        "Where `retl` keeps each model's snapshot (`--state-dir` overrides it).",
    ),
    doc(
        "kafka",
        Kind::Object,
        None,
        "`consume`: librdkafka settings, a mapping of name to value (`sasl.password: ${KAFKA_PASSWORD}`); `-X KEY=VALUE` on the command line comes after them. Values are never printed.",
    ),
];

/// Keys of an entry of `columns_to_transform`.
pub const TRANSFORM_DOCS: &[KeyDoc] = &[
    doc(
        "column_name",
        Kind::Text,
        None,
        "The column to normalise and hash (a column of `columns`, or the audience-action or batch-size column).",
    ),
    doc(
        "hash_algorithm",
        Kind::Names(HASH_NAMES),
        Some(r#""none""#),
        "The digest written in place of the value (lowercase hex); values that already are digests pass through.",
    ),
    doc(
        "normalize",
        Kind::Names(NORMALIZE_NAMES),
        Some(r#""none""#),
        "Applied before hashing.",
    ),
];

macro_rules! names_of {
    ($name:ident, $table:expr, $n:expr) => {
        const $name: &[&str] = &{
            let mut out = [""; $n];
            let mut i = 0;
            while i < $n {
                out[i] = $table[i].1;
                i += 1;
            }
            out
        };
    };
}

names_of!(ACL_NAMES, ACLS, ACLS.len());
names_of!(STORAGE_CLASS_NAMES, STORAGE_CLASSES, STORAGE_CLASSES.len());
names_of!(HASH_NAMES, HASH_ALGORITHMS, HASH_ALGORITHMS.len());
names_of!(NORMALIZE_NAMES, NORMALIZATIONS, NORMALIZATIONS.len());
const COMPRESSION_NAMES: &[&str] = Compression::NAMES;
/// The delimiters' names, then a tab itself (accepted, never printed).
const DELIMITER_NAMES: &[&str] = &{
    let mut out = [""; DELIMITERS.len() + 1];
    let mut i = 0;
    while i < DELIMITERS.len() {
        out[i] = DELIMITERS[i].1;
        i += 1;
    }
    out[DELIMITERS.len()] = "\t";
    out
};

/// The directives of `columns` and their arguments: (name, schema of the argument,
/// description).
fn directives() -> Vec<(&'static str, Value, &'static str)> {
    let e = || json!({ "$ref": "#/definitions/expression" });
    let string_or_directive =
        || json!({ "anyOf": [{ "type": "string" }, { "$ref": "#/definitions/directive" }] });
    let options = |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required });
    vec![
        (
            "@path",
            string_or_directive(),
            "The value at a JSONPath of the event, e.g. `$.properties.plan`.",
        ),
        (
            "@template",
            string_or_directive(),
            "A string with `{{path}}` placeholders filled from the event.",
        ),
        (
            "@literal",
            e(),
            "This value as it is, even if it looks like a directive.",
        ),
        (
            "@if",
            json!({
                "type": "object",
                "properties": {
                    "exists": { "$ref": "#/definitions/expression", "description": "The condition: true when this value exists." },
                    "blank": { "$ref": "#/definitions/expression", "description": "The condition: true when this value is missing, null or \"\"." },
                    "then": { "$ref": "#/definitions/expression", "description": "The value when the condition holds." },
                    "else": { "$ref": "#/definitions/expression", "description": "The value otherwise." }
                },
                "anyOf": [{ "required": ["exists"] }, { "required": ["blank"] }]
            }),
            "`then` when `exists` (or `blank`) holds, else `else`.",
        ),
        (
            "@arrayPath",
            json!({
                "type": "array",
                "items": [
                    { "anyOf": [{ "type": "string" }, { "$ref": "#/definitions/directive" }], "description": "The path of an array (or a directive giving one)." },
                    { "$ref": "#/definitions/expression", "description": "The shape of each element, paths relative to the element." }
                ]
            }),
            "`[path, shape]`: each element of the array at `path`, mapped through `shape`.",
        ),
        (
            "@case",
            options(
                json!({
                    "operator": { "enum": ["lower", "upper"] },
                    "value": e()
                }),
                &["operator"],
            ),
            "`value` in lower or upper case.",
        ),
        (
            "@replace",
            options(
                json!({
                    "value": e(),
                    "pattern": { "type": "string", "minLength": 1, "maxLength": 10 },
                    "replacement": { "type": "string", "maxLength": 10 },
                    "pattern2": { "type": "string", "maxLength": 10 },
                    "replacement2": { "type": "string", "maxLength": 10 },
                    "global": { "type": "boolean", "default": true },
                    "ignorecase": { "type": "boolean", "default": false }
                }),
                &["value", "pattern"],
            ),
            "`value` with `pattern` replaced by `replacement` (and `pattern2` by `replacement2`).",
        ),
        (
            "@merge",
            options(
                json!({
                    "objects": { "type": "array", "items": e() },
                    "direction": { "enum": ["left", "right", "LEFT", "RIGHT", "Left", "Right"] }
                }),
                &["objects", "direction"],
            ),
            "The `objects` merged into one; `direction` says which side wins.",
        ),
        (
            "@transform",
            options(
                json!({ "apply": e(), "mapping": e() }),
                &["apply", "mapping"],
            ),
            "`mapping` resolved against the result of `apply`.",
        ),
        (
            "@flatten",
            options(
                json!({
                    "value": e(),
                    "separator": { "type": "string" },
                    "omitArrays": { "type": "boolean" }
                }),
                &["value", "separator"],
            ),
            "`value` flattened into one level, keys joined with `separator`.",
        ),
        (
            "@json",
            options(
                json!({
                    "mode": { "enum": ["encode", "decode"] },
                    "value": e()
                }),
                &["mode", "value"],
            ),
            "`value` encoded to a JSON string, or a JSON string decoded.",
        ),
        (
            "@liquid",
            json!({ "type": "string" }),
            "A Liquid template rendered against the event.",
        ),
        (
            "@excludeWhenNull",
            e(),
            "This value, or the key left out when it is null.",
        ),
    ]
}

fn kind_schema(kind: Kind) -> Value {
    let env_ref = json!({ "type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*\}" });
    match kind {
        Kind::Text | Kind::EnvText => json!({ "type": ["string", "null"] }),
        Kind::NullableText => json!({ "type": ["string", "null"] }),
        Kind::Names(names) => json!({ "enum": names }),
        Kind::EnvNames(names) => json!({ "anyOf": [{ "enum": names }, env_ref] }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Integer { min, max } => {
            json!({ "type": "integer", "minimum": min, "maximum": max })
        }
        Kind::Duration => json!({ "type": "string", "pattern": "^([0-9]+[smhd]|off)$" }),
        Kind::Expression => json!({ "$ref": "#/definitions/expression" }),
        Kind::Columns => json!({
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "anyOf": [
                    { "const": "", "description": "Leaves this column out." },
                    { "$ref": "#/definitions/expression" }
                ]
            }
        }),
        Kind::Transforms => json!({
            "type": "array",
            "items": object_of(TRANSFORM_DOCS, &["column_name"])
        }),
        Kind::Tags => json!({
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        }),
        Kind::Object => json!({ "type": "object" }),
    }
}

fn object_of(docs: &[KeyDoc], required: &[&str]) -> Value {
    let mut props = Map::new();
    for d in docs {
        let mut s = kind_schema(d.kind);
        let obj = s.as_object_mut().expect("every kind is an object schema");
        obj.insert("description".into(), d.description.into());
        if let Some(default) = d.default {
            let v: Value = serde_json::from_str(default).expect("defaults are JSON");
            obj.insert("default".into(), v);
        }
        props.insert(d.key.into(), s);
    }
    let mut out = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false
    });
    if !required.is_empty() {
        out["required"] = json!(required);
    }
    out
}

/// The JSON Schema of mapping files.
pub fn mapping_schema() -> Value {
    let mut one_of = Vec::new();
    for (name, arg, description) in directives() {
        one_of.push(json!({
            "type": "object",
            "description": description,
            "properties": {
                name: { "allOf": [arg], "description": description },
                "_metadata": { "description": "Segment's editor metadata; ignored." }
            },
            "required": [name],
            "additionalProperties": false
        }));
    }
    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "s3actions mapping file",
        "description": "Segment-compatible \"Sync to S3\" mappings: destination settings and one or more mappings.",
        "type": "object",
        "properties": {
            "settings": object_of(SETTINGS_DOCS, &[]),
            "mappings": {
                "description": "One or more \"Sync to S3\" actions.",
                "type": "array",
                "minItems": 1,
                "items": object_of(MAPPING_DOCS, &[])
            }
        },
        "required": ["mappings"],
        "additionalProperties": false,
        "definitions": {
            "directive": {
                "description": "A mapping directive: an object with exactly one @-key.",
                "oneOf": one_of
            },
            "expression": {
                "description": "A mapping value: a literal, or a directive such as {\"@path\": \"$.userId\"}.",
                "anyOf": [
                    { "type": ["string", "number", "boolean", "null"] },
                    { "type": "array", "items": { "$ref": "#/definitions/expression" } },
                    { "$ref": "#/definitions/directive" },
                    {
                        "type": "object",
                        "propertyNames": { "not": { "pattern": "^@" } },
                        "additionalProperties": { "$ref": "#/definitions/expression" }
                    }
                ]
            }
        }
    });
    root["properties"]["settings"]["description"] =
        "Destination settings (only needed to upload).".into();
    root["properties"]["models"] = models_schema();
    debug_assert!(TOP_KEYS.iter().all(|k| root["properties"].get(k).is_some()));
    root
}

/// `models:` (for `s3actions retl`): each model a warehouse query and its identifier.
fn models_schema() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    let mut props = Map::new();
    for k in super::models::MODEL_KEYS {
        let p = match *k {
            "id" => text("The model's id; events carry it as context.warehouse.model_id."),
            "connection" => text("postgres://user@host:port/db; ${VAR} for secrets."),
            "query" => text("The SQL query whose rows are synced."),
            "identifier" => text("The column that identifies a row."),
            "compare_columns" => json!({
                "type": "array",
                "items": { "type": "string" },
                "description": "The columns that count for updated (default: all)."
            }),
            "user_id_column" => text("The column that becomes userId."),
            "anonymous_id_column" => text("The column that becomes anonymousId."),
            other => text(other),
        };
        props.insert((*k).to_string(), p);
    }
    json!({
        "description": "Warehouse models for `s3actions retl`.",
        "type": "array",
        "items": {
            "type": "object",
            "properties": props,
            "required": ["id", "connection", "query", "identifier"],
            "additionalProperties": false
        }
    })
}

/// [`mapping_schema`] as the text `s3actions schema` prints (and
/// `schema/mapping.schema.json` holds): pretty JSON and a final newline.
pub fn mapping_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&mapping_schema()).expect("a JSON value prints");
    s.push('\n');
    s
}

/// Keys the loader accepts at each level, with the rows documenting them (for the tests
/// that keep both in step).
pub fn key_lists() -> [(&'static str, &'static [&'static str], &'static [KeyDoc]); 3] {
    [
        ("mappings[]", MAPPING_KEYS, MAPPING_DOCS),
        ("settings", SETTINGS_KEYS, SETTINGS_DOCS),
        ("columns_to_transform[]", TRANSFORM_KEYS, TRANSFORM_DOCS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_loader_accepts_has_a_schema_row_and_back() {
        for (level, keys, docs) in key_lists() {
            for k in keys {
                assert!(
                    docs.iter().any(|d| d.key == *k),
                    "{level}.{k} is accepted by the loader but has no row in mapping::schema"
                );
            }
            for d in docs {
                assert!(
                    keys.contains(&d.key),
                    "{level}.{} has a schema row but the loader refuses it",
                    d.key
                );
            }
        }
        let schema = mapping_schema();
        for k in TOP_KEYS {
            assert!(schema["properties"].get(k).is_some(), "{k}");
        }
        for d in crate::expr::DIRECTIVES {
            let found = schema["definitions"]["directive"]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["required"][0] == *d);
            assert!(found, "directive {d} has no schema");
        }
    }

    #[test]
    fn defaults_are_json() {
        for (_, _, docs) in key_lists() {
            for d in docs {
                if let Some(v) = d.default {
                    serde_json::from_str::<Value>(v).unwrap_or_else(|e| panic!("{}: {e}", d.key));
                }
            }
        }
    }
}
