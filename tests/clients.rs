//! Segment's own client libraries sending to `serve`: analytics-python,
//! @segment/analytics-node, and Analytics.js (@segment/analytics-next) in Debian's Chromium,
//! pinned and installed by `scripts/clients.sh` (run by `scripts/test.sh`), post events the
//! way they post them to Segment (their batching, headers, Basic auth with the write key,
//! gzip bodies, their timestamps; the browser from another origin, through CORS), and every
//! event they sent is in the files once, with the fields they set. Without the libraries
//! these tests fail saying so; they never skip.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};

use common::*;

const KEY: &str = "wk_clients_test_42";
const EVENTS: usize = 503;

fn env_or_explain(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests send events with Segment's client libraries; run \
             ./scripts/test.sh, or `. scripts/clients.sh && clients_install` in this shell first"
        )
    })
}

const MAPPING: &str = r#"
mappings:
  - name: clients
    trigger: 'type = "track" or type = "identify" or type = "page" or type = "group" or type = "screen"'
    batch_size: 120
    columns:
      id: { "@path": "$.messageId" }
      type: { "@path": "$.type" }
      event: { "@path": "$.event" }
      name: { "@path": "$.name" }
      user: { "@path": "$.userId" }
      anon: { "@path": "$.anonymousId" }
      n: { "@path": "$.properties.n" }
      tn: { "@path": "$.traits.n" }
      note: { "@path": "$.properties.note" }
      email: { "@path": "$.traits.email" }
      group: { "@path": "$.groupId" }
      lib: { "@path": "$.context.library.name" }
      ts: { "@path": "$.timestamp" }
      orig: { "@path": "$.originalTimestamp" }
      received: { "@path": "$.receivedAt" }
"#;

/// A note with what CSV and JSON must carry through: quotes, a comma, a line break, UTF-8.
const NOTE: &str = "é \"quoted\", line\nbreak";

fn start(dir: &Path) -> (Child, String) {
    let mapping = write(dir, "m.yaml", MAPPING);
    let mut cmd = bin();
    cmd.args(["serve", &mapping, "--listen", "127.0.0.1:0", "--out"])
        .arg(dir.join("out"))
        .args(["--write-key-env", "CLIENTS_TEST_WRITE_KEY"])
        .env("CLIENTS_TEST_WRITE_KEY", KEY);
    spawn_serve(cmd)
}

/// Every row of the CSV files under `out`, by messageId (a repeated id fails).
fn rows_by_id(out: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut by_id = BTreeMap::new();
    for (key, content) in files(out) {
        if !key.ends_with(".csv") {
            continue;
        }
        let (header, rows) = read_csv(&content, b',');
        for row in rows {
            let cells: BTreeMap<String, String> = header.iter().cloned().zip(row).collect();
            let id = cells["id"].clone();
            assert!(
                by_id.insert(id.clone(), cells).is_none(),
                "{id} written twice"
            );
        }
    }
    by_id
}

/// What the senders were asked to send (`prefix-i`), checked against the rows.
fn check_rows(out: &Path, prefix: &str, library: &str, started_ms: i64) {
    let rows = rows_by_id(out);
    assert_eq!(rows.len(), EVENTS, "rows written");
    let ended_ms = now_ms() + 1000;
    for i in 0..EVENTS {
        let id = format!("{prefix}-{i}");
        let r = rows.get(&id).unwrap_or_else(|| panic!("{id} is missing"));
        let expected_type = ["track", "identify", "page", "group", "screen"][i % 5];
        assert_eq!(r["type"], expected_type, "{id}");
        assert_eq!(r["lib"], library, "{id}");
        match expected_type {
            "track" => {
                assert_eq!(r["event"], "Order Completed", "{id}");
                assert_eq!(r["user"], format!("u{i}"), "{id}");
                assert_eq!(r["n"], i.to_string(), "{id}");
                assert_eq!(r["note"], NOTE, "{id}");
            }
            "identify" => assert_eq!(r["email"], format!("u{i}@example.com"), "{id}"),
            "page" => {
                assert_eq!((&*r["name"], &*r["anon"]), ("Home", &*format!("a{i}")));
                assert_eq!(r["user"], "", "{id}");
            }
            "group" => assert_eq!(r["group"], "g1", "{id}"),
            _ => assert_eq!(r["name"], "Settings", "{id}"),
        }
        // The sender's clock is ours: the corrected timestamp lies within the run, in
        // Segment's form, and the sender's own value is kept beside it.
        let received = millis(&r["received"]);
        let ts = millis(&r["ts"]);
        assert!((started_ms..=ended_ms).contains(&received), "{id}: {r:?}");
        assert!((started_ms - 1000..=ended_ms).contains(&ts), "{id}: {r:?}");
        assert!(r["ts"].ends_with('Z') && r["ts"].len() == 24, "{id}: {r:?}");
        assert!(!r["orig"].is_empty(), "{id}: {r:?}");
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

const PYTHON_SENDER: &str = r#"
import sys
from segment.analytics import Client
key, host, n, gzip, note = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "gzip", sys.argv[5]
errors = []
c = Client(write_key=key, host=host, gzip=gzip, upload_size=50, max_retries=3,
           on_error=lambda e, batch: errors.append(repr(e)))
prefix = "pygz" if gzip else "py"
for i in range(n):
    mid = f"{prefix}-{i}"
    k = i % 5
    if k == 0:
        c.track(user_id=f"u{i}", event="Order Completed", properties={"n": i, "note": note}, message_id=mid)
    elif k == 1:
        c.identify(user_id=f"u{i}", traits={"email": f"u{i}@example.com"}, message_id=mid)
    elif k == 2:
        c.page(anonymous_id=f"a{i}", name="Home", properties={"n": i}, message_id=mid)
    elif k == 3:
        c.group(user_id=f"u{i}", group_id="g1", traits={"n": i}, message_id=mid)
    else:
        c.screen(user_id=f"u{i}", name="Settings", properties={"n": i}, message_id=mid)
c.shutdown()
if errors:
    sys.exit("errors: " + "; ".join(errors))
"#;

fn send_with_python(addr: &str, gzip: bool) {
    let o = Command::new(env_or_explain("S3ACTIONS_TEST_CLIENT_PYTHON"))
        .arg("-c")
        .arg(PYTHON_SENDER)
        .args([KEY, &format!("http://{addr}"), &EVENTS.to_string()])
        .arg(if gzip { "gzip" } else { "plain" })
        .arg(NOTE)
        .output()
        .expect("run analytics-python");
    assert!(o.status.success(), "analytics-python:\n{}", output_text(&o));
}

#[test]
fn analytics_python_events_are_all_written_once() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr) = start(dir.path());
        let started = now_ms();
        send_with_python(&addr, gzip);
        let o = stop_serve(child);
        assert_ok(&o);
        let prefix = if gzip { "pygz" } else { "py" };
        check_rows(&dir.path().join("out"), prefix, "analytics-python", started);
    }
}

/// A wrong write key is refused: the library reports the error (nothing is acknowledged
/// that was not taken).
#[test]
fn analytics_python_with_a_wrong_key_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start(dir.path());
    let o = Command::new(env_or_explain("S3ACTIONS_TEST_CLIENT_PYTHON"))
        .arg("-c")
        .arg(PYTHON_SENDER)
        .args(["not-the-key", &format!("http://{addr}"), "3", "plain", NOTE])
        .output()
        .expect("run analytics-python");
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(stderr(&o).contains("401"), "{}", output_text(&o));
    let o = stop_serve(child);
    assert_ok(&o);
    assert!(rows_by_id(&dir.path().join("out")).is_empty());
}

const NODE_SENDER: &str = r#"
const { Analytics } = require('@segment/analytics-node');
const [key, host, count, note] = process.argv.slice(1);
const n = Number(count);
const a = new Analytics({ writeKey: key, host, flushAt: 50, flushInterval: 100, maxRetries: 3 });
const errors = [];
a.on('error', (e) => errors.push(String((e && (e.reason || e.message)) || e)));
for (let i = 0; i < n; i++) {
  const messageId = `node-${i}`;
  switch (i % 5) {
    case 0: a.track({ userId: `u${i}`, event: 'Order Completed', properties: { n: i, note }, messageId }); break;
    case 1: a.identify({ userId: `u${i}`, traits: { email: `u${i}@example.com` }, messageId }); break;
    case 2: a.page({ anonymousId: `a${i}`, name: 'Home', properties: { n: i }, messageId }); break;
    case 3: a.group({ userId: `u${i}`, groupId: 'g1', traits: { n: i }, messageId }); break;
    default: a.screen({ userId: `u${i}`, name: 'Settings', properties: { n: i }, messageId });
  }
}
a.closeAndFlush({ timeout: 60000 }).then(() => {
  if (errors.length) { console.error('errors: ' + errors.join('; ')); process.exit(1); }
});
"#;

/// `node` with the npm client libraries on its path.
fn node() -> Command {
    let mut cmd = Command::new("node");
    cmd.env(
        "NODE_PATH",
        env_or_explain("S3ACTIONS_TEST_CLIENT_NODE_PATH"),
    );
    cmd
}

#[test]
fn analytics_node_events_are_all_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start(dir.path());
    let started = now_ms();
    let o = node()
        .arg("-e")
        .arg(NODE_SENDER)
        .args([KEY, &format!("http://{addr}"), &EVENTS.to_string(), NOTE])
        .output()
        .expect("run node");
    assert!(o.status.success(), "analytics-node:\n{}", output_text(&o));
    let o = stop_serve(child);
    assert_ok(&o);
    check_rows(
        &dir.path().join("out"),
        "node",
        "@segment/analytics-node",
        started,
    );
}

/// Analytics.js in a real browser, on a page of another origin, one request per event,
/// batched, and with its settings loaded from `serve` (`cdnURL`): every event is in the
/// files once, with the library's name and its fields.
#[test]
fn analytics_js_in_chromium_sends_across_origins() {
    const BROWSER_EVENTS: usize = 60;
    let sender = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser_sender.js");
    for mode in ["standard", "batching", "cdn"] {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr) = start(dir.path());
        let started = now_ms();
        let o = node()
            .arg(&sender)
            .args([
                &format!("http://{addr}"),
                KEY,
                &BROWSER_EVENTS.to_string(),
                mode,
            ])
            .arg(env_or_explain("S3ACTIONS_TEST_CHROMIUM"))
            .output()
            .expect("run node");
        assert!(
            o.status.success(),
            "Analytics.js ({mode}):\n{}",
            output_text(&o)
        );
        let o = stop_serve(child);
        assert_ok(&o);
        let rows = rows_by_id(&dir.path().join("out"));
        assert_eq!(rows.len(), BROWSER_EVENTS, "{mode}: rows written");
        let mut seen = [false; BROWSER_EVENTS];
        for (id, r) in &rows {
            assert!(id.starts_with("ajs-next-"), "{mode}: {id}");
            assert_eq!(r["lib"], "analytics.js", "{mode}: {r:?}");
            let n: usize = if r["n"].is_empty() { &r["tn"] } else { &r["n"] }
                .parse()
                .unwrap_or_else(|_| panic!("{mode}: no number in {r:?}"));
            assert!(!std::mem::replace(&mut seen[n], true), "{mode}: {n} twice");
            let expected = ["track", "identify", "page", "group", "screen"][n % 5];
            assert_eq!(r["type"], expected, "{mode}: {r:?}");
            match expected {
                "track" => {
                    assert_eq!(r["event"], "Order Completed", "{mode}: {r:?}");
                    assert_eq!(r["note"], "é \"quoted\", comma", "{mode}: {r:?}");
                }
                "identify" => {
                    assert_eq!(r["user"], format!("u{n}"), "{mode}: {r:?}");
                    assert_eq!(r["email"], format!("u{n}@example.com"), "{mode}: {r:?}");
                }
                "page" => assert_eq!(r["name"], "Home", "{mode}: {r:?}"),
                "group" => assert_eq!(r["group"], "g1", "{mode}: {r:?}"),
                _ => assert_eq!(r["name"], "Settings", "{mode}: {r:?}"),
            }
            assert!(!r["anon"].is_empty(), "{mode}: {r:?}");
            let received = millis(&r["received"]);
            assert!(
                received >= started && received <= now_ms() + 1000,
                "{mode}: {r:?}"
            );
        }
    }
}
