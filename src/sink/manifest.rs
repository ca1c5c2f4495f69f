//! `manifest: true`: after a run has written all of a mapping's files, a JSON manifest in
//! Adobe Experience Platform's shape lists them (`flowRunId`, `scheduledTime`,
//! `exportResults` with `sinkPath`, `name`, `size`, plus `rows` and `sha256`).
//!
//! It wraps the run's sink: every file passes through (its SHA-256 is taken on the way),
//! and the manifests are delivered only once the inner sink has finished, so a manifest is
//! never in the bucket before a file it lists. When some of a mapping's files could not be
//! uploaded (they wait in the outbox), its manifest waits in the outbox too, and `flush`
//! uploads manifests only after every other file: a loader that waits for the manifest sees
//! complete data.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Durability, FinishedFile, Sink, SinkError, SinkReport, persist_unique};
use crate::mapping::Config;

/// Whether an outbox key is a manifest (uploaded last by `flush`).
pub fn is_manifest_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.starts_with("manifest-") && name.ends_with(".json")
}

/// One listed file, before the sink says what key it got.
struct Entry {
    key: String,
    rows: u64,
    size: u64,
    sha256: String,
}

struct Wanted {
    mapping: String,
    /// The folder the manifest goes in: the folder template's fixed prefix.
    prefix: String,
    entries: Vec<Entry>,
}

/// A sink that also writes manifests (see the module's documentation).
pub struct ManifestSink<'s> {
    inner: &'s mut dyn Sink,
    wanted: Vec<Wanted>,
    run_id: String,
    scheduled: String,
    /// Where a manifest waits when some of its files are still in the outbox (S3).
    outbox: Option<PathBuf>,
}

impl<'s> ManifestSink<'s> {
    /// Wraps `inner` when a mapping of `config` asks for manifests; `None` otherwise.
    pub fn wrap(
        config: &Config,
        inner: &'s mut dyn Sink,
        outbox: Option<&Path>,
    ) -> Option<ManifestSink<'s>> {
        let wanted: Vec<Wanted> = config
            .mappings
            .iter()
            .filter(|m| m.manifest)
            .map(|m| Wanted {
                mapping: m.name.clone(),
                prefix: m.folder.fixed_prefix(),
                entries: Vec::new(),
            })
            .collect();
        if wanted.is_empty() {
            return None;
        }
        let now = time::OffsetDateTime::now_utc();
        let scheduled = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let run_id = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Some(ManifestSink {
            inner,
            wanted,
            run_id,
            scheduled,
            outbox: outbox.map(Path::to_path_buf),
        })
    }

    /// The run id manifests are named with.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// The key a file got: its own, or with the `-N` a taken name gets.
fn matches_key(wanted: &str, got: &str) -> bool {
    got == wanted || (1..10_000).any(|n| super::disambiguate(wanted, n) == got)
}

impl Sink for ManifestSink<'_> {
    fn staging_dir(&self) -> &Path {
        self.inner.staging_dir()
    }

    fn require(&mut self, level: Durability) {
        self.inner.require(level);
    }

    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError> {
        if let Some(w) = self.wanted.iter_mut().find(|w| w.mapping == file.mapping) {
            let sha256 = super::sha256_file(&file.temp)
                .map_err(|e| SinkError::io(format!("cannot hash {}", file.key), e))?;
            w.entries.push(Entry {
                key: file.key.clone(),
                rows: file.rows,
                size: file.bytes,
                sha256,
            });
        }
        self.inner.deliver(file)
    }

    fn undurable_from(&mut self, level: Durability) -> Option<u64> {
        self.inner.undurable_from(level)
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        let mut report = self.inner.finish()?;
        let mut more = SinkReport::default();
        for w in &self.wanted {
            if w.entries.is_empty() {
                continue;
            }
            let mut results = Vec::new();
            let mut waiting = false;
            for e in &w.entries {
                let delivered = report
                    .delivered
                    .iter()
                    .find(|d| d.mapping == w.mapping && matches_key(&e.key, &d.key))
                    .map(|d| d.key.clone());
                let key = match delivered {
                    Some(k) => k,
                    None => {
                        waiting = true;
                        report
                            .pending
                            .iter()
                            .find(|p| matches_key(&e.key, &p.key))
                            .map_or_else(|| e.key.clone(), |p| p.key.clone())
                    }
                };
                let (folder, name) = key.rsplit_once('/').unwrap_or(("", &key));
                results.push(serde_json::json!({
                    "sinkPath": format!("/{folder}"),
                    "name": name,
                    "size": e.size,
                    "rows": e.rows,
                    "sha256": e.sha256,
                }));
            }
            let manifest = serde_json::json!({
                "flowRunId": self.run_id,
                "scheduledTime": self.scheduled,
                "mapping": w.mapping,
                "exportResults": results,
            });
            let key = format!("{}manifest-{}-{}.json", w.prefix, w.mapping, self.run_id);
            let staging = self.inner.staging_dir().to_path_buf();
            std::fs::create_dir_all(&staging)
                .map_err(|e| SinkError::io(format!("cannot create {}", staging.display()), e))?;
            let mut temp = crate::output_file::create(&staging, ".manifest-")
                .map_err(|e| SinkError::io("cannot write a manifest", e))?;
            let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            bytes.push(b'\n');
            temp.write_all(&bytes)
                .map_err(|e| SinkError::io("cannot write a manifest", e))?;
            let temp = temp.into_temp_path();
            match (&self.outbox, waiting) {
                (Some(outbox), true) => {
                    // Uploaded by `flush`, after the files it lists.
                    let (key, path) = persist_unique(temp, outbox, &key, true)?;
                    tracing::warn!(%key, "manifest waits in the outbox with the files it lists; `flush` uploads it after them");
                    more.pending.push(super::Pending {
                        key,
                        path,
                        reason: "waits for the files it lists (run flush)".into(),
                    });
                }
                _ => {
                    self.inner.deliver(FinishedFile {
                        temp,
                        key,
                        rows: 0,
                        bytes: bytes.len() as u64,
                        mapping: w.mapping.clone(),
                        event_type: String::new(),
                        content_type: "application/json",
                        content_encoding: None,
                        first_seq: 0,
                        folder: String::new(),
                        last_record: None,
                        plain_sha256: None,
                    })?;
                }
            }
        }
        let last = self.inner.finish()?;
        report.delivered.extend(last.delivered);
        report.pending.extend(last.pending);
        report.pending.extend(more.pending);
        Ok(report)
    }
}
