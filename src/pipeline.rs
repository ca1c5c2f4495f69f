//! Runs the stages: one reader thread cuts inputs into chunks, worker threads turn chunks
//! into encoded rows grouped by partition, and the calling thread writes them, in input
//! order, into batches that go to the sink.
//!
//! Every event read ends up counted exactly once as matched by at least one mapping, not
//! matched by any trigger, or rejected (with a reason, in the rejects file).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::encode::{Encoder, batch_size_suffix};
use crate::expr::Value;
use crate::json::{Kind, Tape};
use crate::mapping::Config;
use crate::naming::{MAX_FOLDER_BYTES, MAX_KEY_BYTES};
use crate::partition::{Partitions, RowGroups, WriteError};
use crate::sink::{Sink, SinkError, SinkReport};
use crate::source::{Chunk, Chunks, Input};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub inputs: Vec<Input>,
    /// Only this mapping (by name).
    pub only_mapping: Option<String>,
    /// Worker threads (parse, trigger, map, encode); 0 means one per core.
    pub threads: usize,
    /// Bytes of input per chunk handed to a worker.
    pub chunk_size: usize,
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

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            inputs: Vec::new(),
            only_mapping: None,
            threads: 0,
            chunk_size: 1024 * 1024,
            progress: false,
            on_failure: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingStats {
    pub name: String,
    /// Events whose trigger matched.
    pub matched: u64,
    /// Rows written (matched events that mapped to a row).
    pub rows: u64,
    /// Matched events rejected because a column (or the folder) could not be computed.
    pub failed: u64,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct RunReport {
    pub events_read: u64,
    /// Events that matched no trigger.
    pub not_matched: u64,
    /// Input records that are not JSON objects (never reached a trigger).
    pub rejected: u64,
    pub mappings: Vec<MappingStats>,
    pub sink: SinkReport,
    pub rejects_path: Option<PathBuf>,
    pub rejects_written: u64,
    pub bytes_read: u64,
    pub elapsed: Duration,
}

impl RunReport {
    /// Events matched by at least one mapping.
    pub fn matched_events(&self) -> u64 {
        self.events_read - self.not_matched - self.rejected
    }

    pub fn failed_rows(&self) -> u64 {
        self.mappings.iter().map(|m| m.failed).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no mapping named {0:?} in the mapping file (mappings: {1})")]
    UnknownMapping(String, String),
    #[error("no enabled mapping to run")]
    NothingEnabled,
    #[error("cannot read {input}: {source}")]
    Input {
        input: String,
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

/// Where rejected records are appended (created on the first reject).
pub struct RejectLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
}

impl RejectLog {
    pub fn new(path: PathBuf) -> RejectLog {
        RejectLog {
            path,
            file: None,
            written: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, entry: &serde_json::Value) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(BufWriter::new(f));
        }
        let f = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *f, entry)?;
        f.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

struct RawReject {
    record: (u32, u32),
    line: u64,
    mapping: Option<usize>,
    reason: String,
}

#[derive(Default)]
struct Counts {
    read: u64,
    not_matched: u64,
    rejected: u64,
    matched: Vec<u64>,
    rows: Vec<u64>,
    failed: Vec<u64>,
}

struct ChunkResult {
    chunk: Chunk,
    groups: RowGroups,
    counts: Counts,
    rejects: Vec<RawReject>,
    /// The chunk's bytes could not be read (see [`Chunk::load`]): nothing else is set.
    unreadable: Option<io::Error>,
}

/// Per-worker reusable state.
struct Worker<'c> {
    config: &'c Config,
    active: &'c [usize],
    suffixes: &'c [Vec<u8>],
    constant_folders: &'c [Option<String>],
    tape: Tape,
    encoder: Encoder,
    folder: String,
    scratch: String,
}

impl<'c> Worker<'c> {
    fn new(
        config: &'c Config,
        active: &'c [usize],
        suffixes: &'c [Vec<u8>],
        constant_folders: &'c [Option<String>],
    ) -> Worker<'c> {
        Worker {
            config,
            active,
            suffixes,
            constant_folders,
            tape: Tape::new(),
            encoder: Encoder::new(),
            folder: String::new(),
            scratch: String::new(),
        }
    }

    fn process(&mut self, mut chunk: Chunk) -> ChunkResult {
        if let Err(e) = chunk.load() {
            return ChunkResult {
                chunk,
                groups: RowGroups::default(),
                counts: Counts::default(),
                rejects: Vec::new(),
                unreadable: Some(e),
            };
        }
        chunk.split_lines();
        let n = self.config.mappings.len();
        let mut counts = Counts {
            matched: vec![0; n],
            rows: vec![0; n],
            failed: vec![0; n],
            ..Counts::default()
        };
        let mut groups = RowGroups::default();
        let mut rejects = Vec::new();
        let Worker {
            config,
            active,
            suffixes,
            constant_folders,
            tape,
            encoder,
            folder,
            scratch,
        } = self;
        // One UTF-8 check for the whole chunk (fast); per record only when it fails.
        let whole = std::str::from_utf8(&chunk.data).ok();
        for (ri, rec) in chunk.records.iter().enumerate() {
            counts.read += 1;
            let bytes = &chunk.data[rec.start as usize..rec.end as usize];
            let mut reject = |reason: String, mapping: Option<usize>| {
                rejects.push(RawReject {
                    record: (rec.start, rec.end),
                    line: rec.line,
                    mapping,
                    reason,
                });
            };
            let checked = match whole {
                // Records of a valid chunk are valid: they are cut at ASCII bytes.
                Some(all) => Ok(&all[rec.start as usize..rec.end as usize]),
                None => std::str::from_utf8(bytes),
            };
            let text = match checked {
                Ok(t) => t,
                Err(e) => {
                    counts.rejected += 1;
                    reject(
                        format!(
                            "not valid UTF-8 (byte {} of the record)",
                            e.valid_up_to() + 1
                        ),
                        None,
                    );
                    continue;
                }
            };
            let root = match tape.parse(text) {
                Ok(r) => r,
                Err(e) => {
                    counts.rejected += 1;
                    let (l, c) = e.line_col(bytes);
                    // A line of NDJSON is one record: its column is enough. Records spanning
                    // lines (arrays, pretty-printed objects) say which line.
                    let at = if l == 1 {
                        format!("column {c}")
                    } else {
                        format!("line {} of the event, column {c}", l)
                    };
                    reject(format!("invalid JSON at {at}: {}", e.message), None);
                    continue;
                }
            };
            if root.kind() != Kind::Object {
                counts.rejected += 1;
                let kind = format!("{:?}", root.kind()).to_lowercase();
                reject(
                    format!(
                        "not a JSON object (it is {} {kind}); each event must be an object",
                        if kind == "array" || kind == "object" {
                            "an"
                        } else {
                            "a"
                        }
                    ),
                    None,
                );
                continue;
            }
            let event = Value::Node(root);
            let mut any = false;
            for &mi in active.iter() {
                let m = &config.mappings[mi];
                if !m.trigger.matches(root) {
                    continue;
                }
                any = true;
                counts.matched[mi] += 1;
                let type_cow = root.get("type").and_then(|t| t.as_str());
                let event_type = type_cow.as_deref().unwrap_or("");
                let folder_str: &str = match &constant_folders[mi] {
                    Some(f) => f,
                    None => {
                        m.folder.render_into(root, folder, scratch);
                        if folder.len() > MAX_FOLDER_BYTES {
                            counts.failed[mi] += 1;
                            reject(
                                format!(
                                    "s3_aws_folder_name renders to {} bytes for this event, over the {MAX_FOLDER_BYTES} a folder may take of S3's {MAX_KEY_BYTES}-byte key limit",
                                    folder.len()
                                ),
                                Some(mi),
                            );
                            continue;
                        }
                        folder
                    }
                };
                let g = groups.group(mi, event_type, folder_str);
                match encoder.encode_row(m, &event, &mut g.bytes) {
                    Ok(()) => {
                        g.bytes.extend_from_slice(&suffixes[mi]);
                        g.row_ends.push(g.bytes.len() as u32);
                        g.row_records.push(ri as u32);
                        counts.rows[mi] += 1;
                    }
                    Err(e) => {
                        counts.failed[mi] += 1;
                        reject(e.to_string(), Some(mi));
                    }
                }
            }
            if !any {
                counts.not_matched += 1;
            }
        }
        for (rec, why) in &chunk.broken {
            counts.read += 1;
            counts.rejected += 1;
            rejects.push(RawReject {
                record: (rec.start, rec.end),
                line: rec.line,
                mapping: None,
                reason: why.clone(),
            });
        }
        ChunkResult {
            chunk,
            groups,
            counts,
            rejects,
            unreadable: None,
        }
    }
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

/// Replays the inputs through the mappings into the sink.
pub fn run(
    config: &Config,
    opts: &RunOptions,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let active = resolve_active(config, opts.only_mapping.as_deref())?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let suffixes: Vec<Vec<u8>> = config
        .mappings
        .iter()
        .map(|m| batch_size_suffix(m, m.batch_size))
        .collect();
    let constant_folders: Vec<Option<String>> = config
        .mappings
        .iter()
        .map(|m| m.folder.constant())
        .collect();
    let input_names: Vec<String> = opts.inputs.iter().map(Input::name).collect();

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

    let outcome = std::thread::scope(|scope| -> Result<(), RunError> {
        let reader = std::thread::Builder::new()
            .name("s3actions-read".into())
            .spawn_scoped(scope, || {
                read_inputs(&opts.inputs, opts.chunk_size, work_tx, spare_rx)
            })
            .map_err(|source| RunError::Input {
                input: "input".into(),
                source,
            })?;
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            let (config, active, suffixes, constant_folders) =
                (config, &active, &suffixes, &constant_folders);
            let spawned = std::thread::Builder::new()
                .name("s3actions-work".into())
                .spawn_scoped(scope, move || {
                    let mut worker = Worker::new(config, active, suffixes, constant_folders);
                    loop {
                        let next = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(chunk) = next else { break };
                        if done_tx.send(worker.process(chunk)).is_err() {
                            break;
                        }
                    }
                });
            if let Err(source) = spawned {
                return Err(RunError::Input {
                    input: "input".into(),
                    source,
                });
            }
        }
        drop(done_tx);
        let written = write_results(
            config,
            Results {
                done: done_rx,
                spare: spare_tx,
            },
            sink,
            rejects,
            &input_names,
            &mut report,
            Watchers {
                progress: progress.as_ref(),
                on_failure: opts.on_failure.as_ref(),
            },
        );
        let read = reader.join().unwrap_or_else(|_| {
            Err(RunError::Input {
                input: "input".into(),
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
    report.rejects_written = rejects.written;
    // Deliver what was written even when an input failed part-way: those events were read.
    let finished = sink.finish();
    outcome?;
    report.sink = finished?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The reader thread: inputs in order, chunk by chunk. Returns the bytes read. Plain NDJSON
/// files are only cut into ranges here, and read by the workers (see [`Chunks`]).
fn read_inputs(
    inputs: &[Input],
    chunk_size: usize,
    tx: SyncSender<Chunk>,
    spare: Receiver<Vec<u8>>,
) -> Result<u64, RunError> {
    let mut seq = 0u64;
    let mut bytes = 0u64;
    let spare = || spare.try_recv().unwrap_or_default();
    for (i, input) in inputs.iter().enumerate() {
        let err = |source| RunError::Input {
            input: input.name(),
            source,
        };
        let mut chunks = Chunks::open(input, i, chunk_size).map_err(err)?;
        while let Some(chunk) = chunks.next_chunk(seq, spare()).map_err(err)? {
            seq += 1;
            bytes += chunk
                .load
                .as_ref()
                .map_or(chunk.data.len() as u64, |l| l.len());
            if tx.send(chunk).is_err() {
                return Ok(bytes);
            }
        }
    }
    Ok(bytes)
}

/// What the writer takes results from, and where it returns their buffers.
struct Results {
    done: Receiver<ChunkResult>,
    spare: SyncSender<Vec<u8>>,
}

/// Who hears about the writer's progress and failure.
struct Watchers<'a> {
    progress: Option<&'a indicatif::ProgressBar>,
    on_failure: Option<&'a FailureHook>,
}

/// Logs the run's failure and calls the hook, once.
fn tell_failure(failure: &Option<RunError>, told: &mut bool, hook: Option<&FailureHook>) {
    if let (Some(e), false) = (failure, *told) {
        *told = true;
        tracing::error!("{e}; the rest of the input is read but not written");
        if let Some(hook) = hook {
            (hook.0)(&e.to_string());
        }
    }
}

/// The writer: takes worker results in input order and appends them to partitions.
fn write_results(
    config: &Config,
    results: Results,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
    input_names: &[String],
    report: &mut RunReport,
    watchers: Watchers<'_>,
) -> Result<(), RunError> {
    let Watchers {
        progress,
        on_failure,
    } = watchers;
    let mut partitions = Partitions::new();
    let mut failure_told = false;
    let mut next_line = vec![1u64; input_names.len()];
    let mut pending: BTreeMap<u64, ChunkResult> = BTreeMap::new();
    let mut next = 0u64;
    let mut failure: Option<RunError> = None;
    // An input that could not be read ends the run's input there, as if the input had
    // ended, but what was read before it is still written.
    let mut unreadable: Option<RunError> = None;
    let Results { done: rx, spare } = results;
    // With an age limit, wake up regularly to close old batches even when no input comes.
    let tick = config
        .mappings
        .iter()
        .filter_map(|m| m.batch_max_age)
        .min()
        .map(|age| (age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        let received = match tick {
            Some(t) => match rx.recv_timeout(t) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => break,
            },
        };
        if tick.is_some()
            && failure.is_none()
            && let Err(e) = partitions.close_expired(&config.mappings, sink)
        {
            failure = Some(e.into());
        }
        tell_failure(&failure, &mut failure_told, on_failure);
        let Some(result) = received else { continue };
        pending.insert(result.chunk.seq, result);
        while let Some(mut r) = pending.remove(&next) {
            next += 1;
            if failure.is_some() || unreadable.is_some() {
                continue; // keep draining so the workers can finish
            }
            if let Some(source) = r.unreadable.take() {
                unreadable = Some(RunError::Input {
                    input: input_names[r.chunk.input].clone(),
                    source,
                });
                continue;
            }
            let line_offset = r.chunk.line_offset(&mut next_line[r.chunk.input]);
            if let Err(e) = apply(
                config,
                &mut r,
                line_offset,
                &mut partitions,
                sink,
                rejects,
                input_names,
                report,
            ) {
                failure = Some(e);
            }
            let _ = spare.try_send(std::mem::take(&mut r.chunk.data));
            if let Some(bar) = progress {
                bar.set_message(format!(
                    "{} events read, {} files written",
                    report.events_read,
                    report.mappings.iter().map(|m| m.rows).sum::<u64>()
                ));
            }
        }
        tell_failure(&failure, &mut failure_told, on_failure);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    partitions.close_all(&config.mappings, sink)?;
    unreadable.map_or(Ok(()), Err)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    config: &Config,
    r: &mut ChunkResult,
    line_offset: u64,
    partitions: &mut Partitions,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
    input_names: &[String],
    report: &mut RunReport,
) -> Result<(), RunError> {
    let ChunkResult {
        chunk,
        groups,
        counts,
        rejects: raw_rejects,
        ..
    } = r;
    report.events_read += counts.read;
    report.not_matched += counts.not_matched;
    report.rejected += counts.rejected;
    for (i, s) in report.mappings.iter_mut().enumerate() {
        s.matched += counts.matched[i];
        s.rows += counts.rows[i];
        s.failed += counts.failed[i];
    }
    let input = &input_names[chunk.input];
    for rj in raw_rejects.drain(..) {
        let raw = String::from_utf8_lossy(&chunk.data[rj.record.0 as usize..rj.record.1 as usize]);
        let mut entry = serde_json::json!({
            "input": input,
            "line": rj.line + line_offset,
            "reason": rj.reason,
        });
        if let Some(mi) = rj.mapping {
            entry["mapping"] = serde_json::json!(config.mappings[mi].name);
        }
        // Valid JSON stays JSON; anything else is kept as text.
        entry["event"] = serde_json::from_str::<serde_json::Value>(&raw)
            .unwrap_or(serde_json::Value::String(raw.into_owned()));
        rejects.write(&entry).map_err(|source| RunError::Rejects {
            path: rejects.path().to_path_buf(),
            source,
        })?;
    }
    let records = &chunk.records;
    let data = &chunk.data;
    let first_event = |ri: u32| -> Option<serde_json::Value> {
        let rec = records.get(ri as usize)?;
        serde_json::from_slice(&data[rec.start as usize..rec.end as usize]).ok()
    };
    for g in std::mem::take(&mut groups.groups) {
        let m = &config.mappings[g.key.mapping];
        partitions.write_group(g, m, sink, &first_event)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::local::LocalSink;

    /// A chunk whose bytes cannot be read ends its input there: what came before is written,
    /// what comes after is not, and the run fails naming the input.
    #[test]
    fn an_unreadable_chunk_ends_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_str(
            "mappings:\n  - name: all\n    trigger: 'type = \"track\"'\n",
            Path::new("m.yaml"),
        )
        .unwrap();
        let (active, suffixes, folders) = (
            vec![0],
            vec![batch_size_suffix(
                &config.mappings[0],
                config.mappings[0].batch_size,
            )],
            vec![config.mappings[0].folder.constant()],
        );
        let mut worker = Worker::new(&config, &active, &suffixes, &folders);
        let chunk = |seq, text: &str| Chunk {
            seq,
            data: text.as_bytes().to_vec(),
            lines: true,
            ..Chunk::default()
        };
        // A range of a file that is cut short before the worker reads it.
        let events = dir.path().join("events.ndjson");
        std::fs::write(
            &events,
            "{\"type\":\"track\",\"event\":\"b\"}\n".repeat(500),
        )
        .unwrap();
        let Chunks::Ranges(mut ranges) =
            Chunks::open(&Input::File(events.clone()), 0, 4096).unwrap()
        else {
            panic!("NDJSON in a regular file is cut into ranges");
        };
        let mut cut_short = ranges.next_chunk(1, Vec::new()).unwrap().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&events)
            .unwrap()
            .set_len(10)
            .unwrap();
        cut_short.seq = 1;

        let (tx, rx) = sync_channel(3);
        let (spare, _spare_rx) = sync_channel(3);
        tx.send(worker.process(chunk(0, "{\"type\":\"track\",\"event\":\"a\"}\n")))
            .unwrap();
        tx.send(worker.process(cut_short)).unwrap();
        tx.send(worker.process(chunk(2, "{\"type\":\"track\",\"event\":\"c\"}\n")))
            .unwrap();
        drop(tx);

        let out = dir.path().join("out");
        let mut sink = LocalSink::new(&out).unwrap();
        let mut rejects = RejectLog::new(dir.path().join("rejects.ndjson"));
        let mut report = RunReport::default();
        report.mappings.push(MappingStats::default());
        let err = write_results(
            &config,
            Results { done: rx, spare },
            &mut sink,
            &mut rejects,
            &["events.ndjson".to_string()],
            &mut report,
            Watchers {
                progress: None,
                on_failure: None,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read events.ndjson: the file became shorter"),
            "{err}"
        );
        sink.finish().unwrap();
        let files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let csv = std::fs::read_to_string(&files[0]).unwrap();
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{csv}");
        assert!(rows[0].starts_with("\"a\",\"track\""), "{csv}");
        assert_eq!(report.events_read, 1);
    }
}
