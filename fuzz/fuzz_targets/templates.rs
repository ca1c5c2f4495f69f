//! Folder and filename templates: any template compiles or is refused; a folder renders for
//! any event to a clean folder, a filename to a name or an error, and their key is a key or
//! an error. Input: the folder template, a NUL, the filename template, then optionally a
//! NUL and the event's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::json::Tape;
use s3actions::naming::{
    BatchInfo, BatchTime, FilenameTemplate, FolderTemplate, MAX_FOLDER_BYTES, object_key,
};
use s3actions_fuzz::{EVENT, split};

fuzz_target!(|data: &[u8]| {
    let Some(parts) = split(data, 3) else {
        return;
    };
    let event_text = parts.get(2).copied().unwrap_or(EVENT);
    let mut tape = Tape::new();
    let Ok(event) = tape.parse(event_text) else {
        return;
    };
    let mut folder = String::new();
    if let Ok(t) = FolderTemplate::compile(parts[0]) {
        let _ = (t.constant(), t.fixed_prefix());
        let mut scratch = String::new();
        t.render_into(event, &mut folder, &mut scratch);
        assert!(
            folder.is_empty() || (folder.ends_with('/') && !folder.starts_with('/')),
            "folder {folder:?}"
        );
        assert!(
            !folder.split('/').any(|s| s == "." || s == ".."),
            "folder {folder:?}"
        );
        folder.truncate(folder.floor_char_boundary(MAX_FOLDER_BYTES));
    }
    let Ok(filename) = FilenameTemplate::compile(parts.get(1).copied()) else {
        return;
    };
    let _ = filename.non_reproducible();
    let first_event: Option<serde_json::Value> = serde_json::from_str(event_text).ok();
    let info = BatchInfo {
        prefix: "segment",
        extension: "csv",
        time: BatchTime {
            millis: 1_795_000_000_123,
        },
        event_type: "track",
        mapping: "m",
        part: 1,
        rows: 2,
        first_event: first_event.as_ref(),
        log: None,
    };
    if let Ok(name) = filename.file_name(&info) {
        let _ = object_key(&folder, &name);
    }
});
