//! Live events over HTTP, in the shape of Segment's tracking API.
//!
//! `POST /v1/batch` (or `/v1/import`) takes `{"batch": [event, ...]}`; `POST /v1/track`,
//! `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group` and `/v1/alias` take one event,
//! whose `type` defaults to the endpoint's. Accepted events become NDJSON lines handed to an
//! [`Intake`], which the pipeline reads like any other source, so they go through exactly
//! the same triggers, mappings and batches as replayed files.
//!
//! A request is answered once the intake has taken its events: fsynced in the spool
//! (`--durability fsync`, see [`super::spool`]) or queued in memory (`none`). They are
//! written when their batch closes: on size, on `batch_max_age_seconds`, or when the server
//! stops (Ctrl-C or SIGTERM stop accepting, then every open batch is written).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::intake::{Intake, IntakeError, Received};
use crate::json::{Kind, Tape};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// Largest request body accepted (Segment's own limit for a batch is 500 KB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Endpoints taking a single event, and the type they give it.
const SINGLE: [(&str, &str); 6] = [
    ("/v1/track", "track"),
    ("/v1/identify", "identify"),
    ("/v1/page", "page"),
    ("/v1/screen", "screen"),
    ("/v1/group", "group"),
    ("/v1/alias", "alias"),
];

/// Why a request body was refused (the message goes back to the sender).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refused(String);

/// Turns a request body into NDJSON lines: every event compacted onto one line (so that no
/// newline inside a pretty-printed body splits it), with `type` filled in for single-event
/// endpoints.
pub fn events_to_lines(path: &str, body: &[u8]) -> Result<Vec<u8>, Refused> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Refused(format!(
            "the body is not valid UTF-8 (byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    let mut tape = Tape::new();
    let root = tape.parse(text).map_err(|e| {
        let (line, col) = e.line_col(body);
        Refused(format!(
            "invalid JSON at line {line}, column {col}: {}",
            e.message
        ))
    })?;
    if root.kind() != Kind::Object {
        return Err(Refused("the body must be a JSON object".into()));
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    if path == "/v1/batch" || path == "/v1/import" {
        let Some(batch) = root.get("batch").filter(|b| b.kind() == Kind::Array) else {
            return Err(Refused(
                "expected {\"batch\": [event, ...]} with an array of events".into(),
            ));
        };
        for (i, event) in batch.elements().enumerate() {
            if event.kind() != Kind::Object {
                return Err(Refused(format!("batch[{i}] is not a JSON object")));
            }
            if event.get("type").and_then(|t| t.as_str()).is_none() {
                return Err(Refused(format!("batch[{i}] has no \"type\"")));
            }
            compact_into(&mut out, event.raw().as_bytes());
            out.push(b'\n');
        }
        return Ok(out);
    }
    let Some(&(_, kind)) = SINGLE.iter().find(|(p, _)| *p == path) else {
        return Err(Refused(format!("no endpoint {path}")));
    };
    let raw = root.raw().as_bytes();
    if root.get("type").is_some() {
        compact_into(&mut out, raw);
    } else {
        out.extend_from_slice(format!("{{\"type\":\"{kind}\"").as_bytes());
        if !root.is_empty() {
            out.push(b',');
        }
        // Everything after the opening brace: members, then the closing brace.
        compact_into(&mut out, &raw[1..]);
    }
    out.push(b'\n');
    Ok(out)
}

/// Appends valid JSON `raw` without the whitespace between tokens.
fn compact_into(out: &mut Vec<u8>, raw: &[u8]) {
    let (mut in_string, mut escaped) = (false, false);
    for &c in raw {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = c == b'"';
            out.push(c);
        }
    }
}

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

/// A running server; stops on Ctrl-C / SIGTERM, or when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests (from any thread): those in flight are answered, then the
    /// event stream ends.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        move || stop.notify_one()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Who may send events: with a write key, every request must carry it as Segment's
/// libraries do (HTTP Basic authentication, the key as user name, no password).
#[derive(Clone, Default)]
pub struct Access {
    /// The whole `Authorization` header value expected.
    expected: Option<String>,
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
        }
    }

    fn allows(&self, header: Option<&hyper::header::HeaderValue>) -> bool {
        match &self.expected {
            None => true,
            Some(want) => header.is_some_and(|h| {
                let got = h.as_bytes();
                // Same time whatever the first differing byte.
                got.len() == want.len()
                    && got
                        .iter()
                        .zip(want.as_bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }),
        }
    }
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

/// Binds `listen` and serves on a thread of its own, handing accepted events to `intake`.
pub fn serve(listen: &str, access: Access, intake: Arc<dyn Intake>) -> io::Result<HttpServer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen))?;
    let addr = listener.local_addr()?;
    let signals = {
        let _inside = runtime.enter();
        Signals::register()?
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let thread = std::thread::Builder::new()
        .name("s3actions-http".into())
        .spawn({
            let stop = stop.clone();
            move || runtime.block_on(accept_loop(listener, intake, stop, access, signals))
        })?;
    Ok(HttpServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// On stop, the intake is closed: requests in flight are refused or finish, idle
/// keep-alive connections can send nothing more, and the pipeline's input ends.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    intake: Arc<dyn Intake>,
    stop: Arc<tokio::sync::Notify>,
    access: Access,
    signals: Signals,
) {
    let mut signals = signals;
    let stopping = signals.recv();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let intake = intake.clone();
                let access = access.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let allowed = access.allows(req.headers().get(hyper::header::AUTHORIZATION));
                        let intake = intake.clone();
                        async move { handle(req, &*intake, allowed).await }
                    });
                    let io = hyper_util::rt::TokioIo::new(socket);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                    {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
            _ = &mut stopping => break,
            _ = stop.notified() => break,
        }
    }
    tracing::info!("HTTP source stopping: no new requests; writing what was received");
    intake.close();
}

/// Ctrl-C and SIGTERM, registered before the server says it is listening: a signal that
/// comes right after that line must stop it gracefully, not kill it.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (inside the server's runtime).
    fn register() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn reply(status: StatusCode, message: Option<&str>) -> Response<Full<Bytes>> {
    let body = match message {
        None => serde_json::json!({"success": true}),
        Some(m) => serde_json::json!({"success": false, "message": m}),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    intake: &dyn Intake,
    allowed: bool,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if !allowed {
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            Some("a write key is required: HTTP Basic authentication with the key as user name"),
        );
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"s3actions\""),
        );
        return Ok(r);
    }
    if req.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            Some("use POST with a JSON body"),
        ));
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    if path != "/v1/batch" && path != "/v1/import" && !SINGLE.iter().any(|(p, _)| *p == path) {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            Some(&format!(
                "no endpoint {path}: use /v1/batch, /v1/import or /v1/<track|identify|page|screen|group|alias>"
            )),
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(&format!("the body is larger than {MAX_BODY} bytes")),
            ));
        }
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                Some(&format!("cannot read the body: {e}")),
            ));
        }
    };
    let lines = match events_to_lines(&path, &body) {
        Ok(l) => l,
        Err(Refused(m)) => return Ok(reply(StatusCode::BAD_REQUEST, Some(&m))),
    };
    let received = Received {
        lines,
        message_ids: Vec::new(),
    };
    match intake.accept(received).await {
        Ok(()) => Ok(reply(StatusCode::OK, None)),
        Err(e) => Ok(refusal(&e)),
    }
}

/// The answer to events the intake did not take: `503` (with `Retry-After` when the spool
/// is full) while the sender may retry, `500` when they could not be stored.
fn refusal(e: &IntakeError) -> Response<Full<Bytes>> {
    match e {
        IntakeError::Full { retry_after, .. } => {
            let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string()));
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = hyper::header::HeaderValue::from_str(&secs) {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            r
        }
        IntakeError::Stopped(_) => reply(StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string())),
        IntakeError::Failed(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, Some(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &str, body: &str) -> Result<String, Refused> {
        events_to_lines(path, body.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn batches_become_one_line_per_event() {
        let body = "{\"batch\": [\n  {\"type\": \"track\", \"event\": \"A b\",\n \"properties\": {\"s\": \"x \\\" y\\n\"}},\n  {\"type\":\"identify\",\"userId\":\"u\"}\n], \"sentAt\": \"x\"}";
        assert_eq!(
            lines("/v1/batch", body).unwrap(),
            "{\"type\":\"track\",\"event\":\"A b\",\"properties\":{\"s\":\"x \\\" y\\n\"}}\n{\"type\":\"identify\",\"userId\":\"u\"}\n"
        );
        assert_eq!(lines("/v1/import", "{\"batch\":[]}").unwrap(), "");
    }

    #[test]
    fn single_events_get_their_endpoint_type() {
        assert_eq!(
            lines("/v1/identify", "{ \"userId\": \"u\" }").unwrap(),
            "{\"type\":\"identify\",\"userId\":\"u\"}\n"
        );
        assert_eq!(lines("/v1/track", "{}").unwrap(), "{\"type\":\"track\"}\n");
        assert_eq!(
            lines("/v1/page", "{\"type\":\"screen\"}").unwrap(),
            "{\"type\":\"screen\"}\n",
            "an explicit type is kept"
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        for (path, body, want) in [
            (
                "/v1/batch",
                "{\"batch\": [1]}",
                "batch[0] is not a JSON object",
            ),
            (
                "/v1/batch",
                "{\"batch\": [{\"event\":\"x\"}]}",
                "batch[0] has no \"type\"",
            ),
            ("/v1/batch", "{\"events\": []}", "expected {\"batch\""),
            ("/v1/track", "[1]", "must be a JSON object"),
            ("/v1/track", "{\"a\": }", "invalid JSON at line 1, column 7"),
            ("/v1/nope", "{}", "no endpoint /v1/nope"),
        ] {
            let e = lines(path, body).unwrap_err();
            assert!(e.0.contains(want), "{body}: {e}");
        }
        assert!(events_to_lines("/v1/track", b"{\"a\":\"\xff\"}").is_err());
    }
}
