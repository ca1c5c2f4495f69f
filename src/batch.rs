//! Batches: the rows of one file, streamed to disk as they arrive.
//!
//! A 100,000-row batch of full events is tens of megabytes, so rows are never held until a
//! batch closes: they go straight to a temporary file next to their destination. Every row
//! ends with the batch-size field, which is only known when the batch closes; rows are
//! written assuming a full batch (`batch_size`), and a batch that closes early (end of
//! input, byte limit) is rewritten once, streaming, with its real row count.

use std::io::{self, BufReader, BufWriter, Read, Write};
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
    header_len: u64,
    /// Length of every row so far (4 bytes a row), to rewrite the batch-size field of a
    /// batch that closes early without re-reading its content for row boundaries.
    row_lengths: Vec<u32>,
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
            header_len: header.len() as u64,
            row_lengths: Vec::new(),
            part,
            first_event: None,
        })
    }

    /// Appends encoded rows (each starting with `\n`); `row_ends` are the end offsets of the
    /// rows inside `rows_bytes`.
    pub fn append(&mut self, rows_bytes: &[u8], row_ends: &[u32]) -> io::Result<()> {
        self.writer.write_all(rows_bytes)?;
        let mut start = 0u32;
        for &end in row_ends {
            self.row_lengths.push(end - start);
            start = end;
        }
        self.rows += row_ends.len() as u64;
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
                BufReader::with_capacity(1024 * 1024, src),
                &mut out,
                self.header_len,
                &self.row_lengths,
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

/// Copies a batch file, replacing the trailing `old` field of every row (whose lengths
/// are given) with `new`. Returns the number of bytes written.
pub fn rewrite_suffixes(
    mut src: impl Read,
    dst: &mut impl Write,
    header_len: u64,
    row_lengths: &[u32],
    old: &[u8],
    new: &[u8],
) -> io::Result<u64> {
    let mut header = vec![0u8; header_len as usize];
    src.read_exact(&mut header)?;
    dst.write_all(&header)?;
    let mut written = header_len;
    let mut row = Vec::new();
    for &len in row_lengths {
        row.resize(len as usize, 0);
        src.read_exact(&mut row)?;
        if !row.ends_with(old) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a row does not end with the batch-size field",
            ));
        }
        let body = &row[..row.len() - old.len()];
        dst.write_all(body)?;
        dst.write_all(new)?;
        written += (body.len() + new.len()) as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_last_field_of_every_row() {
        let header = b"a,b,batch_size";
        let rows: [&[u8]; 2] = [
            b"\n\"x\",\"1\n2,\"\"100\"\"\",\"100\"",
            b"\n\"y\",\"\",\"100\"",
        ];
        let mut src = header.to_vec();
        let mut lengths = Vec::new();
        for r in rows {
            src.extend_from_slice(r);
            lengths.push(r.len() as u32);
        }
        let mut out = Vec::new();
        let n = rewrite_suffixes(
            &src[..],
            &mut out,
            header.len() as u64,
            &lengths,
            b",\"100\"",
            b",\"2\"",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "a,b,batch_size\n\"x\",\"1\n2,\"\"100\"\"\",\"2\"\n\"y\",\"\",\"2\""
        );
        assert_eq!(n, out.len() as u64);
        let mut bad = Vec::new();
        assert!(
            rewrite_suffixes(
                &src[..],
                &mut bad,
                header.len() as u64,
                &lengths,
                b",\"9\"",
                b""
            )
            .is_err()
        );
    }
}
