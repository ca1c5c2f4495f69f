//! Segment's tracking API, as its servers shape events before anything downstream sees them.
//!
//! A request body is parsed once (into the tape) and every event is written out again as one
//! compact line, with what Segment's API adds on arrival:
//!
//! * `context` and `integrations` of a `/v1/batch` body are merged into each event one level
//!   deep: the event's own keys first and winning, then the batch's keys it lacks;
//! * `receivedAt` is the arrival time (ISO-8601 UTC with milliseconds, `…T05:31:14.123Z`);
//! * a batch-level `sentAt` is copied into each event that has none;
//! * with both `sentAt` and `timestamp`, `timestamp` is corrected for the sender's clock
//!   skew, `receivedAt - (sentAt - timestamp)`, and the sender's value is kept as
//!   `originalTimestamp`; without `timestamp`, it is `receivedAt`;
//! * a missing `messageId` becomes `api-` and a KSUID, as Segment's API generates them.
//!
//! So the rows `serve` writes deliberately differ from a replay of the posted bodies.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::json::{Kind, NodeRef, Tape, write_json_string, write_node_json};
use crate::source::intake::Received;

/// Endpoints taking a single event, and the type they give it: the HTTP API's names, then
/// the one-letter ones Analytics.js (the browser library) posts to.
pub const SINGLE: [(&str, &str); 12] = [
    ("/v1/track", "track"),
    ("/v1/identify", "identify"),
    ("/v1/page", "page"),
    ("/v1/screen", "screen"),
    ("/v1/group", "group"),
    ("/v1/alias", "alias"),
    ("/v1/t", "track"),
    ("/v1/i", "identify"),
    ("/v1/p", "page"),
    ("/v1/s", "screen"),
    ("/v1/g", "group"),
    ("/v1/a", "alias"),
];

/// Endpoints taking `{"batch": [...]}`: the HTTP API's, and Analytics.js's batching one.
pub const BATCH: [&str; 3] = ["/v1/batch", "/v1/import", "/v1/b"];

/// Whether `path` is one of the event endpoints.
pub fn is_endpoint(path: &str) -> bool {
    is_batch(path) || SINGLE.iter().any(|(p, _)| *p == path)
}

fn is_batch(path: &str) -> bool {
    BATCH.contains(&path)
}

/// Whether a page's library posts to `path` (an event endpoint, or its telemetry): the
/// paths a browser on another origin may send to, and preflights first.
pub fn takes_posts_from_pages(path: &str) -> bool {
    is_endpoint(path) || path == TELEMETRY
}

/// What one request may carry (`serve --max-event-bytes`, `--max-request-bytes`). The
/// defaults are Segment's tracking API's: 32 KB an event (and so a single-event request),
/// 500 KB a batch request. Segment's libraries keep under them, so refusing more costs them
/// nothing, and a server of 1,024 connections holds at most half a gigabyte of bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// An event's JSON text as sent; also the whole body of a single-event endpoint.
    pub event_bytes: usize,
    /// The whole body of a batch endpoint (after gzip is undone).
    pub request_bytes: usize,
}

impl Limits {
    /// Segment's: 32 KiB an event, 500 KiB a batch request.
    pub const SEGMENT: Limits = Limits {
        event_bytes: 32 * 1024,
        request_bytes: 500 * 1024,
    };

    /// The largest either limit may be set to.
    pub const MAX: usize = 16 * 1024 * 1024;

    /// How many times the request limit a request's shaped events may take.
    const SHAPED_FACTOR: usize = 16;

    /// The shaped events of one request never exceed this, whatever the limits: the spool
    /// keeps a request as one record of at most 64 MiB, and a larger one could not be read
    /// back after a crash.
    const SHAPED_MAX: usize = 48 * 1024 * 1024;

    /// The largest body `path` takes.
    pub fn body_bytes(&self, path: &str) -> usize {
        if is_batch(path) {
            self.request_bytes
        } else {
            self.event_bytes
        }
    }

    /// How large a request's events may grow once shaped: sixteen times the request limit
    /// (between 1 MiB and 48 MiB). A batch's `context` and `integrations` are copied into
    /// each of its events, so a small body could otherwise grow a thousandfold in memory.
    pub fn shaped_bytes(&self) -> usize {
        self.request_bytes
            .saturating_mul(Self::SHAPED_FACTOR)
            .clamp(1024 * 1024, Self::SHAPED_MAX)
    }
}

/// The write key in a path of the settings Analytics.js loads before it sends,
/// `/v1/projects/<write key>/settings` (from its `cdnURL`, Segment's CDN by default).
pub fn settings_key(path: &str) -> Option<&str> {
    let key = path
        .strip_prefix("/v1/projects/")?
        .strip_suffix("/settings")?;
    (!key.is_empty() && !key.contains('/')).then_some(key)
}

/// The settings Analytics.js loads for a write key, as Segment's CDN gives them, pointing
/// its Segment.io destination at this server (`api_host` is `HOST:PORT/v1`): with `cdnURL`
/// set to `serve`'s address, a page needs no other setting. No other destination, no
/// middleware, no remote metrics.
pub fn settings(write_key: &str, api_host: &str, protocol: &str) -> String {
    serde_json::json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
    .to_string()
}

/// Where Analytics.js posts its own telemetry (`{"series": [...]}`, no write key) when its
/// API host is this server: answered `200` and dropped, never an event.
pub const TELEMETRY: &str = "/v1/m";

/// Why a request body was refused (the message goes back to the sender).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refused(pub String);

/// When a request arrived: its events' `receivedAt`, and the base of the skew correction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Milliseconds since the Unix epoch.
    ms: i64,
    /// `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, formatted once per request.
    iso: [u8; 24],
}

impl Arrival {
    /// Now, by the system clock.
    pub fn now() -> Arrival {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Arrival::from_unix_millis(ms).unwrap_or(Arrival {
            ms: 0,
            iso: *b"1970-01-01T00:00:00.000Z",
        })
    }

    /// A given moment (years 0 to 9999, which `toISOString` prints with four digits).
    pub fn from_unix_millis(ms: i64) -> Option<Arrival> {
        let mut iso = [0u8; 24];
        format_iso(ms, &mut iso).then_some(Arrival { ms, iso })
    }

    pub fn unix_millis(&self) -> i64 {
        self.ms
    }

    /// The ISO-8601 text, as Segment writes `receivedAt`.
    pub fn iso(&self) -> &str {
        std::str::from_utf8(&self.iso).unwrap_or_default()
    }
}

/// Writes `ms` as JavaScript's `Date.prototype.toISOString` does; false outside years
/// 0 to 9999.
fn format_iso(ms: i64, out: &mut [u8; 24]) -> bool {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return false;
    }
    let digits = |out: &mut [u8], mut v: i64| {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], month);
    out[7] = b'-';
    digits(&mut out[8..10], day);
    out[10] = b'T';
    digits(&mut out[11..13], in_day / 3_600_000);
    out[13] = b':';
    digits(&mut out[14..16], in_day / 60_000 % 60);
    out[16] = b':';
    digits(&mut out[17..19], in_day / 1000 % 60);
    out[19] = b'.';
    digits(&mut out[20..23], in_day % 1000);
    out[23] = b'Z';
    true
}

/// An ISO-8601 date-time (RFC 3339, or the wider ISO forms) as milliseconds since the epoch.
fn parse_millis(text: &str) -> Option<i64> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// Base62 digits of a KSUID, in order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// KSUID epoch (2014-05-13T16:53:20Z), in seconds since the Unix epoch.
const KSUID_EPOCH: i64 = 1_400_000_000;

/// A KSUID (27 base62 characters: 4 bytes of seconds since the KSUID epoch, then 16 random
/// bytes), sortable by time like the ids Segment's API gives events without `messageId`.
fn ksuid(unix_ms: i64, random: u128) -> [u8; 27] {
    let secs = (unix_ms.div_euclid(1000) - KSUID_EPOCH).clamp(0, u32::MAX as i64) as u32;
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..].copy_from_slice(&random.to_be_bytes());
    // The 160-bit number as five big-endian 32-bit words, divided by 62 repeatedly.
    let mut words: [u32; 5] = std::array::from_fn(|i| {
        u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
    });
    let mut out = [b'0'; 27];
    for slot in out.iter_mut().rev() {
        let mut rem = 0u64;
        for w in words.iter_mut() {
            let cur = (rem << 32) | u64::from(*w);
            *w = (cur / 62) as u32;
            rem = cur % 62;
        }
        *slot = BASE62[rem as usize];
    }
    out
}

thread_local! {
    /// Parsing reuses one tape per thread (the server's handlers run on one thread).
    static TAPE: RefCell<Tape> = RefCell::new(Tape::new());
}

/// Turns a request body of `path` into the events to keep: one compact JSON line each (no
/// newline of a pretty-printed body can split one), shaped as Segment's API shapes them
/// (see the module documentation), with their `messageId`s in line order. Events are held
/// to Segment's [`Limits`].
pub fn normalise(path: &str, body: &[u8], at: &Arrival) -> Result<Received, Refused> {
    normalise_with_key(path, body, at, &Limits::SEGMENT, &mut None)
}

/// [`normalise`], also giving the body's top-level `writeKey` (Segment's API takes the key
/// there as well as in the `Authorization` header) in `write_key`, whether or not the body
/// is otherwise accepted. The key is never part of an event. An event larger than
/// `limits.event_bytes`, or events that grow beyond [`Limits::shaped_bytes`], refuse the
/// whole request (Segment's API answers `400` to an event over its limit).
pub fn normalise_with_key(
    path: &str,
    body: &[u8],
    at: &Arrival,
    limits: &Limits,
    write_key: &mut Option<String>,
) -> Result<Received, Refused> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Refused(format!(
            "the body is not valid UTF-8 (byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    TAPE.with(|tape| {
        let mut tape = tape.borrow_mut();
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
        *write_key = root
            .get(WRITE_KEY)
            .and_then(|k| k.as_str())
            .map(|k| k.into_owned());
        let mut out = Received {
            lines: Vec::with_capacity(body.len() + body.len() / 4 + 128),
            message_ids: Vec::new(),
            generated: Vec::new(),
        };
        if is_batch(path) {
            let Some(batch) = root.get("batch").filter(|b| b.kind() == Kind::Array) else {
                return Err(Refused(
                    "expected {\"batch\": [event, ...]} with an array of events".into(),
                ));
            };
            let objects = |key| root.get(key).filter(|n| n.kind() == Kind::Object);
            let shared = Shared {
                context: objects("context"),
                integrations: objects("integrations"),
                sent_at: root.get("sentAt").filter(|n| n.kind() == Kind::String),
            };
            out.message_ids.reserve(batch.len());
            out.generated.reserve(batch.len());
            let shaped_limit = limits.shaped_bytes();
            for (i, event) in batch.elements().enumerate() {
                if event.kind() != Kind::Object {
                    return Err(Refused(format!("batch[{i}] is not a JSON object")));
                }
                if event.get("type").and_then(|t| t.as_str()).is_none() {
                    return Err(Refused(format!("batch[{i}] has no \"type\"")));
                }
                check_size(event, limits, || format!("batch[{i}]"))?;
                write_event(&mut out, event, None, &shared, at);
                if out.lines.len() > shaped_limit {
                    return Err(Refused(format!(
                        "the batch's events come to more than {shaped_limit} bytes with its \
                         context and integrations copied into each (at most {} times the \
                         request limit): send smaller batches, or give each event its own context",
                        Limits::SHAPED_FACTOR
                    )));
                }
            }
            return Ok(out);
        }
        let Some(&(_, kind)) = SINGLE.iter().find(|(p, _)| *p == path) else {
            return Err(Refused(format!("no endpoint {path}")));
        };
        check_size(root, limits, || "the event".to_string())?;
        write_event(&mut out, root, Some(kind), &Shared::default(), at);
        Ok(out)
    })
}

/// Refuses an event whose JSON text, as sent, is over the event limit.
fn check_size(
    event: NodeRef<'_>,
    limits: &Limits,
    name: impl Fn() -> String,
) -> Result<(), Refused> {
    let size = event.raw().len();
    if size <= limits.event_bytes {
        return Ok(());
    }
    Err(Refused(format!(
        "{} is {size} bytes; an event may be at most {} bytes (Segment's limit is 32 KB)",
        name(),
        limits.event_bytes
    )))
}

/// Where a body may carry the source's write key.
const WRITE_KEY: &str = "writeKey";

/// What a `/v1/batch` body gives all its events.
#[derive(Default)]
struct Shared<'a> {
    context: Option<NodeRef<'a>>,
    integrations: Option<NodeRef<'a>>,
    sent_at: Option<NodeRef<'a>>,
}

/// Calls `f` with each member of an object once, as `JSON.parse` keeps them: a repeated key
/// at its first position with its last value.
fn for_each_member<'a>(n: NodeRef<'a>, mut f: impl FnMut(&str, NodeRef<'a>)) {
    if !n.has_duplicate_keys() {
        for (k, v) in n.members() {
            f(&k, v);
        }
        return;
    }
    let members: Vec<(Cow<'a, str>, NodeRef<'a>)> = n.members().collect();
    for (i, (k, _)) in members.iter().enumerate() {
        if members[..i].iter().any(|(pk, _)| pk == k) {
            continue;
        }
        if let Some((_, last)) = members.iter().rev().find(|(lk, _)| lk == k) {
            f(k, *last);
        }
    }
}

/// Writes `"key":` after a comma unless it is the object's first member.
fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_json_string(out, k);
    out.push(b':');
}

/// `own` with the members of `shared` it lacks after its own (one level deep).
fn write_merged(out: &mut Vec<u8>, own: NodeRef<'_>, shared: NodeRef<'_>) {
    out.push(b'{');
    let mut first = true;
    for_each_member(own, |k, v| {
        key(out, &mut first, k);
        write_node_json(out, v);
    });
    for_each_member(shared, |k, v| {
        if own.get(k).is_none() {
            key(out, &mut first, k);
            write_node_json(out, v);
        }
    });
    out.push(b'}');
}

/// The members of an event that Segment's API looks at (last value of a repeated key).
#[derive(Default)]
struct Seen<'a> {
    r#type: Option<NodeRef<'a>>,
    message_id: Option<NodeRef<'a>>,
    timestamp: Option<NodeRef<'a>>,
    sent_at: Option<NodeRef<'a>>,
    original_timestamp: bool,
    received_at: bool,
    context: Option<NodeRef<'a>>,
    integrations: Option<NodeRef<'a>>,
}

/// A value that is there: not `null`, not `""`.
fn present(n: NodeRef<'_>) -> bool {
    match n.kind() {
        Kind::Null => false,
        Kind::String => n.raw().len() > 2,
        _ => true,
    }
}

fn write_event(
    out: &mut Received,
    event: NodeRef<'_>,
    default_type: Option<&str>,
    shared: &Shared<'_>,
    at: &Arrival,
) {
    let mut seen = Seen::default();
    for (k, v) in event.members() {
        match &*k {
            "type" => seen.r#type = Some(v),
            "messageId" => seen.message_id = Some(v),
            "timestamp" => seen.timestamp = Some(v),
            "sentAt" => seen.sent_at = Some(v),
            "originalTimestamp" => seen.original_timestamp = true,
            "receivedAt" => seen.received_at = true,
            "context" => seen.context = Some(v),
            "integrations" => seen.integrations = Some(v),
            _ => {}
        }
    }
    let sent_at = seen.sent_at.filter(|n| present(*n)).or(shared.sent_at);
    let timestamp = seen.timestamp.filter(|n| present(*n));
    // receivedAt - (sentAt - timestamp), when both are dates.
    let mut corrected = [0u8; 24];
    let skew_corrected = match (
        timestamp.and_then(|n| n.as_str()),
        sent_at.and_then(|n| n.as_str()),
    ) {
        (Some(ts), Some(sent)) => match (parse_millis(&ts), parse_millis(&sent)) {
            (Some(ts), Some(sent)) => {
                let ms = at.ms.saturating_sub(sent.saturating_sub(ts));
                format_iso(ms, &mut corrected)
            }
            _ => false,
        },
        _ => false,
    };
    let generated = match seen.message_id.filter(|n| present(*n)) {
        Some(id) => {
            let text = id.as_str().unwrap_or(Cow::Borrowed(id.raw()));
            out.message_ids.push(text.into());
            out.generated.push(false);
            None
        }
        None => {
            let mut id = [0u8; 31];
            id[..4].copy_from_slice(b"api-");
            id[4..].copy_from_slice(&ksuid(at.ms, fastrand::u128(..)));
            let id = std::str::from_utf8(&id).unwrap_or_default().to_owned();
            out.message_ids.push(id.as_str().into());
            out.generated.push(true);
            Some(id)
        }
    };
    let merge = |own: Option<NodeRef<'_>>, batch: Option<NodeRef<'_>>| match (own, batch) {
        (Some(o), Some(_)) => o.kind() == Kind::Object,
        _ => false,
    };
    let merge_context = merge(seen.context, shared.context);
    let merge_integrations = merge(seen.integrations, shared.integrations);
    let iso = |b: &[u8; 24]| std::str::from_utf8(b).unwrap_or_default().to_owned();
    let corrected = skew_corrected.then(|| iso(&corrected));

    // A single-event endpoint's type stands in for a missing one, and for one that is not a
    // type at all (`null`, `""`, a number), which no trigger or folder could use.
    let endpoint_type = default_type.filter(|_| {
        seen.r#type
            .and_then(|t| t.as_str())
            .is_none_or(|t| t.is_empty())
    });
    let buf = &mut out.lines;
    buf.push(b'{');
    let mut first = true;
    if let (Some(kind), None) = (endpoint_type, seen.r#type) {
        key(buf, &mut first, "type");
        write_json_string(buf, kind);
    }
    let string = |buf: &mut Vec<u8>, s: &str| write_json_string(buf, s);
    for_each_member(event, |k, v| {
        if k == WRITE_KEY {
            return; // a credential, not part of the event (nor of Segment's stored events)
        }
        key(buf, &mut first, k);
        match k {
            "context" if merge_context => write_merged(buf, v, shared.context.expect("merged")),
            "integrations" if merge_integrations => {
                write_merged(buf, v, shared.integrations.expect("merged"))
            }
            "timestamp" => match (&corrected, timestamp) {
                (Some(c), _) => string(buf, c),
                (None, None) => string(buf, at.iso()),
                (None, Some(_)) => write_node_json(buf, v),
            },
            "originalTimestamp" => match (&corrected, timestamp) {
                (Some(_), Some(ts)) => write_node_json(buf, ts),
                _ => write_node_json(buf, v),
            },
            "receivedAt" => string(buf, at.iso()),
            "type" => match endpoint_type {
                Some(kind) => string(buf, kind),
                None => write_node_json(buf, v),
            },
            "messageId" => match &generated {
                Some(id) => string(buf, id),
                None => write_node_json(buf, v),
            },
            "sentAt" => match sent_at {
                Some(s) if !present(v) => write_node_json(buf, s),
                _ => write_node_json(buf, v),
            },
            _ => write_node_json(buf, v),
        }
    });
    if seen.context.is_none()
        && let Some(c) = shared.context
    {
        key(buf, &mut first, "context");
        write_node_json(buf, c);
    }
    if seen.integrations.is_none()
        && let Some(c) = shared.integrations
    {
        key(buf, &mut first, "integrations");
        write_node_json(buf, c);
    }
    if seen.message_id.is_none()
        && let Some(id) = &generated
    {
        key(buf, &mut first, "messageId");
        string(buf, id);
    }
    if seen.timestamp.is_none() {
        key(buf, &mut first, "timestamp");
        string(buf, at.iso());
    }
    if let (Some(ts), false) = (
        timestamp.filter(|_| skew_corrected),
        seen.original_timestamp,
    ) {
        key(buf, &mut first, "originalTimestamp");
        write_node_json(buf, ts);
    }
    if seen.sent_at.is_none()
        && let Some(s) = sent_at
    {
        key(buf, &mut first, "sentAt");
        write_node_json(buf, s);
    }
    if !seen.received_at {
        key(buf, &mut first, "receivedAt");
        string(buf, at.iso());
    }
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03T05:31:14.123Z
    const AT: i64 = 1_796_275_874_123;

    fn at() -> Arrival {
        Arrival::from_unix_millis(AT).unwrap()
    }

    fn lines(path: &str, body: &str) -> Result<String, Refused> {
        normalise(path, body.as_bytes(), &at()).map(|r| String::from_utf8(r.lines).unwrap())
    }

    fn events(path: &str, body: &str) -> Vec<serde_json::Value> {
        lines(path, body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn arrival_is_printed_like_to_iso_string() {
        assert_eq!(at().iso(), "2026-12-03T05:31:14.123Z");
        assert_eq!(
            Arrival::from_unix_millis(0).unwrap().iso(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Arrival::from_unix_millis(-1).unwrap().iso(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Arrival::from_unix_millis(951_782_400_000).unwrap().iso(),
            "2000-02-29T00:00:00.000Z"
        );
        assert!(
            Arrival::from_unix_millis(253_402_300_800_000).is_none(),
            "year 10000"
        );
        assert_eq!(parse_millis("2026-12-03T05:31:14.123Z"), Some(AT));
        assert_eq!(parse_millis("2026-12-03T06:31:14.123+01:00"), Some(AT));
        assert_eq!(parse_millis("2026-12-03T05:31:14.1234567Z"), Some(AT));
        assert_eq!(parse_millis("yesterday"), None);
    }

    /// The id format of segmentio/ksuid: 4 bytes of seconds since 2014-05-13T16:53:20Z,
    /// 16 random bytes, 27 base62 characters (expected values computed independently).
    #[test]
    fn ksuids_are_segments() {
        let payload = 0xB5A1CD34B5F99D1154FB6853345C9735u128;
        let ms = (KSUID_EPOCH + 107_608_047) * 1000;
        assert_eq!(&ksuid(ms, payload), b"0ujtsYcgvSTl8PAuAdqWYSMnLOv");
        assert_eq!(
            &ksuid(KSUID_EPOCH * 1000, 0),
            b"000000000000000000000000000"
        );
        assert_eq!(&ksuid(i64::MAX, u128::MAX), b"aWgEPTl1tmebfsQzFP4bxwgy80V");
    }

    #[test]
    fn batches_become_one_line_per_event_with_what_the_api_adds() {
        let body = "{\"batch\": [\n  {\"type\": \"track\", \"messageId\": \"m1\", \"event\": \"A b\",\n \"properties\": {\"s\": \"x \\\" y\\n\", \"n\": 631.0}},\n  {\"type\":\"identify\",\"userId\":\"u\"}\n], \"sentAt\": \"x\"}";
        let out = normalise("/v1/batch", body.as_bytes(), &at()).unwrap();
        let text = String::from_utf8(out.lines).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "{\"type\":\"track\",\"messageId\":\"m1\",\"event\":\"A b\",\"properties\":{\"s\":\"x \\\" y\\n\",\"n\":631},\"timestamp\":\"2026-12-03T05:31:14.123Z\",\"sentAt\":\"x\",\"receivedAt\":\"2026-12-03T05:31:14.123Z\"}"
        );
        let second: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        let id = second["messageId"].as_str().unwrap();
        assert!(id.starts_with("api-") && id.len() == 31, "{id}");
        assert_eq!(out.message_ids, vec!["m1".into(), Box::<str>::from(id)]);
        assert!(lines.next().is_none());
        assert_eq!(lines_of("/v1/import", "{\"batch\":[]}"), "");
    }

    fn lines_of(path: &str, body: &str) -> String {
        lines(path, body).unwrap()
    }

    #[test]
    fn batch_context_and_integrations_merge_one_level_deep() {
        let e = events(
            "/v1/batch",
            r#"{"batch": [
                {"type": "track", "messageId": "a", "context": {"ip": "1.1.1.1", "page": {"url": "own"}}},
                {"type": "track", "messageId": "b", "integrations": {"All": false}},
                {"type": "track", "messageId": "c", "context": "not an object"}
            ],
            "context": {"page": {"title": "batch"}, "library": {"name": "analytics-node"}},
            "integrations": {"All": true, "Mixpanel": false}}"#,
        );
        assert_eq!(
            e[0]["context"],
            serde_json::json!({"ip": "1.1.1.1", "page": {"url": "own"}, "library": {"name": "analytics-node"}})
        );
        assert_eq!(
            serde_json::to_string(&e[0]["context"]).unwrap(),
            r#"{"ip":"1.1.1.1","page":{"url":"own"},"library":{"name":"analytics-node"}}"#,
            "the event's own keys first"
        );
        assert_eq!(
            e[0]["integrations"],
            serde_json::json!({"All": true, "Mixpanel": false})
        );
        assert_eq!(
            e[1]["integrations"],
            serde_json::json!({"All": false, "Mixpanel": false})
        );
        assert_eq!(e[1]["context"]["library"]["name"], "analytics-node");
        assert_eq!(
            e[2]["context"], "not an object",
            "the event's own value wins"
        );
    }

    #[test]
    fn timestamps_are_corrected_for_clock_skew() {
        // The sender's clock is 10 minutes fast: it sent at 05:41:14.123 by its clock, the
        // event happened 2 s before that.
        let e = events(
            "/v1/batch",
            r#"{"batch": [
                {"type": "track", "messageId": "a", "timestamp": "2026-12-03T05:41:12.123Z"},
                {"type": "track", "messageId": "b", "timestamp": "2026-12-03T05:41:12.123Z", "sentAt": "2026-12-03T05:41:13.123Z"},
                {"type": "track", "messageId": "c"},
                {"type": "track", "messageId": "d", "timestamp": "not a date"},
                {"type": "track", "messageId": "e", "timestamp": "2026-12-03T05:41:12.123Z", "originalTimestamp": "old", "receivedAt": "sender's"}
            ], "sentAt": "2026-12-03T05:41:14.123Z"}"#,
        );
        assert_eq!(e[0]["timestamp"], "2026-12-03T05:31:12.123Z");
        assert_eq!(e[0]["originalTimestamp"], "2026-12-03T05:41:12.123Z");
        assert_eq!(e[0]["sentAt"], "2026-12-03T05:41:14.123Z");
        assert_eq!(e[0]["receivedAt"], "2026-12-03T05:31:14.123Z");
        // The event's own sentAt is used before the batch's.
        assert_eq!(e[1]["timestamp"], "2026-12-03T05:31:13.123Z");
        assert_eq!(e[1]["sentAt"], "2026-12-03T05:41:13.123Z");
        // No timestamp: receivedAt.
        assert_eq!(e[2]["timestamp"], "2026-12-03T05:31:14.123Z");
        assert!(e[2].get("originalTimestamp").is_none());
        // Not a date: kept as sent, uncorrected.
        assert_eq!(e[3]["timestamp"], "not a date");
        assert!(e[3].get("originalTimestamp").is_none());
        // Fields the sender set are replaced in place.
        assert_eq!(e[4]["originalTimestamp"], "2026-12-03T05:41:12.123Z");
        assert_eq!(e[4]["receivedAt"], "2026-12-03T05:31:14.123Z");
        // Without sentAt the timestamp is the sender's.
        let single = events(
            "/v1/track",
            r#"{"timestamp": "2020-01-01T00:00:00Z", "messageId": "x"}"#,
        );
        assert_eq!(single[0]["timestamp"], "2020-01-01T00:00:00Z");
        assert!(single[0].get("originalTimestamp").is_none());
    }

    /// The body's `writeKey` is handed to the caller (it may authenticate the request) and
    /// never written into an event, wherever it stands.
    #[test]
    fn write_keys_are_taken_out_of_events() {
        let mut key = None;
        let out = normalise_with_key(
            "/v1/track",
            br#"{"writeKey":"k1","event":"E","a":{"writeKey":"nested stays"}}"#,
            &at(),
            &Limits::SEGMENT,
            &mut key,
        )
        .unwrap();
        assert_eq!(key.as_deref(), Some("k1"));
        let line = String::from_utf8(out.lines).unwrap();
        assert!(
            line.starts_with(
                r#"{"type":"track","event":"E","a":{"writeKey":"nested stays"},"messageId":"api-"#
            ),
            "{line}"
        );
        let out = normalise_with_key(
            "/v1/batch",
            br#"{"batch":[{"type":"page","writeKey":"k3"}],"writeKey":"k2"}"#,
            &at(),
            &Limits::SEGMENT,
            &mut key,
        )
        .unwrap();
        assert_eq!(key.as_deref(), Some("k2"));
        let line = String::from_utf8(out.lines).unwrap();
        assert!(
            !line.contains("writeKey") && line.starts_with(r#"{"type":"page","messageId""#),
            "{line}"
        );
        // A body that is refused still gives its key (the answer is then 401, not 400).
        let refused = normalise_with_key(
            "/v1/batch",
            br#"{"writeKey":"k4"}"#,
            &at(),
            &Limits::SEGMENT,
            &mut key,
        );
        assert!(refused.is_err());
        assert_eq!(key.as_deref(), Some("k4"));
    }

    /// Segment's limits: an event over 32 KiB refuses its request, one at the limit passes;
    /// a batch whose shared context would be copied beyond the shaped limit is refused
    /// before it grows.
    #[test]
    fn requests_are_held_to_segments_limits() {
        let limits = Limits::SEGMENT;
        // {"type":"track","p":"xxx…"} at exactly the limit, then one byte over.
        let event = |size: usize| {
            let pad = size - r#"{"type":"track","p":""}"#.len();
            format!(r#"{{"type":"track","p":"{}"}}"#, "x".repeat(pad))
        };
        let at_limit = format!(r#"{{"batch":[{{"type":"page"}},{}]}}"#, event(32 * 1024));
        assert!(normalise("/v1/batch", at_limit.as_bytes(), &at()).is_ok());
        let over = format!(
            r#"{{"batch":[{{"type":"page"}},{}]}}"#,
            event(32 * 1024 + 1)
        );
        let Err(Refused(m)) = normalise("/v1/batch", over.as_bytes(), &at()) else {
            panic!("an event over the limit was taken");
        };
        assert_eq!(
            m,
            "batch[1] is 32769 bytes; an event may be at most 32768 bytes (Segment's limit is 32 KB)"
        );
        let single = event(32 * 1024 + 1);
        let Err(Refused(m)) = normalise("/v1/track", single.as_bytes(), &at()) else {
            panic!("a single event over the limit was taken");
        };
        assert!(m.starts_with("the event is 32769 bytes"), "{m}");
        // Raised limits take it.
        let raised = Limits {
            event_bytes: 64 * 1024,
            request_bytes: 1024 * 1024,
        };
        assert!(
            normalise_with_key("/v1/batch", over.as_bytes(), &at(), &raised, &mut None).is_ok()
        );

        // 100 KB of batch context over 400 small events would be 40 MB of lines.
        let small = r#"{"type":"track","event":"e"}"#;
        let amplified = format!(
            r#"{{"context":{{"blob":"{}"}},"batch":[{}]}}"#,
            "x".repeat(100_000),
            vec![small; 400].join(",")
        );
        assert!(amplified.len() < limits.request_bytes);
        let Err(Refused(m)) = normalise("/v1/batch", amplified.as_bytes(), &at()) else {
            panic!("an amplifying batch was taken");
        };
        assert!(m.contains("more than 8192000 bytes"), "{m}");
        // The same context over a few events is fine.
        let few = format!(
            r#"{{"context":{{"blob":"{}"}},"batch":[{}]}}"#,
            "x".repeat(100_000),
            vec![small; 20].join(",")
        );
        assert_eq!(
            normalise("/v1/batch", few.as_bytes(), &at())
                .unwrap()
                .events(),
            20
        );
    }

    #[test]
    fn shaped_limit_stays_within_a_spool_record() {
        let at = |request_bytes| {
            Limits {
                event_bytes: 1024,
                request_bytes,
            }
            .shaped_bytes()
        };
        assert_eq!(at(500 * 1024), 16 * 500 * 1024);
        assert_eq!(at(1024), 1024 * 1024);
        assert_eq!(at(Limits::MAX), 48 * 1024 * 1024);
        assert!(at(usize::MAX) < crate::source::spool::MAX_RECORD_BYTES);
    }

    /// Ids serve makes up are marked, so that de-duplication does not keep them.
    #[test]
    fn generated_ids_are_marked() {
        let body = br#"{"batch":[{"type":"track","messageId":"m1"},{"type":"track"},{"type":"page","messageId":""}]}"#;
        let r = normalise("/v1/batch", body, &at()).unwrap();
        assert_eq!(r.generated, [false, true, true]);
        assert_eq!(&*r.message_ids[0], "m1");
        assert!(r.message_ids[1].starts_with("api-") && r.message_ids[2].starts_with("api-"));
    }

    #[test]
    fn settings_point_analytics_js_here() {
        assert_eq!(settings_key("/v1/projects/wk_1/settings"), Some("wk_1"));
        for other in [
            "/v1/projects//settings",
            "/v1/projects/a/b/settings",
            "/v1/track",
        ] {
            assert_eq!(settings_key(other), None, "{other}");
        }
        let s: serde_json::Value =
            serde_json::from_str(&settings("wk_1", "127.0.0.1:8088/v1", "http")).unwrap();
        let segment = &s["integrations"]["Segment.io"];
        assert_eq!(segment["apiKey"], "wk_1");
        assert_eq!(segment["apiHost"], "127.0.0.1:8088/v1");
        assert_eq!(segment["protocol"], "http");
        assert_eq!(s["integrations"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn single_events_get_their_endpoint_type() {
        let e = events(
            "/v1/identify",
            "{ \"userId\": \"u\", \"messageId\": \"m\" }",
        );
        assert_eq!(e[0]["type"], "identify");
        assert_eq!(
            lines_of("/v1/track", "{\"messageId\":\"m\"}"),
            "{\"type\":\"track\",\"messageId\":\"m\",\"timestamp\":\"2026-12-03T05:31:14.123Z\",\"receivedAt\":\"2026-12-03T05:31:14.123Z\"}\n"
        );
        assert_eq!(
            events("/v1/page", "{\"type\":\"screen\"}")[0]["type"],
            "screen",
            "an explicit type is kept"
        );
        // Found by fuzzing: a type that is no type gets the endpoint's, where it stands.
        for sent in ["null", "\"\"", "7", "{}"] {
            assert_eq!(
                lines_of(
                    "/v1/track",
                    &format!("{{\"a\":1,\"type\":{sent},\"messageId\":\"m\"}}")
                ),
                "{\"a\":1,\"type\":\"track\",\"messageId\":\"m\",\"timestamp\":\"2026-12-03T05:31:14.123Z\",\"receivedAt\":\"2026-12-03T05:31:14.123Z\"}\n",
                "type {sent}"
            );
        }
    }

    #[test]
    fn repeated_keys_keep_their_first_position_and_last_value() {
        assert_eq!(
            lines_of(
                "/v1/track",
                r#"{"messageId":"m","a":1,"b":2,"a":3,"timestamp":"t","receivedAt":"r"}"#
            ),
            "{\"type\":\"track\",\"messageId\":\"m\",\"a\":3,\"b\":2,\"timestamp\":\"t\",\"receivedAt\":\"2026-12-03T05:31:14.123Z\"}\n"
        );
    }

    #[test]
    fn message_ids_are_kept_or_generated() {
        let out = normalise(
            "/v1/batch",
            br#"{"batch":[{"type":"track","messageId":7},{"type":"track","messageId":""},{"type":"track","messageId":"x\u0041"}]}"#,
            &at(),
        )
        .unwrap();
        assert_eq!(&*out.message_ids[0], "7");
        assert!(out.message_ids[1].starts_with("api-"));
        assert_eq!(&*out.message_ids[2], "xA");
        let again = normalise("/v1/track", b"{}", &at()).unwrap();
        assert_ne!(out.message_ids[1], again.message_ids[0], "random ids");
        assert_eq!(out.events(), 3);
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
        assert!(normalise("/v1/track", b"{\"a\":\"\xff\"}", &at()).is_err());
    }
}
