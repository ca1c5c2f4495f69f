//! The encode stage: rows in a file format ([`Format`]), and file layers ([`layer`]) on the
//! sealed file's bytes.
//!
//! A format sees one event at a time and appends its row to a buffer; it never sees the
//! whole [`Mapping`](crate::mapping::Mapping), only its [`RowLayout`]. Layers (a format's
//! conversion, compression, encryption) work on bytes and know nothing of rows, so any
//! format composes with any layer.
//!
//! A new format is a sibling module of [`csv`] implementing [`Format`], chosen in
//! [`format_for`].

pub mod csv;
mod gzip_blocks;
mod hashing;
pub mod layer;
pub mod ndjson;
pub mod parquet;

pub use crate::mapping::{ColumnTransform, HashAlgorithm, Normalize};
pub use csv::{Csv, write_quoted, write_text};
pub use hashing::is_sha256_hex;

use crate::expr::{EvalError, Found, Memo, Plan, Steps, Value, eval};
use crate::mapping::{FileFormat, Mapping, RowLayout};

/// A row could not be built for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column:?}: {message}")]
pub struct RowError {
    pub column: String,
    pub message: String,
}

/// How the rows of one mapping are written into a file.
///
/// Rows are written as if the batch were full: every row may end with a field that depends
/// on the batch's final row count (Segment's batch-size column). A batch that closes early
/// replaces that tail in place ([`Format::batch_size_fix`]), which is why file layers run
/// only after a batch is sealed.
pub trait Format: Send + Sync {
    /// The bytes every file starts with (CSV: the header line, without its line break).
    fn header(&self) -> &[u8];

    /// The bytes every file ends with, after its last row.
    fn footer(&self) -> &[u8] {
        &[]
    }

    /// Appends the row for `event` to `out`, with its separator (CSV rows start with their
    /// line break, after the header; NDJSON and Parquet's cell lines end with it), ending with
    /// the batch-size field of a full batch (and that separator). On error `out` is left as
    /// it was.
    fn encode_row<'a>(
        &self,
        scratch: &mut Encoder,
        event: &Value<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError>;

    /// For a batch that closes with `rows` rows instead of a full batch: the tail every row
    /// ends with, and what replaces it. `None` when the rows stay as they are.
    fn batch_size_fix(&self, rows: u64) -> Option<TailFix>;

    /// The object's Content-Type.
    fn content_type(&self) -> &'static str;

    /// The cells of the single row of `file` (a file this format wrote), by column name,
    /// for people reading a preview.
    fn cells(&self, file: &[u8]) -> Vec<(String, String)>;
}

/// The end of every row of a batch, rewritten once its row count is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailFix {
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

impl TailFix {
    /// Rewrites one row held in memory (a preview's single row).
    pub fn apply(&self, row: &mut Vec<u8>) {
        if row.ends_with(&self.old) {
            row.truncate(row.len() - self.old.len());
            row.extend_from_slice(&self.new);
        }
    }
}

/// The format of a mapping's files, built once per run.
pub fn format_for(m: &Mapping) -> Box<dyn Format + '_> {
    let content_type = m.extension.content_type();
    match m.format {
        FileFormat::Csv => Box::new(Csv::with_options(
            &m.row,
            m.batch_size,
            content_type,
            &m.csv,
        )),
        FileFormat::Ndjson if m.raw => Box::new(ndjson::RawNdjson::new(content_type)),
        FileFormat::Ndjson => Box::new(ndjson::Ndjson::new(&m.row, m.batch_size, content_type)),
        FileFormat::Parquet => Box::new(parquet::ParquetRows::new(&m.row, m.batch_size)),
    }
}

/// Per-worker buffers for encoding rows, reused from row to row.
#[derive(Default)]
pub struct Encoder {
    pub(crate) scratch: Vec<u8>,
    pub(crate) text: String,
    /// The current event's path steps (see [`Steps`]).
    pub(crate) memo: Memo,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }
}

/// Evaluates an expression, through its plan when it has one and the payload is the event.
pub(crate) fn eval_planned<'a>(
    expr: &'a crate::expr::Expr,
    plan: Option<&Plan>,
    event: &Value<'a>,
    steps: &Steps,
    memo: &mut Memo,
) -> Result<Value<'a>, EvalError> {
    if let (Some(plan), Value::Node(root)) = (plan, event) {
        match plan.run_memo(*root, steps, memo) {
            Found::Node(n) => return Ok(Value::Node(n)),
            Found::Undefined => return Ok(Value::Undefined),
            Found::Other => {}
        }
    }
    eval(expr, event)
}

/// Segment's audience action: `traits_or_props[computation_key]`, when both are truthy.
/// `memo` holds this event's path steps (reset for each event).
pub fn audience_action<'a>(
    row: &'a RowLayout,
    event: &Value<'a>,
    memo: &mut Memo,
) -> Result<Value<'a>, EvalError> {
    let plan = row.traits_or_props_plan.as_ref();
    let source = eval_planned(&row.traits_or_props, plan, event, &row.steps, memo)?;
    if !source.is_truthy() {
        return Ok(Value::Undefined);
    }
    let plan = row.computation_key_plan.as_ref();
    let key = eval_planned(&row.computation_key, plan, event, &row.steps, memo)?;
    if !key.is_truthy() {
        return Ok(Value::Undefined);
    }
    let key = key.to_js_string();
    let seg = crate::expr::Seg::new(&key);
    Ok(source.member(&seg.key, seg.index))
}
