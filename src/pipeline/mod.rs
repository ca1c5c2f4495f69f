//! Runs the stages: one reader thread takes chunks from the source, worker threads route
//! them into encoded rows grouped by partition ([`worker`]), and the calling thread writes
//! them, in input order, into batches that go to the sink ([`writer`]), then tells the
//! source what is durable.
//!
//! Every event read ends up counted exactly once as matched by at least one mapping, not
//! matched by any trigger, or rejected (with a reason, in the rejects file).

mod recover;
mod rejects;
mod report;
mod worker;
mod writer;

pub use rejects::RejectLog;
pub use report::{MappingStats, RunReport};

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::mapping::Config;
use crate::partition::WriteError;
use crate::route::Routes;
use crate::sink::{Sink, SinkError};
use crate::source::{Chunk, Source, SourceError};
use worker::{ChunkResult, Worker};
use writer::{Replayed, Results, Watchers, write_results};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only this mapping (by name).
    pub only_mapping: Option<String>,
    /// Worker threads (parse, trigger, map, encode); 0 means one per core.
    pub threads: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Called once, as soon as the run has failed (it still reads its inputs to the end):
    /// a live source stops taking events that could no longer be written.
    pub on_failure: Option<FailureHook>,
}

/// See [`RunOptions::on_failure`]; receives the error message.
#[derive(Clone)]
pub struct FailureHook(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for FailureHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailureHook")
    }
}

/// Bytes of input per chunk handed to a worker.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// The smallest chunk [`chunk_size`] gives.
const MIN_CHUNK_SIZE: usize = 4 * 1024;

/// Bytes of input per chunk for a run of `config`: [`CHUNK_SIZE`], smaller with many
/// mappings. A chunk's rows are held in memory until the writer takes them, and each
/// mapping can write a row about as large as its event, so 1,000 mappings turn a 1 MiB
/// chunk into up to a gigabyte of rows; chunks shrink with the number of mappings (down to
/// 4 KiB) so that a chunk's rows stay within a few megabytes.
pub fn chunk_size(config: &crate::mapping::Config) -> usize {
    (CHUNK_SIZE / config.mappings.len().div_ceil(4).max(1)).max(MIN_CHUNK_SIZE)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no mapping named {0:?} in the mapping file (mappings: {1})")]
    UnknownMapping(String, String),
    #[error("no enabled mapping to run")]
    NothingEnabled,
    #[error(transparent)]
    Input(#[from] SourceError),
    #[error("cannot start a {role} thread: {source}")]
    Thread {
        role: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the rejects file {}: {source}", path.display())]
    Rejects {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

fn resolve_active(config: &Config, only: Option<&str>) -> Result<Vec<usize>, RunError> {
    let active: Vec<usize> = match only {
        Some(name) => match config.mapping(name) {
            Some(m) => vec![m.index],
            None => {
                let names: Vec<&str> = config.mappings.iter().map(|m| m.name.as_str()).collect();
                return Err(RunError::UnknownMapping(name.to_string(), names.join(", ")));
            }
        },
        None => config
            .mappings
            .iter()
            .filter(|m| m.enabled)
            .map(|m| m.index)
            .collect(),
    };
    if active.is_empty() {
        return Err(RunError::NothingEnabled);
    }
    Ok(active)
}

/// Runs the source's events through the mappings into the sink.
pub fn run(
    config: &Config,
    source: &mut dyn Source,
    opts: &RunOptions,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    crate::batch::set_buffer_budget(config.settings.open_batch_buffer_bytes);
    let active = resolve_active(config, opts.only_mapping.as_deref())?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let routes = Routes::new(config);
    let ack = source.acknowledger();
    if let Some(a) = &ack {
        sink.require(a.level());
    }
    let journal = source.journal();
    let mut replayed = Replayed {
        windowed: source.windowed(),
        live: source.live(),
        ..Replayed::default()
    };
    if let Some(j) = &journal {
        for intent in j.take_pending() {
            recover::deliver(intent, sink)?;
        }
        replayed.rejected_through = rejects.resume().map_err(|source| RunError::Rejects {
            path: rejects.path().to_path_buf(),
            source,
        })?;
        replayed.journal = journal.clone();
    }

    let (work_tx, work_rx) = sync_channel::<Chunk>(threads * 2);
    let (done_tx, done_rx) = sync_channel::<ChunkResult>(threads * 2);
    // Chunk buffers go back to the reader once written, so input needs no fresh memory.
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(threads * 4);
    let work_rx = Mutex::new(work_rx);

    let mut report = RunReport {
        mappings: config
            .mappings
            .iter()
            .map(|m| MappingStats {
                name: m.name.clone(),
                ..MappingStats::default()
            })
            .collect(),
        rejects_path: Some(rejects.path().to_path_buf()),
        ..RunReport::default()
    };

    let progress = opts.progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });

    let mappings = config.mappings.len();
    let outcome = std::thread::scope(|scope| -> Result<(), RunError> {
        let reader = std::thread::Builder::new()
            .name("s3actions-read".into())
            .spawn_scoped(scope, || read_source(source, work_tx, spare_rx))
            .map_err(|source| RunError::Thread {
                role: "reader",
                source,
            })?;
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (work_rx, routes, active) = (&work_rx, &routes, &active);
            let spawned = std::thread::Builder::new()
                .name("s3actions-work".into())
                .spawn_scoped(scope, move || {
                    let mut worker = Worker::new(routes, active);
                    loop {
                        let next = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(chunk) = next else { break };
                        if done_tx.send(worker.process(chunk, mappings)).is_err() {
                            break;
                        }
                    }
                });
            if let Err(source) = spawned {
                return Err(RunError::Thread {
                    role: "worker",
                    source,
                });
            }
        }
        drop(done_tx);
        let written = write_results(
            &routes,
            Results {
                done: done_rx,
                spare: spare_tx,
            },
            sink,
            rejects,
            &mut report,
            Watchers {
                progress: progress.as_ref(),
                on_failure: opts.on_failure.as_ref(),
                ack,
            },
            replayed,
        );
        let read = reader.join().unwrap_or_else(|_| {
            Err(RunError::Thread {
                role: "reader",
                source: io::Error::other("the reader thread panicked"),
            })
        });
        written?;
        read.map(|bytes| report.bytes_read = bytes)
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    rejects.flush().map_err(|source| RunError::Rejects {
        path: rejects.path().to_path_buf(),
        source,
    })?;
    report.rejects_written = rejects.written();
    // Deliver what was written even when an input failed part-way: those events were read.
    let finished = sink.finish();
    outcome?;
    report.sink = finished?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The reader thread: the source's chunks, in order. Returns the bytes read.
fn read_source(
    source: &mut dyn Source,
    tx: SyncSender<Chunk>,
    spare: Receiver<Vec<u8>>,
) -> Result<u64, RunError> {
    let mut seq = 0u64;
    let mut bytes = 0u64;
    while let Some(chunk) = source.next_chunk(seq, spare.try_recv().unwrap_or_default())? {
        seq += 1;
        bytes += chunk
            .load
            .as_ref()
            .map_or(chunk.data.len() as u64, |l| l.len());
        if tx.send(chunk).is_err() {
            break;
        }
    }
    Ok(bytes)
}
