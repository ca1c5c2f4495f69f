use super::*;
use crate::source::intake::{Intake, Received};

fn lines(n: usize, tag: &str) -> Received {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("{{\"type\":\"track\",\"event\":\"{tag}{i}\"}}\n"));
    }
    Received {
        lines: text.into_bytes(),
        ..Received::default()
    }
}

fn accept(intake: &SpoolIntake, r: Received) -> Result<(), IntakeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(intake.accept(r))
}

use crate::source::intake::IntakeError;

/// Reads every chunk until the spool is closed: (record_seq, lines).
fn drain(source: &mut SpoolSource) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    let mut seq = 0;
    while let Some(chunk) = source.next_chunk(seq, Vec::new()).unwrap() {
        seq += 1;
        let text = String::from_utf8(chunk.data).unwrap();
        out.push((
            chunk.record_seq.unwrap(),
            text.lines().map(str::to_string).collect(),
        ));
    }
    out
}

#[test]
fn accepted_events_are_read_back_numbered_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (intake, mut source) = open(dir.path(), &SpoolOptions::default()).unwrap();
    accept(&intake, lines(3, "a")).unwrap();
    accept(&intake, lines(2, "b")).unwrap();
    intake.close();
    let read = drain(&mut source);
    let all: Vec<String> = read.iter().flat_map(|(_, l)| l.clone()).collect();
    assert_eq!(all.len(), 5);
    assert_eq!(read[0].0, 0);
    assert!(all[3].contains("b0"));
    drop(source);
    drop(intake);
    // Nothing was acknowledged: a restart reads the same events with the same numbers,
    // and numbers new ones after them.
    std::thread::sleep(Duration::from_millis(50));
    let (intake, mut source) = open(dir.path(), &SpoolOptions::default()).unwrap();
    assert_eq!(source.recovered(), 5);
    accept(&intake, lines(1, "c")).unwrap();
    intake.close();
    let read = drain(&mut source);
    let all: Vec<String> = read.iter().flat_map(|(_, l)| l.clone()).collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all[5].contains("c0"));
    let last = read.last().unwrap();
    assert_eq!(last.0 + last.1.len() as u64, 6);
}

#[test]
fn a_second_process_cannot_use_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (_intake, _source) = open(dir.path(), &SpoolOptions::default()).unwrap();
    let e = open(dir.path(), &SpoolOptions::default()).err().unwrap();
    assert!(matches!(e, SpoolError::Locked { .. }), "{e}");
}

/// A spool of 4 KiB, the smallest `spool_max_bytes` allows.
fn tiny() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 4096,
        dedupe_window: None,
        ..SpoolOptions::default()
    }
}

#[test]
fn a_full_spool_refuses_and_says_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (intake, _source) = open(dir.path(), &tiny()).unwrap();
    accept(&intake, lines(10, "a")).unwrap();
    let mut refused = None;
    for _ in 0..100 {
        if let Err(e) = accept(&intake, lines(10, "b")) {
            refused = Some(e);
            break;
        }
    }
    match refused {
        Some(IntakeError::Full { retry_after, .. }) => assert!(retry_after.as_secs() >= 1),
        other => panic!("expected a full spool, got {other:?}"),
    }
    assert!(intake.ready().is_err());
}

/// A request larger than the whole spool is refused as too large (retrying cannot help),
/// not as "full, retry later", and nothing of it is written.
#[test]
fn a_request_larger_than_the_spool_is_too_large_not_full() {
    let dir = tempfile::tempdir().unwrap();
    let (intake, _source) = open(dir.path(), &tiny()).unwrap();
    match accept(&intake, lines(200, "big")) {
        Err(IntakeError::TooLarge { bytes, limit }) => {
            assert!(bytes > 4096, "{bytes}");
            assert_eq!(limit, 4096);
        }
        other => panic!("expected too large, got {other:?}"),
    }
    assert!(intake.ready().is_ok(), "a refused request takes no room");
    accept(&intake, lines(2, "small")).unwrap();
}

#[test]
fn acknowledged_segments_are_deleted_but_the_numbering_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (intake, mut source) = open(dir.path(), &SpoolOptions::default()).unwrap();
    accept(&intake, lines(4, "a")).unwrap();
    let chunk = source.next_chunk(0, Vec::new()).unwrap().unwrap();
    assert_eq!(chunk.record_seq, Some(0));
    // Roll by hand: the writer's segment is never deleted, a sealed one is.
    drop(intake);
    drop(source);
    std::thread::sleep(Duration::from_millis(50));
    let (intake, mut source) = open(dir.path(), &SpoolOptions::default()).unwrap();
    let segments = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    };
    assert_eq!(segments(), 2);
    let chunk = source.next_chunk(0, Vec::new()).unwrap().unwrap();
    assert_eq!(chunk.record_seq, Some(0));
    source.acknowledger().unwrap().durable_below(1);
    assert_eq!(segments(), 1);
    accept(&intake, lines(1, "b")).unwrap();
    let chunk = source.next_chunk(1, Vec::new()).unwrap().unwrap();
    assert_eq!(chunk.record_seq, Some(4));
}

fn with_ids(ids: &[&str]) -> Received {
    let mut r = Received::default();
    for id in ids {
        r.lines.extend_from_slice(
            format!("{{\"type\":\"track\",\"messageId\":\"{id}\"}}\n").as_bytes(),
        );
        r.message_ids.push((*id).into());
    }
    r
}

/// Reads what is there now (without waiting for more).
fn ids_read(source: &mut SpoolSource, seq: u64) -> Vec<String> {
    let chunk = source.next_chunk(seq, Vec::new()).unwrap().unwrap();
    String::from_utf8(chunk.data)
        .unwrap()
        .lines()
        .map(|l| l.split('"').nth(7).unwrap().to_string())
        .collect()
}

#[test]
fn duplicate_message_ids_are_dropped_within_the_window_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        dedupe_window: Some(Duration::from_secs(3600)),
        ..SpoolOptions::default()
    };
    let (intake, mut source) = open(dir.path(), &options).unwrap();
    accept(&intake, with_ids(&["a", "b", "a"])).unwrap();
    assert_eq!(ids_read(&mut source, 0), ["a", "b"]);
    // A retried request: only its new event is kept, and the answer is still 200.
    accept(&intake, with_ids(&["b", "c"])).unwrap();
    assert_eq!(ids_read(&mut source, 1), ["c"]);
    accept(&intake, with_ids(&["a"])).unwrap();
    drop((intake, source));
    std::thread::sleep(Duration::from_millis(50));

    // After a restart, the ids come back from the segments left.
    let (intake, mut source) = open(dir.path(), &options).unwrap();
    assert_eq!(ids_read(&mut source, 0), ["a", "b", "c"]);
    // Every event so far is acknowledged: the old segment goes, its ids to the ids file.
    source.acknowledger().unwrap().durable_below(1);
    accept(&intake, with_ids(&["c", "d"])).unwrap();
    assert_eq!(ids_read(&mut source, 1), ["d"]);
    drop((intake, source));
    std::thread::sleep(Duration::from_millis(50));
    let (intake, mut source) = open(dir.path(), &options).unwrap();
    assert_eq!(
        ids_read(&mut source, 0),
        ["d"],
        "the first segment was deleted"
    );
    accept(&intake, with_ids(&["a", "b", "e"])).unwrap();
    assert_eq!(ids_read(&mut source, 1), ["e"]);

    // Ids generated on arrival are never remembered: nobody can send them again.
    let mut generated = with_ids(&["api-1", "f"]);
    generated.generated = vec![true, false];
    accept(&intake, generated).unwrap();
    let mut again = with_ids(&["api-1", "f", "g"]);
    again.generated = vec![true, false, false];
    accept(&intake, again).unwrap();
    assert_eq!(ids_read(&mut source, 2), ["api-1", "f", "api-1", "g"]);

    // By default (24 hours), duplicates are dropped too; with the window off, nothing is.
    let plain = tempfile::tempdir().unwrap();
    let (intake, mut source) = open(plain.path(), &SpoolOptions::default()).unwrap();
    accept(&intake, with_ids(&["a", "a"])).unwrap();
    assert_eq!(ids_read(&mut source, 0), ["a"]);
    let off = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        dedupe_window: None,
        ..SpoolOptions::default()
    };
    let (intake, mut source) = open(off.path(), &options).unwrap();
    accept(&intake, with_ids(&["a", "a"])).unwrap();
    assert_eq!(ids_read(&mut source, 0), ["a", "a"]);
}
