//! Event input: files, gzip files, stdin and HTTP, read in large chunks of whole records.
//!
//! Three layouts are accepted and told apart from the first bytes: NDJSON (one event per
//! line), a JSON array of events, and a stream of JSON values (a single, possibly
//! pretty-printed, object is the common case). Input is never held whole: a chunk of about
//! one MiB of complete records is cut at a time, and every record keeps the line it starts
//! on so that a bad one can be reported precisely.

pub mod http;
pub mod intake;
pub mod kafka;
mod ranges;
pub mod s3archive;
pub mod spool;
pub mod warehouse;

pub use ranges::{FileRanges, Load};

use crate::text::is_ws;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sink::Durability;

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
    /// Events received by `s3actions serve` (see [`http`]).
    Http(http::HttpInput),
}

impl Input {
    /// Whether the input can pause mid-stream waiting for its producer (stdin): then
    /// events are processed as they arrive rather than a chunk at a time.
    pub fn is_live(&self) -> bool {
        matches!(self, Input::Stdin | Input::Http(_))
    }

    /// `-` is stdin.
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(p) => p.display().to_string(),
            Input::Http(h) => format!("http://{}", h.addr()),
        }
    }

    /// Opens the input, decompressing `.gz` files (and gzip on stdin, recognised by its
    /// magic bytes).
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            Input::Stdin => sniff_gzip(Box::new(io::stdin())),
            Input::Http(h) => h.take(),
            Input::File(p) => {
                let f = open_file(p)?;
                if is_gz(p) {
                    let r = BufReader::with_capacity(256 * 1024, f);
                    Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
                } else {
                    // The splitter reads in large blocks itself: a buffer here would only
                    // add a copy.
                    Ok(Box::new(f))
                }
            }
        }
    }
}

/// The unit a source counts its records' positions in (see [`Record::line`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    /// Lines of a file or stream (1-based).
    #[default]
    Line,
    /// Offsets of a partitioned log (Kafka).
    Offset,
    /// Rows of a warehouse model's result.
    Row,
}

impl Unit {
    /// The rejects file's key for a position in this unit.
    pub fn key(self) -> &'static str {
        match self {
            Unit::Line => "line",
            Unit::Offset => "offset",
            Unit::Row => "row",
        }
    }
}

/// A source's input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {input}: {source}")]
pub struct SourceError {
    /// The input's name, as in the rejects file.
    pub input: String,
    #[source]
    pub source: io::Error,
}

/// Where events come from, for the run: chunks of whole records, in order.
///
/// The run numbers chunks (`seq`, from 0, across all of the source's streams) and tells the
/// source's [`Acknowledge`] when every record of the chunks below a number is durable. A
/// new source (Kafka, S3 archives, warehouse tables) is a sibling module implementing this
/// trait; the pipeline does not change.
pub trait Source: Send {
    /// The next chunk, numbered `seq` (`spare` is a buffer to reuse), or `None` once the
    /// source has ended.
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError>;

    /// How the source hears that its records are durable, and what durable must mean for
    /// it. `None`: the source needs no acknowledgement.
    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>>;

    /// For a source that numbers its records ([`Chunk::record_seq`]) and replays them
    /// after a crash: the journal that says which are already in finished files.
    fn journal(&self) -> Option<Arc<crate::journal::Journal>> {
        None
    }

    /// For a source that replays a stream from a committed position after a crash (Kafka):
    /// files are cut in windows per stream whose boundaries depend only on the records
    /// (see `partition::window`), so the same files are rebuilt under the same keys.
    fn windowed(&self) -> bool {
        false
    }

    /// Whether records arrive as they happen (HTTP, stdin): then a batch whose
    /// `batch_interval` has ended on the wall clock is closed without waiting for a row of
    /// the next interval. Replays of recorded input cut on record time alone.
    fn live(&self) -> bool {
        false
    }
}

/// A window of a stream whose files have all been handed to the sink (see
/// [`Source::windowed`]): every record of `stream` before `offset` is in files of windows
/// closed while chunk `seq` was written, or matched nothing. Once chunk `seq` is durable
/// ([`Acknowledge::durable_below`] with a number above it), `offset` may be committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowEnd {
    pub seq: u64,
    pub stream: usize,
    pub offset: u64,
}

/// The acknowledgement path back to a source: once output is durable, the source may
/// commit (Kafka offsets), forget (spool segments) or record (warehouse snapshots) the
/// records behind it.
pub trait Acknowledge: Send + Sync {
    /// What durable must mean before [`Acknowledge::durable_below`] is called: the run
    /// makes its sink fsync when this is [`Durability::Machine`] or more.
    fn level(&self) -> Durability;

    /// Every record of the chunks numbered below `seq` is durable at [`Self::level`]: in
    /// finished files, in the fsynced rejects file, or matched by no mapping. Called with
    /// increasing numbers, from the run's writer thread.
    fn durable_below(&self, seq: u64);

    /// Windows of a windowed source's streams closed (see [`WindowEnd`]), told before the
    /// `durable_below` that covers them.
    fn windows_closed(&self, _ends: &[WindowEnd]) {}
}

/// How far the inputs of a replay are durable (see [`Inputs`]): whole inputs, and the byte
/// position in a plain file being read.
#[derive(Debug, Default)]
pub struct InputProgress {
    /// (seq, input, byte end of the chunk in a plain file) of chunks handed on, in order.
    handed: Mutex<VecDeque<(u64, usize, Option<u64>)>>,
    durable: Mutex<Durable>,
    level: Durability,
}

/// What [`InputProgress`] knows is durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// Inputs whose every record is durable, in order: the first `inputs_done` inputs.
    pub inputs_done: usize,
    /// In the input after those, the byte where durable records end (plain files only).
    pub byte: Option<u64>,
}

impl InputProgress {
    pub fn durable(&self) -> Durable {
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Acknowledge for InputProgress {
    fn level(&self) -> Durability {
        self.level
    }

    fn durable_below(&self, seq: u64) {
        let mut handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
        let mut durable = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(s, input, end)) = handed.front() {
            if s >= seq {
                break;
            }
            handed.pop_front();
            if input > durable.inputs_done {
                durable.inputs_done = input;
            }
            durable.byte = end;
        }
        // An input whose chunks are all durable and that was followed by another is done.
        if let Some(&(_, next_input, _)) = handed.front()
            && next_input > durable.inputs_done
        {
            durable.inputs_done = next_input;
            durable.byte = None;
        }
    }
}

/// The inputs of `replay` and `serve`: files, stdin and HTTP, read one after another.
pub struct Inputs {
    inputs: Vec<Input>,
    names: Vec<Arc<str>>,
    chunk_size: usize,
    next: usize,
    current: Option<Chunks>,
    progress: Arc<InputProgress>,
}

impl Inputs {
    /// `level`: what durable means for the acknowledgements (see [`InputProgress`]).
    pub fn new(inputs: Vec<Input>, chunk_size: usize, level: Durability) -> Inputs {
        let names = inputs.iter().map(|i| Arc::from(i.name())).collect();
        Inputs {
            inputs,
            names,
            chunk_size,
            next: 0,
            current: None,
            progress: Arc::new(InputProgress {
                level,
                ..InputProgress::default()
            }),
        }
    }

    /// What is durable so far (also once the run has ended).
    pub fn progress(&self) -> Arc<InputProgress> {
        self.progress.clone()
    }

    /// The inputs' names, in order.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }
}

impl Source for Inputs {
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
        let mut spare = Some(spare);
        loop {
            let index = match &self.current {
                Some(_) => self.next - 1,
                None => {
                    if self.next == self.inputs.len() {
                        return Ok(None);
                    }
                    let i = self.next;
                    self.next += 1;
                    let opened =
                        Chunks::open(&self.inputs[i], i, self.chunk_size).map_err(|source| {
                            SourceError {
                                input: self.names[i].to_string(),
                                source,
                            }
                        })?;
                    self.current = Some(opened);
                    i
                }
            };
            let chunks = self.current.as_mut().expect("opened above");
            let next = chunks
                .next_chunk(seq, spare.take().unwrap_or_default())
                .map_err(|source| SourceError {
                    input: self.names[index].to_string(),
                    source,
                })?;
            match next {
                Some(mut chunk) => {
                    chunk.origin = self.names[index].clone();
                    let end = chunk.load.as_ref().map(Load::end);
                    self.progress
                        .handed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((seq, index, end));
                    return Ok(Some(chunk));
                }
                None => {
                    // Everything of this input has been handed on: once the chunks before
                    // `seq` are durable, so is the input (see `InputProgress`).
                    self.current = None;
                    self.progress
                        .handed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((seq, index + 1, None));
                }
            }
        }
    }

    fn live(&self) -> bool {
        self.inputs.iter().any(Input::is_live)
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
        Some(self.progress.clone())
    }
}

/// Opens a file, naming it in the error.
fn open_file(p: &Path) -> io::Result<File> {
    // Callers name the input themselves (`SourceError`): the path is not repeated here.
    File::open(p)
}

/// An input's chunks: byte ranges the workers read themselves (plain NDJSON files, see
/// [`FileRanges`]), or chunks read and cut here (everything else).
pub enum Chunks {
    Ranges(FileRanges),
    Stream(Splitter),
}

impl Chunks {
    pub fn open(input: &Input, index: usize, chunk_size: usize) -> io::Result<Chunks> {
        match input {
            Input::File(path) if !is_gz(path) => FileRanges::open(path, index, chunk_size),
            _ => Ok(Chunks::Stream(
                Splitter::new(input.open()?, index, chunk_size).live(input.is_live()),
            )),
        }
    }

    /// The next chunk, with `spare` as a buffer to reuse, or `None` at the end of the input.
    pub fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> io::Result<Option<Chunk>> {
        match self {
            Chunks::Ranges(r) => r.next_chunk(seq, spare),
            Chunks::Stream(s) => s.next_chunk(seq, spare),
        }
    }
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

fn sniff_gzip(mut r: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        let k = r.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let prefix = io::Cursor::new(head[..n].to_vec());
    let joined: Box<dyn Read + Send> = Box::new(prefix.chain(r));
    if n == 2 && head == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(
            joined,
        ))))
    } else {
        Ok(joined)
    }
}

/// One record (event text) inside a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub start: u32,
    pub end: u32,
    /// Where the record starts, in its chunk's [`Unit`]: the 1-based line (relative to the
    /// chunk while [`Chunk::lines`] records are not numbered yet), the offset, or the row.
    pub line: u64,
}

/// A run of whole records, in input order.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Position among all chunks of the run (across inputs).
    pub seq: u64,
    /// Index of the stream (input file, partition, model) within its source; line numbers
    /// continue from one chunk of a stream to the next.
    pub input: usize,
    /// The stream's name, as errors and the rejects file give it (`events.ndjson`,
    /// `kafka:TOPIC/PARTITION`).
    pub origin: Arc<str>,
    /// The unit of the records' positions.
    pub unit: Unit,
    pub data: Vec<u8>,
    pub records: Vec<Record>,
    /// Records that could not be cut out (e.g. an unterminated array), with the reason.
    pub broken: Vec<(Record, String)>,
    /// NDJSON chunk whose records are not cut yet: call [`Chunk::split_lines`]. Its record
    /// lines are then relative to the chunk (0 for its first line).
    pub lines: bool,
    /// Line breaks in `data` (set by `split_lines`), to number the next chunk's lines.
    pub newlines: u64,
    /// Bytes still to be read into `data` by [`Chunk::load`] (see [`FileRanges`]).
    pub load: Option<Load>,
    /// For sources that replay after a crash (serve's spool): the sequence number of the
    /// chunk's first line; line `i` of the chunk (0-based) is number `record_seq + i`.
    /// Numbers never repeat, so the run can tell which rows are already in finished files
    /// (see [`crate::journal`]); records' positions in the rejects file are these numbers.
    pub record_seq: Option<u64>,
    /// For windowed sources: each record's time (ms since the epoch, Kafka's message
    /// timestamp), which `batch_max_age_seconds` is measured in.
    pub times: Vec<i64>,
    /// For windowed sources: streams whose open windows are dropped unwritten before this
    /// chunk (a revoked Kafka partition: its new owner rebuilds them).
    pub abandon: Vec<usize>,
    /// For windowed sources: (stream, offset) whose open windows are written before this
    /// chunk; everything of the stream before `offset` is then in closed windows.
    pub flush: Vec<(usize, u64)>,
}

impl Chunk {
    /// Cuts an NDJSON chunk into records (blank lines skipped, `\r\n` accepted).
    pub fn split_lines(&mut self) {
        if !self.lines {
            return;
        }
        let data = &self.data;
        let mut line = 0u64;
        let mut start = 0usize;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let mut e = end;
            if e > start && data[e - 1] == b'\r' {
                e -= 1;
            }
            if data[start..e].iter().any(|&c| !is_ws(c)) {
                self.records.push(Record {
                    start: start as u32,
                    end: e as u32,
                    line,
                });
            }
            if end < data.len() {
                line += 1;
            }
            start = end + 1;
        }
        self.newlines = line;
    }

    /// What to add to this chunk's record lines to get line numbers in the input, given the
    /// input's next line number (updated). Chunks must be numbered in order.
    pub fn line_offset(&self, next_line: &mut u64) -> u64 {
        if let Some(seq) = self.record_seq {
            seq
        } else if self.lines {
            let base = *next_line;
            *next_line += self.newlines;
            base
        } else {
            0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Unknown,
    Lines,
    Stream,
    Array,
    ArrayDone,
}

/// Cuts an input into chunks of whole records.
pub struct Splitter {
    reader: Box<dyn Read + Send>,
    input: usize,
    chunk_size: usize,
    carry: Vec<u8>,
    /// Line number of `carry[0]`.
    line: u64,
    layout: Layout,
    eof: bool,
    at_start: bool,
    /// For arrays: the opening '[' has been consumed.
    array_open: bool,
    /// A stream that may pause (stdin): hand on what has arrived instead of waiting for a
    /// full chunk.
    live: bool,
    /// A byte order mark was skipped at the start.
    bom: bool,
}

/// Result of scanning for the end of one JSON value.
enum Scan {
    /// The value ends at this offset (exclusive); `lines` newlines were crossed.
    End(usize, u64),
    /// More input is needed.
    Incomplete,
}

/// Finds the end of the JSON value starting at `b[0]` (not whitespace), tracking strings and
/// nesting only (validation is the parser's job).
fn scan_value(b: &[u8]) -> Scan {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut lines = 0u64;
    let scalar = !matches!(b.first(), Some(b'{') | Some(b'['));
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            lines += 1;
        }
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
                if scalar && depth == 0 {
                    return Scan::End(i + 1, lines);
                }
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Scan::End(i + 1, lines);
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' | b',' if scalar && depth == 0 => {
                    return Scan::End(i, lines - u64::from(c == b'\n'));
                }
                _ => {}
            }
        }
        i += 1;
    }
    Scan::Incomplete
}

impl Splitter {
    pub fn new(reader: Box<dyn Read + Send>, input: usize, chunk_size: usize) -> Splitter {
        Splitter {
            reader,
            input,
            chunk_size: chunk_size.max(4096),
            carry: Vec::new(),
            line: 1,
            layout: Layout::Unknown,
            eof: false,
            at_start: true,
            array_open: false,
            live: false,
            bom: false,
        }
    }

    /// Marks the input as live (see [`Input::is_live`]): chunks are cut from whatever has
    /// arrived when the producer pauses, so events do not wait for a full chunk.
    pub fn live(mut self, live: bool) -> Splitter {
        self.live = live;
        self
    }

    /// Reads until the buffer holds at least `want` bytes or the input ends; for live input,
    /// also stops after new bytes when a read comes back short (the producer paused).
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.live {
            return self.fill_live(want);
        }
        while self.carry.len() < want && !self.eof {
            let len = self.carry.len();
            let target = want.max(len + 64 * 1024);
            // read_to_end on a bounded reader fills spare capacity without zeroing it first.
            self.carry.reserve(target - len);
            let n = (&mut self.reader)
                .take((target - len) as u64)
                .read_to_end(&mut self.carry)?;
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    fn fill_live(&mut self, want: usize) -> io::Result<()> {
        const BLOCK: usize = 64 * 1024;
        let mut block = [0u8; BLOCK];
        while self.carry.len() < want && !self.eof {
            let n = loop {
                match self.reader.read(&mut block) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.carry.extend_from_slice(&block[..n]);
            if n == 0 {
                self.eof = true;
            } else if n < BLOCK {
                break; // the producer paused: hand on what has come
            }
        }
        Ok(())
    }

    fn detect(&mut self) -> io::Result<()> {
        if self.at_start {
            self.fill(3)?;
            if self.carry.starts_with(b"\xEF\xBB\xBF") {
                self.carry.drain(..3);
                self.bom = true;
            }
            self.at_start = false;
        }
        // Skip leading whitespace to find the first significant byte.
        loop {
            let ws = self.carry.iter().take_while(|&&c| is_ws(c)).count();
            if ws < self.carry.len() || self.eof {
                break;
            }
            let len = self.carry.len();
            self.fill(len + 64 * 1024)?;
            if self.carry.len() == len {
                break;
            }
        }
        let ws = self.carry.iter().take_while(|&&c| is_ws(c)).count();
        let Some(&first) = self.carry.get(ws) else {
            self.layout = Layout::Lines;
            return Ok(());
        };
        if first == b'[' {
            self.layout = Layout::Array;
            return Ok(());
        }
        // NDJSON when the first value ends on its first line; otherwise a stream of
        // (pretty-printed) values.
        loop {
            match scan_value(&self.carry[ws..]) {
                Scan::End(end, lines) => {
                    self.layout = if lines == 0 {
                        Layout::Lines
                    } else {
                        Layout::Stream
                    };
                    let _ = end;
                    return Ok(());
                }
                Scan::Incomplete if self.eof => {
                    let rest = &self.carry[ws..];
                    self.layout = if rest.contains(&b'\n') {
                        Layout::Stream
                    } else {
                        Layout::Lines
                    };
                    return Ok(());
                }
                Scan::Incomplete => {
                    let len = self.carry.len();
                    self.fill(len * 2)?;
                }
            }
        }
    }

    /// Where the first record starts when the input is NDJSON (after a byte order mark, if
    /// any); `None` for the other layouts.
    fn ndjson_start(&mut self) -> io::Result<Option<u64>> {
        if self.layout == Layout::Unknown {
            self.detect()?;
        }
        Ok((self.layout == Layout::Lines).then_some(if self.bom { 3 } else { 0 }))
    }

    /// The next chunk of records, or `None` at the end of the input. `spare` becomes the
    /// buffer of the chunk after it, so that buffers can be reused.
    pub fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> io::Result<Option<Chunk>> {
        if self.layout == Layout::Unknown {
            self.detect()?;
        }
        // Live input that has something waits for nothing more.
        if !self.live || self.carry.is_empty() {
            self.fill(self.chunk_size)?;
        }
        if self.carry.is_empty() && self.eof {
            return Ok(None);
        }
        let mut chunk = Chunk {
            seq,
            input: self.input,
            ..Chunk::default()
        };
        match self.layout {
            Layout::Lines => self.cut_lines(&mut chunk, spare)?,
            Layout::Stream | Layout::Array | Layout::ArrayDone => self.cut_values(&mut chunk)?,
            Layout::Unknown => unreachable!("detected above"),
        }
        let nothing = if chunk.lines {
            chunk.data.is_empty()
        } else {
            chunk.records.is_empty() && chunk.broken.is_empty()
        };
        if nothing && self.carry.is_empty() && self.eof {
            return Ok(None);
        }
        Ok(Some(chunk))
    }

    fn cut_lines(&mut self, chunk: &mut Chunk, mut spare: Vec<u8>) -> io::Result<()> {
        // Make sure at least one whole line is present (lines may exceed the chunk size).
        let mut boundary = memchr::memrchr(b'\n', &self.carry).map(|p| p + 1);
        while boundary.is_none() && !self.eof {
            let len = self.carry.len();
            self.fill(len * 2 + 4096)?;
            boundary = memchr::memrchr(b'\n', &self.carry).map(|p| p + 1);
        }
        let cut = if self.eof {
            self.carry.len()
        } else {
            boundary.unwrap_or(self.carry.len())
        };
        spare.clear();
        spare.extend_from_slice(&self.carry[cut..]);
        self.carry.truncate(cut);
        chunk.data = std::mem::replace(&mut self.carry, spare);
        // The lines themselves are found by the worker (see `Chunk::split_lines`), so that
        // the reader thread only reads.
        chunk.lines = true;
        Ok(())
    }

    fn cut_values(&mut self, chunk: &mut Chunk) -> io::Result<()> {
        let mut pos = 0usize;
        let mut line = self.line;
        let mut records = Vec::new();
        let mut broken = Vec::new();
        loop {
            // Skip whitespace (and, inside an array, separating commas).
            while pos < self.carry.len() {
                let c = self.carry[pos];
                if c == b'\n' {
                    line += 1;
                }
                if is_ws(c) {
                    pos += 1;
                    continue;
                }
                if self.layout == Layout::Array && self.array_open && c == b',' {
                    pos += 1;
                    continue;
                }
                break;
            }
            if pos >= self.carry.len() {
                if self.eof {
                    if self.layout == Layout::Array {
                        broken.push((
                            Record {
                                start: pos as u32,
                                end: pos as u32,
                                line,
                            },
                            "unterminated JSON array: the input ends before the closing ']'"
                                .to_string(),
                        ));
                        self.layout = Layout::ArrayDone;
                    }
                    break;
                }
                if (pos >= self.chunk_size || self.live) && !records.is_empty() {
                    break;
                }
                self.fill(self.carry.len() + 64 * 1024)?;
                continue;
            }
            let c = self.carry[pos];
            match self.layout {
                Layout::Array if !self.array_open => {
                    // detect() saw '[' as the first significant byte.
                    self.array_open = true;
                    pos += 1;
                    continue;
                }
                Layout::Array if c == b']' => {
                    pos += 1;
                    self.layout = Layout::ArrayDone;
                    continue;
                }
                Layout::ArrayDone => {
                    // Anything but whitespace after the array is an error, reported once.
                    let end = self.carry.len();
                    broken.push((
                        Record {
                            start: pos as u32,
                            end: end as u32,
                            line,
                        },
                        "unexpected data after the JSON array".to_string(),
                    ));
                    pos = end;
                    // Drain the rest of the input.
                    let mut sink = Vec::new();
                    self.reader.read_to_end(&mut sink)?;
                    self.eof = true;
                    break;
                }
                _ => {}
            }
            match scan_value(&self.carry[pos..]) {
                Scan::End(0, _) => {
                    // A stray character where a value should start: let the parser say why.
                    records.push(Record {
                        start: pos as u32,
                        end: (pos + 1) as u32,
                        line,
                    });
                    pos += 1;
                }
                Scan::End(len, lines) => {
                    records.push(Record {
                        start: pos as u32,
                        end: (pos + len) as u32,
                        line,
                    });
                    line += lines;
                    pos += len;
                    if pos >= self.chunk_size {
                        break;
                    }
                }
                Scan::Incomplete if self.eof => {
                    records.push(Record {
                        start: pos as u32,
                        end: self.carry.len() as u32,
                        line,
                    });
                    pos = self.carry.len();
                    if self.layout == Layout::Array {
                        self.layout = Layout::ArrayDone;
                    }
                    break;
                }
                Scan::Incomplete => {
                    if !records.is_empty() || !broken.is_empty() {
                        break;
                    }
                    let len = self.carry.len();
                    self.fill(len * 2 + 4096)?;
                }
            }
        }
        let tail = self.carry.split_off(pos.min(self.carry.len()));
        chunk.data = std::mem::replace(&mut self.carry, tail);
        chunk.records = records;
        chunk.broken = broken;
        self.line = line;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one scripted piece per `read`, like a pipe whose producer pauses between
    /// writes; panics if read again before the test allows it.
    struct Pauses {
        pieces: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl Read for Pauses {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut pieces = self.pieces.lock().unwrap();
            assert!(
                !pieces.is_empty(),
                "read while the producer has nothing to give"
            );
            let n = pieces[0].len().min(buf.len());
            buf[..n].copy_from_slice(&pieces[0][..n]);
            pieces[0].drain(..n);
            if pieces[0].is_empty() && n > 0 {
                pieces.remove(0);
            } else if n == 0 {
                pieces.remove(0); // end of input
            }
            Ok(n)
        }
    }

    #[test]
    fn live_input_is_handed_on_when_the_producer_pauses() {
        for (first, second) in [
            ("{\"a\":1}\n{\"a\":2}\n", "{\"a\":3}\n"),
            ("[{\"a\":1},{\"a\":2}", ",{\"a\":3}]"),
            ("{\n\"a\":1}\n{\"a\":2}\n", "{\"a\":3}"),
        ] {
            let pieces =
                std::sync::Arc::new(std::sync::Mutex::new(vec![first.as_bytes().to_vec()]));
            let mut s = Splitter::new(
                Box::new(Pauses {
                    pieces: pieces.clone(),
                }),
                0,
                1 << 20,
            )
            .live(true);
            let mut chunk = s
                .next_chunk(0, Vec::new())
                .unwrap()
                .expect("the first events");
            chunk.split_lines();
            assert_eq!(chunk.records.len(), 2, "{first}");
            pieces
                .lock()
                .unwrap()
                .extend([second.as_bytes().to_vec(), Vec::new()]);
            let mut rest = Vec::new();
            while let Some(mut c) = s.next_chunk(1, Vec::new()).unwrap() {
                c.split_lines();
                rest.extend(
                    c.records
                        .iter()
                        .map(|r| c.data[r.start as usize..r.end as usize].to_vec()),
                );
            }
            assert_eq!(rest, vec![b"{\"a\":3}".to_vec()], "{second}");
        }
    }

    fn split(input: &str, chunk: usize) -> Vec<(String, u64)> {
        let mut s = Splitter::new(
            Box::new(io::Cursor::new(input.as_bytes().to_vec())),
            0,
            chunk,
        );
        s.chunk_size = chunk;
        let mut out = Vec::new();
        let mut seq = 0;
        let mut next_line = 1u64;
        while let Some(c) = s.next_chunk(seq, Vec::new()).unwrap() {
            seq += 1;
            let mut c = c;
            c.split_lines();
            let offset = c.line_offset(&mut next_line);
            for r in &c.records {
                out.push((
                    String::from_utf8_lossy(&c.data[r.start as usize..r.end as usize]).to_string(),
                    r.line + offset,
                ));
            }
            for (r, why) in &c.broken {
                out.push((format!("BROKEN: {why}"), r.line));
            }
        }
        out
    }

    #[test]
    fn ndjson_lines() {
        let got = split("{\"a\":1}\n\n{\"b\":2}\r\nnot json\n{\"c\":\n", 4096);
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".into(), 1),
                ("{\"b\":2}".into(), 3),
                ("not json".into(), 4),
                ("{\"c\":".into(), 5)
            ]
        );
    }

    #[test]
    fn small_chunks_keep_records_whole() {
        let input: String = (0..500)
            .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 37)))
            .collect();
        let got = split(&input, 1);
        assert_eq!(got.len(), 500);
        assert_eq!(got[499].1, 500);
        assert!(got[123].0.starts_with("{\"i\":123,"));
    }

    #[test]
    fn arrays_and_pretty_objects() {
        let got = split("[\n  {\"a\": 1},\n  {\"b\": [1, 2]}\n]\n", 4096);
        assert_eq!(
            got,
            vec![("{\"a\": 1}".into(), 2), ("{\"b\": [1, 2]}".into(), 3)]
        );
        let got = split("{\n  \"a\": \"x}\",\n  \"b\": 2\n}\n{\"c\": 3}\n", 4096);
        assert_eq!(
            got,
            vec![
                ("{\n  \"a\": \"x}\",\n  \"b\": 2\n}".into(), 1),
                ("{\"c\": 3}".into(), 5)
            ]
        );
        let got = split("[{\"a\":1}", 4096);
        assert_eq!(got[0], ("{\"a\":1}".into(), 1));
        assert!(got[1].0.starts_with("BROKEN: unterminated"));
        let got = split("[{\"a\":1}] x", 4096);
        assert!(got[1].0.starts_with("BROKEN: unexpected data after"));
        let many: String = format!(
            "[{}]",
            (0..300)
                .map(|i| format!("{{\"i\":{i}}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(split(&many, 64).len(), 300);
        assert_eq!(split("", 4096), vec![]);
        assert_eq!(split("[]", 4096), vec![]);
    }
}
