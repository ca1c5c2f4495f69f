//! The shipped audience and Reverse ETL mappings, replayed over their fixtures, every row
//! checked against an independent reading of the events.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value as J;
use sha2::{Digest, Sha256};

fn events(path: &str) -> Vec<J> {
    std::fs::read_to_string(root().join(path))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The transform the mappings ask for, computed independently.
fn hashed(email: &str) -> String {
    let t = email.trim();
    if t.is_empty() {
        return String::new();
    }
    if email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()) {
        return email.to_string();
    }
    Sha256::digest(t.to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replays a shipped mapping over its fixture, which must succeed.
fn replay_ok(mapping: &str, fixture: &str) -> Replayed {
    let r = replay(mapping, &[fixture], &["-q"]);
    assert_ok(&r.output);
    r
}

#[test]
fn audience_membership_rows() {
    let r = replay_ok("mappings/audiences.yaml", "fixtures/audiences.ndjson");
    let mut rows: HashMap<String, (String, Vec<String>)> = HashMap::new();
    let mut per_folder: HashMap<String, usize> = HashMap::new();
    for (key, content) in &r.files {
        let (header, parsed) = read_csv(content, b',');
        assert_eq!(
            header,
            [
                "audience_key",
                "audience_id",
                "user_id",
                "anonymous_id",
                "message_id",
                "email_sha256",
                "timestamp",
                "in_audience"
            ]
        );
        let folder = key.rsplit_once('/').unwrap().0.to_string();
        assert!(key.rsplit('/').next().unwrap().starts_with("members_"));
        for r in parsed {
            *per_folder.entry(folder.clone()).or_default() += 1;
            rows.insert(r[4].clone(), (folder.clone(), r));
        }
    }
    let mut expected_folders: HashMap<String, usize> = HashMap::new();
    let mut checked = 0;
    for e in events("fixtures/audiences.ndjson") {
        let key = e["context"]["personas"]["computation_key"].as_str();
        let is_membership = matches!(
            e["event"].as_str(),
            Some("Audience Entered" | "Audience Exited")
        ) || (e["type"] == "identify" && key.is_some());
        let id = e["messageId"].as_str().unwrap();
        if !is_membership {
            assert!(!rows.contains_key(id), "{id} is not an audience event");
            continue;
        }
        let key = key.unwrap();
        let (folder, row) = &rows[id];
        assert_eq!(
            folder,
            &format!("audiences/{key}"),
            "one folder per audience"
        );
        *expected_folders.entry(folder.clone()).or_default() += 1;
        assert_eq!(row[0], key);
        // Entered/exited: properties[key] for track events, traits[key] for identify calls.
        let source = if e.get("properties").is_some() {
            &e["properties"]
        } else {
            &e["traits"]
        };
        let member = source[key].as_bool().unwrap();
        assert_eq!(row[7], member.to_string(), "{id}");
        if e["event"] == "Audience Entered" {
            assert_eq!(row[7], "true");
        }
        if e["event"] == "Audience Exited" {
            assert_eq!(row[7], "false");
        }
        let email = e["properties"]["email"]
            .as_str()
            .or(e["traits"]["email"].as_str())
            .or(e["context"]["traits"]["email"].as_str())
            .unwrap_or("");
        assert_eq!(row[5], hashed(email), "{id}: {email:?}");
        checked += 1;
    }
    assert_eq!(
        checked,
        rows.len(),
        "every row comes from an audience event"
    );
    assert_eq!(per_folder, expected_folders);
    assert!(expected_folders.len() >= 5, "several audiences");

    // Known digests.
    assert_eq!(
        rows["aud-edge-3"].1[5],
        "7a126a993c9ece5663288f1e48a453a6b4b12656af38d84103cb6beb8a5862b9"
    );
    assert_eq!(
        rows["aud-edge-1"].1[5], "A552F92CEC517D42D66471E033158C672445D078D54A1D4211791471BCB2148F",
        "an existing digest is not hashed again"
    );
    assert_eq!(rows["aud-edge-2"].1[5], "", "no email stays empty");
    assert_eq!(rows["aud-edge-4"].1[5], "", "a blank email stays empty");
    assert_eq!(rows["aud-edge-2"].1[7], "false");
    assert_eq!(rows["aud-edge-3"].1[7], "true");
}

#[test]
fn reverse_etl_rows() {
    let r = replay_ok("mappings/reverse-etl.yaml", "fixtures/reverse-etl.ndjson");
    // Rows per (model, kind), in file order (one file per partition at this size).
    let mut written: HashMap<(String, String), Vec<Vec<String>>> = HashMap::new();
    for (key, content) in &r.files {
        let (header, parsed) = read_csv(content, b',');
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "reverse-etl");
        let kind = parts[2];
        assert!(
            parts[4].starts_with(&format!("{kind}_")) && parts[4].ends_with(".csv"),
            "{key}"
        );
        match kind {
            "upserts" => assert_eq!(
                header,
                [
                    "id",
                    "email",
                    "email_sha256",
                    "plan",
                    "lifetime_value",
                    "updated_at",
                    "operation",
                    "batch_size"
                ]
            ),
            "deletes" => assert_eq!(header, ["id", "deleted_at", "batch_size"]),
            other => panic!("unexpected folder {other}"),
        }
        let n = parsed.len().to_string();
        assert!(
            parsed.iter().all(|r| r.last().unwrap() == &n),
            "batch_size column"
        );
        written
            .entry((parts[1].to_string(), kind.to_string()))
            .or_default()
            .extend(parsed);
    }
    let mut expected: HashMap<(String, String), Vec<J>> = HashMap::new();
    for e in events("fixtures/reverse-etl.ndjson") {
        let model = e["context"]["warehouse"]["model_id"]
            .as_str()
            .unwrap()
            .to_string();
        let kind = if e["event"] == "deleted" {
            "deletes"
        } else {
            "upserts"
        };
        expected
            .entry((model, kind.to_string()))
            .or_default()
            .push(e);
    }
    assert_eq!(
        written.keys().collect::<std::collections::BTreeSet<_>>(),
        expected.keys().collect::<std::collections::BTreeSet<_>>()
    );
    for (part, evs) in &expected {
        let rows = &written[part];
        assert_eq!(rows.len(), evs.len(), "{part:?}");
        for (r, e) in rows.iter().zip(evs) {
            let p = &e["properties"];
            assert_eq!(r[0], p["id"].as_str().unwrap());
            if part.1 == "deletes" {
                assert_eq!(r[1], e["timestamp"].as_str().unwrap_or(""));
                continue;
            }
            let email = p["email"].as_str().unwrap_or("");
            assert_eq!(r[1], email);
            assert_eq!(r[2], hashed(email));
            assert_eq!(r[3], p["plan"].as_str().unwrap_or(""));
            assert_eq!(
                r[4].parse::<f64>().unwrap(),
                p["lifetime_value"].as_f64().unwrap()
            );
            assert_eq!(r[5], p["updated_at"].as_str().unwrap());
            assert_eq!(r[6], e["event"].as_str().unwrap());
        }
    }
    // Values written the JavaScript way, quotes doubled, nulls empty.
    let accounts = &written[&("mdl_accounts".to_string(), "upserts".to_string())];
    assert_eq!(accounts[0][0], "acct, \"quoted\"");
    assert_eq!(accounts[0][4], "12.5");
    assert_eq!(accounts[0][1], "");
    let customers = &written[&("mdl_customers".to_string(), "upserts".to_string())];
    let ken = customers
        .iter()
        .find(|r| r[1] == "  KEN.4638@Example.COM ")
        .unwrap();
    assert_eq!(
        ken[2],
        "2bb128ab0367b37520859456624a1080cc50ec51b756f6a096a4efc4e22fbc5b"
    );
}

#[test]
fn shipped_mappings_validate() {
    for m in [
        "mappings/events.yaml",
        "mappings/audiences.yaml",
        "mappings/reverse-etl.yaml",
    ] {
        let o = run(&["validate", m]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{m}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}
