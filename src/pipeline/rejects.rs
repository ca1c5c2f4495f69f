//! The rejects file: every event that could not be written, with its origin and reason.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Where rejected records are appended (created on the first reject).
pub struct RejectLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
    /// Entries written since the file was last fsynced.
    unsynced: bool,
}

impl RejectLog {
    pub fn new(path: PathBuf) -> RejectLog {
        RejectLog {
            path,
            file: None,
            written: 0,
            unsynced: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// For a run that replays numbered records after a crash: removes a torn last line
    /// (an entry cut by the crash, whose record is replayed) and returns the input and
    /// number (`"offset"`) of the last entry, if it has them.
    pub fn resume(&mut self) -> io::Result<Option<(String, u64)>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        // An entry holds one event (at most a few hundred KB): the last two fit in this.
        let from = len.saturating_sub(4 * 1024 * 1024);
        f.seek(SeekFrom::Start(from))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        let complete = memchr::memrchr(b'\n', &tail).map_or(0, |i| i + 1);
        if complete < tail.len() {
            tracing::warn!(
                path = %self.path.display(),
                bytes = tail.len() - complete,
                "the rejects file ends in a torn entry (a crash mid-write); removed: its event is replayed"
            );
            f.set_len(from + complete as u64)?;
            f.sync_data()?;
        }
        let lines = &tail[..complete];
        let last = match lines.len() {
            0 => return Ok(None),
            n => {
                let body = &lines[..n - 1];
                memchr::memrchr(b'\n', body).map_or(body, |i| &body[i + 1..])
            }
        };
        let entry: serde_json::Value = match serde_json::from_slice(last) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        Ok(entry["input"]
            .as_str()
            .zip(entry["offset"].as_u64())
            .map(|(i, n)| (i.to_string(), n)))
    }

    pub(super) fn write(&mut self, entry: &serde_json::Value) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(BufWriter::new(f));
        }
        let f = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *f, entry)?;
        f.write_all(b"\n")?;
        self.written += 1;
        self.unsynced = true;
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    /// Flushes, and with `fsync` makes what was written survive a power loss (before the
    /// records it holds are acknowledged to their source).
    pub(super) fn sync(&mut self, fsync: bool) -> io::Result<()> {
        self.flush()?;
        if fsync && self.unsynced {
            if let Some(f) = &self.file {
                f.get_ref().sync_data()?;
            }
            self.unsynced = false;
        }
        Ok(())
    }
}

/// A reject found by a worker, before the writer knows its line in the input.
pub(super) struct RawReject {
    /// The record's bytes in its chunk.
    pub record: (u32, u32),
    /// Its position, relative to the chunk for NDJSON chunks (see `Chunk::line_offset`).
    pub line: u64,
    pub mapping: Option<usize>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_a_torn_entry_and_names_the_last_numbered_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects.ndjson");
        let mut log = RejectLog::new(path.clone());
        assert_eq!(log.resume().unwrap(), None);
        std::fs::write(
            &path,
            "{\"input\":\"a.ndjson\",\"line\":3}\n{\"input\":\"serve\",\"offset\":41,\"reason\":\"x\"}\n{\"input\":\"serve\",\"off",
        )
        .unwrap();
        assert_eq!(log.resume().unwrap(), Some(("serve".to_string(), 41)));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("\"x\"}\n")
        );
        std::fs::write(&path, "{\"input\":\"a.ndjson\",\"line\":3}\n").unwrap();
        assert_eq!(log.resume().unwrap(), None);
    }
}
