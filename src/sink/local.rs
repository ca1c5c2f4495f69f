//! Files written under a local directory at their object key.

use std::path::{Path, PathBuf};

use super::{Delivered, FinishedFile, Sink, SinkError, SinkReport, persist_unique};

pub struct LocalSink {
    root: PathBuf,
    staging: PathBuf,
    delivered: Vec<Delivered>,
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
        })
    }
}

impl Sink for LocalSink {
    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError> {
        let (key, path) = persist_unique(file.temp, &self.root, &file.key)?;
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

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        // The staging directory only holds files being written; leave no trace when empty.
        let _ = std::fs::remove_dir(&self.staging);
        Ok(SinkReport {
            delivered: std::mem::take(&mut self.delivered),
            pending: Vec::new(),
        })
    }
}
