//! Kafka: a consumer in a consumer group (librdkafka through `rdkafka`), as a [`Source`].
//!
//! Each chunk holds messages of one Kafka partition, in offset order: `Chunk::input` is the
//! partition's *stream*, a number given afresh each time the partition is assigned to this
//! instance, `Chunk::origin` is `kafka:TOPIC/PARTITION` and every record's position is the
//! message's offset ([`Unit::Offset`]). A message value is one event; a JSON array or a
//! Segment `{"batch": [...]}` value is expanded into its events, all at the message's
//! offset.
//!
//! Exactly-once files: the run cuts each stream's files in windows that depend only on the
//! log ([`Source::windowed`], see `partition::window`), and tells this source which windows
//! closed and when they became durable; only then are offsets committed (synchronously,
//! from the reader thread that polls the consumer), per partition, at the first offset after
//! its last durable window. After a crash the group resumes there and the same files are
//! rebuilt under the same keys. Offsets are never auto-committed or auto-stored.
//!
//! Rebalances: a revoked partition's open windows are abandoned (a control chunk tells the
//! writer) and never committed again; an assigned partition's position starts at its
//! committed offset, and a message that does not follow the position (fetched before the
//! rebalance and delivered after it) is dropped.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{Acknowledge, Chunk, Record, Source, SourceError, Unit, WindowEnd};
use crate::json::{Kind, Tape};
use crate::mapping::Secret;
use crate::sink::Durability;

/// How to consume.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// `group.id`.
    pub group: String,
    /// librdkafka settings: the mapping file's `kafka:` block, then `-X key=value`.
    pub settings: Vec<(String, Secret)>,
    /// End once the group has committed, on every partition, the end offsets current at
    /// the start.
    pub stop_at_end: bool,
    /// What durable means before a commit.
    pub level: Durability,
    /// Bytes of message values per chunk.
    pub chunk_size: usize,
}

/// The consumer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The message never shows the value: it may be a password.
    #[error("librdkafka setting {key:?} is not accepted: {reason}")]
    Setting { key: String, reason: String },
    #[error("cannot create the Kafka consumer: {0}")]
    Create(#[source] Box<RdError>),
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        topics: String,
        #[source]
        source: Box<RdError>,
    },
    #[error("cannot read the partitions of topic {topic:?} from {brokers}: {source}")]
    Metadata {
        topic: String,
        brokers: String,
        #[source]
        source: Box<RdError>,
    },
    #[error("topic {topic:?} has no partitions on {brokers} (does it exist?)")]
    NoTopic { topic: String, brokers: String },
    #[error("cannot listen for SIGTERM and SIGINT: {0}")]
    Signals(#[source] io::Error),
    /// The argument is not shown: it may hold a password.
    #[error("-X argument {index}: expected KEY=VALUE")]
    Override { index: usize },
    #[error(
        "{}: mapping {mapping:?}: filename_template uses {{{{{var}}}}}, which differs each time a batch is named; under consume a batch rebuilt after a crash must get the same key (use {{{{kafka_topic}}}}, {{{{kafka_partition}}}}, {{{{start_offset}}}})",
        path.display()
    )]
    Template {
        path: std::path::PathBuf,
        mapping: String,
        var: &'static str,
    },
    #[error(
        "{}: mapping {mapping:?}: batch_interval is not available under consume: files are cut in windows of each Kafka partition (batch_size, batch_max_bytes, batch_max_age_seconds in record time); use {{{{kafka_partition}}}} and {{{{start_offset}}}} in names",
        path.display()
    )]
    Interval {
        path: std::path::PathBuf,
        mapping: String,
    },
    #[error(transparent)]
    Metrics(crate::metrics::MetricsError),
    #[error(transparent)]
    Probe(crate::probe::ProbeError),
}

impl KafkaError {
    /// The command line or mapping file is at fault (not the broker or the machine).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            KafkaError::Setting { .. }
                | KafkaError::Override { .. }
                | KafkaError::Template { .. }
                | KafkaError::Interval { .. }
        )
    }
}

/// Sets `stop` on the first SIGTERM or SIGINT (Ctrl-C), on a thread of its own: the source
/// then drops its open windows (the group's next owner rebuilds them), and the run ends
/// once the files already closed are written; their offsets are committed as the consumer
/// leaves the group.
pub fn stop_on_signals(stop: Arc<std::sync::atomic::AtomicBool>) -> Result<(), KafkaError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(KafkaError::Signals)?;
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _inside = runtime.enter();
        (
            signal(SignalKind::terminate()).map_err(KafkaError::Signals)?,
            signal(SignalKind::interrupt()).map_err(KafkaError::Signals)?,
        )
    };
    std::thread::Builder::new()
        .name("s3actions-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                #[cfg(unix)]
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                #[cfg(not(unix))]
                let _ = tokio::signal::ctrl_c().await;
            });
            tracing::info!("stopping: open windows are left to the group, closed ones are written");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .map_err(KafkaError::Signals)?;
    Ok(())
}

/// Settings this source owns: the group's offsets are committed by the run, never by
/// librdkafka on its own.
const FIXED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// Events the rebalance callbacks leave for the reader loop.
enum Event {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// What the writer thread tells, and what the reader thread commits.
#[derive(Default)]
struct CommitQueue {
    /// Windows closed, in chunk order, not yet durable.
    ends: VecDeque<WindowEnd>,
    /// Durable: the offset to commit per stream.
    ready: HashMap<usize, u64>,
}

/// The acknowledgement path (see the module's documentation).
struct Committer {
    level: Durability,
    queue: Mutex<CommitQueue>,
}

impl Acknowledge for Committer {
    fn level(&self) -> Durability {
        self.level
    }

    fn durable_below(&self, seq: u64) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.ends.front().is_some_and(|e| e.seq < seq) {
            let e = q.ends.pop_front().expect("checked above");
            let slot = q.ready.entry(e.stream).or_insert(e.offset);
            *slot = (*slot).max(e.offset);
        }
    }

    fn windows_closed(&self, ends: &[WindowEnd]) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.ends.extend(ends.iter().copied());
    }
}

/// The consumer's context: rebalance callbacks (run inside `poll`, on the reader thread).
struct Ctx {
    committer: Arc<Committer>,
    /// Streams of the partitions assigned now: stream → (topic, partition).
    live: Mutex<HashMap<usize, (String, i32)>>,
    events: Mutex<Vec<Event>>,
}

impl ClientContext for Ctx {
    /// librdkafka's statistics (every `statistics.interval.ms`, 5 s unless set): consumer
    /// lag per assigned partition, as a gauge.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        "s3actions_kafka_consumer_lag",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                // Commit what is durable while the partitions are still ours, then never
                // again for them.
                self.commit_ready(consumer);
                let revoked: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                self.live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, tp| !revoked.contains(tp));
                metrics::counter!("s3actions_kafka_rebalances_total", "kind" => "revoke")
                    .increment(1);
                tracing::info!(partitions = ?revoked, "partitions revoked");
                self.push(Event::Revoked(revoked));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            metrics::counter!("s3actions_kafka_rebalances_total", "kind" => "assign").increment(1);
            tracing::info!(partitions = ?assigned, "partitions assigned");
            self.push(Event::Assigned(assigned));
        }
    }
}

impl Ctx {
    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }

    /// Commits (synchronously) every durable offset of a partition still assigned.
    fn commit_ready(&self, consumer: &BaseConsumer<Self>) {
        let ready = std::mem::take(
            &mut self
                .committer
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ready,
        );
        if ready.is_empty() {
            return;
        }
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut tpl = TopicPartitionList::new();
        for (stream, offset) in &ready {
            if let Some((topic, partition)) = live.get(stream) {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset as i64));
            }
        }
        drop(live);
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                metrics::counter!("s3actions_kafka_commits_total").increment(1);
                for e in tpl.elements() {
                    tracing::debug!(topic = e.topic(), partition = e.partition(), offset = ?e.offset(), "committed");
                }
            }
            Err(e) => {
                // The files are durable; a later commit covers these offsets, or the next
                // owner rebuilds the same files and finds them there.
                metrics::counter!("s3actions_kafka_commit_failures_total").increment(1);
                tracing::warn!("cannot commit offsets: {e}");
                let mut q = self
                    .committer
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (stream, offset) in ready {
                    let slot = q.ready.entry(stream).or_insert(offset);
                    *slot = (*slot).max(offset);
                }
            }
        }
    }
}

/// Messages of one partition not yet handed on.
#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    records: Vec<Record>,
    times: Vec<i64>,
    broken: Vec<(Record, String)>,
    since: Option<Instant>,
}

/// An assigned partition.
struct Stream {
    index: usize,
    origin: Arc<str>,
    /// The next offset accepted: messages below it are dropped.
    position: Option<u64>,
    pending: Pending,
    /// Under `--stop-at-end`: its end offset, and whether its last window was written.
    end: Option<u64>,
    flushed: bool,
}

/// A Kafka consumer group member as a source.
pub struct KafkaSource {
    consumer: BaseConsumer<Ctx>,
    opts: KafkaOptions,
    streams: HashMap<(String, i32), Stream>,
    next_stream: usize,
    /// End offsets at the start (`--stop-at-end`), with the low offsets then.
    ends: Option<Vec<(String, i32, u64, u64)>>,
    /// Chunks (or control chunks) ready to hand on.
    ready: VecDeque<Chunk>,
    last_check: Instant,
    earliest: bool,
    /// Parses values that may hold several events.
    tape: Tape,
    /// Set to stop (see [`stop_on_signals`]).
    stop: Arc<std::sync::atomic::AtomicBool>,
    stopping: bool,
    /// For `GET /ready`: 0 joining the group, 1 in the group, 2 stopping.
    state: Arc<std::sync::atomic::AtomicU8>,
    /// The polled message's (topic, partition) and value, reused.
    lookup: (String, i32),
    value: Vec<u8>,
}

impl KafkaSource {
    /// Creates the consumer, subscribes, and (with `stop_at_end`) reads the end offsets.
    pub fn new(opts: KafkaOptions) -> Result<KafkaSource, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &opts.brokers)
            .set("group.id", &opts.group)
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            // librdkafka waits up to 500 ms for a fetch to fill; brokers that hold every
            // fetch that long (tansu does) cap a consumer at a few batches a second, and
            // a live pipeline wants its events sooner. Idle, it costs 20 fetches a second.
            .set("fetch.wait.max.ms", "50");
        for (k, v) in &opts.settings {
            config.set(k, v.expose());
        }
        for (k, v) in FIXED {
            config.set(*k, *v);
        }
        let earliest = config
            .get("auto.offset.reset")
            .is_none_or(|v| matches!(v, "earliest" | "smallest" | "beginning"));
        let ctx = Ctx {
            committer: Arc::new(Committer {
                level: opts.level,
                queue: Mutex::new(CommitQueue::default()),
            }),
            live: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<Ctx> = config.create_with_context(ctx).map_err(|e| match e {
            RdError::ClientConfig(_, desc, key, value) => KafkaError::Setting {
                reason: if value.is_empty() {
                    desc
                } else {
                    desc.replace(&value, "***")
                },
                key,
            },
            other => KafkaError::Create(Box::new(other)),
        })?;
        let topics: Vec<&str> = opts.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| KafkaError::Subscribe {
                topics: opts.topics.join(", "),
                source: Box::new(source),
            })?;
        let ends = if opts.stop_at_end {
            Some(end_offsets(&consumer, &opts)?)
        } else {
            None
        };
        Ok(KafkaSource {
            consumer,
            opts,
            streams: HashMap::new(),
            next_stream: 0,
            ends,
            ready: VecDeque::new(),
            last_check: Instant::now(),
            earliest,
            tape: Tape::new(),
            stop: Arc::default(),
            stopping: false,
            state: Arc::default(),
            lookup: (String::new(), 0),
            value: Vec::new(),
        })
    }

    /// For `GET /ready` (see [`crate::probe`]): ready once this instance is in the group
    /// (it has been given its partitions, possibly none), not while joining or stopping.
    pub fn readiness(&self) -> crate::probe::Readiness {
        let state = self.state.clone();
        Arc::new(
            move || match state.load(std::sync::atomic::Ordering::Relaxed) {
                1 => Ok(()),
                0 => Err("joining the consumer group"),
                _ => Err("stopping"),
            },
        )
    }

    /// Setting it stops the source (see [`stop_on_signals`]).
    pub fn stopper(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    fn read_error(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError {
            input: format!("kafka:{}", self.opts.topics.join(",")),
            source: io::Error::other(e.to_string()),
        }
    }

    /// Applies the rebalance events the callbacks recorded.
    fn handle_events(&mut self) -> Result<(), SourceError> {
        let events = std::mem::take(
            &mut *self
                .consumer
                .context()
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for event in events {
            match event {
                Event::Revoked(tps) => {
                    let mut abandon = Vec::new();
                    for tp in tps {
                        if let Some(s) = self.streams.remove(&tp) {
                            abandon.push(s.index);
                        }
                    }
                    if !abandon.is_empty() {
                        self.ready.push_back(Chunk {
                            abandon,
                            unit: Unit::Offset,
                            ..Chunk::default()
                        });
                    }
                }
                Event::Assigned(tps) => {
                    self.state.store(1, std::sync::atomic::Ordering::Relaxed);
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in &tps {
                        tpl.add_partition(t, *p);
                    }
                    let committed = self
                        .consumer
                        .committed_offsets(tpl, Duration::from_secs(10))
                        .map_err(|e| {
                            self.read_error(format!("cannot read committed offsets: {e}"))
                        })?;
                    for (topic, partition) in tps {
                        let at = committed
                            .find_partition(&topic, partition)
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) if o >= 0 => Some(o as u64),
                                _ => None,
                            });
                        // No commit yet: the group starts at the earliest offset, so a
                        // message fetched earlier cannot be taken for the first one.
                        let position = match at {
                            Some(o) => Some(o),
                            None if self.earliest => self
                                .consumer
                                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                                .ok()
                                .map(|(low, _)| low.max(0) as u64),
                            None => None,
                        };
                        let index = self.next_stream;
                        self.next_stream += 1;
                        let end = self.ends.as_ref().and_then(|ends| {
                            ends.iter()
                                .find(|(t, p, _, _)| *t == topic && *p == partition)
                                .map(|&(_, _, end, _)| end)
                        });
                        self.consumer
                            .context()
                            .live
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(index, (topic.clone(), partition));
                        tracing::debug!(
                            topic,
                            partition,
                            ?position,
                            stream = index,
                            "partition starts"
                        );
                        self.streams.insert(
                            (topic.clone(), partition),
                            Stream {
                                index,
                                origin: Arc::from(format!("kafka:{topic}/{partition}")),
                                position,
                                pending: Pending::default(),
                                end,
                                flushed: false,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Turns a stream's pending messages into a chunk.
    fn take_chunk(stream: &mut Stream) -> Option<Chunk> {
        if stream.pending.records.is_empty() && stream.pending.broken.is_empty() {
            return None;
        }
        let p = std::mem::take(&mut stream.pending);
        Some(Chunk {
            input: stream.index,
            origin: stream.origin.clone(),
            unit: Unit::Offset,
            data: p.data,
            records: p.records,
            broken: p.broken,
            times: p.times,
            ..Chunk::default()
        })
    }

    /// Hands on every stream's pending messages (`all`), or those that waited long enough.
    fn cut(&mut self, all: bool) {
        let mut streams: Vec<&mut Stream> = self.streams.values_mut().collect();
        streams.sort_by_key(|s| s.index);
        for s in streams {
            let due = all
                || s.pending.data.len() >= self.opts.chunk_size
                || s.pending
                    .since
                    .is_some_and(|t| t.elapsed() >= Duration::from_millis(200));
            if due && let Some(c) = Self::take_chunk(s) {
                self.ready.push_back(c);
            }
        }
    }

    /// `--stop-at-end`: writes the last window of every partition at its end, and says
    /// whether the whole group has committed every end.
    fn at_end(&mut self) -> Result<bool, SourceError> {
        let Some(ends) = &self.ends else {
            return Ok(false);
        };
        let positions = self.consumer.position().ok();
        let mut flush = Vec::new();
        for ((topic, partition), s) in self.streams.iter_mut() {
            let Some(end) = s.end else { continue };
            if s.flushed {
                continue;
            }
            let fetched = positions
                .as_ref()
                .and_then(|tpl| tpl.find_partition(topic, *partition))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o as u64),
                    _ => None,
                });
            // librdkafka's position also passes messages at or after the end, which this
            // run drops: it only says the end was reached (past a trailing gap, say). The
            // commit is the end (or the committed offset the partition came with, if
            // later), never past a message this run did not write.
            let ours = s.position.unwrap_or(0);
            let reached = ours.max(fetched.unwrap_or(0)) >= end;
            if reached && s.pending.records.is_empty() && s.pending.broken.is_empty() {
                s.flushed = true;
                flush.push((s.index, ours.max(end)));
            }
        }
        if !flush.is_empty() {
            self.ready.push_back(Chunk {
                flush,
                unit: Unit::Offset,
                ..Chunk::default()
            });
            return Ok(false);
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, _, _) in ends {
            tpl.add_partition(t, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(|e| self.read_error(format!("cannot read committed offsets: {e}")))?;
        let done = ends.iter().all(|(t, p, end, low)| {
            let c = committed
                .find_partition(t, *p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o as u64),
                    _ => None,
                })
                .unwrap_or(*low);
            c >= *end
        });
        Ok(done)
    }

    /// Adds one message to its partition's pending chunk, unless it is not ours or does not
    /// follow the partition's position.
    /// The message's topic and partition are in `self.lookup`, its value (if it has one)
    /// in `self.value`: buffers reused from message to message.
    fn take_message(&mut self, offset: i64, time: i64, has_value: bool) {
        let Some(s) = self.streams.get_mut(&self.lookup) else {
            metrics::counter!("s3actions_kafka_dropped_total", "why" => "not assigned")
                .increment(1);
            return;
        };
        let offset = offset.max(0) as u64;
        if s.position.is_some_and(|p| offset < p) {
            metrics::counter!("s3actions_kafka_dropped_total", "why" => "behind position")
                .increment(1);
            return;
        }
        if s.end.is_some_and(|end| offset >= end) {
            return; // past the end this run stops at; the next run starts there
        }
        s.position = Some(offset + 1);
        let p = &mut s.pending;
        p.since.get_or_insert_with(Instant::now);
        let value = self.value.as_slice();
        if !has_value || value.is_empty() {
            p.broken.push((
                Record {
                    start: p.data.len() as u32,
                    end: p.data.len() as u32,
                    line: offset,
                },
                "the message has no value".into(),
            ));
            return;
        }
        let base = p.data.len();
        p.data.extend_from_slice(value);
        let added = split_value(&mut self.tape, value, base, offset, &mut p.records);
        p.times.extend(std::iter::repeat_n(time, added));
    }
}

/// Cuts a message value (at `base` in the chunk) into records: one event, or the events of
/// a JSON array or a `{"batch": [...]}` object (without a `type`). Returns how many records
/// were added. Anything else, valid or not, is one record: the worker says what is wrong.
/// (Crate-visible for the window tests, which build Kafka-like chunks themselves.)
pub(crate) fn split_value(
    tape: &mut Tape,
    value: &[u8],
    base: usize,
    offset: u64,
    records: &mut Vec<Record>,
) -> usize {
    let whole = |records: &mut Vec<Record>| {
        records.push(Record {
            start: base as u32,
            end: (base + value.len()) as u32,
            line: offset,
        });
        1
    };
    let first = value.iter().find(|c| !crate::text::is_ws(**c));
    let candidate = match first {
        Some(b'[') => true,
        Some(b'{') => memchr::memmem::find(value, b"\"batch\"").is_some(),
        _ => false,
    };
    let Some(text) = candidate.then(|| std::str::from_utf8(value).ok()).flatten() else {
        return whole(records);
    };
    let Ok(root) = tape.parse(text) else {
        return whole(records);
    };
    let list = match root.kind() {
        Kind::Array => root,
        Kind::Object if root.get("type").is_none() => match root.get("batch") {
            Some(b) if b.kind() == Kind::Array => b,
            _ => return whole(records),
        },
        _ => return whole(records),
    };
    let start_ptr = text.as_ptr() as usize;
    let mut added = 0;
    for el in list.elements() {
        let raw = el.raw();
        let at = raw.as_ptr() as usize - start_ptr;
        records.push(Record {
            start: (base + at) as u32,
            end: (base + at + raw.len()) as u32,
            line: offset,
        });
        added += 1;
    }
    added
}

/// The end (high watermark) and low offsets of every partition of the topics.
fn end_offsets(
    consumer: &BaseConsumer<Ctx>,
    opts: &KafkaOptions,
) -> Result<Vec<(String, i32, u64, u64)>, KafkaError> {
    let mut ends = Vec::new();
    for topic in &opts.topics {
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|source| KafkaError::Metadata {
                topic: topic.clone(),
                brokers: opts.brokers.clone(),
                source: Box::new(source),
            })?;
        let partitions: Vec<i32> = meta
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(KafkaError::NoTopic {
                topic: topic.clone(),
                brokers: opts.brokers.clone(),
            });
        }
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|source| KafkaError::Metadata {
                    topic: topic.clone(),
                    brokers: opts.brokers.clone(),
                    source: Box::new(source),
                })?;
            ends.push((topic.clone(), p, high.max(0) as u64, low.max(0) as u64));
        }
    }
    tracing::info!(
        partitions = ends.len(),
        "end offsets read; stopping once the group has committed them"
    );
    Ok(ends)
}

impl Source for KafkaSource {
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
        drop(spare);
        loop {
            self.consumer.context().commit_ready(&self.consumer);
            if !self.stopping && self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Messages not handed on are dropped with the open windows.
                self.stopping = true;
                self.state.store(2, std::sync::atomic::Ordering::Relaxed);
                let mut abandon: Vec<usize> = self.streams.values().map(|s| s.index).collect();
                abandon.sort_unstable();
                self.streams.clear();
                self.ready
                    .retain(|c| c.records.is_empty() && c.broken.is_empty());
                self.ready.push_back(Chunk {
                    abandon,
                    unit: Unit::Offset,
                    ..Chunk::default()
                });
            }
            if self.stopping {
                return Ok(self.ready.pop_front().map(|mut c| {
                    c.seq = seq;
                    c
                }));
            }
            if let Some(mut c) = self.ready.pop_front() {
                c.seq = seq;
                return Ok(Some(c));
            }
            if self.ends.is_some() && self.last_check.elapsed() >= Duration::from_millis(250) {
                self.last_check = Instant::now();
                if self.at_end()? {
                    self.consumer.unsubscribe();
                    tracing::info!("the group has committed every end offset; stopping");
                    return Ok(None);
                }
                if !self.ready.is_empty() {
                    continue;
                }
            }
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                None => None,
                Some(Ok(m)) => {
                    let time = match m.timestamp() {
                        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                        Timestamp::NotAvailable => 0,
                    };
                    self.lookup.0.clear();
                    self.lookup.0.push_str(m.topic());
                    self.lookup.1 = m.partition();
                    self.value.clear();
                    let payload = m.payload();
                    if let Some(v) = payload {
                        self.value.extend_from_slice(v);
                    }
                    Some((m.offset(), time, payload.is_some()))
                }
                Some(Err(e)) => {
                    tracing::warn!("kafka: {e}");
                    None
                }
            };
            self.handle_events()?;
            match message {
                Some((offset, time, has_value)) => {
                    self.take_message(offset, time, has_value);
                    self.cut(false);
                }
                None => self.cut(true),
            }
        }
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
        Some(self.consumer.context().committer.clone())
    }

    fn windowed(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(value: &str) -> Vec<(String, u64)> {
        let mut data = b"xx".to_vec();
        data.extend_from_slice(value.as_bytes());
        let mut records = Vec::new();
        let n = split_value(&mut Tape::new(), value.as_bytes(), 2, 7, &mut records);
        assert_eq!(n, records.len());
        records
            .iter()
            .map(|r| {
                let text = &data[r.start as usize..r.end as usize];
                (String::from_utf8_lossy(text).into_owned(), r.line)
            })
            .collect()
    }

    #[test]
    fn values_become_events() {
        let one = r#"{"type":"track","batch":[1]}"#;
        assert_eq!(split(one), vec![(one.to_string(), 7)]);
        assert_eq!(
            split(r#" [{"a":1}, {"b":[2]}] "#),
            vec![
                (r#"{"a":1}"#.to_string(), 7),
                (r#"{"b":[2]}"#.to_string(), 7)
            ]
        );
        assert_eq!(
            split(r#"{"batch": [{"type":"identify"},{"type":"track"}], "sentAt": "x"}"#),
            vec![
                (r#"{"type":"identify"}"#.to_string(), 7),
                (r#"{"type":"track"}"#.to_string(), 7)
            ]
        );
        // Not JSON, or not an array of events: one record, for the worker to judge.
        assert_eq!(split("[not json"), vec![("[not json".to_string(), 7)]);
        assert_eq!(split("42"), vec![("42".to_string(), 7)]);
        assert_eq!(
            split(r#"{"batch": 3}"#),
            vec![(r#"{"batch": 3}"#.to_string(), 7)]
        );
    }
}
