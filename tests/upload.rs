//! Uploading through an assumed role, against a real S3+STS server (moto) with
//! authentication, trust policies and permissions enforced. Run with ./scripts/test.sh.

mod common;
mod s3;

use std::io::{Read, Write};
use std::time::Duration;

use common::{assert_exit, assert_ok, output_text};
use s3::*;
use s3actions::mapping::Config;
use s3actions::sink::Sink;
use s3actions::sink::s3::{ClientOptions, S3Sink, UploadJob};

const FIXTURE: &str = "fixtures/events.ndjson";

fn config(path: &str) -> Config {
    Config::load(std::path::Path::new(path)).unwrap()
}

#[test]
fn upload_through_the_role() {
    let s = Setup::new("upload");
    let m = s.mapping("writer").write();
    let o = s3actions(&["replay", &m, FIXTURE, "--json"], "ext-good");
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 2);
    let objects = s.objects();
    assert_eq!(objects.len(), 2, "{objects:?}");
    for (key, body, ct) in &objects {
        assert!(
            key.starts_with(&format!("{}/track/", s.folder))
                || key.starts_with(&format!("{}/identify/", s.folder))
        );
        assert!(key.ends_with(".csv"));
        assert_eq!(ct.as_deref(), Some("text/csv"));
        assert!(body.starts_with(b"event_name,event_type,"));
    }
    let rows: usize = objects
        .iter()
        .map(|(_, b, _)| b.split(|&c| c == b'\n').count() - 1)
        .sum::<usize>();
    assert!(rows >= 250, "every row arrived");
    assert!(
        s.outbox_files().is_empty(),
        "uploaded files leave the outbox: {:?}",
        s.outbox_files()
    );
}

#[test]
fn wrong_external_id_keeps_files_in_the_outbox_until_flush() {
    let s = Setup::new("extid");
    let m = s.mapping("writer").write();
    let o = s3actions(&["replay", &m, FIXTURE], "not-the-external-id");
    assert_exit(&o, 1);
    let out = output_text(&o);
    assert!(
        out.contains("cannot assume role arn:aws:iam::123456789012:role/writer"),
        "{out}"
    );
    assert!(out.contains("external ID does not match"), "{out}");
    assert!(out.contains("waiting in"), "{out}");
    assert!(
        !out.contains("not-the-external-id"),
        "the external ID is never printed"
    );
    assert_eq!(
        s.outbox_files()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .count(),
        2
    );
    assert!(s.objects().is_empty());

    // Fix the external ID and flush: everything lands, nothing twice.
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    assert_eq!(s.objects().len(), 2);
    assert!(s.outbox_files().is_empty());
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    assert!(output_text(&o).contains("0 file(s) uploaded"));
    assert_eq!(s.objects().len(), 2);
}

#[test]
fn role_without_put_object_on_the_folder() {
    let moto = Moto::get();
    let s = Setup::new("denied");
    let m = s.mapping("limited").write();
    let o = s3actions(&["replay", &m, FIXTURE], "ext-good");
    assert_exit(&o, 1);
    let out = output_text(&o);
    assert!(
        out.contains(&format!("role arn:aws:iam::123456789012:role/limited is not allowed s3:PutObject on arn:aws:s3:::s3actions-test/{}/", s.folder)),
        "{out}"
    );
    assert!(
        out.contains("permissions policy of role arn:aws:iam::123456789012:role/limited"),
        "{out}"
    );

    // check: the same role may write under allowed/.
    let o = s3actions(&["check", &m], "ext-good");
    assert_exit(&o, 1);
    assert!(output_text(&o).contains("FAILED"));
    let allowed = unique("allowed/check");
    let m2 = s.mapping("limited").folder(&format!("{allowed}/")).write();
    let o = s3actions(&["check", &m2], "ext-good");
    assert_ok(&o);
    let objs = moto.objects(&allowed);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].0, format!("{allowed}/dummy-object.txt"));
}

#[test]
fn missing_bucket() {
    let s = Setup::new("nobucket");
    let m = s.mapping("writer").write();
    let text_yaml = std::fs::read_to_string(&m).unwrap().replace(
        "s3_aws_bucket_name: s3actions-test",
        "s3_aws_bucket_name: missing-bucket-zz",
    );
    std::fs::write(&m, text_yaml).unwrap();
    let o = s3actions(&["check", &m], "ext-good");
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("bucket \"missing-bucket-zz\" does not exist"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn check_reports_success_and_failure() {
    let s = Setup::new("check");
    let m = s.mapping("writer").flat().write();
    let o = s3actions(&["check", &m], "ext-good");
    assert_ok(&o);
    assert!(output_text(&o).contains(&format!(
        "ok: mapping \"m\": wrote s3://s3actions-test/{}/dummy-object.txt",
        s.folder
    )));
    let o = s3actions(&["check", &m], "bad-id");
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("cannot assume role"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn role_chaining_through_an_intermediate_role() {
    let moto = Moto::get();
    let s = Setup::new("chain");
    let (mid, _) = moto.role("intermediate");
    let extra = format!("  intermediate_role_arn: {mid}\n  intermediate_external_id: ext-mid\n");
    let m = s.mapping("chained").settings(&extra).write();
    let o = s3actions(&["replay", &m, FIXTURE], "ext-chain");
    assert_ok(&o);
    assert_eq!(s.objects().len(), 2);
}

#[test]
fn large_files_go_up_in_parts() {
    let moto = Moto::get();
    let s = Setup::new("multipart");
    let m = s
        .mapping("writer")
        .settings("  multipart_threshold_mb: 5\n  multipart_part_size_mb: 5\n")
        .write();
    // 12 MB in the outbox, flushed: three parts.
    let key = format!("{}/big.csv", s.folder);
    let line = "\"abcdefghijklmnopqrstuvwxyz0123456789\",\"0123456789\"\n";
    let content: String = line.repeat(12 * 1024 * 1024 / line.len());
    s.outbox_file(&key, &content);
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    let objs = s.objects();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].1.len(), content.len());
    assert!(objs[0].1 == content.as_bytes());
    let etag = block_on(
        moto.admin()
            .head_object()
            .bucket(moto.bucket())
            .key(&key)
            .send(),
    )
    .unwrap();
    assert!(etag.e_tag().unwrap().contains("-3"), "{:?}", etag.e_tag());
    assert_eq!(s.open_multipart_uploads(), 0);
}

#[test]
fn failed_multipart_uploads_are_aborted() {
    let moto = Moto::get();
    let proxy = Proxy::start(moto.endpoint());
    let s = Setup::new("abort");
    let m = s
        .mapping("writer")
        .endpoint(&proxy.url)
        .settings("  multipart_threshold_mb: 5\n  multipart_part_size_mb: 5\n")
        .write();
    let key = format!("{}/big.csv", s.folder);
    let path = s.outbox_file(&key, "x".repeat(11 * 1024 * 1024));
    proxy.inject("PUT", "partNumber=2", FaultKind::InternalError, 100);
    let o = s3actions(&["flush", &m], "ext-good");
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("still waiting"),
        "{}",
        output_text(&o)
    );
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("DELETE") && l.contains("uploadId=")),
        "AbortMultipartUpload was sent: {log:?}"
    );
    assert_eq!(
        s.open_multipart_uploads(),
        0,
        "no dangling multipart upload"
    );
    assert!(path.exists(), "the file stays in the outbox");
}

#[test]
fn throttling_server_errors_and_dropped_connections_are_retried() {
    let moto = Moto::get();
    let proxy = Proxy::start(moto.endpoint());
    let s = Setup::new("retry");
    let m = s.mapping("writer").endpoint(&proxy.url).flat().write();
    proxy.inject("PUT", &s.folder, FaultKind::SlowDown, 2);
    proxy.inject("PUT", &s.folder, FaultKind::InternalError, 1);
    proxy.inject("PUT", &s.folder, FaultKind::Drop, 1);
    let o = s3actions(&["replay", &m, FIXTURE, "-v"], "ext-good");
    assert_ok(&o);
    assert_eq!(s.objects().len(), 2);
    let puts = proxy
        .log()
        .iter()
        .filter(|l| l.starts_with("PUT") && l.contains(&s.folder))
        .count();
    assert!(
        puts >= 6,
        "4 failed attempts + 2 uploads: {:?}",
        proxy.log()
    );
    assert!(output_text(&o).contains("retrying"), "{}", output_text(&o));
}

#[test]
fn permission_errors_are_not_retried() {
    let moto = Moto::get();
    let proxy = Proxy::start(moto.endpoint());
    let s = Setup::new("noretry");
    let m = s.mapping("limited").endpoint(&proxy.url).flat().write();
    let o = s3actions(&["check", &m], "ext-good");
    assert_exit(&o, 1);
    let puts = proxy.log().iter().filter(|l| l.starts_with("PUT")).count();
    assert_eq!(puts, 1, "{:?}", proxy.log());
}

#[test]
fn credentials_are_refreshed_before_they_expire() {
    let s = Setup::new("refresh");
    // In process, so nothing comes from the environment (which other test threads read):
    // the external ID is in the file and the caller's keys are given to the client.
    let m = s.mapping("writer").flat().external_id("ext-good").write();
    let cfg = config(&m);
    // A refresh margin longer than the session: every use finds the credentials expiring.
    let opts = ClientOptions {
        refresh_margin: Duration::from_secs(4 * 3600),
        base_credentials: Some(caller_credentials()),
        ..ClientOptions::default()
    };
    let mut sink = S3Sink::new(&cfg.settings, &s.outbox(), &opts).unwrap();
    for i in 0..3 {
        let key = format!("{}/f{i}.csv", s.folder);
        let p = s.outbox_file(&key, format!("h\n\"{i}\""));
        let job = UploadJob {
            content_type: "text/csv",
            content_encoding: None,
            rows: 1,
            bytes: 5,
            mapping: "m".into(),
            event_type: "track".into(),
            first_seq: None,
            plain_sha256: None,
        };
        sink.enqueue(p, key, job);
        // Let each upload finish before the next, so each needs credentials anew.
        std::thread::sleep(Duration::from_millis(300));
    }
    let assumed_before = sink.role().unwrap().assume_count();
    let report = sink.finish().unwrap();
    assert_eq!(report.delivered.len(), 3, "{:?}", report.pending);
    assert!(
        assumed_before >= 3,
        "the role was assumed again as credentials neared expiry ({assumed_before})"
    );
}

#[test]
fn secrets_never_appear_in_output() {
    let moto = Moto::get();
    let s = Setup::new("secrets");
    let m = s.mapping("writer").write();
    let (_, secret) = moto.caller_keys();
    for ext in ["ext-good", "wrong-external-id-xyz"] {
        let mut cmd_out = s3actions(&["replay", &m, FIXTURE, "-vv"], ext);
        let all = output_text(&cmd_out);
        assert!(!all.contains(ext), "external ID printed");
        assert!(!all.contains(&secret), "secret key printed");
        cmd_out.stdout.clear();
    }
}

/// Finds what looks like an AWS access key ID (AKIA..., ASIA... and 16 more characters).
fn key_ids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    for i in 0..b.len().saturating_sub(20) {
        let starts = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if starts
            && (b[i..].starts_with(b"AKIA") || b[i..].starts_with(b"ASIA"))
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            found.push(text[i..i + 20].to_string());
        }
    }
    found
}

/// At `trace`, with the AWS SDK's own debug output (credentials, signed requests) in play,
/// no credential appears: not the caller's key ID or secret, not the external ID, not the
/// temporary key IDs STS hands out.
#[test]
fn no_credentials_at_trace_level() {
    let moto = Moto::get();
    let s = Setup::new("trace");
    let m = s.mapping("writer").write();
    let (key, secret) = moto.caller_keys();
    let run = |args: &[&str]| {
        let mut c = common::bin();
        c.args(args)
            .env("S3ACTIONS_LOG", "trace")
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("EXT", "ext-good")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/s3actions-test")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/s3actions-test")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_REGION");
        c.output().unwrap()
    };
    let check = |what: &str, all: &str| {
        assert!(all.contains("DEBUG"), "trace logging is on: {all}");
        assert!(
            !all.contains(&key),
            "{what}: the caller's key ID is printed"
        );
        assert!(!all.contains(&secret), "{what}: the secret key is printed");
        assert!(
            !all.contains("ext-good"),
            "{what}: the external ID is printed"
        );
        let ids = key_ids(all);
        assert!(ids.is_empty(), "{what}: key IDs printed: {ids:?}");
        for field in [
            "<SecretAccessKey>",
            "<SessionToken>",
            "x-amz-security-token: ",
        ] {
            assert!(!all.contains(field), "{what}: {field} printed");
        }
    };
    for args in [vec!["replay", &m, FIXTURE], vec!["check", &m]] {
        let o = run(&args);
        assert_ok(&o);
        check(&format!("{args:?}"), &output_text(&o));
    }
    // serve, uploading, with a write key: neither the AWS credentials nor the write key
    // (nor its Basic authentication form) are printed at trace.
    let logs = tempfile::tempdir().unwrap();
    let (out_log, err_log) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut c = s3actions_command(
        &[
            "serve",
            &m,
            "--listen",
            "127.0.0.1:0",
            "--write-key-env",
            "TEST_WRITE_KEY",
        ],
        "ext-good",
    );
    c.env("S3ACTIONS_LOG", "trace")
        .env("TEST_WRITE_KEY", "wk_trace_secret")
        .stdout(std::fs::File::create(&out_log).unwrap())
        .stderr(std::fs::File::create(&err_log).unwrap());
    let mut child = c.spawn().unwrap();
    let addr = common::wait_for(Duration::from_secs(60), "serve to listen", || {
        let text = std::fs::read_to_string(&err_log).ok()?;
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(str::to_string)
    });
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("wk_trace_secret:");
    let body = r#"{"type":"track","event":"E","userId":"u"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // SAFETY: signals our own child, which has not been reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let all =
        std::fs::read_to_string(&out_log).unwrap() + &std::fs::read_to_string(&err_log).unwrap();
    check("serve", &all);
    assert!(all.contains("Read 1 events"), "{all}");
    assert!(
        !all.contains("wk_trace_secret"),
        "serve: the write key is printed"
    );
    assert!(
        !all.contains(&auth),
        "serve: the write key's Basic form is printed"
    );
}

/// Encryption, storage class and tags from the settings reach the objects, whether they go
/// up in one PUT or in parts.
#[test]
fn object_options_apply_to_single_and_multipart_uploads() {
    let moto = Moto::get();
    let s = Setup::new("options");
    let m = s
        .mapping("writer")
        .settings("  server_side_encryption: AES256\n  storage_class: STANDARD_IA\n  tags:\n    team: data\n    source: s3 actions\n  multipart_threshold_mb: 5\n  multipart_part_size_mb: 5\n")
        .write();
    let small = format!("{}/small.csv", s.folder);
    let big = format!("{}/big.csv", s.folder);
    for (key, size) in [(&small, 100), (&big, 6 * 1024 * 1024)] {
        s.outbox_file(key, "x".repeat(size));
    }
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    let admin = moto.admin();
    for key in [&small, &big] {
        let head = block_on(admin.head_object().bucket(moto.bucket()).key(key).send()).unwrap();
        assert_eq!(
            head.server_side_encryption().map(|e| e.as_str()),
            Some("AES256"),
            "{key}"
        );
        assert_eq!(
            head.storage_class().map(|c| c.as_str()),
            Some("STANDARD_IA"),
            "{key}"
        );
        let tagging = block_on(
            admin
                .get_object_tagging()
                .bucket(moto.bucket())
                .key(key)
                .send(),
        )
        .unwrap();
        let mut tags: Vec<(String, String)> = tagging
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            vec![
                ("source".to_string(), "s3 actions".to_string()),
                ("team".to_string(), "data".to_string())
            ],
            "{key}"
        );
    }
}

/// `compression: gzip`: objects are `.csv.gz` with the CSV Content-Type and
/// `Content-Encoding: gzip`, whether uploaded by the run or later by `flush` (which reads
/// both from the file's name in the outbox).
#[test]
fn gzip_files_carry_their_content_encoding() {
    let s = Setup::new("gzip");
    let m = s.mapping("writer").write();
    let mut text = std::fs::read_to_string(&m).unwrap();
    text.push_str("    compression: gzip\n");
    std::fs::write(&m, text).unwrap();
    // Wrong external ID first: the files wait in the outbox, then `flush` sends them.
    let o = s3actions(&["replay", &m, FIXTURE, "--json"], "wrong-external-id");
    assert_exit(&o, 1);
    assert!(s.objects().is_empty());
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    let o = s3actions(&["replay", &m, FIXTURE, "--json"], "ext-good");
    assert_ok(&o);
    let objects = s.objects();
    assert_eq!(objects.len(), 4, "{objects:?}");
    for (key, body, ct) in &objects {
        assert!(key.ends_with(".csv.gz"), "{key}");
        assert_eq!(ct.as_deref(), Some("text/csv"), "{key}");
        assert_eq!(
            Moto::get().content_encoding(key).as_deref(),
            Some("gzip"),
            "{key}"
        );
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .unwrap();
        assert!(plain.starts_with(b"event_name,event_type,"), "{key}");
    }
}

/// New formats and layers keep their headers through the outbox (`flush` reads them from
/// the key), and a manifest goes up only after every file it lists: with a wrong external
/// ID everything waits, manifest included; `flush` uploads the files, then the manifest,
/// whose sizes and SHA-256 match the objects.
#[test]
fn formats_layers_and_manifests_upload_in_order() {
    use sha2::Digest;
    let s = Setup::new("manifest");
    let m = s.mapping("writer").write();
    let mut text = std::fs::read_to_string(&m).unwrap();
    text.push_str("    format: ndjson\n    compression: zstd\n    manifest: true\n");
    std::fs::write(&m, text).unwrap();
    let o = s3actions(&["replay", &m, FIXTURE, "--json"], "wrong-external-id");
    assert_exit(&o, 1);
    assert!(s.objects().is_empty());
    let waiting: Vec<String> = s
        .outbox_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        waiting.iter().any(|n| n.starts_with("manifest-m-")),
        "the manifest waits with its files: {waiting:?}"
    );
    let o = s3actions(&["flush", &m], "ext-good");
    assert_ok(&o);
    let objects = s.objects();
    assert_eq!(objects.len(), 3, "{objects:?}");
    let (manifest_key, manifest, ct) = objects
        .iter()
        .find(|(k, _, _)| k.contains("/manifest-m-"))
        .expect("the manifest was uploaded");
    assert_eq!(
        manifest_key.matches('/').count(),
        1,
        "at the folder's fixed prefix: {manifest_key}"
    );
    assert_eq!(ct.as_deref(), Some("application/json"));
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let results = manifest["exportResults"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{manifest}");
    for (key, body, ct) in objects.iter().filter(|(k, _, _)| k != manifest_key) {
        assert!(key.ends_with(".json.zst"), "{key}");
        assert_eq!(ct.as_deref(), Some("application/x-ndjson"), "{key}");
        assert_eq!(Moto::get().content_encoding(key), None, "{key}");
        let (folder, name) = key.rsplit_once('/').unwrap();
        let entry = results
            .iter()
            .find(|e| e["name"] == name && e["sinkPath"] == format!("/{folder}"))
            .unwrap_or_else(|| panic!("{key} not in {manifest}"));
        assert_eq!(entry["size"], body.len());
        let mut hex = String::new();
        for b in sha2::Sha256::digest(body) {
            hex.push_str(&format!("{b:02x}"));
        }
        assert_eq!(entry["sha256"], hex);
        let plain = zstd::decode_all(&body[..]).unwrap();
        assert!(plain.starts_with(b"{\"event_name\":"), "{key}");
    }
}
