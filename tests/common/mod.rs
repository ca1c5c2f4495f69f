//! Helpers shared by the end-to-end tests: run the real binary, read what it wrote.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as J;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_s3actions"));
    c.current_dir(root());
    c.env_remove("S3ACTIONS_LOG");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run s3actions")
}

pub fn run_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn s3actions");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout then stderr: what a failed assertion on a run should show, since the binary
/// reports some problems on one and some on the other.
pub fn output_text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Asserts that the run exited with `code`, showing its stdout and stderr if not (a bare
/// `assert_eq!` on the status says nothing about why the binary failed).
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {}, expected {code}; output:\n{}",
        o.status,
        output_text(o)
    );
}

/// Asserts that the run succeeded (exit 0), showing its stdout and stderr if not.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert_exit(o, 0);
}

/// Where a replay wrote: a directory of its own (removed when the `Replayed` is dropped),
/// or one the test owns, e.g. to run twice into the same folder.
enum OutDir {
    Owned(tempfile::TempDir),
    Given(PathBuf),
}

/// A finished `s3actions replay ... --out DIR --json` run: its output, its summary and
/// every file it left in DIR. It keeps DIR alive, so tests can still look at (or write
/// into) it after the run.
pub struct Replayed {
    pub output: Output,
    /// Every file under the output directory once the run ended (see [`files`]).
    pub files: BTreeMap<String, Vec<u8>>,
    summary: Option<J>,
    out: OutDir,
}

impl Replayed {
    /// The `--json` summary the run printed; panics with the run's output if it printed
    /// none (e.g. it failed before running).
    #[track_caller]
    pub fn summary(&self) -> &J {
        self.summary.as_ref().unwrap_or_else(|| {
            panic!(
                "the run printed no JSON summary; output:\n{}",
                output_text(&self.output)
            )
        })
    }

    /// The output directory.
    pub fn out(&self) -> &Path {
        match &self.out {
            OutDir::Owned(d) => d.path(),
            OutDir::Given(p) => p,
        }
    }

    /// A written file as text (e.g. `_rejected.ndjson`); panics naming the files there are
    /// when it is missing.
    #[track_caller]
    pub fn text_file(&self, key: &str) -> &str {
        let bytes = self.files.get(key).unwrap_or_else(|| {
            panic!(
                "no {key} in the output; files: {:?}",
                self.files.keys().collect::<Vec<_>>()
            )
        });
        std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{key} is not UTF-8: {e}"))
    }
}

/// Runs `s3actions replay MAPPING INPUTS... --out <new temporary dir> --json EXTRA...`.
/// The exit status is not checked: call [`assert_ok`] or [`assert_exit`] on `.output`.
pub fn replay(mapping: &str, inputs: &[&str], extra: &[&str]) -> Replayed {
    replay_run(None, mapping, inputs, extra, None)
}

/// [`replay`] writing into `out` (which may hold earlier runs' files) instead of a new
/// directory.
pub fn replay_into(out: &Path, mapping: &str, inputs: &[&str], extra: &[&str]) -> Replayed {
    replay_run(Some(out), mapping, inputs, extra, None)
}

/// [`replay`] with `stdin` piped to the process (for the input `-`).
pub fn replay_stdin(mapping: &str, inputs: &[&str], extra: &[&str], stdin: &[u8]) -> Replayed {
    replay_run(None, mapping, inputs, extra, Some(stdin))
}

fn replay_run(
    out: Option<&Path>,
    mapping: &str,
    inputs: &[&str],
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> Replayed {
    let out = match out {
        Some(p) => OutDir::Given(p.to_path_buf()),
        None => OutDir::Owned(tempfile::tempdir().unwrap()),
    };
    let dir = match &out {
        OutDir::Owned(d) => d.path().to_path_buf(),
        OutDir::Given(p) => p.clone(),
    };
    let dir_arg = dir.to_str().unwrap();
    let mut args = vec!["replay", mapping];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["--out", dir_arg, "--json"]);
    args.extend_from_slice(extra);
    let output = match stdin {
        Some(bytes) => run_stdin(&args, bytes),
        None => run(&args),
    };
    let summary = serde_json::from_slice(&output.stdout).ok();
    Replayed {
        files: files(&dir),
        output,
        summary,
        out,
    }
}

/// Every file under `dir` (relative path → content), skipping nothing: tests check that no
/// temporary file is left behind.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The rows of every `.csv` file under `dir`, one table per file, in key order.
pub fn csv_tables(dir: &Path) -> Vec<Vec<Vec<String>>> {
    files(dir)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".csv"))
        .map(|(_, v)| read_csv(&v, b',').1)
        .collect()
}

/// Polls `f` every 50 ms until it gives a value, failing with `what` after `timeout`: for
/// things a running child process does in its own time (writing a file, exiting).
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parses a CSV file with the `csv` crate: (header, rows).
pub fn read_csv(content: &[u8], delimiter: u8) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(content);
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Writes a file under `dir` and returns its path as a string.
pub fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

/// Starts `serve` from `command` (which gives it `--listen 127.0.0.1:0`): reads stderr up
/// to the `listening on` line for the address, then keeps draining it on a thread so the
/// child never blocks on a full pipe.
pub fn spawn_serve(mut command: Command) -> (std::process::Child, String) {
    use std::io::{BufRead, Read};
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited before listening"
        );
        if let Some(a) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
        {
            break a.to_string();
        }
    };
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
    });
    (child, addr)
}

/// An RFC 3339 time (as `serve` writes `receivedAt` and `timestamp`) in Unix milliseconds.
#[track_caller]
pub fn millis(iso: &str) -> i64 {
    let t = time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{iso:?}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Sends SIGTERM, as a service manager stops `serve` (it writes every open batch first).
pub fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// Stops `serve` with SIGTERM and waits for it; returns what it printed.
pub fn stop_serve(child: std::process::Child) -> Output {
    sigterm(&child);
    child.wait_with_output().unwrap()
}
