//! Putting one file into the bucket: single PUT or streamed multipart, retried with
//! exponential backoff and jitter, rate limited, and never overwriting an object.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::auth::RoleSession;
use super::errors::{Context, UploadError, classify_s3};
use crate::mapping::Settings;

/// How an upload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// The key the object has (a `-N` suffix is added when the key was taken by different
    /// content).
    pub key: String,
    /// The identical object was already there (a previous attempt landed it).
    pub already_present: bool,
}

/// Encryption, ACL, storage class and tags of uploaded objects, converted once.
#[derive(Debug, Clone, Default)]
struct ObjectOptions {
    sse: Option<ServerSideEncryption>,
    ssekms_key_id: Option<String>,
    acl: Option<ObjectCannedAcl>,
    storage_class: Option<StorageClass>,
    tagging: Option<String>,
}

impl ObjectOptions {
    fn from_settings(s: &Settings) -> ObjectOptions {
        let tagging = (!s.tags.is_empty()).then(|| {
            s.tags
                .iter()
                .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                .collect::<Vec<_>>()
                .join("&")
        });
        ObjectOptions {
            sse: s
                .server_side_encryption
                .as_deref()
                .map(ServerSideEncryption::from),
            ssekms_key_id: s.ssekms_key_id.clone(),
            acl: s.acl.map(|a| ObjectCannedAcl::from(a.name())),
            storage_class: s.storage_class.map(|c| StorageClass::from(c.name())),
            tagging,
        }
    }
}

/// Applies [`ObjectOptions`] to a PutObject or CreateMultipartUpload request (the SDK's
/// two builders share no trait, so a macro rather than a function).
macro_rules! with_object_options {
    ($req:expr, $o:expr) => {
        $req.set_server_side_encryption($o.sse.clone())
            .set_ssekms_key_id($o.ssekms_key_id.clone())
            .set_acl($o.acl.clone())
            .set_storage_class($o.storage_class.clone())
            .set_tagging($o.tagging.clone())
    };
}

/// The object metadata key (`x-amz-meta-s3actions-sha256`) holding the SHA-256 of a file's
/// plain content, for files named from a log (`consume`).
pub const PLAIN_SHA256: &str = "s3actions-sha256";

/// Content-Type, Content-Encoding and plain-content SHA-256 of an upload.
type Headers<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

fn plain_metadata(plain: Option<&str>) -> Option<std::collections::HashMap<String, String>> {
    plain.map(|sum| std::collections::HashMap::from([(PLAIN_SHA256.to_string(), sum.to_string())]))
}

pub struct Uploader {
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) region: String,
    pub(super) role: Option<Arc<RoleSession>>,
    pub(super) settings: Settings,
    /// What every uploaded object gets, from the settings.
    object: ObjectOptions,
    limiter: DefaultDirectRateLimiter,
    /// Backoff before the first retry (doubles each time, with jitter).
    pub(super) backoff_base: Duration,
    pub(super) backoff_cap: Duration,
}

impl Uploader {
    pub fn new(
        s3: aws_sdk_s3::Client,
        settings: &Settings,
        role: Option<Arc<RoleSession>>,
    ) -> Uploader {
        let rps = NonZeroU32::new(settings.requests_per_second).unwrap_or(NonZeroU32::MIN);
        Uploader {
            s3,
            bucket: settings.bucket.clone().unwrap_or_default(),
            region: settings.region.clone().unwrap_or_default(),
            role,
            settings: settings.clone(),
            object: ObjectOptions::from_settings(settings),
            limiter: RateLimiter::direct(Quota::per_second(rps)),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(20),
        }
    }

    pub(super) fn principal(&self) -> String {
        match &self.role {
            Some(r) => format!("role {}", r.role_arn()),
            None => "these credentials".to_string(),
        }
    }

    fn ctx<'a>(&'a self, key: &'a str, action: &'a str, principal: &'a str) -> Context<'a> {
        Context {
            bucket: &self.bucket,
            region: &self.region,
            key,
            principal,
            role: self.role.as_ref().map(|r| r.role_arn()),
            action,
        }
    }

    /// Runs `op` until it succeeds, fails for good, or retries run out. Every attempt waits
    /// for the rate limiter and refreshes role credentials first.
    pub(super) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, UploadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, UploadError>>,
    {
        let mut attempt = 0u32;
        loop {
            self.limiter.until_ready().await;
            let result = match &self.role {
                Some(role) => match role.credentials().await {
                    Ok(_) => op().await,
                    Err(e) => Err(e),
                },
                None => op().await,
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt < self.settings.max_retries => {
                    let delay = self.backoff(attempt);
                    crate::metrics::upload_retry();
                    tracing::warn!(what, attempt = attempt + 1, error = %e, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_cap);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Uploads `path` to `key`. An object already at `key` is never replaced: if it has
    /// the same content the upload counts as done, otherwise `-1`, `-2`, ... is added.
    /// `plain` (the SHA-256 of the plain content, for files named from a log) goes into
    /// the object's metadata ([`PLAIN_SHA256`]), and an object there with the same one is
    /// the same content whatever its bytes (encryption makes them differ each time).
    pub async fn upload_file(
        &self,
        path: &Path,
        key: &str,
        content_type: &str,
        content_encoding: Option<&str>,
        plain: Option<&str>,
    ) -> Result<Uploaded, UploadError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| UploadError::LocalFile {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?
            .len();
        for n in 0..1000u32 {
            let candidate = if n == 0 {
                key.to_string()
            } else {
                crate::sink::disambiguate(key, n)
            };
            let result = if size > self.settings.multipart_threshold_bytes {
                self.multipart(
                    path,
                    &candidate,
                    (content_type, content_encoding, plain),
                    size,
                )
                .await
            } else {
                self.put(path, &candidate, (content_type, content_encoding, plain))
                    .await
            };
            match result {
                Ok(()) => {
                    if n > 0 {
                        tracing::warn!(key, used = %candidate, "object key was taken by a different object; uploaded under a new key");
                    }
                    return Ok(Uploaded {
                        key: candidate,
                        already_present: false,
                    });
                }
                Err(UploadError::AlreadyExists { .. }) => {
                    if self.same_object(&candidate, path, size, plain).await? {
                        tracing::info!(key = %candidate, "identical object already in the bucket; not uploading it again");
                        return Ok(Uploaded {
                            key: candidate,
                            already_present: true,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(UploadError::Other {
            detail: format!("no free key for {key}"),
        })
    }

    /// `headers`: the object's Content-Type, Content-Encoding and plain-content SHA-256.
    async fn put(&self, path: &Path, key: &str, headers: Headers<'_>) -> Result<(), UploadError> {
        let principal = self.principal();
        self.retry("PutObject", || async {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| UploadError::LocalFile {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            let req = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body)
                .content_type(headers.0)
                .set_content_encoding(headers.1.map(str::to_string))
                .set_metadata(plain_metadata(headers.2))
                .if_none_match("*");
            with_object_options!(req, self.object)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify_s3(&e, &self.ctx(key, "s3:PutObject", &principal)))
        })
        .await
    }

    /// Segment's validation object: a small PUT that may replace an earlier one.
    pub async fn put_check_object(&self, key: &str) -> Result<(), UploadError> {
        let principal = self.principal();
        self.retry("PutObject", || async {
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from_static(b"s3actions connection check\n"))
                .content_type("text/plain")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify_s3(&e, &self.ctx(key, "s3:PutObject", &principal)))
        })
        .await
    }

    async fn multipart(
        &self,
        path: &Path,
        key: &str,
        headers: Headers<'_>,
        size: u64,
    ) -> Result<(), UploadError> {
        let principal = self.principal();
        let ctx = || self.ctx(key, "s3:PutObject", &principal);
        let upload_id = self
            .retry("CreateMultipartUpload", || async {
                let req = self
                    .s3
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type(headers.0)
                    .set_content_encoding(headers.1.map(str::to_string))
                    .set_metadata(plain_metadata(headers.2));
                let out = with_object_options!(req, self.object)
                    .send()
                    .await
                    .map_err(|e| classify_s3(&e, &ctx()))?;
                out.upload_id()
                    .map(str::to_string)
                    .ok_or_else(|| UploadError::Other {
                        detail: "CreateMultipartUpload returned no upload ID".into(),
                    })
            })
            .await?;
        match self.upload_parts(path, key, size, &upload_id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Never leave a dangling multipart upload (it costs storage until aborted).
                let aborted = self
                    .retry("AbortMultipartUpload", || async {
                        self.s3
                            .abort_multipart_upload()
                            .bucket(&self.bucket)
                            .key(key)
                            .upload_id(&upload_id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| {
                                classify_s3(
                                    &e,
                                    &self.ctx(key, "s3:AbortMultipartUpload", &principal),
                                )
                            })
                    })
                    .await;
                if let Err(abort) = aborted {
                    tracing::error!(key, error = %abort, "could not abort the failed multipart upload; abort it or add a lifecycle rule for incomplete uploads");
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        path: &Path,
        key: &str,
        size: u64,
        upload_id: &str,
    ) -> Result<(), UploadError> {
        let principal = self.principal();
        let part_size = self.settings.multipart_part_size_bytes.max(5 * 1024 * 1024);
        let count = size.div_ceil(part_size);
        let mut parts = Vec::with_capacity(count as usize);
        for i in 0..count {
            let offset = i * part_size;
            let len = part_size.min(size - offset);
            let number = (i + 1) as i32;
            let etag = self
                .retry("UploadPart", || async {
                    // Streamed from the file: at most one part's network buffers in memory.
                    let body = ByteStream::read_from()
                        .path(path)
                        .offset(offset)
                        .length(Length::Exact(len))
                        .build()
                        .await
                        .map_err(|e| UploadError::LocalFile {
                            path: path.display().to_string(),
                            detail: e.to_string(),
                        })?;
                    let out = self
                        .s3
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(len as i64)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| classify_s3(&e, &self.ctx(key, "s3:PutObject", &principal)))?;
                    Ok(out.e_tag().unwrap_or_default().to_string())
                })
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build(),
            );
        }
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        self.retry("CompleteMultipartUpload", || async {
            self.s3
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(completed.clone())
                .if_none_match("*")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify_s3(&e, &self.ctx(key, "s3:PutObject", &principal)))
        })
        .await
    }

    /// Whether the object at `key` holds exactly the file: the same plain-content SHA-256
    /// in its metadata when both have one, else the same size and MD5-based ETag.
    async fn same_object(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        plain: Option<&str>,
    ) -> Result<bool, UploadError> {
        let principal = self.principal();
        let head = self
            .retry("HeadObject", || async {
                self.s3
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| classify_s3(&e, &self.ctx(key, "s3:GetObject", &principal)))
            })
            .await;
        let head = match head {
            Ok(h) => h,
            // Without read permission the content cannot be compared: use a new key.
            Err(UploadError::AccessDenied { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let theirs = head
            .metadata()
            .and_then(|m| m.get(PLAIN_SHA256))
            .map(String::as_str);
        if let (Some(ours), Some(theirs)) = (plain, theirs) {
            return Ok(ours == theirs);
        }
        if head.content_length() != Some(size as i64) {
            return Ok(false);
        }
        let Some(etag) = head.e_tag().map(|e| e.trim_matches('"').to_string()) else {
            return Ok(false);
        };
        let part_size = self.settings.multipart_part_size_bytes.max(5 * 1024 * 1024);
        let local = local_etag(path, size, part_size, etag.contains('-')).map_err(|e| {
            UploadError::LocalFile {
                path: path.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok(local == etag)
    }
}

/// The ETag S3 gives an object uploaded from this file: MD5 of the content, or for a
/// multipart upload the MD5 of the parts' MD5s followed by `-<parts>`.
fn local_etag(path: &Path, size: u64, part_size: u64, multipart: bool) -> std::io::Result<String> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1024 * 1024];
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if !multipart {
        let mut h = Md5::new();
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        return Ok(hex(&h.finalize()));
    }
    let mut digests = Vec::new();
    let mut remaining = size;
    while remaining > 0 {
        let mut part = part_size.min(remaining);
        remaining -= part;
        let mut h = Md5::new();
        while part > 0 {
            let want = (part as usize).min(buf.len());
            f.read_exact(&mut buf[..want])?;
            h.update(&buf[..want]);
            part -= want as u64;
        }
        digests.extend_from_slice(&h.finalize());
    }
    let parts = size.div_ceil(part_size);
    Ok(format!("{}-{parts}", hex(&Md5::digest(&digests))))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(
            local_etag(&p, 5, 5 * 1024 * 1024, false).unwrap(),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert!(
            local_etag(&p, 5, 5 * 1024 * 1024, true)
                .unwrap()
                .ends_with("-1")
        );
        assert_eq!(urlencode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
