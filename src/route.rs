//! The routing step: one event through one mapping gives a row in a partition, or a reject
//! with its reason, or nothing (the trigger did not match).
//!
//! It is the only place where trigger, folder and row meet, and the workers, `preview` and
//! `check` all go through it, so what a preview shows is what a run writes, reject reasons
//! included.

use crate::encode::layer::{FileLayer, layers_for};
use crate::encode::{Encoder, Format, format_for};
use crate::json::{Kind, NodeRef, Tape};
use crate::mapping::{Config, Mapping};
use crate::naming::{MAX_FOLDER_BYTES, MAX_KEY_BYTES};

/// Decodes one input record into an event (a JSON object), or says why it is not one.
///
/// `checked` is the record as text when the caller already knows it is valid UTF-8 (a whole
/// chunk checked at once); otherwise `bytes` is checked here.
pub fn decode<'t>(
    tape: &'t mut Tape,
    bytes: &'t [u8],
    checked: Option<&'t str>,
) -> Result<NodeRef<'t>, String> {
    let text = match checked {
        Some(t) => t,
        None => std::str::from_utf8(bytes).map_err(|e| {
            format!(
                "not valid UTF-8 (byte {} of the record)",
                e.valid_up_to() + 1
            )
        })?,
    };
    let root = tape.parse(text).map_err(|e| {
        let (l, c) = e.line_col(bytes);
        // A line of NDJSON is one record: its column is enough. Records spanning lines
        // (arrays, pretty-printed objects) say which line.
        let at = if l == 1 {
            format!("column {c}")
        } else {
            format!("line {l} of the event, column {c}")
        };
        format!("invalid JSON at {at}: {}", e.message)
    })?;
    if root.kind() != Kind::Object {
        let kind = format!("{:?}", root.kind()).to_lowercase();
        let article = if kind == "array" || kind == "object" {
            "an"
        } else {
            "a"
        };
        return Err(format!(
            "not a JSON object (it is {article} {kind}); each event must be an object"
        ));
    }
    Ok(root)
}

/// Where the routing step puts rows: the buffer of a partition.
pub trait RowTarget {
    /// The buffer that collects rows of this partition; a row is appended at its end.
    /// `interval` is the row's [`batch_interval`](crate::mapping::Mapping::batch_interval)
    /// number (0 without one): rows of different intervals never share a file.
    fn buffer(
        &mut self,
        mapping: usize,
        event_type: &str,
        folder: &str,
        interval: u64,
    ) -> &mut Vec<u8>;
    /// The row just appended to the buffer last returned is complete.
    fn row_written(&mut self);
}

/// What one mapping did with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// The trigger did not match.
    NotMatched,
    /// A row went to the target.
    Row,
    /// The trigger matched but no row could be made: the reason, as the rejects file says.
    Rejected(String),
}

/// What a run needs of each mapping, built once: its format, its file layers, and its
/// folder when the folder does not depend on the event.
pub struct Routes<'c> {
    pub config: &'c Config,
    formats: Vec<Box<dyn Format + 'c>>,
    layers: Vec<Vec<Box<dyn FileLayer>>>,
    constant_folders: Vec<Option<String>>,
}

impl<'c> Routes<'c> {
    pub fn new(config: &'c Config) -> Routes<'c> {
        Routes {
            config,
            formats: config.mappings.iter().map(format_for).collect(),
            layers: config.mappings.iter().map(layers_for).collect(),
            constant_folders: config
                .mappings
                .iter()
                .map(|m| m.folder.constant())
                .collect(),
        }
    }

    pub fn mapping(&self, i: usize) -> &'c Mapping {
        &self.config.mappings[i]
    }

    pub fn format(&self, i: usize) -> &(dyn Format + 'c) {
        self.formats[i].as_ref()
    }

    /// The file layers of mapping `i`'s files, in the order they apply.
    pub fn layers(&self, i: usize) -> &[Box<dyn FileLayer>] {
        &self.layers[i]
    }
}

/// A worker's routing state: the compiled routes and buffers reused from event to event.
pub struct Router<'r, 'c> {
    routes: &'r Routes<'c>,
    encoder: Encoder,
    folder: String,
    scratch: String,
}

impl<'r, 'c> Router<'r, 'c> {
    pub fn new(routes: &'r Routes<'c>) -> Router<'r, 'c> {
        Router {
            routes,
            encoder: Encoder::new(),
            folder: String::new(),
            scratch: String::new(),
        }
    }

    /// Routes `event` through mapping `mi`: trigger, event type, folder, row.
    pub fn route(&mut self, mi: usize, event: NodeRef<'_>, target: &mut dyn RowTarget) -> Routed {
        let Router {
            routes,
            encoder,
            folder,
            scratch,
        } = self;
        let m = routes.mapping(mi);
        if !m.trigger.matches(event) {
            return Routed::NotMatched;
        }
        let type_cow = event.get("type").and_then(|t| t.as_str());
        // `split_by_event_type: false`: every type the mapping takes shares its files.
        let event_type = match m.split_by_event_type {
            true => type_cow.as_deref().unwrap_or(""),
            false => "",
        };
        let folder: &str = match &routes.constant_folders[mi] {
            Some(f) => f,
            None => match render_folder(m, event, folder, scratch) {
                Ok(f) => f,
                Err(why) => return Routed::Rejected(why.to_string()),
            },
        };
        let interval = m.batch_interval.map_or(0, |i| interval_of(event, i));
        let buffer = target.buffer(mi, event_type, folder, interval);
        match routes.formats[mi].encode_row(encoder, &crate::expr::Value::Node(event), buffer) {
            Ok(()) => {
                target.row_written();
                Routed::Row
            }
            Err(e) => Routed::Rejected(e.to_string()),
        }
    }

    /// The folder `event` goes to in mapping `mi` (checked as a run checks it).
    pub fn folder(&mut self, mi: usize, event: NodeRef<'_>) -> Result<String, FolderTooLong> {
        let m = self.routes.mapping(mi);
        match &self.routes.constant_folders[mi] {
            Some(f) => Ok(f.clone()),
            None => render_folder(m, event, &mut self.folder, &mut self.scratch).map(str::to_owned),
        }
    }
}

/// The number of the UTC-aligned interval (`batch_interval`) the event falls in: by its
/// `receivedAt`, else its `timestamp` (ISO-8601 or epoch milliseconds), else now (an event
/// that carries neither is being received now, as for `{{received_day}}`).
fn interval_of(event: NodeRef<'_>, interval: std::time::Duration) -> u64 {
    let ms = ["receivedAt", "timestamp"]
        .iter()
        .find_map(|k| {
            let text = event.get(k)?.as_str()?;
            crate::naming::event_time(&text)
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc)
        .unix_timestamp_nanos()
        / 1_000_000;
    let step = interval.as_millis().max(1) as i128;
    u64::try_from(ms.max(0) / step).unwrap_or(0)
}

/// Renders a per-event folder; one too long for an S3 key rejects the event alone.
fn render_folder<'s>(
    m: &Mapping,
    event: NodeRef<'_>,
    folder: &'s mut String,
    scratch: &mut String,
) -> Result<&'s str, FolderTooLong> {
    m.folder.render_into(event, folder, scratch);
    if folder.len() > MAX_FOLDER_BYTES {
        return Err(FolderTooLong {
            bytes: folder.len(),
        });
    }
    Ok(folder)
}

/// A folder rendered for one event is too long for an S3 key: that event is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "s3_aws_folder_name renders to {bytes} bytes for this event, over the {MAX_FOLDER_BYTES} a folder may take of S3's {MAX_KEY_BYTES}-byte key limit"
)]
pub struct FolderTooLong {
    pub bytes: usize,
}

/// A target that keeps the one row routed into it (previews).
#[derive(Debug, Default)]
pub struct SingleRow {
    pub event_type: String,
    pub folder: String,
    pub row: Vec<u8>,
}

impl RowTarget for SingleRow {
    fn buffer(
        &mut self,
        _mapping: usize,
        event_type: &str,
        folder: &str,
        _interval: u64,
    ) -> &mut Vec<u8> {
        self.event_type = event_type.to_string();
        self.folder = folder.to_string();
        self.row.clear();
        &mut self.row
    }

    fn row_written(&mut self) {}
}
