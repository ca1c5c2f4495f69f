//! Batches: the rows of one file, streamed to disk as they arrive.
//!
//! A 100,000-row batch of full events is tens of megabytes, so rows are never held until a
//! batch closes: they go straight to a temporary file next to their destination. Every row
//! ends with the batch-size field, which is only known when the batch closes; rows are
//! written assuming a full batch (`batch_size`), and a batch that closes early (end of
//! input, byte limit) is rewritten once, streaming, with its real row count.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use crate::encode::batch_size_suffix;
use crate::mapping::Mapping;
use crate::naming::{BatchInfo, BatchTime, object_key};
use crate::sink::FinishedFile;

/// A batch being written.
pub struct OpenBatch {
    writer: BufWriter<NamedTempFile>,
    pub rows: u64,
    pub bytes: u64,
    /// 1, 2, ... within its partition.
    pub part: u64,
    /// The first event, when the filename template reads event fields.
    pub first_event: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot write a batch file in {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("mapping {mapping:?}: {message}")]
    Naming { mapping: String, message: String },
}

impl OpenBatch {
    /// Starts a file with its header line.
    pub fn create(staging: &Path, header: &[u8], part: u64) -> Result<OpenBatch, BatchError> {
        let io_err = |source| BatchError::Io {
            dir: staging.display().to_string(),
            source,
        };
        let file = tempfile::Builder::new()
            .prefix(".batch-")
            .tempfile_in(staging)
            .map_err(io_err)?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        writer.write_all(header).map_err(io_err)?;
        Ok(OpenBatch {
            writer,
            rows: 0,
            bytes: header.len() as u64,
            part,
            first_event: None,
        })
    }

    /// Appends encoded rows (each starting with `\n`).
    pub fn append(&mut self, rows_bytes: &[u8], rows: u64) -> io::Result<()> {
        self.writer.write_all(rows_bytes)?;
        self.rows += rows;
        self.bytes += rows_bytes.len() as u64;
        Ok(())
    }

    /// Completes the file: fixes the batch-size field if the batch is not full, names it.
    pub fn finish(
        self,
        m: &Mapping,
        folder: &str,
        event_type: &str,
        staging: &Path,
    ) -> Result<FinishedFile, BatchError> {
        let io_err = |source| BatchError::Io {
            dir: staging.display().to_string(),
            source,
        };
        let file = self
            .writer
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        let mut bytes = self.bytes;
        let temp = if self.rows < m.batch_size && m.batch_size_column.is_some() {
            let old = batch_size_suffix(m, m.batch_size);
            let new = batch_size_suffix(m, self.rows);
            let fixed = tempfile::Builder::new()
                .prefix(".batch-")
                .tempfile_in(staging)
                .map_err(io_err)?;
            let mut out = BufWriter::with_capacity(256 * 1024, fixed);
            let src = file.reopen().map_err(io_err)?;
            bytes = rewrite_suffixes(
                BufReader::with_capacity(256 * 1024, src),
                &mut out,
                &old,
                &new,
            )
            .map_err(io_err)?;
            let fixed = out.into_inner().map_err(|e| io_err(e.into_error()))?;
            drop(file);
            fixed.into_temp_path()
        } else {
            file.into_temp_path()
        };
        let time = BatchTime::next();
        let info = BatchInfo {
            prefix: &m.filename_prefix,
            extension: m.extension.as_str(),
            time,
            event_type,
            mapping: &m.name,
            part: self.part,
            rows: self.rows,
            first_event: self.first_event.as_ref(),
        };
        let naming_err = |message| BatchError::Naming {
            mapping: m.name.clone(),
            message,
        };
        let filename = m.filename.render(&info).map_err(naming_err)?;
        let key = object_key(folder, &filename).map_err(naming_err)?;
        Ok(FinishedFile {
            temp,
            key,
            rows: self.rows,
            bytes,
            mapping: m.name.clone(),
            event_type: event_type.to_string(),
            content_type: m.extension.content_type(),
        })
    }
}

/// Copies a batch file, replacing the trailing `old` field of every row with `new`. Rows are
/// found by their line breaks outside quotes (every value is quoted, so this is exact).
/// Returns the number of bytes written.
pub fn rewrite_suffixes(
    mut src: impl BufRead,
    dst: &mut impl Write,
    old: &[u8],
    new: &[u8],
) -> io::Result<u64> {
    let mut written = 0u64;
    // The header line has no quotes and no batch-size field: copy it as it is.
    let mut header = Vec::new();
    src.read_until(b'\n', &mut header)?;
    dst.write_all(&header)?;
    written += header.len() as u64;
    let mut row = Vec::new();
    let mut in_quotes = false;
    let finish_row = |row: &mut Vec<u8>, dst: &mut dyn Write, newline: bool| -> io::Result<u64> {
        if !row.ends_with(old) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a row does not end with the batch-size field",
            ));
        }
        row.truncate(row.len() - old.len());
        row.extend_from_slice(new);
        if newline {
            row.push(b'\n');
        }
        dst.write_all(row)?;
        let n = row.len() as u64;
        row.clear();
        Ok(n)
    };
    loop {
        let buf = src.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        let mut start = 0;
        while let Some(p) = memchr::memchr2(b'"', b'\n', &buf[start..]) {
            let i = start + p;
            if buf[i] == b'"' {
                in_quotes = !in_quotes;
                row.extend_from_slice(&buf[start..=i]);
            } else if in_quotes {
                row.extend_from_slice(&buf[start..=i]);
            } else {
                row.extend_from_slice(&buf[start..i]);
                written += finish_row(&mut row, dst, true)?;
            }
            start = i + 1;
        }
        row.extend_from_slice(&buf[start..]);
        src.consume(len);
    }
    if !row.is_empty() {
        written += finish_row(&mut row, dst, false)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_row_ends() {
        let src = b"a,b,batch_size\n\"x\",\"1\n2,\"\"\"\"100\"\"\",\"100\"\n\"y\",\"\",\"100\"";
        let mut out = Vec::new();
        let n = rewrite_suffixes(&src[..], &mut out, b",\"100\"", b",\"2\"").unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "a,b,batch_size\n\"x\",\"1\n2,\"\"\"\"100\"\"\",\"2\"\n\"y\",\"\",\"2\""
        );
        assert_eq!(n, out.len() as u64);
    }

    #[test]
    fn small_reads_across_quotes() {
        let src = b"h\n\"a\"\"b\",\"9\"\n\"c\n\",\"9\"";
        let mut out = Vec::new();
        rewrite_suffixes(
            BufReader::with_capacity(2, &src[..]),
            &mut out,
            b",\"9\"",
            b",\"1\"",
        )
        .unwrap();
        assert_eq!(out, b"h\n\"a\"\"b\",\"1\"\n\"c\n\",\"1\"");
    }
}
