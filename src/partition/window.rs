//! Windows: exactly-once files for a partitioned log (Kafka), as Kafka Connect's S3 sink
//! cuts them.
//!
//! A stream's (Kafka partition's) rows go into *windows* of consecutive messages: every
//! open batch of the stream (all mappings, event types and folders) belongs to the
//! stream's one open window, and they are all closed together when the window closes:
//! when one of its batches reaches `batch_size` (or would pass `batch_max_bytes`), or when
//! a message's record time is `batch_max_age_seconds` past the window's first record time.
//! Windows close between messages only (the events of one `{"batch": [...]}` message stay
//! together), never on the wall clock.
//!
//! Boundaries therefore depend on the log alone: after a crash, reading again from the
//! committed offset (the first offset after the last window known durable, see
//! [`crate::source::WindowEnd`]) rebuilds the same windows, hence the same files with the
//! same names, which the sink recognises as already there.

use std::collections::HashMap;
use std::sync::Arc;

use super::{PartitionState, Partitions, RowGroup, WriteError};
use crate::batch::{LogStart, OpenBatch};
use crate::route::Routes;
use crate::sink::Sink;
use crate::source::{Record, WindowEnd};

/// The open window of every stream, and the windows closed since the writer last asked.
#[derive(Default)]
pub(super) struct Windows {
    open: HashMap<usize, Window>,
    ended: Vec<WindowEnd>,
}

struct Window {
    /// Record time of the window's first message.
    first_time: i64,
    /// The partitions (state indices) with an open batch in this window.
    batches: Vec<usize>,
}

/// A windowed chunk's records, as the writer hands them over.
pub struct LogChunk<'a> {
    pub seq: u64,
    pub stream: usize,
    /// `kafka:TOPIC/PARTITION`.
    pub origin: &'a str,
    pub records: &'a [Record],
    /// Record times (ms), by record index.
    pub times: &'a [i64],
    /// The chunk's last offset, rejected records included.
    pub last_offset: Option<u64>,
}

impl LogChunk<'_> {
    fn topic_partition(&self) -> (Arc<str>, i32) {
        let name = self.origin.strip_prefix("kafka:").unwrap_or(self.origin);
        match name.rsplit_once('/') {
            Some((t, p)) => (Arc::from(t), p.parse().unwrap_or(-1)),
            None => (Arc::from(name), -1),
        }
    }
}

/// The position of record `ri` among the records of its message (same offset).
fn index_in_message(records: &[Record], ri: u32) -> u32 {
    let ri = ri as usize;
    let Some(offset) = records.get(ri).map(|r| r.line) else {
        return 0;
    };
    records[..ri]
        .iter()
        .rev()
        .take_while(|r| r.line == offset)
        .count() as u32
}

impl Partitions {
    /// Windows closed since the last call (to tell the source's acknowledger).
    pub fn take_window_ends(&mut self) -> Vec<WindowEnd> {
        self.windows
            .as_mut()
            .map(|w| std::mem::take(&mut w.ended))
            .unwrap_or_default()
    }

    /// Drops a stream's open window without writing it (its Kafka partition was revoked:
    /// the new owner rebuilds it from the committed offset).
    pub fn abandon(&mut self, stream: usize) {
        let Some(windows) = &mut self.windows else {
            return;
        };
        if let Some(w) = windows.open.remove(&stream) {
            let rows: u64 = w
                .batches
                .iter()
                .filter_map(|&i| self.states[i].open.take())
                .map(|b| b.rows)
                .sum();
            tracing::info!(stream, rows, "open window of a revoked partition dropped");
        }
    }

    /// Closes a stream's open window (if any); everything of the stream before `offset`
    /// is then in closed windows.
    pub fn close_window(
        &mut self,
        stream: usize,
        seq: u64,
        offset: u64,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), WriteError> {
        let staging = sink.staging_dir().to_path_buf();
        let window = self.windows.as_mut().and_then(|w| w.open.remove(&stream));
        if let Some(w) = window {
            for i in w.batches {
                self.close(i, routes, sink, &staging)?;
            }
        }
        if let Some(w) = &mut self.windows {
            w.ended.push(WindowEnd {
                seq,
                stream,
                offset,
            });
        }
        Ok(())
    }

    /// Appends a windowed chunk's row groups, message by message in offset order (across
    /// groups, so that the result does not depend on how messages were cut into chunks),
    /// closing the stream's window where the log says.
    pub fn write_log_chunk(
        &mut self,
        mut groups: Vec<RowGroup>,
        chunk: &LogChunk<'_>,
        routes: &Routes<'_>,
        sink: &mut dyn Sink,
        first_event: &dyn Fn(u32) -> Option<serde_json::Value>,
    ) -> Result<(), WriteError> {
        let stream = chunk.stream;
        let (topic, partition) = chunk.topic_partition();
        let staging = sink.staging_dir().to_path_buf();
        let states: Vec<usize> = groups
            .iter_mut()
            .map(|g| {
                g.key.stream = stream;
                self.state_for(g.key.clone(), routes)
            })
            .collect();
        let mut cursor = vec![0usize; groups.len()];
        let offset_of = |ri: u32| chunk.records.get(ri as usize).map_or(0, |r| r.line);
        let time_of = |ri: u32| chunk.times.get(ri as usize).copied().unwrap_or(0);
        loop {
            // The next message with rows, and its time.
            let mut next: Option<(u64, u32)> = None;
            for (g, &c) in groups.iter().zip(&cursor) {
                if let Some(&ri) = g.row_records.get(c) {
                    let off = offset_of(ri);
                    if next.is_none_or(|(o, _)| off < o) {
                        next = Some((off, ri));
                    }
                }
            }
            let Some((offset, first_record)) = next else {
                break;
            };
            let time = time_of(first_record);
            if self.window_expired(stream, time, routes)
                || self.would_overflow(&groups, &cursor, &states, offset, offset_of, routes)
            {
                self.close_window(stream, chunk.seq, offset, routes, sink)?;
            }
            // Append every row of this message.
            for (gi, g) in groups.iter().enumerate() {
                while let Some(&ri) = g.row_records.get(cursor[gi]) {
                    if offset_of(ri) != offset {
                        break;
                    }
                    let row = cursor[gi];
                    let start = if row == 0 { 0 } else { g.row_ends[row - 1] };
                    let end = g.row_ends[row];
                    let i = states[gi];
                    // A message with more events than a file may hold fills several.
                    let m = routes.mapping(self.states[i].key.mapping);
                    let split = self.states[i].open.as_ref().is_some_and(|b| {
                        b.rows >= m.batch_size
                            || m.batch_max_bytes.is_some_and(|max| {
                                b.rows > 0 && b.bytes + u64::from(end - start) > max
                            })
                    });
                    if split {
                        self.close(i, routes, sink, &staging)?;
                        if let Some(w) = self.windows.as_mut().and_then(|w| w.open.get_mut(&stream))
                        {
                            w.batches.retain(|&b| b != i);
                        }
                    }
                    if self.states[i].open.is_none() {
                        self.open_batch(i, chunk.seq, routes, &staging)?;
                        let batch = self.states[i].open.as_mut().expect("opened above");
                        batch.log = Some(LogStart {
                            topic: topic.clone(),
                            partition,
                            offset,
                            index: index_in_message(chunk.records, ri),
                            time_ms: time_of(ri),
                        });
                        if m.filename.uses_event() {
                            batch.first_event = first_event(ri);
                        }
                        let windows = self.windows.as_mut().expect("windowed partitions");
                        let w = windows.open.entry(stream).or_insert(Window {
                            first_time: time,
                            batches: Vec::new(),
                        });
                        w.batches.push(i);
                    }
                    self.append_rows(i, &g.bytes[start as usize..end as usize], &[end - start])?;
                    cursor[gi] += 1;
                }
            }
            let full = self
                .windows
                .as_ref()
                .and_then(|w| w.open.get(&stream))
                .is_some_and(|w| {
                    w.batches.iter().any(|&i| {
                        let m = routes.mapping(self.states[i].key.mapping);
                        self.states[i]
                            .open
                            .as_ref()
                            .is_some_and(|b| b.rows >= m.batch_size)
                    })
                });
            if full {
                self.close_window(stream, chunk.seq, offset + 1, routes, sink)?;
            }
        }
        // A stream with no open window is durable up to the end of this chunk once the
        // chunk is (its last records matched nothing, or were rejected).
        let open = self
            .windows
            .as_ref()
            .is_some_and(|w| w.open.contains_key(&stream));
        if !open && let Some(last) = chunk.last_offset {
            let windows = self.windows.as_mut().expect("windowed partitions");
            windows.ended.push(WindowEnd {
                seq: chunk.seq,
                stream,
                offset: last + 1,
            });
        }
        Ok(())
    }

    fn open_batch(
        &mut self,
        i: usize,
        seq: u64,
        routes: &Routes<'_>,
        staging: &std::path::Path,
    ) -> Result<(), WriteError> {
        let state: &mut PartitionState = &mut self.states[i];
        state.parts_started += 1;
        let header = routes.format(state.key.mapping).header();
        state.open = Some(OpenBatch::create(
            staging,
            header,
            state.parts_started,
            seq,
        )?);
        Ok(())
    }

    /// Whether a message at record time `time` falls outside the stream's open window: a
    /// batch in it has an age limit that `time` is past, counted from the window's first
    /// message.
    fn window_expired(&self, stream: usize, time: i64, routes: &Routes<'_>) -> bool {
        let Some(w) = self.windows.as_ref().and_then(|w| w.open.get(&stream)) else {
            return false;
        };
        w.batches.iter().any(|&i| {
            routes
                .mapping(self.states[i].key.mapping)
                .batch_max_age
                .is_some_and(|age| time.saturating_sub(w.first_time) >= age.as_millis() as i64)
        })
    }

    /// Whether the message at `offset` would take one of the window's batches past its
    /// `batch_size` or `batch_max_bytes`: then the window closes before it (a batch always
    /// takes its first message).
    fn would_overflow(
        &self,
        groups: &[RowGroup],
        cursor: &[usize],
        states: &[usize],
        offset: u64,
        offset_of: impl Fn(u32) -> u64,
        routes: &Routes<'_>,
    ) -> bool {
        groups.iter().enumerate().any(|(gi, g)| {
            let i = states[gi];
            let Some(batch) = self.states[i].open.as_ref().filter(|b| b.rows > 0) else {
                return false;
            };
            let m = routes.mapping(self.states[i].key.mapping);
            let mut row = cursor[gi];
            let start = if row == 0 { 0 } else { g.row_ends[row - 1] };
            let mut end = start;
            while let Some(&ri) = g.row_records.get(row) {
                if offset_of(ri) != offset {
                    break;
                }
                end = g.row_ends[row];
                row += 1;
            }
            let rows = (row - cursor[gi]) as u64;
            batch.rows + rows > m.batch_size
                || m.batch_max_bytes
                    .is_some_and(|max| end > start && batch.bytes + u64::from(end - start) > max)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use crate::mapping::Config;
    use crate::pipeline::{RejectLog, RunOptions, run};
    use crate::sink::Durability;
    use crate::sink::local::LocalSink;
    use crate::source::{Acknowledge, Chunk, Source, SourceError, Unit, WindowEnd};

    const MAPPING: &str = "mappings:
  - name: tracks
    trigger: 'type = \"track\"'
    batch_size: 30
    batch_max_age_seconds: 2
    s3_aws_folder_name: '{{event}}'
    columns:
      id: { '@path': '$.messageId' }
  - name: people
    trigger: 'type = \"identify\"'
    batch_size: 7
    columns:
      id: { '@path': '$.messageId' }
";

    /// A message: (stream, offset, time, value).
    type Message = (usize, u64, i64, String);

    /// Messages of 3 partitions with offset gaps, 100 ms apart in record time, a batch
    /// message and a bad one.
    fn log() -> Vec<Message> {
        let mut out = Vec::new();
        for p in 0..3usize {
            let mut offset = 0u64;
            for n in 0..200u64 {
                offset += 1 + n % 3; // gaps
                let id = format!("p{p}-{n}");
                let value = match n % 7 {
                    3 => format!(r#"{{"type":"identify","messageId":"{id}"}}"#),
                    5 if n == 96 => format!(
                        r#"{{"batch":[{{"type":"track","event":"a","messageId":"{id}"}},{{"type":"track","event":"b","messageId":"{id}b"}}]}}"#
                    ),
                    6 if n == 111 => "not json".to_string(),
                    _ => format!(
                        r#"{{"type":"track","event":"{}","messageId":"{id}"}}"#,
                        if n % 2 == 0 { "a" } else { "b" }
                    ),
                };
                out.push((p, offset, 1_000_000 + n as i64 * 100, value));
            }
        }
        out
    }

    /// The log as chunks of at most `per_chunk` messages of one stream, streams
    /// interleaved in the order `order` gives.
    fn chunks(messages: &[Message], per_chunk: usize, from: &[u64; 3]) -> Vec<Chunk> {
        let mut by_stream: Vec<Vec<&Message>> = vec![Vec::new(); 3];
        for m in messages.iter().filter(|m| m.1 >= from[m.0]) {
            by_stream[m.0].push(m);
        }
        let mut out = Vec::new();
        let mut at = [0usize; 3];
        let mut turn = 0;
        while at.iter().zip(&by_stream).any(|(a, s)| *a < s.len()) {
            let p = turn % 3;
            turn += 1;
            let take: Vec<&Message> = by_stream[p]
                .iter()
                .skip(at[p])
                .take(per_chunk + p)
                .copied()
                .collect();
            if take.is_empty() {
                continue;
            }
            at[p] += take.len();
            let mut c = Chunk {
                input: p,
                origin: Arc::from(format!("kafka:t/{p}")),
                unit: Unit::Offset,
                ..Chunk::default()
            };
            let mut tape = crate::json::Tape::new();
            for (_, offset, time, value) in take {
                let base = c.data.len();
                c.data.extend_from_slice(value.as_bytes());
                let n = crate::source::kafka::split_value(
                    &mut tape,
                    value.as_bytes(),
                    base,
                    *offset,
                    &mut c.records,
                );
                c.times.extend(std::iter::repeat_n(*time, n));
            }
            out.push(c);
        }
        out
    }

    #[derive(Default)]
    struct Acks {
        ends: Mutex<Vec<WindowEnd>>,
        durable: Mutex<u64>,
    }

    impl Acknowledge for Acks {
        fn level(&self) -> Durability {
            Durability::Machine
        }
        fn durable_below(&self, seq: u64) {
            *self.durable.lock().unwrap() = seq;
        }
        fn windows_closed(&self, ends: &[WindowEnd]) {
            self.ends.lock().unwrap().extend_from_slice(ends);
        }
    }

    struct LogSource {
        chunks: std::collections::VecDeque<Chunk>,
        acks: Arc<Acks>,
    }

    impl Source for LogSource {
        fn next_chunk(&mut self, seq: u64, _spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
            Ok(self.chunks.pop_front().map(|mut c| {
                c.seq = seq;
                c
            }))
        }
        fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
            Some(self.acks.clone())
        }
        fn windowed(&self) -> bool {
            true
        }
    }

    /// Runs chunks into `out`; returns the window ends told.
    fn run_into(out: &Path, chunks: Vec<Chunk>) -> Vec<WindowEnd> {
        let config = Config::from_str(MAPPING, Path::new("m.yaml")).unwrap();
        let acks = Arc::new(Acks::default());
        let mut source = LogSource {
            chunks: chunks.into(),
            acks: acks.clone(),
        };
        let mut sink = LocalSink::new(out).unwrap().once();
        let mut rejects = RejectLog::new(out.join("_rejected.ndjson"));
        let opts = RunOptions {
            threads: 2,
            ..RunOptions::default()
        };
        run(&config, &mut source, &opts, &mut sink, &mut rejects).unwrap();
        acks.ends.lock().unwrap().clone()
    }

    fn files(out: &Path) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        let mut stack = vec![out.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "csv") {
                    let key = p.strip_prefix(out).unwrap().to_string_lossy().into_owned();
                    found.insert(key, std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        found
    }

    /// Windows depend on the log only: however messages are cut into chunks, the same
    /// files come out, with the same names; each event is in one row, rows in offset order.
    #[test]
    fn files_do_not_depend_on_chunking() {
        let messages = log();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        run_into(a.path(), chunks(&messages, 3, &[0; 3]));
        run_into(b.path(), chunks(&messages, 40, &[0; 3]));
        let (fa, fb) = (files(a.path()), files(b.path()));
        assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
        assert_eq!(fa, fb);
        let mut ids: Vec<String> = Vec::new();
        for (key, content) in &fa {
            let name = key.rsplit('/').next().unwrap();
            assert!(name.starts_with("t-"), "{key}");
            let rows: Vec<&str> = content.lines().skip(1).collect();
            assert!(rows.len() <= 30, "{key}: {} rows", rows.len());
            ids.extend(
                rows.iter()
                    .map(|r| r.split(',').next().unwrap().trim_matches('"').to_string()),
            );
        }
        // 600 messages: one is not JSON, one is a batch of two.
        assert_eq!(ids.len(), 600, "{ids:?}");
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 600);
    }

    /// A restart from any window end a run told (the offset it would have committed)
    /// rebuilds files identical to those already there: nothing new, nothing conflicting.
    #[test]
    fn a_restart_from_a_window_end_rebuilds_the_same_files() {
        let messages = log();
        let out = tempfile::tempdir().unwrap();
        let ends = run_into(out.path(), chunks(&messages, 5, &[0; 3]));
        let before = files(out.path());
        // Restart each partition from one of its window ends in the middle of the log.
        let mut from = [0u64; 3];
        for (p, f) in from.iter_mut().enumerate() {
            let mine: Vec<u64> = ends
                .iter()
                .filter(|e| e.stream == p)
                .map(|e| e.offset)
                .collect();
            assert!(mine.len() > 4, "{mine:?}");
            *f = mine[mine.len() / 2];
        }
        run_into(out.path(), chunks(&messages, 9, &from));
        assert_eq!(files(out.path()), before);
    }
}
