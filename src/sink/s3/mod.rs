//! Upload to S3 through an assumed IAM role, with a local outbox that never loses a file.
//!
//! Finished files are first moved into the outbox directory at their object key; an upload
//! task then sends each one and deletes the local copy only once S3 has it. A file that
//! cannot be uploaded after retries stays in the outbox, the run reports it, and
//! `s3actions flush` sends it later. Keys are fixed when a file is finished, and uploads
//! never replace an object, so flushing twice cannot create duplicates.

mod auth;
mod errors;
mod read;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{IdentityCache, Region, SharedCredentialsProvider};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use auth::{RoleProvider, RoleSession};
pub use errors::UploadError;
pub use read::{ListPage, Piece};
pub use upload::{Uploaded, Uploader};

use super::{
    Delivered, Durability, FinishedFile, Pending, Sink, SinkError, SinkReport, persist_unique,
};
use crate::mapping::Settings;

/// Directory inside the outbox for files being written.
pub const OUTBOX_STAGING: &str = ".tmp";
/// The rejects file of uploading runs, inside the outbox (never uploaded).
pub const OUTBOX_REJECTS: &str = "_rejected.ndjson";

/// The outbox used when settings do not name one: `./s3actions-outbox/<bucket>`.
pub fn default_outbox(settings: &Settings) -> PathBuf {
    match &settings.outbox_dir {
        Some(d) => d.clone(),
        None => {
            PathBuf::from("s3actions-outbox").join(settings.bucket.as_deref().unwrap_or("bucket"))
        }
    }
}

/// Options that are not settings (used by tests to shorten waits).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Re-assume the role when credentials expire within this margin.
    pub refresh_margin: Duration,
    pub backoff_base: Duration,
    pub connect_timeout: Duration,
    pub operation_attempt_timeout: Duration,
    /// The credentials the role is assumed with (or that sign requests, without a role).
    /// `None`: the standard AWS chain (environment, profile, instance metadata). Tests set
    /// it, so they need not change the process environment other threads read.
    pub base_credentials: Option<SharedCredentialsProvider>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            refresh_margin: Duration::from_secs(300),
            backoff_base: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(10),
            operation_attempt_timeout: Duration::from_secs(300),
            base_credentials: None,
        }
    }
}

/// Builds the S3 client: base credentials from the options or else the standard chain, then
/// the role (and the intermediate role, when chaining).
pub async fn connect(settings: &Settings, opts: &ClientOptions) -> Result<Uploader, UploadError> {
    let (client, role) = client(settings, opts).await?;
    let mut uploader = Uploader::new(client, settings, role);
    uploader.backoff_base = opts.backoff_base;
    Ok(uploader)
}

/// The S3 client and the role session behind it (see [`connect`]): uploads and the S3
/// archive source (`source::s3archive`) both start here.
pub async fn client(
    settings: &Settings,
    opts: &ClientOptions,
) -> Result<(aws_sdk_s3::Client, Option<Arc<RoleSession>>), UploadError> {
    let region = settings
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".into());
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(opts.connect_timeout)
        .operation_attempt_timeout(opts.operation_attempt_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(ep) = &settings.endpoint_url {
        loader = loader.endpoint_url(ep);
    }
    if let Some(creds) = &opts.base_credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    let base = loader.load().await;
    let path_style = base.endpoint_url().is_some();

    let mut source = base.clone();
    if let Some(mid) = &settings.intermediate_role_arn {
        let session = RoleSession::new(
            &base,
            mid,
            settings.intermediate_external_id.clone(),
            &settings.role_session_name,
            settings.role_session_duration_seconds,
            opts.refresh_margin,
        );
        source = base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(RoleProvider(Arc::new(
                session,
            ))))
            .build();
    }
    let role = settings.role_arn.as_ref().map(|arn| {
        Arc::new(RoleSession::new(
            &source,
            arn,
            settings.external_id.clone(),
            &settings.role_session_name,
            settings.role_session_duration_seconds,
            opts.refresh_margin,
        ))
    });
    let mut s3 = aws_sdk_s3::config::Builder::from(&base).force_path_style(path_style);
    if let Some(r) = &role {
        // The role session caches and refreshes credentials itself.
        s3 = s3
            .credentials_provider(RoleProvider(r.clone()))
            .identity_cache(IdentityCache::no_cache());
    } else if base.credentials_provider().is_none() {
        return Err(UploadError::NoCredentials {
            detail: "no credentials provider configured".into(),
        });
    }
    Ok((aws_sdk_s3::Client::from_conf(s3.build()), role))
}

fn runtime() -> Result<Runtime, SinkError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("s3actions-upload")
        .enable_all()
        .build()
        .map_err(|e| SinkError::io("cannot start the upload runtime", e))
}

/// What an upload task was given, beside the file's path and key.
pub struct UploadJob {
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    pub rows: u64,
    pub bytes: u64,
    pub mapping: String,
    pub event_type: String,
    /// See [`FinishedFile::first_seq`]; `None` for files found in the outbox (`flush`).
    pub first_seq: Option<u64>,
    /// See [`FinishedFile::plain_sha256`]: kept in the object's metadata.
    pub plain_sha256: Option<String>,
}

struct Outcome {
    key: String,
    path: PathBuf,
    job: UploadJob,
    result: Result<Uploaded, UploadError>,
}

/// The uploading sink.
pub struct S3Sink {
    runtime: Runtime,
    uploader: Arc<Uploader>,
    outbox: PathBuf,
    staging: PathBuf,
    permits: Arc<Semaphore>,
    tasks: JoinSet<Outcome>,
    report: SinkReport,
    /// fsync files moved into the outbox (see [`Sink::require`]).
    fsync: bool,
    /// `first_seq` of every file not yet in S3 (uploading, or failed and waiting in the
    /// outbox), with how many files have it.
    not_final: std::collections::BTreeMap<u64, usize>,
    /// Keys come from a log (`consume`): see [`S3Sink::once`].
    once: bool,
}

impl S3Sink {
    pub fn new(
        settings: &Settings,
        outbox: &Path,
        opts: &ClientOptions,
    ) -> Result<S3Sink, SinkError> {
        let runtime = runtime()?;
        let uploader = runtime.block_on(connect(settings, opts))?;
        let staging = outbox.join(OUTBOX_STAGING);
        std::fs::create_dir_all(&staging).map_err(|e| {
            SinkError::io(format!("cannot create the outbox {}", outbox.display()), e)
        })?;
        Ok(S3Sink {
            runtime,
            uploader: Arc::new(uploader),
            outbox: outbox.to_path_buf(),
            staging,
            permits: Arc::new(Semaphore::new(settings.upload_concurrency.max(1))),
            tasks: JoinSet::new(),
            report: SinkReport::default(),
            fsync: false,
            not_final: Default::default(),
            once: false,
        })
    }

    /// For batches named from a log (`consume`): a batch whose key is already in the
    /// outbox with the same content (left by a run that crashed, and queued again by
    /// [`S3Sink::enqueue_outbox`]) is not queued twice; in the bucket, an identical object
    /// already at the key counts as uploaded (as for every upload).
    pub fn once(mut self) -> S3Sink {
        self.once = true;
        self
    }

    /// The role session, when a role is configured.
    pub fn role(&self) -> Option<&Arc<RoleSession>> {
        self.uploader.role.as_ref()
    }

    /// Queues the upload of a file already in the outbox at `key`.
    pub fn enqueue(&mut self, path: PathBuf, key: String, job: UploadJob) {
        // Back-pressure: wait for a free upload slot before taking more work.
        let permit = self
            .runtime
            .block_on(self.permits.clone().acquire_owned())
            .expect("the semaphore is never closed");
        if let Some(seq) = job.first_seq {
            *self.not_final.entry(seq).or_default() += 1;
        }
        let uploader = self.uploader.clone();
        self.tasks.spawn_on(
            async move {
                let result = crate::metrics::timed_upload(uploader.upload_file(
                    &path,
                    &key,
                    job.content_type,
                    job.content_encoding,
                    job.plain_sha256.as_deref(),
                ))
                .await;
                drop(permit);
                Outcome {
                    key,
                    path,
                    job,
                    result,
                }
            },
            self.runtime.handle(),
        );
        self.collect_finished();
    }

    /// Records the uploads that have finished, without waiting.
    fn collect_finished(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            self.record(done);
        }
    }

    fn record(&mut self, done: Result<Outcome, tokio::task::JoinError>) {
        let Ok(o) = done else {
            tracing::error!("an upload task panicked; its file stays in the outbox");
            return;
        };
        let job = o.job;
        match o.result {
            Ok(up) => {
                if let Some(seq) = job.first_seq
                    && let std::collections::btree_map::Entry::Occupied(mut e) =
                        self.not_final.entry(seq)
                {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
                if let Err(e) = std::fs::remove_file(&o.path) {
                    tracing::warn!(path = %o.path.display(), error = %e, "uploaded, but could not remove the outbox copy");
                }
                prune_empty_dirs(&self.outbox, &o.path);
                if job.plain_sha256.is_some() {
                    crate::sink::remove_sum(&self.outbox, &o.key);
                }
                crate::metrics::outbox_files(-1);
                self.report.delivered.push(Delivered {
                    location: format!("s3://{}/{}", self.uploader.bucket, up.key),
                    key: up.key,
                    rows: job.rows,
                    bytes: job.bytes,
                    mapping: job.mapping,
                    event_type: job.event_type,
                });
            }
            Err(e) => {
                // The file stays in the outbox: not final until `flush` sends it.
                tracing::error!(key = %o.key, error = %e, "upload failed; the file stays in the outbox");
                self.report.pending.push(Pending {
                    key: o.key,
                    path: o.path,
                    reason: e.to_string(),
                });
            }
        }
    }
}

impl Sink for S3Sink {
    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn require(&mut self, level: Durability) {
        self.fsync |= level >= Durability::Machine;
    }

    fn deliver(&mut self, file: FinishedFile) -> Result<(), SinkError> {
        let (key, path) = if self.once {
            match crate::sink::persist_once(
                file.temp,
                &self.outbox,
                &file.key,
                self.fsync,
                file.plain_sha256.as_deref(),
            )? {
                (path, true) => (file.key.clone(), path),
                (_, false) => return Ok(()),
            }
        } else {
            persist_unique(file.temp, &self.outbox, &file.key, self.fsync)?
        };
        let job = UploadJob {
            content_type: file.content_type,
            content_encoding: file.content_encoding,
            rows: file.rows,
            bytes: file.bytes,
            mapping: file.mapping,
            event_type: file.event_type,
            first_seq: Some(file.first_seq),
            plain_sha256: file.plain_sha256,
        };
        crate::metrics::outbox_files(1);
        self.enqueue(path, key, job);
        Ok(())
    }

    fn undurable_from(&mut self, level: Durability) -> Option<u64> {
        if level < Durability::Final {
            // In the outbox, fsynced when asked: durable on this machine.
            return None;
        }
        self.collect_finished();
        self.not_final.keys().next().copied()
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        while let Some(done) = self.runtime.block_on(self.tasks.join_next()) {
            self.record(done);
        }
        // Kept under `consume`: another member of the group may share the outbox.
        if !self.once {
            let _ = std::fs::remove_dir(&self.staging);
        }
        Ok(std::mem::take(&mut self.report))
    }
}

/// Removes the now-empty folders between a removed file and the outbox root.
fn prune_empty_dirs(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Files waiting in an outbox: (key, path), skipping the staging directory and the rejects.
pub fn outbox_files(outbox: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            if rel == OUTBOX_STAGING
                || rel == OUTBOX_REJECTS
                || rel == crate::sink::SUMS_DIR
                || rel == crate::source::spool::SPOOL_DIR
            {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out)?;
            } else {
                out.push((rel, p));
            }
        }
        Ok(())
    }
    if outbox.exists() {
        walk(outbox, outbox, &mut out)?;
    }
    Ok(out)
}

/// Uploads everything in the outbox.
pub fn flush(
    settings: &Settings,
    outbox: &Path,
    opts: &ClientOptions,
) -> Result<SinkReport, SinkError> {
    let mut sink = S3Sink::new(settings, outbox, opts)?;
    // Manifests go up last, and only once every other file is in the bucket.
    let (_, manifests) = sink.enqueue_outbox()?;
    let mut report = sink.finish()?;
    if manifests.is_empty() {
        return Ok(report);
    }
    if !report.pending.is_empty() {
        for (key, path) in manifests {
            report.pending.push(crate::sink::Pending {
                key,
                path,
                reason: "waits for the files it lists".into(),
            });
        }
        return Ok(report);
    }
    for (key, path) in manifests {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let job = UploadJob {
            content_type: "application/json",
            content_encoding: None,
            rows: 0,
            bytes,
            mapping: String::new(),
            event_type: String::new(),
            first_seq: None,
            plain_sha256: None,
        };
        sink.enqueue(path, key, job);
    }
    let last = sink.finish()?;
    report.delivered.extend(last.delivered);
    report.pending.extend(last.pending);
    Ok(report)
}

impl S3Sink {
    /// Queues the upload of every file waiting in the outbox (left by an earlier run)
    /// except manifests, which must wait for the files they list; returns how many were
    /// queued, and the manifests.
    pub fn enqueue_outbox(&mut self) -> Result<(usize, Vec<(String, PathBuf)>), SinkError> {
        let outbox = self.outbox.clone();
        let files = outbox_files(&outbox).map_err(|e| {
            SinkError::io(format!("cannot read the outbox {}", outbox.display()), e)
        })?;
        let (manifests, files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(key, _)| super::manifest::is_manifest_key(key));
        let n = files.len();
        for (key, path) in files {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let (content_type, content_encoding) = crate::encode::layer::headers_for_key(&key);
            let job = UploadJob {
                content_type,
                content_encoding,
                rows: 0,
                bytes,
                mapping: String::new(),
                event_type: String::new(),
                first_seq: None,
                plain_sha256: crate::sink::read_sum(&self.outbox, &key),
            };
            // Waiting like this run's files: counted until uploaded.
            crate::metrics::outbox_files(1);
            self.enqueue(path, key, job);
        }
        Ok((n, manifests))
    }
}

/// The result of `check` for one folder.
#[derive(Debug)]
pub struct CheckResult {
    pub mapping: String,
    pub key: String,
    pub result: Result<(), UploadError>,
}

/// Segment's connection test: assume the role and put `dummy-object.txt` in each folder.
pub fn check(
    settings: &Settings,
    folders: &[(String, String)],
    opts: &ClientOptions,
) -> Result<Vec<CheckResult>, SinkError> {
    let rt = runtime()?;
    rt.block_on(async {
        let uploader = match connect(settings, opts).await {
            Ok(u) => u,
            Err(e) => {
                return Ok(folders
                    .iter()
                    .map(|(m, f)| CheckResult {
                        mapping: m.clone(),
                        key: format!("{f}dummy-object.txt"),
                        result: Err(e.clone()),
                    })
                    .collect());
            }
        };
        let mut out = Vec::new();
        for (mapping, folder) in folders {
            let key = format!("{folder}dummy-object.txt");
            let result = uploader.put_check_object(&key).await;
            out.push(CheckResult {
                mapping: mapping.clone(),
                key,
                result,
            });
        }
        Ok(out)
    })
}
