//! `s3actions consume` against a real Kafka-protocol broker (tansu, started by
//! scripts/kafka.sh, which exports S3ACTIONS_TEST_KAFKA): consumer groups, exactly-once
//! files across kill -9 and restarts, rejects with topic, partition and offset.
//!
//! Every produced event has a `messageId` `p<partition>-<n>` (n growing within its
//! partition), so the tests can check that each one is in exactly one row of one file and
//! that every file's rows are in offset order.

mod common;
mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_exit, assert_ok, output_text};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

const MAPPING: &str = r#"
mappings:
  - name: tracks
    trigger: 'type = "track"'
    batch_size: 300
    batch_max_age_seconds: 2
    s3_aws_folder_name: "tracks/{{event}}"
    columns:
      id: { "@path": "$.messageId" }
      event: { "@path": "$.event" }
  - name: people
    trigger: 'type = "identify"'
    batch_size: 120
    s3_aws_folder_name: "people"
    columns:
      id: { "@path": "$.messageId" }
      plan: { "@path": "$.traits.plan" }
"#;

fn broker() -> String {
    std::env::var("S3ACTIONS_TEST_KAFKA").unwrap_or_else(|_| {
        panic!(
            "the consume tests need a Kafka broker: run ./scripts/test.sh (it builds and starts tansu), \
             or `. scripts/kafka.sh && kafka_start` and keep S3ACTIONS_TEST_KAFKA set"
        )
    })
}

/// A name no other test (or earlier run against the same broker) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e:?}"));
    }
}

/// The event of message `n` of a partition: mostly tracks of two names, some identifies.
fn event(partition: i32, n: usize) -> String {
    let id = format!("p{partition}-{n}");
    if n % 5 == 4 {
        format!(
            r#"{{"type":"identify","messageId":"{id}","userId":"u{n}","traits":{{"plan":"pro"}}}}"#
        )
    } else {
        let name = if n.is_multiple_of(2) {
            "Signed Up"
        } else {
            "Clicked"
        };
        format!(r#"{{"type":"track","event":"{name}","messageId":"{id}","userId":"u{n}"}}"#)
    }
}

/// Produces `values` to their partitions, with record times 10 ms apart (so that
/// `batch_max_age_seconds` windows fall in the log, not in how fast it was produced), and
/// waits until the broker's end offsets show them all (they lag behind acknowledgements).
fn produce(topic: &str, partitions: i32, values: &[(i32, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        // tansu 0.6.0 reports a partition's high watermark from the start of its last
        // record batch, so batches of several messages leave the end offsets behind the
        // log for good: one message per batch keeps them exact (real brokers need not).
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let base = 1_795_000_000_000i64;
    let mut counts = BTreeMap::new();
    for (i, (p, v)) in values.iter().enumerate() {
        let n = counts.entry(*p).or_insert(0i64);
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(*p)
            .payload(v.as_bytes())
            .timestamp(base + *n * 10);
        *n += 1;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => panic!("cannot produce message {i}: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("probe"))
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut total = 0i64;
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            total += high - low;
        }
        if total >= values.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker shows {total} of {} messages",
            values.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `n` events per partition, in partition order.
fn events(partitions: i32, n: usize) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        for p in 0..partitions {
            out.push((p, event(p, i)));
        }
    }
    out
}

fn write_mapping(dir: &Path) -> PathBuf {
    let path = dir.join("mapping.yaml");
    std::fs::write(&path, MAPPING).unwrap();
    path
}

fn consume(mapping: &Path, topic: &str, group: &str, out: &Path, stop_at_end: bool) -> Command {
    let mut c = common::bin();
    c.args(["consume"])
        .arg(mapping)
        .args(["--brokers", &broker(), "--topic", topic, "--group", group])
        .args(["-X", "session.timeout.ms=6000", "--json", "--threads", "2"])
        .arg("--out")
        .arg(out);
    if stop_at_end {
        c.arg("--stop-at-end");
    }
    c
}

fn spawn(mut c: Command, log: &Path) -> Child {
    let err = std::fs::File::create(log).unwrap();
    c.env("S3ACTIONS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn s3actions consume")
}

/// Waits for a child, failing (and killing it) after `limit`.
fn wait_ok(child: &mut Child, limit: Duration, log: &Path) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "consume exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "consume did not finish within {limit:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every CSV file under `out`: its key and its `id` column.
fn files(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // Nothing written yet (or a folder not yet there): no files.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".csv") {
                let mut reader = csv::Reader::from_path(&p).unwrap();
                let ids = reader
                    .records()
                    .map(|r| r.unwrap().get(0).unwrap().to_string())
                    .collect();
                let key = p.strip_prefix(out).unwrap().to_string_lossy().into_owned();
                found.insert(key, ids);
            }
        }
    }
    found
}

/// Asserts that every id of `expected` is in exactly one row, nothing else is there, and
/// each file's rows come from one partition in offset order.
#[track_caller]
fn assert_exactly_once(found: &BTreeMap<String, Vec<String>>, expected: &BTreeSet<String>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, ids) in found {
        let mut last: Option<(String, usize)> = None;
        for id in ids {
            if let Some(other) = seen.insert(id, key) {
                panic!("{id} is in {other} and in {key}");
            }
            let (p, n) = id.split_once('-').unwrap();
            let n: usize = n.parse().unwrap();
            if let Some((lp, ln)) = &last {
                assert_eq!(lp, p, "{key} mixes partitions");
                assert!(n > *ln, "{key}: {id} after {lp}-{ln}");
            }
            last = Some((p.to_string(), n));
        }
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events in no file, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(seen.len(), expected.len(), "rows that were never produced");
}

fn ids(values: &[(i32, String)]) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|(_, v)| serde_json::from_str::<serde_json::Value>(v).ok())
        .filter_map(|v| v["messageId"].as_str().map(str::to_string))
        .collect()
}

/// One instance, four partitions, `--stop-at-end`: every event in exactly one row, files
/// named from topic, partition and start offset, bad messages in the rejects file with
/// their topic, partition and offset. A second group over the same log rebuilds exactly
/// the same files: they are recognised, not duplicated.
#[test]
fn one_instance_reads_every_partition_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("events");
    create_topic(&topic, 4);
    let mut values = events(4, 700);
    values.insert(10, (1, "not json".to_string()));
    values.insert(20, (2, "42".to_string()));
    values.push((3, r#"{"batch":[{"type":"track","event":"Clicked","messageId":"p3-700"},{"type":"track","event":"Clicked","messageId":"p3-701"}]}"#.to_string()));
    produce(&topic, 4, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    let o = consume(&mapping, &topic, &group, &out, true)
        .output()
        .unwrap();
    // Two messages are not events: rejected, so the run ends with 1.
    assert_exit(&o, 1);
    let found = files(&out);
    let mut expected = ids(&values);
    expected.insert("p3-700".into());
    expected.insert("p3-701".into());
    assert_exactly_once(&found, &expected);
    for key in found.keys() {
        let (_, name) = key.rsplit_once('/').unwrap();
        assert!(name.starts_with(&format!("{topic}-")), "{key}");
    }
    let rejects = std::fs::read_to_string(out.join("_rejected.ndjson")).unwrap();
    let rejects: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    let inputs: BTreeSet<&str> = rejects
        .iter()
        .map(|r| r["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        BTreeSet::from([
            format!("kafka:{topic}/1").as_str(),
            format!("kafka:{topic}/2").as_str()
        ])
    );
    assert!(rejects.iter().all(|r| r["offset"].is_u64()), "{rejects:?}");

    // The same group again: everything is committed, nothing new.
    let o = consume(&mapping, &topic, &group, &out, true)
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(files(&out), found);

    // Another group over the same log into the same folder: the same windows, the same
    // keys, the same content, so nothing is written twice and nothing gets a -1 name.
    let o = consume(&mapping, &topic, &unique("g2"), &out, true)
        .output()
        .unwrap();
    assert_exit(&o, 1); // the same two rejects again
    assert_eq!(files(&out), found, "{}", output_text(&o));
}

/// Two instances in one group share the partitions; together they write every event once.
#[test]
fn two_instances_split_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("split");
    create_topic(&topic, 4);
    let values = events(4, 1500);
    produce(&topic, 4, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let mut a = spawn(consume(&mapping, &topic, &group, &out, true), &logs[0]);
    let mut b = spawn(consume(&mapping, &topic, &group, &out, true), &logs[1]);
    wait_ok(&mut a, Duration::from_secs(120), &logs[0]);
    wait_ok(&mut b, Duration::from_secs(120), &logs[1]);
    assert_exactly_once(&files(&out), &ids(&values));
}

/// kill -9 of an instance as soon as its first files appear (between writing files and
/// committing their offsets), then a restart of the group: every event exactly once, no
/// file written twice.
#[test]
fn kill_9_then_restart_writes_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("crash");
    create_topic(&topic, 4);
    let values = events(4, 2500);
    produce(&topic, 4, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    for round in 0..2 {
        let log = dir.path().join(format!("crash-{round}.log"));
        let mut victim = spawn(consume(&mapping, &topic, &group, &out, false), &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Round 0: right after the first file; round 1: once a few more are there.
        let want = files(&out).len() + 1 + round * 5;
        while files(&out).len() < want {
            assert!(
                Instant::now() < deadline,
                "no files:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                victim.try_wait().unwrap().is_none(),
                "consume exited:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
    }
    // The group again, alone (tansu hands a killed member's partitions only to a group
    // that starts again: see the README).
    let log = dir.path().join("restart.log");
    let mut again = spawn(consume(&mapping, &topic, &group, &out, true), &log);
    wait_ok(&mut again, Duration::from_secs(180), &log);
    assert_exactly_once(&files(&out), &ids(&values));
    // The runs after a kill rebuilt files the killed run had written but not committed.
    let later: String = ["crash-1.log", "restart.log"]
        .iter()
        .map(|l| std::fs::read_to_string(dir.path().join(l)).unwrap())
        .collect();
    assert!(
        later.contains("already there with the same content"),
        "the runs after a kill should have found files of the killed runs:\n{later}"
    );
}

/// A filename template that differs each time a batch is named cannot be used: a batch
/// rebuilt after a crash would get another key.
#[test]
fn uuid_in_a_filename_template_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.yaml");
    std::fs::write(
        &mapping,
        "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    filename_template: \"{{uuid}}.csv\"\n",
    )
    .unwrap();
    let o = common::bin()
        .args(["consume"])
        .arg(&mapping)
        .args([
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "t",
            "--group",
            "g",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(
        text.contains("mapping \"m\": filename_template uses {{uuid}}"),
        "{text}"
    );
}

/// A librdkafka setting that is refused is named, its value (maybe a password) is not.
#[test]
fn a_refused_setting_is_named_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let o = common::bin()
        .args(["consume"])
        .arg(&mapping)
        .args(["--brokers", "127.0.0.1:1", "--topic", "t", "--group", "g"])
        .args([
            "-X",
            "sasl.password=hunter2",
            "-X",
            "session.timeout.ms=hunter3",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("librdkafka setting \"session.timeout.ms\" is not accepted"),
        "{text}"
    );
    assert!(!text.contains("hunter"), "{text}");
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on loopback: the status code and the body (0 when nothing answers).
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Waits until `check` holds, failing with the log after `limit`.
fn wait_for(limit: Duration, log: &Path, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--metrics-listen`: `/health`, `/ready` once in the group, `/metrics` with consumer lag,
/// commits and rebalances; SIGTERM stops the instance gracefully (exit 0, closed files
/// written and committed), and the group finishes the rest exactly once.
#[test]
fn probes_metrics_and_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("probes");
    create_topic(&topic, 2);
    let values = events(2, 1000);
    produce(&topic, 2, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    let port = free_port();
    let log = dir.path().join("probes.log");
    let mut c = consume(&mapping, &topic, &group, &out, false);
    c.args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .args(["-X", "statistics.interval.ms=200"]);
    let mut child = spawn(c, &log);
    wait_for(
        Duration::from_secs(60),
        &log,
        "/ready did not answer 200",
        || get(port, "/ready").0 == 200,
    );
    assert_eq!(get(port, "/health"), (200, "ok\n".to_string()));
    // Everything but each partition's last (still open) window is committed.
    wait_for(Duration::from_secs(60), &log, "no commits", || {
        let (_, m) = get(port, "/metrics");
        m.lines().any(|l| {
            l.starts_with("s3actions_kafka_commits_total")
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        })
    });
    wait_for(
        Duration::from_secs(30),
        &log,
        "no consumer lag gauge",
        || {
            get(port, "/metrics").1.contains(&format!(
                "s3actions_kafka_consumer_lag{{topic=\"{topic}\",partition=\"0\"}}"
            ))
        },
    );
    let (_, m) = get(port, "/metrics");
    assert!(
        m.contains("s3actions_kafka_rebalances_total{kind=\"assign\"}"),
        "{m}"
    );
    assert!(m.contains("s3actions_rows_written_total"), "{m}");
    assert_eq!(get(port, "/nope").0, 404);
    let before = files(&out);
    assert!(!before.is_empty());
    sigterm(&child);
    wait_ok(&mut child, Duration::from_secs(60), &log);
    // The stopped instance wrote what it had closed, each event at most once; the group
    // started again finishes the rest.
    let again = dir.path().join("again.log");
    let mut rest = spawn(consume(&mapping, &topic, &group, &out, true), &again);
    wait_ok(&mut rest, Duration::from_secs(120), &again);
    assert_exactly_once(&files(&out), &ids(&values));
}

/// A graceful rebalance while windows are open: a second member joins a group that is
/// already consuming, then the first leaves (SIGTERM). The partitions move between them,
/// open windows are dropped and rebuilt by the new owner, and every event is in exactly
/// one row in the end.
#[test]
fn members_join_and_leave_while_consuming() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("rebalance");
    create_topic(&topic, 4);
    let values = events(4, 3000);
    produce(&topic, 4, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn(consume(&mapping, &topic, &group, &out, false), &log_a);
    wait_for(
        Duration::from_secs(60),
        &log_a,
        "no files from the first member",
        || !files(&out).is_empty(),
    );
    // B joins while A consumes: the group rebalances and B gets partitions.
    let mut b = spawn(consume(&mapping, &topic, &group, &out, true), &log_b);
    wait_for(
        Duration::from_secs(60),
        &log_b,
        "the second member got no partition",
        || {
            std::fs::read_to_string(&log_b)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("partitions assigned") && l.contains(&topic))
        },
    );
    let revoked = || {
        std::fs::read_to_string(&log_a)
            .unwrap_or_default()
            .contains("partitions revoked")
    };
    wait_for(
        Duration::from_secs(60),
        &log_a,
        "the first member gave up nothing",
        revoked,
    );
    // A leaves gracefully: B takes every partition and, with --stop-at-end, finishes.
    sigterm(&a);
    wait_ok(&mut a, Duration::from_secs(60), &log_a);
    wait_ok(&mut b, Duration::from_secs(180), &log_b);
    assert_exactly_once(&files(&out), &ids(&values));
}

/// kill -9 of one of two members mid-run; the other is stopped gracefully, then the group
/// is started again with two members (tansu cannot hand a killed member's partitions to
/// the survivors: see the README). Every event exactly once.
#[test]
fn kill_9_of_one_member_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_mapping(dir.path());
    let topic = unique("crash2");
    create_topic(&topic, 4);
    let values = events(4, 2500);
    produce(&topic, 4, &values);
    let out = dir.path().join("out");
    let group = unique("g");
    let logs: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("m{i}.log")))
        .collect();
    let mut a = spawn(consume(&mapping, &topic, &group, &out, false), &logs[0]);
    let mut b = spawn(consume(&mapping, &topic, &group, &out, false), &logs[1]);
    wait_for(Duration::from_secs(60), &logs[0], "too few files", || {
        files(&out).len() >= 6
    });
    a.kill().unwrap(); // SIGKILL, between files and commits as it happens
    a.wait().unwrap();
    sigterm(&b);
    wait_ok(&mut b, Duration::from_secs(60), &logs[1]);
    let mut c = spawn(consume(&mapping, &topic, &group, &out, true), &logs[2]);
    let mut d = spawn(consume(&mapping, &topic, &group, &out, true), &logs[3]);
    wait_ok(&mut c, Duration::from_secs(180), &logs[2]);
    wait_ok(&mut d, Duration::from_secs(180), &logs[3]);
    assert_exactly_once(&files(&out), &ids(&values));
}

/// An OpenPGP public key made by gpg in a throwaway home under `dir`.
fn pgp_public_key(dir: &Path) -> PathBuf {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg (scripts/readers.sh installs it)");
        assert!(o.status.success(), "gpg {args:?}: {}", output_text(&o));
        o.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "kafka@example.com",
        "rsa2048",
        "encr",
        "never",
    ]);
    let key = dir.join("public.asc");
    std::fs::write(&key, gpg(&["--armor", "--export", "kafka@example.com"])).unwrap();
    key
}

/// PGP-encrypted files differ byte for byte each time they are written, yet a window
/// rebuilt by another group is recognised as delivered by its plain content's SHA-256:
/// under `--out` (recorded in `.s3actions-sums/`) and in the bucket (the object's
/// `s3actions-sha256` metadata), so nothing is written twice and no `-1` key appears.
#[test]
fn encrypted_files_are_recognised_by_their_plain_content() {
    let dir = tempfile::tempdir().unwrap();
    let key = pgp_public_key(dir.path());
    let moto = s3::Moto::get();
    let (writer, _) = moto.role("writer");
    let prefix = unique("pgp");
    let mapping = dir.path().join("pgp.yaml");
    std::fs::write(
        &mapping,
        format!(
            "settings:\n  s3_aws_bucket_name: {bucket}\n  s3_aws_region: us-east-1\n  endpoint_url: {endpoint}\n  iam_role_arn: {writer}\n  iam_external_id: ${{EXT}}\n  outbox_dir: {outbox}\nmappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    batch_size: 150\n    s3_aws_folder_name: {prefix}\n    encryption:\n      pgp_public_key_file: {key}\n    columns:\n      id: {{ \"@path\": \"$.messageId\" }}\n",
            bucket = moto.bucket(),
            endpoint = moto.endpoint(),
            outbox = dir.path().join("outbox").display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let topic = unique("pgp");
    create_topic(&topic, 2);
    let values = events(2, 400);
    produce(&topic, 2, &values);
    let run = |group: &str, out: Option<&Path>| {
        let mut args = vec![
            "consume".to_string(),
            mapping.display().to_string(),
            "--brokers".into(),
            broker(),
            "--topic".into(),
            topic.clone(),
            "--group".into(),
            group.to_string(),
            "--stop-at-end".into(),
        ];
        if let Some(out) = out {
            args.extend(["--out".into(), out.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = s3::s3actions_command(&args, "ext-good")
            .env("S3ACTIONS_LOG", "info")
            .output()
            .unwrap();
        assert_ok(&o);
        output_text(&o)
    };
    let snapshot = |out: &Path| -> BTreeMap<String, Vec<u8>> {
        common::files(out)
            .into_iter()
            .filter(|(k, _)| k.ends_with(".gpg") && !k.starts_with('.'))
            .collect()
    };
    // Under --out: the second group rebuilds every window, finds each file by its sum.
    let out = dir.path().join("out");
    run(&unique("g"), Some(&out));
    let first = snapshot(&out);
    assert!(first.len() >= 4, "{:?}", first.keys());
    let text = run(&unique("g"), Some(&out));
    assert_eq!(snapshot(&out), first, "files were rewritten or added");
    assert!(
        text.contains("already there with the same content"),
        "{text}"
    );
    // In the bucket: the same, by the objects' metadata.
    run(&unique("g"), None);
    let uploaded: Vec<String> = moto
        .objects(&prefix)
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    let local: Vec<String> = first.keys().cloned().collect();
    assert_eq!(uploaded, local);
    let text = run(&unique("g"), None);
    let again: Vec<String> = moto
        .objects(&prefix)
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(again, uploaded, "an object was uploaded twice:\n{text}");
    assert!(
        text.contains("identical object already in the bucket"),
        "{text}"
    );
    let head = s3::block_on(
        moto.admin()
            .head_object()
            .bucket(moto.bucket())
            .key(&uploaded[0])
            .send(),
    )
    .unwrap();
    let sum = head
        .metadata()
        .and_then(|m| m.get("s3actions-sha256"))
        .cloned();
    assert!(sum.is_some_and(|s| s.len() == 64), "{head:?}");
}

/// `batch_interval` cuts files on event times, which windows of a Kafka partition cannot
/// follow: refused under consume, with the mapping named.
#[test]
fn batch_interval_is_refused_under_consume() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.yaml");
    std::fs::write(
        &mapping,
        "mappings:\n  - name: hourly\n    trigger: 'type = \"track\"'\n    batch_interval: 1h\n",
    )
    .unwrap();
    let o = common::bin()
        .arg("consume")
        .arg(&mapping)
        .args([
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "t",
            "--group",
            "g",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o)
            .contains("mapping \"hourly\": batch_interval is not available under consume"),
        "{}",
        output_text(&o)
    );
}
