//! serve's write-ahead spool: accepted requests are fsynced here before they are answered,
//! and the pipeline reads them back from here, live and after a crash alike.
//!
//! - [`SpoolIntake`] (the HTTP front end's [`Intake`](super::intake::Intake)) appends each
//!   request as one framed, CRC-checked record to the current segment; one thread writes
//!   every request that arrived meanwhile and fsyncs once for all of them (group commit),
//!   then answers them.
//! - [`SpoolSource`] (the pipeline's [`Source`]) reads the records that are fsynced, in
//!   order, numbering every event (see [`crate::source::Chunk::record_seq`]).
//! - Once the run acknowledges that a segment's events are all in finished files (or the
//!   rejects file, or matched nothing), the segment is deleted.
//! - On start, the segments left are checked frame by frame (a torn tail is truncated and
//!   reported) and read again from the first; the [`Journal`] beside them says which of
//!   their rows are already in finished files, so none is written twice.

mod dedupe;
mod segment;
mod writer;

pub use writer::SpoolIntake;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{Acknowledge, Chunk, Source, SourceError, Unit};
use crate::journal::{Journal, JournalError};
use crate::sink::Durability;
use segment::{FRAME_HEADER, FrameHeader, HEADER_LEN};

/// Name of the spool's folder inside the output directory or the outbox, by default.
pub const SPOOL_DIR: &str = ".s3actions-spool";
/// `dedupe_window` by default: Segment's API de-duplicates over about a day.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `dedupe_max_ids` by default: about 120 MB of memory at most.
pub const DEFAULT_DEDUPE_MAX_IDS: u64 = 2_000_000;
/// The spool's default size limit (`spool_max_bytes`).
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// A segment is rolled once it is this large.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest request the spool keeps (its events' lines): a record is read back after a
/// crash only up to this size, so a larger one is refused rather than written.
pub const MAX_RECORD_BYTES: usize = segment::MAX_PAYLOAD as usize;
/// The name of the spool's records in the rejects file (`"input": "serve"`, `"offset": N`).
pub const ORIGIN: &str = "serve";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "spool {}: another s3actions process is using this spool (give each server its own --spool)",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("spool {}: not a spool segment (unexpected content at its start)", path.display())]
    NotASpool { path: PathBuf },
    #[error(
        "spool {}: segment format version {found} is not one this s3actions reads (version {}); run the s3actions that wrote it to drain the spool",
        path.display(),
        segment::VERSION
    )]
    Version { path: PathBuf, found: u32 },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A segment file, as the writer and the reader see it.
#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    /// Bytes that are fsynced (readable).
    durable: u64,
    /// A later segment exists: this one grows no more.
    sealed: bool,
}

#[derive(Debug, Default)]
struct State {
    segments: VecDeque<Segment>,
    /// The writer has stopped: once the reader has read every segment, the input ends.
    closed: bool,
}

/// What the writer, the reader and the acknowledgements share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    /// Signalled when records become durable or the writer stops.
    grew: Condvar,
    /// Bytes in the spool's segments.
    used: AtomicU64,
    limit: u64,
    /// With de-duplication: where a deleted segment's id hashes go, and how many of them
    /// are remembered at most (the file is compacted to that many).
    ids_file: Option<PathBuf>,
    max_ids: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the spool behaves (from the settings).
#[derive(Clone, Copy, Debug)]
pub struct SpoolOptions {
    /// `spool_max_bytes`.
    pub max_bytes: u64,
    /// `dedupe_window`: drop events whose `messageId` was accepted this recently.
    pub dedupe_window: Option<Duration>,
    /// `dedupe_max_ids`: ids remembered at most; the oldest go first.
    pub dedupe_max_ids: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            dedupe_window: Some(DEFAULT_DEDUPE_WINDOW),
            dedupe_max_ids: DEFAULT_DEDUPE_MAX_IDS,
        }
    }
}

/// Opens the spool in `dir` (created if needed): checks and recovers what a previous run
/// left, and returns the intake for the HTTP front end and the source for the pipeline.
pub fn open(
    dir: &Path,
    options: &SpoolOptions,
) -> Result<(Arc<SpoolIntake>, SpoolSource), SpoolError> {
    std::fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
    let lock_path = dir.join("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| SpoolError::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        return Err(SpoolError::Locked {
            path: dir.to_path_buf(),
        });
    }
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))? {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(segment::parse_name) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    let ids_file = options.dedupe_window.map(|_| dedupe::ids_path(dir));
    let max_ids = options.dedupe_max_ids.max(1) as usize;
    let mut seen = match (&ids_file, options.dedupe_window) {
        (Some(path), Some(window)) => Some(dedupe::Dedupe::load(
            path,
            window.as_millis() as u64,
            max_ids,
            writer::now_ms(),
        )?),
        _ => None,
    };
    let mut segments = VecDeque::new();
    let mut next_seq = None;
    let mut used = 0u64;
    for (_, path) in found {
        let mut remember = |ms: u64, hashes: &[u8]| {
            if let Some(d) = seen.as_mut() {
                segment::id_hashes(hashes).for_each(|h| d.add(ms, h));
            }
        };
        let Some(s) = segment::scan(&path, &mut remember)? else {
            // Created but its header never made it to disk: it held nothing.
            std::fs::remove_file(&path).map_err(|e| SpoolError::io(&path, e))?;
            continue;
        };
        if let Some(expected) = next_seq
            && s.first != expected
        {
            tracing::error!(
                "spool segment {}: starts at event {} where {expected} was expected; the events between were lost (a damaged spool)",
                path.display(),
                s.first
            );
        }
        next_seq = Some(s.next_seq);
        used += s.len;
        segments.push_back(Segment {
            first: s.first,
            path: s.path,
            durable: s.len,
            sealed: true,
        });
    }
    if let Some(d) = seen.as_ref().filter(|d| !d.is_empty()) {
        tracing::info!(
            ids = d.len(),
            "de-duplication: message ids accepted within dedupe_window"
        );
    }
    let keep_from = segments.front().map_or(next_seq.unwrap_or(0), |s| s.first);
    let journal = Arc::new(Journal::open(&dir.join("journal"), keep_from)?);
    // Never number an event again: not below what the journal has seen either.
    let floor = journal.marks().values().map(|t| t + 1).max().unwrap_or(0);
    let next_seq = next_seq.unwrap_or(0).max(floor);
    let recovered: u64 = next_seq.saturating_sub(keep_from);
    if !segments.is_empty() {
        tracing::info!(
            segments = segments.len(),
            bytes = used,
            "reading the spool left by the last run again; rows already in finished files are not written twice"
        );
    }
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        state: Mutex::new(State {
            segments,
            closed: false,
        }),
        grew: Condvar::new(),
        used: AtomicU64::new(used),
        limit: options.max_bytes,
        ids_file,
        max_ids,
    });
    let intake = SpoolIntake::start(shared.clone(), next_seq, lock, seen)?;
    let acks = Arc::new(SpoolAcks {
        shared: shared.clone(),
        handed: Mutex::new(VecDeque::new()),
    });
    let source = SpoolSource {
        shared,
        reading: None,
        acks,
        journal,
        origin: Arc::from(ORIGIN),
        chunk_size: crate::pipeline::CHUNK_SIZE,
        expected: None,
        recovered,
        ids: Vec::new(),
    };
    Ok((intake, source))
}

/// The segment being read.
struct Reading {
    first: u64,
    file: File,
    pos: u64,
}

/// The pipeline's source: the spool's events, in order, as they become durable.
pub struct SpoolSource {
    shared: Arc<Shared>,
    reading: Option<Reading>,
    acks: Arc<SpoolAcks>,
    journal: Arc<Journal>,
    origin: Arc<str>,
    chunk_size: usize,
    /// The sequence number the next frame must have.
    expected: Option<u64>,
    recovered: u64,
    /// Scratch space for a frame's id hashes (checked, not used).
    ids: Vec<u8>,
}

impl SpoolSource {
    /// Events found in the spool when it was opened (read again first).
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// Bytes in the spool now.
    pub fn used(&self) -> u64 {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// How many durable bytes the segment being read has past the read position (moving on
    /// to the next segment when this one is read and sealed), waiting for the writer while
    /// there are none and `wait`; `Some(0)` when there are none and not `wait`, `None` at
    /// the end of the spool.
    fn readable(&mut self, wait: bool) -> io::Result<Option<u64>> {
        let mut state = self.shared.lock();
        loop {
            if self.reading.is_none() {
                let Some(front) = state.segments.front() else {
                    if state.closed {
                        return Ok(None);
                    }
                    state = self.wait(state, wait)?;
                    if !wait {
                        return Ok(Some(0));
                    }
                    continue;
                };
                let file = File::open(&front.path)?;
                self.reading = Some(Reading {
                    first: front.first,
                    file,
                    pos: HEADER_LEN,
                });
            }
            let reading = self.reading.as_ref().expect("set above");
            let position = state.segments.iter().position(|s| s.first == reading.first);
            let Some(i) = position else {
                // Deleted under us: cannot happen while it has unread events.
                return Err(io::Error::other(
                    "a spool segment was deleted while being read",
                ));
            };
            let seg = &state.segments[i];
            if seg.durable > reading.pos {
                return Ok(Some(seg.durable - reading.pos));
            }
            if seg.sealed && i + 1 < state.segments.len() {
                let next = &state.segments[i + 1];
                let file = File::open(&next.path)?;
                self.reading = Some(Reading {
                    first: next.first,
                    file,
                    pos: HEADER_LEN,
                });
                continue;
            }
            if state.closed && i + 1 == state.segments.len() {
                return Ok(None);
            }
            if !wait {
                return Ok(Some(0));
            }
            state = self.wait(state, wait)?;
        }
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        wait: bool,
    ) -> io::Result<MutexGuard<'a, State>> {
        if !wait {
            return Ok(state);
        }
        let (state, _) = self
            .shared
            .grew
            .wait_timeout(state, Duration::from_secs(1))
            .unwrap_or_else(|e| e.into_inner());
        Ok(state)
    }

    /// Appends the frames in the next `avail` bytes of the segment being read to `data`,
    /// up to about `room` bytes (at least one frame). Returns (first number, events).
    fn read_frames(
        &mut self,
        avail: u64,
        room: usize,
        data: &mut Vec<u8>,
        oldest_ms: &mut Option<u64>,
    ) -> io::Result<(Option<u64>, u64)> {
        let reading = self.reading.as_mut().expect("readable() opened it");
        let end = reading.pos + avail;
        let mut first = None;
        let mut events = 0u64;
        while reading.pos < end && (first.is_none() || data.len() < room) {
            let mut raw = [0u8; FRAME_HEADER];
            read_exact_at(&reading.file, &mut raw, reading.pos)?;
            let h = FrameHeader::parse(&raw);
            let start = data.len();
            data.resize(start + h.len as usize, 0);
            let at = reading.pos + FRAME_HEADER as u64;
            read_exact_at(&reading.file, &mut data[start..], at)?;
            self.ids.resize(h.ids_len(), 0);
            read_exact_at(&reading.file, &mut self.ids, at + u64::from(h.len))?;
            if !h.checks(&raw, &data[start..], &self.ids) {
                return Err(io::Error::other(format!(
                    "spool segment {} is damaged at byte {} (CRC mismatch)",
                    segment::file_name(reading.first),
                    reading.pos
                )));
            }
            if let Some(want) = self.expected
                && want != h.first_seq
            {
                return Err(io::Error::other(format!(
                    "spool segment {}: event {} where {want} was expected",
                    segment::file_name(reading.first),
                    h.first_seq
                )));
            }
            self.expected = Some(h.first_seq + u64::from(h.count));
            first.get_or_insert(h.first_seq);
            oldest_ms.get_or_insert(h.received_ms);
            events += u64::from(h.count);
            reading.pos += h.frame_len();
        }
        Ok((first, events))
    }
}

impl Source for SpoolSource {
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
        let dir = self.shared.dir.clone();
        let err = |source: io::Error| SourceError {
            input: format!("the spool {}", dir.display()),
            source,
        };
        let mut data = spare;
        data.clear();
        let mut first = None;
        let mut events = 0u64;
        let mut oldest_ms = None;
        loop {
            // Wait for the first frame; then hand on what is there without waiting.
            let wait = first.is_none();
            let avail = match self.readable(wait) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => return Err(err(e)),
            };
            if avail == 0 {
                if first.is_some() {
                    break;
                }
                continue;
            }
            let room = self.chunk_size;
            let (f, n) = self
                .read_frames(avail, room, &mut data, &mut oldest_ms)
                .map_err(err)?;
            if first.is_none() {
                first = f;
            }
            events += n;
            if data.len() >= room {
                break;
            }
        }
        let Some(first) = first else {
            return Ok(None);
        };
        self.acks
            .handed()
            .push_back((seq, first + events, oldest_ms.unwrap_or(0)));
        Ok(Some(Chunk {
            seq,
            input: 0,
            origin: self.origin.clone(),
            unit: Unit::Offset,
            data,
            lines: true,
            record_seq: Some(first),
            ..Chunk::default()
        }))
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
        Some(self.acks.clone())
    }

    fn live(&self) -> bool {
        true
    }

    fn journal(&self) -> Option<Arc<Journal>> {
        Some(self.journal.clone())
    }
}

/// Deletes segments once every event in them is durable elsewhere.
struct SpoolAcks {
    shared: Arc<Shared>,
    /// (chunk, number after its last event, when its first request was received), for the
    /// chunks handed on and not yet acknowledged.
    handed: Mutex<VecDeque<(u64, u64, u64)>>,
}

impl SpoolAcks {
    fn handed(&self) -> MutexGuard<'_, VecDeque<(u64, u64, u64)>> {
        self.handed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Acknowledge for SpoolAcks {
    fn level(&self) -> Durability {
        // The spool promises what is on this machine's disk; files must be at least that.
        Durability::Machine
    }

    fn durable_below(&self, seq: u64) {
        let mut acked = None;
        {
            let mut handed = self.handed();
            while let Some(&(s, end, _)) = handed.front() {
                if s >= seq {
                    break;
                }
                acked = Some(end);
                handed.pop_front();
            }
        }
        let Some(acked) = acked else { return };
        let oldest = self.handed().front().map(|&(_, _, ms)| ms);
        let mut state = self.shared.lock();
        // A segment goes once the next one starts at or below what is acknowledged; the
        // last segment (the writer's) stays, and with it the numbering.
        while state.segments.len() > 1 && state.segments[1].first <= acked {
            if let Some(ids) = &self.shared.ids_file
                && let Err(e) = keep_ids(&state.segments[0].path, ids, self.shared.max_ids)
            {
                tracing::warn!(segment = %state.segments[0].path.display(), error = %e, "cannot keep a finished spool segment's message ids for de-duplication; the segment stays");
                break;
            }
            let gone = state.segments.pop_front().expect("len > 1");
            match std::fs::remove_file(&gone.path) {
                Ok(()) => {
                    self.shared.used.fetch_sub(gone.durable, Ordering::Relaxed);
                    tracing::debug!(segment = %gone.path.display(), "spool segment done: deleted");
                }
                Err(e) => {
                    tracing::warn!(segment = %gone.path.display(), error = %e, "cannot delete a finished spool segment; it will be read again on restart (its rows are not written twice)");
                    self.shared.used.fetch_sub(gone.durable, Ordering::Relaxed);
                }
            }
        }
        drop(state);
        crate::metrics::spool_state(self.shared.used.load(Ordering::Relaxed), oldest);
    }
}

/// Appends a segment's id hashes to the `ids` file, before the segment goes.
fn keep_ids(segment: &Path, ids: &Path, max_ids: usize) -> Result<(), SpoolError> {
    let mut entries = Vec::new();
    segment::scan(segment, &mut |ms, hashes| {
        entries.extend(segment::id_hashes(hashes).map(|h| (ms, h)));
    })?;
    dedupe::append(ids, &entries, max_ids).map_err(|e| SpoolError::io(ids, e))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests;
