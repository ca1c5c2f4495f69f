//! Files that were sealed and recorded in the journal, but not moved to their name before
//! a crash: delivered first thing on restart, under the key they were recorded with.

use std::path::Path;

use crate::journal::Intent;
use crate::sink::{FinishedFile, Sink, SinkError, disambiguate};

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
    let (content_type, content_encoding) = crate::sink::s3::headers_for(&intent.key);
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
    })
}

#[cfg(unix)]
fn already_named(intent: &Intent, root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(staged) = std::fs::metadata(&intent.staged) else {
        return false;
    };
    for n in 0..10_000u32 {
        let key = match n {
            0 => intent.key.clone(),
            n => disambiguate(&intent.key, n),
        };
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
