//! serve's promise, tested by killing it: every event answered `200` is, after `kill -9`
//! and a restart of the same command, in exactly one row of one file; none is in two.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bin, files, read_csv, spawn_serve, wait_for, write};

const MAPPING: &str = r#"
mappings:
  - name: tracks
    trigger: 'type = "track"'
    batch_size: 700
    batch_max_age_seconds: 1
    s3_aws_folder_name: "{{properties.folder}}"
    columns:
      id: { "@path": "$.messageId" }
      event: { "@path": "$.event" }
  - name: people
    trigger: 'type = "identify"'
    batch_size: 300
    columns:
      id: { "@path": "$.messageId" }
      plan: { "@path": "$.traits.plan" }
"#;

/// Starts `serve` on a free port; returns the child and its address.
fn start(mapping: &str, out: &Path, extra: &[&str]) -> (Child, String) {
    start_on("127.0.0.1:0", mapping, out, extra)
}

/// Starts `serve` on `listen` (a restart on the same address, for senders that retry).
fn start_on(listen: &str, mapping: &str, out: &Path, extra: &[&str]) -> (Child, String) {
    let mut command = bin();
    command
        .args(["serve", mapping, "--listen", listen, "--out"])
        .arg(out)
        .args(extra);
    spawn_serve(command)
}

/// Posts `body` to `/v1/batch` on a fresh connection; the status, or `None` when the
/// server went away before answering.
fn post_batch(addr: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.get(9..12)?.parse().ok()
}

/// A batch of 100 events with unique message ids: tracks, identifies and pages (which no
/// mapping takes); one track in 50 has a folder too long for a key, and is rejected.
fn batch(sender: usize, n: usize) -> (String, Vec<String>) {
    let mut events = Vec::new();
    let mut ids = Vec::new();
    let long = "f".repeat(800);
    for i in 0..100 {
        let id = format!("s{sender}-b{n}-e{i}");
        let event = match i % 10 {
            0 if i % 50 == 0 => format!(
                r#"{{"type":"track","messageId":"{id}","event":"Order {i}","properties":{{"folder":"{long}"}}}}"#
            ),
            0..=6 => format!(r#"{{"type":"track","messageId":"{id}","event":"Order {i}"}}"#),
            7 | 8 => {
                format!(r#"{{"type":"identify","messageId":"{id}","traits":{{"plan":"p{i}"}}}}"#)
            }
            _ => format!(r#"{{"type":"page","messageId":"{id}"}}"#),
        };
        if i % 10 != 9 {
            ids.push(id);
        }
        events.push(event);
    }
    (format!(r#"{{"batch":[{}]}}"#, events.join(",")), ids)
}

/// Senders posting until told to stop; what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn load(addr: &str, senders: usize, round: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let threads = (0..senders)
        .map(|s| {
            let (stop, acked, count, addr) =
                (stop.clone(), acked.clone(), count.clone(), addr.to_string());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (body, ids) = batch(round * 100 + s, n);
                    n += 1;
                    match post_batch(&addr, &body) {
                        Some(200) => {
                            count.fetch_add(ids.len(), Ordering::Relaxed);
                            acked.lock().unwrap().extend(ids);
                        }
                        Some(_) => {}
                        None => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    Load {
        stop,
        acked,
        count,
        threads,
    }
}

impl Load {
    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Every message id in every CSV file under `out`, and in the rejects file, with how often
/// it appears.
fn written_ids(out: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    if let Ok(rejects) = std::fs::read_to_string(out.join("_rejected.ndjson")) {
        for line in rejects.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(entry["input"], "serve", "{line}");
            assert!(entry["offset"].is_u64(), "{line}");
            let id = entry["event"]["messageId"].as_str().unwrap().to_string();
            *ids.entry(id).or_insert(0) += 1;
        }
    }
    for (key, content) in files(out) {
        if !key.ends_with(".csv") || key.starts_with('.') {
            continue;
        }
        let (header, rows) = read_csv(&content, b',');
        assert_eq!(header[0], "id", "{key}");
        for row in rows {
            *ids.entry(row[0].clone()).or_insert(0) += 1;
        }
    }
    ids
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn stop(child: &mut Child) {
    common::sigterm(child);
    let status = wait_for(
        Duration::from_secs(60),
        "serve did not stop on SIGTERM",
        || child.try_wait().unwrap(),
    );
    // 1: the run finished, and some events were rejected (the long folders).
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "serve failed: {status}"
    );
}

#[test]
fn every_acknowledged_event_is_in_exactly_one_row_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", MAPPING);
    let out = dir.path().join("out");
    let mut acked: Vec<String> = Vec::new();

    // Two crashes under load, each after a few thousand acknowledged events (the second
    // while the first one's spool is being read again), then a clean stop.
    for round in 0..2 {
        let (mut child, addr) = start(&mapping, &out, &[]);
        let l = load(&addr, 4, round);
        wait_for(
            Duration::from_secs(120),
            "too few events acknowledged",
            || (l.count.load(Ordering::Relaxed) >= 6_000).then_some(()),
        );
        kill9(&mut child);
        acked.extend(l.finish());
    }
    let (mut child, addr) = start(&mapping, &out, &[]);
    let l = load(&addr, 2, 2);
    wait_for(
        Duration::from_secs(120),
        "too few events acknowledged",
        || (l.count.load(Ordering::Relaxed) >= 1_000).then_some(()),
    );
    acked.extend(l.finish());
    stop(&mut child);

    let written = written_ids(&out);
    let twice: Vec<_> = written.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "events written more than once: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !written.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are in no file (of {}), e.g. {missing:?}",
        acked.iter().filter(|id| !written.contains_key(*id)).count(),
        acked.len()
    );
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len());
    assert!(acked.len() >= 13_000, "{}", acked.len());
}

/// A spool whose last frame was cut short (a power loss mid-write) is truncated there and
/// reported; everything before it is written.
#[test]
fn a_torn_spool_tail_is_truncated_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", MAPPING);
    let out = dir.path().join("out");
    let (mut child, addr) = start(&mapping, &out, &[]);
    let (body, ids) = batch(0, 0);
    assert_eq!(post_batch(&addr, &body), Some(200));
    kill9(&mut child);
    // Append half a frame to the last segment, as a crash mid-write would leave it.
    let spool = out.join(".s3actions-spool");
    let mut segments: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    drop(f);

    let mut child = bin()
        .args(["serve", &mapping, "--listen", "127.0.0.1:0", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("listening on") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains("truncating 10 byte(s)"), "{seen}");
    stop(&mut child);
    let written = written_ids(&out);
    for id in &ids {
        assert_eq!(written.get(id), Some(&1), "{id}");
    }
}

/// A full spool answers 503 with Retry-After and acknowledges nothing it cannot keep.
#[test]
fn a_full_spool_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "m.yaml",
        &format!("settings:\n  spool_max_bytes: 40000\n{MAPPING}"),
    );
    let out = dir.path().join("out");
    let (mut child, addr) = start(&mapping, &out, &[]);
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..50 {
        let (body, ids) = batch(0, n);
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        if response.starts_with("HTTP/1.1 200") {
            acked.extend(ids);
        } else {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("the spool never filled up");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 5"),
        "{response}"
    );
    assert!(response.contains("spool is full"), "{response}");
    stop(&mut child);
    let written = written_ids(&out);
    for id in &acked {
        assert_eq!(written.get(id), Some(&1), "{id}");
    }
}

/// The largest request `serve` takes is read back whole after `kill -9`. A batch's context
/// is copied into each of its events, and a small body once became a spool record larger
/// than recovery reads: it was answered `200`, then dropped as a torn tail on restart. Now
/// a request that would grow past what a record holds is refused, and one just within it
/// survives the crash.
#[test]
fn the_largest_acknowledged_request_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", MAPPING);
    let out = dir.path().join("out");
    let limits = ["--max-request-bytes", "4194304"];
    let (mut child, addr) = start(&mapping, &out, &limits);
    let body = |n: usize, tag: &str| {
        let ids: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
        let events: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"type":"track","messageId":"{id}","event":"Big"}}"#))
            .collect();
        let body = format!(
            r#"{{"context":{{"blob":"{}"}},"batch":[{}]}}"#,
            "c".repeat(350_000),
            events.join(",")
        );
        (body, ids)
    };
    // 120 events of about 350 KB each once shaped: 42 MB, within the 48 MiB a request may
    // grow to.
    let (kept, ids) = body(120, "kept");
    assert_eq!(post_batch(&addr, &kept), Some(200));
    // 150 would be 52 MB: refused, nothing of it kept.
    let (refused, refused_ids) = body(150, "refused");
    assert_eq!(post_batch(&addr, &refused), Some(400));
    kill9(&mut child);
    let (mut child, _) = start(&mapping, &out, &limits);
    stop(&mut child);
    let written = written_ids(&out);
    for id in &ids {
        assert_eq!(written.get(id), Some(&1), "{id}");
    }
    for id in &refused_ids {
        assert_eq!(written.get(id), None, "{id}");
    }
}

/// A sender that lost its answer sends the same batch again, as Segment's libraries do. The
/// crash that took the answer may have come after the batch was kept: the retry must not
/// write it a second time (`dedupe_window`, 24 hours by default, remembers the ids across
/// the restart). Deterministic first: a batch answered 200, `kill -9`, the same batch again.
/// Then under load, with senders that retry every batch until it is answered 200 across a
/// `kill -9` and a restart on the same port.
#[test]
fn retried_requests_are_written_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "m.yaml", MAPPING);
    let out = dir.path().join("out");
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let (mut child, addr) = start_on(&listen, &mapping, &out, &[]);
    let (first, first_ids) = batch(900, 0);
    assert_eq!(post_batch(&addr, &first), Some(200));
    kill9(&mut child);
    let (mut child, addr) = start_on(&listen, &mapping, &out, &[]);
    assert_eq!(
        post_batch(&addr, &first),
        Some(200),
        "a retry is answered 200"
    );

    // Under load: every batch is sent until it is answered 200.
    let stop_flag = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (stop_flag, acked, count, addr) = (
                stop_flag.clone(),
                acked.clone(),
                count.clone(),
                addr.clone(),
            );
            std::thread::spawn(move || {
                for n in 0.. {
                    let (body, ids) = batch(910 + s, n);
                    loop {
                        if stop_flag.load(Ordering::Relaxed) {
                            return;
                        }
                        if post_batch(&addr, &body) == Some(200) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    count.fetch_add(ids.len(), Ordering::Relaxed);
                    acked.lock().unwrap().extend(ids);
                }
            })
        })
        .collect();
    let at_least = |n: usize| {
        wait_for(
            Duration::from_secs(120),
            "too few events acknowledged",
            || (count.load(Ordering::Relaxed) >= n).then_some(()),
        )
    };
    at_least(5_000);
    kill9(&mut child);
    let acked_at_kill = count.load(Ordering::Relaxed);
    let (mut child, _) = start_on(&listen, &mapping, &out, &[]);
    at_least(acked_at_kill + 3_000);
    stop_flag.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    stop(&mut child);

    let written = written_ids(&out);
    let twice: Vec<_> = written.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "events written more than once: {twice:?}");
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    for id in first_ids.iter().chain(&acked) {
        assert_eq!(written.get(id), Some(&1), "{id}");
    }
}
