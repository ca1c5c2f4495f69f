//! The spool's files: segments of framed records, one record per accepted request.
//!
//! A segment starts with a header (magic, format version, the sequence number of its first
//! event) and holds frames: `len u32 | crc32 u32 | first_seq u64 | count u32 |
//! received_ms u64 | ids u32 | payload[len] | id_hashes[ids × 16]`, little-endian, the CRC
//! over everything after itself. The payload is the request's events, one per line;
//! `count` is its number of lines and `first_seq` the sequence number of its first; the id
//! hashes are its events' `messageId`s, hashed, when de-duplication is on. A frame cut short or whose CRC does not
//! match ends the segment's valid part: it was never acknowledged (see [`scan`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::SpoolError;

pub const MAGIC: &[u8; 8] = b"S3ASPOOL";
/// The segments' format version.
pub const VERSION: u32 = 1;
/// Bytes before the first frame.
pub const HEADER_LEN: u64 = 8 + 4 + 8;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER: usize = 4 + 4 + 8 + 4 + 8 + 4;
/// Bytes of one id hash.
pub const ID_HASH: usize = 16;
/// Largest payload a frame may have (a request is at most a few MiB).
pub const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

/// `00000000000000001234.seg`: names sort in sequence order.
pub fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The first sequence number in a segment's file name.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub fn header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    h
}

/// Appends one frame to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    first_seq: u64,
    count: u32,
    received_ms: u64,
    payload: &[u8],
    ids: &[u128],
) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&received_ms.to_le_bytes());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A frame's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub crc: u32,
    pub first_seq: u64,
    pub count: u32,
    pub received_ms: u64,
    /// Id hashes after the payload.
    pub ids: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; FRAME_HEADER]) -> FrameHeader {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        FrameHeader {
            len: u32_at(0),
            crc: u32_at(4),
            first_seq: u64_at(8),
            count: u32_at(16),
            received_ms: u64_at(20),
            ids: u32_at(28),
        }
    }

    /// Whether `payload` and `ids` (the bytes after it) are this frame's, unaltered.
    pub fn checks(&self, raw_header: &[u8; FRAME_HEADER], payload: &[u8], ids: &[u8]) -> bool {
        let mut h = crc32fast::Hasher::new();
        h.update(&raw_header[8..]);
        h.update(payload);
        h.update(ids);
        h.finalize() == self.crc
    }

    /// Bytes of the id hashes.
    pub fn ids_len(&self) -> usize {
        self.ids as usize * ID_HASH
    }

    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER as u64 + u64::from(self.len) + self.ids_len() as u64
    }
}

/// The id hashes of a frame's tail.
pub fn id_hashes(bytes: &[u8]) -> impl Iterator<Item = u128> + '_ {
    bytes
        .chunks_exact(ID_HASH)
        .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
}

/// Reads and checks a segment's header; returns its first sequence number.
pub fn read_header(path: &Path, file: &mut File) -> Result<Option<u64>, SpoolError> {
    let mut h = [0u8; HEADER_LEN as usize];
    match read_full(file, &mut h) {
        Ok(n) if n < h.len() => return Ok(None), // torn while it was being created
        Ok(_) => {}
        Err(source) => return Err(SpoolError::io(path, source)),
    }
    if &h[..8] != MAGIC {
        return Err(SpoolError::NotASpool {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(SpoolError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(Some(u64::from_le_bytes(
        h[12..20].try_into().expect("8 bytes"),
    )))
}

/// What [`scan`] found in a segment.
#[derive(Debug)]
pub struct Scanned {
    pub path: PathBuf,
    pub first: u64,
    /// Where its valid frames end (the file is truncated there).
    pub len: u64,
    /// The sequence number after its last event.
    pub next_seq: u64,
}

/// Checks every frame of a segment, truncating at the first that is cut short or does
/// not match its CRC (reported: it was never acknowledged, since a request is answered
/// only once all of its frame is fsynced). `ids` gets every frame's receive time and id
/// hashes. `None`: the file has no complete header.
pub fn scan(path: &Path, ids: &mut dyn FnMut(u64, &[u8])) -> Result<Option<Scanned>, SpoolError> {
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| SpoolError::io(path, e))?;
    let size = file.metadata().map_err(|e| SpoolError::io(path, e))?.len();
    let Some(first) = read_header(path, &mut file)? else {
        return Ok(None);
    };
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut file);
    let mut pos = HEADER_LEN;
    let mut next_seq = first;
    let mut payload = Vec::new();
    let problem = loop {
        let mut raw = [0u8; FRAME_HEADER];
        match read_full(&mut reader, &mut raw) {
            Ok(0) => break None,
            Ok(n) if n < FRAME_HEADER => break Some("a frame header cut short".to_string()),
            Ok(_) => {}
            Err(e) => return Err(SpoolError::io(path, e)),
        }
        let h = FrameHeader::parse(&raw);
        if h.len > MAX_PAYLOAD || h.ids > MAX_PAYLOAD / ID_HASH as u32 {
            break Some(format!("a frame length of {} bytes", h.len));
        }
        let body = h.len as usize + h.ids_len();
        payload.resize(body, 0);
        match read_full(&mut reader, &mut payload) {
            Ok(n) if n < payload.len() => break Some("a frame cut short".to_string()),
            Ok(_) => {}
            Err(e) => return Err(SpoolError::io(path, e)),
        }
        let (lines, hashes) = payload.split_at(h.len as usize);
        if !h.checks(&raw, lines, hashes) {
            break Some("a frame whose CRC does not match".to_string());
        }
        if h.first_seq != next_seq {
            break Some(format!(
                "a frame numbered {} where {next_seq} was expected",
                h.first_seq
            ));
        }
        ids(h.received_ms, hashes);
        next_seq += u64::from(h.count);
        pos += h.frame_len();
    };
    drop(reader);
    if let Some(what) = problem {
        tracing::warn!(
            "spool segment {}: {what} at byte {pos}; truncating {} byte(s) that were never acknowledged (a crash or power loss mid-write)",
            path.display(),
            size - pos
        );
        file.set_len(pos).map_err(|e| SpoolError::io(path, e))?;
        file.sync_all().map_err(|e| SpoolError::io(path, e))?;
    }
    Ok(Some(Scanned {
        path: path.to_path_buf(),
        first,
        len: pos,
        next_seq,
    }))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn segment(dir: &Path, first: u64, frames: &[(&str, u32)]) -> PathBuf {
        let path = dir.join(file_name(first));
        let mut bytes = header(first).to_vec();
        let mut seq = first;
        for (payload, count) in frames {
            encode_frame(&mut bytes, seq, *count, 1, payload.as_bytes(), &[]);
            seq += u64::from(*count);
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn names_sort_in_sequence_order() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment(dir.path(), 10, &[("a\nb\n", 2), ("c\n", 1)]);
        let whole = std::fs::metadata(&path).unwrap().len();
        // Half of a third frame.
        let mut third = Vec::new();
        encode_frame(&mut third, 13, 1, 1, b"d\n", &[7]);
        let mut f = File::options().append(true).open(&path).unwrap();
        f.write_all(&third[..third.len() - 1]).unwrap();
        drop(f);
        let s = scan(&path, &mut |_, _| {}).unwrap().unwrap();
        assert_eq!((s.first, s.len, s.next_seq), (10, whole, 13));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);

        // A flipped byte inside the second frame: only the first stays.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let s = scan(&path, &mut |_, _| {}).unwrap().unwrap();
        assert_eq!(s.next_seq, 12);
        assert_eq!(s.len, HEADER_LEN + FRAME_HEADER as u64 + 4);
    }

    #[test]
    fn other_files_and_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0));
        std::fs::write(&path, b"NOTSPOOL\x01\0\0\0\0\0\0\0\0\0\0\0").unwrap();
        assert!(matches!(
            scan(&path, &mut |_, _| {}),
            Err(SpoolError::NotASpool { .. })
        ));
        let mut h = header(0);
        h[8] = 9;
        std::fs::write(&path, h).unwrap();
        let e = scan(&path, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("format version 9"), "{e}");
    }
}
