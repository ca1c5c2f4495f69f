//! Files written under a local directory at their object key.

use std::path::{Path, PathBuf};

use super::{
    Delivered, Durability, FinishedFile, Sink, SinkError, SinkReport, persist_once, persist_unique,
};

/// Files moved into place under a directory as they are finished: with fsync on (see
/// [`Sink::require`]) a delivered file is [`Durability::Final`] at once.
pub struct LocalSink {
    root: PathBuf,
    staging: PathBuf,
    delivered: Vec<Delivered>,
    fsync: bool,
    /// Keys come from a log (`consume`): see [`super::persist_once`].
    once: bool,
}

/// Name of the staging directory inside the output directory.
pub const STAGING_DIR: &str = ".s3actions-tmp";

impl LocalSink {
    pub fn new(root: &Path) -> Result<LocalSink, SinkError> {
        let staging = root.join(STAGING_DIR);
        std::fs::create_dir_all(&staging)
            .map_err(|e| SinkError::io(format!("cannot create {}", staging.display()), e))?;
        Ok(LocalSink {
            root: root.to_path_buf(),
            staging,
            delivered: Vec::new(),
            fsync: false,
            once: false,
        })
    }

    /// For batches named from a log (`consume`): a key already taken by the same content
    /// is a batch delivered before, not a new file (see [`super::persist_once`]).
    pub fn once(mut self) -> LocalSink {
        self.once = true;
        self
    }
}

impl Sink for LocalSink {
    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn require(&mut self, level: Durability) {
        self.fsync |= level >= Durability::Machine;
    }

    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError> {
        let (key, path) = if self.once {
            let (path, _new) = persist_once(
                file.temp,
                &self.root,
                &file.key,
                self.fsync,
                file.plain_sha256.as_deref(),
            )?;
            (file.key.clone(), path)
        } else {
            persist_unique(file.temp, &self.root, &file.key, self.fsync)?
        };
        tracing::debug!(key, rows = file.rows, "file written");
        self.delivered.push(Delivered {
            key,
            location: path.display().to_string(),
            rows: file.rows,
            bytes: file.bytes,
            mapping: file.mapping,
            event_type: file.event_type,
        });
        Ok(())
    }

    fn undurable_from(&mut self, _level: Durability) -> Option<u64> {
        // Delivery is synchronous: a delivered file is at its final path, fsynced when asked.
        None
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        // The staging directory only holds files being written; leave no trace when empty.
        // Not under `consume`: the members of a group on one machine may share the output
        // directory, and one that stops must not remove the folder another is writing in.
        if !self.once {
            let _ = std::fs::remove_dir(&self.staging);
        }
        Ok(SinkReport {
            delivered: std::mem::take(&mut self.delivered),
            pending: Vec::new(),
        })
    }
}
