//! De-duplication by `messageId` over a window (`dedupe_window`), as Segment's API does
//! for senders that retry a request whose answer they lost.
//!
//! The spool's writer keeps the hashes (128-bit xxh3) of the ids it accepted within the
//! window in memory. They survive a restart: every frame carries its events' id hashes,
//! and before a finished segment is deleted its hashes are appended, with their receive
//! times, to the `ids` file beside it. On start, the window is rebuilt from that file and
//! from the segments left.
//!
//! At most `dedupe_max_ids` ids are remembered: past that the oldest are forgotten first, so
//! memory stays bounded whatever the rate (about 60 bytes an id), at the cost of a shorter
//! window at high rates. The `ids` file is compacted to that many when it holds twice as
//! many.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use super::SpoolError;
use super::segment::read_full;

const MAGIC: &[u8; 8] = b"S3ASIDS\0";
const VERSION: u32 = 1;
/// Bytes of the `ids` file's header: the magic, then the version.
const HEAD: usize = MAGIC.len() + 4;
/// (received_ms u64, hash u128) per id.
const ENTRY: usize = 8 + 16;

/// The hash an id is remembered by.
pub fn hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// The ids seen within the window.
pub struct Dedupe {
    window_ms: u64,
    max_ids: usize,
    seen: HashSet<u128>,
    order: VecDeque<(u64, u128)>,
}

impl Dedupe {
    /// Loads the `ids` file at `path` (entries older than the window, and beyond the newest
    /// `max_ids`, are dropped, and the file rewritten without them).
    pub fn load(
        path: &Path,
        window_ms: u64,
        max_ids: usize,
        now_ms: u64,
    ) -> Result<Dedupe, SpoolError> {
        let mut d = Dedupe {
            window_ms,
            max_ids: max_ids.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        };
        let cutoff = now_ms.saturating_sub(window_ms);
        match File::open(path) {
            Ok(f) => {
                let mut r = BufReader::new(f);
                let mut head = [0u8; HEAD];
                let n = read_full(&mut r, &mut head).map_err(|e| SpoolError::io(path, e))?;
                if n == HEAD {
                    if &head[..MAGIC.len()] != MAGIC {
                        return Err(SpoolError::NotASpool {
                            path: path.to_path_buf(),
                        });
                    }
                    let version =
                        u32::from_le_bytes(head[MAGIC.len()..].try_into().expect("4 bytes"));
                    if version != VERSION {
                        return Err(SpoolError::Version {
                            path: path.to_path_buf(),
                            found: version,
                        });
                    }
                    let mut e = [0u8; ENTRY];
                    // A torn last entry (a crash mid-append) is simply not read.
                    while read_full(&mut r, &mut e).map_err(|e| SpoolError::io(path, e))? == ENTRY {
                        let ms = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
                        let h = u128::from_le_bytes(e[8..].try_into().expect("16 bytes"));
                        if ms >= cutoff {
                            d.add(ms, h);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(path, e)),
        }
        rewrite(path, &d.order).map_err(|e| SpoolError::io(path, e))?;
        Ok(d)
    }

    /// Remembers an id accepted at `ms`, forgetting the oldest beyond `max_ids`.
    pub fn add(&mut self, ms: u64, h: u128) {
        if self.seen.insert(h) {
            self.order.push_back((ms, h));
        }
        if self.order.len() > self.max_ids
            && let Some((_, old)) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
    }

    /// How long ago the oldest id remembered was accepted (the window actually kept, which
    /// `max_ids` may make shorter than `dedupe_window`).
    pub fn span_ms(&self, now_ms: u64) -> u64 {
        self.order
            .front()
            .map_or(0, |&(ms, _)| now_ms.saturating_sub(ms))
    }

    pub fn contains(&self, h: u128) -> bool {
        self.seen.contains(&h)
    }

    /// Forgets the ids older than the window.
    pub fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.window_ms);
        while let Some(&(ms, h)) = self.order.front() {
            if ms >= cutoff {
                break;
            }
            self.seen.remove(&h);
            self.order.pop_front();
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Appends `entries` to the `ids` file and fsyncs it (before their segment is deleted).
/// Once the file holds more than twice `max_ids`, it is replaced by its newest `max_ids`
/// (entries are in the order they were accepted), so it stays bounded like the memory.
pub fn append(path: &Path, entries: &[(u64, u128)], max_ids: usize) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    let mut buf = Vec::with_capacity(entries.len() * ENTRY);
    for (ms, h) in entries {
        buf.extend_from_slice(&ms.to_le_bytes());
        buf.extend_from_slice(&h.to_le_bytes());
    }
    f.write_all(&buf)?;
    f.sync_data()?;
    let held = f.metadata()?.len().saturating_sub(HEAD as u64) / ENTRY as u64;
    if held > 2 * max_ids as u64 {
        compact(path, held, max_ids)?;
    }
    Ok(())
}

/// Replaces the `ids` file, which holds `held` entries, by its newest `keep`.
fn compact(path: &Path, held: u64, keep: usize) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let keep = (keep as u64).min(held);
    f.seek(SeekFrom::Start(HEAD as u64 + (held - keep) * ENTRY as u64))?;
    let mut tail = vec![0u8; keep as usize * ENTRY];
    f.read_exact(&mut tail)?;
    replace(path, |w| w.write_all(&tail))
}

fn rewrite(path: &Path, entries: &VecDeque<(u64, u128)>) -> io::Result<()> {
    replace(path, |w| {
        for (ms, h) in entries {
            w.write_all(&ms.to_le_bytes())?;
            w.write_all(&h.to_le_bytes())?;
        }
        Ok(())
    })
}

/// Replaces the `ids` file durably: its header, then the entries `entries` writes.
fn replace(path: &Path, entries: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    crate::durable::replace(path, ".ids-", |w| {
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        entries(w)
    })
}

/// The `ids` file of a spool.
pub fn ids_path(dir: &Path) -> PathBuf {
    dir.join("ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_outlive_a_restart_within_the_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = ids_path(dir.path());
        let mut d = Dedupe::load(&path, 1000, 100, 10_000).unwrap();
        assert_eq!(d.len(), 0);
        append(&path, &[(9_500, hash("a")), (10_000, hash("b"))], 100).unwrap();
        d.add(10_000, hash("b"));
        assert!(d.contains(hash("b")) && !d.contains(hash("a")));
        drop(d);
        let mut d = Dedupe::load(&path, 1000, 100, 10_200).unwrap();
        assert!(d.contains(hash("a")) && d.contains(hash("b")));
        d.expire(10_600);
        assert!(!d.contains(hash("a")) && d.contains(hash("b")));
        // Old entries are dropped from the file when it is loaded again.
        let d = Dedupe::load(&path, 1000, 100, 10_800).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEAD + ENTRY) as u64
        );
    }

    /// Memory and file stay bounded by `max_ids`: the oldest ids go first, and the file is
    /// compacted to the newest once it holds twice as many.
    #[test]
    fn at_most_max_ids_are_remembered_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = ids_path(dir.path());
        let mut d = Dedupe::load(&path, 60_000, 3, 10_000).unwrap();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            d.add(10_000 + i as u64, hash(id));
        }
        assert_eq!(d.len(), 3);
        assert!(!d.contains(hash("a")) && d.contains(hash("b")) && d.contains(hash("d")));
        assert_eq!(d.span_ms(10_010), 9);
        let entry = |i: u64| (10_000 + i, hash(&format!("id{i}")));
        let entries: Vec<_> = (0..6).map(entry).collect();
        append(&path, &entries, 3).unwrap();
        assert_eq!(file_entries(&path), 6, "twice max_ids: not compacted yet");
        append(&path, &[entry(6)], 3).unwrap();
        assert_eq!(file_entries(&path), 3, "compacted to the newest");
        let d = Dedupe::load(&path, 60_000, 3, 10_010).unwrap();
        assert!(d.contains(hash("id6")) && d.contains(hash("id4")) && !d.contains(hash("id3")));
        // A smaller max_ids on load keeps the newest.
        let d = Dedupe::load(&path, 60_000, 1, 10_010).unwrap();
        assert_eq!(d.len(), 1);
        assert!(d.contains(hash("id6")));
    }

    fn file_entries(path: &Path) -> u64 {
        (std::fs::metadata(path).unwrap().len() - HEAD as u64) / ENTRY as u64
    }
}
