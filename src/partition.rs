//! Partitions: rows are split by (mapping, event type, rendered folder); each partition
//! fills its own files.
//!
//! Workers group the rows of one chunk by partition ([`RowGroups`]); the single writer
//! thread then appends each group to its partition's open batch ([`Partitions`]) in input
//! order, so files are byte-identical however many workers run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::{BatchError, OpenBatch, SealedBatch};
use crate::journal::{Journal, JournalError, PartitionName};
use crate::route::{Routes, RowTarget};
use crate::sink::{Sink, SinkError};
use crate::source::Record;

mod window;
pub use window::LogChunk;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PartitionKey {
    pub mapping: usize,
    pub event_type: String,
    pub folder: String,
    /// The source's stream (Kafka partition) under windowed sources, else 0: files of two
    /// streams are never merged.
    pub stream: usize,
}

/// The rows of one chunk that go to one partition.
#[derive(Debug)]
pub struct RowGroup {
    pub key: PartitionKey,
    /// Encoded rows, each starting with `\n` and ending with the batch-size field.
    pub bytes: Vec<u8>,
    /// End offset of each row in `bytes`.
    pub row_ends: Vec<u32>,
    /// Record index (in the chunk) of each row, to find a batch's first event.
    pub row_records: Vec<u32>,
    /// The rows' `batch_interval` number (0 without one).
    pub interval: u64,
}

/// A worker's grouping of one chunk's rows.
#[derive(Debug, Default)]
pub struct RowGroups {
    pub groups: Vec<RowGroup>,
    /// Index (in the chunk) of the record being routed, set by the worker.
    pub record: u32,
    /// The group whose buffer was handed out last.
    last: usize,
    /// Per mapping, the group it wrote to last (`u32::MAX`: none yet).
    last_by_mapping: Vec<u32>,
}

impl RowTarget for RowGroups {
    fn buffer(
        &mut self,
        mapping: usize,
        event_type: &str,
        folder: &str,
        interval: u64,
    ) -> &mut Vec<u8> {
        &mut self.group(mapping, event_type, folder, interval).bytes
    }

    fn row_written(&mut self) {
        let record = self.record;
        let g = &mut self.groups[self.last];
        g.row_ends.push(g.bytes.len() as u32);
        g.row_records.push(record);
    }
}

impl RowGroups {
    /// The group for a partition, created on first use. Lookups compare borrowed strings, so
    /// the common case (the partition already has a group in this chunk) allocates nothing.
    pub fn group(
        &mut self,
        mapping: usize,
        event_type: &str,
        folder: &str,
        interval: u64,
    ) -> &mut RowGroup {
        let is = |g: &RowGroup| {
            g.key.mapping == mapping
                && g.interval == interval
                && g.key.event_type == event_type
                && g.key.folder == folder
        };
        // The mapping's last group first: with many mappings, a scan of every group for
        // every row would cost mappings² per event.
        let last = self
            .last_by_mapping
            .get(mapping)
            .copied()
            .unwrap_or(u32::MAX) as usize;
        let found = match self.groups.get(last) {
            Some(g) if is(g) => Some(last),
            _ => self.groups.iter().position(is),
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.groups.push(RowGroup {
                    key: PartitionKey {
                        mapping,
                        event_type: event_type.to_string(),
                        folder: folder.to_string(),
                        stream: 0,
                    },
                    bytes: Vec::with_capacity(4 * 1024),
                    row_ends: Vec::new(),
                    row_records: Vec::new(),
                    interval,
                });
                self.groups.len() - 1
            }
        };
        self.last = i;
        if self.last_by_mapping.len() <= mapping {
            self.last_by_mapping.resize(mapping + 1, u32::MAX);
        }
        self.last_by_mapping[mapping] = i as u32;
        &mut self.groups[i]
    }
}

struct PartitionState {
    key: PartitionKey,
    parts_started: u64,
    open: Option<OpenBatch>,
    /// The `batch_interval` number of the open batch's rows.
    open_interval: u64,
    /// Rows whose record number is at most this are in finished files already (a replay
    /// after a crash, see [`crate::journal`]).
    written_through: Option<u64>,
}

/// Every partition seen so far, with its open batch. Lives on the writer thread.
#[derive(Default)]
pub struct Partitions {
    index: HashMap<PartitionKey, usize>,
    states: Vec<PartitionState>,
    /// Where finished batches are recorded before they take their name.
    journal: Option<Arc<Journal>>,
    /// Rows left out because they were already written before a crash.
    skipped: u64,
    /// Windows per stream, for windowed sources (see [`window`]).
    windows: Option<window::Windows>,
    /// Close batches whose `batch_interval` has ended on the wall clock (live sources).
    clock_intervals: bool,
    /// Counts appends: each open batch remembers when it was last written to.
    tick: u64,
}

/// The wall clock in Unix milliseconds.
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The record numbers of one chunk's rows: the chunk's first number and its records.
#[derive(Clone, Copy)]
pub struct RecordSeqs<'a> {
    pub first: u64,
    pub records: &'a [Record],
}

impl RecordSeqs<'_> {
    fn of(&self, record: u32) -> u64 {
        self.first + self.records.get(record as usize).map_or(0, |r| r.line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot write a batch file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Partitions {
    /// Partitions that record every finished batch in `journal` before it takes its name,
    /// and leave out the rows it says are written.
    pub fn with_journal(journal: Option<Arc<Journal>>) -> Partitions {
        Partitions {
            journal,
            ..Partitions::default()
        }
    }

    /// Partitions whose files are cut in windows per stream (see [`window`]).
    pub fn windowed() -> Partitions {
        Partitions {
            windows: Some(window::Windows::default()),
            ..Partitions::default()
        }
    }

    /// Batches whose `batch_interval` has ended on the wall clock are closed by
    /// [`Partitions::close_expired`] too (for live input: the next interval's first row may
    /// be long in coming).
    pub fn close_ended_intervals(&mut self) {
        self.clock_intervals = true;
    }

    /// Whether files are cut in windows per stream.
    pub fn is_windowed(&self) -> bool {
        self.windows.is_some()
    }

    /// Rows left out so far because the journal says they were written before a crash.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The lowest `first_seq` of the open batches: the first chunk not wholly durable.
    ///
    /// None under windows: a windowed source is told which windows have closed, with the
    /// offset after each (see [`Partitions::take_window_ends`]), and commits those once
    /// their files are durable, so an open window (each partition always has one, and its
    /// chunk may hold the ends of earlier windows) must not hold the closed ones back.
    pub fn lowest_open_seq(&self) -> Option<u64> {
        if self.windows.is_some() {
            return None;
        }
        self.states
            .iter()
            .filter_map(|s| s.open.as_ref().map(|b| b.first_seq))
            .min()
    }

    /// Appends a group's rows (from chunk `seq`) to its partition, closing and delivering
    /// every batch that fills up. `first_event` gives the JSON of a record when a filename
    /// template needs it; `seqs` numbers the rows when the source numbers its records.
    pub fn write_group(
        &mut self,
        group: RowGroup,
        routes: &Routes<'_>,
        seq: u64,
        seqs: Option<RecordSeqs<'_>>,
        sink: &mut dyn Sink,
        first_event: &dyn Fn(u32) -> Option<serde_json::Value>,
    ) -> Result<(), WriteError> {
        let mapping = routes.mapping(group.key.mapping);
        let RowGroup {
            key,
            bytes,
            row_ends,
            row_records,
            interval,
        } = group;
        let i = self.state_for(key, routes);
        let staging = sink.staging_dir().to_path_buf();
        // A file holds one interval's rows: another interval's closes it.
        if self.states[i].open.is_some() && self.states[i].open_interval != interval {
            self.close(i, routes, sink, &staging)?;
        }
        let mut row = 0usize;
        let mut offset = 0usize;
        if let (Some(done), Some(seqs)) = (self.states[i].written_through, seqs) {
            // Rows come in record order: those already written are a prefix.
            while row < row_records.len() && seqs.of(row_records[row]) <= done {
                row += 1;
            }
            if row > 0 {
                offset = row_ends[row - 1] as usize;
                self.skipped += row as u64;
            }
            if row < row_records.len() {
                self.states[i].written_through = None;
            }
        }
        while row < row_ends.len() {
            let state = &mut self.states[i];
            if state.open.is_none() {
                state.parts_started += 1;
                let header = routes.format(mapping.index).header();
                let mut batch = OpenBatch::create(&staging, header, state.parts_started, seq)?;
                if mapping.filename.uses_event() {
                    batch.first_event = first_event(row_records[row]);
                }
                batch.interval_start = mapping
                    .batch_interval
                    .map(|step| interval.saturating_mul(step.as_millis() as u64));
                state.open = Some(batch);
                state.open_interval = interval;
                crate::metrics::open_batches(1);
            }
            let batch = state.open.as_mut().expect("opened above");
            let room = (mapping.batch_size - batch.rows) as usize;
            let want = room.min(row_ends.len() - row);
            let mut take = want;
            if let Some(max) = mapping.batch_max_bytes {
                // Stop before the byte limit, but put at least one row in every file.
                take = 0;
                while take < want {
                    let end = row_ends[row + take] as usize;
                    let size = batch.bytes + (end - offset) as u64;
                    if size > max && (batch.rows > 0 || take > 0) {
                        break;
                    }
                    take += 1;
                }
            }
            if take > 0 {
                let end = row_ends[row + take - 1] as usize;
                let ends: Vec<u32> = row_ends[row..row + take]
                    .iter()
                    .map(|e| e - offset as u32)
                    .collect();
                self.append_rows(i, &bytes[offset..end], &ends)?;
                let batch = self.states[i].open.as_mut().expect("opened above");
                if let Some(seqs) = seqs {
                    batch.last_record = Some(seqs.of(row_records[row + take - 1]));
                }
                offset = end;
                row += take;
            }
            let rows = self.states[i].open.as_ref().map_or(0, |b| b.rows);
            if rows >= mapping.batch_size || take < want {
                self.close(i, routes, sink, &staging)?;
            }
        }
        Ok(())
    }

    /// Appends rows to partition `i`'s open batch. Past the cap on open batch files
    /// ([`crate::batch::open_file_cap`]), the least recently written quarter of the open
    /// files is closed first (their buffers written); each reopens when its next row comes.
    fn append_rows(&mut self, i: usize, bytes: &[u8], row_ends: &[u32]) -> std::io::Result<()> {
        self.tick += 1;
        let needs_file = self.states[i].open.as_ref().is_some_and(|b| !b.has_file());
        let cap = crate::batch::open_file_cap();
        if crate::batch::open_files() + usize::from(needs_file) > cap {
            self.suspend_least_recent(i, cap.div_ceil(4))?;
        }
        let batch = self.states[i].open.as_mut().expect("an open batch");
        batch.used = self.tick;
        batch.append(bytes, row_ends)
    }

    /// Closes the files of the `n` least recently written open batches other than `keep`'s.
    /// One scan closes many, so a run with more partitions than the cap pays a scan per `n`
    /// reopenings, not per row.
    fn suspend_least_recent(&mut self, keep: usize, n: usize) -> std::io::Result<()> {
        let mut open: Vec<(u64, usize)> = self
            .states
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != keep)
            .filter_map(|(j, s)| {
                s.open
                    .as_ref()
                    .filter(|b| b.has_file())
                    .map(|b| (b.used, j))
            })
            .collect();
        let n = n.min(open.len());
        if n == 0 {
            return Ok(());
        }
        open.select_nth_unstable(n - 1);
        tracing::debug!(
            closed = n,
            cap = crate::batch::open_file_cap(),
            "open batch files at the cap: the least recently written are closed"
        );
        for &(_, j) in &open[..n] {
            if let Some(b) = self.states[j].open.as_mut() {
                b.suspend()?;
            }
        }
        Ok(())
    }

    /// The index of a partition's state, created on first use.
    fn state_for(&mut self, key: PartitionKey, routes: &Routes<'_>) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let written_through = self
            .journal
            .as_ref()
            .and_then(|j| j.written_through(&partition_name(routes, &key)));
        self.states.push(PartitionState {
            key: key.clone(),
            parts_started: 0,
            open: None,
            open_interval: 0,
            written_through,
        });
        self.index.insert(key, self.states.len() - 1);
        self.states.len() - 1
    }

    fn close(
        &mut self,
        i: usize,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
        staging: &Path,
    ) -> Result<(), WriteError> {
        let state = &mut self.states[i];
        if let Some(batch) = state.open.take() {
            crate::metrics::open_batches(-1);
            let mi = state.key.mapping;
            let sealed = batch.seal(routes.format(mi), routes.layers(mi), staging)?;
            self.deliver(i, sealed, routes, sink)?;
        }
        Ok(())
    }

    /// Names partition `i`'s sealed batch and hands it to the sink.
    fn deliver(
        &self,
        i: usize,
        sealed: SealedBatch,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), WriteError> {
        let state = &self.states[i];
        let mi = state.key.mapping;
        let file = sealed.name(
            routes.mapping(mi),
            routes.format(mi),
            routes.layers(mi),
            &state.key.folder,
            &state.key.event_type,
        )?;
        if let (Some(journal), Some(through)) = (&self.journal, file.last_record) {
            journal.record(&file, partition_name(routes, &state.key), through)?;
        }
        crate::metrics::file_written(&file);
        sink.deliver(file)?;
        Ok(())
    }

    /// Closes the batches open longer than their mapping's `batch_max_age_seconds`.
    pub fn close_expired(
        &mut self,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), WriteError> {
        if self.windows.is_some() {
            return Ok(()); // windows close on record time, never on the clock
        }
        let staging = sink.staging_dir().to_path_buf();
        for i in 0..self.states.len() {
            let m = routes.mapping(self.states[i].key.mapping);
            let state = &self.states[i];
            let aged = match (&state.open, m.batch_max_age) {
                (Some(batch), Some(age)) => batch.opened.elapsed() >= age,
                _ => false,
            };
            let ended = match (&state.open, m.batch_interval) {
                (Some(_), Some(step)) if self.clock_intervals => {
                    let end = u128::from(state.open_interval + 1) * step.as_millis();
                    now_ms() >= end
                }
                _ => false,
            };
            let expired = aged || ended;
            if expired {
                self.close(i, routes, sink, &staging)?;
            }
        }
        Ok(())
    }

    /// Closes every open batch (end of input), in the order partitions first appeared.
    ///
    /// Batches that close early are rewritten with their real row count; that is the only
    /// work left at the end of input, so it runs on all cores, one batch per thread.
    /// Naming and delivery stay in partition order.
    pub fn close_all(
        &mut self,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), WriteError> {
        let staging = sink.staging_dir().to_path_buf();
        let open: Vec<(usize, OpenBatch)> = self
            .states
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.open.take().map(|b| (i, b)))
            .collect();
        crate::metrics::open_batches(-(open.len() as i64));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut sealed: Vec<(usize, Result<SealedBatch, BatchError>)> =
            Vec::with_capacity(open.len());
        let mut pending = open.into_iter().peekable();
        while pending.peek().is_some() {
            let round: Vec<_> = pending.by_ref().take(threads).collect();
            let staging = &staging;
            std::thread::scope(|scope| {
                let handles: Vec<_> = round
                    .into_iter()
                    .map(|(i, batch)| {
                        let mi = self.states[i].key.mapping;
                        let (format, layers) = (routes.format(mi), routes.layers(mi));
                        (i, scope.spawn(move || batch.seal(format, layers, staging)))
                    })
                    .collect();
                for (i, h) in handles {
                    let result = h.join().unwrap_or_else(|_| {
                        Err(BatchError::Io {
                            dir: staging.display().to_string(),
                            source: std::io::Error::other("a batch writer thread panicked"),
                        })
                    });
                    sealed.push((i, result));
                }
            });
        }
        // Deliver every batch that could be completed, then report the first failure.
        let mut first_error = None;
        for (i, result) in sealed {
            let delivered = result
                .map_err(WriteError::from)
                .and_then(|sealed| self.deliver(i, sealed, routes, sink));
            if let Err(e) = delivered {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A partition's names, as the journal keeps them across restarts.
fn partition_name(routes: &Routes<'_>, key: &PartitionKey) -> PartitionName {
    PartitionName {
        mapping: routes.mapping(key.mapping).name.clone(),
        event_type: key.event_type.clone(),
        folder: key.folder.clone(),
    }
}
