//! S3 archives as a source: `replay MAPPING.yaml s3://bucket/prefix/` reads every object
//! under each prefix, in key order, as if the objects were local files given one after
//! another.
//!
//! Segment's classic S3 destinations wrote gzipped NDJSON under
//! `segment-logs/{source-id}/{received-day}/`, the day being the UTC midnight as a Unix time
//! in milliseconds. [`DayRange`] selects those folders by listing folder names one level at
//! a time (S3's delimiter), so `--since`/`--until` never list the objects of other days.
//!
//! A listing task walks the prefixes and hands on keys in order; up to
//! `archive.download_concurrency` objects are downloaded ahead in parallel, each into a
//! small bounded channel, so memory stays bounded whatever the size of the archive or its
//! objects. The reader thread takes the objects in key order, decompresses gzip (recognised
//! by its magic bytes, whatever the key's extension) and cuts them into chunks with the same
//! [`Splitter`] as files. Each object is one stream of the run, named `s3://bucket/key` in
//! errors and the rejects file.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{Acknowledge, Chunk, InputProgress, Source, SourceError, Splitter, sniff_gzip};
use crate::mapping::{Settings, check_bucket_name};
use crate::sink::Durability;
use crate::sink::s3::{ClientOptions, Piece, UploadError, Uploader};

/// Bytes a download hands on at a time; with [`AHEAD_PIECES`] per object, what one
/// download may hold in memory before the reader takes it.
const PIECE: usize = 1024 * 1024;
const AHEAD_PIECES: usize = 4;
/// How many folder levels below a prefix are searched for received-day folders
/// (`bucket/` → `segment-logs/` → `{source-id}/` → days).
const MAX_DAY_DEPTH: usize = 3;
const MS_PER_DAY: i64 = 86_400_000;

/// Why an archive replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{url:?} is not an S3 location: expected s3://bucket/prefix/ or s3://bucket/key")]
    NotS3 { url: String },
    #[error("{url}: {source}")]
    Bucket {
        url: String,
        #[source]
        source: crate::mapping::SettingsError,
    },
    #[error("{flag} {value:?} is not a UTC date (YYYY-MM-DD)")]
    Day { flag: &'static str, value: String },
    #[error("--since {since} is after --until {until}: no day is selected")]
    EmptyRange { since: String, until: String },
    #[error(
        "{url} names one object: --since and --until select received-day folders under a prefix (end it with /)"
    )]
    DaysOnObject { url: String },
    #[error("cannot start the S3 download runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot connect to S3 to read the archive: {0}")]
    Connect(#[source] UploadError),
}

/// An `s3://bucket/...` input: a prefix (ends with `/`, or the whole bucket) or one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveUrl {
    pub bucket: String,
    /// The prefix or the key (without the bucket).
    pub path: String,
    pub is_prefix: bool,
}

impl ArchiveUrl {
    /// Whether a command-line input names S3.
    pub fn is_s3(arg: &str) -> bool {
        arg.starts_with("s3://")
    }

    pub fn parse(arg: &str) -> Result<ArchiveUrl, ArchiveError> {
        let Some(rest) = arg.strip_prefix("s3://") else {
            return Err(ArchiveError::NotS3 { url: arg.into() });
        };
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket).map_err(|source| ArchiveError::Bucket {
            url: arg.into(),
            source,
        })?;
        Ok(ArchiveUrl {
            bucket: bucket.into(),
            path: path.into(),
            is_prefix: path.is_empty() || path.ends_with('/'),
        })
    }

    fn name(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.path)
    }
}

/// `--since`/`--until`: received days, inclusive, as days since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayRange {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl DayRange {
    /// Parses the flags' values (`YYYY-MM-DD`, UTC).
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<DayRange, ArchiveError> {
        let day = |flag: &'static str, v: &str| -> Result<i64, ArchiveError> {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let date = time::Date::parse(v, &format).map_err(|_| ArchiveError::Day {
                flag,
                value: v.into(),
            })?;
            Ok((date - time::Date::from_julian_day(2_440_588).expect("the epoch")).whole_days())
        };
        let range = DayRange {
            since: since.map(|v| day("--since", v)).transpose()?,
            until: until.map(|v| day("--until", v)).transpose()?,
        };
        if let (Some(s), Some(u)) = (range.since, range.until)
            && s > u
        {
            return Err(ArchiveError::EmptyRange {
                since: since.unwrap_or_default().into(),
                until: until.unwrap_or_default().into(),
            });
        }
        Ok(range)
    }

    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    fn contains(&self, day: i64) -> bool {
        self.since.is_none_or(|s| day >= s) && self.until.is_none_or(|u| day <= u)
    }
}

/// The day a Segment received-day folder name stands for: UTC midnight as Unix
/// milliseconds (Segment's form) or seconds. `None` for any other name.
pub fn received_day(folder: &str) -> Option<i64> {
    let name = folder.trim_end_matches('/').rsplit('/').next()?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = name.parse().ok()?;
    match name.len() {
        13 if n % MS_PER_DAY == 0 => Some(n / MS_PER_DAY),
        10 if n % 86_400 == 0 => Some(n / 86_400),
        _ => None,
    }
}

/// What the listing task hands on, in order.
enum Listed {
    Object {
        bucket: String,
        key: String,
    },
    /// A prefix could not be listed, or held nothing to read (named as given).
    Failed {
        input: String,
        error: io::Error,
    },
}

/// An object being downloaded ahead, or a listing failure waiting for its turn.
enum Ahead {
    Download {
        name: Arc<str>,
        pieces: mpsc::Receiver<Piece>,
    },
    Failed {
        input: String,
        error: io::Error,
    },
}

/// Reads an object's pieces, in order, for the [`Splitter`] (on the reader thread).
struct Body {
    pieces: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.pieces.blocking_recv() {
                Some(Piece::Data(b)) => self.current = b,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(e)) => return Err(io::Error::other(e)),
                None => {
                    return Err(io::Error::other(
                        "the download stopped before the end of the object",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// The objects under S3 prefixes, as a [`Source`].
pub struct S3Archive {
    runtime: Runtime,
    uploader: Arc<Uploader>,
    listed: mpsc::Receiver<Listed>,
    listing_done: bool,
    ahead: VecDeque<Ahead>,
    concurrency: usize,
    chunk_size: usize,
    /// The object being read: its index among the run's streams, name and chunks.
    current: Option<(usize, Arc<str>, Splitter)>,
    /// Names of the objects opened so far, in order (index = stream index).
    names: Arc<Mutex<Vec<Arc<str>>>>,
    progress: Arc<InputProgress>,
}

impl S3Archive {
    /// Connects with `settings` (the archive's: see `Settings::for_archive`) and starts
    /// listing `urls`, in order. `opts` are the client options of uploads.
    pub fn open(
        settings: &Settings,
        urls: Vec<ArchiveUrl>,
        days: DayRange,
        concurrency: usize,
        opts: &ClientOptions,
        chunk_size: usize,
    ) -> Result<S3Archive, ArchiveError> {
        if !days.is_all()
            && let Some(u) = urls.iter().find(|u| !u.is_prefix)
        {
            return Err(ArchiveError::DaysOnObject { url: u.name() });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3actions-archive")
            .enable_all()
            .build()
            .map_err(ArchiveError::Runtime)?;
        let uploader = Arc::new(
            runtime
                .block_on(crate::sink::s3::connect(settings, opts))
                .map_err(ArchiveError::Connect)?,
        );
        let (tx, listed) = mpsc::channel(1024);
        runtime.spawn(list_all(uploader.clone(), urls, days, tx));
        Ok(S3Archive {
            runtime,
            uploader,
            listed,
            listing_done: false,
            ahead: VecDeque::new(),
            concurrency: concurrency.max(1),
            chunk_size,
            current: None,
            names: Arc::default(),
            progress: Arc::new(InputProgress {
                level: Durability::Written,
                ..InputProgress::default()
            }),
        })
    }

    /// What is durable so far (see [`InputProgress`]).
    pub fn progress(&self) -> Arc<InputProgress> {
        self.progress.clone()
    }

    /// The objects opened so far, in order (filled as the run reads).
    pub fn names(&self) -> Arc<Mutex<Vec<Arc<str>>>> {
        self.names.clone()
    }

    /// Starts downloads until `concurrency` are ahead; waits for the listing only when
    /// nothing at all is ahead.
    fn fill_ahead(&mut self) {
        while self.ahead.len() < self.concurrency && !self.listing_done {
            let next = if self.ahead.is_empty() {
                self.listed.blocking_recv()
            } else {
                match self.listed.try_recv() {
                    Ok(l) => Some(l),
                    Err(mpsc::error::TryRecvError::Empty) => return,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                None => self.listing_done = true,
                Some(Listed::Failed { input, error }) => {
                    self.ahead.push_back(Ahead::Failed { input, error })
                }
                Some(Listed::Object { bucket, key }) => {
                    let name: Arc<str> = Arc::from(format!("s3://{bucket}/{key}"));
                    let (tx, pieces) = mpsc::channel(AHEAD_PIECES);
                    let uploader = self.uploader.clone();
                    self.runtime.spawn(async move {
                        uploader.download(&bucket, &key, PIECE, tx).await;
                    });
                    self.ahead.push_back(Ahead::Download { name, pieces });
                }
            }
        }
    }

    fn handed(&self, seq: u64, input: usize) {
        self.progress
            .handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((seq, input, None));
    }
}

impl Source for S3Archive {
    fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> Result<Option<Chunk>, SourceError> {
        let mut spare = Some(spare);
        loop {
            if self.current.is_none() {
                self.fill_ahead();
                match self.ahead.pop_front() {
                    None => return Ok(None),
                    Some(Ahead::Failed { input, error }) => {
                        return Err(SourceError {
                            input,
                            source: error,
                        });
                    }
                    Some(Ahead::Download { name, pieces }) => {
                        let index = {
                            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
                            names.push(name.clone());
                            names.len() - 1
                        };
                        let body = Body {
                            pieces,
                            current: Bytes::new(),
                            ended: false,
                        };
                        let reader = sniff_gzip(Box::new(body)).map_err(|source| SourceError {
                            input: name.to_string(),
                            source,
                        })?;
                        self.current =
                            Some((index, name, Splitter::new(reader, index, self.chunk_size)));
                        // Keep the pipeline full: the next objects start downloading now.
                        self.fill_ahead();
                    }
                }
            }
            let (index, name, splitter) = self.current.as_mut().expect("opened above");
            let (index, name) = (*index, name.clone());
            let next = splitter
                .next_chunk(seq, spare.take().unwrap_or_default())
                .map_err(|source| SourceError {
                    input: name.to_string(),
                    source,
                })?;
            match next {
                Some(mut chunk) => {
                    chunk.origin = name;
                    self.handed(seq, index);
                    return Ok(Some(chunk));
                }
                None => {
                    self.current = None;
                    self.handed(seq, index + 1);
                }
            }
        }
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledge>> {
        Some(self.progress.clone())
    }
}

/// The listing task: every object of every URL, in order; a failure ends the listing.
async fn list_all(
    uploader: Arc<Uploader>,
    urls: Vec<ArchiveUrl>,
    days: DayRange,
    tx: mpsc::Sender<Listed>,
) {
    for url in urls {
        let result = if url.is_prefix {
            list_prefix(&uploader, &url, days, &tx).await
        } else {
            let listed = Listed::Object {
                bucket: url.bucket.clone(),
                key: url.path.clone(),
            };
            Ok(u64::from(tx.send(listed).await.is_ok()))
        };
        let error = match result {
            Ok(0) if days.is_all() => io::Error::new(
                io::ErrorKind::NotFound,
                "no objects under this prefix (check the bucket and the prefix)",
            ),
            Ok(0) => io::Error::new(
                io::ErrorKind::NotFound,
                "no objects in the received-day folders --since/--until select under this prefix",
            ),
            Ok(_) => continue,
            Err(e) => io::Error::other(e),
        };
        let _ = tx
            .send(Listed::Failed {
                input: url.name(),
                error,
            })
            .await;
        return;
    }
}

/// Lists one prefix into `tx`; returns how many objects were handed on.
async fn list_prefix(
    uploader: &Uploader,
    url: &ArchiveUrl,
    days: DayRange,
    tx: &mpsc::Sender<Listed>,
) -> Result<u64, UploadError> {
    let mut sent = 0u64;
    // Depth-first, in key order: (prefix, depth, wholly selected).
    let mut stack = vec![(url.path.clone(), 0usize, days.is_all())];
    if !days.is_all()
        && let Some(day) = received_day(&url.path)
    {
        stack[0].2 = days.contains(day);
        if !stack[0].2 {
            return Ok(0);
        }
    }
    while let Some((prefix, depth, whole)) = stack.pop() {
        let mut token: Option<String> = None;
        let mut folders = Vec::new();
        loop {
            let page = uploader
                .list_page(&url.bucket, &prefix, !whole, token.as_deref())
                .await?;
            if whole {
                for key in page.keys {
                    let listed = Listed::Object {
                        bucket: url.bucket.clone(),
                        key,
                    };
                    if tx.send(listed).await.is_err() {
                        return Ok(sent + 1); // the run has stopped reading
                    }
                    sent += 1;
                }
            } else {
                // Objects beside the day folders are not in any received day: skipped.
                for folder in page.folders {
                    match received_day(&folder) {
                        Some(day) if days.contains(day) => folders.push((folder, depth + 1, true)),
                        Some(_) => {}
                        None if depth < MAX_DAY_DEPTH => folders.push((folder, depth + 1, false)),
                        None => {}
                    }
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        stack.extend(folders.into_iter().rev());
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ArchiveUrl::parse("s3://acme-archive/segment-logs/src1/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.path.as_str(), u.is_prefix),
            ("acme-archive", "segment-logs/src1/", true)
        );
        assert!(ArchiveUrl::parse("s3://acme-archive").unwrap().is_prefix);
        let one = ArchiveUrl::parse("s3://acme-archive/a/b.gz").unwrap();
        assert!(!one.is_prefix);
        assert_eq!(one.name(), "s3://acme-archive/a/b.gz");
        assert!(matches!(
            ArchiveUrl::parse("s3://Bad_Bucket/x"),
            Err(ArchiveError::Bucket { .. })
        ));
        assert!(ArchiveUrl::is_s3("s3://b/x") && !ArchiveUrl::is_s3("x.ndjson"));
    }

    #[test]
    fn days() {
        // 2017-03-08 in Segment's form: UTC midnight in Unix milliseconds.
        assert_eq!(received_day("segment-logs/src/1488931200000/"), Some(17233));
        assert_eq!(received_day("1488931200"), Some(17233));
        assert_eq!(received_day("segment-logs/src/1488931200001/"), None);
        assert_eq!(received_day("src1/"), None);
        let r = DayRange::parse(Some("2017-03-08"), Some("2017-03-09")).unwrap();
        assert_eq!(
            r,
            DayRange {
                since: Some(17233),
                until: Some(17234)
            }
        );
        assert!(r.contains(17233) && r.contains(17234) && !r.contains(17235));
        assert!(!r.contains(17232));
        assert!(DayRange::parse(None, None).unwrap().is_all());
        assert_eq!(
            DayRange::parse(Some("2017-3-8"), None)
                .unwrap_err()
                .to_string(),
            "--since \"2017-3-8\" is not a UTC date (YYYY-MM-DD)"
        );
        assert!(matches!(
            DayRange::parse(Some("2017-03-09"), Some("2017-03-08")),
            Err(ArchiveError::EmptyRange { .. })
        ));
    }

    #[test]
    fn body_reads_pieces_and_refuses_a_silent_end() {
        let (tx, rx) = mpsc::channel(8);
        tx.try_send(Piece::Data(Bytes::from_static(b"ab"))).unwrap();
        tx.try_send(Piece::Data(Bytes::from_static(b"c"))).unwrap();
        tx.try_send(Piece::End).unwrap();
        let mut out = String::new();
        Body {
            pieces: rx,
            current: Bytes::new(),
            ended: false,
        }
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "abc");

        let (tx, rx) = mpsc::channel(8);
        tx.try_send(Piece::Data(Bytes::from_static(b"ab"))).unwrap();
        drop(tx);
        let mut out = String::new();
        let err = Body {
            pieces: rx,
            current: Bytes::new(),
            ended: false,
        }
        .read_to_string(&mut out)
        .unwrap_err();
        assert!(err.to_string().contains("stopped before the end"), "{err}");
    }
}
