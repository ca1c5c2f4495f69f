//! Files replaced whole, durably: state snapshots, the journal, the spool's id file.
//!
//! Each is written beside its final path, fsynced, renamed over the old one, and its
//! folder fsynced, so that after a crash (or a power loss) at any point the path holds the
//! old file or the new one, never a mix, and the new one once [`commit`] returns.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// The folder `path` is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// fsyncs a folder, so that names created, renamed or removed in it survive a power loss.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Folders cannot be opened for fsync here; renames are durable once the file system says.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// A new temporary file beside `path` (its folder created when missing), named with
/// `prefix` so that leftovers of a killed run can be recognised.
pub fn temp_beside(path: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(prefix).tempfile_in(dir)
}

/// Puts `temp` (written beside `path`) at `path`: fsync, rename, fsync of the folder.
pub fn commit(temp: NamedTempFile, path: &Path) -> io::Result<()> {
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(folder_of(path))
}

/// Replaces the file at `path` with what `write` writes, durably (see the module).
pub fn replace(
    path: &Path,
    prefix: &str,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut temp = temp_beside(path, prefix)?;
    {
        let mut out = BufWriter::new(temp.as_file_mut());
        write(&mut out)?;
        out.flush()?;
    }
    commit(temp, path)
}

#[cfg(test)]
mod tests {
    /// The new content replaces the old one, folders are made, and nothing is left beside.
    #[test]
    fn replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file");
        super::replace(&path, ".x-", |w| w.write_all(b"one")).unwrap();
        super::replace(&path, ".x-", |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
        // A failed write leaves the old file as it was.
        let failed = super::replace(&path, ".x-", |_| Err(std::io::Error::other("no")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            super::folder_of(std::path::Path::new("bare")),
            std::path::Path::new(".")
        );
    }
}
