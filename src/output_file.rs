//! Temporary files that become output (batch files, their layered versions, manifests).
//!
//! `tempfile` creates files readable by their owner only (0600), which suits scratch data
//! but not a file that is renamed into `--out DIR` for a loader, a web server or another
//! user to read. Output files are created with mode 0666, so the process's umask decides,
//! as it does for any file a program writes (0644 under the usual umask 022; run with
//! `umask 077` to keep them private).

use std::io;
use std::path::Path;

use tempfile::NamedTempFile;

/// A new temporary file in `dir` whose name starts with `prefix`, removed when dropped
/// unless persisted.
pub fn create(dir: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    /// The umask applies (tests run under the umask of whoever runs them, so compare with
    /// it rather than with a fixed mode), never tempfile's 0600.
    #[test]
    fn output_files_follow_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let f = super::create(dir.path(), ".x-").unwrap();
        let mode = f.as_file().metadata().unwrap().permissions().mode() & 0o777;
        let umask = current_umask();
        assert_eq!(mode, 0o666 & !umask, "mode {mode:o} under umask {umask:o}");
    }

    /// The umask from /proc (Linux 4.7 and later), without changing it.
    fn current_umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }
}
