//! NDJSON files read by position, so that reading is shared by the workers.
//!
//! A plain NDJSON file needs no reading to be cut into chunks of whole lines: a chunk can end
//! at the first line break after a chosen offset, and finding it takes a small read around
//! that offset. The reader thread therefore only chooses the chunks' byte ranges
//! ([`FileRanges`]), and each worker copies its own chunk out of the page cache
//! ([`Chunk::load`]). The copy (the reader thread's only real work when it reads everything)
//! then runs on every core instead of one, and lands in the cache of the core that parses it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{Chunk, Chunks, Splitter, open_file};

/// How much is read at a time when looking for the line break that ends a chunk.
const PROBE: usize = 16 * 1024;

/// Bytes of a file that a worker still has to read into its chunk.
#[derive(Debug)]
pub struct Load {
    file: Arc<File>,
    start: u64,
    end: u64,
}

impl Load {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// The byte offset in the file where the range ends.
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl Chunk {
    /// Reads the chunk's bytes if they are still in the file (see [`FileRanges`]); a chunk
    /// whose bytes are already in `data` is left as it is.
    pub fn load(&mut self) -> io::Result<()> {
        let Some(load) = self.load.take() else {
            return Ok(());
        };
        // Recycled buffers keep their old length, so only growth is zeroed here.
        self.data.resize(load.len() as usize, 0);
        load.file
            .read_exact_at(&mut self.data, load.start)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "the file became shorter while it was read (bytes {}..{} are gone)",
                            load.start, load.end
                        ),
                    )
                } else {
                    e
                }
            })
    }
}

/// Cuts a plain NDJSON file into chunks of whole lines without reading them (see the module
/// documentation).
pub struct FileRanges {
    file: Arc<File>,
    input: usize,
    chunk_size: u64,
    /// Where the next chunk starts.
    pos: u64,
    /// The file's size when last measured.
    size: u64,
    probe: Vec<u8>,
}

impl FileRanges {
    /// Chunks of the uncompressed file at `path`: byte ranges when it is a regular file of
    /// NDJSON, otherwise a stream (pipes, JSON arrays, pretty-printed values).
    pub fn open(path: &Path, input: usize, chunk_size: usize) -> io::Result<Chunks> {
        let file = open_file(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Chunks::Stream(Splitter::new(
                Box::new(file),
                input,
                chunk_size,
            )));
        }
        // The layout is told apart exactly as for streamed input; detection moves only the
        // clone's file position, which positional reads ignore. Input that is not NDJSON goes
        // on streaming from where detection left off.
        let mut splitter = Splitter::new(Box::new(file.try_clone()?), input, chunk_size);
        let Some(start) = splitter.ndjson_start()? else {
            return Ok(Chunks::Stream(splitter));
        };
        Ok(Chunks::Ranges(FileRanges {
            file: Arc::new(file),
            input,
            chunk_size: chunk_size.max(4096) as u64,
            pos: start,
            size: meta.len(),
            probe: vec![0; PROBE],
        }))
    }

    /// The next chunk, with `spare` as its buffer and its bytes left for [`Chunk::load`], or
    /// `None` at the end of the file.
    pub fn next_chunk(&mut self, seq: u64, spare: Vec<u8>) -> io::Result<Option<Chunk>> {
        if self.pos >= self.size {
            // Read what was appended since the file was measured, like a streamed read would.
            self.size = self.file.metadata()?.len();
            if self.pos >= self.size {
                return Ok(None);
            }
        }
        let start = self.pos;
        let end = self.cut_after(start + self.chunk_size)?;
        self.pos = end;
        Ok(Some(Chunk {
            seq,
            input: self.input,
            data: spare,
            lines: true,
            load: Some(Load {
                file: self.file.clone(),
                start,
                end,
            }),
            ..Chunk::default()
        }))
    }

    /// Where a chunk that should reach `at` ends: just after the first line break at
    /// `at - 1` or later, or at the end of the file.
    fn cut_after(&mut self, at: u64) -> io::Result<u64> {
        let mut pos = at - 1;
        while pos < self.size {
            let want = PROBE.min((self.size - pos) as usize);
            let n = match self.file.read_at(&mut self.probe[..want], pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break; // shorter than measured: the worker's read reports it
            }
            if let Some(i) = memchr::memchr(b'\n', &self.probe[..n]) {
                return Ok(pos + i as u64 + 1);
            }
            pos += n as u64;
        }
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Every record of `text`, cut by `FileRanges` with chunks of `chunk` bytes, with its
    /// line number in the file; and whether the file was read by position at all.
    fn records(text: &[u8], chunk: usize) -> (Vec<(String, u64)>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text)
            .unwrap();
        let Chunks::Ranges(mut ranges) = FileRanges::open(&path, 0, chunk).unwrap() else {
            return (Vec::new(), false);
        };
        ranges.chunk_size = chunk as u64; // below the floor `open` applies
        let mut out = Vec::new();
        let mut next_line = 1;
        let mut seq = 0;
        while let Some(mut c) = ranges.next_chunk(seq, b"stale bytes".to_vec()).unwrap() {
            seq += 1;
            c.load().unwrap();
            c.split_lines();
            let offset = c.line_offset(&mut next_line);
            for r in &c.records {
                let text = &c.data[r.start as usize..r.end as usize];
                out.push((String::from_utf8_lossy(text).into_owned(), r.line + offset));
            }
        }
        (out, true)
    }

    #[test]
    fn chunks_hold_whole_lines_and_count_them() {
        let text: String = (0..300)
            .map(|i| {
                let blank = if i % 7 == 0 { "\n" } else { "" };
                format!(
                    "{blank}{{\"i\":{i},\"pad\":\"{}\"}}\r\n",
                    "x".repeat(i % 41)
                )
            })
            .collect();
        let expected: Vec<(String, u64)> = text
            .split('\n')
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| (l.trim_end_matches('\r').to_string(), n as u64 + 1))
            .collect();
        for chunk in [1, 2, 17, 64, 1000, 1 << 20] {
            let (got, by_position) = records(text.as_bytes(), chunk);
            assert!(by_position);
            assert_eq!(got, expected, "chunks of {chunk} bytes");
        }
    }

    #[test]
    fn a_bom_and_a_last_line_without_a_break() {
        let (got, by_position) = records(b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}", 1);
        assert!(by_position);
        assert_eq!(got, vec![("{\"a\":1}".into(), 1), ("{\"b\":2}".into(), 2)]);
    }

    #[test]
    fn lines_longer_than_the_probe() {
        let long = format!("{{\"s\":\"{}\"}}", "y".repeat(3 * PROBE + 5));
        let text = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n");
        let (got, _) = records(text.as_bytes(), 3);
        assert_eq!(
            got,
            vec![("{\"a\":1}".into(), 1), (long, 2), ("{\"b\":2}".into(), 3)]
        );
    }

    #[test]
    fn other_layouts_are_streamed() {
        assert!(!records(b"[{\"a\":1}]", 64).1);
        assert!(!records(b"{\n\"a\":1\n}\n", 64).1);
        // An empty file has nothing to cut.
        assert_eq!(records(b"", 64), (Vec::new(), true));
    }

    #[test]
    fn a_file_cut_short_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "{\"a\":1}\n".repeat(1000)).unwrap();
        let Chunks::Ranges(mut ranges) = FileRanges::open(&path, 0, 4096).unwrap() else {
            panic!("NDJSON in a regular file is cut into ranges");
        };
        let mut chunk = ranges.next_chunk(0, Vec::new()).unwrap().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        let err = chunk.load().unwrap_err();
        assert!(err.to_string().contains("became shorter"), "{err}");
    }
}
