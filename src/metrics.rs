//! Operational metrics: names, and the one-line helpers the stages call to count.
//!
//! The stages count through the `metrics` facade; `serve` installs a Prometheus recorder
//! ([`install`]) and renders it on `GET /metrics`. Without a recorder (`replay` and every
//! other command) each helper is one relaxed atomic load: counting costs nothing when nobody
//! scrapes. Counts are made per chunk, per request, per file or per upload, never per row.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// HTTP requests, by `endpoint` (the path, or `other`) and `status` (the HTTP status code).
pub const HTTP_REQUESTS: &str = "s3actions_http_requests_total";
/// Events in the request bodies that could be read, by `endpoint` and `status`.
pub const HTTP_EVENTS: &str = "s3actions_http_events_total";
/// Time to answer a request, by `endpoint` (histogram).
pub const HTTP_DURATION: &str = "s3actions_http_request_duration_seconds";
/// HTTP connections open now.
pub const HTTP_CONNECTIONS: &str = "s3actions_http_connections";
/// HTTP connections refused because `--max-connections` were open.
pub const HTTP_CONNECTIONS_REFUSED: &str = "s3actions_http_connections_refused_total";
/// Events read by the pipeline.
pub const EVENTS_READ: &str = "s3actions_events_read_total";
/// Events that matched no mapping's trigger.
pub const EVENTS_NOT_MATCHED: &str = "s3actions_events_not_matched_total";
/// Rows written, by `mapping`.
pub const ROWS_WRITTEN: &str = "s3actions_rows_written_total";
/// Events written to the rejects file, by `reason`: `invalid_event` (not a JSON object) or
/// `row_failed` (a column or the folder could not be computed; counted once per mapping).
pub const EVENTS_REJECTED: &str = "s3actions_events_rejected_total";
/// Files finished and handed to the sink (at their final path, or in the outbox), by
/// `mapping`.
pub const FILES_WRITTEN: &str = "s3actions_files_written_total";
/// Bytes of those files, by `mapping`.
pub const BYTES_WRITTEN: &str = "s3actions_bytes_written_total";
/// Batches open now (rows waiting for their file to close).
pub const OPEN_BATCHES: &str = "s3actions_open_batches";
/// Bytes in the durable spool now (set by the spool; 0 with `--durability none`).
pub const SPOOL_BYTES: &str = "s3actions_spool_bytes";
/// Age of the oldest acknowledged event that is not yet in a finished file, in seconds (set
/// by the spool; 0 when there is none).
pub const SPOOL_OLDEST_AGE: &str = "s3actions_spool_oldest_event_age_seconds";
/// Events `serve` dropped as already accepted (their `messageId` within `dedupe_window`).
pub const EVENTS_DEDUPLICATED: &str = "s3actions_events_deduplicated_total";
/// Message ids remembered for de-duplication now.
pub const DEDUPE_IDS: &str = "s3actions_dedupe_ids";
/// How far back the ids remembered reach, in seconds: `dedupe_window`, or less when
/// `dedupe_max_ids` is reached (then retries older than this are no longer recognised).
pub const DEDUPE_SPAN: &str = "s3actions_dedupe_span_seconds";
/// Uploads finished, by `result` (`ok` or `failed`).
pub const UPLOADS: &str = "s3actions_uploads_total";
/// Time an upload took, retries included (histogram).
pub const UPLOAD_DURATION: &str = "s3actions_upload_duration_seconds";
/// S3 requests retried.
pub const UPLOAD_RETRIES: &str = "s3actions_upload_retries_total";
/// Uploads that failed for good (their files stay in the outbox).
pub const UPLOAD_FAILURES: &str = "s3actions_upload_failures_total";
/// Files in the outbox waiting for their upload.
pub const OUTBOX_FILES: &str = "s3actions_outbox_files";

/// Histogram buckets, in seconds: requests take milliseconds, uploads up to minutes.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(#[from] BuildError);

/// Installs the process's Prometheus recorder (once, before the run starts) and returns
/// the handle that renders it. Histograms are exported with buckets (not summaries), so
/// that quantiles can be aggregated over instances.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &BUCKETS)?
        .install_recorder()?;
    INSTALLED.store(true, Ordering::Relaxed);
    describe();
    // Gauges that exist from the start, so that a scrape always shows them.
    for g in [
        OPEN_BATCHES,
        SPOOL_BYTES,
        SPOOL_OLDEST_AGE,
        OUTBOX_FILES,
        HTTP_CONNECTIONS,
    ] {
        metrics::gauge!(g).set(0.0);
    }
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by endpoint and status");
    describe_counter!(
        HTTP_EVENTS,
        "Events in readable request bodies by endpoint and status"
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer a request");
    describe_gauge!(HTTP_CONNECTIONS, "HTTP connections open now");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "HTTP connections refused because --max-connections were open"
    );
    describe_counter!(EVENTS_READ, "Events read by the pipeline");
    describe_counter!(EVENTS_NOT_MATCHED, "Events that matched no trigger");
    describe_counter!(ROWS_WRITTEN, "Rows written by mapping");
    describe_counter!(
        EVENTS_REJECTED,
        "Events written to the rejects file by reason"
    );
    describe_counter!(
        FILES_WRITTEN,
        "Files finished and handed to the sink by mapping"
    );
    describe_counter!(
        BYTES_WRITTEN,
        Unit::Bytes,
        "Bytes of finished files by mapping"
    );
    describe_gauge!(OPEN_BATCHES, "Batches open now");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "Bytes in the spool");
    describe_gauge!(
        SPOOL_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest acknowledged event not yet in a finished file"
    );
    describe_counter!(
        EVENTS_DEDUPLICATED,
        "Events dropped as already accepted (messageId within dedupe_window)"
    );
    describe_gauge!(DEDUPE_IDS, "Message ids remembered for de-duplication");
    describe_gauge!(
        DEDUPE_SPAN,
        Unit::Seconds,
        "How far back the message ids remembered reach"
    );
    describe_counter!(UPLOADS, "Uploads finished by result");
    describe_histogram!(
        UPLOAD_DURATION,
        Unit::Seconds,
        "Time an upload took, retries included"
    );
    describe_counter!(UPLOAD_RETRIES, "S3 requests retried");
    describe_counter!(UPLOAD_FAILURES, "Uploads that failed for good");
    describe_gauge!(OUTBOX_FILES, "Files in the outbox waiting for their upload");
}

#[inline]
fn on() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// One answered HTTP request of `events` events (0 when the body could not be read).
pub fn http_request(endpoint: &'static str, status: u16, events: u64, took: Duration) {
    if !on() {
        return;
    }
    let status = status.to_string();
    metrics::counter!(HTTP_REQUESTS, "endpoint" => endpoint, "status" => status.clone())
        .increment(1);
    if events > 0 {
        metrics::counter!(HTTP_EVENTS, "endpoint" => endpoint, "status" => status)
            .increment(events);
    }
    metrics::histogram!(HTTP_DURATION, "endpoint" => endpoint).record(took.as_secs_f64());
}

/// `n` HTTP connections opened (positive) or closed (negative).
pub fn http_connections(n: i64) {
    if on() {
        metrics::gauge!(HTTP_CONNECTIONS).increment(n as f64);
    }
}

/// A connection refused at `--max-connections`.
pub fn http_connection_refused() {
    if on() {
        metrics::counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
    }
}

/// A chunk's events: read, matched by no trigger, rejected as invalid.
pub fn events_counted(read: u64, not_matched: u64, invalid: u64) {
    if !on() {
        return;
    }
    metrics::counter!(EVENTS_READ).increment(read);
    metrics::counter!(EVENTS_NOT_MATCHED).increment(not_matched);
    if invalid > 0 {
        metrics::counter!(EVENTS_REJECTED, "reason" => "invalid_event").increment(invalid);
    }
}

/// A chunk's rows of one mapping: written, and rejected because they could not be made.
pub fn rows_counted(mapping: &str, rows: u64, failed: u64) {
    if !on() || rows + failed == 0 {
        return;
    }
    metrics::counter!(ROWS_WRITTEN, "mapping" => mapping.to_string()).increment(rows);
    if failed > 0 {
        metrics::counter!(EVENTS_REJECTED, "reason" => "row_failed").increment(failed);
    }
}

/// A finished file handed to the sink.
pub fn file_written(file: &crate::sink::FinishedFile) {
    if !on() {
        return;
    }
    metrics::counter!(FILES_WRITTEN, "mapping" => file.mapping.clone()).increment(1);
    metrics::counter!(BYTES_WRITTEN, "mapping" => file.mapping.clone()).increment(file.bytes);
}

/// `n` batches opened (positive) or closed (negative).
pub fn open_batches(n: i64) {
    if on() {
        metrics::gauge!(OPEN_BATCHES).increment(n as f64);
    }
}

/// The spool's size, and the receive time (Unix ms) of its oldest event not yet known to
/// be in a finished file (`None`: there is none).
pub fn spool_state(bytes: u64, oldest_ms: Option<u64>) {
    if !on() {
        return;
    }
    metrics::gauge!(SPOOL_BYTES).set(bytes as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age = oldest_ms.map_or(0.0, |ms| now.saturating_sub(ms) as f64 / 1000.0);
    metrics::gauge!(SPOOL_OLDEST_AGE).set(age);
}

/// After a group of requests: `dropped` events were duplicates; `ids` ids are remembered,
/// reaching back `span_ms`.
pub fn dedupe(dropped: u64, ids: usize, span_ms: u64) {
    if !on() {
        return;
    }
    if dropped > 0 {
        metrics::counter!(EVENTS_DEDUPLICATED).increment(dropped);
    }
    metrics::gauge!(DEDUPE_IDS).set(ids as f64);
    metrics::gauge!(DEDUPE_SPAN).set(span_ms as f64 / 1000.0);
}

/// The spool's size after a write.
pub fn spool_bytes(bytes: u64) {
    if on() {
        metrics::gauge!(SPOOL_BYTES).set(bytes as f64);
    }
}

/// `n` files entered (positive) or left (negative) the outbox.
pub fn outbox_files(n: i64) {
    if on() {
        metrics::gauge!(OUTBOX_FILES).increment(n as f64);
    }
}

/// An S3 request is retried.
pub fn upload_retry() {
    if on() {
        metrics::counter!(UPLOAD_RETRIES).increment(1);
    }
}

/// Runs an upload, counting it, its duration and its failure.
pub async fn timed_upload<T, E>(upload: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let result = upload.await;
    if on() {
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!(UPLOADS, "result" => outcome).increment(1);
        metrics::histogram!(UPLOAD_DURATION).record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!(UPLOAD_FAILURES).increment(1);
        }
    }
    result
}
