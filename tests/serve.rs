//! `s3actions serve`: live events over HTTP, through the same pipeline, written on age and
//! on shutdown.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{assert_exit, bin, csv_tables, millis, wait_for, write};

/// One HTTP/1.1 request; returns (status, body).
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    post_with(addr, path, body, "")
}

/// The same with extra header lines (each ending in `\r\n`).
fn post_with(addr: &str, path: &str, body: &str, headers: &str) -> (u16, String) {
    post_bytes(addr, path, body.as_bytes(), headers)
}

/// A request with any body bytes (gzip) and extra header lines.
fn post_bytes(addr: &str, path: &str, body: &[u8], headers: &str) -> (u16, String) {
    let headers = format!("Content-Type: application/json\r\n{headers}");
    status_and_body(&exchange(addr, "POST", path, &headers, body))
}

/// A GET request; returns (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    status_and_body(&exchange(addr, "GET", path, "", b""))
}

/// One request on a connection of its own: method, extra header lines (each ending in
/// `\r\n`), body; returns the whole answer (status line, headers, body) as text.
fn exchange(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_answer(s)
}

fn read_answer(mut s: impl Read) -> String {
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify: what was read is the answer.
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn response(s: impl Read) -> (u16, String) {
    status_and_body(&read_answer(s))
}

fn status_and_body(answer: &str) -> (u16, String) {
    let status = answer[9..12].parse().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn start(mapping: &str, out: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let out = out.to_str().unwrap();
    let args: Vec<&str> = ["--out", out]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    start_with(mapping, &args)
}

/// `serve MAPPING --listen 127.0.0.1:0 ARGS...`; returns the child and its address.
fn start_with(mapping: &str, args: &[&str]) -> (Child, String) {
    let mut child = bin()
        .args(["serve", mapping, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("TEST_WRITE_KEY", "wk_secret_123")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The line is printed whatever the log format; lines before it are skipped.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    while !first.contains("listening on") {
        first.clear();
        if stderr.read_line(&mut first).unwrap() == 0 {
            panic!("serve printed no address");
        }
    }
    child.stderr = Some(stderr.into_inner());
    let addr = first
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("http://")
                .or_else(|| w.strip_prefix("https://"))
        })
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (child, addr)
}

#[test]
fn events_posted_over_http_are_written_on_age_and_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: live
    trigger: 'type = "track" or type = "identify"'
    batch_max_age_seconds: 1
    columns:
      type: { "@path": "$.type" }
      id: { "@path": "$.messageId" }
      revenue: { "@path": "$.properties.revenue" }
"#,
    );
    let out = dir.path().join("out");
    let (mut child, addr) = start(&mapping, &out, &[]);

    let batch = r#"{"batch": [
        {"type": "track", "messageId": "m1", "properties": {"revenue": 631.0}},
        {"type": "page", "messageId": "m2"}
    ]}"#;
    assert_eq!(
        post(&addr, "/v1/batch", batch),
        (200, r#"{"success":true}"#.into())
    );
    let (status, body) = post(&addr, "/v1/batch", r#"{"batch": [{"messageId": "x"}]}"#);
    assert_eq!(status, 400);
    assert!(body.contains("batch[0] has no \\\"type\\\""), "{body}");
    assert_eq!(post(&addr, "/v1/track", "{\"messageId\":").0, 400);
    assert_eq!(post(&addr, "/v1/nothing", "{}").0, 404);

    // The batch is written after a second, with the server still running.
    let written = wait_for(
        Duration::from_secs(20),
        "nothing written while serving",
        || Some(csv_tables(&out)).filter(|t| !t.is_empty()),
    );
    assert_eq!(written, vec![vec![vec!["track", "m1", "631", "", "1"]]]);

    // A single event gets its endpoint's type; shutdown writes the open batch.
    assert_eq!(post(&addr, "/v1/identify", r#"{"messageId": "m3"}"#).0, 200);
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(
        Duration::from_secs(20),
        "serve did not stop on SIGINT",
        || child.try_wait().unwrap(),
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("Read 3 events"), "{stdout}");
    let mut rows = csv_tables(&out);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            vec![vec!["identify", "m3", "", "", "1"]],
            vec![vec!["track", "m1", "631", "", "1"]],
        ]
    );
}

fn stop(child: Child) -> (std::process::ExitStatus, String, String) {
    let o = common::stop_serve(child);
    (
        o.status,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// With a write key, only requests carrying it (Basic auth, key as user name) are taken,
/// and the key shows nowhere in the output.
#[test]
fn a_write_key_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    // Raw events: the files hold whole events, so a key left in one would show.
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n  - name: raw\n    format: ndjson\n    raw: true\n",
    );
    let out = dir.path().join("out");
    let (child, addr) = start(
        &mapping,
        &out,
        &["--write-key-env", "TEST_WRITE_KEY", "-vv"],
    );
    let event = r#"{"type":"track","event":"E"}"#;
    assert_eq!(post(&addr, "/v1/track", event).0, 401);
    // base64("wrong:") and base64("wk_secret_123:")
    let wrong = "Authorization: Basic d3Jvbmc6\r\n";
    let right = "Authorization: Basic d2tfc2VjcmV0XzEyMzo=\r\n";
    assert_eq!(post_with(&addr, "/v1/track", event, wrong).0, 401);
    assert_eq!(post_with(&addr, "/v1/track", event, right).0, 200);
    // Segment's API also takes the key as the body's `writeKey`, and keeps it out of the
    // events.
    let keyed = r#"{"type":"track","event":"K","writeKey":"wk_secret_123"}"#;
    let batch = r#"{"batch":[{"type":"track","event":"B"}],"writeKey":"wk_secret_123"}"#;
    let wrong_key = r#"{"type":"track","event":"W","writeKey":"wk_secret_12"}"#;
    assert_eq!(post(&addr, "/v1/track", keyed).0, 200);
    assert_eq!(post(&addr, "/v1/batch", batch).0, 200);
    assert_eq!(post(&addr, "/v1/track", wrong_key).0, 401);
    assert_eq!(post(&addr, "/v1/track", "not json").0, 401);
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 3 events"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("wk_secret_123"), "{text}");
        assert!(!text.contains("d2tfc2VjcmV0XzEyMzo"), "{text}");
    }
    let files = common::files(&out);
    let raw: String = files
        .iter()
        .filter(|(k, _)| k.ends_with(".json"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(raw.lines().count(), 3, "{raw}");
    for (key, content) in &files {
        let text = String::from_utf8_lossy(content);
        assert!(!text.contains("wk_secret"), "{key}: {text}");
    }
}

#[test]
fn a_missing_write_key_variable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
    let o = bin()
        .args([
            "serve",
            &mapping,
            "--listen",
            "127.0.0.1:0",
            "--write-key-env",
            "NO_SUCH_VAR_S3A",
        ])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("NO_SUCH_VAR_S3A"));
}

/// When events can no longer be written (here the output directory disappears), `serve`
/// stops taking them and exits with the error, instead of acknowledging events it drops.
#[test]
fn serve_stops_taking_events_when_they_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
    let out = dir.path().join("out");
    // The spool elsewhere: the event stays kept in it while the output is gone.
    let spool = dir.path().join("spool");
    let (mut child, addr) = start(&mapping, &out, &["--spool", spool.to_str().unwrap()]);
    // The sink creates its directory once the pipeline starts.
    wait_for(
        Duration::from_secs(20),
        "the output directory never appeared",
        || out.join(".s3actions-tmp").exists().then_some(()),
    );
    std::fs::remove_dir_all(&out).unwrap();
    let event = r#"{"type":"track","event":"E"}"#;
    assert_eq!(post(&addr, "/v1/track", event).0, 200);
    let status = wait_for(
        Duration::from_secs(20),
        "serve kept running after a write failure",
        || child.try_wait().unwrap(),
    );
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("no longer accepting events"), "{stderr}");
    assert!(TcpStream::connect(&addr).is_err(), "still listening");
}

/// Reads a file written under `out` with its header: (header, rows) of every CSV file.
fn csv_files(out: &std::path::Path) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    common::files(out)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".csv"))
        .map(|(_, v)| common::read_csv(&v, b','))
        .collect()
}

/// serve shapes events as Segment's tracking API does, so its rows deliberately differ from
/// a replay of the same bodies: batch context merged in, receivedAt, skew-corrected
/// timestamp with the sender's as originalTimestamp, generated messageIds.
#[test]
fn serve_shapes_events_as_segments_api_does_unlike_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: live
    trigger: 'type = "track"'
    columns:
      id: { "@path": "$.messageId" }
      ts: { "@path": "$.timestamp" }
      orig: { "@path": "$.originalTimestamp" }
      sent: { "@path": "$.sentAt" }
      received: { "@path": "$.receivedAt" }
      lib: { "@path": "$.context.library.name" }
      ip: { "@path": "$.context.ip" }
      all: { "@path": "$.integrations.All" }
"#,
    );
    let events = r#"[
        {"type": "track", "event": "A", "messageId": "m1", "timestamp": "2030-01-01T00:00:07.500Z", "context": {"ip": "10.0.0.1"}},
        {"type": "track", "event": "B", "integrations": {"All": false}}
    ]"#;
    let body = format!(
        r#"{{"batch": {events}, "sentAt": "2030-01-01T00:00:10.000Z",
            "context": {{"library": {{"name": "analytics-node"}}, "ip": "10.9.9.9"}},
            "integrations": {{"All": true}}}}"#
    );
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &[]);
    let before = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    assert_eq!(post(&addr, "/v1/batch", &body).0, 200);
    let after = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000;
    let (status, _, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    let files = csv_files(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let (header, rows) = &files[0];
    assert_eq!(
        header[..8],
        ["id", "ts", "orig", "sent", "received", "lib", "ip", "all"]
    );
    let (a, b) = (&rows[0], &rows[1]);
    let received = millis(&a[4]);
    assert!((before..=after).contains(&received), "{a:?}");
    assert!(a[4].ends_with('Z') && a[4].len() == 24, "{a:?}");
    // 2.5 s before it was sent by the sender's clock: 2.5 s before it was received.
    assert_eq!(millis(&a[1]), received - 2500, "{a:?}");
    assert_eq!(a[0], "m1");
    assert_eq!(a[2], "2030-01-01T00:00:07.500Z");
    assert_eq!(a[3], "2030-01-01T00:00:10.000Z");
    assert_eq!(
        (&*a[5], &*a[6], &*a[7]),
        ("analytics-node", "10.0.0.1", "true")
    );
    // No timestamp: receivedAt; no messageId: api- and a KSUID.
    assert!(b[0].starts_with("api-") && b[0].len() == 31, "{b:?}");
    assert_eq!(b[1], b[4]);
    assert_eq!(b[2], "");
    assert_eq!(
        (&*b[5], &*b[6], &*b[7]),
        ("analytics-node", "10.9.9.9", "false")
    );

    // A replay of the same events writes them as they were sent.
    let input = write(dir.path(), "events.json", events);
    let replayed = common::replay(&mapping, &[&input], &[]);
    let files = csv_files(replayed.out());
    let rows = &files[0].1;
    assert_eq!(rows[0][..5], ["m1", "2030-01-01T00:00:07.500Z", "", "", ""]);
    assert_eq!(rows[0][5..8], ["", "10.0.0.1", ""]);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Segment's libraries may gzip their bodies; the body limit holds after decompression too.
#[test]
fn gzip_bodies_are_taken_and_gzip_bombs_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &[]);
    let gz = "Content-Encoding: gzip\r\n";
    let body =
        gzip(br#"{"batch":[{"type":"track","messageId":"g1"},{"type":"track","messageId":"g2"}]}"#);
    assert_eq!(post_bytes(&addr, "/v1/batch", &body, gz).0, 200);
    let single = gzip(br#"{"messageId":"g3"}"#);
    assert_eq!(post_bytes(&addr, "/v1/track", &single, gz).0, 200);
    // 64 MiB of spaces inside a valid object: about 64 KB compressed.
    let mut huge = b"{\"batch\":[],\"pad\":\"".to_vec();
    huge.resize(64 << 20, b' ');
    huge.extend_from_slice(b"\"}");
    let bomb = gzip(&huge);
    assert!(bomb.len() < 1 << 20);
    let (status, message) = post_bytes(&addr, "/v1/batch", &bomb, gz);
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("larger than 512000 bytes"), "{message}");
    let (status, message) = post_bytes(&addr, "/v1/batch", b"not gzip", gz);
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("gzip"), "{message}");
    let br = "Content-Encoding: br\r\n";
    assert_eq!(post_bytes(&addr, "/v1/track", b"{}", br).0, 415);
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 3 events"), "{stdout}");
    let mut ids: Vec<String> = csv_tables(&out)
        .concat()
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["g1", "g2", "g3"]);
}

/// Clients that send their request head a byte now and then are disconnected once
/// `--header-timeout` has passed, however steadily the bytes come (issue 19).
/// Segment's limits by default (32 KB an event, 500 KB a batch request), each refusal
/// keeping nothing of its request; a batch whose context would be copied into thousands of
/// events is refused before it grows (it once became a spool record too large to read back
/// after a crash); the flags raise the limits.
#[test]
fn requests_are_held_to_segments_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let event = |id: &str, pad: usize| {
        format!(
            r#"{{"type":"track","messageId":"{id}","p":"{}"}}"#,
            "x".repeat(pad)
        )
    };
    let batch = |events: &[String]| format!(r#"{{"batch":[{}]}}"#, events.join(","));
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &[]);
    // 30 KB events pass; one of 33 KB refuses its whole batch with 400, as Segment does.
    let ok = batch(&[event("ok1", 30_000), event("ok2", 30_000)]);
    assert_eq!(post(&addr, "/v1/batch", &ok).0, 200);
    let with_big = batch(&[event("no1", 10), event("no2", 33_000)]);
    let (status, message) = post(&addr, "/v1/batch", &with_big);
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("batch[1] is 33041 bytes; an event may be at most 32768 bytes"),
        "{message}"
    );
    let (status, message) = post(&addr, "/v1/track", &event("no3", 33_000));
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("larger than 32768 bytes"), "{message}");
    // A 600 KB batch of small events: over the request limit.
    let many: Vec<String> = (0..600).map(|i| event(&format!("no-{i}"), 960)).collect();
    let (status, message) = post(&addr, "/v1/batch", &batch(&many));
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("larger than 512000 bytes"), "{message}");
    // 300 KB of batch context over 5,000 tiny events would be 1.5 GB of lines.
    let amplifying = format!(
        r#"{{"context":{{"blob":"{}"}},"batch":[{}]}}"#,
        "x".repeat(300_000),
        vec![r#"{"type":"track"}"#; 5_000].join(",")
    );
    let (status, message) = post(&addr, "/v1/batch", &amplifying);
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("with its context and integrations copied into each"),
        "{message}"
    );
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 2 events"), "{stdout}");

    // Raised, the same requests are taken.
    let out = dir.path().join("raised");
    let (child, addr) = start(
        &mapping,
        &out,
        &[
            "--max-event-bytes",
            "65536",
            "--max-request-bytes",
            "1048576",
        ],
    );
    assert_eq!(post(&addr, "/v1/batch", &with_big).0, 200);
    assert_eq!(post(&addr, "/v1/batch", &batch(&many)).0, 200);
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 602 events"), "{stdout}");
}

#[test]
fn slow_headers_are_cut_off_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &["--header-timeout", "1"]);
    let started = std::time::Instant::now();
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let head = b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut open = clients.len();
    let mut closed = vec![false; clients.len()];
    let mut closed_at = Vec::new();
    for byte in head.iter().cycle() {
        if open == 0 || started.elapsed() > Duration::from_secs(8) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        for (c, closed) in clients.iter_mut().zip(closed.iter_mut()) {
            if *closed {
                continue;
            }
            let gone = c.write_all(&[*byte]).is_err() || {
                c.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 256];
                let r = c.read(&mut buf);
                c.set_nonblocking(false).unwrap();
                // An answer (hyper's 408), the end of the stream, or a reset.
                r.is_ok() || r.is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock)
            };
            if gone {
                *closed = true;
                open -= 1;
                closed_at.push(started.elapsed());
            }
        }
    }
    assert_eq!(
        open,
        0,
        "{open} slow clients still connected after {:?}",
        started.elapsed()
    );
    let last = closed_at.iter().max().unwrap();
    assert!(
        *last >= Duration::from_millis(900) && *last < Duration::from_secs(5),
        "{closed_at:?}"
    );
    // The server still answers others.
    assert_eq!(post(&addr, "/v1/track", r#"{"type":"track"}"#).0, 200);
    let (status, _, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
}

/// Probes and scrapes need no write key; events still do.
#[test]
fn health_ready_and_metrics_need_no_write_key() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &["--write-key-env", "TEST_WRITE_KEY"]);
    assert_eq!(get(&addr, "/health"), (200, r#"{"success":true}"#.into()));
    assert_eq!(get(&addr, "/ready"), (200, r#"{"success":true}"#.into()));
    let (status, text) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("s3actions_spool_bytes 0"), "{text}");
    assert_eq!(post(&addr, "/v1/track", "{}").0, 401);
    assert_eq!(get(&addr, "/v1/track").0, 401);
    let (status, _, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
}

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The sum of a metric's samples whose labels include `labels`.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: {other:?}"),
        })
        .sum()
}

/// `/metrics`, parsed by a Prometheus text parser, agrees with the run's own summary.
#[test]
fn metrics_agree_with_the_run_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: tracks
    trigger: 'type = "track"'
    batch_size: 7
    batch_max_age_seconds: 1
  - name: identifies
    trigger: 'type = "identify"'
    batch_max_age_seconds: 1
"#,
    );
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &["--json"]);
    let mut expected_rows = 0;
    for r in 0..5 {
        let events: Vec<String> = (0..20)
            .map(|i| {
                let t = ["track", "identify", "page"][(r + i) % 3];
                format!(r#"{{"type":"{t}","userId":"u{i}","event":"E"}}"#)
            })
            .collect();
        expected_rows += events.iter().filter(|e| !e.contains("page")).count();
        let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
        assert_eq!(post(&addr, "/v1/batch", &body).0, 200);
    }
    assert_eq!(post(&addr, "/v1/track", r#"{"userId":"x"}"#).0, 200);
    expected_rows += 1;
    // A batch sent twice (a sender retrying): its events are kept once (dedupe_window).
    let retried = r#"{"batch":[{"type":"track","messageId":"dup-1"},{"type":"track","messageId":"dup-2"},{"type":"identify","messageId":"dup-3"}]}"#;
    for _ in 0..2 {
        assert_eq!(post(&addr, "/v1/import", retried).0, 200);
    }
    expected_rows += 3;
    assert_eq!(post(&addr, "/v1/batch", r#"{"batch":[1]}"#).0, 400);
    // Every row in a finished file (batches close after a second).
    wait_for(Duration::from_secs(20), "rows never all written", || {
        (csv_tables(&out).concat().len() == expected_rows).then_some(())
    });
    let m = wait_for(Duration::from_secs(20), "batches never all closed", || {
        let m = scrape(&addr);
        (value(&m, "s3actions_open_batches", &[]) == 0.0).then_some(m)
    });
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as f64;
    assert_eq!(
        value(&m, "s3actions_events_read_total", &[]),
        n(&summary["events_read"])
    );
    assert_eq!(value(&m, "s3actions_events_read_total", &[]), 104.0);
    assert_eq!(value(&m, "s3actions_events_deduplicated_total", &[]), 3.0);
    // Only the ids senders gave are remembered (serve generated the others).
    assert_eq!(value(&m, "s3actions_dedupe_ids", &[]), 3.0);
    assert!(value(&m, "s3actions_dedupe_span_seconds", &[]) < 60.0);
    assert_eq!(
        value(&m, "s3actions_events_not_matched_total", &[]),
        n(&summary["not_matched"])
    );
    for mapping in summary["mappings"].as_array().unwrap() {
        let name = mapping["name"].as_str().unwrap();
        assert_eq!(
            value(&m, "s3actions_rows_written_total", &[("mapping", name)]),
            n(&mapping["rows"]),
            "{name}"
        );
    }
    let files = summary["files"].as_array().unwrap();
    assert!(files.len() > 2, "{summary}");
    assert_eq!(
        value(&m, "s3actions_files_written_total", &[]),
        files.len() as f64
    );
    let bytes: u64 = files.iter().map(|f| f["bytes"].as_u64().unwrap()).sum();
    assert_eq!(
        value(&m, "s3actions_bytes_written_total", &[]),
        bytes as f64
    );
    let batch = [("endpoint", "/v1/batch")];
    assert_eq!(
        value(
            &m,
            "s3actions_http_requests_total",
            &[batch[0], ("status", "200")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "s3actions_http_requests_total",
            &[batch[0], ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "s3actions_http_events_total",
            &[batch[0], ("status", "200")]
        ),
        100.0
    );
    assert_eq!(
        value(
            &m,
            "s3actions_http_events_total",
            &[("endpoint", "/v1/track")]
        ),
        1.0
    );
    // The spool: its segments' size on disk; every event is in a finished file.
    let spool: u64 = std::fs::read_dir(out.join(".s3actions-spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(spool > 0);
    assert_eq!(value(&m, "s3actions_spool_bytes", &[]), spool as f64);
    assert_eq!(
        value(&m, "s3actions_spool_oldest_event_age_seconds", &[]),
        0.0
    );
    assert_eq!(value(&m, "s3actions_outbox_files", &[]), 0.0);
    let histogram = m
        .samples
        .iter()
        .find(|s| s.metric == "s3actions_http_request_duration_seconds")
        .expect("request latency histogram");
    assert!(
        matches!(histogram.value, prometheus_parse::Value::Histogram(_)),
        "{histogram:?}"
    );
}

/// With `--log-format json` every log line is a JSON object, except the address line,
/// which stays as it is for scripts.
#[test]
fn json_logs_keep_the_listening_line() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &["--log-format", "json", "-v"]);
    assert_eq!(post(&addr, "/v1/track", r#"{"event":"E"}"#).0, 200);
    let (status, _, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["level"] == "INFO"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("HTTP source stopping"))),
        "{stderr}"
    );
}

/// `--tls-cert`/`--tls-key` serve HTTPS: a client trusting the (self-signed) certificate
/// posts events; plain HTTP gets no answer.
#[test]
fn tls_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = write(dir.path(), "cert.pem", &cert.pem());
    let key_pem = write(dir.path(), "key.pem", &signing_key.serialize_pem());
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    columns:\n      id: { \"@path\": \"$.messageId\" }\n",
    );
    let out = dir.path().join("out");
    let (child, addr) = start(
        &mapping,
        &out,
        &["--tls-cert", &cert_pem, "--tls-key", &key_pem],
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(&addr).unwrap());
    let body = r#"{"messageId":"over-tls"}"#;
    write!(
        tls,
        "POST /v1/track HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    assert_eq!(response(tls), (200, r#"{"success":true}"#.into()));

    // Plain HTTP on the TLS port: the handshake fails, nothing is taken.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = write!(
        plain,
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("success"),
        "{answer:?}"
    );

    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 1 events"), "{stdout}");
    let rows = csv_tables(&out).concat();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "over-tls");
}

/// Uploads that fail (here the S3 endpoint refuses connections) leave their files in the
/// outbox and are counted, but do not make the instance unready.
#[test]
fn upload_failures_keep_the_instance_ready() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let outbox = dir.path().join("outbox");
    let mapping = write(
        dir.path(),
        "m.yaml",
        &format!(
            "settings:\n  s3_aws_bucket_name: bucket\n  s3_aws_region: us-east-1\n  iam_role_arn: arn:aws:iam::123456789012:role/r\n  iam_external_id: ext\n  endpoint_url: {endpoint}\n  outbox_dir: {}\n  max_retries: 1\nmappings:\n  - name: m\n    batch_max_age_seconds: 1\n",
            outbox.display()
        ),
    );
    let start = || {
        let mut cmd = bin();
        cmd.args(["serve", &mapping, "--listen", "127.0.0.1:0"])
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret-example");
        common::spawn_serve(cmd)
    };
    let failed = |addr: &str| {
        wait_for(Duration::from_secs(60), "the upload never failed", || {
            let m = scrape(addr);
            (value(&m, "s3actions_upload_failures_total", &[]) >= 1.0).then_some(m)
        })
    };
    let (child, addr) = start();
    assert_eq!(post(&addr, "/v1/track", r#"{"event":"E"}"#).0, 200);
    let m = failed(&addr);
    assert_eq!(
        value(&m, "s3actions_uploads_total", &[("result", "failed")]),
        1.0
    );
    assert!(value(&m, "s3actions_upload_retries_total", &[]) >= 1.0);
    assert_eq!(value(&m, "s3actions_outbox_files", &[]), 1.0);
    assert_eq!(value(&m, "s3actions_files_written_total", &[]), 1.0);
    assert_eq!(get(&addr, "/ready"), (200, r#"{"success":true}"#.into()));
    let (status, _, stderr) = stop(child);
    assert_eq!(status.code(), Some(1), "pending files: {stderr}");
    let waiting: Vec<_> = common::files(&outbox)
        .into_keys()
        .filter(|k| k.ends_with(".csv"))
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");

    // Restarted, it tries the file the first run left again; the gauge counts it.
    let (child, addr) = start();
    let m = failed(&addr);
    assert_eq!(value(&m, "s3actions_outbox_files", &[]), 1.0);
    assert_eq!(value(&m, "s3actions_files_written_total", &[]), 0.0);
    let (status, _, stderr) = stop(child);
    assert_eq!(status.code(), Some(1), "pending files: {stderr}");
}

/// `batch_interval` under serve: a file whose interval has ended on the clock is closed
/// while the server keeps running (no later event needed), and holds that interval's rows.
#[test]
fn serve_closes_a_file_when_its_interval_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        r#"
mappings:
  - name: hourly
    trigger: 'type = "track"'
    batch_interval: 2s
    columns:
      id: { "@path": "$.messageId" }
"#,
    );
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &[]);
    assert_eq!(post(&addr, "/v1/track", r#"{"messageId": "a"}"#).0, 200);
    let written = wait_for(
        Duration::from_secs(20),
        "the ended interval's file was not written while serving",
        || Some(csv_tables(&out)).filter(|t| !t.is_empty()),
    );
    assert_eq!(written, vec![vec![vec!["a", "", "1"]]]);
    let (status, _, _) = stop(child);
    assert!(status.success());
}

/// What Analytics.js (the browser library) does: one-letter endpoints (`/v1/t`, `/v1/p`,
/// ...) and `/v1/b` for batches, `text/plain` bodies carrying `writeKey`, from a page on
/// another origin, so answers name that origin and preflights are answered without a key,
/// allowing the headers they ask for; its settings and telemetry endpoints too.
#[test]
fn analytics_js_endpoints_and_cors() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    trigger: 'type = \"track\" or type = \"page\"'\n    columns:\n      type: { \"@path\": \"$.type\" }\n      event: { \"@path\": \"$.event\" }\n",
    );
    let out = dir.path().join("out");
    let (child, addr) = start(&mapping, &out, &["--write-key-env", "TEST_WRITE_KEY"]);
    // Header names in any case.
    let ask = |method: &str, path: &str, headers: &str, body: &str| {
        exchange(&addr, method, path, headers, body.as_bytes()).to_ascii_lowercase()
    };
    let origin = "Origin: https://shop.example\r\n";
    let preflight = ask(
        "OPTIONS",
        "/v1/t",
        &format!(
            "{origin}Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-retry-count\r\n"
        ),
        "",
    );
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: https://shop.example\r\n"),
        "{preflight}"
    );
    // Analytics.js sends Authorization, and X-Retry-Count when it retries: allowed as asked.
    assert!(
        preflight
            .contains("access-control-allow-headers: authorization,content-type,x-retry-count\r\n"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-credentials: true"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-methods: post"),
        "{preflight}"
    );
    let text = "Content-Type: text/plain\r\n";
    let track =
        r#"{"type":"track","event":"Clicked","anonymousId":"a1","writeKey":"wk_secret_123"}"#;
    let answer = ask("POST", "/v1/t", &format!("{origin}{text}"), track);
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("access-control-allow-origin: https://shop.example\r\n"),
        "{answer}"
    );
    assert!(answer.contains("vary: origin"), "{answer}");
    let page = r#"{"name":"Home","anonymousId":"a1","writeKey":"wk_secret_123"}"#;
    assert!(ask("POST", "/v1/p", text, page).starts_with("http/1.1 200"));
    let batch = r#"{"batch":[{"type":"track","event":"Batched","anonymousId":"a1"}],"writeKey":"wk_secret_123"}"#;
    let answer = ask("POST", "/v1/b", text, batch);
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        !answer.contains("access-control"),
        "no Origin, no CORS header: {answer}"
    );
    // The settings Analytics.js loads from its cdnURL point it here, for the right key only.
    let settings = ask("GET", "/v1/projects/wk_secret_123/settings", origin, "");
    assert!(settings.starts_with("http/1.1 200"), "{settings}");
    assert!(
        settings.contains(&format!(r#""apihost":"{addr}/v1","protocol":"http""#)),
        "{settings}"
    );
    assert!(
        settings.contains("access-control-allow-origin: https://shop.example\r\n"),
        "{settings}"
    );
    let unknown = ask("GET", "/v1/projects/wk_other/settings", origin, "");
    assert!(unknown.starts_with("http/1.1 404"), "{unknown}");
    // Analytics.js's own telemetry, sent without a key: taken and dropped (no event).
    let series =
        r#"{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1,"tags":{}}]}"#;
    let telemetry = ask("POST", "/v1/m", &format!("{origin}{text}"), series);
    assert!(telemetry.starts_with("http/1.1 200"), "{telemetry}");
    let preflight = ask("OPTIONS", "/v1/m", origin, "");
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    // Operators' endpoints are not opened to pages.
    let health = ask("GET", "/health", origin, "");
    assert!(health.starts_with("http/1.1 200"), "{health}");
    assert!(!health.contains("access-control"), "{health}");
    // Without the key, still refused (CORS opens reading answers, not sending).
    let keyless = r#"{"type":"track","event":"X"}"#;
    let answer = ask("POST", "/v1/t", &format!("{origin}{text}"), keyless);
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    let (status, _, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    let mut rows: Vec<Vec<String>> = csv_files(&out)
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| r[..2].to_vec())
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [["page", ""], ["track", "Batched"], ["track", "Clicked"]]
    );
}
