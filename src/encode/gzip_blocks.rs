//! gzip on every core, as pigz writes it: the input is cut into blocks of [`BLOCK`] bytes,
//! each compressed on its own thread as raw deflate primed with the 32 KiB before it (so
//! matches still reach back across the cut), ended with a sync flush so that the pieces
//! join into one deflate stream, and the blocks' CRC-32s are combined. The result is one
//! ordinary gzip member that any reader decodes; only the bytes differ slightly from
//! single-threaded gzip's.
//!
//! Memory stays bounded: at most one block per core (plus one) is in flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, Compression, FlushCompress, Status};

use super::layer::LayerWriter;

/// Input per block: large enough that the per-block costs (a thread, a sync flush, the
/// dictionary) vanish, small enough to spread a few megabytes over the cores.
pub const BLOCK: usize = 1024 * 1024;

/// How far deflate looks back: the dictionary each block is primed with.
const WINDOW: usize = 32 * 1024;

/// A compressed block and the CRC-32 of its input.
type Compressed = io::Result<(Vec<u8>, crc32fast::Hasher)>;

pub struct GzipBlocks<'w> {
    inner: Box<dyn LayerWriter + 'w>,
    level: Compression,
    /// Input of the block being filled.
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes before `block`.
    dict: Vec<u8>,
    /// Blocks being compressed, oldest first.
    pending: VecDeque<mpsc::Receiver<Compressed>>,
    max_pending: usize,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<'w> GzipBlocks<'w> {
    pub fn new(inner: Box<dyn LayerWriter + 'w>, level: Compression) -> io::Result<Self> {
        let mut w = GzipBlocks {
            inner,
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            pending: VecDeque::new(),
            max_pending: std::thread::available_parallelism().map_or(1, |n| n.get()) + 1,
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        // ID1 ID2, deflate, no flags, no time, extra flags 0 (the default level), OS unknown:
        // the header flate2's encoder writes.
        w.inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        Ok(w)
    }

    /// Hands the full block to a thread of its own.
    fn dispatch(&mut self) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = input[input.len().saturating_sub(WINDOW)..].to_vec();
        let (tx, rx) = mpsc::channel();
        let level = self.level;
        std::thread::Builder::new()
            .name("s3actions-gzip".into())
            .spawn(move || {
                let _ = tx.send(compress(&input, &dict, level, false));
            })?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest block and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let (bytes, crc) = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip thread stopped"))??;
            self.crc.combine(&crc);
            self.inner.write_all(&bytes)?;
        }
        Ok(())
    }
}

impl Write for GzipBlocks<'_> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let take = (BLOCK - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == BLOCK {
                self.dispatch()?;
            }
        }
        self.len += n as u64;
        Ok(n)
    }

    /// Blocks are only complete when full or at the end: nothing to flush before.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LayerWriter for GzipBlocks<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        // The last block (perhaps empty) ends the stream, here on this thread.
        let (bytes, crc) = compress(&self.block, &self.dict, self.level, true)?;
        self.crc.combine(&crc);
        self.inner.write_all(&bytes)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        // ISIZE: the input's length modulo 2^32.
        trailer[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
        self.inner.write_all(&trailer)?;
        self.inner.finish()
    }
}

/// Raw deflate of `input` primed with `dict`, ending on a byte boundary (sync flush), or
/// ending the stream when `last`; with the CRC-32 of `input`.
fn compress(input: &[u8], dict: &[u8], level: Compression, last: bool) -> Compressed {
    let mut c = Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 3 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == input.len();
        let done = if last {
            status == Status::StreamEnd
        } else {
            // A flush is complete when it left room in the output.
            all_in && out.len() < out.capacity()
        };
        if done {
            break;
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl LayerWriter for Sink {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn gzip(input: &[u8], pieces: usize) -> Vec<u8> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w =
            Box::new(GzipBlocks::new(Box::new(Sink(out.clone())), Compression::default()).unwrap());
        for piece in input.chunks(input.len().div_ceil(pieces).max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap();
        out.lock().unwrap().clone()
    }

    /// One member, read back whole by flate2's single-member decoder (which checks the CRC
    /// and length), at every size around the block boundaries and however it is written.
    #[test]
    fn blocks_join_into_one_gzip_member() {
        let mut rng = fastrand::Rng::with_seed(9);
        let text: Vec<u8> = (0..3 * BLOCK + 777)
            .map(|i| b"abcdefgh ,\"\n0123"[(i / 7 + rng.usize(..3)) % 16])
            .collect();
        let noise: Vec<u8> = (0..BLOCK + 5).map(|_| rng.u8(..)).collect();
        for (name, input) in [
            ("empty", &[][..]),
            ("small", &text[..1000]),
            ("one block", &text[..BLOCK]),
            ("one block and a byte", &text[..BLOCK + 1]),
            ("several blocks", &text[..]),
            ("incompressible", &noise[..]),
        ] {
            let whole = gzip(input, 1);
            for pieces in [1, 3, 1000] {
                let gz = gzip(input, pieces);
                // Blocks are cut by count: the same input gives the same bytes, however it
                // was written (files are compared by content after a crash).
                assert!(gz == whole, "{name} in {pieces} pieces");
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut back)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(back == input, "{name} in {pieces} pieces");
                if name == "several blocks" {
                    // The dictionary keeps the ratio of one stream.
                    let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
                    one.write_all(input).unwrap();
                    let one = one.finish().unwrap();
                    assert!(
                        gz.len() < one.len() + one.len() / 50,
                        "{} vs {}",
                        gz.len(),
                        one.len()
                    );
                }
            }
        }
    }
}
