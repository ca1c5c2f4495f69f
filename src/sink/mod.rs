//! Where finished files go: a local directory, or S3 through an assumed role.
//!
//! Files are written in full to a staging directory first (on the same filesystem as their
//! destination), so a reader never sees half a file and nothing is lost if an upload fails:
//! the S3 sink's staging directory is its outbox.
//!
//! ## What "durable" means
//! One meaning serves every commit point (serve's spool, Kafka offsets, warehouse
//! snapshots), in three levels ([`Durability`]): a file is *written* once it is at its
//! final path under `--out` or in the outbox (a crash of the process cannot lose it, a
//! power loss can); *on this machine* once its content and its directory are also fsynced
//! there; *final* once it is fsynced at its final path under `--out`, or S3 has
//! acknowledged it. A sink fsyncs only when a source asks for more than *written*
//! ([`Sink::require`]): a replay of files can simply be run again.

pub mod local;
pub mod manifest;
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
    /// The object's `Content-Encoding` (gzip), set by the file layers.
    pub content_encoding: Option<&'static str>,
    /// Sequence number of the input chunk of the file's first row (see
    /// [`crate::source::Acknowledge`]).
    pub first_seq: u64,
    /// The rendered folder of its partition.
    pub folder: String,
    /// Sequence number of its last row's record, when the source numbers its records
    /// (see [`crate::source::Chunk::record_seq`] and [`crate::journal`]).
    pub last_record: Option<u64>,
    /// SHA-256 (hex) of the plain content, before compression and encryption, for batches
    /// named from a log (`consume`): how a rebuilt batch recognises its earlier copy even
    /// when the file's bytes differ each time (PGP).
    pub plain_sha256: Option<String>,
}

/// Where the plain-content sums of files named from a log are kept, inside `--out` or the
/// outbox (`<root>/.s3actions-sums/<key>`), until the file is uploaded or for good.
pub const SUMS_DIR: &str = ".s3actions-sums";

/// The recorded plain-content sum of the file at `key` under `root`, if any.
pub fn read_sum(root: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join(SUMS_DIR).join(key)).ok()?;
    let sum = text.trim();
    (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sum.to_string())
}

/// Records the plain-content sum of the file about to take `key` (before it does, so a
/// file at its key always has its sum).
fn write_sum(root: &Path, key: &str, sum: &str, fsync: bool) -> Result<(), SinkError> {
    let path = root.join(SUMS_DIR).join(key);
    let parent = path.parent().unwrap_or(root);
    std::fs::create_dir_all(parent)
        .map_err(|e| SinkError::io(format!("cannot create {}", parent.display()), e))?;
    let mut temp = tempfile::NamedTempFile::new_in(parent)
        .map_err(|e| SinkError::io(format!("cannot write in {}", parent.display()), e))?;
    std::io::Write::write_all(&mut temp, sum.as_bytes())
        .and_then(|()| {
            if fsync {
                temp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| SinkError::io(format!("cannot write {}", path.display()), e))?;
    temp.persist(&path)
        .map_err(|e| SinkError::io(format!("cannot write {}", path.display()), e.error))?;
    Ok(())
}

/// Forgets the sum of a file that has left `root` (uploaded from the outbox). Its folders
/// stay: another member of the group may be writing a sum into them.
pub fn remove_sum(root: &Path, key: &str) {
    let _ = std::fs::remove_file(root.join(SUMS_DIR).join(key));
}

/// How far a delivered file has got (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// At its final path, or in the outbox; not fsynced.
    #[default]
    Written,
    /// fsynced on this machine: at its final path under `--out`, or in the outbox.
    Machine,
    /// fsynced at its final path under `--out`, or acknowledged by S3.
    Final,
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
    /// Boxed: an upload error carries its whole context and would make every result large.
    #[error(transparent)]
    Upload(Box<s3::UploadError>),
    #[error("no free name for {key} (10,000 names with a -N suffix are taken)")]
    NoFreeName { key: String },
    /// A batch rebuilt from a log found another content under its key: names or
    /// boundaries were not reproducible (the mapping file changed between runs, say).
    #[error(
        "{key} already exists with other content (SHA-256 {existing}, this batch {ours}): a batch rebuilt from the log must be identical; was the mapping file changed between runs?"
    )]
    Conflict {
        key: String,
        existing: String,
        ours: String,
    },
}

impl From<s3::UploadError> for SinkError {
    fn from(e: s3::UploadError) -> SinkError {
        SinkError::Upload(Box::new(e))
    }
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

    /// From now on, make every file durable at `level` (fsync from [`Durability::Machine`]
    /// on). Called by the run when its source acknowledges records.
    fn require(&mut self, level: Durability);

    /// Takes a finished file: moves it into place, or queues its upload.
    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError>;

    /// The lowest [`FinishedFile::first_seq`] of the files delivered so far that are not
    /// yet durable at `level`; `None` when all are.
    fn undurable_from(&mut self, level: Durability) -> Option<u64>;

    /// Waits for queued work and reports what landed and what is waiting.
    fn finish(&mut self) -> Result<SinkReport, SinkError>;
}

/// The keys a file meant for `key` may take, in the order they are tried: `key`, then
/// `key` with `-1`, `-2`, ... (see [`disambiguate`]), up to a bound.
pub fn candidate_keys(key: &str) -> impl Iterator<Item = String> + '_ {
    (0..10_000u32).map(move |n| match n {
        0 => key.to_string(),
        n => disambiguate(key, n),
    })
}

/// Moves `temp` to `root/key` without ever replacing an existing file: when the key is
/// taken, `-1`, `-2`, ... is added before the extension. Returns the key used. With
/// `fsync`, the file's content is on disk before it takes its name, and the name (with
/// every folder created for it) is on disk before this returns.
pub fn persist_unique(
    temp: TempPath,
    root: &Path,
    key: &str,
    fsync: bool,
) -> Result<(String, PathBuf), SinkError> {
    if fsync {
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| SinkError::io("cannot fsync a finished file", e))?;
    }
    let mut temp = temp;
    for (attempt, candidate) in candidate_keys(key).enumerate() {
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
                if fsync {
                    sync_dirs(root, &target)?;
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
    Err(SinkError::NoFreeName {
        key: key.to_string(),
    })
}

/// The SHA-256 of a file's bytes, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(sha256_hex(hasher))
}

/// A finished SHA-256, in hex.
pub fn sha256_hex(hasher: sha2::Sha256) -> String {
    use sha2::Digest;
    let mut hex = String::with_capacity(64);
    crate::text::write_hex(&hasher.finalize(), &mut hex);
    hex
}

/// Moves `temp` to `root/key` for a batch whose key comes from a log (`consume`): when the
/// key is taken by a file with the same content, the batch was delivered before a crash or
/// by the partition's previous owner, and `temp` is dropped (returns `false`); other
/// content there is [`SinkError::Conflict`]. Never replaces a file. With `plain` (the
/// plain content's SHA-256), the same plain content recorded for the file there counts as
/// the same content too (encrypted files differ byte for byte each time).
pub fn persist_once(
    temp: TempPath,
    root: &Path,
    key: &str,
    fsync: bool,
    plain: Option<&str>,
) -> Result<(PathBuf, bool), SinkError> {
    let target = root.join(key);
    let recorded = plain.and_then(|_| read_sum(root, key));
    if fsync {
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| SinkError::io("cannot fsync a finished file", e))?;
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SinkError::io(format!("cannot create {}", parent.display()), e))?;
    }
    if let Some(sum) = plain
        && !target.exists()
    {
        write_sum(root, key, sum, fsync)?;
    }
    match temp.persist_noclobber(&target) {
        Ok(()) => {
            if fsync {
                sync_dirs(root, &target)?;
            }
            Ok((target, true))
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let hash = |p: &Path| {
                sha256_file(p)
                    .map_err(|err| SinkError::io(format!("cannot read {}", p.display()), err))
            };
            let (existing, ours) = (hash(&target)?, hash(&e.path)?);
            let same_plain = plain.is_some() && recorded.as_deref() == plain;
            if existing != ours && !same_plain {
                return Err(SinkError::Conflict {
                    key: key.to_string(),
                    existing,
                    ours,
                });
            }
            tracing::info!(
                key,
                "file already there with the same content; not written again"
            );
            if fsync {
                // It may come from a run that crashed before making it durable.
                std::fs::File::open(&target)
                    .and_then(|f| f.sync_all())
                    .map_err(|err| SinkError::io("cannot fsync a finished file", err))?;
                sync_dirs(root, &target)?;
            }
            Ok((target, false))
        }
        Err(e) => Err(SinkError::io(
            format!("cannot move the file to {}", target.display()),
            e.error,
        )),
    }
}

/// fsyncs every directory from `file`'s folder up to `root`, so that the file's name and
/// the folders made for it survive a power loss.
pub fn sync_dirs(root: &Path, file: &Path) -> Result<(), SinkError> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        sync_dir(d)?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// fsyncs one directory (its entries: names created, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    crate::durable::sync_dir(dir)
        .map_err(|e| SinkError::io(format!("cannot fsync the folder {}", dir.display()), e))
}

/// `a/b.csv` → `a/b-1.csv`; `a/b.csv.gz` → `a/b-1.csv.gz` (the number goes before the
/// extension and every layer suffix).
pub fn disambiguate(key: &str, n: u32) -> String {
    let (dir, name) = match key.rfind('/') {
        Some(i) => (&key[..=i], &key[i + 1..]),
        None => ("", key),
    };
    let (stem, _) = crate::encode::layer::split_suffixes(name);
    let layers = &name[stem.len()..];
    match stem.rfind('.') {
        Some(dot) if dot > 0 => format!("{dir}{}-{n}{}{layers}", &stem[..dot], &stem[dot..]),
        _ => format!("{dir}{stem}-{n}{layers}"),
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
        assert_eq!(disambiguate("a/b.csv.gz", 1), "a/b-1.csv.gz");
        assert_eq!(disambiguate("a/b.gz", 2), "a/b-2.gz");
        assert_eq!(disambiguate("a/b.json.zst.gpg", 1), "a/b-1.json.zst.gpg");
        assert_eq!(disambiguate("a/b", 2), "a/b-2");
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |content: &str| {
            let mut f = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
            std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
            f.into_temp_path()
        };
        let (k1, _) = persist_unique(mk("one"), dir.path(), "x/y.csv", false).unwrap();
        let (k2, p2) = persist_unique(mk("two"), dir.path(), "x/y.csv", true).unwrap();
        assert_eq!(k1, "x/y.csv");
        assert_eq!(k2, "x/y-1.csv");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("x/y.csv")).unwrap(),
            "one"
        );
        assert_eq!(std::fs::read_to_string(p2).unwrap(), "two");
    }
}
