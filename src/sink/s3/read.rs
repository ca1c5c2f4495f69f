//! Reading objects back: listing a prefix and downloading an object, through the same
//! client, role, rate limiter and retries as uploads. The S3 archive source
//! (`source::s3archive`) uses these; they take the bucket as an argument because an archive
//! replay may read several buckets with one client.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::errors::{Context, UploadError, classify_s3};
use super::upload::Uploader;

/// One page of a listing, in key order.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Keys of the objects (folder markers, keys ending in `/`, left out).
    pub keys: Vec<String>,
    /// With a delimiter: the folders (common prefixes, ending in `/`).
    pub folders: Vec<String>,
    /// The continuation token of the next page, if there is one.
    pub next: Option<String>,
}

/// What a download hands on: pieces of the object's bytes, then `End`, or `Failed`. A
/// channel that closes without either means the download task stopped unexpectedly, which
/// the reader must not take for the end of the object.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    End,
    Failed(UploadError),
}

impl Uploader {
    fn read_ctx<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        action: &'a str,
        principal: &'a str,
    ) -> Context<'a> {
        Context {
            bucket,
            region: &self.region,
            key,
            principal,
            role: self.role.as_ref().map(|r| r.role_arn()),
            action,
        }
    }

    /// One page of the objects under `prefix` (ListObjectsV2); with `delimiter`, the
    /// folders just below it instead of everything under it.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
    ) -> Result<ListPage, UploadError> {
        let principal = self.principal();
        self.retry("ListObjectsV2", || async {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.then(|| "/".to_string()))
                .set_continuation_token(token.map(str::to_string))
                .send()
                .await
                .map_err(|e| {
                    classify_s3(&e, &self.read_ctx(bucket, "", "s3:ListBucket", &principal))
                })?;
            Ok(ListPage {
                keys: out
                    .contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| !k.ends_with('/'))
                    .map(str::to_string)
                    .collect(),
                folders: out
                    .common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(str::to_string)
                    .collect(),
                next: out
                    .is_truncated()
                    .unwrap_or(false)
                    .then(|| out.next_continuation_token().map(str::to_string))
                    .flatten(),
            })
        })
        .await
    }

    /// Downloads `bucket/key` into `tx` in pieces of about `piece` bytes, then sends
    /// [`Piece::End`]. A request that fails is retried like an upload's; a body that breaks
    /// off is resumed where it stopped (a ranged GET pinned to the object's ETag, so a
    /// replaced object is an error, never a splice of two versions). Returns when the
    /// receiver is gone, too.
    pub async fn download(&self, bucket: &str, key: &str, piece: usize, tx: mpsc::Sender<Piece>) {
        let result = self.download_into(bucket, key, piece, &tx).await;
        let last = match result {
            Ok(()) => Piece::End,
            Err(e) => Piece::Failed(e),
        };
        let _ = tx.send(last).await;
    }

    async fn download_into(
        &self,
        bucket: &str,
        key: &str,
        piece: usize,
        tx: &mpsc::Sender<Piece>,
    ) -> Result<(), UploadError> {
        let principal = self.principal();
        let mut offset = 0u64;
        let mut etag: Option<String> = None;
        let mut broken = 0u32;
        let mut buf = BytesMut::with_capacity(piece);
        loop {
            let got = self
                .retry("GetObject", || async {
                    let range = (offset > 0).then(|| format!("bytes={offset}-"));
                    self.s3
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .set_range(range)
                        .set_if_match(etag.clone().filter(|_| offset > 0))
                        .send()
                        .await
                        .map_err(|e| {
                            match classify_s3(
                                &e,
                                &self.read_ctx(bucket, key, "s3:GetObject", &principal),
                            ) {
                                UploadError::AlreadyExists { .. } => UploadError::Other {
                                    detail: format!(
                                        "s3://{bucket}/{key} changed while it was read (its ETag is no longer {})",
                                        etag.as_deref().unwrap_or("")
                                    ),
                                },
                                other => other,
                            }
                        })
                })
                .await?;
            if etag.is_none() {
                etag = got.e_tag().map(str::to_string);
            }
            let mut body = got.body;
            let stopped = loop {
                match body.next().await {
                    Some(Ok(bytes)) => {
                        offset += bytes.len() as u64;
                        buf.extend_from_slice(&bytes);
                        if buf.len() >= piece {
                            let full = buf.split().freeze();
                            if tx.send(Piece::Data(full)).await.is_err() {
                                return Ok(()); // nobody reads any more
                            }
                        }
                    }
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            };
            let Some(e) = stopped else { break };
            // The body broke off: resume after what arrived, up to max_retries times.
            if broken >= self.settings.max_retries {
                return Err(UploadError::Network {
                    detail: format!(
                        "the body of s3://{bucket}/{key} broke off at byte {offset}: {e}"
                    ),
                });
            }
            let delay = self.backoff(broken);
            tracing::warn!(bucket, key, offset, error = %e, "download broke off; resuming");
            tokio::time::sleep(delay).await;
            broken += 1;
        }
        if !buf.is_empty() {
            let _ = tx.send(Piece::Data(buf.freeze())).await;
        }
        Ok(())
    }
}
