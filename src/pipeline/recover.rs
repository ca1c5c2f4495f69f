//! Files that were sealed and recorded in the journal, but not moved to their name before
//! a crash: delivered first thing on restart, under the key they were recorded with.

use std::path::Path;

use crate::journal::Intent;
use crate::sink::{FinishedFile, Sink, SinkError};

/// Delivers a pending intent's staged file, unless the crash came after it took its name
/// (a hard link left by a rename done as link + unlink): then only the staged name goes.
pub(super) fn deliver(intent: Intent, sink: &mut dyn Sink) -> Result<(), SinkError> {
    let root = sink
        .staging_dir()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if already_named(&intent, &root) {
        std::fs::remove_file(&intent.staged)
            .map_err(|e| SinkError::io(format!("cannot remove {}", intent.staged.display()), e))?;
        return Ok(());
    }
    tracing::info!(
        key = %intent.key,
        rows = intent.rows,
        "delivering a file finished just before the last stop"
    );
    let (content_type, content_encoding) = crate::encode::layer::headers_for_key(&intent.key);
    let temp = tempfile::TempPath::try_from_path(&intent.staged)
        .map_err(|e| SinkError::io(format!("cannot take {}", intent.staged.display()), e))?;
    sink.deliver(FinishedFile {
        temp,
        key: intent.key,
        rows: intent.rows,
        bytes: intent.bytes,
        mapping: intent.partition.mapping,
        event_type: intent.partition.event_type,
        content_type,
        content_encoding,
        first_seq: 0,
        folder: intent.partition.folder,
        last_record: Some(intent.through),
        plain_sha256: None,
    })
}

#[cfg(unix)]
fn already_named(intent: &Intent, root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(staged) = std::fs::metadata(&intent.staged) else {
        return false;
    };
    for key in crate::sink::candidate_keys(&intent.key) {
        match std::fs::metadata(root.join(&key)) {
            Ok(m) if m.dev() == staged.dev() && m.ino() == staged.ino() => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(not(unix))]
fn already_named(_intent: &Intent, _root: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use crate::journal::{Journal, PartitionName};
    use crate::mapping::Config;
    use crate::pipeline::{RejectLog, RunOptions, run};
    use crate::sink::FinishedFile;
    use crate::sink::local::{LocalSink, STAGING_DIR};
    use crate::source::intake::{Intake, Received};
    use crate::source::spool::{self, SpoolOptions};

    /// A crash after a file was recorded in the journal but before it took its name: the
    /// restart moves it into place under its key, and does not write its rows again.
    #[test]
    fn a_recorded_file_is_delivered_once_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (out, spool_dir) = (dir.path().join("out"), dir.path().join("spool"));
        let config = Config::from_str(
            "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n    columns:\n      e: { \"@path\": \"$.event\" }\n",
            Path::new("m.yaml"),
        )
        .unwrap();
        {
            let (intake, _source) = spool::open(&spool_dir, &SpoolOptions::default()).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let lines =
                b"{\"type\":\"track\",\"event\":\"a\"}\n{\"type\":\"track\",\"event\":\"b\"}\n";
            rt.block_on(intake.accept(Received {
                lines: lines.to_vec(),
                ..Received::default()
            }))
            .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The run before the crash had sealed a file holding event 0 ("a") and recorded it.
        let staging = out.join(STAGING_DIR);
        std::fs::create_dir_all(&staging).unwrap();
        let staged = staging.join(".batch-crashed");
        let mut f = std::fs::File::create(&staged).unwrap();
        f.write_all(b"e\n\"a\"").unwrap();
        drop(f);
        let journal = Journal::open(&spool_dir.join("journal"), 0).unwrap();
        let file = FinishedFile {
            temp: tempfile::TempPath::try_from_path(&staged).unwrap(),
            key: "m/track/first.csv".into(),
            rows: 1,
            bytes: 5,
            mapping: "m".into(),
            event_type: "track".into(),
            content_type: "text/csv",
            content_encoding: None,
            first_seq: 0,
            folder: String::new(),
            last_record: Some(0),
            plain_sha256: None,
        };
        let partition = PartitionName {
            mapping: "m".into(),
            event_type: "track".into(),
            folder: String::new(),
        };
        journal.record(&file, partition, 0).unwrap();
        file.temp.keep().unwrap();
        drop(journal);

        let (intake, mut source) = spool::open(&spool_dir, &SpoolOptions::default()).unwrap();
        intake.close();
        let mut sink = LocalSink::new(&out).unwrap();
        let mut rejects = RejectLog::new(out.join("_rejected.ndjson"));
        let report = run(
            &config,
            &mut source,
            &RunOptions::default(),
            &mut sink,
            &mut rejects,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("m/track/first.csv")).unwrap(),
            "e\n\"a\""
        );
        assert!(!staged.exists());
        // The second file holds only "b".
        let others: Vec<_> = report
            .sink
            .delivered
            .iter()
            .filter(|d| d.key != "m/track/first.csv")
            .collect();
        assert_eq!(others.len(), 1, "{:?}", report.sink.delivered);
        let content = std::fs::read_to_string(&others[0].location).unwrap();
        assert!(
            content.contains("\"b\"") && !content.contains("\"a\""),
            "{content}"
        );
    }
}
