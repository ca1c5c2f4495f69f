//! Hostile and careless input (issue 19): every case ends in bounded time and memory with
//! a clear error, never a crash. Each input is built here by code; each run is measured
//! (wall time, the child's own peak RSS from `wait4`) and killed if it overruns.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, root, write};

/// What a measured run did.
struct Measured {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    peak_rss_mb: f64,
}

impl Measured {
    fn text(&self) -> String {
        format!(
            "exit {:?} signal {:?} in {:?}, {:.0} MB\nstdout:\n{}\nstderr:\n{}",
            self.code, self.signal, self.elapsed, self.peak_rss_mb, self.stdout, self.stderr
        )
    }

    /// Exits with `code`, within `secs` seconds and `mb` MB of peak RSS.
    #[track_caller]
    fn assert_bounded(&self, code: i32, secs: u64, mb: f64) {
        assert_eq!(self.code, Some(code), "{}", self.text());
        assert!(
            self.elapsed < Duration::from_secs(secs),
            "took too long: {}",
            self.text()
        );
        assert!(
            self.peak_rss_mb < mb,
            "used too much memory: {}",
            self.text()
        );
    }
}

/// Runs the command, killing it after `limit`; reaps it with `wait4` for its own peak RSS.
fn measure(mut cmd: Command, limit: Duration) -> Measured {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn s3actions");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while started.elapsed() < limit {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !done.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: kill only sends a signal to the child we started (not yet reaped).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let elapsed = started.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child);
    watchdog.join().unwrap();
    let exited = libc::WIFEXITED(status);
    Measured {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        elapsed,
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

fn s3actions(args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args);
    c
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A mapping file with one mapping whose column `a` is `column` (YAML flow text).
fn mapping_with(trigger: &str, column: &str) -> String {
    format!("mappings:\n  - name: m\n    trigger: '{trigger}'\n    columns:\n      a: {column}\n")
}

const EVENTS: &str = "fixtures/events.ndjson";

/// A mapping file of `n` mappings of track events, each into its own folder `f<i>/`, with
/// `extra` (YAML lines at mapping level) added to each.
fn track_mappings(n: usize, extra: &str) -> String {
    let mut doc = String::from("mappings:\n");
    for i in 0..n {
        doc.push_str(&format!(
            "  - name: m{i}\n    trigger: 'type = \"track\"'\n    s3_aws_folder_name: \"f{i}/\"\n{extra}"
        ));
    }
    doc
}

/// Starts `cmd` with an open-file limit of `soft` (and `hard`, or the hard limit as it is).
fn limit_open_files(cmd: &mut Command, soft: libc::rlim_t, hard: Option<libc::rlim_t>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only getrlimit and setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_max = hard.unwrap_or(lim.rlim_max);
            lim.rlim_cur = soft.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
}

#[test]
fn yaml_alias_bomb_is_refused_quickly() {
    let dir = tmp();
    let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    doc.push_str("mappings: *a9\n");
    assert!(doc.len() < 600);
    let m = write(dir.path(), "bomb.yaml", &doc);
    let r = measure(s3actions(&["validate", &m]), Duration::from_secs(30));
    r.assert_bounded(2, 5, 500.0);
    assert!(
        r.stderr
            .contains("holds more than 1000000 values once its aliases are expanded"),
        "{}",
        r.text()
    );
    assert!(r.stderr.contains("bomb.yaml:"), "{}", r.text());
}

#[test]
fn deeply_nested_triggers_and_directives_are_errors_not_crashes() {
    let dir = tmp();
    let trigger = format!(
        "{}type = \"track\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let m = write(
        dir.path(),
        "parens.yaml",
        &mapping_with(&trigger, "{\"@path\": \"$.event\"}"),
    );
    let r = measure(s3actions(&["validate", &m]), Duration::from_secs(30));
    r.assert_bounded(2, 5, 500.0);
    assert!(
        r.stderr
            .contains("parentheses are nested more than 100 levels deep"),
        "{}",
        r.text()
    );
    assert!(r.stderr.contains("parens.yaml:3:"), "{}", r.text());

    let ifs = format!(
        "{}\"x\"{}",
        "{\"@if\": {\"exists\": {\"@path\": \"$.event\"}, \"then\": ".repeat(5_000),
        "}}".repeat(5_000)
    );
    let m = write(
        dir.path(),
        "ifs.yaml",
        &mapping_with("type = \"track\"", &ifs),
    );
    let r = measure(s3actions(&["validate", &m]), Duration::from_secs(30));
    r.assert_bounded(2, 5, 500.0);
    assert!(
        r.stderr.contains("nested more than 128 levels deep")
            || r.stderr.contains("recursion limit exceeded"),
        "{}",
        r.text()
    );

    // Up to the limit, nesting works end to end, on a worker thread's stack.
    let ifs = format!(
        "{}\"x\"{}",
        "{\"@if\": {\"exists\": {\"@path\": \"$.event\"}, \"then\": ".repeat(50),
        "}}".repeat(50)
    );
    let m = write(
        dir.path(),
        "ok.yaml",
        &mapping_with("type = \"track\"", &ifs),
    );
    let out = dir.path().join("out");
    let r = measure(
        s3actions(&["replay", &m, EVENTS, "--out", path(&out), "--json"]),
        Duration::from_secs(60),
    );
    assert!(r.code == Some(0) || r.code == Some(1), "{}", r.text());
    assert!(r.stdout.contains("\"rows\""), "{}", r.text());
}

/// Random byte mutations of a real mapping file: each is valid or refused with exit 2.
#[test]
fn mutated_mapping_files_never_crash() {
    let dir = tmp();
    let base = std::fs::read(root().join("mappings/events.yaml")).unwrap();
    let alphabet = b"{}[]()&*!|>-:'\"@%$\\\n #,?";
    let mut rng = fastrand::Rng::with_seed(1919);
    for i in 0..150 {
        let mut bytes = base.clone();
        for _ in 0..rng.usize(1..8) {
            let at = rng.usize(..bytes.len());
            match rng.u8(..4) {
                0 => bytes[at] = alphabet[rng.usize(..alphabet.len())],
                1 => bytes.insert(at, alphabet[rng.usize(..alphabet.len())]),
                2 => {
                    bytes.remove(at);
                }
                _ => {
                    let len = rng.usize(1..40).min(bytes.len() - at);
                    let piece = bytes[at..at + len].to_vec();
                    for _ in 0..rng.usize(1..50) {
                        bytes.splice(at..at, piece.iter().copied());
                    }
                }
            }
        }
        let p = dir.path().join(format!("m{i}.yaml"));
        std::fs::write(&p, &bytes).unwrap();
        let r = measure(s3actions(&["validate", path(&p)]), Duration::from_secs(30));
        assert!(
            r.code == Some(0) || r.code == Some(2),
            "mutation {i}: {}\n{}",
            r.text(),
            String::from_utf8_lossy(&bytes)
        );
        assert!(r.elapsed < Duration::from_secs(5), "{}", r.text());
    }
}

#[test]
fn liquid_capture_with_non_ascii_text_is_an_error() {
    let dir = tmp();
    let m = write(
        dir.path(),
        "liquid.yaml",
        &mapping_with("type = \"track\"", "{\"@liquid\": \"{% capture é\"}"),
    );
    let r = measure(s3actions(&["validate", &m]), Duration::from_secs(30));
    r.assert_bounded(2, 5, 500.0);
    assert!(
        r.stderr.contains("liquid.yaml:5:") && r.stderr.contains("not closed"),
        "{}",
        r.text()
    );
}

/// A template Segment refuses (it passes liquidjs's memory limit) rejects each event with
/// the reason; the run ends quickly and small.
#[test]
fn runaway_liquid_rejects_each_event() {
    let dir = tmp();
    let template = format!(
        "{{% assign s = event %}}{}{{{{ s | size }}}}",
        "{% assign s = s | append: s %}".repeat(30)
    );
    assert!(template.len() <= 1000);
    let m = write(
        dir.path(),
        "liquid.yaml",
        &mapping_with(
            "type = \"track\"",
            &format!("{{\"@liquid\": \"{template}\"}}"),
        ),
    );
    let events = write(
        dir.path(),
        "events.ndjson",
        &"{\"type\":\"track\",\"event\":\"0123456789\"}\n".repeat(4),
    );
    let out = dir.path().join("out");
    let r = measure(
        s3actions(&["replay", &m, &events, "--out", path(&out), "--json"]),
        Duration::from_secs(60),
    );
    r.assert_bounded(1, 10, 500.0);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["failed_rows"].as_u64(), Some(4), "{}", r.text());
    let rejects = std::fs::read_to_string(out.join("_rejected.ndjson")).unwrap();
    let first = rejects.lines().next().unwrap();
    assert!(
        first.contains("memory alloc limit exceeded")
            || first.contains("template render limit exceeded"),
        "{first}"
    );
}

#[test]
fn a_missing_input_in_the_middle_stops_before_anything_is_written() {
    let dir = tmp();
    let out = dir.path().join("out");
    let missing = dir.path().join("nope.ndjson");
    let r = measure(
        s3actions(&[
            "replay",
            "mappings/events.yaml",
            EVENTS,
            path(&missing),
            EVENTS,
            "--out",
            path(&out),
        ]),
        Duration::from_secs(30),
    );
    r.assert_bounded(2, 5, 500.0);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: cannot read {}: No such file or directory (os error 2)",
            missing.display()
        ),
        "{}",
        r.text()
    );
    assert!(!out.exists(), "nothing may be written: {}", r.text());

    // With --json, stdout still has one object saying why.
    let r = measure(
        s3actions(&[
            "replay",
            "mappings/events.yaml",
            EVENTS,
            path(&missing),
            "--out",
            path(&out),
            "--json",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("nope.ndjson: No such file"),
        "{v}"
    );
}

/// A full disk (the rejects file on /dev/full) fails the run: the cause is printed once,
/// and `--json` still prints an object with the error and what was reached.
#[test]
fn a_failed_run_reports_its_cause_once_and_json_on_stdout() {
    if !Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full (Linux)");
    }
    let dir = tmp();
    let input = write(
        dir.path(),
        "bad.ndjson",
        "{\"type\":\"track\",\"event\":\"a\"}\nnot json\n",
    );
    let out = dir.path().join("out");
    let r = measure(
        s3actions(&[
            "replay",
            "mappings/events.yaml",
            &input,
            "--out",
            path(&out),
            "--rejects",
            "/dev/full",
            "--json",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(1), "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}): {}", r.text());
    });
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{v}");
    assert_eq!(error.matches("No space left on device").count(), 1, "{v}");
    assert!(v.get("inputs_done").is_some(), "{v}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{}", r.text()));
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
}

/// Many mappings (issue 19's case: 1,000 mappings over 585 track events, 450 MB of rows):
/// write buffers come from a shared budget, chunks shrink with the number of mappings so a
/// chunk's rows stay small, and the open-file limit is raised, so the run stays under
/// 250 MB with 1,000 open batches under a soft limit of 512 files.
#[test]
fn many_mappings_run_in_bounded_memory_and_files() {
    let dir = tmp();
    let m = write(dir.path(), "many.yaml", &track_mappings(1_000, ""));
    let fixture = std::fs::read_to_string(root().join(EVENTS)).unwrap();
    let tracks: Vec<&str> = fixture
        .lines()
        .filter(|l| l.contains("\"type\":\"track\""))
        .cycle()
        .take(585)
        .collect();
    let events = write(dir.path(), "events.ndjson", &(tracks.join("\n") + "\n"));
    let out = dir.path().join("out");
    let mut cmd = s3actions(&[
        "replay",
        &m,
        &events,
        "--out",
        path(&out),
        "--json",
        "--threads",
        "2",
    ]);
    limit_open_files(&mut cmd, 512, None);
    let r = measure(cmd, Duration::from_secs(300));
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.peak_rss_mb < 250.0, "{}", r.text());
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 1_000, "{}", r.text());
    assert!(files.iter().all(|f| f["rows"] == 585), "{}", r.text());
}

/// More open batches than the cap on open batch files (a quarter of the open-file limit):
/// the least recently written files are closed and reopened when their next rows come, and
/// the files are byte-identical to a run that keeps every file open.
#[test]
fn batches_beyond_the_open_file_cap_are_closed_and_reopened() {
    let dir = tmp();
    let doc = track_mappings(
        300,
        "    filename_template: \"{{mapping}}-{{part}}.csv\"\n    columns:\n      e: { \"@path\": \"$.event\" }\n      m: { \"@path\": \"$.messageId\" }\n",
    );
    let m = write(dir.path(), "many.yaml", &doc);
    // About 3 MB in many chunks (300 mappings: 14 KiB each), so every partition gets rows
    // again and again after its file was closed.
    let fixture = std::fs::read_to_string(root().join(EVENTS)).unwrap();
    let events = write(dir.path(), "events.ndjson", &fixture.repeat(14));
    let run = |out: &Path, nofile: Option<libc::rlim_t>| {
        let mut cmd = s3actions(&["replay", &m, &events, "--out", path(out), "--threads", "2"]);
        if let Some(n) = nofile {
            limit_open_files(&mut cmd, n, Some(n));
        }
        measure(cmd, Duration::from_secs(300))
    };
    // A hard limit of 256 open files: at most 64 batch files are open at once.
    let capped = dir.path().join("capped");
    let r = run(&capped, Some(256));
    assert_eq!(r.code, Some(0), "{}", r.text());
    let open = dir.path().join("open");
    let r = run(&open, None);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let tracks = fixture
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "track")
        .count();
    let (a, b) = (common::files(&capped), common::files(&open));
    assert_eq!(a.len(), 300);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs");
        assert_eq!(common::read_csv(v, b',').1.len(), 14 * tracks, "{k}");
    }
}

/// A mapping file or PGP key file that never ends (`/dev/zero`, a log passed by mistake) is
/// read only up to its limit, then refused with the reason.
#[test]
fn endless_mapping_and_key_files_are_refused() {
    let r = measure(
        s3actions(&["validate", "/dev/zero"]),
        Duration::from_secs(30),
    );
    r.assert_bounded(2, 5, 100.0);
    assert!(
        r.stderr.contains("/dev/zero") && r.stderr.contains("larger than 16 MiB"),
        "{}",
        r.text()
    );
    let dir = tmp();
    let m = write(
        dir.path(),
        "m.yaml",
        "mappings:\n  - name: m\n    encryption:\n      pgp_public_key_file: /dev/zero\n",
    );
    let r = measure(s3actions(&["validate", &m]), Duration::from_secs(30));
    r.assert_bounded(2, 5, 100.0);
    assert!(r.stderr.contains("larger than 1 MiB"), "{}", r.text());
    assert!(r.stderr.contains("pgp_public_key_file"), "{}", r.text());
}
