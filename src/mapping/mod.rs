//! Mapping files: YAML "Sync to S3" mappings, validated and compiled.
//!
//! Everything that can be checked without events is checked here, and every problem is
//! reported at once with its location (`mappings[0].columns.email`, line and column).
//! The result is ready to run: triggers parsed, expressions compiled, templates compiled,
//! the header line built.

mod archive;
mod diag;
mod keys;
mod models;
mod output;
mod pgp;
pub mod schema;
mod settings;
mod transform;

use std::path::{Path, PathBuf};

pub use archive::{ARCHIVE_KEYS, ArchiveSettings, DEFAULT_DOWNLOAD_CONCURRENCY};
pub use diag::{Diagnostic, LoadError, Severity, render as render_diagnostics};
pub use models::{MODEL_KEYS, Model, redact_password};
pub use settings::{
    ACLS, Acl, EnvLookup, STORAGE_CLASSES, Secret, Settings, SettingsError, StorageClass,
    check_bucket_name, check_role_arn, interpolate_env, interpolate_env_with, process_env,
};

use crate::expr::{self, Expr};
use crate::names::{UnknownName, named_enum};
use crate::naming::{FilenameTemplate, FolderTemplate};
use crate::spanned::{Mark, SNode, SValue, parse_yaml};
use crate::trigger::Trigger;
use keys::{Reader, check_keys};
pub use output::{
    COLUMN_TYPES, COMPRESSIONS, ColumnType, Compression, CsvOptions, EXTENSIONS, Escape, Extension,
    FILE_FORMATS, FileFormat, LINE_ENDINGS, LineEnding, QUOTE_STYLES, QuoteStyle,
};
pub use pgp::{PgpKey, PgpKeyError};
pub use transform::{ColumnTransform, HASH_ALGORITHMS, HashAlgorithm, NORMALIZATIONS, Normalize};

/// Segment's subscription for "Sync to S3" when none is given.
pub const DEFAULT_TRIGGER: &str = r#"type = "identify" or type = "track""#;

/// Segment's default batch size for this destination.
pub const DEFAULT_BATCH_SIZE: u64 = 100_000;

/// Segment's default columns, in Segment's order.
pub const DEFAULT_COLUMNS: &str = r#"{
  "event_name": {"@path": "$.event"},
  "event_type": {"@path": "$.type"},
  "user_id": {"@path": "$.userId"},
  "anonymous_id": {"@path": "$.anonymousId"},
  "email": {"@if": {"exists": {"@path": "$.traits.email"}, "then": {"@path": "$.traits.email"}, "else": {"@path": "$.context.traits.email"}}},
  "properties": {"@path": "$.properties"},
  "traits": {"@if": {"exists": {"@path": "$.traits"}, "then": {"@path": "$.traits"}, "else": {"@path": "$.context.traits"}}},
  "context": {"@path": "$.context"},
  "timestamp": {"@path": "$.timestamp"},
  "message_id": {"@path": "$.messageId"},
  "integrations": {"@path": "$.integrations"},
  "audience_name": {"@path": "$.context.personas.computation_key"},
  "audience_id": {"@path": "$.context.personas.computation_id"},
  "audience_space_id": {"@path": "$.context.personas.space_id"}
}"#;

/// Segment's default of the hidden `traits_or_props` field.
pub const DEFAULT_TRAITS_OR_PROPS: &str = r#"{"@if": {"exists": {"@path": "$.properties"}, "then": {"@path": "$.properties"}, "else": {"@path": "$.traits"}}}"#;
/// Segment's default of the hidden `computation_key` field.
pub const DEFAULT_COMPUTATION_KEY: &str = r#"{"@path": "$.context.personas.computation_key"}"#;

const TOP_KEYS: &[&str] = &["settings", "mappings", "models"];

pub const MAPPING_KEYS: &[&str] = &[
    "name",
    "action",
    "enabled",
    "trigger",
    "columns",
    "audience_action_column_name",
    "batch_size_column_name",
    "batch_size",
    "batch_max_bytes",
    "batch_max_age_seconds",
    "batch_interval",
    "s3_aws_folder_name",
    "filename_prefix",
    "filename_template",
    "delimiter",
    "file_extension",
    "compression",
    "format",
    "raw",
    "column_types",
    "split_by_event_type",
    "encryption",
    "quote",
    "escape",
    "quote_style",
    "null_value",
    "empty_value",
    "header",
    "line_ending",
    "manifest",
    "columns_to_transform",
    "enable_batching",
    "traits_or_props",
    "computation_key",
];

/// Keys of an entry of `columns_to_transform`.
pub const TRANSFORM_KEYS: &[&str] = &["column_name", "hash_algorithm", "normalize"];

named_enum! {
    /// `delimiter`: what separates fields (`"tab"`, or a tab itself, for a tab).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Delimiter in DELIMITERS {
        Comma = ",",
        Pipe = "|",
        Tab = "tab" | "\t",
        Semicolon = ";",
        Colon = ":",
    }
}

impl Delimiter {
    /// The byte written between fields.
    pub const fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Pipe => b'|',
            Delimiter::Tab => b'\t',
            Delimiter::Semicolon => b';',
            Delimiter::Colon => b':',
        }
    }
}

/// One output column.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    pub expr: Expr,
    /// A direct walk of the event for simple expressions (see [`expr::Plan`]).
    pub plan: Option<expr::Plan>,
    pub transform: Option<ColumnTransform>,
}

/// The audience-action or batch-size column: computed by the engine, not by an expression.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    pub name: String,
    pub transform: Option<ColumnTransform>,
}

/// What a row is made of: the narrow view of a mapping that the encode stage reads.
#[derive(Debug)]
pub struct RowLayout {
    pub columns: Vec<Column>,
    pub audience_action: Option<ComputedColumn>,
    pub batch_size_column: Option<ComputedColumn>,
    /// Field separator of delimited formats (`,`, `|`, tab, ...).
    pub delimiter: u8,
    pub traits_or_props: Expr,
    pub computation_key: Expr,
    pub traits_or_props_plan: Option<expr::Plan>,
    pub computation_key_plan: Option<expr::Plan>,
    /// The path prefixes of all the plans above, shared (see [`expr::Steps`]).
    pub steps: expr::Steps,
    /// Each column's type in typed formats (Parquet), in [`RowLayout::names`] order.
    pub types: Vec<ColumnType>,
}

impl RowLayout {
    /// Column names in file order: the columns, then the audience-action and batch-size
    /// columns.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.audience_action.iter().map(|c| c.name.as_str()))
            .chain(self.batch_size_column.iter().map(|c| c.name.as_str()))
    }
}

/// A compiled "Sync to S3" mapping.
#[derive(Debug)]
pub struct Mapping {
    pub index: usize,
    pub name: String,
    pub enabled: bool,
    pub trigger: Trigger,
    /// The columns of a row (what the encode stage needs of the mapping).
    pub row: RowLayout,
    pub batch_size: u64,
    pub batch_max_bytes: Option<u64>,
    /// Close a batch this long after its first row (live input), whatever its size.
    pub batch_max_age: Option<std::time::Duration>,
    /// `batch_interval`: files are cut at UTC-aligned boundaries of this length (dividing a
    /// day) by each event's `receivedAt`, else its `timestamp`: rows of one file are of one
    /// interval, so a replay gives the same files whenever it runs.
    pub batch_interval: Option<std::time::Duration>,
    pub folder: FolderTemplate,
    pub filename_prefix: String,
    pub filename: FilenameTemplate,
    pub extension: Extension,
    /// File layers on the finished file (compression), in the order they are applied.
    pub compression: Compression,
    /// `format`: CSV (Segment's), NDJSON or Parquet.
    pub format: FileFormat,
    /// `raw` (NDJSON only): each line is the event as received.
    pub raw: bool,
    /// `split_by_event_type`: `false` puts all event types in the same files.
    pub split_by_event_type: bool,
    /// `encryption`: each file is encrypted to this key (after compression).
    pub encryption: Option<PgpKey>,
    /// CSV formatting options (`quote`, `escape`, ...); the defaults are Segment's.
    pub csv: CsvOptions,
    /// `manifest`: a manifest lists the run's files of this mapping, after them.
    pub manifest: bool,
}

/// A loaded mapping file.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub settings: Settings,
    pub mappings: Vec<Mapping>,
    /// `models:`, for `s3actions retl`.
    pub models: Vec<Model>,
    /// Warnings found while loading (errors make loading fail).
    pub warnings: Vec<Diagnostic>,
}

/// The largest mapping file read (a mapping file is kilobytes; this stops `/dev/zero` or a
/// log file passed by mistake from being read without end).
pub const MAX_MAPPING_FILE: u64 = 16 * 1024 * 1024;

/// The largest PGP public key file read.
pub const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Reads a whole file of at most `max` bytes; a longer one is an error saying so, read no
/// further than `max + 1` bytes.
pub fn read_limited(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} MiB", max / (1024 * 1024)),
        ));
    }
    Ok(bytes)
}

impl Config {
    /// Reads and compiles a mapping file.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = read_limited(path, MAX_MAPPING_FILE).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        Config::from_str(&text, path)
    }

    /// Compiles mapping text; `path` is only used in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, LoadError> {
        Config::from_str_with_env(text, path, &process_env)
    }

    /// [`Config::from_str`] with `${VAR}` references looked up in `env`.
    pub fn from_str_with_env(
        text: &str,
        path: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, LoadError> {
        let root = parse_yaml(text).map_err(|err| LoadError::Syntax {
            path: path.to_path_buf(),
            err,
        })?;
        let mut diags = Vec::new();
        let base = path.parent().unwrap_or(Path::new(""));
        let (settings, mappings) = compile(&root, env, base, &mut diags);
        let models = models::load(root.get("models"), env, &mut diags);
        if diags.iter().any(Diagnostic::is_error) {
            diags.sort_by_key(|d| (!d.is_error(), d.mark.line, d.mark.col));
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                diagnostics: diags,
            });
        }
        Ok(Config {
            path: path.to_path_buf(),
            settings,
            mappings,
            models,
            warnings: diags,
        })
    }

    pub fn mapping(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }
}

fn compile(
    root: &SNode,
    env: EnvLookup<'_>,
    base: &Path,
    diags: &mut Vec<Diagnostic>,
) -> (Settings, Vec<Mapping>) {
    let SValue::Object(members) = &root.value else {
        diags.push(Diagnostic::error(
            "",
            root.mark,
            "a mapping file is a YAML mapping with `settings:` and `mappings:`",
        ));
        return (Settings::default(), Vec::new());
    };
    check_keys(members, TOP_KEYS, "", diags);
    let settings = settings::load(root.get("settings"), env, diags);
    let mut mappings = Vec::new();
    match root.get("mappings") {
        None => diags.push(Diagnostic::error(
            "mappings",
            root.mark,
            "is missing: add at least one mapping under `mappings:`",
        )),
        Some(SNode {
            value: SValue::Array(items),
            mark,
        }) => {
            if items.is_empty() {
                diags.push(Diagnostic::error(
                    "mappings",
                    *mark,
                    "is empty: add at least one mapping",
                ));
            }
            let source_id = settings
                .source_id
                .as_deref()
                .unwrap_or(crate::naming::DEFAULT_SOURCE_ID);
            for (i, item) in items.iter().enumerate() {
                if let Some(m) = compile_mapping(i, item, base, source_id, diags) {
                    mappings.push(m);
                }
            }
        }
        Some(other) => diags.push(Diagnostic::error(
            "mappings",
            other.mark,
            format!(
                "should be a list of mappings (each starting with `- name:`), but it is {}",
                other.type_name()
            ),
        )),
    }
    for (i, m) in mappings.iter().enumerate() {
        if mappings[..i].iter().any(|p| p.name == m.name) {
            diags.push(Diagnostic::error(
                format!("mappings[{}].name", m.index),
                Mark::default(),
                format!("duplicate mapping name {:?}; names must be unique", m.name),
            ));
        }
    }
    (settings, mappings)
}

fn default_node(json: &str) -> SNode {
    crate::spanned::parse_json_or_yaml(json).expect("built-in defaults are valid JSON")
}

fn compile_expr(node: &SNode, at: &str, diags: &mut Vec<Diagnostic>) -> Option<Expr> {
    match expr::compile(node, "") {
        Ok(e) => Some(e),
        Err(errors) => {
            for e in errors {
                let mark = if e.mark.is_known() { e.mark } else { node.mark };
                diags.push(Diagnostic::error(format!("{at}{}", e.at), mark, e.message));
            }
            None
        }
    }
}

fn compile_mapping(
    index: usize,
    node: &SNode,
    base: &Path,
    source_id: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Mapping> {
    let loc = format!("mappings[{index}]");
    let SValue::Object(members) = &node.value else {
        diags.push(Diagnostic::error(
            &loc,
            node.mark,
            format!(
                "should be a mapping (name:, trigger:, columns: ...), but it is {}",
                node.type_name()
            ),
        ));
        return None;
    };
    let before = diags.iter().filter(|d| d.is_error()).count();
    check_keys(members, MAPPING_KEYS, &loc, diags);
    let mut r = Reader::new(loc.clone(), node, diags);

    let name = r
        .string("name")
        .map(|(n, _)| n)
        .unwrap_or_else(|| format!("mapping-{}", index + 1));
    if let Some((action, mark)) = r.string("action")
        && action != "syncToS3"
    {
        r.error(
            "action",
            mark,
            format!("should be \"syncToS3\" (the only action of this destination), not {action:?}"),
        );
    }
    let enabled = r.bool("enabled").unwrap_or(true);
    if r.bool("enable_batching") == Some(false) {
        let mark = r.get("enable_batching").map(|n| n.mark).unwrap_or_default();
        r.warn(
            "enable_batching",
            mark,
            "is always on here; files are batched by batch_size",
        );
    }
    let trigger_text = r.string("trigger");
    let (trigger_src, trigger_mark) =
        trigger_text.unwrap_or_else(|| (DEFAULT_TRIGGER.to_string(), node.mark));
    let trigger = match Trigger::parse(&trigger_src) {
        Ok(t) => {
            for w in t.warnings() {
                r.warn("trigger", trigger_mark, w.clone());
            }
            Some(t)
        }
        Err(e) => {
            r.error("trigger", trigger_mark, e.to_string());
            None
        }
    };

    let delimiter = match r.string("delimiter") {
        None => Delimiter::Comma,
        Some((d, mark)) => Delimiter::parse(&d).unwrap_or_else(|| {
            r.error(
                "delimiter",
                mark,
                format!(
                    "should be one of {} (\"tab\" for a tab), not {d:?}",
                    Delimiter::NAMES.map_quoted()
                ),
            );
            Delimiter::Comma
        }),
    }
    .byte();
    let output = output::read(&mut r, base, delimiter);
    let batch_size = r
        .integer("batch_size", 1, 10_000_000)
        .unwrap_or(DEFAULT_BATCH_SIZE);
    let batch_max_bytes = r.integer("batch_max_bytes", 1024, 5 * 1024 * 1024 * 1024 * 1024);
    let batch_max_age = r
        .integer("batch_max_age_seconds", 1, 7 * 24 * 3600)
        .map(std::time::Duration::from_secs);
    let batch_interval = r.string("batch_interval").and_then(|(v, mark)| {
        let d = settings::parse_window(&v).filter(|d| 86_400 % d.as_secs() == 0);
        if d.is_none() {
            r.error(
                "batch_interval",
                mark,
                format!("should be a duration that divides a day, such as 15m, 1h, 3h, 6h, 8h, 12h or 24h, not {v:?}"),
            );
        }
        d
    });
    let optional_name = |r: &mut Reader, key: &str| -> Option<String> {
        match r.get(key) {
            None => Some(key_default(key)),
            Some(SNode {
                value: SValue::Null,
                ..
            }) => None,
            Some(_) => r.string(key).map(|(s, _)| s).filter(|s| !s.is_empty()),
        }
    };
    let audience_name = optional_name(&mut r, "audience_action_column_name");
    let batch_name = optional_name(&mut r, "batch_size_column_name");

    let folder_src = r.string("s3_aws_folder_name");
    let folder = match &folder_src {
        None => FolderTemplate::compile("").ok(),
        Some((s, mark)) => match FolderTemplate::compile_with(s, source_id) {
            Ok(f) => Some(f),
            Err(e) => {
                r.error("s3_aws_folder_name", *mark, e.to_string());
                None
            }
        },
    };
    let filename_prefix = r
        .string("filename_prefix")
        .map(|(s, _)| s)
        .unwrap_or_default();
    if filename_prefix.contains('/') {
        let mark = r.get("filename_prefix").map(|n| n.mark).unwrap_or_default();
        r.warn(
            "filename_prefix",
            mark,
            "contains '/': it creates subfolders; s3_aws_folder_name is the place for folders",
        );
    }
    let filename = match r.string("filename_template") {
        None => FilenameTemplate::compile(None).ok(),
        Some((s, mark)) => match FilenameTemplate::compile_with(Some(&s), source_id) {
            Ok(f) => Some(f),
            Err(e) => {
                r.error("filename_template", mark, e.to_string());
                None
            }
        },
    };
    let at_columns = r.at("columns");
    let columns_node = r.get("columns");
    let traits_or_props_node = r.get("traits_or_props");
    let computation_key_node = r.get("computation_key");
    let transforms_node = r.get("columns_to_transform");
    drop(r);

    // Columns: the mapping's own (in order, leaving out "" as Segment does), else Segment's.
    let default_columns;
    let columns_node = match columns_node {
        Some(n) => n,
        None => {
            default_columns = default_node(DEFAULT_COLUMNS);
            &default_columns
        }
    };
    let mut columns = Vec::new();
    let mut declared: Vec<String> = Vec::new();
    match &columns_node.value {
        SValue::Object(cols) => {
            if cols.is_empty() {
                diags.push(Diagnostic::error(&at_columns, columns_node.mark, "is empty: list at least one column (or leave `columns` out for Segment's defaults)"));
            }
            for (name, kmark, value) in cols {
                if matches!(&value.value, SValue::String(s) if s.is_empty()) {
                    continue;
                }
                declared.push(name.clone());
                let at = format!("{at_columns}.{name}");
                check_column_name(name, delimiter, &at, *kmark, diags);
                if let Some(expr) = compile_expr(value, &at, diags) {
                    columns.push(Column {
                        name: name.clone(),
                        plan: expr::Plan::of(&expr),
                        expr,
                        transform: None,
                    });
                }
            }
        }
        _ => diags.push(Diagnostic::error(
            &at_columns,
            columns_node.mark,
            format!(
                "should be a mapping of column name to expression, but it is {}",
                columns_node.type_name()
            ),
        )),
    }
    let mut audience_action = audience_name.map(|name| ComputedColumn {
        name,
        transform: None,
    });
    let mut batch_size_column = batch_name.map(|name| ComputedColumn {
        name,
        transform: None,
    });
    for (c, key) in [
        (&audience_action, "audience_action_column_name"),
        (&batch_size_column, "batch_size_column_name"),
    ] {
        if let Some(c) = c {
            let mark = node.get(key).map(|n| n.mark).unwrap_or(node.mark);
            check_column_name(&c.name, delimiter, &format!("{loc}.{key}"), mark, diags);
            if columns.iter().any(|col| col.name == c.name) {
                if key == "batch_size_column_name" {
                    diags.push(Diagnostic::error(
                        format!("{loc}.{key}"),
                        mark,
                        format!(
                            "{:?} is also a column of `columns`; rename one of them",
                            c.name
                        ),
                    ));
                } else {
                    diags.push(Diagnostic::warning(
                        format!("{loc}.{key}"),
                        mark,
                        format!("{:?} is also a column of `columns`; as in Segment, both hold the audience action", c.name),
                    ));
                }
            }
        }
    }

    let traits_or_props = compile_expr(
        traits_or_props_node.unwrap_or(&default_node(DEFAULT_TRAITS_OR_PROPS)),
        &format!("{loc}.traits_or_props"),
        diags,
    );
    let computation_key = compile_expr(
        computation_key_node.unwrap_or(&default_node(DEFAULT_COMPUTATION_KEY)),
        &format!("{loc}.computation_key"),
        diags,
    );

    if let Some(t) = transforms_node {
        apply_transforms(
            t,
            &format!("{loc}.columns_to_transform"),
            &declared,
            &mut columns,
            &mut audience_action,
            &mut batch_size_column,
            diags,
        );
    }

    if output.format == FileFormat::Parquet {
        let names: Vec<&str> = columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(audience_action.iter().map(|c| c.name.as_str()))
            .chain(batch_size_column.iter().map(|c| c.name.as_str()))
            .collect();
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(*n))
        {
            diags.push(Diagnostic::error(
                format!("{loc}.columns"),
                node.mark,
                format!("{dup:?} names two columns; Parquet columns need distinct names (rename one, or turn the audience-action column off with audience_action_column_name: \"\")"),
            ));
        }
    }
    let types = column_types(
        &output.column_types,
        &columns,
        audience_action.as_ref(),
        batch_size_column.as_ref(),
        &format!("{loc}.column_types"),
        diags,
    );

    let errors_now = diags.iter().filter(|d| d.is_error()).count();
    if errors_now > before {
        return None;
    }
    let mut steps = expr::Steps::default();
    let mut traits_or_props_plan = traits_or_props.as_ref().and_then(expr::Plan::of);
    let mut computation_key_plan = computation_key.as_ref().and_then(expr::Plan::of);
    let plans = columns.iter_mut().filter_map(|c| c.plan.as_mut());
    for plan in plans
        .chain(&mut traits_or_props_plan)
        .chain(&mut computation_key_plan)
    {
        plan.intern(&mut steps);
    }
    Some(Mapping {
        index,
        name,
        enabled,
        trigger: trigger?,
        row: RowLayout {
            columns,
            audience_action,
            batch_size_column,
            delimiter,
            traits_or_props: traits_or_props?,
            computation_key: computation_key?,
            traits_or_props_plan,
            computation_key_plan,
            steps,
            types,
        },
        batch_size,
        batch_max_bytes,
        batch_max_age,
        batch_interval,
        folder: folder?,
        filename_prefix,
        filename: filename?,
        extension: output.extension,
        compression: output.compression,
        format: output.format,
        raw: output.raw,
        split_by_event_type: output.split_by_event_type,
        encryption: output.encryption,
        csv: output.csv,
        manifest: output.manifest,
    })
}

/// Each column's type in file order: `column_types` where given, else `string` (the
/// batch-size column: `int64`, a count). An entry for a column the mapping does not have is
/// an error.
fn column_types(
    given: &[(String, ColumnType, Mark)],
    columns: &[Column],
    audience: Option<&ComputedColumn>,
    batch: Option<&ComputedColumn>,
    loc: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<ColumnType> {
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c.name.as_str())
        .chain(audience.map(|c| c.name.as_str()))
        .chain(batch.map(|c| c.name.as_str()))
        .collect();
    for (name, _, mark) in given {
        if !names.contains(&name.as_str()) {
            let hint = crate::suggest::did_you_mean(name, names.iter().copied())
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            diags.push(Diagnostic::error(
                format!("{loc}.{name}"),
                *mark,
                format!(
                    "{name:?} is not a column of this mapping; {hint}columns are {}",
                    names.join(", ")
                ),
            ));
        }
    }
    let batch_name = batch.map(|c| c.name.as_str());
    if let Some((_, t, mark)) = given.iter().find(|(n, t, _)| {
        Some(n.as_str()) == batch_name && matches!(t, ColumnType::Boolean | ColumnType::Timestamp)
    }) {
        diags.push(Diagnostic::error(
            format!("{loc}.{}", batch_name.unwrap_or_default()),
            *mark,
            format!(
                "the batch-size column holds a row count: int64, double, string or json, not {}",
                t.name()
            ),
        ));
    }
    names
        .iter()
        .map(|n| {
            given
                .iter()
                .find(|(g, _, _)| g == n)
                .map(|(_, t, _)| *t)
                .unwrap_or(if Some(*n) == batch_name {
                    ColumnType::Int64
                } else {
                    ColumnType::String
                })
        })
        .collect()
}

trait MapQuoted {
    fn map_quoted(&self) -> String;
}

impl MapQuoted for [&str] {
    fn map_quoted(&self) -> String {
        self.iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key_default(key: &str) -> String {
    match key {
        "audience_action_column_name" => "audience_action".into(),
        _ => "batch_size".into(),
    }
}

fn check_column_name(name: &str, delimiter: u8, at: &str, mark: Mark, diags: &mut Vec<Diagnostic>) {
    if name.contains(['"', '\n', '\r']) {
        diags.push(Diagnostic::error(
            at,
            mark,
            "column names cannot contain quotes or line breaks (the header line is not quoted)",
        ));
    } else if delimiter == b'\t' && name.contains('\t') {
        diags.push(Diagnostic::warning(
            at,
            mark,
            "the column name contains a tab, the delimiter; like Segment, names are not cleaned with tab, so the header gets an extra field",
        ));
    } else if delimiter != b'\t' && name.as_bytes().contains(&delimiter) {
        diags.push(Diagnostic::warning(
            at,
            mark,
            format!(
                "the column name contains the delimiter {:?}; like Segment, its first occurrence is removed in the header",
                delimiter as char
            ),
        ));
    }
}

fn apply_transforms(
    node: &SNode,
    loc: &str,
    declared: &[String],
    columns: &mut [Column],
    audience: &mut Option<ComputedColumn>,
    batch: &mut Option<ComputedColumn>,
    diags: &mut Vec<Diagnostic>,
) {
    let SValue::Array(items) = &node.value else {
        diags.push(Diagnostic::error(
            loc,
            node.mark,
            "should be a list of {column_name, hash_algorithm, normalize} entries",
        ));
        return;
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{loc}[{i}]");
        let SValue::Object(members) = &item.value else {
            diags.push(Diagnostic::error(
                &at,
                item.mark,
                "should be {column_name, hash_algorithm, normalize}",
            ));
            continue;
        };
        check_keys(members, TRANSFORM_KEYS, &at, diags);
        let mut r = Reader::new(at.clone(), item, diags);
        let Some((column, cmark)) = r.string("column_name") else {
            if r.get("column_name").is_none() {
                r.error(
                    "column_name",
                    item.mark,
                    "is required: the column to transform",
                );
            }
            continue;
        };
        let hash = match r.string("hash_algorithm") {
            None => HashAlgorithm::None,
            Some((h, mark)) => h.parse().unwrap_or_else(|e: UnknownName| {
                r.error("hash_algorithm", mark, e.to_string());
                HashAlgorithm::None
            }),
        };
        let normalize = match r.string("normalize") {
            None => Normalize::None,
            Some((n, mark)) => n.parse().unwrap_or_else(|e: UnknownName| {
                r.error("normalize", mark, e.to_string());
                Normalize::None
            }),
        };
        if seen.contains(&column) {
            r.error("column_name", cmark, format!("{column:?} is listed twice"));
            continue;
        }
        seen.push(column.clone());
        let t = Some(ColumnTransform { hash, normalize });
        let mut found = declared.contains(&column);
        for c in columns.iter_mut().filter(|c| c.name == column) {
            c.transform = t;
        }
        for c in [audience.as_mut(), batch.as_mut()].into_iter().flatten() {
            if c.name == column {
                c.transform = t;
                found = true;
            }
        }
        if !found {
            let names: Vec<&str> = declared
                .iter()
                .map(String::as_str)
                .chain(audience.iter().map(|c| c.name.as_str()))
                .chain(batch.iter().map(|c| c.name.as_str()))
                .collect();
            let hint = crate::suggest::did_you_mean(&column, names.iter().copied())
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            r.error(
                "column_name",
                cmark,
                format!(
                    "{column:?} is not a column of this mapping; {hint}columns are {}",
                    names.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
