//! Object keys: the folder template (rendered per event), the filename (rendered per batch),
//! and the rules that keep keys safe and unique.
//!
//! Both templates are Handlebars. Folder templates are rendered for every event, so the
//! common shape (literal text and `{{field.path}}` placeholders) is compiled to a list of
//! parts read straight from the parsed event; anything fancier (helpers, blocks) goes
//! through the Handlebars engine. Values print as JavaScript's `String()` and nothing is
//! HTML-escaped.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handlebars::Handlebars;
use handlebars::template::{Parameter, TemplateElement};

use crate::json::NodeRef;
use crate::value::{Seg, Value, walk};

/// S3's limit on key length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest folder an event may render: the rest of a key is kept for the file name.
/// A longer one would fail the whole batch when the file is named, so the event is
/// rejected instead.
pub const MAX_FOLDER_BYTES: usize = MAX_KEY_BYTES - 256;

/// Why a folder or file name could not be made. Each displays as the message users get.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    #[error("invalid template: {0}")]
    InvalidTemplate(#[source] handlebars::TemplateError),
    #[error("filename_template failed: {0}")]
    RenderFailed(#[source] handlebars::RenderError),
    #[error("filename_template rendered an empty file name (from {rendered:?})")]
    EmptyFileName { rendered: String },
    #[error(
        "object key is {len} bytes, over S3's limit of {MAX_KEY_BYTES}; shorten the folder or file name"
    )]
    KeyTooLong { len: usize },
}

/// The source id `{{source_id}}` renders when the settings give none.
pub const DEFAULT_SOURCE_ID: &str = "local";

/// Helpers of folder and filename templates for time-based layouts: `{{format_time PATH
/// "FORMAT"}}` (an event time in strftime words, UTC), `{{received_day}}` (Segment
/// classic's day folder: Unix milliseconds of the UTC midnight of `receivedAt`) and
/// `{{source_id}}`.
pub const HELPERS: &[&str] = &["format_time", "received_day", "source_id"];

/// The key filename templates find the batch's first event under, so that helpers read the
/// event's fields even where a batch variable (`timestamp`) has the same name.
const EVENT_KEY: &str = "__event";

fn registry(source_id: &str) -> Handlebars<'static> {
    use handlebars::{Context, Helper, HelperResult, Output, RenderContext, RenderErrorReason};
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.set_strict_mode(false);
    let id = source_id.to_string();
    hb.register_helper(
        "source_id",
        Box::new(
            move |_: &Helper,
                  _: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output|
                  -> HelperResult {
                out.write(&id)?;
                Ok(())
            },
        ),
    );
    hb.register_helper(
        "received_day",
        Box::new(
            |_: &Helper,
             _: &Handlebars,
             ctx: &Context,
             _: &mut RenderContext,
             out: &mut dyn Output|
             -> HelperResult {
                let data = ctx.data();
                let event = data.get(EVENT_KEY).unwrap_or(data);
                let day = received_day(|k| event.get(k).map(json_time_text));
                out.write(&day.to_string())?;
                Ok(())
            },
        ),
    );
    hb.register_helper(
        "format_time",
        Box::new(
            |h: &Helper, _: &Handlebars, ctx: &Context, _: &mut RenderContext, out: &mut dyn Output| -> HelperResult {
                let (Some(value), Some(format)) = (h.param(0), h.param(1)) else {
                    return Err(RenderErrorReason::Other(
                        "format_time needs an event time and a format: {{format_time timestamp \"%Y-%m-%d\"}}".into(),
                    )
                    .into());
                };
                let format = format.value().as_str().unwrap_or_default();
                // In filename templates, a path reads the batch's first event.
                let from_event = value.relative_path().and_then(|p| {
                    let mut v = ctx.data().get(EVENT_KEY)?;
                    for seg in p.split('.') {
                        v = v.get(seg)?;
                    }
                    Some(v)
                });
                let text = json_time_text(from_event.unwrap_or(value.value()));
                if let Some(t) = text.as_deref().and_then(event_time) {
                    out.write(&crate::expr::strftime(&t, format))?;
                }
                Ok(())
            },
        ),
    );
    hb
}

/// A JSON value's time text: strings as they are, numbers (epoch milliseconds) as digits.
fn json_time_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An event time from ISO-8601 text or epoch milliseconds.
pub fn event_time(text: &str) -> Option<time::OffsetDateTime> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        let ms: i64 = t.parse().ok()?;
        return time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
    }
    crate::text::parse_iso_time(t)
}

/// Unix milliseconds of the UTC midnight of the day the event was received: its
/// `receivedAt`, else its `timestamp`, else today (an event that carries neither is being
/// received now).
fn received_day(field: impl Fn(&str) -> Option<Option<String>>) -> i64 {
    let t = ["receivedAt", "timestamp"]
        .iter()
        .find_map(|k| field(k).flatten().as_deref().and_then(event_time))
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let midnight = t.replace_time(time::Time::MIDNIGHT);
    (midnight.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Clone, Debug)]
enum Part {
    Lit(String),
    Var(Vec<Seg>),
    /// `{{format_time PATH "FORMAT"}}`
    FormatTime(Vec<Seg>, String),
    /// `{{received_day}}`
    ReceivedDay,
    /// `{{source_id}}`
    SourceId,
}

/// One of [`HELPERS`] in the form the per-event fast path renders, if `el` is one.
fn helper_part(el: &TemplateElement) -> Option<Part> {
    let TemplateElement::Expression(h) = el else {
        return None;
    };
    if h.block || !h.hash.is_empty() {
        return None;
    }
    let name = match &h.name {
        Parameter::Name(n) => n.as_str(),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => raw.as_str(),
        _ => return None,
    };
    match (name, h.params.as_slice()) {
        ("received_day", []) => Some(Part::ReceivedDay),
        ("source_id", []) => Some(Part::SourceId),
        ("format_time", [path, Parameter::Literal(serde_json::Value::String(format))]) => {
            let path = match path {
                Parameter::Name(n) => n.clone(),
                Parameter::Path(handlebars::Path::Relative((segs, raw)))
                    if segs
                        .iter()
                        .all(|s| matches!(s, handlebars::PathSeg::Named(_))) =>
                {
                    raw.clone()
                }
                _ => return None,
            };
            Some(Part::FormatTime(segs_of(&path), format.clone()))
        }
        _ => None,
    }
}

fn segs_of(path: &str) -> Vec<Seg> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(Seg::new)
        .collect()
}

/// The per-event folder template (`s3_aws_folder_name`).
pub struct FolderTemplate {
    source: String,
    /// What `{{source_id}}` renders.
    source_id: String,
    /// `Some` for templates made of text and plain placeholders only.
    parts: Option<Vec<Part>>,
    engine: Option<Handlebars<'static>>,
}

impl fmt::Debug for FolderTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderTemplate({:?})", self.source)
    }
}

/// The plain placeholder path of an expression element, if that is all it is.
fn simple_path(el: &TemplateElement) -> Option<String> {
    let h = match el {
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => h,
        _ => return None,
    };
    if !h.params.is_empty() || !h.hash.is_empty() || h.block {
        return None;
    }
    let path = match &h.name {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(handlebars::Path::Relative((segs, raw))) => segs
            .iter()
            .all(|s| matches!(s, handlebars::PathSeg::Named(_)))
            .then(|| raw.clone()),
        _ => None,
    };
    path.filter(|p| !HELPERS.contains(&p.as_str()))
}

fn compile_parts(src: &str) -> Result<Option<Vec<Part>>, handlebars::TemplateError> {
    let t = handlebars::template::Template::compile(src)?;
    let mut parts = Vec::new();
    for el in &t.elements {
        match el {
            TemplateElement::RawString(s) => parts.push(Part::Lit(s.clone())),
            TemplateElement::Comment(_) => {}
            other => match (simple_path(other), helper_part(other)) {
                (Some(p), _) => parts.push(Part::Var(segs_of(&p))),
                (None, Some(helper)) => parts.push(helper),
                (None, None) => return Ok(None),
            },
        }
    }
    Ok(Some(parts))
}

impl FolderTemplate {
    pub fn compile(src: &str) -> Result<FolderTemplate, NamingError> {
        FolderTemplate::compile_with(src, DEFAULT_SOURCE_ID)
    }

    /// [`FolderTemplate::compile`] with the value of `{{source_id}}`.
    pub fn compile_with(src: &str, source_id: &str) -> Result<FolderTemplate, NamingError> {
        let parts = compile_parts(src).map_err(NamingError::InvalidTemplate)?;
        let engine = match parts {
            Some(_) => None,
            None => {
                let mut hb = registry(source_id);
                hb.register_template_string("folder", src)
                    .map_err(NamingError::InvalidTemplate)?;
                Some(hb)
            }
        };
        Ok(FolderTemplate {
            source: src.to_string(),
            source_id: source_id.to_string(),
            parts,
            engine,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The folder when it does not depend on the event.
    pub fn constant(&self) -> Option<String> {
        let parts = self.parts.as_ref()?;
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::SourceId => out.push_str(&self.source_id),
                Part::Var(_) | Part::FormatTime(..) | Part::ReceivedDay => return None,
            }
        }
        Some(folder_from_rendered(&out))
    }

    /// The folders before the template's first variable (`segment-logs/` for
    /// `segment-logs/{{source_id}}/{{received_day}}/`): the prefix every file of the mapping
    /// shares, where `check` puts its test object.
    pub fn fixed_prefix(&self) -> String {
        let Some(parts) = &self.parts else {
            let upto = self.source.find("{{").unwrap_or(self.source.len());
            return folder_prefix(&self.source[..upto]);
        };
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(_) | Part::FormatTime(..) | Part::ReceivedDay | Part::SourceId => {
                    return folder_prefix(&out);
                }
            }
        }
        folder_from_rendered(&out)
    }

    /// Renders the folder for one event into `out` (cleared first): sanitised, and ending in
    /// `/` unless empty.
    pub fn render_into(&self, event: NodeRef<'_>, out: &mut String, scratch: &mut String) {
        scratch.clear();
        match (&self.parts, &self.engine) {
            (Some(parts), _) => {
                let root = Value::Node(event);
                for p in parts {
                    match p {
                        Part::Lit(s) => scratch.push_str(s),
                        Part::Var(segs) => {
                            let v = walk(&root, segs);
                            if !v.is_nullish() {
                                scratch.push_str(&v.to_js_string());
                            }
                        }
                        Part::SourceId => scratch.push_str(&self.source_id),
                        Part::ReceivedDay => {
                            let day = received_day(|k| {
                                let v = walk(&root, &[Seg::new(k)]);
                                Some((!v.is_nullish()).then(|| v.to_js_string().into_owned()))
                            });
                            scratch.push_str(itoa::Buffer::new().format(day));
                        }
                        Part::FormatTime(segs, format) => {
                            let v = walk(&root, segs);
                            if !v.is_nullish()
                                && let Some(t) = event_time(&v.to_js_string())
                            {
                                scratch.push_str(&crate::expr::strftime(&t, format));
                            }
                        }
                    }
                }
            }
            (None, Some(hb)) => {
                let json = Value::Node(event).to_serde();
                if let Ok(s) = hb.render("folder", &json) {
                    scratch.push_str(&s);
                }
            }
            (None, None) => {}
        }
        out.clear();
        out.push_str(&folder_from_rendered(scratch));
    }
}

/// Cleans a rendered key or folder: no leading `/`, no empty, `.` or `..` segments, no
/// control characters.
pub fn sanitize_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for seg in raw.split('/') {
        let clean: String = seg.chars().filter(|c| !c.is_control()).collect();
        if clean.is_empty() || clean == "." || clean == ".." {
            continue;
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&clean);
    }
    out
}

/// The folders of a cleaned prefix: up to its last `/` (`a/b/c` → `a/b/`).
fn folder_prefix(raw: &str) -> String {
    let clean = sanitize_key(raw);
    let cut = if raw.ends_with('/') {
        clean.len()
    } else {
        clean.rfind('/').unwrap_or(0)
    };
    folder_from_rendered(&clean[..cut])
}

fn folder_from_rendered(raw: &str) -> String {
    let mut f = sanitize_key(raw);
    if !f.is_empty() {
        f.push('/');
    }
    f
}

/// A batch's creation time. Every batch of a process gets a distinct millisecond, so keys
/// built from it never collide, even for batches closed in the same millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchTime {
    pub millis: u64,
}

impl BatchTime {
    pub fn next() -> BatchTime {
        static LAST: Mutex<u64> = Mutex::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let t = now.max(*last + 1);
        *last = t;
        BatchTime { millis: t }
    }

    fn datetime(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.millis as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// `new Date().toISOString()` with `:` and `.` replaced by `-`, as Segment names files.
    pub fn segment_suffix(&self) -> String {
        let d = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}-{:03}Z",
            d.year(),
            d.month() as u8,
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.millisecond()
        )
    }
}

/// Everything a filename template can use.
pub struct BatchInfo<'a> {
    pub prefix: &'a str,
    pub extension: &'a str,
    pub time: BatchTime,
    pub event_type: &'a str,
    pub mapping: &'a str,
    pub part: u64,
    pub rows: u64,
    /// The batch's first event, when the template reads event fields.
    pub first_event: Option<&'a serde_json::Value>,
    /// Where the batch starts in a partitioned log (`consume`): the default name and the
    /// `kafka_*`/`start_offset` variables come from it.
    pub log: Option<&'a LogStart>,
}

/// The first row of a batch read from a partitioned log (Kafka): its topic, partition,
/// offset and record time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStart {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: u64,
    /// The first row's event within its message (a `{"batch": [...]}` message holds
    /// several): 0 unless a message's events fill more than one file.
    pub index: u32,
    /// The record's timestamp, ms since the epoch: the batch's time variables.
    pub time_ms: i64,
}

/// Filename variables whose value differs each time a batch is named: a batch rebuilt
/// from a log after a crash would get another key, so `consume` refuses them.
pub const NON_REPRODUCIBLE_VARIABLES: &[&str] = &["uuid", "part"];

/// How files are named (`filename_template`, or Segment's `<prefix>_<timestamp>.<ext>`).
pub enum FilenameTemplate {
    Segment,
    Template {
        source: String,
        engine: Box<Handlebars<'static>>,
        uses_event: bool,
    },
}

impl fmt::Debug for FilenameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilenameTemplate::Segment => write!(f, "FilenameTemplate::Segment"),
            FilenameTemplate::Template { source, .. } => write!(f, "FilenameTemplate({source:?})"),
        }
    }
}

/// Variables every filename template gets.
pub const FILENAME_VARIABLES: &[&str] = &[
    "prefix",
    "extension",
    "timestamp",
    "date",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "event_type",
    "mapping",
    "part",
    "rows",
    "uuid",
    "kafka_topic",
    "kafka_partition",
    "start_offset",
];

impl FilenameTemplate {
    pub fn compile(src: Option<&str>) -> Result<FilenameTemplate, NamingError> {
        FilenameTemplate::compile_with(src, DEFAULT_SOURCE_ID)
    }

    /// [`FilenameTemplate::compile`] with the value of `{{source_id}}`.
    pub fn compile_with(
        src: Option<&str>,
        source_id: &str,
    ) -> Result<FilenameTemplate, NamingError> {
        let Some(src) = src else {
            return Ok(FilenameTemplate::Segment);
        };
        let mut hb = registry(source_id);
        hb.register_template_string("filename", src)
            .map_err(NamingError::InvalidTemplate)?;
        // Does it read anything but the built-in variables? Then the batch keeps its first
        // event for rendering.
        let uses_event = match compile_parts(src) {
            Ok(Some(parts)) => parts.iter().any(|p| match p {
                Part::Var(segs) => segs
                    .first()
                    .is_none_or(|s| !FILENAME_VARIABLES.contains(&s.key.as_ref())),
                Part::FormatTime(..) | Part::ReceivedDay => true,
                Part::Lit(_) | Part::SourceId => false,
            }),
            _ => true,
        };
        Ok(FilenameTemplate::Template {
            source: src.to_string(),
            engine: Box::new(hb),
            uses_event,
        })
    }

    /// The first of [`NON_REPRODUCIBLE_VARIABLES`] the template reads, if any (a template
    /// with helpers counts as reading every name it mentions).
    pub fn non_reproducible(&self) -> Option<&'static str> {
        let FilenameTemplate::Template { source, .. } = self else {
            return None;
        };
        let words = |t: &str| -> Vec<String> {
            t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(str::to_string)
                .collect()
        };
        let mut mentioned = Vec::new();
        let mut rest = source.as_str();
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after.find("}}").unwrap_or(after.len());
            mentioned.extend(words(&after[..close]));
            rest = &after[close..];
        }
        NON_REPRODUCIBLE_VARIABLES
            .iter()
            .copied()
            .find(|v| mentioned.iter().any(|w| w == v))
    }

    pub fn uses_event(&self) -> bool {
        matches!(
            self,
            FilenameTemplate::Template {
                uses_event: true,
                ..
            }
        )
    }

    /// The file name of a batch (not yet joined with the folder).
    pub fn file_name(&self, info: &BatchInfo<'_>) -> Result<String, NamingError> {
        match self {
            FilenameTemplate::Segment => {
                let suffix = match info.log {
                    Some(l) if l.index > 0 => {
                        format!("{}-{}-{}-{}", l.topic, l.partition, l.offset, l.index)
                    }
                    Some(l) => format!("{}-{}-{}", l.topic, l.partition, l.offset),
                    None => info.time.segment_suffix(),
                };
                let ext = format!(".{}", info.extension);
                Ok(if let Some(base) = info.prefix.strip_suffix(&ext) {
                    format!("{base}_{suffix}{ext}")
                } else if info.prefix.is_empty() {
                    format!("{suffix}{ext}")
                } else {
                    format!("{}_{suffix}{ext}", info.prefix)
                })
            }
            FilenameTemplate::Template { engine, .. } => {
                let d = info.time.datetime();
                let mut ctx = match info.first_event {
                    Some(serde_json::Value::Object(m)) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                if let Some(e) = info.first_event {
                    ctx.insert(EVENT_KEY.to_string(), e.clone());
                }
                let vars = [
                    ("prefix", serde_json::json!(info.prefix)),
                    ("extension", serde_json::json!(info.extension)),
                    ("timestamp", serde_json::json!(info.time.segment_suffix())),
                    (
                        "date",
                        serde_json::json!(format!(
                            "{:04}-{:02}-{:02}",
                            d.year(),
                            d.month() as u8,
                            d.day()
                        )),
                    ),
                    ("year", serde_json::json!(format!("{:04}", d.year()))),
                    (
                        "month",
                        serde_json::json!(format!("{:02}", d.month() as u8)),
                    ),
                    ("day", serde_json::json!(format!("{:02}", d.day()))),
                    ("hour", serde_json::json!(format!("{:02}", d.hour()))),
                    ("minute", serde_json::json!(format!("{:02}", d.minute()))),
                    ("event_type", serde_json::json!(info.event_type)),
                    ("mapping", serde_json::json!(info.mapping)),
                    ("part", serde_json::json!(info.part)),
                    ("rows", serde_json::json!(info.rows)),
                    ("uuid", serde_json::json!(uuid::Uuid::new_v4().to_string())),
                ];
                for (k, v) in vars {
                    ctx.insert(k.to_string(), v);
                }
                if let Some(l) = info.log {
                    ctx.insert("kafka_topic".into(), serde_json::json!(&*l.topic));
                    ctx.insert("kafka_partition".into(), serde_json::json!(l.partition));
                    ctx.insert("start_offset".into(), serde_json::json!(l.offset));
                }
                let rendered = engine
                    .render("filename", &serde_json::Value::Object(ctx))
                    .map_err(NamingError::RenderFailed)?;
                let clean = sanitize_key(&rendered);
                if clean.is_empty() {
                    return Err(NamingError::EmptyFileName { rendered });
                }
                Ok(clean)
            }
        }
    }
}

/// `folder + filename`, checked against S3's key length limit.
pub fn object_key(folder: &str, filename: &str) -> Result<String, NamingError> {
    let key = format!("{folder}{filename}");
    if key.len() > MAX_KEY_BYTES {
        return Err(NamingError::KeyTooLong { len: key.len() });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Tape;

    fn folder(t: &str, event: &str) -> String {
        let ft = FolderTemplate::compile(t).unwrap();
        let mut tape = Tape::new();
        let root = tape.parse(event).unwrap();
        let (mut out, mut scratch) = (String::new(), String::new());
        ft.render_into(root, &mut out, &mut scratch);
        out
    }

    /// Event-time folders (Hive-style), Segment classic's received day, the source id; the
    /// fast path and the engine (a block around them) render the same.
    #[test]
    fn time_helpers_in_folders() {
        let e = r#"{"type":"track","timestamp":"2026-11-01T07:30:00.250+01:00","receivedAt":"2026-11-02T00:00:01.000Z"}"#;
        let hive =
            r#"t/dt={{format_time timestamp "%Y-%m-%d"}}/hour={{format_time timestamp "%H"}}/"#;
        assert_eq!(folder(hive, e), "t/dt=2026-11-01/hour=06/");
        assert_eq!(
            folder(&format!("{{{{#if type}}}}{hive}{{{{/if}}}}"), e),
            "t/dt=2026-11-01/hour=06/"
        );
        let classic = "segment-logs/{{source_id}}/{{received_day}}/";
        assert_eq!(folder(classic, e), "segment-logs/local/1793577600000/");
        let ft = FolderTemplate::compile_with(classic, "src_1").unwrap();
        assert_eq!(ft.fixed_prefix(), "segment-logs/");
        assert!(ft.constant().is_none());
        // No receivedAt: the timestamp's day; epoch milliseconds work too.
        assert_eq!(
            folder(classic, r#"{"timestamp":1793491200001}"#),
            "segment-logs/local/1793491200000/"
        );
        // Not a time: nothing rendered.
        assert_eq!(folder(hive, r#"{"timestamp":"soon"}"#), "t/dt=/hour=/");
        assert_eq!(
            FolderTemplate::compile("a/b").unwrap().fixed_prefix(),
            "a/b/"
        );
        assert_eq!(
            FolderTemplate::compile("a/x-{{type}}/c")
                .unwrap()
                .fixed_prefix(),
            "a/"
        );
    }

    /// In filename templates the helpers read the batch's first event, even where a batch
    /// variable has the same name (`timestamp`).
    #[test]
    fn time_helpers_in_filenames() {
        let event = serde_json::json!({"timestamp": "2026-11-01T07:30:00Z", "receivedAt": "2026-11-01T07:30:01.5Z"});
        let f = FilenameTemplate::compile_with(
            Some(r#"{{source_id}}/{{format_time timestamp "%Y%m%d"}}-{{format_time receivedAt "%s%L"}}-{{received_day}}.{{extension}}"#),
            "src_9",
        )
        .unwrap();
        assert!(f.uses_event());
        let info = BatchInfo {
            prefix: "",
            extension: "json",
            time: BatchTime { millis: 0 },
            event_type: "",
            mapping: "m",
            part: 1,
            rows: 1,
            first_event: Some(&event),
            log: None,
        };
        assert_eq!(
            f.file_name(&info).unwrap(),
            "src_9/20261101-1793518201500-1793491200000.json"
        );
    }

    #[test]
    fn folders() {
        let e = r#"{"type":"track","context":{"personas":{"computation_key":"vip"}},"n":1.50}"#;
        assert_eq!(folder("exports/{{type}}/", e), "exports/track/");
        assert_eq!(folder("exports/{{type}}", e), "exports/track/");
        assert_eq!(
            folder("audiences/{{context.personas.computation_key}}/", e),
            "audiences/vip/"
        );
        assert_eq!(folder("audiences/{{missing}}/x", e), "audiences/x/");
        assert_eq!(folder("", e), "");
        assert_eq!(folder("/../a/./b//{{n}}", e), "a/b/1.5/");
        assert_eq!(folder("{{#if n}}big{{else}}small{{/if}}", e), "big/");
        assert_eq!(folder("a&b<{{type}}>", e), "a&b<track>/");
        assert_eq!(
            FolderTemplate::compile("x/{{type}}").unwrap().constant(),
            None
        );
        assert_eq!(
            FolderTemplate::compile("x/y")
                .unwrap()
                .constant()
                .as_deref(),
            Some("x/y/")
        );
        let err = FolderTemplate::compile("{{#if}}").unwrap_err();
        assert!(matches!(err, NamingError::InvalidTemplate(_)));
        assert!(std::error::Error::source(&err).is_some());
        assert!(
            err.to_string()
                .starts_with("invalid template: Template error: ")
        );
    }

    #[test]
    fn segment_filenames() {
        let t = BatchTime {
            millis: 1_795_342_530_123,
        };
        assert_eq!(t.segment_suffix(), "2026-11-22T10-15-30-123Z");
        let info = |prefix: &'static str, ext: &'static str| BatchInfo {
            prefix,
            extension: ext,
            time: t,
            event_type: "track",
            mapping: "m",
            part: 1,
            rows: 2,
            first_event: None,
            log: None,
        };
        let f = FilenameTemplate::Segment;
        assert_eq!(
            f.file_name(&info("segment", "csv")).unwrap(),
            "segment_2026-11-22T10-15-30-123Z.csv"
        );
        assert_eq!(
            f.file_name(&info("", "txt")).unwrap(),
            "2026-11-22T10-15-30-123Z.txt"
        );
        assert_eq!(
            f.file_name(&info("csv_export.csv", "csv")).unwrap(),
            "csv_export_2026-11-22T10-15-30-123Z.csv"
        );
        assert_eq!(
            f.file_name(&info("x.csv", "txt")).unwrap(),
            "x.csv_2026-11-22T10-15-30-123Z.txt"
        );
    }

    #[test]
    fn filename_templates() {
        let t = BatchTime {
            millis: 1_795_342_530_123,
        };
        let ev =
            serde_json::json!({"type": "track", "timestamp": "ignored", "context": {"k": "v"}});
        let info = BatchInfo {
            prefix: "p",
            extension: "csv",
            time: t,
            event_type: "track",
            mapping: "events",
            part: 3,
            rows: 10,
            first_event: Some(&ev),
            log: None,
        };
        let f = FilenameTemplate::compile(Some("{{year}}/{{month}}/{{day}}/{{mapping}}-{{part}}-{{rows}}-{{context.k}}-{{timestamp}}.{{extension}}")).unwrap();
        assert!(f.uses_event());
        assert_eq!(
            f.file_name(&info).unwrap(),
            "2026/11/22/events-3-10-v-2026-11-22T10-15-30-123Z.csv"
        );
        let f = FilenameTemplate::compile(Some("{{prefix}}_{{uuid}}.{{extension}}")).unwrap();
        assert!(!f.uses_event());
        assert_eq!(f.file_name(&info).unwrap().len(), "p_.csv".len() + 36);
    }

    #[test]
    fn key_length() {
        assert_eq!(object_key("a/", "b").unwrap(), "a/b");
        let err = object_key(&"a".repeat(1000), &"b".repeat(100)).unwrap_err();
        assert!(matches!(err, NamingError::KeyTooLong { len: 1100 }));
        assert_eq!(
            object_key(&"a".repeat(1000), &"b".repeat(100))
                .unwrap_err()
                .to_string(),
            err.to_string()
        );
    }

    #[test]
    fn batch_times_are_unique() {
        let a = BatchTime::next();
        let b = BatchTime::next();
        let c = BatchTime::next();
        assert!(a.millis < b.millis && b.millis < c.millis);
    }
    #[test]
    fn names_from_a_log() {
        let log = LogStart {
            topic: "events".into(),
            partition: 3,
            offset: 10500,
            index: 0,
            time_ms: 1_795_342_530_123,
        };
        let info = BatchInfo {
            prefix: "segment",
            extension: "csv",
            time: BatchTime {
                millis: 1_795_342_530_123,
            },
            event_type: "track",
            mapping: "m",
            part: 1,
            rows: 1,
            first_event: None,
            log: Some(&log),
        };
        assert_eq!(
            FilenameTemplate::Segment.file_name(&info).unwrap(),
            "segment_events-3-10500.csv"
        );
        let t = FilenameTemplate::compile(Some(
            "{{kafka_topic}}/{{kafka_partition}}/{{start_offset}}-{{date}}.csv",
        ))
        .unwrap();
        assert_eq!(t.file_name(&info).unwrap(), "events/3/10500-2026-11-22.csv");
        assert_eq!(t.non_reproducible(), None);
        let second = LogStart {
            index: 2,
            ..log.clone()
        };
        let info = BatchInfo {
            log: Some(&second),
            ..info
        };
        assert_eq!(
            FilenameTemplate::Segment.file_name(&info).unwrap(),
            "segment_events-3-10500-2.csv"
        );
        for (src, var) in [
            ("{{uuid}}.csv", Some("uuid")),
            ("x-{{ part }}.csv", Some("part")),
            ("{{#if uuid}}a{{/if}}.csv", Some("uuid")),
            ("{{properties.partner}}.csv", None),
        ] {
            let t = FilenameTemplate::compile(Some(src)).unwrap();
            assert_eq!(t.non_reproducible(), var, "{src}");
        }
    }
}
