//! The writer: takes worker results in input order, writes rejects, appends rows to their
//! partitions' batches, and tells the source what has become durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use crate::journal::Journal;
use crate::partition::{LogChunk, Partitions, RecordSeqs};
use crate::route::Routes;
use crate::sink::{Durability, Sink};
use crate::source::Acknowledge;

use super::rejects::RejectLog;
use super::report::RunReport;
use super::worker::ChunkResult;
use super::{FailureHook, RunError};

/// What the writer takes results from, and where it returns their buffers.
pub(super) struct Results {
    pub done: Receiver<ChunkResult>,
    pub spare: SyncSender<Vec<u8>>,
}

/// Who hears about the writer's progress and failure.
pub(super) struct Watchers<'a> {
    pub progress: Option<&'a indicatif::ProgressBar>,
    pub on_failure: Option<&'a FailureHook>,
    /// The source's acknowledgement path.
    pub ack: Option<Arc<dyn Acknowledge>>,
}

/// What a source that replays after a crash has already written (see [`crate::journal`]).
#[derive(Default)]
pub(super) struct Replayed {
    pub journal: Option<Arc<Journal>>,
    /// The last numbered record in the rejects file: (its input, its number). Rejects of
    /// that input up to that number are not written again.
    pub rejected_through: Option<(String, u64)>,
    /// The source replays its streams from window starts (see [`crate::source::Source::windowed`]).
    pub windowed: bool,
    /// Records arrive as they happen (see [`crate::source::Source::live`]).
    pub live: bool,
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

/// The acknowledgement path: which chunks are durable, told to the source as it grows.
///
/// Chunks are applied in order, so every record of a chunk numbered below the lowest
/// `first_seq` of the batches still open and of the files the sink has not yet made
/// durable is in a durable file, in the rejects file, or matched nothing.
struct Acks {
    ack: Arc<dyn Acknowledge>,
    level: Durability,
    /// Every chunk below this has been acknowledged.
    acked: u64,
}

impl Acks {
    fn advance(
        &mut self,
        next: u64,
        partitions: &Partitions,
        sink: &mut dyn Sink,
        rejects: &mut RejectLog,
    ) -> Result<(), RunError> {
        let low = [
            partitions.lowest_open_seq(),
            sink.undurable_from(self.level),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next)
        .min(next);
        if low > self.acked {
            rejects
                .sync(self.level >= Durability::Machine)
                .map_err(|source| RunError::Rejects {
                    path: rejects.path().to_path_buf(),
                    source,
                })?;
            self.ack.durable_below(low);
            self.acked = low;
        }
        Ok(())
    }
}

/// The writer loop: results in input order into partitions, until the workers are done.
pub(super) fn write_results(
    routes: &Routes<'_>,
    results: Results,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
    report: &mut RunReport,
    watchers: Watchers<'_>,
    replayed: Replayed,
) -> Result<(), RunError> {
    let Watchers {
        progress,
        on_failure,
        ack,
    } = watchers;
    let mut acks = ack.map(|ack| Acks {
        level: ack.level(),
        ack,
        acked: 0,
    });
    let mut partitions = if replayed.windowed {
        Partitions::windowed()
    } else {
        Partitions::with_journal(replayed.journal.clone())
    };
    let rejected_through = replayed.rejected_through.as_ref();
    let mut failure_told = false;
    let mut next_line: Vec<u64> = Vec::new();
    let mut pending: BTreeMap<u64, ChunkResult> = BTreeMap::new();
    let mut next = 0u64;
    let mut failure: Option<RunError> = None;
    // An input that could not be read ends the run's input there, as if the input had
    // ended, but what was read before it is still written.
    let mut unreadable: Option<RunError> = None;
    let Results { done: rx, spare } = results;
    // With an age limit, wake up regularly to close old batches even when no input comes;
    // with acknowledgements, to see uploads finish.
    if replayed.live {
        partitions.close_ended_intervals();
    }
    let age_tick = routes
        .config
        .mappings
        .iter()
        .flat_map(|m| [m.batch_max_age, m.batch_interval.filter(|_| replayed.live)])
        .flatten()
        .min()
        .map(|age| (age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let ack_tick = acks.as_ref().map(|_| Duration::from_millis(200));
    let tick = age_tick.into_iter().chain(ack_tick).min();
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
        if age_tick.is_some()
            && failure.is_none()
            && let Err(e) = partitions.close_expired(routes, sink)
        {
            failure = Some(e.into());
        }
        tell_failure(&failure, &mut failure_told, on_failure);
        if let Some(r) = received {
            pending.insert(r.chunk.seq, r);
        }
        while let Some(mut r) = pending.remove(&next) {
            next += 1;
            if failure.is_some() || unreadable.is_some() {
                continue; // keep draining so the workers can finish
            }
            if let Some(source) = r.unreadable.take() {
                unreadable = Some(RunError::Input(crate::source::SourceError {
                    input: r.chunk.origin.to_string(),
                    source,
                }));
                continue;
            }
            let input = r.chunk.input;
            if next_line.len() <= input {
                next_line.resize(input + 1, 1);
            }
            let line_offset = r.chunk.line_offset(&mut next_line[input]);
            let applied = apply(
                routes,
                &mut r,
                line_offset,
                rejected_through,
                &mut partitions,
                sink,
                rejects,
            );
            if let Err(e) = applied {
                failure = Some(e);
            }
            tell_window_ends(&mut partitions, acks.as_ref());
            r.counts.add_to(report);
            let _ = spare.try_send(std::mem::take(&mut r.chunk.data));
            if let Some(bar) = progress {
                bar.set_message(format!(
                    "{} events read, {} rows written",
                    report.events_read,
                    report.rows()
                ));
            }
        }
        if failure.is_none()
            && let Some(acks) = &mut acks
            && let Err(e) = acks.advance(next, &partitions, sink, rejects)
        {
            failure = Some(e);
        }
        tell_failure(&failure, &mut failure_told, on_failure);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    partitions.close_all(routes, sink)?;
    tell_window_ends(&mut partitions, acks.as_ref());
    if let Some(acks) = &mut acks {
        acks.advance(next, &partitions, sink, rejects)?;
    }
    if partitions.skipped() > 0 {
        tracing::info!(
            rows = partitions.skipped(),
            "rows replayed from the spool were already in files finished before the restart; not written again"
        );
    }
    unreadable.map_or(Ok(()), Err)
}

/// Tells a windowed source which of its windows have closed (see [`crate::source::WindowEnd`]).
fn tell_window_ends(partitions: &mut Partitions, acks: Option<&Acks>) {
    let ends = partitions.take_window_ends();
    if let (false, Some(acks)) = (ends.is_empty(), acks) {
        acks.ack.windows_closed(&ends);
    }
}

/// Writes one chunk's rejects and rows.
fn apply(
    routes: &Routes<'_>,
    r: &mut ChunkResult,
    line_offset: u64,
    rejected_through: Option<&(String, u64)>,
    partitions: &mut Partitions,
    sink: &mut dyn Sink,
    rejects: &mut RejectLog,
) -> Result<(), RunError> {
    let ChunkResult {
        chunk,
        groups,
        rejects: raw_rejects,
        ..
    } = r;
    let input: &str = &chunk.origin;
    // A replay after a crash: rejects already in the file are not written twice.
    let already = rejected_through
        .filter(|(origin, _)| chunk.record_seq.is_some() && origin == input)
        .map(|&(_, n)| n);
    for rj in raw_rejects.drain(..) {
        if already.is_some_and(|n| rj.line + line_offset <= n) {
            continue;
        }
        let raw = String::from_utf8_lossy(&chunk.data[rj.record.0 as usize..rj.record.1 as usize]);
        let mut entry = serde_json::Value::Object(serde_json::Map::from_iter([
            ("input".to_string(), serde_json::json!(input)),
            (
                chunk.unit.key().to_string(),
                serde_json::json!(rj.line + line_offset),
            ),
            ("reason".to_string(), serde_json::json!(rj.reason)),
        ]));
        if let Some(mi) = rj.mapping {
            entry["mapping"] = serde_json::json!(routes.mapping(mi).name);
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
    let seqs = chunk.record_seq.map(|first| RecordSeqs {
        first,
        records: &chunk.records,
    });
    if partitions.is_windowed() {
        for &stream in &chunk.abandon {
            partitions.abandon(stream);
        }
        for &(stream, offset) in &chunk.flush {
            partitions.close_window(stream, chunk.seq, offset, routes, sink)?;
        }
        let log = LogChunk {
            seq: chunk.seq,
            stream: chunk.input,
            origin: &chunk.origin,
            records: &chunk.records,
            times: &chunk.times,
            last_offset: chunk
                .records
                .iter()
                .chain(chunk.broken.iter().map(|(r, _)| r))
                .map(|r| r.line)
                .max(),
        };
        partitions.write_log_chunk(
            std::mem::take(&mut groups.groups),
            &log,
            routes,
            sink,
            &first_event,
        )?;
        return Ok(());
    }
    for g in std::mem::take(&mut groups.groups) {
        partitions.write_group(g, routes, chunk.seq, seqs, sink, &first_event)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Config;
    use crate::pipeline::MappingStats;
    use crate::pipeline::worker::Worker;
    use crate::sink::local::LocalSink;
    use crate::source::{Chunk, Chunks, Input};
    use std::path::Path;
    use std::sync::mpsc::sync_channel;

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
        let routes = Routes::new(&config);
        let active = vec![0];
        let mut worker = Worker::new(&routes, &active);
        let chunk = |seq, text: &str| Chunk {
            seq,
            data: text.as_bytes().to_vec(),
            origin: "events.ndjson".into(),
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
        cut_short.origin = "events.ndjson".into();

        let (tx, rx) = sync_channel(3);
        let (spare, _spare_rx) = sync_channel(3);
        tx.send(worker.process(chunk(0, "{\"type\":\"track\",\"event\":\"a\"}\n"), 1))
            .unwrap();
        tx.send(worker.process(cut_short, 1)).unwrap();
        tx.send(worker.process(chunk(2, "{\"type\":\"track\",\"event\":\"c\"}\n"), 1))
            .unwrap();
        drop(tx);

        let out = dir.path().join("out");
        let mut sink = LocalSink::new(&out).unwrap();
        let mut rejects = RejectLog::new(dir.path().join("rejects.ndjson"));
        let mut report = RunReport::default();
        report.mappings.push(MappingStats::default());
        let err = write_results(
            &routes,
            Results { done: rx, spare },
            &mut sink,
            &mut rejects,
            &mut report,
            Watchers {
                progress: None,
                on_failure: None,
                ack: None,
            },
            Replayed::default(),
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

#[cfg(test)]
mod ack_tests {
    use std::sync::{Arc, Mutex};

    use crate::mapping::Config;
    use crate::pipeline::{RejectLog, RunOptions, run};
    use crate::sink::Durability;
    use crate::sink::local::LocalSink;
    use crate::source::{Acknowledge, Chunk, Input, Inputs, Source, SourceError};

    /// A source that wraps the file inputs and records every acknowledgement.
    struct Recorded {
        inner: Inputs,
        acks: Arc<Log>,
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<u64>>);

    impl Acknowledge for Log {
        fn level(&self) -> Durability {
            Durability::Final
        }
        fn durable_below(&self, seq: u64) {
            self.0.lock().unwrap().push(seq);
        }
    }

    impl Source for Recorded {
        fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
            self.inner.next_chunk(seq, spare)
        }
        fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
            Some(self.acks.clone())
        }
    }

    fn events(dir: &std::path::Path, name: &str, n: usize) -> Input {
        let p = dir.join(name);
        let line =
            "{\"type\":\"track\",\"event\":\"e\",\"properties\":{\"pad\":\"xxxxxxxxxxxxxxxx\"}}\n";
        std::fs::write(&p, line.repeat(n)).unwrap();
        Input::File(p)
    }

    /// Acknowledgements only grow, never pass an open batch, and end with every chunk.
    #[test]
    fn acknowledgements_grow_up_to_every_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_str(
            "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    batch_size: 700\n",
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        let inputs = vec![
            events(dir.path(), "a.ndjson", 1000),
            events(dir.path(), "b.ndjson", 1000),
        ];
        let acks = Arc::new(Log::default());
        let mut source = Recorded {
            inner: Inputs::new(inputs, 4096, Durability::Written),
            acks: acks.clone(),
        };
        let progress = source.inner.progress();
        let mut sink = LocalSink::new(&dir.path().join("out")).unwrap();
        let mut rejects = RejectLog::new(dir.path().join("rejects.ndjson"));
        let opts = RunOptions {
            threads: 2,
            ..RunOptions::default()
        };
        let report = run(&config, &mut source, &opts, &mut sink, &mut rejects).unwrap();
        assert_eq!(report.mappings[0].rows, 2000);
        let seen = acks.0.lock().unwrap().clone();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        // Batches of 700 rows stay open across many chunks: the first acknowledgement
        // comes only once the first batch is closed, and not every chunk is acknowledged
        // on its own.
        let chunks = *seen.last().unwrap();
        assert!(chunks > 10, "{seen:?}");
        assert!(seen.len() < chunks as usize, "{seen:?}");
        assert!(seen[0] > 1, "{seen:?}");
        // The wrapped inputs' own progress was fed by nobody: it knows nothing durable.
        assert_eq!(progress.durable().inputs_done, 0);
    }

    /// The inputs of a replay learn, through the same path, how far they are durable.
    #[test]
    fn inputs_learn_what_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_str(
            "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n",
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        let inputs = vec![
            events(dir.path(), "a.ndjson", 300),
            events(dir.path(), "b.ndjson", 300),
        ];
        let mut source = Inputs::new(inputs, 4096, Durability::Written);
        let progress = source.progress();
        let mut sink = LocalSink::new(&dir.path().join("out")).unwrap();
        let mut rejects = RejectLog::new(dir.path().join("rejects.ndjson"));
        run(
            &config,
            &mut source,
            &RunOptions::default(),
            &mut sink,
            &mut rejects,
        )
        .unwrap();
        assert_eq!(progress.durable().inputs_done, 2);
        assert_eq!(progress.durable().byte, None);
    }
}
