//! The spool's writer: one thread appends the requests that arrived meanwhile, fsyncs once
//! for all of them (group commit), then answers them.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::dedupe::{self, Dedupe};
use super::segment::{self, HEADER_LEN};
use super::{SEGMENT_BYTES, Segment, Shared, SpoolError};
use crate::source::intake::{Accepting, Intake, IntakeError, Received};

/// Bytes of requests written in one group at most: a group is answered as a whole.
const GROUP_BYTES: usize = 8 * 1024 * 1024;
/// What a sender is told to wait when the spool is full.
const RETRY_AFTER: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<(), IntakeError>>;

/// `--durability fsync`: a request is answered `200` once its events are fsynced in the
/// spool.
pub struct SpoolIntake {
    tx: Mutex<Option<Sender<(Received, Reply)>>>,
    shared: Arc<Shared>,
    /// Set when a write failed and could not be undone: nothing more is taken.
    broken: Arc<Mutex<Option<String>>>,
}

impl SpoolIntake {
    /// Starts the writer thread, appending to a new segment numbered from `next_seq`
    /// (or the last one, if it is empty). `lock` is held for as long as the writer runs.
    pub(super) fn start(
        shared: Arc<Shared>,
        next_seq: u64,
        lock: File,
        dedupe: Option<Dedupe>,
    ) -> Result<Arc<SpoolIntake>, SpoolError> {
        let file = open_active(&shared, next_seq)?;
        let (tx, rx) = channel::<(Received, Reply)>();
        let broken = Arc::new(Mutex::new(None));
        let writer = Writer {
            shared: shared.clone(),
            file,
            next_seq,
            broken: broken.clone(),
            dedupe,
            _lock: lock,
        };
        std::thread::Builder::new()
            .name("s3actions-spool".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| SpoolError::io(&shared.dir, e))?;
        Ok(Arc::new(SpoolIntake {
            tx: Mutex::new(Some(tx)),
            shared,
            broken,
        }))
    }

    fn sender(&self) -> Option<Sender<(Received, Reply)>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A request that could never be kept: larger than one record may be (it could not be
    /// read back after a crash), or than the whole spool. "Full, retry" would never end.
    fn too_large(&self, bytes: usize) -> Option<IntakeError> {
        let limit = (super::MAX_RECORD_BYTES as u64).min(self.shared.limit);
        (bytes as u64 > limit).then_some(IntakeError::TooLarge {
            bytes: bytes as u64,
            limit,
        })
    }

    fn full(&self, incoming: u64) -> Option<IntakeError> {
        let used = self.shared.used.load(Ordering::Relaxed);
        (used + incoming > self.shared.limit).then_some(IntakeError::Full {
            used,
            limit: self.shared.limit,
            retry_after: RETRY_AFTER,
        })
    }
}

impl Intake for SpoolIntake {
    fn accept(&self, received: Received) -> Accepting<'_> {
        let sender = self.sender();
        let refused = match self
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(why) => Some(IntakeError::Failed(why.clone())),
            None => self
                .too_large(received.lines.len())
                .or_else(|| self.full(received.lines.len() as u64)),
        };
        Box::pin(async move {
            if let Some(e) = refused {
                return Err(e);
            }
            let Some(sender) = sender else {
                return Err(IntakeError::Stopped("the server is stopping"));
            };
            if received.lines.is_empty() {
                return Ok(());
            }
            let (reply, answer) = oneshot::channel();
            sender
                .send((received, reply))
                .map_err(|_| IntakeError::Stopped("the spool has stopped"))?;
            answer
                .await
                .unwrap_or(Err(IntakeError::Stopped("the spool has stopped")))
        })
    }

    fn ready(&self) -> Result<(), IntakeError> {
        if let Some(why) = self
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(IntakeError::Failed(why.clone()));
        }
        if self.sender().is_none() {
            return Err(IntakeError::Stopped("the server is stopping"));
        }
        // Ready while there is room for a large request: a tenth of the limit, up to 4 MiB.
        let room = (self.shared.limit / 10).min(4 * 1024 * 1024);
        match self.full(room) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn close(&self) {
        // The writer answers what it has, then marks the spool closed.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Opens the segment the writer appends to: the last one if it holds no event yet and
/// starts at `next_seq`, else a new one.
fn open_active(shared: &Shared, next_seq: u64) -> Result<File, SpoolError> {
    let mut state = shared.lock();
    if let Some(last) = state.segments.back_mut()
        && last.first == next_seq
        && last.durable == HEADER_LEN
    {
        last.sealed = false;
        let path = last.path.clone();
        return File::options()
            .append(true)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e));
    }
    let (file, path) = create_segment(&shared.dir, next_seq)?;
    shared.used.fetch_add(HEADER_LEN, Ordering::Relaxed);
    state.segments.push_back(Segment {
        first: next_seq,
        path,
        durable: HEADER_LEN,
        sealed: false,
    });
    Ok(file)
}

/// A new segment with its header, fsynced with its name.
fn create_segment(dir: &Path, first: u64) -> Result<(File, std::path::PathBuf), SpoolError> {
    let path = dir.join(segment::file_name(first));
    let mut file = File::options()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    file.write_all(&segment::header(first))
        .and_then(|()| file.sync_all())
        .map_err(|e| SpoolError::io(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))?;
    Ok((file, path))
}

struct Writer {
    shared: Arc<Shared>,
    file: File,
    next_seq: u64,
    broken: Arc<Mutex<Option<String>>>,
    /// With `dedupe_window`: the ids accepted within the window.
    dedupe: Option<Dedupe>,
    _lock: File,
}

impl Writer {
    fn run(mut self, rx: Receiver<(Received, Reply)>) {
        let mut buf = Vec::with_capacity(GROUP_BYTES + 1024 * 1024);
        let mut replies: Vec<Reply> = Vec::new();
        let mut fresh = Fresh::default();
        while let Ok(first) = rx.recv() {
            buf.clear();
            replies.clear();
            fresh.clear();
            let mut seq = self.next_seq;
            let received_ms = now_ms();
            if let Some(d) = self.dedupe.as_mut() {
                d.expire(received_ms);
            }
            let mut next = Some(first);
            while let Some((received, reply)) = next.take() {
                let filtered = self
                    .dedupe
                    .as_ref()
                    .and_then(|d| fresh.filter(d, &received));
                let (lines, count) = match filtered {
                    Some(kept) => (&fresh.kept[..], kept),
                    None => {
                        let count = memchr::memchr_iter(b'\n', &received.lines).count() as u32;
                        (&received.lines[..], count)
                    }
                };
                if count > 0 {
                    segment::encode_frame(&mut buf, seq, count, received_ms, lines, &fresh.frame);
                }
                fresh.frame.clear();
                seq += u64::from(count);
                replies.push(reply);
                if buf.len() < GROUP_BYTES {
                    match rx.try_recv() {
                        Ok(job) => next = Some(job),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                    }
                }
            }
            let result = if buf.is_empty() {
                Ok(())
            } else {
                self.append(&buf, seq)
            };
            if result.is_ok()
                && let Some(d) = self.dedupe.as_mut()
            {
                fresh.group.drain().for_each(|h| d.add(received_ms, h));
                crate::metrics::dedupe(fresh.dropped, d.len(), d.span_ms(received_ms));
            }
            for reply in replies.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
        let mut state = self.shared.lock();
        state.closed = true;
        drop(state);
        self.shared.grew.notify_all();
    }

    /// Writes and fsyncs one group, then makes it readable; on failure nothing of it is.
    fn append(&mut self, buf: &[u8], next_seq: u64) -> Result<(), IntakeError> {
        if let Some(why) = self
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(IntakeError::Failed(why.clone()));
        }
        let (len, path) = {
            let state = self.shared.lock();
            let last = state.segments.back().expect("the writer's segment");
            (last.durable, last.path.clone())
        };
        if len > HEADER_LEN && len + buf.len() as u64 > SEGMENT_BYTES {
            self.roll()
                .map_err(|e| IntakeError::Failed(e.to_string()))?;
            return self.append(buf, next_seq);
        }
        let written = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let why = format!("cannot write the spool {}: {e}", path.display());
            // Take the partial write back, so later groups follow whole frames.
            if let Err(undo) = self.file.set_len(len).and_then(|()| self.file.sync_data()) {
                let broken =
                    format!("{why}; and it could not be undone ({undo}): stopped taking events");
                tracing::error!("{broken}");
                *self.broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(broken);
            } else {
                tracing::error!("{why}");
            }
            return Err(IntakeError::Failed(why));
        }
        self.next_seq = next_seq;
        self.shared
            .used
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let mut state = self.shared.lock();
        if let Some(last) = state.segments.back_mut() {
            last.durable += buf.len() as u64;
        }
        drop(state);
        self.shared.grew.notify_all();
        crate::metrics::spool_bytes(self.shared.used.load(Ordering::Relaxed));
        Ok(())
    }

    /// Starts a new segment numbered from the next event; the current one grows no more.
    fn roll(&mut self) -> Result<(), SpoolError> {
        let (file, path) = create_segment(&self.shared.dir, self.next_seq)?;
        self.file = file;
        self.shared.used.fetch_add(HEADER_LEN, Ordering::Relaxed);
        let mut state = self.shared.lock();
        if let Some(last) = state.segments.back_mut() {
            last.sealed = true;
        }
        state.segments.push_back(Segment {
            first: self.next_seq,
            path,
            durable: HEADER_LEN,
            sealed: false,
        });
        drop(state);
        self.shared.grew.notify_all();
        Ok(())
    }
}

/// The ids of the group being written: not in the window yet, since not yet durable.
#[derive(Default)]
struct Fresh {
    group: std::collections::HashSet<u128>,
    /// The current request's id hashes, for its frame.
    frame: Vec<u128>,
    /// The current request's lines without its duplicates.
    kept: Vec<u8>,
    /// Events of the group dropped as duplicates.
    dropped: u64,
}

impl Fresh {
    fn clear(&mut self) {
        self.group.clear();
        self.frame.clear();
        self.dropped = 0;
    }

    /// Puts in `kept` the request's lines without the events whose id was seen (in the
    /// window or earlier in this group); returns how many are left. `None` without ids
    /// (one per line): all are kept.
    fn filter(&mut self, d: &Dedupe, received: &Received) -> Option<u32> {
        let lines = &received.lines;
        let count = memchr::memchr_iter(b'\n', lines).count();
        if received.message_ids.len() != count {
            return None;
        }
        self.kept.clear();
        let mut kept = 0u32;
        let mut start = 0;
        for (i, (end, id)) in memchr::memchr_iter(b'\n', lines)
            .zip(&received.message_ids)
            .enumerate()
        {
            // An id serve generated is kept and not remembered: nobody can send it again.
            let hash = (!received.is_generated(i)).then(|| dedupe::hash(id));
            if hash.is_some_and(|h| d.contains(h) || !self.group.insert(h)) {
                tracing::debug!(message_id = %id, "duplicate messageId within dedupe_window: dropped");
                self.dropped += 1;
            } else {
                self.kept.extend_from_slice(&lines[start..=end]);
                self.frame.extend(hash);
                kept += 1;
            }
            start = end + 1;
        }
        Some(kept)
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
