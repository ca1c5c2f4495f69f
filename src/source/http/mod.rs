//! Live events over HTTP, in the shape of Segment's tracking API.
//!
//! `POST /v1/batch` (or `/v1/import`) takes `{"batch": [event, ...]}`; `POST /v1/track`,
//! `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group` and `/v1/alias` take one event,
//! whose `type` defaults to the endpoint's. Bodies may be gzip (`Content-Encoding: gzip`).
//! Events are shaped as Segment's API shapes them ([`api`]: batch context merged,
//! `receivedAt`, clock-skew corrected `timestamp`, generated `messageId`), become NDJSON lines
//! handed to an [`Intake`](super::intake::Intake), which the pipeline reads like any other
//! source, so they go through exactly the same triggers, mappings and batches as replayed
//! files. `GET /health`, `/ready` and `/metrics` are for probes and scrapes ([`server`]).
//!
//! A request is answered once the intake has taken its events: fsynced in the spool
//! (`--durability fsync`) or queued in memory (`none`). They are written when their batch
//! closes: on size, on `batch_max_age_seconds`, or when the server stops (Ctrl-C or SIGTERM
//! stop accepting, then every open batch is written).

pub mod api;
pub mod server;
mod tls;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use api::{Arrival, Limits, Refused, normalise};
pub use server::{
    BODY_TIMEOUT, HEADER_TIMEOUT, HttpServer, ServeError, ServeOptions, TlsFiles, serve,
};
pub use tls::TlsError;

/// The reader handed to the pipeline by `--durability none` (see
/// [`super::intake::MemoryIntake`]), taken once.
#[derive(Clone)]
pub struct HttpInput {
    addr: SocketAddr,
    stream: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
}

impl HttpInput {
    /// The input of a server listening on `addr`, reading what `stream` yields.
    pub fn new(addr: SocketAddr, stream: Box<dyn Read + Send>) -> HttpInput {
        HttpInput {
            addr,
            stream: Arc::new(Mutex::new(Some(stream))),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn take(&self) -> io::Result<Box<dyn Read + Send>> {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take();
        stream.ok_or_else(|| io::Error::other("the HTTP input was already read"))
    }
}

impl std::fmt::Debug for HttpInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpInput({})", self.addr)
    }
}

impl PartialEq for HttpInput {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.stream, &other.stream)
    }
}

impl Eq for HttpInput {}

/// Who may send events: with a write key, every request must carry it as Segment's API
/// takes it: HTTP Basic authentication (the key as user name, no password), as Segment's
/// libraries send it, or a top-level `writeKey` in the JSON body.
#[derive(Clone, Default)]
pub struct Access {
    /// The whole `Authorization` header value expected.
    expected: Option<String>,
    /// The key itself, for a body's `writeKey`.
    key: Option<String>,
}

impl Access {
    pub fn open() -> Access {
        Access::default()
    }

    pub fn write_key(key: &crate::mapping::Secret) -> Access {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:", key.expose()));
        Access {
            expected: Some(format!("Basic {token}")),
            key: Some(key.expose().to_string()),
        }
    }

    /// Whether the request's `Authorization` header lets it in (always, without a key).
    pub(super) fn allows(&self, header: Option<&hyper::header::HeaderValue>) -> bool {
        match &self.expected {
            None => true,
            Some(want) => header.is_some_and(|h| same_bytes(h.as_bytes(), want.as_bytes())),
        }
    }

    /// Whether a body's top-level `writeKey` lets the request in.
    pub(super) fn allows_body_key(&self, body_key: Option<&str>) -> bool {
        match (&self.key, body_key) {
            (None, _) => true,
            (Some(want), Some(got)) => same_bytes(got.as_bytes(), want.as_bytes()),
            (Some(_), None) => false,
        }
    }
}

/// Compares in the same time whatever the first differing byte.
fn same_bytes(got: &[u8], want: &[u8]) -> bool {
    got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.expected.is_some() {
            "write key (redacted)"
        } else {
            "open"
        };
        write!(f, "Access({mode})")
    }
}
