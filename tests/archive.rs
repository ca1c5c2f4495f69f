//! Replaying from an S3 archive (`replay MAPPING.yaml s3://bucket/prefix/`) against a real
//! S3+STS server (moto, started by scripts/test.sh) with authentication enforced: objects
//! are read through an assumed role, and what a replay from S3 writes is byte-identical to
//! a replay of the same files from disk.

mod common;
mod s3;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use common::{assert_exit, assert_ok, files, output_text};
use s3::*;

/// Segment's received-day folders (UTC midnight in Unix milliseconds) of 2026-11-01..03.
const DAY1: &str = "1793491200000";
const DAY2: &str = "1793577600000";
const DAY3: &str = "1793664000000";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Lines `from..to` of a fixture, as NDJSON text.
fn lines(fixture: &str, from: usize, to: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(common::root().join(fixture)).unwrap();
    let mut out = String::new();
    for l in text.lines().skip(from).take(to - from) {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

/// One test's archive: a folder of its own in the archive bucket, laid out as Segment's
/// classic destinations write (`segment-logs/{source-id}/{received-day}/...`), and the same
/// objects as local files in key order.
struct Archive {
    setup: Setup,
    /// `segment-logs/` of this test, with its trailing slash.
    root: String,
    /// (key under `root`, content), in key order.
    objects: Vec<(String, Vec<u8>)>,
}

impl Archive {
    fn new(test: &str) -> Archive {
        let setup = Setup::new(test);
        let root = format!("{}/segment-logs/", setup.folder);
        let objects = vec![
            (
                format!("src1/{DAY1}/1793491201000.a.gz"),
                gzip(&lines("fixtures/events.ndjson", 0, 120)),
            ),
            (
                // A plain object, no extension: gzip is recognised by its bytes, not its name.
                format!("src1/{DAY1}/1793491202000.b"),
                lines("fixtures/events.ndjson", 120, 200),
            ),
            (
                format!("src1/{DAY2}/1793577601000.c.gz"),
                gzip(
                    &[
                        lines("fixtures/events.ndjson", 200, 303),
                        lines("fixtures/bad-input.ndjson", 0, 100),
                    ]
                    .concat(),
                ),
            ),
            (
                format!("src1/{DAY3}/1793664001000.d.gz"),
                gzip(&lines("fixtures/events.ndjson", 0, 50)),
            ),
        ];
        let archive = Archive {
            setup,
            root,
            objects,
        };
        block_on(async {
            let admin = Moto::get().admin();
            for (key, body) in &archive.objects {
                admin
                    .put_object()
                    .bucket(archive.bucket())
                    .key(format!("{}{key}", archive.root))
                    .body(body.clone().into())
                    .send()
                    .await
                    .unwrap();
            }
        });
        archive
    }

    fn bucket(&self) -> &str {
        Moto::get().env["archive_bucket"].as_str().unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("s3://{}/{}{path}", self.bucket(), self.root)
    }

    /// Writes the objects whose keys start with one of `days` as local files (in key
    /// order, with the extension their key has); returns their paths.
    fn local_files(&self, days: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (key, body)) in self.objects.iter().enumerate() {
            if !days.iter().any(|d| key.contains(d)) {
                continue;
            }
            let ext = if key.ends_with(".gz") { ".gz" } else { "" };
            let p = self.setup.dir.path().join(format!("local-{i}{ext}"));
            std::fs::write(&p, body).unwrap();
            out.push(p.to_string_lossy().into_owned());
        }
        out
    }

    /// The mapping file: uploads (unused with --out) through the writer role, the archive
    /// through its own role in `archive:` (or, with `archive_block` false, the settings'
    /// own role is the reader's). Files are named by part so runs can be compared.
    fn mapping(&self, endpoint: Option<&str>, archive_block: bool) -> String {
        let moto = Moto::get();
        let endpoint = endpoint.unwrap_or(moto.endpoint());
        let (writer, _) = moto.role("writer");
        let (reader, reader_ext) = moto.role("archive-reader");
        let roles = if archive_block {
            format!(
                "  iam_role_arn: {writer}\n  iam_external_id: ${{EXT}}\n  archive:\n    iam_role_arn: {reader}\n    iam_external_id: {reader_ext}\n    download_concurrency: 2\n"
            )
        } else {
            format!("  iam_role_arn: {reader}\n  iam_external_id: {reader_ext}\n")
        };
        let text = format!(
            "settings:\n  s3_aws_bucket_name: {bucket}\n  s3_aws_region: us-east-1\n  endpoint_url: {endpoint}\n  max_retries: 3\n{roles}mappings:\n  - name: m\n    batch_size: 70\n    s3_aws_folder_name: \"{{{{type}}}}/\"\n    filename_template: \"part-{{{{part}}}}.{{{{extension}}}}\"\n",
            bucket = moto.bucket(),
        );
        let p = self.setup.dir.path().join("archive.yaml");
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// `replay MAPPING INPUTS... --out OUT EXTRA...` with the test caller's keys (and the
/// writer's external ID as $EXT).
fn replay(mapping: &str, inputs: &[String], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["replay", mapping];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    s3actions(&args, "ext-good")
}

/// The files a run wrote, with the rejects file's input names changed from local paths to
/// the objects' URLs (everything else must be identical).
fn written(out: &Path, names: &[(String, String)]) -> BTreeMap<String, Vec<u8>> {
    let mut f = files(out);
    if let Some(r) = f.get_mut("_rejected.ndjson") {
        let mut text = String::from_utf8(r.clone()).unwrap();
        for (local, url) in names {
            text = text.replace(
                &format!("\"input\":\"{local}\""),
                &format!("\"input\":\"{url}\""),
            );
        }
        *r = text.into_bytes();
    }
    f
}

#[test]
fn replay_from_s3_is_byte_identical_to_replay_from_disk() {
    let a = Archive::new("archive-same");
    let m = a.mapping(None, true);
    let tmp = tempfile::tempdir().unwrap();

    let from_s3 = replay(&m, &[a.url("")], &tmp.path().join("s3"), &[]);
    // The bad-input lines make the run exit 1 (rejects), both ways.
    assert_exit(&from_s3, 1);
    let local = a.local_files(&[DAY1, DAY2, DAY3]);
    let from_disk = replay(&m, &local, &tmp.path().join("disk"), &[]);
    assert_exit(&from_disk, 1);

    let names: Vec<(String, String)> = local
        .iter()
        .zip(&a.objects)
        .map(|(l, (k, _))| (l.clone(), format!("s3://{}/{}{k}", a.bucket(), a.root)))
        .collect();
    let s3_files = written(&tmp.path().join("s3"), &[]);
    let disk_files = written(&tmp.path().join("disk"), &names);
    assert!(
        s3_files.keys().filter(|k| k.ends_with(".csv")).count() >= 5,
        "{:?}",
        s3_files.keys()
    );
    assert_eq!(
        s3_files.keys().collect::<Vec<_>>(),
        disk_files.keys().collect::<Vec<_>>()
    );
    for (key, body) in &s3_files {
        assert!(
            disk_files[key] == *body,
            "{key} differs between the S3 and the disk replay"
        );
    }
    // Rejects name the object and the line within it.
    let rejects = std::str::from_utf8(&s3_files["_rejected.ndjson"]).unwrap();
    let c = format!(
        "s3://{}/{}src1/{DAY2}/1793577601000.c.gz",
        a.bucket(),
        a.root
    );
    assert!(
        rejects.contains(&format!("{{\"input\":\"{c}\",\"line\":107,")),
        "{rejects}"
    );
    let out = output_text(&from_s3);
    assert!(out.contains("rejected"), "{out}");
}

#[test]
fn since_and_until_select_received_days_without_listing_other_days() {
    let a = Archive::new("archive-days");
    let proxy = Proxy::start(Moto::get().endpoint());
    let m = a.mapping(Some(&proxy.url), false);
    let tmp = tempfile::tempdir().unwrap();
    // The bucket root of the test: the day folders are found two levels down.
    let top = format!("s3://{}/{}/", a.bucket(), a.setup.folder);
    let o = replay(
        &m,
        &[top],
        &tmp.path().join("s3"),
        &["--since", "2026-11-01", "--until", "2026-11-01"],
    );
    assert_ok(&o);
    let local = a.local_files(&[DAY1]);
    let d = replay(&m, &local, &tmp.path().join("disk"), &[]);
    assert_ok(&d);
    assert_eq!(
        files(&tmp.path().join("s3")),
        files(&tmp.path().join("disk"))
    );

    let log = proxy.log();
    let lists: Vec<&String> = log.iter().filter(|l| l.contains("list-type=2")).collect();
    assert!(!lists.is_empty(), "{log:?}");
    for l in &lists {
        // Only folder listings (delimiter) above the days, and day 1's objects: the other
        // days' objects are never listed.
        assert!(
            l.contains("delimiter=%2F") || l.contains(DAY1),
            "listed more than needed: {l}\n{log:?}"
        );
        assert!(!l.contains(DAY2) && !l.contains(DAY3), "{l}");
    }
    let gets: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET") && !l.contains("list-type"))
        .collect();
    assert_eq!(gets.len(), 2, "only day 1's two objects are read: {log:?}");

    // Days that select nothing: a clear error naming the prefix.
    let o = replay(
        &m,
        &[a.url("")],
        &tmp.path().join("none"),
        &["--since", "2030-01-01"],
    );
    assert_exit(&o, 1);
    let out = output_text(&o);
    assert!(out.contains(&format!("cannot read {}", a.url(""))), "{out}");
    assert!(
        out.contains("no objects in the received-day folders"),
        "{out}"
    );
}

#[test]
fn one_object_and_a_missing_object() {
    let a = Archive::new("archive-one");
    let m = a.mapping(None, true);
    let tmp = tempfile::tempdir().unwrap();
    let one = a.url(&a.objects[1].0);
    let o = replay(&m, std::slice::from_ref(&one), &tmp.path().join("one"), &[]);
    assert_ok(&o);
    let d = replay(
        &m,
        &a.local_files(&["1793491202000.b"]),
        &tmp.path().join("disk"),
        &[],
    );
    assert_ok(&d);
    assert_eq!(
        files(&tmp.path().join("one")),
        files(&tmp.path().join("disk"))
    );

    // A missing object after a good one: the good one is written, the error names the key.
    let missing = a.url("src1/nope.gz");
    let o = replay(
        &m,
        &[one, missing.clone()],
        &tmp.path().join("missing"),
        &[],
    );
    assert_exit(&o, 1);
    let out = output_text(&o);
    assert!(out.contains(&format!("cannot read {missing}")), "{out}");
    assert!(out.contains("no object"), "{out}");
    assert_eq!(
        out.matches("no object").count(),
        1,
        "the cause is said once: {out}"
    );
    assert!(
        out.contains("every event of s3://"),
        "what was read is reported: {out}"
    );
    assert!(
        files(&tmp.path().join("missing"))
            .keys()
            .any(|k| k.ends_with(".csv")),
        "the events before the missing object are written"
    );

    // A prefix without a trailing slash is one object, and the message says how to read a prefix.
    let o = replay(&m, &[a.url("src1")], &tmp.path().join("noslash"), &[]);
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("ends with /"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn failed_requests_and_broken_bodies_are_retried() {
    let a = Archive::new("archive-retry");
    let proxy = Proxy::start(Moto::get().endpoint());
    let m = a.mapping(Some(&proxy.url), true);
    let tmp = tempfile::tempdir().unwrap();
    // Each object's first GET fails (500, then 503); the second object's body breaks off
    // after 1000 bytes, and the download resumes there.
    proxy.inject("GET", ".a.gz", FaultKind::InternalError, 1);
    proxy.inject("GET", ".b", FaultKind::SlowDown, 1);
    proxy.inject("GET", ".b", FaultKind::CutBody(1000), 1);
    proxy.inject("GET", "list-type=2", FaultKind::InternalError, 1);
    let o = replay(
        &m,
        &[a.url(&format!("src1/{DAY1}/"))],
        &tmp.path().join("s3"),
        &[],
    );
    assert_ok(&o);
    let d = replay(&m, &a.local_files(&[DAY1]), &tmp.path().join("disk"), &[]);
    assert_ok(&d);
    assert_eq!(
        files(&tmp.path().join("s3")),
        files(&tmp.path().join("disk"))
    );
    let log = proxy.log();
    let b: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains(".b"))
        .collect();
    assert_eq!(
        b.len(),
        3,
        "503, a body cut off, then the rest of the body: {log:?}"
    );
    assert!(b[1].ends_with("CutBody(1000)"), "{log:?}");
}

#[test]
fn a_role_that_may_not_list_the_archive() {
    let a = Archive::new("archive-denied");
    let moto = Moto::get();
    let (limited, ext) = moto.role("limited");
    let text = format!(
        "settings:\n  s3_aws_region: us-east-1\n  endpoint_url: {}\n  max_retries: 1\n  iam_role_arn: {limited}\n  iam_external_id: {ext}\nmappings:\n  - name: m\n",
        moto.endpoint()
    );
    let m = common::write(a.setup.dir.path(), "limited.yaml", &text);
    let tmp = tempfile::tempdir().unwrap();
    let o = replay(&m, &[a.url("")], tmp.path(), &[]);
    assert_exit(&o, 1);
    let out = output_text(&o);
    assert!(out.contains(&format!("cannot read {}", a.url(""))), "{out}");
    assert!(
        out.contains(&format!(
            "role {limited} is not allowed s3:ListBucket on arn:aws:s3:::{}",
            a.bucket()
        )),
        "{out}"
    );
    assert!(!out.contains(&ext), "the external ID is never printed");
}

#[test]
fn usage_errors() {
    let a = Archive::new("archive-usage");
    let m = a.mapping(None, true);
    let tmp = tempfile::tempdir().unwrap();
    let o = replay(
        &m,
        &[a.url(""), "fixtures/events.ndjson".into()],
        tmp.path(),
        &[],
    );
    assert_exit(&o, 2);
    assert!(output_text(&o).contains("cannot be mixed"));
    let o = replay(
        &m,
        &["fixtures/events.ndjson".into()],
        tmp.path(),
        &["--since", "2026-11-01"],
    );
    assert_exit(&o, 2);
    let o = replay(&m, &[a.url("")], tmp.path(), &["--since", "1 Nov"]);
    assert_exit(&o, 2);
    assert!(output_text(&o).contains("is not a UTC date (YYYY-MM-DD)"));
    let o = replay(
        &m,
        &[a.url(&a.objects[0].0)],
        tmp.path(),
        &["--until", "2026-11-01"],
    );
    assert_exit(&o, 2);
    assert!(output_text(&o).contains("names one object"));
    let o = replay(&m, &["s3://Not_A_Bucket/x/".into()], tmp.path(), &[]);
    assert_exit(&o, 2);
}
