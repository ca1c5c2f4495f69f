//! CSV/TXT rows, byte-compatible with Segment's files.
//!
//! Every value is quoted (inner quotes doubled); objects and arrays are compact JSON as
//! `JSON.stringify` prints them; null and missing are `""`. Rows are written straight into
//! the caller's buffer: values that are pieces of the event are copied from the input text
//! when it is already in the right form, so the common row costs no allocation.

use super::{ColumnTransform, Encoder, Format, RowError, TailFix, audience_action, eval_planned};
use crate::expr::{Type, Value};
use crate::json::{Kind, NodeRef, write_number_text};
use crate::mapping::{ComputedColumn, CsvOptions, Escape, LineEnding, QuoteStyle, RowLayout};

/// Appends `text` as a quoted CSV field (inner quotes doubled).
#[inline]
pub fn write_quoted(out: &mut Vec<u8>, text: &[u8]) {
    // Worst case every byte doubled, plus the enclosing quotes and 16 bytes of slack for
    // the wide stores below.
    out.reserve(2 * text.len() + 18);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("ssse3") {
            // SAFETY: the CPU supports SSSE3 (checked above) and `out` has the room the
            // function writes into.
            unsafe { quote_ssse3(out, text) };
            return;
        }
    }
    quote_portable(out, text);
}

/// Eight bytes at a time when none of them is a quote; otherwise each byte followed by a
/// speculative second quote that is kept only after a quote.
fn quote_portable(out: &mut Vec<u8>, text: &[u8]) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = LO * b'"' as u64;
    let spare = &mut out.spare_capacity_mut()[..2 * text.len() + 3];
    let mut j = 0;
    spare[j].write(b'"');
    j += 1;
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let x = w ^ QUOTES;
        if x.wrapping_sub(LO) & !x & HI == 0 {
            for (k, &b) in chunk.iter().enumerate() {
                spare[j + k].write(b);
            }
            j += 8;
        } else {
            for &b in chunk {
                spare[j].write(b);
                spare[j + 1].write(b'"');
                j += 1 + usize::from(b == b'"');
            }
        }
    }
    for &b in chunks.remainder() {
        spare[j].write(b);
        spare[j + 1].write(b'"');
        j += 1 + usize::from(b == b'"');
    }
    spare[j].write(b'"');
    j += 1;
    // SAFETY: the first `j` bytes of the spare capacity were written above.
    unsafe { out.set_len(out.len() + j) };
}

/// For each 8-bit mask of quote positions, the byte shuffle that doubles those bytes.
#[cfg(target_arch = "x86_64")]
static DOUBLE_QUOTES: [[u8; 16]; 256] = {
    let mut table = [[0x80u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let mut o = 0;
        let mut i = 0;
        while i < 8 {
            table[m][o] = i as u8;
            o += 1;
            if m & (1 << i) != 0 {
                table[m][o] = i as u8;
                o += 1;
            }
            i += 1;
        }
        m += 1;
    }
    table
};

/// Sixteen bytes are copied in one store when they hold no quote; otherwise each half is
/// expanded with one shuffle.
///
/// SAFETY: the caller checks SSSE3 and reserves `2 * text.len() + 18` bytes in `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn quote_ssse3(out: &mut Vec<u8>, text: &[u8]) {
    use std::arch::x86_64::*;
    let len = out.len();
    let quote = _mm_set1_epi8(b'"' as i8);
    // SAFETY (whole block): reads stay inside `text`; every store writes at most 16 bytes
    // at `j`, and `j + 16 <= 2 * i + 17 <= 2 * text.len() + 18` (reserved by the caller).
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        let src = text.as_ptr();
        *dst = b'"';
        let mut j = 1usize;
        let mut i = 0usize;
        while i + 16 <= text.len() {
            let v = _mm_loadu_si128(src.add(i) as *const __m128i);
            let mask = _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u32;
            if mask == 0 {
                _mm_storeu_si128(dst.add(j) as *mut __m128i, v);
                j += 16;
            } else {
                let lo = (mask & 0xff) as usize;
                let shuf = _mm_loadu_si128(DOUBLE_QUOTES[lo].as_ptr() as *const __m128i);
                _mm_storeu_si128(dst.add(j) as *mut __m128i, _mm_shuffle_epi8(v, shuf));
                j += 8 + lo.count_ones() as usize;
                let hi = (mask >> 8) as usize;
                let v_hi = _mm_srli_si128(v, 8);
                let shuf = _mm_loadu_si128(DOUBLE_QUOTES[hi].as_ptr() as *const __m128i);
                _mm_storeu_si128(dst.add(j) as *mut __m128i, _mm_shuffle_epi8(v_hi, shuf));
                j += 8 + hi.count_ones() as usize;
            }
            i += 16;
        }
        while i < text.len() {
            let b = *src.add(i);
            *dst.add(j) = b;
            j += 1;
            if b == b'"' {
                *dst.add(j) = b'"';
                j += 1;
            }
            i += 1;
        }
        *dst.add(j) = b'"';
        j += 1;
        out.set_len(len + j);
    }
}

/// Appends Segment's text for a value (before quoting): `""` for null and undefined, JSON
/// for objects and arrays, `String(value)` otherwise.
pub fn write_text(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Undefined | Value::Null => {}
        Value::Node(n) => write_node_text(out, *n),
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Array(_) | Value::Object(_) => v.write_json(out),
        other => out.extend_from_slice(other.to_js_string().as_bytes()),
    }
}

fn write_node_text(out: &mut Vec<u8>, n: NodeRef<'_>) {
    match n.kind() {
        Kind::Null => {}
        Kind::Bool => out.extend_from_slice(if n.as_bool() == Some(true) {
            b"true"
        } else {
            b"false"
        }),
        Kind::Number => write_number_text(out, n.raw(), false),
        Kind::String => match n.str_raw() {
            Some((raw, false)) => out.extend_from_slice(raw.as_bytes()),
            _ => out.extend_from_slice(n.as_str().unwrap_or_default().as_bytes()),
        },
        Kind::Array | Kind::Object => crate::json::write_node_json(out, n),
    }
}

/// Writes one value as a quoted field, avoiding the intermediate copy when the value's text
/// is a slice of the input.
fn write_field(out: &mut Vec<u8>, v: &Value<'_>, scratch: &mut Vec<u8>) {
    if let Value::Node(n) = v {
        match n.kind() {
            Kind::String => {
                if let Some((raw, false)) = n.str_raw() {
                    write_quoted(out, raw.as_bytes());
                    return;
                }
            }
            Kind::Object | Kind::Array if n.is_canonical() => {
                write_quoted(out, n.raw().as_bytes());
                return;
            }
            _ => {}
        }
    }
    scratch.clear();
    write_text(scratch, v);
    write_quoted(out, scratch);
}

fn write_transformed(
    out: &mut Vec<u8>,
    v: &Value<'_>,
    t: &ColumnTransform,
    scratch: &mut Vec<u8>,
    text: &mut String,
) {
    scratch.clear();
    write_text(scratch, v);
    let s = String::from_utf8_lossy(scratch);
    t.apply(&s, text);
    write_quoted(out, text.as_bytes());
}

/// Segment's CSV/TXT files for one mapping: the header line, then one quoted row per event
/// (or the same under the mapping's CSV options).
pub struct Csv<'m> {
    row: &'m RowLayout,
    header: Vec<u8>,
    /// The batch-size field of a full batch, delimiter included (empty without the column).
    full_suffix: Vec<u8>,
    content_type: &'static str,
    /// `None` for Segment's bytes (the fast path).
    style: Option<Style>,
}

impl<'m> Csv<'m> {
    pub fn new(row: &'m RowLayout, batch_size: u64, content_type: &'static str) -> Csv<'m> {
        Csv {
            row,
            header: header_line(row),
            full_suffix: batch_size_suffix(row, batch_size),
            content_type,
            style: None,
        }
    }

    /// CSV under `opts` (AEP's formatting options); Segment's options give [`Csv::new`].
    pub fn with_options(
        row: &'m RowLayout,
        batch_size: u64,
        content_type: &'static str,
        opts: &CsvOptions,
    ) -> Csv<'m> {
        if opts.is_segment() {
            return Csv::new(row, batch_size, content_type);
        }
        let style = Style::new(opts, row.delimiter);
        Csv {
            row,
            header: if opts.header {
                header_line(row)
            } else {
                Vec::new()
            },
            full_suffix: styled_suffix(row, batch_size, Some(&style)),
            content_type,
            style: Some(style),
        }
    }
}

/// The fields of one row, up to (not including) the batch-size field.
fn encode_fields<'a>(
    m: &'a RowLayout,
    enc: &mut Encoder,
    event: &Value<'a>,
    out: &mut Vec<u8>,
    style: Option<&Style>,
) -> Result<(), RowError> {
    let mut first = true;
    for c in &m.columns {
        if !first {
            out.push(m.delimiter);
        }
        first = false;
        // As in Segment, a column named like the audience-action or batch-size column
        // holds the computed value.
        if let Some(a) = &m.audience_action
            && a.name == c.name
        {
            write_audience(m, enc, event, out, style)?;
            continue;
        }
        let v = eval_planned(&c.expr, c.plan.as_ref(), event, &m.steps, &mut enc.memo).map_err(
            |e| RowError {
                column: c.name.clone(),
                message: e.0,
            },
        )?;
        write_cell(out, &v, c.transform.as_ref(), enc, style);
    }
    if m.audience_action.is_some() {
        if !first {
            out.push(m.delimiter);
        }
        write_audience(m, enc, event, out, style)?;
    }
    Ok(())
}

impl Format for Csv<'_> {
    fn header(&self) -> &[u8] {
        &self.header
    }

    fn encode_row<'a>(
        &self,
        enc: &mut Encoder,
        event: &Value<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let start = out.len();
        enc.memo.reset(&self.row.steps);
        let style = self.style.as_ref();
        match style {
            None => out.push(b'\n'),
            // Without a header, rows end with the line ending (in the suffix) instead.
            Some(s) if s.opts.header => out.extend_from_slice(s.line_ending),
            Some(_) => {}
        }
        let fields = out.len();
        match encode_fields(self.row, enc, event, out, style) {
            Ok(()) => {
                // One field written as nothing would make an empty line, which CSV readers
                // skip: it is written as an empty quoted field, as Python's csv module does.
                if let Some(s) = style
                    && out.len() == fields
                    && self.row.batch_size_column.is_none()
                {
                    out.extend_from_slice(&[s.opts.quote; 2]);
                }
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
            new: styled_suffix(self.row, rows, self.style.as_ref()),
        })
    }

    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn cells(&self, file: &[u8]) -> Vec<(String, String)> {
        let mut builder = csv::ReaderBuilder::new();
        builder.delimiter(self.row.delimiter).has_headers(true);
        if let Some(s) = &self.style {
            builder.quote(s.opts.quote);
            if let Some(e) = s.escape {
                builder.escape(Some(e)).double_quote(false);
            }
            if !s.opts.header {
                let mut reader = builder.has_headers(false).from_reader(file);
                return match reader.records().next() {
                    Some(Ok(record)) => self
                        .row
                        .names()
                        .map(str::to_string)
                        .zip(record.iter().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
            }
        }
        let mut reader = builder.from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map(|h| h.iter().map(str::to_string).collect())
            .unwrap_or_default();
        match reader.records().next() {
            Some(Ok(record)) => headers
                .into_iter()
                .zip(record.iter().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn write_audience<'a>(
    m: &'a RowLayout,
    enc: &mut Encoder,
    event: &Value<'a>,
    out: &mut Vec<u8>,
    style: Option<&Style>,
) -> Result<(), RowError> {
    let Some(col) = &m.audience_action else {
        return Ok(());
    };
    let v = audience_action(m, event, &mut enc.memo).map_err(|e| RowError {
        column: col.name.clone(),
        message: e.0,
    })?;
    let v = if v.type_of() == Type::Undefined {
        Value::Null
    } else {
        v
    };
    write_cell(out, &v, col.transform.as_ref(), enc, style);
    Ok(())
}

/// The batch-size field appended to every row of a file with `rows` rows, delimiter included.
pub fn batch_size_suffix(m: &RowLayout, rows: u64) -> Vec<u8> {
    styled_suffix(m, rows, None)
}

/// [`batch_size_suffix`] under CSV options; without a header line, rows end with the line
/// ending instead of starting with it.
fn styled_suffix(m: &RowLayout, rows: u64, style: Option<&Style>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(c) = &m.batch_size_column {
        out.push(m.delimiter);
        let n = rows.to_string();
        write_computed(&mut out, c, &Value::owned_str(n), style);
    }
    if let Some(s) = style.filter(|s| !s.opts.header) {
        out.extend_from_slice(s.line_ending);
    }
    out
}

fn write_computed(out: &mut Vec<u8>, c: &ComputedColumn, v: &Value<'_>, style: Option<&Style>) {
    write_cell(out, v, c.transform.as_ref(), &mut Encoder::new(), style);
}

/// One cell, through the column's transform when it has one: quoted as Segment quotes it,
/// or as the mapping's CSV options say.
fn write_cell(
    out: &mut Vec<u8>,
    v: &Value<'_>,
    transform: Option<&ColumnTransform>,
    enc: &mut Encoder,
    style: Option<&Style>,
) {
    match (style, transform) {
        (Some(style), _) => write_styled(out, v, transform, enc, style),
        (None, Some(t)) => write_transformed(out, v, t, &mut enc.scratch, &mut enc.text),
        (None, None) => write_field(out, v, &mut enc.scratch),
    }
}

/// The CSV options other than Segment's, ready to write with.
#[derive(Debug)]
pub struct Style {
    opts: CsvOptions,
    delimiter: u8,
    /// The byte that escapes a quote (and itself), when it is not the quote doubled.
    escape: Option<u8>,
    line_ending: &'static [u8],
}

impl Style {
    fn new(opts: &CsvOptions, delimiter: u8) -> Style {
        Style {
            escape: match opts.escape {
                Escape::Double => None,
                Escape::Char(c) => Some(c),
            },
            line_ending: match opts.line_ending {
                LineEnding::Lf => b"\n",
                LineEnding::Crlf => b"\r\n",
            },
            opts: opts.clone(),
            delimiter,
        }
    }
}

fn is_null(v: &Value<'_>) -> bool {
    match v {
        Value::Undefined | Value::Null => true,
        Value::Node(n) => n.kind() == Kind::Null,
        _ => false,
    }
}

/// A cell under the mapping's CSV options: `null_value`/`empty_value` as given, unquoted;
/// otherwise quoted always or when necessary, the quote escaped as configured.
fn write_styled(
    out: &mut Vec<u8>,
    v: &Value<'_>,
    transform: Option<&ColumnTransform>,
    enc: &mut Encoder,
    style: &Style,
) {
    enc.scratch.clear();
    write_text(&mut enc.scratch, v);
    let text: &[u8] = match transform {
        Some(t) => {
            let s = String::from_utf8_lossy(&enc.scratch);
            t.apply(&s, &mut enc.text);
            enc.text.as_bytes()
        }
        None => &enc.scratch,
    };
    if text.is_empty() {
        let given = if is_null(v) {
            &style.opts.null_value
        } else {
            &style.opts.empty_value
        };
        out.extend_from_slice(given.as_bytes());
        return;
    }
    let quote = style.opts.quote;
    let special = |b: u8| b == quote || Some(b) == style.escape;
    let needs_quotes = match style.opts.quote_style {
        QuoteStyle::Always => true,
        // A leading byte order mark, unquoted at the start of a file, is taken by readers
        // for the file's own and dropped.
        QuoteStyle::Necessary => {
            text.starts_with("\u{feff}".as_bytes())
                || text
                    .iter()
                    .any(|&b| special(b) || b == style.delimiter || b == b'\n' || b == b'\r')
        }
    };
    if !needs_quotes {
        out.extend_from_slice(text);
        return;
    }
    out.push(quote);
    for &b in text {
        if special(b) {
            out.push(style.escape.unwrap_or(quote));
        }
        out.push(b);
    }
    out.push(quote);
}

/// Segment's header cleaning: the first occurrence of the delimiter is removed from a name
/// (names are not quoted); with tab, names are unchanged.
pub fn clean_header_name(name: &str, delimiter: u8) -> String {
    if delimiter == b'\t' {
        return name.to_string();
    }
    name.replacen(delimiter as char, "", 1)
}

/// The header line (without its line break).
fn header_line(row: &RowLayout) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, n) in row.names().enumerate() {
        if i > 0 {
            out.push(row.delimiter);
        }
        out.extend_from_slice(clean_header_name(n, row.delimiter).as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random cells (quotes, delimiters, CR/LF, multi-byte text) written as the encoder
    /// quotes them read back through the csv crate as the same values, for every delimiter.
    #[test]
    fn random_cells_round_trip_through_a_csv_reader() {
        let pieces = [
            "\"", ",", "|", ";", ":", "\t", "\n", "\r", "\r\n", "a", "bc", " ", "é", "日本", "😀",
            "\"\"", "\\", "0", "",
        ];
        let mut rng = fastrand::Rng::with_seed(42);
        for delimiter in [b',', b'|', b'\t', b';', b':'] {
            let mut file = Vec::new();
            let mut rows = Vec::new();
            for _ in 0..300 {
                let row: Vec<String> = (0..rng.usize(1..6))
                    .map(|_| {
                        (0..rng.usize(0..40))
                            .map(|_| pieces[rng.usize(..pieces.len())])
                            .collect()
                    })
                    .collect();
                for (i, cell) in row.iter().enumerate() {
                    if i > 0 {
                        file.push(delimiter);
                    }
                    write_quoted(&mut file, cell.as_bytes());
                }
                file.push(b'\n');
                rows.push(row);
            }
            let mut reader = ::csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(&file[..]);
            let read: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect())
                .collect();
            assert_eq!(read, rows, "delimiter {:?}", delimiter as char);
        }
    }

    #[test]
    fn quoting() {
        let mut out = Vec::new();
        write_quoted(&mut out, br#"say "hi", ok"#);
        assert_eq!(out, br#""say ""hi"", ok""#);
        out.clear();
        write_quoted(&mut out, b"");
        assert_eq!(out, b"\"\"");
        // Every position of a quote relative to the 8- and 16-byte blocks.
        for len in 0..40 {
            for q in 0..len {
                let mut text = vec![b'a'; len];
                text[q] = b'"';
                out.clear();
                write_quoted(&mut out, &text);
                let want = format!(
                    "\"{}\"",
                    String::from_utf8(text.clone())
                        .unwrap()
                        .replace('"', "\"\"")
                );
                assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
            }
        }
    }
}
