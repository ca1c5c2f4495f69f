//! What a mapping's files are made of: format, extension, column types, compression,
//! grouping and encryption (`format`, `raw`, `column_types`, `compression`,
//! `split_by_event_type`, `encryption`).
//!
//! Kept apart from the row keys so that each format's options are read, and checked against
//! the format, in one place.

use std::path::Path;

use super::diag::Diagnostic;
use super::keys::{Reader, check_keys};
use super::pgp::PgpKey;
use crate::names::named_enum;
use crate::spanned::{Mark, SValue};

named_enum! {
    /// `format`: how rows are written.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum FileFormat in FILE_FORMATS {
        /// Segment's CSV (or TXT), byte for byte.
        #[default]
        Csv = "csv",
        /// One JSON object (or, with `raw`, the event itself) per line.
        Ndjson = "ndjson",
        /// Apache Parquet, one column per mapping column.
        Parquet = "parquet",
    }
}

named_enum! {
    /// `compression:` of a mapping: a file layer on the sealed file (for Parquet, the
    /// column codec instead).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum Compression in COMPRESSIONS {
        #[default]
        None = "none",
        Gzip = "gzip",
        Zstd = "zstd",
    }
}

named_enum! {
    /// `file_extension`: the extension of file names (and, from it, the Content-Type).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Extension in EXTENSIONS {
        Csv = "csv",
        Txt = "txt",
        Json = "json",
        Ndjson = "ndjson",
        Jsonl = "jsonl",
        Parquet = "parquet",
    }
}

impl Extension {
    pub fn as_str(self) -> &'static str {
        self.name()
    }

    /// The object's Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Extension::Csv => "text/csv",
            Extension::Txt => "text/plain",
            Extension::Json | Extension::Ndjson | Extension::Jsonl => "application/x-ndjson",
            Extension::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The extensions a format's files may have; the first is the default.
    pub fn allowed_for(format: FileFormat) -> &'static [Extension] {
        match format {
            FileFormat::Csv => &[Extension::Csv, Extension::Txt],
            FileFormat::Ndjson => &[Extension::Json, Extension::Ndjson, Extension::Jsonl],
            FileFormat::Parquet => &[Extension::Parquet],
        }
    }
}

named_enum! {
    /// `column_types`: a Parquet column's type.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum ColumnType in COLUMN_TYPES {
        /// Text as the CSV cell would hold it.
        #[default]
        String = "string",
        Int64 = "int64",
        Double = "double",
        Boolean = "boolean",
        /// From ISO-8601 text (or epoch milliseconds), stored as UTC microseconds.
        Timestamp = "timestamp",
        /// The value as JSON text.
        Json = "json",
    }
}

named_enum! {
    /// `quote_style`: which CSV fields are quoted.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum QuoteStyle in QUOTE_STYLES {
        /// Every field, as Segment writes them.
        #[default]
        Always = "always",
        /// Only fields holding the delimiter, the quote or escape character, or a line break.
        Necessary = "necessary",
    }
}

named_enum! {
    /// `line_ending`: what ends a CSV line.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum LineEnding in LINE_ENDINGS {
        #[default]
        Lf = "lf",
        Crlf = "crlf",
    }
}

/// `escape`: how a quote character inside a quoted field is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Escape {
    /// Doubled (`""`), as RFC 4180 and Segment write it.
    #[default]
    Double,
    /// Preceded by this character (which is escaped the same way itself).
    Char(u8),
}

/// The CSV options (AEP's formatting options); the defaults are Segment's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    pub quote: u8,
    pub escape: Escape,
    pub quote_style: QuoteStyle,
    /// Written as given, unquoted, for null and missing values.
    pub null_value: String,
    /// Written as given, unquoted, for empty strings.
    pub empty_value: String,
    pub header: bool,
    pub line_ending: LineEnding,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            quote: b'"',
            escape: Escape::Double,
            quote_style: QuoteStyle::Always,
            null_value: "\"\"".into(),
            empty_value: "\"\"".into(),
            header: true,
            line_ending: LineEnding::Lf,
        }
    }
}

impl CsvOptions {
    /// Whether these are Segment's options (the fast path writes those).
    pub fn is_segment(&self) -> bool {
        *self == CsvOptions::default()
    }
}

/// The CSV keys, in the order `validate` lists them.
pub const CSV_KEYS: &[&str] = &[
    "quote",
    "escape",
    "quote_style",
    "null_value",
    "empty_value",
    "header",
    "line_ending",
];

/// The file options of one mapping, read by [`read`].
#[derive(Debug)]
pub struct Output {
    pub format: FileFormat,
    pub raw: bool,
    pub extension: Extension,
    pub compression: Compression,
    pub split_by_event_type: bool,
    /// Column name → type, as written (checked against the columns by the caller).
    pub column_types: Vec<(String, ColumnType, crate::spanned::Mark)>,
    pub encryption: Option<PgpKey>,
    pub csv: CsvOptions,
    pub manifest: bool,
}

/// Reads `format`, `raw`, `file_extension`, `compression`, `split_by_event_type`,
/// `column_types`, `encryption` and the CSV options; `base` is the mapping file's folder
/// (relative key paths start there), `delimiter` the mapping's field separator (CSV's quote
/// and escape characters must differ from it).
pub(crate) fn read(r: &mut Reader<'_, '_>, base: &Path, delimiter: u8) -> Output {
    let format = match r.string("format") {
        None => FileFormat::Csv,
        Some((f, mark)) => FileFormat::parse(&f).unwrap_or_else(|| {
            r.error(
                "format",
                mark,
                format!("should be one of {}, not {f:?}", quoted(FileFormat::NAMES)),
            );
            FileFormat::Csv
        }),
    };
    let raw = r.bool("raw").unwrap_or(false);
    if raw && format != FileFormat::Ndjson {
        let mark = r.get("raw").map(|n| n.mark).unwrap_or_default();
        r.error(
            "raw",
            mark,
            format!(
                "only works with format: ndjson (the events as received), not with format: {}",
                format.name()
            ),
        );
    }
    let allowed = Extension::allowed_for(format);
    let extension = match r.string("file_extension") {
        None => allowed[0],
        Some((e, mark)) => match Extension::parse(e.trim_start_matches('.')) {
            Some(x) if allowed.contains(&x) => x,
            _ => {
                let names: Vec<&str> = allowed.iter().map(|x| x.name()).collect();
                let names = match names.as_slice() {
                    [one] => format!("{one:?}"),
                    [a, b] => format!("{a:?} or {b:?}"),
                    _ => format!("one of {}", quoted(&names)),
                };
                // CSV's message is the one files written before `format` existed get.
                let for_format = match format {
                    FileFormat::Csv => String::new(),
                    f => format!(" for format: {}", f.name()),
                };
                r.error(
                    "file_extension",
                    mark,
                    format!("should be {names}{for_format}, not {e:?}"),
                );
                allowed[0]
            }
        },
    };
    let compression = match r.string("compression") {
        None => Compression::None,
        Some((c, mark)) => Compression::parse(&c).unwrap_or_else(|| {
            r.error(
                "compression",
                mark,
                format!("should be one of {}, not {c:?}", quoted(Compression::NAMES)),
            );
            Compression::None
        }),
    };
    let split_by_event_type = r.bool("split_by_event_type").unwrap_or(true);
    let column_types = read_column_types(r, format);
    let encryption = read_encryption(r, base);
    let csv = read_csv_options(r, format, delimiter);
    let manifest = r.bool("manifest").unwrap_or(false);
    Output {
        csv,
        manifest,
        format,
        raw,
        extension,
        compression,
        split_by_event_type,
        column_types,
        encryption,
    }
}

fn read_column_types(
    r: &mut Reader<'_, '_>,
    format: FileFormat,
) -> Vec<(String, ColumnType, crate::spanned::Mark)> {
    let Some(node) = r.get("column_types") else {
        return Vec::new();
    };
    if format != FileFormat::Parquet {
        r.error(
            "column_types",
            node.mark,
            format!(
                "only works with format: parquet, not with format: {}",
                format.name()
            ),
        );
        return Vec::new();
    }
    let SValue::Object(members) = &node.value else {
        r.error(
            "column_types",
            node.mark,
            format!(
                "should be a mapping of column name to type ({}), but it is {}",
                ColumnType::NAMES.join(", "),
                node.type_name()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, kmark, value) in members {
        match &value.value {
            SValue::String(t) => match ColumnType::parse(t) {
                Some(ct) => out.push((name.clone(), ct, *kmark)),
                None => r.error(
                    &format!("column_types.{name}"),
                    value.mark,
                    format!("should be one of {}, not {t:?}", quoted(ColumnType::NAMES)),
                ),
            },
            _ => r.error(
                &format!("column_types.{name}"),
                value.mark,
                format!(
                    "should be a type name ({}), but it is {}",
                    ColumnType::NAMES.join(", "),
                    value.type_name()
                ),
            ),
        }
    }
    out
}

/// `encryption: { pgp_public_key_file: PATH }` or `{ pgp_public_key: ARMORED }`.
fn read_encryption(r: &mut Reader<'_, '_>, base: &Path) -> Option<PgpKey> {
    let node = r.get("encryption")?;
    let SValue::Object(members) = &node.value else {
        r.error(
            "encryption",
            node.mark,
            format!(
                "should be a mapping with pgp_public_key_file (or pgp_public_key), but it is {}",
                node.type_name()
            ),
        );
        return None;
    };
    let mut diags: Vec<Diagnostic> = Vec::new();
    let at = r.at("encryption");
    check_keys(
        members,
        &["pgp_public_key_file", "pgp_public_key"],
        &at,
        &mut diags,
    );
    for d in diags {
        r.push(d);
    }
    let file = node.get("pgp_public_key_file");
    let inline = node.get("pgp_public_key");
    let (key, source) = match (file, inline) {
        (Some(f), None) => match &f.value {
            SValue::String(p) => {
                let path = base.join(p);
                match super::read_limited(&path, super::MAX_KEY_FILE) {
                    Ok(bytes) => (Some((bytes, f.mark)), "encryption.pgp_public_key_file"),
                    Err(e) => {
                        r.error(
                            "encryption.pgp_public_key_file",
                            f.mark,
                            format!("cannot read {}: {e}", path.display()),
                        );
                        (None, "")
                    }
                }
            }
            _ => {
                r.error(
                    "encryption.pgp_public_key_file",
                    f.mark,
                    "should be a path (a string)",
                );
                (None, "")
            }
        },
        (None, Some(k)) => match &k.value {
            SValue::String(text) => (
                Some((text.as_bytes().to_vec(), k.mark)),
                "encryption.pgp_public_key",
            ),
            _ => {
                r.error(
                    "encryption.pgp_public_key",
                    k.mark,
                    "should be an armored public key (a string)",
                );
                (None, "")
            }
        },
        (Some(_), Some(k)) => {
            r.error(
                "encryption.pgp_public_key",
                k.mark,
                "give pgp_public_key_file or pgp_public_key, not both",
            );
            (None, "")
        }
        (None, None) => {
            r.error(
                "encryption",
                node.mark,
                "needs pgp_public_key_file (a path to the recipient's public key) or pgp_public_key",
            );
            (None, "")
        }
    };
    let (bytes, mark) = key?;
    match PgpKey::parse(&bytes, std::time::SystemTime::now()) {
        Ok(k) => Some(k),
        Err(e) => {
            r.error(source, mark, e.to_string());
            None
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One printable ASCII character other than a line break (the CSV writer works on bytes).
fn one_char(r: &mut Reader<'_, '_>, key: &str) -> Option<(u8, Mark)> {
    let (v, mark) = r.string(key)?;
    match v.as_bytes() {
        [c] if c.is_ascii_graphic() || *c == b' ' => Some((*c, mark)),
        _ => {
            r.error(
                key,
                mark,
                format!("should be one ASCII character, not {v:?}"),
            );
            None
        }
    }
}

fn read_csv_options(r: &mut Reader<'_, '_>, format: FileFormat, delimiter: u8) -> CsvOptions {
    let mut o = CsvOptions::default();
    if format != FileFormat::Csv {
        for key in CSV_KEYS {
            if let Some(n) = r.get(key) {
                let message = format!(
                    "only works with format: csv, not with format: {}",
                    format.name()
                );
                r.error(key, n.mark, message);
            }
        }
        return o;
    }
    // A quote or escape character that is also the delimiter makes fields holding it
    // unreadable.
    let not_delimiter = |r: &mut Reader<'_, '_>, key: &str, c: u8, mark| {
        let ok = c != delimiter;
        if !ok {
            let message = format!(
                "{:?} is the delimiter; a field holding it could not be read back (choose another character)",
                (c as char).to_string()
            );
            r.error(key, mark, message);
        }
        ok
    };
    if let Some((q, mark)) = one_char(r, "quote")
        && not_delimiter(r, "quote", q, mark)
    {
        o.quote = q;
    }
    match r.string("escape") {
        None => {}
        Some((e, _)) if e == "double" => o.escape = Escape::Double,
        // The quote escaping itself is the quote doubled.
        Some((e, _)) if e.as_bytes() == [o.quote] => o.escape = Escape::Double,
        Some((e, mark)) => match e.as_bytes() {
            [c] if c.is_ascii_graphic() => {
                if not_delimiter(r, "escape", *c, mark) {
                    o.escape = Escape::Char(*c);
                }
            }
            _ => r.error(
                "escape",
                mark,
                format!(
                    "should be \"double\" (a quote is doubled) or one ASCII character, not {e:?}"
                ),
            ),
        },
    }
    if let Some((q, mark)) = r.string("quote_style") {
        match QuoteStyle::parse(&q) {
            Some(s) => o.quote_style = s,
            None => r.error(
                "quote_style",
                mark,
                format!("should be one of {}, not {q:?}", quoted(QuoteStyle::NAMES)),
            ),
        }
    }
    for key in ["null_value", "empty_value"] {
        if let Some((v, mark)) = r.string(key) {
            if v.contains(['\n', '\r']) {
                r.error(key, mark, "cannot contain a line break");
            } else if key == "null_value" {
                o.null_value = v;
            } else {
                o.empty_value = v;
            }
        }
    }
    if let Some(h) = r.bool("header") {
        o.header = h;
    }
    if let Some((l, mark)) = r.string("line_ending") {
        match LineEnding::parse(&l) {
            Some(l) => o.line_ending = l,
            None => r.error(
                "line_ending",
                mark,
                format!("should be one of {}, not {l:?}", quoted(LineEnding::NAMES)),
            ),
        }
    }
    o
}
