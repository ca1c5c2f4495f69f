//! Partitions: rows are split by (mapping, event type, rendered folder); each partition
//! fills its own files.
//!
//! Workers group the rows of one chunk by partition ([`RowGroups`]); the single writer
//! thread then appends each group to its partition's open batch ([`Partitions`]) in input
//! order, so files are byte-identical however many workers run.

use std::collections::HashMap;
use std::path::Path;

use crate::batch::{BatchError, OpenBatch, SealedBatch};
use crate::route::{Routes, RowTarget};
use crate::sink::{Sink, SinkError};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PartitionKey {
    pub mapping: usize,
    pub event_type: String,
    pub folder: String,
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
}

/// A worker's grouping of one chunk's rows.
#[derive(Debug, Default)]
pub struct RowGroups {
    pub groups: Vec<RowGroup>,
    /// Index (in the chunk) of the record being routed, set by the worker.
    pub record: u32,
    /// The group whose buffer was handed out last.
    last: usize,
}

impl RowTarget for RowGroups {
    fn buffer(&mut self, mapping: usize, event_type: &str, folder: &str) -> &mut Vec<u8> {
        &mut self.group(mapping, event_type, folder).bytes
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
    pub fn group(&mut self, mapping: usize, event_type: &str, folder: &str) -> &mut RowGroup {
        let found = self.groups.iter().position(|g| {
            g.key.mapping == mapping && g.key.event_type == event_type && g.key.folder == folder
        });
        let i = match found {
            Some(i) => i,
            None => {
                self.groups.push(RowGroup {
                    key: PartitionKey {
                        mapping,
                        event_type: event_type.to_string(),
                        folder: folder.to_string(),
                    },
                    bytes: Vec::with_capacity(64 * 1024),
                    row_ends: Vec::new(),
                    row_records: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        self.last = i;
        &mut self.groups[i]
    }
}

struct PartitionState {
    key: PartitionKey,
    parts_started: u64,
    open: Option<OpenBatch>,
}

/// Every partition seen so far, with its open batch. Lives on the writer thread.
#[derive(Default)]
pub struct Partitions {
    index: HashMap<PartitionKey, usize>,
    states: Vec<PartitionState>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot write a batch file: {0}")]
    Io(#[from] std::io::Error),
}

impl Partitions {
    pub fn new() -> Partitions {
        Partitions::default()
    }

    /// The lowest `first_seq` of the open batches: the first chunk not wholly durable.
    pub fn lowest_open_seq(&self) -> Option<u64> {
        self.states
            .iter()
            .filter_map(|s| s.open.as_ref().map(|b| b.first_seq))
            .min()
    }

    /// Appends a group's rows (from chunk `seq`) to its partition, closing and delivering
    /// every batch that fills up. `first_event` gives the JSON of a record when a filename
    /// template needs it.
    pub fn write_group(
        &mut self,
        group: RowGroup,
        routes: &Routes<'_>,
        seq: u64,
        sink: &mut dyn Sink,
        first_event: &dyn Fn(u32) -> Option<serde_json::Value>,
    ) -> Result<(), WriteError> {
        let mapping = routes.mapping(group.key.mapping);
        let RowGroup {
            key,
            bytes,
            row_ends,
            row_records,
        } = group;
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.states.push(PartitionState {
                    key: key.clone(),
                    parts_started: 0,
                    open: None,
                });
                self.index.insert(key, self.states.len() - 1);
                self.states.len() - 1
            }
        };
        let staging = sink.staging_dir().to_path_buf();
        let mut row = 0usize;
        let mut offset = 0usize;
        while row < row_ends.len() {
            let state = &mut self.states[i];
            if state.open.is_none() {
                state.parts_started += 1;
                let header = routes.format(mapping.index).header();
                let mut batch = OpenBatch::create(&staging, header, state.parts_started, seq)?;
                if mapping.filename.uses_event() {
                    batch.first_event = first_event(row_records[row]);
                }
                state.open = Some(batch);
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
                batch.append(&bytes[offset..end], &ends)?;
                offset = end;
                row += take;
            }
            if batch.rows >= mapping.batch_size || take < want {
                self.close(i, routes, sink, &staging)?;
            }
        }
        Ok(())
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
        let staging = sink.staging_dir().to_path_buf();
        for i in 0..self.states.len() {
            let m = routes.mapping(self.states[i].key.mapping);
            let expired = match (&self.states[i].open, m.batch_max_age) {
                (Some(batch), Some(age)) => batch.opened.elapsed() >= age,
                _ => false,
            };
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
