//! Warehouse tables as a source (self-hosted Reverse ETL): each model's query result is
//! compared with the previous run's snapshot by its identifier column, and every difference
//! becomes a `track` event named `new`, `updated` or `deleted`, shaped as Segment's Reverse
//! ETL sends them, for the mappings to turn into files as usual.
//!
//! * [`Warehouse`] is what a warehouse implements: stream a model's rows as [`Cell`]s
//!   ([`postgres`] today; Snowflake, BigQuery, Redshift and Databricks are planned behind
//!   the same trait).
//! * [`diff`] compares the rows with the snapshot as they stream in, writes the events to a
//!   spool file and prepares the next snapshot (a versioned state file, see
//!   [`crate::state`]), so nothing is sent when a model cannot be read whole (duplicate or
//!   NULL identifiers, an unsupported column type).
//! * [`RetlSource`] hands the spooled events to the run and commits each model's snapshot
//!   only once all its events are durable (the acknowledgement path), so a run that fails
//!   or is killed sends the same differences again next time and never skips one.

pub mod diff;
pub mod postgres;
mod source;
pub mod tls;

pub use diff::{DiffReport, Diffed, SNAPSHOT_KIND, SNAPSHOT_VERSION, diff_model, snapshot_path};
pub use source::{Commits, RetlSource};

use crate::mapping::Model;

/// One value of a row, as the events carry it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float32(f32),
    Float(f64),
    /// A decimal as its exact text (a JSON number).
    Numeric(String),
    /// Text, and what is sent as text: UUIDs, dates and timestamps (ISO-8601).
    Text(String),
    Json(serde_json::Value),
    Array(Vec<Cell>),
}

impl Cell {
    /// Appends the value as JSON (non-finite floats and numerics as `null`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null => out.extend_from_slice(b"null"),
            Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Cell::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Cell::Float32(f) if f.is_finite() => {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(*f).as_bytes())
            }
            Cell::Float(f) if f.is_finite() => {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(*f).as_bytes())
            }
            Cell::Float32(_) | Cell::Float(_) => out.extend_from_slice(b"null"),
            Cell::Numeric(n) => out.extend_from_slice(n.as_bytes()),
            Cell::Text(s) => {
                serde_json::to_writer(&mut *out, s.as_str()).expect("writing to a Vec")
            }
            Cell::Json(v) => serde_json::to_writer(&mut *out, v).expect("writing to a Vec"),
            Cell::Array(items) => {
                out.push(b'[');
                for (i, c) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    c.write_json(out);
                }
                out.push(b']');
            }
        }
    }

    /// The value as a `userId`/`anonymousId` string: text as it is, anything else as its
    /// JSON; `None` for NULL.
    pub fn id_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(s) => Some(s.clone()),
            other => {
                let mut b = Vec::new();
                other.write_json(&mut b);
                Some(String::from_utf8_lossy(&b).into_owned())
            }
        }
    }
}

/// Receives a model's result: the column names once, then every row in order.
pub trait RowSink {
    fn columns(&mut self, names: &[String]) -> Result<(), WarehouseError>;
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError>;
}

/// A warehouse: streams a model's query result (never holding it whole).
pub trait Warehouse {
    fn stream(&mut self, model: &Model, sink: &mut dyn RowSink) -> Result<(), WarehouseError>;
}

/// A model that cannot be read or diffed. Each names the model; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("model {model}: cannot connect to {connection}: {detail}")]
    Connect {
        model: String,
        connection: String,
        detail: String,
    },
    #[error("model {model}: the query failed: {detail}")]
    Query { model: String, detail: String },
    #[error(
        "model {model}: column {column:?} has type {ty}, which s3actions cannot send (supported: text, integers, numeric, real/double, boolean, date, timestamp/timestamptz, json/jsonb, uuid, arrays of these); cast it in the query, e.g. {column}::text"
    )]
    UnsupportedType {
        model: String,
        column: String,
        ty: String,
    },
    #[error(
        "model {model}: the query has no identifier column {column:?} (its columns: {columns})"
    )]
    MissingIdentifier {
        model: String,
        column: String,
        columns: String,
    },
    #[error(
        "model {model}: {key} names {column:?}, which the query does not return (its columns: {columns})"
    )]
    MissingColumn {
        model: String,
        key: &'static str,
        column: String,
        columns: String,
    },
    #[error(
        "model {model}: row {row} has a NULL identifier ({column}); nothing was sent or committed"
    )]
    NullIdentifier {
        model: String,
        row: u64,
        column: String,
    },
    #[error(
        "model {model}: row {row} repeats the identifier {value} ({column}) of an earlier row; identifiers must be unique, nothing was sent or committed"
    )]
    DuplicateIdentifier {
        model: String,
        row: u64,
        column: String,
        value: String,
    },
    #[error("model {model}: cannot read row {row}: {detail}")]
    Row {
        model: String,
        row: u64,
        detail: String,
    },
    #[error("model {model}: cannot write the spool file {}: {source}", path.display())]
    Spool {
        model: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_as_json() {
        let mut out = Vec::new();
        Cell::Array(vec![
            Cell::Null,
            Cell::Bool(true),
            Cell::Int(-3),
            Cell::Float32(0.1),
            Cell::Float(1e21),
            Cell::Float(f64::NAN),
            Cell::Numeric("12.50".into()),
            Cell::Text("a\"b".into()),
            Cell::Json(serde_json::json!({"k": [1]})),
        ])
        .write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[null,true,-3,0.1,1e+21,null,12.50,"a\"b",{"k":[1]}]"#
        );
        assert_eq!(Cell::Int(7).id_text().as_deref(), Some("7"));
        assert_eq!(Cell::Text("u1".into()).id_text().as_deref(), Some("u1"));
        assert_eq!(Cell::Null.id_text(), None);
    }
}
