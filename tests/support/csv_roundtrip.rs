//! The CSV round trip shared by the property test (`tests/proptests.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/csv_roundtrip.rs`): rows of strings, encoded by the crate's CSV
//! encoder under a mapping's CSV options, read back by the `csv` crate's reader under the
//! same dialect, give the same strings.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use s3actions::encode::{Encoder, format_for};
use s3actions::expr::Value;
use s3actions::json::Tape;
use s3actions::mapping::{Config, Escape, Mapping};

/// The delimiters a mapping accepts, as bytes.
pub const DELIMITERS: [u8; 5] = *b",|\t;:";

/// A mapping's CSV dialect.
#[derive(Clone, Debug)]
pub struct Dialect {
    pub delimiter: u8,
    /// `None`: Segment's defaults (none of the CSV option keys given).
    pub options: Option<Options>,
}

/// AEP's CSV options (README "CSV options"), with `null_value` and `empty_value` empty
/// (their defaults are Segment's `""`, written as given: two quote characters).
#[derive(Clone, Debug)]
pub struct Options {
    pub quote: u8,
    /// `None`: a quote is doubled.
    pub escape: Option<u8>,
    /// `quote_style: necessary` (else `always`).
    pub necessary: bool,
    pub header: bool,
    pub crlf: bool,
}

impl Dialect {
    /// A mapping file with `columns` columns `c0`, `c1`, ... read from the event's
    /// properties of the same names, and neither computed column.
    pub fn mapping(&self, columns: usize) -> String {
        let text = |b: u8| serde_json::to_string(&(b as char).to_string()).expect("a string");
        let mut y = String::from("mappings:\n  - name: m\n");
        y += "    audience_action_column_name: \"\"\n    batch_size_column_name: \"\"\n";
        y += &format!("    delimiter: {}\n", text(self.delimiter));
        if let Some(o) = &self.options {
            y += &format!("    quote: {}\n", text(o.quote));
            let escape = o.escape.map_or("\"double\"".to_string(), text);
            y += &format!("    escape: {escape}\n");
            let style = if o.necessary { "necessary" } else { "always" };
            y += &format!("    quote_style: {style}\n    header: {}\n", o.header);
            let ending = if o.crlf { "crlf" } else { "lf" };
            y += &format!("    line_ending: {ending}\n");
            y += "    null_value: \"\"\n    empty_value: \"\"\n";
        }
        y += "    columns:\n";
        for i in 0..columns {
            y += &format!("      c{i}: {{'@path': '$.properties.c{i}'}}\n");
        }
        y
    }

    fn header(&self) -> bool {
        self.options.as_ref().is_none_or(|o| o.header)
    }
}

/// Calls `f` with the mapping file `text` loaded (or its refusal), loading each text once:
/// loading costs more than the rest of a round trip, and there are few dialects. The
/// configs stay reachable from a static, so leak checkers do not count them.
fn with_loaded<R>(text: String, f: impl FnOnce(Result<&Config, &String>) -> R) -> R {
    static LOADED: Mutex<BTreeMap<String, Result<Config, String>>> = Mutex::new(BTreeMap::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let config = loaded.entry(text).or_insert_with_key(|text| {
        Config::from_str(text, Path::new("roundtrip.yaml")).map_err(|e| e.to_string())
    });
    f(config.as_ref())
}

/// A reader of the dialect the mapping's CSV options load as.
fn reader<'f>(m: &Mapping, file: &'f [u8]) -> csv::Reader<&'f [u8]> {
    let mut b = csv::ReaderBuilder::new();
    b.delimiter(m.row.delimiter)
        .has_headers(false)
        .quote(m.csv.quote);
    if let Escape::Char(c) = m.csv.escape {
        b.escape(Some(c)).double_quote(false);
    }
    b.from_reader(file)
}

/// What a round trip came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The mapping loader refused the dialect (with this message): nothing to check.
    Refused(String),
    /// The file read back as written.
    Same,
}

/// Encodes `rows` (each of `columns` strings) under `dialect` and reads them back; `Err`
/// says how they came back different.
pub fn round_trip(
    dialect: &Dialect,
    columns: usize,
    rows: &[Vec<String>],
) -> Result<Outcome, String> {
    with_loaded(dialect.mapping(columns), |config| match config {
        Ok(config) => check(dialect, columns, rows, &config.mappings[0]),
        Err(e) => Ok(Outcome::Refused(e.clone())),
    })
}

/// [`round_trip`] with the loaded mapping.
fn check(
    dialect: &Dialect,
    columns: usize,
    rows: &[Vec<String>],
    m: &Mapping,
) -> Result<Outcome, String> {
    let format = format_for(m);
    let mut encoder = Encoder::new();
    let mut file = format.header().to_vec();
    let mut tape = Tape::new();
    for row in rows {
        let properties: serde_json::Map<String, serde_json::Value> = row
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("c{i}"), v.clone().into()))
            .collect();
        let event = serde_json::json!({"type": "track", "properties": properties}).to_string();
        let root = tape.parse(&event).map_err(|e| e.to_string())?;
        format
            .encode_row(&mut encoder, &Value::Node(root), &mut file)
            .map_err(|e| e.to_string())?;
    }
    file.extend_from_slice(format.footer());
    let shown = || String::from_utf8_lossy(&file).into_owned();
    let mut read = Vec::new();
    for record in reader(m, &file).records() {
        let record = record.map_err(|e| format!("{e} reading {:?}", shown()))?;
        read.push(record.iter().map(str::to_string).collect::<Vec<_>>());
    }
    let mut want = Vec::new();
    if dialect.header() {
        want.push((0..columns).map(|i| format!("c{i}")).collect::<Vec<_>>());
    }
    want.extend(rows.iter().cloned());
    if read != want {
        return Err(format!(
            "{rows:?} written as {:?} read back as {read:?}",
            shown()
        ));
    }
    Ok(Outcome::Same)
}
