//! The batch journal: what a run has written, so that a source that replays its records
//! after a crash (serve's spool) never writes one of them twice.
//!
//! Records of such a source carry a sequence number that never repeats (see
//! [`crate::source::Chunk::record_seq`]). Rows reach each partition in sequence order, so a
//! partition's finished files always hold a prefix of its rows: one number per partition,
//! the last sequence number in its last finished file (its *mark*), says which rows of a
//! replay are already written.
//!
//! A file's mark is recorded, with the staged file's path and its object key, before the
//! file is moved to its final name (the *intent*): after a crash, an intent whose staged
//! file still exists is delivered then, under its own key, and one whose staged file is
//! gone was delivered before the crash. Either way its rows are not written again, and no
//! finished file is ever written a second time under another name.
//!
//! The file is JSON lines after a versioned header line; a torn last line (a crash
//! mid-append) is ignored, since the file it announced was not yet moved.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::sink::FinishedFile;

/// The journal's format version, in its header line.
pub const VERSION: u64 = 1;
/// The header line's kind.
const KIND: &str = "batch-journal";
/// Lines appended before the journal is rewritten with one mark per partition.
const COMPACT_AFTER: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("batch journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "batch journal {}: format version {found} is newer than this s3actions reads (version {VERSION}); run the s3actions that wrote it, or move the spool away to start empty",
        path.display()
    )]
    Version { path: PathBuf, found: String },
    #[error("batch journal {}:{line}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A partition, by names that survive a restart (mapping indexes need not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionName {
    pub mapping: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub folder: String,
}

/// A file about to be moved to its final name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    #[serde(flatten)]
    pub partition: PartitionName,
    /// Sequence number of the file's last row.
    pub through: u64,
    /// The sealed file, complete and fsynced, in the sink's staging directory.
    pub staged: PathBuf,
    /// The object key it is delivered under.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Batch(Intent),
    Mark {
        #[serde(flatten)]
        partition: PartitionName,
        through: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    s3actions_state: String,
    version: u64,
}

/// The journal of one spool, open for appending.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    marks: HashMap<PartitionName, u64>,
    appended: usize,
    pending: Vec<Intent>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.path.display())
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and rewrites it compactly. Marks below
    /// `keep_from` (the lowest sequence number the source can still replay) are dropped.
    /// The intents whose staged file still exists wait in [`Journal::take_pending`]: the
    /// run delivers those before anything else.
    pub fn open(path: &Path, keep_from: u64) -> Result<Journal, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (mut marks, intents) = match File::open(path) {
            Ok(f) => read(path, f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (HashMap::new(), Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let pending: Vec<Intent> = intents.into_iter().filter(|i| i.staged.exists()).collect();
        marks.retain(|_, through| *through >= keep_from);
        for i in &pending {
            // Delivered before anything else, so its mark stands (even below keep_from).
            marks.remove(&i.partition);
        }
        let mut lines: Vec<Line> = marks
            .iter()
            .map(|(p, &through)| Line::Mark {
                partition: p.clone(),
                through,
            })
            .collect();
        lines.extend(pending.iter().cloned().map(Line::Batch));
        let file = rewrite(path, &lines).map_err(io_err)?;
        for i in &pending {
            marks.insert(i.partition.clone(), i.through);
        }
        Ok(Journal {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                marks,
                appended: 0,
                pending,
            }),
        })
    }

    /// Files that were sealed and recorded but not moved to their name before a crash.
    pub fn take_pending(&self) -> Vec<Intent> {
        std::mem::take(&mut self.lock().pending)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last sequence number already in a finished file of the partition.
    pub fn written_through(&self, p: &PartitionName) -> Option<u64> {
        self.lock().marks.get(p).copied()
    }

    /// Every partition's mark.
    pub fn marks(&self) -> HashMap<PartitionName, u64> {
        self.lock().marks.clone()
    }

    /// Records that `file` (rows through sequence number `through`, of `partition`) is
    /// about to take its name: its content is fsynced, then the intent, before this
    /// returns.
    pub fn record(
        &self,
        file: &FinishedFile,
        partition: PartitionName,
        through: u64,
    ) -> Result<(), JournalError> {
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        File::open(&file.temp)
            .and_then(|f| f.sync_data())
            .map_err(io_err)?;
        let intent = Intent {
            partition,
            through,
            staged: file.temp.to_path_buf(),
            key: file.key.clone(),
            rows: file.rows,
            bytes: file.bytes,
        };
        let mut inner = self.lock();
        if inner.appended >= COMPACT_AFTER {
            // Every earlier intent was delivered (delivery follows its record on the same
            // thread): marks say all they said.
            let lines: Vec<Line> = inner
                .marks
                .iter()
                .map(|(p, &t)| Line::Mark {
                    partition: p.clone(),
                    through: t,
                })
                .collect();
            inner.file = rewrite(&self.path, &lines).map_err(io_err)?;
            inner.appended = 0;
        }
        let mut line = serde_json::to_vec(&Line::Batch(intent.clone()))
            .map_err(|e| io_err(io::Error::other(e)))?;
        line.push(b'\n');
        inner.file.write_all(&line).map_err(io_err)?;
        inner.file.sync_data().map_err(io_err)?;
        inner.appended += 1;
        let mark = inner.marks.entry(intent.partition).or_insert(through);
        *mark = (*mark).max(through);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Read = (HashMap<PartitionName, u64>, Vec<Intent>);

fn read(path: &Path, file: File) -> Result<Read, JournalError> {
    let corrupt = |line: usize, reason: String| JournalError::Corrupt {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut marks: HashMap<PartitionName, u64> = HashMap::new();
    let mut intents = Vec::new();
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(|source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let last = lines.peek().is_none();
        if i == 0 {
            let header: Header = match serde_json::from_slice(&line) {
                Ok(h) => h,
                Err(_) if last => break, // torn while it was being created
                Err(e) => return Err(corrupt(1, format!("not a journal header: {e}"))),
            };
            if header.s3actions_state != KIND {
                return Err(corrupt(
                    1,
                    format!(
                        "a {:?} state file, not a batch journal",
                        header.s3actions_state
                    ),
                ));
            }
            if header.version != VERSION {
                return Err(JournalError::Version {
                    path: path.to_path_buf(),
                    found: header.version.to_string(),
                });
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Batch(intent)) => {
                let m = marks
                    .entry(intent.partition.clone())
                    .or_insert(intent.through);
                *m = (*m).max(intent.through);
                intents.push(intent);
            }
            Ok(Line::Mark { partition, through }) => {
                let m = marks.entry(partition).or_insert(through);
                *m = (*m).max(through);
            }
            Err(e) if last => {
                // Torn by a crash mid-append: its file was never moved.
                tracing::warn!(
                    "batch journal {}:{}: ignoring a torn last line ({e})",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => return Err(corrupt(i + 1, e.to_string())),
        }
    }
    Ok((marks, intents))
}

/// Replaces the journal with `lines` under its header (durably: see [`crate::durable`]);
/// returns it open for appending.
fn rewrite(path: &Path, lines: &[Line]) -> io::Result<File> {
    crate::durable::replace(path, ".journal-", |out| {
        let header = Header {
            s3actions_state: KIND.into(),
            version: VERSION,
        };
        serde_json::to_writer(&mut *out, &header)?;
        out.write_all(b"\n")?;
        for l in lines {
            serde_json::to_writer(&mut *out, l)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(folder: &str) -> PartitionName {
        PartitionName {
            mapping: "m".into(),
            event_type: "track".into(),
            folder: folder.into(),
        }
    }

    fn staged(dir: &Path, name: &str) -> FinishedFile {
        let p = dir.join(name);
        std::fs::write(&p, "rows").unwrap();
        FinishedFile {
            temp: tempfile::TempPath::try_from_path(p).unwrap(),
            key: format!("out/{name}.csv"),
            rows: 1,
            bytes: 4,
            mapping: "m".into(),
            event_type: "track".into(),
            content_type: "text/csv",
            content_encoding: None,
            first_seq: 0,
            folder: String::new(),
            last_record: None,
            plain_sha256: None,
        }
    }

    #[test]
    fn intents_survive_and_staged_files_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::open(&path, 0).unwrap();
        assert!(j.take_pending().is_empty());
        let a = staged(dir.path(), "a");
        j.record(&a, part("x"), 10).unwrap();
        // Delivered: its staged file is gone.
        drop(a);
        let b = staged(dir.path(), "b");
        j.record(&b, part("y"), 20).unwrap();
        // Not delivered (a crash): the staged file stays.
        let b_path = b.temp.keep().unwrap();
        drop(j);
        let j = Journal::open(&path, 0).unwrap();
        let pending = j.take_pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].staged, b_path);
        assert_eq!(pending[0].key, "out/b.csv");
        assert_eq!(j.written_through(&part("x")), Some(10));
        assert_eq!(j.written_through(&part("y")), Some(20));
        // Marks below what the source can replay are forgotten.
        drop(j);
        std::fs::remove_file(&b_path).unwrap();
        let j = Journal::open(&path, 15).unwrap();
        assert_eq!(j.written_through(&part("x")), None);
        assert_eq!(j.written_through(&part("y")), Some(20));
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_newer_version_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::open(&path, 0).unwrap();
        j.record(&staged(dir.path(), "a"), part("x"), 5).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"batch\":{\"mapping\":\"m\",\"ty").unwrap();
        drop(f);
        let j = Journal::open(&path, 0).unwrap();
        assert_eq!(j.written_through(&part("x")), Some(5));
        drop(j);

        std::fs::write(
            &path,
            "{\"s3actions_state\":\"batch-journal\",\"version\":7}\n",
        )
        .unwrap();
        let e = Journal::open(&path, 0).unwrap_err().to_string();
        assert!(e.contains("format version 7 is newer"), "{e}");

        std::fs::write(
            &path,
            "{\"s3actions_state\":\"batch-journal\",\"version\":1}\nnope\n{\"mark\":{\"mapping\":\"m\",\"type\":\"t\",\"folder\":\"\",\"through\":1}}\n",
        )
        .unwrap();
        let e = Journal::open(&path, 0).unwrap_err().to_string();
        assert!(e.contains("journal:2:"), "{e}");
    }
}
