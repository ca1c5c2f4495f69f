//! Versioned state files: what a source keeps between runs (warehouse snapshots today).
//!
//! Every state file starts with one header line, `s3actions-state <kind> <version>`, so a
//! file written by another release (or something else entirely) is refused with a clear
//! error instead of being misread. A file is replaced atomically: written beside its final
//! path, fsynced, renamed over it, and the folder fsynced, so after a crash the file is the
//! old one or the new one, never a mixture.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What every header starts with.
const MAGIC: &str = "s3actions-state";

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} the state file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the state file {} is not an s3actions {kind} state file (its first line should be \"{MAGIC} {kind} <version>\"); move it away or start again with --reset",
        path.display()
    )]
    NotState { path: PathBuf, kind: &'static str },
    #[error(
        "the state file {} has format version {found}, but this s3actions reads version {expected} only: use the release that wrote it, or start again with --reset",
        path.display()
    )]
    UnknownVersion {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    #[error("the state file {} is damaged at line {line}: {why}; start again with --reset", path.display())]
    Damaged {
        path: PathBuf,
        line: u64,
        why: String,
    },
    #[error(
        "the state folder {} is in use by another s3actions run (one run at a time per state folder: wait for it, or give this one its own --state-dir)",
        path.display()
    )]
    Locked { path: PathBuf },
}

impl StateError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> StateError {
        StateError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens a state file of `kind` written in format `version`, positioned after its header;
/// `None` when there is no such file (a first run).
pub fn open(
    path: &Path,
    kind: &'static str,
    version: u32,
) -> Result<Option<BufReader<File>>, StateError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    let mut r = BufReader::new(file);
    let mut header = String::new();
    r.read_line(&mut header)
        .map_err(|e| StateError::io("read", path, e))?;
    let mut parts = header.trim_end_matches(['\n', '\r']).split(' ');
    if parts.next() != Some(MAGIC) || parts.next() != Some(kind) {
        return Err(StateError::NotState {
            path: path.to_path_buf(),
            kind,
        });
    }
    let found = parts.next().unwrap_or("").to_string();
    if found != version.to_string() || parts.next().is_some() {
        return Err(StateError::UnknownVersion {
            path: path.to_path_buf(),
            found,
            expected: version,
        });
    }
    Ok(Some(r))
}

/// Replaces (or creates) the state file at `path` with a header for `kind`/`version` and
/// what `body` writes, atomically and durably (see the module documentation). The folder
/// is created when missing.
pub fn write_atomic(
    path: &Path,
    kind: &'static str,
    version: u32,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StateError> {
    let mut p = Prepared::new(path, kind, version)?;
    body(p.writer()).map_err(|e| StateError::io("write", path, e))?;
    p.commit()
}

/// A state file written beside its final path, not yet in place: [`Prepared::commit`] puts
/// it there (fsync, rename, fsync of the folder); dropping it leaves the old file as it was.
/// Lets a source prepare its next state early and commit it once its output is durable.
pub struct Prepared {
    path: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("path", &self.path)
            .finish()
    }
}

impl Prepared {
    /// Starts the file (header written); the folder is created when missing.
    pub fn new(path: &Path, kind: &'static str, version: u32) -> Result<Prepared, StateError> {
        let temp = crate::durable::temp_beside(path, TEMP_PREFIX)
            .map_err(|e| StateError::io("write", path, e))?;
        let mut writer = BufWriter::new(temp);
        writeln!(writer, "{MAGIC} {kind} {version}")
            .map_err(|e| StateError::io("write", path, e))?;
        Ok(Prepared {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Where the body goes.
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.writer
    }

    /// The path the file will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the file in place, durably.
    pub fn commit(self) -> Result<(), StateError> {
        let path = self.path;
        let temp = self
            .writer
            .into_inner()
            .map_err(|e| StateError::io("write", &path, e.into_error()))?;
        crate::durable::commit(temp, &path).map_err(|e| StateError::io("replace", &path, e))
    }
}

/// Prefix of the files [`Prepared`] writes before they are committed: a process killed
/// meanwhile leaves them behind, and [`remove_leftovers`] clears them.
pub const TEMP_PREFIX: &str = ".state-";

/// A state folder held by this process (an advisory lock on its `lock` file, released when
/// dropped or when the process dies, even by `kill -9`): two runs on one folder would
/// commit snapshots over each other's and send the same differences twice.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Takes `dir` (created if needed) for this run, or says that another run holds it.
pub fn lock_folder(dir: &Path) -> Result<FolderLock, StateError> {
    std::fs::create_dir_all(dir).map_err(|e| StateError::io("create", dir, e))?;
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StateError::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StateError::io("lock", &path, e)),
    }
}

/// Removes what killed runs left in a state folder (uncommitted state files): call it
/// only while no other run uses the folder.
pub fn remove_leftovers(dir: &Path) -> Result<(), StateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StateError::io("read", dir, e)),
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Removes a state file (`--reset`), durably; a missing file is fine.
pub fn remove(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StateError::io("remove", path, e)),
    }
    crate::durable::sync_dir(crate::durable::folder_of(path))
        .map_err(|e| StateError::io("fsync the folder of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn written_files_read_back_after_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deep/er/model.state");
        assert!(open(&p, "snapshot", 1).unwrap().is_none());
        write_atomic(&p, "snapshot", 1, |w| w.write_all(b"one\n")).unwrap();
        write_atomic(&p, "snapshot", 1, |w| w.write_all(b"two\n")).unwrap();
        let mut body = String::new();
        open(&p, "snapshot", 1)
            .unwrap()
            .unwrap()
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "two\n");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "s3actions-state snapshot 1\ntwo\n"
        );
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(open(&p, "snapshot", 1).unwrap().is_none());
    }

    #[test]
    fn other_versions_and_other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.state");
        write_atomic(&p, "snapshot", 2, |_| Ok(())).unwrap();
        let e = open(&p, "snapshot", 1).unwrap_err();
        assert!(
            matches!(e, StateError::UnknownVersion { ref found, expected: 1, .. } if found == "2")
        );
        assert!(
            e.to_string()
                .contains("has format version 2, but this s3actions reads version 1 only"),
            "{e}"
        );
        std::fs::write(&p, "id,checksum\n").unwrap();
        let e = open(&p, "snapshot", 1).unwrap_err();
        assert!(matches!(e, StateError::NotState { .. }), "{e}");
        write_atomic(&p, "cursor", 1, |_| Ok(())).unwrap();
        assert!(matches!(
            open(&p, "snapshot", 1),
            Err(StateError::NotState { .. })
        ));
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.state");
        write_atomic(&p, "snapshot", 1, |w| w.write_all(b"good\n")).unwrap();
        let e = write_atomic(&p, "snapshot", 1, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "s3actions-state snapshot 1\ngood\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
