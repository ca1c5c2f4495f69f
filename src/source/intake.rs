//! How `serve`'s HTTP front end hands accepted events to the pipeline.
//!
//! The front end answers a request only after [`Intake::accept`] has returned: what that
//! promises is the intake's business. [`MemoryIntake`] (`--durability none`) queues the
//! events in memory, so a crash loses what was queued; the spool ([`super::spool`]) returns
//! once they are fsynced on disk.

use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// One request's accepted events, normalised by the front end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// One compact JSON event per line, each line ending in `\n`.
    pub lines: Vec<u8>,
    /// Each event's `messageId`, in line order (for de-duplication); empty when the front
    /// end does not know them.
    pub message_ids: Vec<Box<str>>,
    /// Whether each of `message_ids` was generated on arrival (the event had none). No
    /// sender can send such an id again, so de-duplication does not remember it; an event
    /// past the end of this list counts as sent with its id.
    pub generated: Vec<bool>,
}

impl Received {
    /// Events in the request (its lines).
    pub fn events(&self) -> usize {
        memchr::memchr_iter(b'\n', &self.lines).count()
    }

    /// Whether event `i`'s id was generated on arrival.
    pub fn is_generated(&self, i: usize) -> bool {
        self.generated.get(i).copied().unwrap_or(false)
    }
}

/// Why events were not accepted: the front end answers `503` (with `Retry-After` when
/// given) or `500`.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IntakeError {
    /// No room now (the spool is at its size limit); the sender should retry later.
    #[error("the spool is full ({used} of {limit} bytes); retry later")]
    Full {
        used: u64,
        limit: u64,
        retry_after: Duration,
    },
    /// The request's events are larger than this intake ever takes in one piece (`413`;
    /// retrying cannot help).
    #[error("the request's events take {bytes} bytes; at most {limit} are kept from one request")]
    TooLarge { bytes: u64, limit: u64 },
    /// The server is stopping, or the pipeline has stopped.
    #[error("{0}")]
    Stopped(&'static str),
    /// The events could not be made durable (a disk error): nothing was acknowledged.
    #[error("the events could not be stored: {0}")]
    Failed(String),
}

/// A boxed future, so that the trait stays object-safe.
pub type Accepting<'a> = Pin<Box<dyn Future<Output = Result<(), IntakeError>> + Send + 'a>>;

/// Where the front end puts accepted events.
pub trait Intake: Send + Sync {
    /// Takes a request's events; resolves once they are kept as well as this intake
    /// promises. Events that are acknowledged are never lost by a later failure of the
    /// intake; events that are refused were not taken (none of them).
    fn accept(&self, received: Received) -> Accepting<'_>;

    /// Whether new events can be taken now (for `GET /ready`): `Err` says why not.
    fn ready(&self) -> Result<(), IntakeError>;

    /// Stops taking events: later calls to `accept` fail with [`IntakeError::Stopped`],
    /// and once those in flight are done the pipeline's input ends.
    fn close(&self);
}

/// Requests whose events are waiting for the pipeline, at most.
const QUEUE: usize = 64;

/// Today's behaviour, kept for `--durability none`: events queued in memory (bounded: a
/// slow pipeline slows the senders down), lost if the process dies before their batch is
/// written.
pub struct MemoryIntake {
    tx: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
}

impl MemoryIntake {
    /// The intake, and the reader the pipeline reads its NDJSON from (see
    /// [`super::Input::Http`]).
    pub fn new() -> (Arc<MemoryIntake>, Box<dyn Read + Send>) {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let intake = Arc::new(MemoryIntake {
            tx: Mutex::new(Some(tx)),
        });
        let stream = Stream {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        (intake, Box::new(stream))
    }

    fn sender(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Intake for MemoryIntake {
    fn accept(&self, received: Received) -> Accepting<'_> {
        let sender = self.sender();
        Box::pin(async move {
            let Some(sender) = sender else {
                return Err(IntakeError::Stopped("the server is stopping"));
            };
            if received.lines.is_empty() {
                return Ok(());
            }
            sender
                .send(received.lines)
                .await
                .map_err(|_| IntakeError::Stopped("the pipeline has stopped"))
        })
    }

    fn ready(&self) -> Result<(), IntakeError> {
        match self.sender() {
            Some(s) if s.is_closed() => Err(IntakeError::Stopped("the pipeline has stopped")),
            Some(_) => Ok(()),
            None => Err(IntakeError::Stopped("the server is stopping")),
        }
    }

    fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The pipeline's end of the queue: blocks for the next request's events; ends when the
/// intake is closed and every queued request is read.
struct Stream {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.blocking_recv() {
                Some(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
