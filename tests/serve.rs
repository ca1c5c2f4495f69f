//! `s3actions serve`: live events over HTTP, through the same pipeline, written on age and
//! on shutdown.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{assert_exit, bin, csv_tables, wait_for, write};

/// One HTTP/1.1 request; returns (status, body).
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    post_with(addr, path, body, "")
}

/// The same with extra header lines (each ending in `\r\n`).
fn post_with(addr: &str, path: &str, body: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn start(mapping: &str, out: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = bin()
        .args(["serve", mapping, "--listen", "127.0.0.1:0", "--out"])
        .arg(out)
        .args(extra)
        .env("TEST_WRITE_KEY", "wk_secret_123")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
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
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
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
    let mapping = write(dir.path(), "m.yaml", "mappings:\n  - name: m\n");
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
    let (status, stdout, stderr) = stop(child);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("Read 1 events"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("wk_secret_123"), "{text}");
        assert!(!text.contains("d2tfc2VjcmV0XzEyMzo"), "{text}");
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
