//! Batches: the rows of one file, streamed to disk as they arrive.
//!
//! A 100,000-row batch of full events is tens of megabytes, so rows are never held until a
//! batch closes: they go straight to a temporary file next to their destination. Every row
//! ends with the batch-size field, which is only known when the batch closes; rows are
//! written assuming a full batch (`batch_size`), and a batch that closes early (end of
//! input, byte limit, age) is rewritten once, in place, with its real row count.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::encode::Format;
use crate::encode::layer::{self, FileLayer};
use crate::mapping::Mapping;
pub use crate::naming::LogStart;
use crate::naming::{BatchInfo, BatchTime, FilenameTemplate, NamingError, object_key};
use crate::sink::FinishedFile;

/// The most one batch buffers before writing to its file.
const MAX_BATCH_BUFFER: usize = 256 * 1024;

/// Bytes of write buffer held by open batches together, and the most they may hold.
struct Budget {
    held: AtomicUsize,
    limit: AtomicUsize,
}

/// The run's budget (`settings.open_batch_buffer_mb`): thousands of open batches (many
/// mappings, folders and event types) would otherwise hold up to 256 KB each.
static BUFFERS: Budget = Budget {
    held: AtomicUsize::new(0),
    limit: AtomicUsize::new(64 * 1024 * 1024),
};

/// Sets the write-buffer budget shared by all open batches.
pub fn set_buffer_budget(bytes: usize) {
    BUFFERS.limit.store(bytes, Ordering::Relaxed);
}

/// Batch files open now, in the whole process, and the most that may be: thousands of open
/// batches would otherwise each hold a file, past the process's open-file limit. The
/// least recently written ones are closed (their buffers written first) and reopened when
/// their next row comes; the bytes are the same.
static OPEN_FILES: AtomicUsize = AtomicUsize::new(0);
static FILE_CAP: AtomicUsize = AtomicUsize::new(DEFAULT_FILE_CAP);

/// The cap when the open-file limit is not known.
const DEFAULT_FILE_CAP: usize = 256;

/// Sets the cap on open batch files from the process's open-file limit (after it was
/// raised): a quarter of it, leaving the rest to sockets, the spool, inputs and uploads,
/// between 16 and 4,096.
pub fn set_open_file_cap_from_limit(limit: Option<u64>) {
    let cap = limit.map_or(DEFAULT_FILE_CAP, |l| (l / 4).clamp(16, 4096) as usize);
    set_open_file_cap(cap);
}

/// Sets the cap on open batch files (at least 1).
pub fn set_open_file_cap(cap: usize) {
    FILE_CAP.store(cap.max(1), Ordering::Relaxed);
}

/// The cap on open batch files.
pub fn open_file_cap() -> usize {
    FILE_CAP.load(Ordering::Relaxed)
}

/// Batch files open now.
pub fn open_files() -> usize {
    OPEN_FILES.load(Ordering::Relaxed)
}

/// An open batch file, counted in [`OPEN_FILES`] while it is open.
struct CountedFile(File);

impl CountedFile {
    fn new(file: File) -> CountedFile {
        OPEN_FILES.fetch_add(1, Ordering::Relaxed);
        CountedFile(file)
    }
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A batch's write buffer: empty until rows arrive, grown on demand up to
/// [`MAX_BATCH_BUFFER`] while the shared budget allows, and written straight through when it
/// does not. The bytes reach the file in the same order either way.
struct LazyBuffer {
    buf: Vec<u8>,
    budget: &'static Budget,
}

impl Default for LazyBuffer {
    fn default() -> Self {
        LazyBuffer {
            buf: Vec::new(),
            budget: &BUFFERS,
        }
    }
}

impl LazyBuffer {
    fn write(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > MAX_BATCH_BUFFER {
            self.flush(file)?;
        }
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            let want = needed
                .max(self.buf.capacity() * 2)
                .clamp(4096, MAX_BATCH_BUFFER);
            let grow = want.saturating_sub(self.buf.capacity());
            let limit = self.budget.limit.load(Ordering::Relaxed);
            let taken = self.budget.held.fetch_add(grow, Ordering::Relaxed) + grow;
            if needed > MAX_BATCH_BUFFER || taken > limit {
                self.budget.held.fetch_sub(grow, Ordering::Relaxed);
                self.flush(file)?;
                return file.write_all(bytes);
            }
            self.buf.reserve_exact(want - self.buf.len());
            // `reserve_exact` may give more than asked: count what is held.
            let extra = self.buf.capacity().saturating_sub(want);
            self.budget.held.fetch_add(extra, Ordering::Relaxed);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self, file: &mut File) -> io::Result<()> {
        file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and gives the memory back to the budget.
    fn finish(&mut self, file: &mut File) -> io::Result<()> {
        self.flush(file)?;
        self.release();
        Ok(())
    }

    fn release(&mut self) {
        self.budget
            .held
            .fetch_sub(self.buf.capacity(), Ordering::Relaxed);
        self.buf = Vec::new();
    }
}

impl Drop for LazyBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

/// A batch being written.
pub struct OpenBatch {
    /// The temporary file (removed if the batch is dropped unsealed).
    path: TempPath,
    /// The file while it is open: closed by [`OpenBatch::suspend`] under the open-file cap.
    file: Option<CountedFile>,
    buffer: LazyBuffer,
    /// When rows were last appended (the writer's counter): the least recent are closed
    /// first.
    pub used: u64,
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
    /// When the batch was started, for `batch_max_age_seconds`.
    pub opened: std::time::Instant,
    /// Sequence number of the input chunk of its first row: nothing of that chunk or later
    /// ones is durable while this batch is open (see [`crate::source::Acknowledge`]).
    pub first_seq: u64,
    /// Sequence number of the last row's record, for sources that number them (see
    /// [`crate::journal`]).
    pub last_record: Option<u64>,
    /// Where the batch starts in a partitioned log (windowed sources): names the file.
    pub log: Option<LogStart>,
    /// The start (Unix ms) of the `batch_interval` its rows are of: the batch's time
    /// variables, so that names do not depend on when the replay runs.
    pub interval_start: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot write a batch file in {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("mapping {mapping:?}: {source}")]
    Naming {
        mapping: String,
        #[source]
        source: NamingError,
    },
}

impl OpenBatch {
    /// Starts a file with its header line.
    pub fn create(
        staging: &Path,
        header: &[u8],
        part: u64,
        first_seq: u64,
    ) -> Result<OpenBatch, BatchError> {
        let io_err = |source| BatchError::Io {
            dir: staging.display().to_string(),
            source,
        };
        let (mut file, path) = crate::output_file::create(staging, ".batch-")
            .map_err(io_err)?
            .into_parts();
        let mut buffer = LazyBuffer::default();
        buffer.write(&mut file, header).map_err(io_err)?;
        Ok(OpenBatch {
            path,
            file: Some(CountedFile::new(file)),
            buffer,
            used: 0,
            rows: 0,
            bytes: header.len() as u64,
            header_len: header.len() as u64,
            row_lengths: Vec::new(),
            part,
            first_event: None,
            opened: std::time::Instant::now(),
            first_seq,
            last_record: None,
            log: None,
            interval_start: None,
        })
    }

    /// Appends encoded rows (each starting with `\n`); `row_ends` are the end offsets of the
    /// rows inside `rows_bytes`.
    pub fn append(&mut self, rows_bytes: &[u8], row_ends: &[u32]) -> io::Result<()> {
        let file = open_file(&mut self.file, &self.path)?;
        self.buffer.write(file, rows_bytes)?;
        let mut start = 0u32;
        for &end in row_ends {
            self.row_lengths.push(end - start);
            start = end;
        }
        self.rows += row_ends.len() as u64;
        self.bytes += rows_bytes.len() as u64;
        Ok(())
    }

    /// Whether the batch's file is open now.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Writes what is buffered, gives the buffer back and closes the file, until the next
    /// row reopens it.
    pub fn suspend(&mut self) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            self.buffer.finish(&mut f.0)?;
        }
        Ok(())
    }

    /// Completes the file's content (the slow part, independent of other batches): fixes
    /// the batch-size field if the batch is not full and adds the footer, on the way
    /// through the file layers when there are any, else in place.
    pub fn seal(
        mut self,
        format: &dyn Format,
        layers: &[Box<dyn FileLayer>],
        staging: &Path,
    ) -> Result<SealedBatch, BatchError> {
        let io_err = |source| BatchError::Io {
            dir: staging.display().to_string(),
            source,
        };
        let file = open_file(&mut self.file, &self.path).map_err(io_err)?;
        self.buffer.finish(file).map_err(io_err)?;
        let file = self.file.take().expect("opened above");
        let fix = format.batch_size_fix(self.rows).filter(|f| f.old != f.new);
        // Batches named from a log are recognised after a crash by their plain content.
        let want_sum = self.log.is_some();
        let footer = format.footer();
        let (temp, size, plain_sha256) = if layers.is_empty() {
            let mut bytes = self.bytes;
            if let Some(fix) = &fix {
                bytes = compact_suffixes(
                    &file.0,
                    self.header_len,
                    &self.row_lengths,
                    &fix.old,
                    &fix.new,
                )
                .map_err(io_err)?;
            }
            if !footer.is_empty() {
                write_all_at(&file.0, footer, bytes).map_err(io_err)?;
                bytes += footer.len() as u64;
            }
            let sum = want_sum
                .then(|| crate::sink::sha256_file(&self.path))
                .transpose()
                .map_err(io_err)?;
            (self.path, bytes, sum)
        } else {
            // Written once, through the layers: rewriting the rows on disk first would
            // cost a second pass over the whole batch before compression could start.
            let shrink = fix
                .as_ref()
                .map_or(0, |f| (f.old.len() - f.new.len()) as u64);
            let plain_len = self.bytes - self.rows * shrink + footer.len() as u64;
            let mut hasher = want_sum.then(Sha256::new);
            let (layered, size) = layer::apply_with(layers, staging, Some(plain_len), |out| {
                let mut out = HashingWriter {
                    inner: out,
                    hasher: hasher.as_mut(),
                };
                stream_plain(
                    &file.0,
                    self.header_len,
                    &self.row_lengths,
                    fix.as_ref(),
                    &mut out,
                )?;
                out.write_all(footer)
            })
            .map_err(io_err)?;
            (layered, size, hasher.map(crate::sink::sha256_hex))
        };
        drop(file);
        Ok(SealedBatch {
            temp,
            bytes: size,
            rows: self.rows,
            part: self.part,
            first_event: self.first_event,
            first_seq: self.first_seq,
            last_record: self.last_record,
            log: self.log,
            interval_start: self.interval_start,
            plain_sha256,
        })
    }
}

/// Passes bytes on, hashing them when asked to.
struct HashingWriter<'w, 'h> {
    inner: &'w mut dyn Write,
    hasher: Option<&'h mut Sha256>,
}

impl Write for HashingWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hands the whole of `file` to `f`, in windows of at most [`WINDOW`] bytes.
fn each_window(file: &File, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut buf = vec![0u8; WINDOW];
    let mut at = 0;
    loop {
        let n = read_at(file, &mut buf, at)?;
        if n == 0 {
            return Ok(());
        }
        f(&buf[..n])?;
        at += n as u64;
    }
}

/// `slot`'s file, reopened from `path` (at its end) if it was closed. Not `O_APPEND`: the
/// batch-size fix-up writes at positions inside the file.
fn open_file<'f>(slot: &'f mut Option<CountedFile>, path: &Path) -> io::Result<&'f mut File> {
    if slot.is_none() {
        use std::io::Seek;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        f.seek(io::SeekFrom::End(0))?;
        *slot = Some(CountedFile::new(f));
    }
    Ok(&mut slot.as_mut().expect("opened above").0)
}

/// A batch whose content is final, waiting for its name.
pub struct SealedBatch {
    temp: tempfile::TempPath,
    bytes: u64,
    rows: u64,
    part: u64,
    first_event: Option<serde_json::Value>,
    first_seq: u64,
    last_record: Option<u64>,
    log: Option<LogStart>,
    interval_start: Option<u64>,
    plain_sha256: Option<String>,
}

impl SealedBatch {
    /// Names the file: batch times are taken in the order batches are named.
    pub fn name(
        self,
        m: &Mapping,
        format: &dyn Format,
        layers: &[Box<dyn FileLayer>],
        folder: &str,
        event_type: &str,
    ) -> Result<FinishedFile, BatchError> {
        let info = BatchInfo {
            prefix: &m.filename_prefix,
            extension: m.extension.as_str(),
            // In a log, names come from the log alone, so a rebuilt batch gets the same one.
            time: match (&self.log, self.interval_start) {
                (Some(l), _) => BatchTime {
                    millis: l.time_ms.max(0) as u64,
                },
                (None, Some(millis)) => BatchTime { millis },
                (None, None) => BatchTime::next(),
            },
            event_type,
            mapping: &m.name,
            part: self.part,
            rows: self.rows,
            first_event: self.first_event.as_ref(),
            log: self.log.as_ref(),
        };
        let (key, fallback) = key_for(m, layers, folder, &info)?;
        if let Some(why) = fallback {
            tracing::warn!(
                "mapping {:?}: filename_template failed for a batch ({why}); named {key} instead",
                m.name
            );
        }
        let (content_type, content_encoding) = layer::headers(
            format.content_type(),
            layers.iter().filter_map(|l| l.kind()),
        );
        Ok(FinishedFile {
            temp: self.temp,
            key,
            rows: self.rows,
            bytes: self.bytes,
            mapping: m.name.clone(),
            event_type: event_type.to_string(),
            content_type,
            content_encoding,
            first_seq: self.first_seq,
            folder: folder.to_string(),
            last_record: self.last_record,
            plain_sha256: self.plain_sha256,
        })
    }
}

/// The object key of a batch (with the suffixes of its file layers), and, when the
/// mapping's filename template could not name it, why (the key is then Segment's naming).
///
/// The rows are written: a name that fails for one batch (an event field too long for a
/// key, say) must not lose them, and Segment's own naming always fits.
pub fn key_for(
    m: &Mapping,
    layers: &[Box<dyn FileLayer>],
    folder: &str,
    info: &BatchInfo<'_>,
) -> Result<(String, Option<String>), BatchError> {
    let (mut key, fallback) = plain_key(m, folder, info)?;
    key.push_str(&layer::key_suffixes(layers));
    Ok((key, fallback))
}

/// [`key_for`] before the file layers' suffixes.
fn plain_key(
    m: &Mapping,
    folder: &str,
    info: &BatchInfo<'_>,
) -> Result<(String, Option<String>), BatchError> {
    let naming_err = |source| BatchError::Naming {
        mapping: m.name.clone(),
        source,
    };
    match m
        .filename
        .file_name(info)
        .and_then(|f| object_key(folder, &f))
    {
        Ok(key) => Ok((key, None)),
        Err(why) if !matches!(m.filename, FilenameTemplate::Segment) => {
            let fallback = FilenameTemplate::Segment
                .file_name(info)
                .map_err(naming_err)?;
            let key = object_key(folder, &fallback).map_err(naming_err)?;
            Ok((key, Some(why.to_string())))
        }
        Err(why) => Err(naming_err(why)),
    }
}

/// How much of a batch file is read at once when it is rewritten or streamed.
const WINDOW: usize = 1024 * 1024;

/// Replaces the trailing `old` field of every row (whose lengths are given), in place, and
/// truncates the file to its new length, which it returns.
///
/// `new` is never longer than `old` (a batch closes with at most `batch_size` rows), so
/// every row moves towards the start of the file and a window is always read before
/// anything is written over it. Rewriting in place reuses the file's cached pages: writing
/// a second copy and deleting the first costs twice the page-cache traffic, and this runs
/// on the single writer thread at the end of input, where nothing else overlaps it.
pub fn compact_suffixes(
    file: &File,
    header_len: u64,
    row_lengths: &[u32],
    old: &[u8],
    new: &[u8],
) -> io::Result<u64> {
    debug_assert!(new.len() <= old.len());
    let mut write_at = header_len;
    rewrite_rows(file, header_len, row_lengths, old, new, |window| {
        write_all_at(file, window, write_at)?;
        write_at += window.len() as u64;
        Ok(())
    })?;
    file.set_len(write_at)?;
    Ok(write_at)
}

/// Writes `file`'s content to `out`: its header, then its rows with `fix` applied to each,
/// in windows of about [`WINDOW`].
pub fn stream_plain(
    file: &File,
    header_len: u64,
    row_lengths: &[u32],
    fix: Option<&crate::encode::TailFix>,
    out: &mut dyn Write,
) -> io::Result<()> {
    match fix {
        Some(fix) => {
            let mut header = vec![0; header_len as usize];
            read_exact_at(file, &mut header, 0)?;
            out.write_all(&header)?;
            rewrite_rows(file, header_len, row_lengths, &fix.old, &fix.new, |w| {
                out.write_all(w)
            })
        }
        None => each_window(file, |w| out.write_all(w)),
    }
}

/// Reads the rows after `header_len` in windows of whole rows (at least one, however long)
/// and hands each window to `emit` with every row's trailing `old` replaced by `new`. A
/// window is read completely before `emit` sees it, so `emit` may write over it.
fn rewrite_rows(
    file: &File,
    header_len: u64,
    row_lengths: &[u32],
    old: &[u8],
    new: &[u8],
    mut emit: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut input = Vec::new();
    let mut output = Vec::with_capacity(WINDOW);
    let mut read_at = header_len;
    let mut rows = row_lengths;
    while !rows.is_empty() {
        let mut take = 0;
        let mut len = 0usize;
        while take < rows.len() && (take == 0 || len + rows[take] as usize <= WINDOW) {
            len += rows[take] as usize;
            take += 1;
        }
        input.resize(len, 0);
        read_exact_at(file, &mut input, read_at)?;
        output.clear();
        let mut start = 0;
        for &row_len in &rows[..take] {
            let row = &input[start..start + row_len as usize];
            start += row_len as usize;
            let Some(body) = row.strip_suffix(old) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a row does not end with the batch-size field",
                ));
            };
            output.extend_from_slice(body);
            output.extend_from_slice(new);
        }
        emit(&output)?;
        read_at += len as u64;
        rows = &rows[take..];
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read(buf)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(offset))?;
    file.write_all(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    /// Buffers start empty, stay within the shared budget however many are open, and the
    /// files get the same bytes as unbuffered writes. (One test: the budget is global.)
    #[test]
    fn write_buffers_share_one_budget() {
        let budget: &'static Budget = Box::leak(Box::new(Budget {
            held: AtomicUsize::new(0),
            limit: AtomicUsize::new(1024 * 1024),
        }));
        let mut files: Vec<(File, LazyBuffer, Vec<u8>)> = (0..50)
            .map(|_| {
                let buf = LazyBuffer {
                    buf: Vec::new(),
                    budget,
                };
                (tempfile::tempfile().unwrap(), buf, Vec::new())
            })
            .collect();
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
        let mut rng = fastrand::Rng::with_seed(5);
        for round in 0..400 {
            for (f, buf, expected) in &mut files {
                let len = rng.usize(1..3000);
                let row: Vec<u8> = (0..len).map(|_| rng.alphanumeric() as u8).collect();
                buf.write(f, &row).unwrap();
                expected.extend_from_slice(&row);
                let held = budget.held.load(Ordering::Relaxed);
                assert!(held <= 1024 * 1024, "round {round}: {held} bytes held");
            }
        }
        assert!(budget.held.load(Ordering::Relaxed) > 0);
        for (f, buf, expected) in &mut files {
            buf.finish(f).unwrap();
            let mut got = Vec::new();
            f.seek(io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut got).unwrap();
            assert!(got == *expected, "a file differs from what was written");
        }
        drop(files);
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
    }

    fn compacted(
        src: &[u8],
        header_len: u64,
        lengths: &[u32],
        old: &[u8],
        new: &[u8],
    ) -> io::Result<Vec<u8>> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(src).unwrap();
        let n = compact_suffixes(&f, header_len, lengths, old, new)?;
        let mut out = Vec::new();
        f.seek(io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

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
        let out = compacted(&src, header.len() as u64, &lengths, b",\"100\"", b",\"2\"").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,batch_size\n\"x\",\"1\n2,\"\"100\"\"\",\"2\"\n\"y\",\"\",\"2\""
        );
        // Same length: rewritten where it stands.
        let out = compacted(
            &src,
            header.len() as u64,
            &lengths,
            b",\"100\"",
            b",\"999\"",
        )
        .unwrap();
        assert_eq!(out.len(), src.len());
        assert!(compacted(&src, header.len() as u64, &lengths, b",\"9\"", b"").is_err());
    }

    /// Many windows, rows longer than a window, and a shrinking suffix: the result is what
    /// a plain copy would give.
    #[test]
    fn compacts_across_windows() {
        let header = b"h1,h2,batch_size";
        let (old, new): (&[u8], &[u8]) = (b",\"100000\"", b",\"7\"");
        let mut src = header.to_vec();
        let mut expected = header.to_vec();
        let mut lengths = Vec::new();
        for i in 0..3000usize {
            let body_len = if i % 1000 == 7 {
                1_500_000
            } else {
                300 + i % 977
            };
            let mut row = vec![b'\n'];
            row.extend((0..body_len).map(|j| b'a' + ((i + j) % 26) as u8));
            expected.extend_from_slice(&row);
            expected.extend_from_slice(new);
            row.extend_from_slice(old);
            lengths.push(row.len() as u32);
            src.extend_from_slice(&row);
        }
        let out = compacted(&src, header.len() as u64, &lengths, old, new).unwrap();
        assert!(out == expected);
        // Streamed instead of rewritten in place (a batch with file layers): the same bytes,
        // and the file untouched.
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&src).unwrap();
        let fix = crate::encode::TailFix {
            old: old.to_vec(),
            new: new.to_vec(),
        };
        let mut streamed = Vec::new();
        stream_plain(&f, header.len() as u64, &lengths, Some(&fix), &mut streamed).unwrap();
        assert!(streamed == expected);
        let mut unfixed = Vec::new();
        stream_plain(&f, header.len() as u64, &lengths, None, &mut unfixed).unwrap();
        assert!(unfixed == src);
    }
}
