//! `GET /metrics`, `/health` and `/ready` for commands that take no HTTP events
//! (`consume --metrics-listen`): the same answers as `serve` gives, on a small HTTP/1
//! server of its own thread, so that the same scrapes and probes work on both.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::metrics::PrometheusHandle;

/// Whether the command is ready (`GET /ready`): `Err` says why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>;

/// The probe server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot listen on {addr} (--metrics-listen): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics server: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A running probe server; dropping it stops it.
pub struct ProbeServer {
    addr: SocketAddr,
    ready: Arc<Mutex<Option<Readiness>>>,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProbeServer {
    /// The address it listens on (port 0 is resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `/ready` asks from now on (until then it answers 503 "starting").
    pub fn set_ready(&self, ready: Readiness) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(ready);
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `addr` and serves the probes on a thread of its own.
pub fn serve(addr: SocketAddr, metrics: PrometheusHandle) -> Result<ProbeServer, ProbeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| ProbeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ProbeError::Bind { addr, source })?;
    let ready: Arc<Mutex<Option<Readiness>>> = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let thread = std::thread::Builder::new()
        .name("s3actions-probes".into())
        .spawn({
            let (ready, stop) = (ready.clone(), stop.clone());
            move || runtime.block_on(accept_loop(listener, metrics, ready, stop))
        })
        .map_err(ProbeError::Runtime)?;
    Ok(ProbeServer {
        addr: bound,
        ready,
        stop,
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    ready: Arc<Mutex<Option<Readiness>>>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut upkeep = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let (metrics, ready) = (metrics.clone(), ready.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let answer = answer(&req, &metrics, &ready);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let io = hyper_util::rt::TokioIo::new(socket);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
            // Histograms are folded into their buckets regularly, so memory stays flat.
            _ = upkeep.tick() => metrics.run_upkeep(),
            _ = stop.notified() => break,
        }
    }
}

fn answer<B>(
    req: &Request<B>,
    metrics: &PrometheusHandle,
    ready: &Mutex<Option<Readiness>>,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n".into()),
        "/ready" => {
            let check = ready.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match check.map_or(Err("starting"), |f| f()) {
                Ok(()) => text(StatusCode::OK, "ok\n".into()),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            }
        }
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "GET /health, /ready or /metrics\n".into(),
        ),
    }
}
