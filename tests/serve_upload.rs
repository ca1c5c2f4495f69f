//! serve uploading through the role, killed with `kill -9` under load and started again:
//! every acknowledged event is in exactly one row of one object in S3. Against moto (run
//! with ./scripts/test.sh).

mod common;
mod s3;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use common::{read_csv, spawn_serve, wait_for};
use s3::*;

fn start(mapping: &str) -> (Child, String) {
    spawn_serve(s3actions_command(
        &["serve", mapping, "--listen", "127.0.0.1:0"],
        "ext-good",
    ))
}

fn post(addr: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.get(9..12)?.parse().ok()
}

#[test]
fn acknowledged_events_reach_s3_once_after_kill_9() {
    let s = Setup::new("servekill");
    let m = s.mapping("writer").write();
    let mut text = std::fs::read_to_string(&m).unwrap();
    text.push_str("    batch_size: 250\n    batch_max_age_seconds: 1\n");
    std::fs::write(&m, text).unwrap();

    let mut acked = Vec::new();
    let (mut child, addr) = start(&m);
    for n in 0..40 {
        let ids: Vec<String> = (0..100).map(|i| format!("b{n}-e{i}")).collect();
        let events: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"type":"track","event":"E","messageId":"{id}"}}"#))
            .collect();
        if post(&addr, &format!(r#"{{"batch":[{}]}}"#, events.join(","))) == Some(200) {
            acked.extend(ids);
        }
        if n == 25 {
            // Some batches are uploaded, some are in the outbox or still open.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 4000);

    let (mut child, _addr) = start(&m);
    std::thread::sleep(Duration::from_secs(2));
    common::sigterm(&child);
    let status = wait_for(Duration::from_secs(60), "serve did not stop", || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (key, body, _) in s.objects() {
        let (header, rows) = read_csv(&body, b',');
        let col = header
            .iter()
            .position(|h| h == "message_id")
            .unwrap_or_else(|| panic!("{key}: no message_id column in {header:?}"));
        for row in rows {
            *seen.entry(row[col].clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "in two rows: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in S3: {missing:?}"
    );
    assert!(
        s.outbox_files()
            .iter()
            .all(|p| p.extension().is_none_or(|e| e != "csv")),
        "everything uploaded: {:?}",
        s.outbox_files()
    );
}
