//! Parquet files: one column per mapping column, typed by `column_types`.
//!
//! Rows go through the same path as every format (streamed to the batch file, batch-size
//! fix-up in place), so while a batch fills its rows are typed cells in a line-per-row JSON
//! array ([`ParquetRows`]): each value is converted when its event is routed, so a value
//! that does not convert rejects that event with the column and the reason, never the file.
//! When the batch is sealed, the [`ParquetLayer`] streams those lines into Parquet row
//! groups, at most [`ROW_GROUP_ROWS`] rows or about [`ROW_GROUP_BYTES`] of values each, so
//! memory is bounded whatever `batch_size`. Compression is Parquet's own column codec.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::layer::{FileLayer, LayerKind, LayerWriter};
use super::{Encoder, Format, RowError, TailFix, audience_action, eval_planned};
use crate::expr::{Type as JsType, Value};
use crate::json::{Kind, Tape, write_json_string};
use crate::mapping::{ColumnType, Compression, Mapping, RowLayout};

/// Rows per row group at most.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// Buffered value bytes per row group at most (about; a row is never split).
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// The batch-file side of Parquet: typed cells, one JSON array per line.
pub struct ParquetRows<'m> {
    row: &'m RowLayout,
    full_suffix: Vec<u8>,
}

impl<'m> ParquetRows<'m> {
    pub fn new(row: &'m RowLayout, batch_size: u64) -> ParquetRows<'m> {
        ParquetRows {
            row,
            full_suffix: suffix(row, batch_size),
        }
    }
}

/// The batch-size cell of a file with `rows` rows, and the row's end.
fn suffix(row: &RowLayout, rows: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if row.batch_size_column.is_some() {
        if row.types.len() > 1 {
            out.push(b',');
        }
        let ty = row.types.last().copied().unwrap_or(ColumnType::Int64);
        let text = match &row.batch_size_column.as_ref().and_then(|c| c.transform) {
            Some(t) => {
                let mut s = String::new();
                t.apply(&rows.to_string(), &mut s);
                s
            }
            None => rows.to_string(),
        };
        // The count converts to every type the mapping check allows for this column.
        if convert(&Value::owned_str(text.clone()), ty, &mut out).is_err() {
            write_json_string(&mut out, &text);
        }
    }
    out.extend_from_slice(b"]\n");
    out
}

/// Appends `v` converted to `ty` as a cell (JSON: `null`, a number, `true`/`false`, or a
/// string); on error nothing is appended.
fn convert(v: &Value<'_>, ty: ColumnType, out: &mut Vec<u8>) -> Result<(), String> {
    if matches!(v, Value::Undefined | Value::Null) || v.type_of() == JsType::Undefined {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    if let Value::Node(n) = v
        && n.kind() == Kind::Null
    {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let mut text = Vec::new();
    super::csv::write_text(&mut text, v);
    let text = String::from_utf8_lossy(&text);
    let is_number = v.type_of() == JsType::Number;
    let is_bool = v.type_of() == JsType::Boolean;
    match ty {
        ColumnType::String => write_json_string(out, &text),
        ColumnType::Json => {
            let mut json = Vec::new();
            v.write_json(&mut json);
            write_json_string(out, &String::from_utf8_lossy(&json));
        }
        ColumnType::Int64 => {
            let n = parse_i64(&text, is_number).ok_or_else(|| {
                format!("{} is not a whole number that fits int64", shown(v, &text))
            })?;
            out.extend_from_slice(n.to_string().as_bytes());
        }
        ColumnType::Double => {
            let f: f64 = text
                .trim()
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite() && !is_bool && !text.trim().is_empty())
                .ok_or_else(|| format!("{} is not a number (double)", shown(v, &text)))?;
            out.extend_from_slice(ryu_js::Buffer::new().format(f).as_bytes());
        }
        ColumnType::Boolean => match (is_bool, text.as_ref()) {
            (_, "true") => out.extend_from_slice(b"true"),
            (_, "false") => out.extend_from_slice(b"false"),
            _ => return Err(format!("{} is not a boolean", shown(v, &text))),
        },
        ColumnType::Timestamp => {
            let micros = if is_number {
                parse_i64(&text, true).and_then(|ms| ms.checked_mul(1000))
            } else {
                parse_timestamp(&text)
            }
            .ok_or_else(|| {
                format!(
                    "{} is not an ISO-8601 timestamp (like 2026-11-01T07:30:00.000Z) or epoch milliseconds",
                    shown(v, &text)
                )
            })?;
            out.extend_from_slice(micros.to_string().as_bytes());
        }
    }
    Ok(())
}

/// The value as a message shows it: strings quoted, others as JSON.
fn shown(v: &Value<'_>, text: &str) -> String {
    let mut s: String = if v.type_of() == JsType::String {
        format!("{text:?}")
    } else {
        let mut json = Vec::new();
        v.write_json(&mut json);
        String::from_utf8_lossy(&json).into_owned()
    };
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

fn parse_i64(text: &str, is_number: bool) -> Option<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    // Numbers JavaScript prints in exponent form (1e+21 is out of range anyway) or with a
    // zero fraction never reach here: JSON numbers print canonically (631.0 → 631).
    if is_number {
        let f: f64 = t.parse().ok()?;
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            return Some(f as i64);
        }
    }
    None
}

/// ISO-8601 date-time text to UTC microseconds; without an offset, UTC is assumed.
fn parse_timestamp(text: &str) -> Option<i64> {
    let dt = crate::text::parse_iso_time(text)?;
    i64::try_from(dt.unix_timestamp_nanos() / 1000).ok()
}

/// The cells of one row, up to (not including) the batch-size cell.
fn cells<'a>(
    m: &'a RowLayout,
    enc: &mut Encoder,
    event: &Value<'a>,
    out: &mut Vec<u8>,
) -> Result<(), RowError> {
    out.push(b'[');
    let mut i = 0;
    for c in &m.columns {
        if i > 0 {
            out.push(b',');
        }
        let audience = m.audience_action.as_ref().filter(|a| a.name == c.name);
        let v = match audience {
            Some(_) => audience_action(m, event, &mut enc.memo),
            None => eval_planned(&c.expr, c.plan.as_ref(), event, &m.steps, &mut enc.memo),
        }
        .map_err(|e| RowError {
            column: c.name.clone(),
            message: e.0,
        })?;
        let t = audience.map_or(c.transform.as_ref(), |a| a.transform.as_ref());
        cell(out, &v, t, m.types[i], &c.name, enc)?;
        i += 1;
    }
    if let Some(a) = &m.audience_action {
        if i > 0 {
            out.push(b',');
        }
        let v = audience_action(m, event, &mut enc.memo).map_err(|e| RowError {
            column: a.name.clone(),
            message: e.0,
        })?;
        cell(out, &v, a.transform.as_ref(), m.types[i], &a.name, enc)?;
    }
    Ok(())
}

fn cell(
    out: &mut Vec<u8>,
    v: &Value<'_>,
    transform: Option<&crate::mapping::ColumnTransform>,
    ty: ColumnType,
    column: &str,
    enc: &mut Encoder,
) -> Result<(), RowError> {
    let converted = match transform {
        Some(t) => {
            enc.scratch.clear();
            super::csv::write_text(&mut enc.scratch, v);
            let s = String::from_utf8_lossy(&enc.scratch);
            t.apply(&s, &mut enc.text);
            convert(&Value::owned_str(enc.text.clone()), ty, out)
        }
        None => convert(v, ty, out),
    };
    converted.map_err(|message| RowError {
        column: column.to_string(),
        message: format!("{message} (column_types: {})", ty.name()),
    })
}

impl Format for ParquetRows<'_> {
    fn header(&self) -> &[u8] {
        b""
    }

    fn encode_row<'a>(
        &self,
        enc: &mut Encoder,
        event: &Value<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let start = out.len();
        enc.memo.reset(&self.row.steps);
        match cells(self.row, enc, event, out) {
            Ok(()) => {
                out.extend_from_slice(&self.full_suffix);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn batch_size_fix(&self, rows: u64) -> Option<TailFix> {
        self.row.batch_size_column.as_ref()?;
        Some(TailFix {
            old: self.full_suffix.clone(),
            new: suffix(self.row, rows),
        })
    }

    fn content_type(&self) -> &'static str {
        crate::mapping::Extension::Parquet.content_type()
    }

    fn cells(&self, file: &[u8]) -> Vec<(String, String)> {
        let line = file.split(|&b| b == b'\n').next().unwrap_or_default();
        let Ok(values) = serde_json::from_slice::<Vec<serde_json::Value>>(line) else {
            return Vec::new();
        };
        self.row
            .names()
            .zip(values)
            .map(|(n, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (n.to_string(), text)
            })
            .collect()
    }
}

/// The sealed batch's typed lines to a Parquet file (see the module's documentation).
#[derive(Debug)]
pub struct ParquetLayer {
    schema: Arc<Type>,
    props: Arc<WriterProperties>,
    types: Vec<ColumnType>,
    /// Rows per row group at most ([`ROW_GROUP_ROWS`]; smaller in tests).
    row_group_rows: usize,
}

impl ParquetLayer {
    pub fn new(m: &Mapping) -> ParquetLayer {
        let fields = m
            .row
            .names()
            .zip(&m.row.types)
            .map(|(name, ty)| Arc::new(field(name, *ty)))
            .collect();
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .expect("a flat schema of optional primitive columns is valid");
        let codec = match m.compression {
            Compression::None => parquet::basic::Compression::UNCOMPRESSED,
            Compression::Gzip => parquet::basic::Compression::GZIP(Default::default()),
            Compression::Zstd => parquet::basic::Compression::ZSTD(Default::default()),
        };
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(codec)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("s3actions {}", env!("CARGO_PKG_VERSION")))
            .build();
        ParquetLayer {
            schema: Arc::new(schema),
            props: Arc::new(props),
            types: m.row.types.clone(),
            row_group_rows: ROW_GROUP_ROWS,
        }
    }
}

fn field(name: &str, ty: ColumnType) -> Type {
    let (physical, logical) = match ty {
        ColumnType::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        ColumnType::Json => (Physical::BYTE_ARRAY, Some(LogicalType::Json)),
        ColumnType::Int64 => (Physical::INT64, None),
        ColumnType::Double => (Physical::DOUBLE, None),
        ColumnType::Boolean => (Physical::BOOLEAN, None),
        ColumnType::Timestamp => (
            Physical::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()
        .expect("a primitive column with a matching logical type is valid")
}

impl FileLayer for ParquetLayer {
    fn kind(&self) -> Option<LayerKind> {
        None
    }

    fn wrap<'w>(
        &self,
        inner: Box<dyn LayerWriter + 'w>,
        _staging: &Path,
        _input_len: Option<u64>,
    ) -> io::Result<Box<dyn LayerWriter + 'w>> {
        let writer = SerializedFileWriter::new(inner, self.schema.clone(), self.props.clone())
            .map_err(io::Error::other)?;
        Ok(Box::new(ParquetWriter {
            writer,
            columns: self.types.iter().map(|t| ColumnBuf::new(*t)).collect(),
            line: Vec::new(),
            tape: Tape::new(),
            rows: 0,
            bytes: 0,
            row_number: 0,
            row_group_rows: self.row_group_rows,
        }))
    }
}

/// One column's values of the row group being filled, with their definition levels.
enum Values {
    /// Byte arrays, concatenated, with their end offsets.
    Bytes {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

struct ColumnBuf {
    ty: ColumnType,
    values: Values,
    defs: Vec<i16>,
}

impl ColumnBuf {
    fn new(ty: ColumnType) -> ColumnBuf {
        let values = match ty {
            ColumnType::String | ColumnType::Json => Values::Bytes {
                data: Vec::new(),
                ends: Vec::new(),
            },
            ColumnType::Int64 | ColumnType::Timestamp => Values::I64(Vec::new()),
            ColumnType::Double => Values::F64(Vec::new()),
            ColumnType::Boolean => Values::Bool(Vec::new()),
        };
        ColumnBuf {
            ty,
            values,
            defs: Vec::new(),
        }
    }
}

struct ParquetWriter<'w> {
    writer: SerializedFileWriter<Box<dyn LayerWriter + 'w>>,
    columns: Vec<ColumnBuf>,
    /// The part of a line not yet ended by `\n`.
    line: Vec<u8>,
    tape: Tape,
    rows: usize,
    bytes: usize,
    row_number: u64,
    row_group_rows: usize,
}

fn bad_row(row: u64, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("parquet: row {row} of the batch file: {why}"),
    )
}

impl ParquetWriter<'_> {
    fn push_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.row_number += 1;
        let row = self.row_number;
        let text = std::str::from_utf8(line).map_err(|e| bad_row(row, e))?;
        let root = self.tape.parse(text).map_err(|e| bad_row(row, e.message))?;
        if root.kind() != Kind::Array || root.len() != self.columns.len() {
            return Err(bad_row(row, "not an array of one cell per column"));
        }
        for (col, v) in self.columns.iter_mut().zip(root.elements()) {
            if v.kind() == Kind::Null {
                col.defs.push(0);
                continue;
            }
            col.defs.push(1);
            match &mut col.values {
                Values::Bytes { data, ends } => {
                    let s = v
                        .as_str()
                        .ok_or_else(|| bad_row(row, "a text cell is not a string"))?;
                    data.extend_from_slice(s.as_bytes());
                    ends.push(data.len());
                    self.bytes += s.len();
                }
                Values::I64(vals) => {
                    let n = v
                        .number_text()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| bad_row(row, "an int64 cell is not an integer"))?;
                    vals.push(n);
                    self.bytes += 8;
                }
                Values::F64(vals) => {
                    let f = v
                        .as_f64()
                        .ok_or_else(|| bad_row(row, "a double cell is not a number"))?;
                    vals.push(f);
                    self.bytes += 8;
                }
                Values::Bool(vals) => {
                    let b = v
                        .as_bool()
                        .ok_or_else(|| bad_row(row, "a boolean cell is not a boolean"))?;
                    vals.push(b);
                    self.bytes += 1;
                }
            }
        }
        self.rows += 1;
        if self.rows >= self.row_group_rows || self.bytes >= ROW_GROUP_BYTES {
            self.flush_group()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn flush_group(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group().map_err(io::Error::other)?;
        let mut columns = self.columns.iter_mut();
        while let Some(mut cw) = group.next_column().map_err(io::Error::other)? {
            let col = columns
                .next()
                .ok_or_else(|| io::Error::other("parquet: more columns than the schema"))?;
            let defs = Some(&col.defs[..]);
            let written = match (cw.untyped(), &mut col.values) {
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes { data, ends }) => {
                    let all = Bytes::from(std::mem::take(data));
                    let mut start = 0;
                    let values: Vec<ByteArray> = ends
                        .iter()
                        .map(|&end| {
                            let b = ByteArray::from(all.slice(start..end));
                            start = end;
                            b
                        })
                        .collect();
                    ends.clear();
                    w.write_batch(&values, defs, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), Values::I64(v)) => {
                    let r = w.write_batch(v, defs, None);
                    v.clear();
                    r
                }
                (ColumnWriter::DoubleColumnWriter(w), Values::F64(v)) => {
                    let r = w.write_batch(v, defs, None);
                    v.clear();
                    r
                }
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                    let r = w.write_batch(v, defs, None);
                    v.clear();
                    r
                }
                _ => {
                    return Err(io::Error::other(format!(
                        "parquet: column of type {} does not match its writer",
                        col.ty.name()
                    )));
                }
            };
            written.map_err(io::Error::other)?;
            col.defs.clear();
            cw.close().map_err(io::Error::other)?;
        }
        group.close().map_err(io::Error::other)?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

impl Write for ParquetWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.line.is_empty() {
                self.push_line(&rest[..nl])?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..nl]);
                let pushed = self.push_line(&line);
                line.clear();
                self.line = line;
                pushed?;
            }
            rest = &rest[nl + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LayerWriter for ParquetWriter<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.push_line(&line)?;
        }
        self.flush_group()?;
        let inner = self.writer.into_inner().map_err(io::Error::other)?;
        inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::layer;
    use crate::json::Tape;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    /// Rows stream into row groups of at most `row_group_rows`: a batch several times that
    /// size is several groups, every row is there, and the batch-size column was fixed.
    #[test]
    fn row_groups_are_bounded() {
        let config = crate::mapping::Config::from_str(
            "mappings:\n  - name: m\n    format: parquet\n    batch_size: 1000\n    columns:\n      n: {'@path': '$.n'}\n    column_types:\n      n: int64\n",
            Path::new("m.yaml"),
        )
        .unwrap();
        let m = &config.mappings[0];
        let format = crate::encode::format_for(m);
        let mut enc = Encoder::new();
        let mut rows = Vec::new();
        let mut tape = Tape::new();
        for i in 0..250 {
            let text = format!("{{\"n\":{i}}}");
            let root = tape.parse(&text).unwrap();
            format
                .encode_row(&mut enc, &Value::Node(root), &mut rows)
                .unwrap();
        }
        let fix = format.batch_size_fix(250).unwrap();
        let text = String::from_utf8(rows).unwrap().replace(
            std::str::from_utf8(&fix.old).unwrap(),
            std::str::from_utf8(&fix.new).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let sealed = dir.path().join("sealed");
        std::fs::write(&sealed, text).unwrap();
        let mut parquet = ParquetLayer::new(m);
        parquet.row_group_rows = 100;
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(parquet)];
        let (out, _) = layer::apply(&sealed, &layers, dir.path()).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&out).unwrap()).unwrap();
        let meta = reader.metadata();
        let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [100, 100, 50]);
        let mut seen = 0i64;
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            assert_eq!(row.get_long(0).unwrap(), seen);
            assert_eq!(row.get_long(2).unwrap(), 250, "batch size fixed");
            seen += 1;
        }
        assert_eq!(seen, 250);
    }

    #[test]
    fn conversions() {
        let mut out = Vec::new();
        let ok = |v: Value<'_>, ty, want: &str| {
            let mut out = Vec::new();
            convert(&v, ty, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        };
        ok(Value::owned_str("42".into()), ColumnType::Int64, "42");
        ok(Value::Number(7.0), ColumnType::Int64, "7");
        ok(Value::Number(2.5), ColumnType::Double, "2.5");
        ok(Value::Bool(true), ColumnType::Boolean, "true");
        ok(Value::Null, ColumnType::Int64, "null");
        ok(
            Value::owned_str("1970-01-01T00:00:01.5Z".into()),
            ColumnType::Timestamp,
            "1500000",
        );
        ok(Value::Number(2.0), ColumnType::Timestamp, "2000");
        let json_text = serde_json::to_string(&serde_json::to_string("x\"y").unwrap()).unwrap();
        ok(
            Value::owned_str("x\"y".into()),
            ColumnType::Json,
            &json_text,
        );
        assert!(convert(&Value::owned_str("4.5".into()), ColumnType::Int64, &mut out).is_err());
        assert!(convert(&Value::Bool(true), ColumnType::Double, &mut out).is_err());
        assert!(
            convert(
                &Value::owned_str("yes".into()),
                ColumnType::Boolean,
                &mut out
            )
            .is_err()
        );
        assert!(out.is_empty(), "nothing appended on error");
    }
}
