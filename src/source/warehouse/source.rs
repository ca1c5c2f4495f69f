//! The diffed models' events as a [`Source`], and the commit of their snapshots once the
//! events are durable.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};

use super::diff::Diffed;
use crate::sink::Durability;
use crate::source::{Acknowledge, Chunk, Record, Source, SourceError, Unit};
use crate::state::{Prepared, StateError};

/// One model's snapshot waiting for its events to be durable.
struct Waiting {
    model: String,
    snapshot: Option<Prepared>,
    /// The first chunk number after the model's chunks, once they have all been handed on.
    end: Option<u64>,
    committed: bool,
}

#[derive(Default)]
struct CommitState {
    /// Every chunk below this is durable.
    durable: u64,
    models: Vec<Waiting>,
    errors: Vec<StateError>,
}

impl CommitState {
    /// Commits every model whose chunks are all durable.
    fn commit_ready(&mut self) {
        let durable = self.durable;
        for w in &mut self.models {
            if w.committed || w.end.is_none_or(|end| end > durable) {
                continue;
            }
            if let Some(s) = w.snapshot.take() {
                match s.commit() {
                    Ok(()) => {
                        tracing::info!(model = %w.model, "snapshot committed");
                        w.committed = true;
                    }
                    Err(e) => self.errors.push(e),
                }
            }
        }
    }
}

/// The acknowledgement path of [`RetlSource`]: a model's snapshot is committed once every
/// chunk of its events is durable, on this machine at least (in fsynced files under `--out`
/// or in the outbox, or in the fsynced rejects file).
pub struct Commits {
    state: Mutex<CommitState>,
}

impl Commits {
    fn lock(&self) -> std::sync::MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which models' snapshots were committed, by model id, and the errors of commits that
    /// failed.
    pub fn outcome(&self) -> (Vec<(String, bool)>, Vec<String>) {
        let s = self.lock();
        (
            s.models
                .iter()
                .map(|w| (w.model.clone(), w.committed))
                .collect(),
            s.errors.iter().map(|e| e.to_string()).collect(),
        )
    }

    /// Commits the snapshot of model `index` now: for a model with no events (nothing to
    /// wait for) once the run has succeeded.
    pub fn commit_now(&self, index: usize) -> Result<(), StateError> {
        let mut s = self.lock();
        let w = &mut s.models[index];
        if let Some(snap) = w.snapshot.take() {
            snap.commit()?;
            w.committed = true;
        }
        Ok(())
    }

    fn ended(&self, index: usize, end: u64) {
        let mut s = self.lock();
        s.models[index].end = Some(end);
        s.commit_ready();
    }
}

impl Acknowledge for Commits {
    fn level(&self) -> Durability {
        Durability::Machine
    }

    fn durable_below(&self, seq: u64) {
        let mut s = self.lock();
        s.durable = s.durable.max(seq);
        s.commit_ready();
    }
}

/// The events of diffed models, model after model, in `Unit::Row` (a record's position is
/// its row in the model's result; `deleted` events have row 0), each model a stream named
/// by its id.
pub struct RetlSource {
    spools: Vec<(Arc<str>, tempfile::NamedTempFile)>,
    next: usize,
    current: Option<(usize, BufReader<std::fs::File>)>,
    chunk_size: usize,
    commits: Arc<Commits>,
}

impl RetlSource {
    pub fn new(diffed: Vec<Diffed>, chunk_size: usize) -> RetlSource {
        let mut spools = Vec::new();
        let mut models = Vec::new();
        for d in diffed {
            models.push(Waiting {
                model: d.report.model.clone(),
                snapshot: Some(d.snapshot),
                end: None,
                committed: false,
            });
            spools.push((Arc::from(d.report.model.as_str()), d.spool));
        }
        RetlSource {
            spools,
            next: 0,
            current: None,
            chunk_size,
            commits: Arc::new(Commits {
                state: Mutex::new(CommitState {
                    models,
                    ..CommitState::default()
                }),
            }),
        }
    }

    pub fn commits(&self) -> Arc<Commits> {
        self.commits.clone()
    }
}

impl Source for RetlSource {
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
        let mut data = spare;
        loop {
            if self.current.is_none() {
                if self.next == self.spools.len() {
                    return Ok(None);
                }
                let i = self.next;
                self.next += 1;
                let file = self.spools[i].1.reopen().map_err(|source| SourceError {
                    input: self.spools[i].0.to_string(),
                    source,
                })?;
                self.current = Some((i, BufReader::with_capacity(256 * 1024, file)));
            }
            let (index, reader) = self.current.as_mut().expect("opened above");
            let index = *index;
            let origin = self.spools[index].0.clone();
            data.clear();
            let mut records = Vec::new();
            while data.len() < self.chunk_size {
                let start = data.len();
                let n = reader
                    .read_until(b'\n', &mut data)
                    .map_err(|source| SourceError {
                        input: origin.to_string(),
                        source,
                    })?;
                if n == 0 {
                    break;
                }
                let line = &data[start..];
                let tab = memchr::memchr(b'\t', line).unwrap_or(0);
                let row = std::str::from_utf8(&line[..tab])
                    .ok()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                let end = data.len() - usize::from(data.last() == Some(&b'\n'));
                records.push(Record {
                    start: (start + tab + 1) as u32,
                    end: end as u32,
                    line: row,
                });
            }
            if records.is_empty() {
                self.current = None;
                self.commits.ended(index, seq);
                continue;
            }
            return Ok(Some(Chunk {
                seq,
                input: index,
                origin,
                unit: Unit::Row,
                data,
                records,
                ..Chunk::default()
            }));
        }
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
        Some(self.commits.clone())
    }
}
