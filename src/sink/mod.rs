//! Where finished files go: a local directory, or S3 through an assumed role.
//!
//! Files are written in full to a staging directory first (on the same filesystem as their
//! destination), so a reader never sees half a file and nothing is lost if an upload fails:
//! the S3 sink's staging directory is its outbox.

pub mod local;
pub mod s3;

use std::path::{Path, PathBuf};

use tempfile::TempPath;

/// A complete file waiting to be delivered.
#[derive(Debug)]
pub struct FinishedFile {
    pub temp: TempPath,
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub mapping: String,
    pub event_type: String,
    pub content_type: &'static str,
}

/// A file that reached its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub key: String,
    /// Where it is: a path, or `s3://bucket/key`.
    pub location: String,
    pub rows: u64,
    pub bytes: u64,
    pub mapping: String,
    pub event_type: String,
}

/// A file that did not reach its destination but is kept (outbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub key: String,
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct SinkReport {
    pub delivered: Vec<Delivered>,
    pub pending: Vec<Pending>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl SinkError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> SinkError {
        SinkError::Io {
            context: context.into(),
            source,
        }
    }
}

pub trait Sink: Send {
    /// Directory for files being written, on the same filesystem as their destination.
    fn staging_dir(&self) -> &Path;

    /// Takes a finished file: moves it into place, or queues its upload.
    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError>;

    /// Waits for queued work and reports what landed and what is waiting.
    fn finish(&mut self) -> Result<SinkReport, SinkError>;
}

/// Moves `temp` to `root/key` without ever replacing an existing file: when the key is
/// taken, `-1`, `-2`, ... is added before the extension. Returns the key used.
pub fn persist_unique(
    temp: TempPath,
    root: &Path,
    key: &str,
) -> Result<(String, PathBuf), SinkError> {
    let mut temp = temp;
    for attempt in 0..10_000u32 {
        let candidate = if attempt == 0 {
            key.to_string()
        } else {
            disambiguate(key, attempt)
        };
        let target = root.join(&candidate);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SinkError::io(format!("cannot create {}", parent.display()), e))?;
        }
        match temp.persist_noclobber(&target) {
            Ok(()) => {
                if attempt > 0 {
                    tracing::warn!(key, used = %candidate, "object key already existed; wrote the file under a new name");
                }
                return Ok((candidate, target));
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.path,
            Err(e) => {
                return Err(SinkError::io(
                    format!("cannot move the file to {}", target.display()),
                    e.error,
                ));
            }
        }
    }
    Err(SinkError::Other(format!("no free name for {key}")))
}

/// `a/b.csv` → `a/b-1.csv`.
pub fn disambiguate(key: &str, n: u32) -> String {
    let (dir, name) = match key.rfind('/') {
        Some(i) => (&key[..=i], &key[i + 1..]),
        None => ("", key),
    };
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{dir}{}-{n}{}", &name[..dot], &name[dot..]),
        _ => format!("{dir}{name}-{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disambiguation() {
        assert_eq!(disambiguate("a/b.csv", 1), "a/b-1.csv");
        assert_eq!(disambiguate("b", 2), "b-2");
        assert_eq!(disambiguate("a.b/c", 3), "a.b/c-3");
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |content: &str| {
            let mut f = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
            std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
            f.into_temp_path()
        };
        let (k1, _) = persist_unique(mk("one"), dir.path(), "x/y.csv").unwrap();
        let (k2, p2) = persist_unique(mk("two"), dir.path(), "x/y.csv").unwrap();
        assert_eq!(k1, "x/y.csv");
        assert_eq!(k2, "x/y-1.csv");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("x/y.csv")).unwrap(),
            "one"
        );
        assert_eq!(std::fs::read_to_string(p2).unwrap(), "two");
    }
}
