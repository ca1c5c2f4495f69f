//! The HTTP server: connections (plain or TLS), timeouts, routing, bodies, answers.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Access;
use super::api::{self, Arrival, Limits, Refused, SINGLE};
use crate::metrics::PrometheusHandle;
use crate::source::intake::{Intake, IntakeError};

/// Default for `--header-timeout`: the whole request head must arrive within it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole body must arrive within this once the head is read.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for `--max-connections`: connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a refused connection is given to send its request head before it is closed:
/// the refusal is read and answered cleanly, but never waits on a slow client for long.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A certificate chain and its private key, PEM files (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How `serve` listens.
pub struct ServeOptions {
    /// Address to bind (`:0` picks a free port).
    pub listen: String,
    pub access: Access,
    /// Time allowed to read a request's head, however slowly its bytes come.
    pub header_timeout: Duration,
    /// Time allowed to read a request's body.
    pub body_timeout: Duration,
    /// Connections served at once (`--max-connections`); more are answered `503`.
    pub max_connections: usize,
    /// Sizes of events and bodies (`--max-event-bytes`, `--max-request-bytes`).
    pub limits: Limits,
    /// TLS instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The recorder `GET /metrics` renders (none: `/metrics` is 404).
    pub metrics: Option<PrometheusHandle>,
}

impl ServeOptions {
    /// Plain HTTP on `listen`, default timeouts, no metrics.
    pub fn new(listen: &str, access: Access) -> ServeOptions {
        ServeOptions {
            listen: listen.to_string(),
            access,
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            limits: Limits::SEGMENT,
            tls: None,
            metrics: None,
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// A running server; stops on Ctrl-C / SIGTERM, or when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    tls: bool,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
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

/// What every request handler needs.
struct Shared {
    intake: Arc<dyn Intake>,
    access: Access,
    metrics: Option<PrometheusHandle>,
    body_timeout: Duration,
    limits: Limits,
    /// Where the server listens, and whether with TLS (for Analytics.js's settings).
    addr: SocketAddr,
    tls: bool,
}

/// Binds and serves on a thread of its own, handing accepted events to `intake`.
pub fn serve(opts: ServeOptions, intake: Arc<dyn Intake>) -> Result<HttpServer, ServeError> {
    let tls = opts.tls.as_ref().map(super::tls::acceptor).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let bind = |source| ServeError::Bind {
        listen: opts.listen.clone(),
        source,
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&opts.listen))
        .map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let signals = {
        let _inside = runtime.enter();
        Signals::register().map_err(ServeError::Runtime)?
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let shared = Arc::new(Shared {
        intake,
        access: opts.access,
        metrics: opts.metrics,
        body_timeout: opts.body_timeout,
        limits: opts.limits,
        addr,
        tls: tls.is_some(),
    });
    let conn = Connections {
        header_timeout: opts.header_timeout,
        tls,
        slots: Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1))),
        refusals: Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1))),
    };
    let is_tls = conn.tls.is_some();
    let thread = std::thread::Builder::new()
        .name("s3actions-http".into())
        .spawn({
            let stop = stop.clone();
            move || runtime.block_on(accept_loop(listener, shared, conn, stop, signals))
        })
        .map_err(ServeError::Runtime)?;
    Ok(HttpServer {
        addr,
        tls: is_tls,
        stop,
        thread: Some(thread),
    })
}

/// How connections are set up.
struct Connections {
    header_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// One permit per connection served (`--max-connections`).
    slots: Arc<tokio::sync::Semaphore>,
    /// Connections being refused at once: past this, new sockets are closed without an
    /// answer, so a flood cannot grow the refusals without bound either.
    refusals: Arc<tokio::sync::Semaphore>,
}

/// Holds a connection's slot and keeps the open-connections gauge.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Slot {
        crate::metrics::http_connections(1);
        Slot { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::http_connections(-1);
    }
}

/// On stop, the intake is closed: requests in flight are refused or finish, idle
/// keep-alive connections can send nothing more, and the pipeline's input ends.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    conn: Connections,
    stop: Arc<tokio::sync::Notify>,
    signals: Signals,
) {
    let mut signals = signals;
    let stopping = signals.recv();
    tokio::pin!(stopping);
    let conn = Arc::new(conn);
    // Every connection is watched so that a stop lets requests in flight get their answer:
    // an event that reached the spool is answered 200, not cut off with the connection.
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Histograms are folded into their buckets regularly, so memory stays flat.
    let upkeep = shared.metrics.clone().map(|h| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        })
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let _ = socket.set_nodelay(true);
                let Ok(permit) = conn.slots.clone().try_acquire_owned() else {
                    crate::metrics::http_connection_refused();
                    if let Ok(refusal) = conn.refusals.clone().try_acquire_owned() {
                        let conn = conn.clone();
                        tokio::spawn(async move {
                            let _refusal = refusal;
                            tracing::debug!("connection from {peer} refused: --max-connections are open");
                            if let Some(io) = handshake(socket, peer, conn.tls.as_ref(), REFUSAL_TIMEOUT).await {
                                refuse(io).await;
                            }
                        });
                    }
                    continue;
                };
                let (shared, conn, watcher) = (shared.clone(), conn.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let _slot = Slot::new(permit);
                    // The handshake counts against the head's time limit.
                    if let Some(io) = handshake(socket, peer, conn.tls.as_ref(), conn.header_timeout).await {
                        serve_connection(io, peer, shared, conn.header_timeout, watcher).await;
                    }
                });
            }
            _ = &mut stopping => break,
            _ = stop.notified() => break,
        }
    }
    drop(listener);
    if let Some(u) = upkeep {
        u.abort();
    }
    tracing::info!("HTTP source stopping: no new requests; writing what was received");
    // Closed first, so requests that have not reached it yet are refused (503), while those
    // already appended are answered once durable; then the connections drain.
    shared.intake.close();
    let drain = conn.header_timeout.max(shared.body_timeout) + Duration::from_secs(1);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP source: connections still open after {drain:?} are closed");
    }
}

/// A connection's byte stream: the socket, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// The stream HTTP is read from: the socket itself, or, with TLS, the socket after a
/// handshake that must finish within `limit` (None when it does not).
async fn handshake(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    limit: Duration,
) -> Option<Box<dyn Stream>> {
    let Some(acceptor) = tls else {
        return Some(Box::new(socket));
    };
    match tokio::time::timeout(limit, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake with {peer}: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer}: timed out");
            None
        }
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    shared: Arc<Shared>,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, &shared).await) }
    });
    let io = hyper_util::rt::TokioIo::new(io);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!("connection from {peer}: {e}");
    }
}

/// Answers a connection beyond `--max-connections`: its first request gets `503` with
/// `Retry-After` (as a full spool does, so Segment's libraries retry), then it is closed.
/// Reading the request first keeps the answer from being lost to a reset.
async fn refuse<I>(io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|_req| async {
        let mut r = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("too many connections: retry later"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, std::convert::Infallible>(r)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT)
        .keep_alive(false)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT * 2, connection).await;
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

type Answer = Response<Full<Bytes>>;

fn reply(status: StatusCode, message: Option<&str>) -> Answer {
    let body = match message {
        None => serde_json::json!({"success": true}),
        Some(m) => serde_json::json!({"success": false, "message": m}),
    };
    json_answer(status, body.to_string())
}

/// `status` with a JSON body.
fn json_answer(status: StatusCode, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The metrics label of a path: the endpoint, or `other` (labels stay few).
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        api::TELEMETRY => api::TELEMETRY,
        p if api::settings_key(p).is_some() => "/v1/projects/settings",
        _ => api::BATCH
            .iter()
            .copied()
            .chain(SINGLE.iter().map(|(p, _)| *p))
            .find(|p| *p == path)
            .unwrap_or("other"),
    }
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Answer {
    let started = Instant::now();
    let arrival = Arrival::now();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let endpoint = endpoint_label(&path);
    // Browsers (Analytics.js on another origin) may read the answer: the key, not the
    // origin, decides who may send. The origin is named rather than `*`, so that a page
    // whose library sends with credentials (`httpConfig.credentials: "include"`) is answered
    // too; serve keeps no cookies, so credentials grant nothing here. Only what a page's
    // library calls is opened to other origins: not /metrics, /health or /ready.
    let for_pages = api::takes_posts_from_pages(&path) || api::settings_key(&path).is_some();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|_| for_pages)
        .cloned();
    let (mut answer, events) = route(req, &path, arrival, shared).await;
    if let Some(origin) = origin {
        let h = answer.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    crate::metrics::http_request(
        endpoint,
        answer.status().as_u16(),
        events,
        started.elapsed(),
    );
    answer
}

/// The answer, and the number of events in the body (0 when it could not be read).
async fn route(
    req: Request<Incoming>,
    path: &str,
    arrival: Arrival,
    shared: &Shared,
) -> (Answer, u64) {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    // Probes and scrapes need no write key.
    match (get, path) {
        (true, "/health") => return (reply(StatusCode::OK, None), 0),
        (true, "/ready") => {
            let answer = match shared.intake.ready() {
                Ok(()) => reply(StatusCode::OK, None),
                Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, Some(&why.to_string())),
            };
            return (answer, 0);
        }
        (true, p) if let Some(key) = api::settings_key(p) => {
            return (settings(&req, key, shared), 0);
        }
        (true, "/metrics") if shared.metrics.is_some() => {
            let text = shared
                .metrics
                .as_ref()
                .map(|h| h.render())
                .unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return (r, 0);
        }
        _ => {}
    }
    // A browser's preflight before a POST with headers of its own: no key, no body.
    // The headers it asks for are allowed as asked: Analytics.js adds `Authorization`,
    // `X-Retry-Count` on retries, and whatever a page configures (`httpConfig.headers`); a
    // header left out would make the browser drop the event. `*` would not cover
    // `Authorization`.
    if req.method() == Method::OPTIONS && api::takes_posts_from_pages(path) {
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            asked.unwrap_or(HeaderValue::from_static(
                "Authorization, Content-Type, Content-Encoding, X-Retry-Count",
            )),
        );
        h.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return (r, 0);
    }
    // Analytics.js's telemetry: read (within the limit) and dropped, whoever sends it.
    if req.method() == Method::POST && path == api::TELEMETRY {
        return match read_body(req, shared.body_timeout, shared.limits.event_bytes).await {
            Ok(_) => (reply(StatusCode::OK, None), 0),
            Err((status, message)) => (reply(status, Some(&message)), 0),
        };
    }
    // Without the key in the header, it may still be in the body (`writeKey`) of a POST to
    // an endpoint; anything else is refused before it is looked at.
    let header_allowed = shared
        .access
        .allows(req.headers().get(header::AUTHORIZATION));
    if !header_allowed && (req.method() != Method::POST || !api::is_endpoint(path)) {
        return (unauthorized(), 0);
    }
    if req.method() != Method::POST {
        let r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            Some("use POST with a JSON body (GET only for /health, /ready, /metrics)"),
        );
        return (r, 0);
    }
    if !api::is_endpoint(path) {
        let r = reply(
            StatusCode::NOT_FOUND,
            Some(&format!(
                "no endpoint {path}: use /v1/batch, /v1/import or /v1/<track|identify|page|screen|group|alias> (or Analytics.js's /v1/b and /v1/<t|i|p|s|g|a>)"
            )),
        );
        return (r, 0);
    }
    let limit = shared.limits.body_bytes(path);
    let body = match read_body(req, shared.body_timeout, limit).await {
        Ok(b) => b,
        Err((status, message)) => return (reply(status, Some(&message)), 0),
    };
    let mut body_key = None;
    let normalised = api::normalise_with_key(path, &body, &arrival, &shared.limits, &mut body_key);
    if !header_allowed && !shared.access.allows_body_key(body_key.as_deref()) {
        return (unauthorized(), 0);
    }
    let received = match normalised {
        Ok(r) => r,
        Err(Refused(m)) => return (reply(StatusCode::BAD_REQUEST, Some(&m)), 0),
    };
    let events = received.message_ids.len() as u64;
    match shared.intake.accept(received).await {
        Ok(()) => (reply(StatusCode::OK, None), events),
        Err(e) => (refusal(&e), events),
    }
}

/// Analytics.js's settings for write key `key`, pointing it at this server by the address
/// the page reached it at. A key other than `--write-key-env`'s is unknown (`404`, as
/// Segment's CDN answers), so a page with a wrong key learns so before it sends.
fn settings(req: &Request<Incoming>, key: &str, shared: &Shared) -> Answer {
    if !shared.access.allows_body_key(Some(key)) {
        return reply(
            StatusCode::NOT_FOUND,
            Some("no source with this write key here"),
        );
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .map_or_else(|| shared.addr.to_string(), str::to_string);
    let protocol = if shared.tls { "https" } else { "http" };
    let body = api::settings(key, &format!("{host}/v1"), protocol);
    json_answer(StatusCode::OK, body)
}

/// `401`, saying where the key goes.
fn unauthorized() -> Answer {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        Some(
            "a write key is required: HTTP Basic authentication with the key as user name, \
             or \"writeKey\" in the body",
        ),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"s3actions\""),
    );
    r
}

/// The whole body, decompressed when it is gzip, at most `limit` bytes either way: a gzip
/// body that inflates beyond it is refused like a large plain one.
async fn read_body(
    req: Request<Incoming>,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
    let gzip = match req.headers().get(header::CONTENT_ENCODING) {
        None => false,
        Some(v) => match v.to_str().map(|s| s.trim().to_ascii_lowercase()) {
            Ok(s) if s == "gzip" || s == "x-gzip" => true,
            Ok(s) if s == "identity" || s.is_empty() => false,
            _ => {
                return Err((
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Content-Encoding must be gzip or identity".into(),
                ));
            }
        },
    };
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let collected = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect());
    let body = match collected.await {
        Err(_) => {
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {} s", timeout.as_secs()),
            ));
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ));
        }
    };
    if !gzip {
        return Ok(body);
    }
    // At most one byte more than allowed is inflated: a gzip bomb costs the limit, not memory.
    let mut out = Vec::with_capacity((body.len() * 4).min(limit + 1));
    flate2::read::MultiGzDecoder::new(&body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the gzip body cannot be read: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// The answer to events the intake did not take: `503` (with `Retry-After` when the spool
/// is full) while the sender may retry, `500` when they could not be stored.
fn refusal(e: &IntakeError) -> Answer {
    match e {
        IntakeError::Full { retry_after, .. } => {
            let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string()));
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        IntakeError::TooLarge { .. } => reply(StatusCode::PAYLOAD_TOO_LARGE, Some(&e.to_string())),
        IntakeError::Stopped(_) => reply(StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string())),
        IntakeError::Failed(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, Some(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpStream;

    use super::*;
    use crate::source::intake::{Accepting, Received};

    /// An intake that takes its time to make events durable, as a loaded disk does.
    struct SlowIntake;

    impl Intake for SlowIntake {
        fn accept(&self, _: Received) -> Accepting<'_> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(())
            })
        }
        fn ready(&self) -> Result<(), IntakeError> {
            Ok(())
        }
        fn close(&self) {}
    }

    /// A stop while a request waits for its events to be kept still answers it: the sender
    /// learns that its events were kept instead of seeing the connection cut.
    #[test]
    fn a_stop_answers_requests_in_flight() {
        let server = serve(
            ServeOptions::new("127.0.0.1:0", Access::open()),
            Arc::new(SlowIntake),
        )
        .unwrap();
        let addr = server.addr();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let body = r#"{"type":"track","event":"E"}"#;
            write!(
                s,
                "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw).into_owned()
        });
        std::thread::sleep(Duration::from_millis(150));
        server.stopper()();
        drop(server);
        let answer = client.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// Beyond `--max-connections`, a client gets a clean `503` with `Retry-After` (not a
    /// hang or a reset); once a connection closes, its slot serves again.
    #[test]
    fn connections_beyond_the_cap_are_refused_with_503() {
        let mut opts = ServeOptions::new("127.0.0.1:0", Access::open());
        opts.max_connections = 2;
        let server = serve(opts, Arc::new(SlowIntake)).unwrap();
        let addr = server.addr();
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // The accept loop takes the held connections before the next one.
        std::thread::sleep(Duration::from_millis(200));
        let refused = get(addr, "/health");
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
        assert!(
            refused.to_ascii_lowercase().contains("retry-after: 1"),
            "{refused:?}"
        );
        assert!(refused.contains("too many connections"), "{refused:?}");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let served = get(addr, "/health");
        assert!(served.starts_with("HTTP/1.1 200"), "{served:?}");
    }

    /// A connection that sends nothing (an idle keep-alive one included) is closed after the
    /// header timeout, so idle clients cannot hold the slots.
    #[test]
    fn idle_connections_are_closed_after_the_header_timeout() {
        let mut opts = ServeOptions::new("127.0.0.1:0", Access::open());
        opts.header_timeout = Duration::from_secs(1);
        let server = serve(opts, Arc::new(SlowIntake)).unwrap();
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // One request on a keep-alive connection, then silence.
        write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let started = Instant::now();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let waited = started.elapsed();
        assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
        assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    }
}
