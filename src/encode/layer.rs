//! File layers: transformations of a sealed file's bytes (a format's conversion, compression,
//! encryption), composed in order on the byte stream, whatever the format.
//!
//! A batch's rows get their batch-size field only when it closes (see
//! [`Format::batch_size_fix`](super::Format::batch_size_fix)), so layers cannot run while
//! rows arrive: at the close, the rows are rewritten on their way through the layers into a
//! second file beside the batch's (bounded memory; twice the disk for a moment), which then
//! replaces it.
//!
//! A new layer is a type implementing [`FileLayer`], built in [`layers_for`].

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use tempfile::TempPath;

use crate::mapping::{Compression, Extension, FileFormat, Mapping, PgpKey};

/// A writer that must be told when its input ends (compressors write a trailer), then
/// hands the finish on to the writer it wraps.
pub trait LayerWriter: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// The layers a key can name: each owns its key suffix and what it does to the object's
/// HTTP headers. One table serves naming, the outbox (whose files' metadata is their name)
/// and uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Gzip,
    Zstd,
    Pgp,
}

impl LayerKind {
    pub const ALL: &[LayerKind] = &[LayerKind::Gzip, LayerKind::Zstd, LayerKind::Pgp];

    /// What the layer adds to the object key.
    pub const fn key_suffix(self) -> &'static str {
        match self {
            LayerKind::Gzip => ".gz",
            LayerKind::Zstd => ".zst",
            LayerKind::Pgp => ".gpg",
        }
    }

    /// The `Content-Encoding` the layer gives the object, when HTTP names it (gzip: a
    /// client may decode it transparently, and the Content-Type stays the format's).
    pub const fn content_encoding(self) -> Option<&'static str> {
        match self {
            LayerKind::Gzip => Some("gzip"),
            LayerKind::Zstd | LayerKind::Pgp => None,
        }
    }

    /// The Content-Type replacing the format's, when the bytes no longer are the format
    /// to a client (an encrypted message).
    pub const fn content_type(self) -> Option<&'static str> {
        match self {
            LayerKind::Pgp => Some("application/pgp-encrypted"),
            LayerKind::Gzip | LayerKind::Zstd => None,
        }
    }
}

/// Content-Type and Content-Encoding of a file in `content_type`'s format after `kinds`
/// (in the order they applied): an encoding holds only while it is the outermost layer.
pub fn headers(
    content_type: &'static str,
    kinds: impl IntoIterator<Item = LayerKind>,
) -> (&'static str, Option<&'static str>) {
    let (mut ct, mut enc) = (content_type, None);
    for k in kinds {
        if let Some(t) = k.content_type() {
            ct = t;
        }
        enc = k.content_encoding();
    }
    (ct, enc)
}

/// Splits a file name into its stem (with the format's extension) and the layers its
/// suffixes name, in the order they applied: `a.csv.gz.gpg` → (`a.csv`, [gzip, pgp]).
pub fn split_suffixes(name: &str) -> (&str, Vec<LayerKind>) {
    let mut stem = name;
    let mut kinds = Vec::new();
    while let Some(k) = LayerKind::ALL.iter().find(|k| {
        let s = k.key_suffix();
        stem.len() > s.len() && stem.ends_with(s)
    }) {
        stem = &stem[..stem.len() - k.key_suffix().len()];
        kinds.push(*k);
    }
    kinds.reverse();
    (stem, kinds)
}

/// Content-Type and Content-Encoding from a key alone (files found in the outbox, whose
/// metadata is their name): the format from the extension before the layer suffixes.
pub fn headers_for_key(key: &str) -> (&'static str, Option<&'static str>) {
    let (stem, kinds) = split_suffixes(key);
    let ext = stem.rsplit_once('.').map_or("", |(_, e)| e);
    let ct = Extension::parse(ext).map_or("text/plain", Extension::content_type);
    headers(ct, kinds)
}

/// One transformation of a file's bytes.
pub trait FileLayer: Send + Sync + std::fmt::Debug {
    /// What the layer is, for the key suffix and headers; `None` for a format's own
    /// conversion (Parquet's), which names nothing.
    fn kind(&self) -> Option<LayerKind>;

    /// Wraps `inner`: bytes written to the result come out of `inner` transformed.
    /// `staging` is where a layer may keep a temporary file; `input_len` is exactly how
    /// many bytes will be written, when that is known (zstd records it in the frame header,
    /// where one-shot decoders look for it).
    fn wrap<'w>(
        &self,
        inner: Box<dyn LayerWriter + 'w>,
        staging: &Path,
        input_len: Option<u64>,
    ) -> io::Result<Box<dyn LayerWriter + 'w>>;
}

/// The key suffixes of `layers`, in order (`.gz.gpg`).
pub fn key_suffixes(layers: &[Box<dyn FileLayer>]) -> String {
    layers
        .iter()
        .filter_map(|l| l.kind())
        .map(LayerKind::key_suffix)
        .collect()
}

/// The layers of a mapping's files, in the order they apply: the format's conversion
/// (Parquet), compression (for Parquet its codec instead), encryption.
pub fn layers_for(m: &Mapping) -> Vec<Box<dyn FileLayer>> {
    let mut layers: Vec<Box<dyn FileLayer>> = Vec::new();
    if m.format == FileFormat::Parquet {
        layers.push(Box::new(super::parquet::ParquetLayer::new(m)));
    } else {
        match m.compression {
            Compression::None => {}
            Compression::Gzip => layers.push(Box::new(Gzip)),
            Compression::Zstd => layers.push(Box::new(Zstd)),
        }
    }
    if let Some(key) = &m.encryption {
        layers.push(Box::new(Pgp(key.clone())));
    }
    layers
}

/// gzip (RFC 1952) at the default level, as `gzip` and Segment classic's logs write it,
/// compressed on every core (see [`super::gzip_blocks`]).
#[derive(Debug)]
pub struct Gzip;

impl FileLayer for Gzip {
    fn kind(&self) -> Option<LayerKind> {
        Some(LayerKind::Gzip)
    }

    fn wrap<'w>(
        &self,
        inner: Box<dyn LayerWriter + 'w>,
        _staging: &Path,
        _input_len: Option<u64>,
    ) -> io::Result<Box<dyn LayerWriter + 'w>> {
        Ok(Box::new(super::gzip_blocks::GzipBlocks::new(
            inner,
            flate2::Compression::default(),
        )?))
    }
}

/// Zstandard (RFC 8878) at its default level (3), readable by `zstd -d`.
#[derive(Debug)]
pub struct Zstd;

struct ZstdWriter<'w>(zstd::stream::write::Encoder<'static, Box<dyn LayerWriter + 'w>>);

impl Write for ZstdWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl LayerWriter for ZstdWriter<'_> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

impl FileLayer for Zstd {
    fn kind(&self) -> Option<LayerKind> {
        Some(LayerKind::Zstd)
    }

    fn wrap<'w>(
        &self,
        inner: Box<dyn LayerWriter + 'w>,
        _staging: &Path,
        input_len: Option<u64>,
    ) -> io::Result<Box<dyn LayerWriter + 'w>> {
        let mut enc = zstd::stream::write::Encoder::new(inner, zstd::DEFAULT_COMPRESSION_LEVEL)?;
        // The frame says how to check it: `zstd -d` verifies the content checksum.
        enc.include_checksum(true)?;
        // And how long its content is: one-shot decoders (python-zstandard's
        // `decompress`) refuse a frame that does not say.
        enc.set_pledged_src_size(input_len)?;
        // Compressed on every core: batches are sealed at the end of input (in parallel,
        // but rarely of one size) and full ones on the writer thread, where a single-threaded
        // compressor would stall the run; the frame is the same standard one.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores > 1 {
            enc.multithread(cores as u32)?;
        }
        Ok(Box::new(ZstdWriter(enc)))
    }
}

/// OpenPGP encryption to the customer's public key (rPGP), after compression.
///
/// rPGP reads its plaintext from a reader, so the layer's input is spooled to a temporary
/// file in `staging` and encrypted from there when the input ends: bounded memory, one
/// extra pass on disk.
#[derive(Debug)]
pub struct Pgp(pub PgpKey);

struct PgpWriter<'w> {
    key: PgpKey,
    spool: BufWriter<File>,
    inner: Box<dyn LayerWriter + 'w>,
}

impl Write for PgpWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.spool.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()
    }
}

impl LayerWriter for PgpWriter<'_> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let PgpWriter {
            key,
            spool,
            mut inner,
        } = *self;
        let mut file = spool.into_inner().map_err(|e| e.into_error())?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
        key.encrypt(BufReader::with_capacity(256 * 1024, file), &mut inner)
            .map_err(|e| io::Error::other(format!("PGP encryption failed: {e}")))?;
        inner.finish()
    }
}

impl FileLayer for Pgp {
    fn kind(&self) -> Option<LayerKind> {
        Some(LayerKind::Pgp)
    }

    fn wrap<'w>(
        &self,
        inner: Box<dyn LayerWriter + 'w>,
        staging: &Path,
        _input_len: Option<u64>,
    ) -> io::Result<Box<dyn LayerWriter + 'w>> {
        // An unnamed file: removed by the OS however the run ends.
        let spool = tempfile::tempfile_in(staging)?;
        Ok(Box::new(PgpWriter {
            key: self.0.clone(),
            spool: BufWriter::with_capacity(256 * 1024, spool),
            inner,
        }))
    }
}

/// The end of a layer chain: a buffered file.
struct FileEnd(BufWriter<File>);

impl Write for FileEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl LayerWriter for FileEnd {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

/// Streams the file at `sealed` through `layers` into a new temporary file in `staging`;
/// returns it and its size. Batches go through [`apply_with`] (their rows rewritten on the
/// way); this whole-file form is what the layers' tests feed.
#[cfg(test)]
pub(crate) fn apply(
    sealed: &Path,
    layers: &[Box<dyn FileLayer>],
    staging: &Path,
) -> io::Result<(TempPath, u64)> {
    let file = File::open(sealed)?;
    let len = file.metadata()?.len();
    apply_with(layers, staging, Some(len), |writer| {
        let mut input = BufReader::with_capacity(256 * 1024, file);
        io::copy(&mut input, writer)?;
        Ok(())
    })
}

/// Runs `write_plain`, which writes a file's plain content (`plain_len` bytes, when known),
/// with its bytes going through `layers` into a new temporary file in `staging`; returns
/// that file and its size.
///
/// The content need never exist as a file of its own: a batch rewrites its rows on their
/// way into the compressor instead of rewriting them on disk first.
pub fn apply_with(
    layers: &[Box<dyn FileLayer>],
    staging: &Path,
    plain_len: Option<u64>,
    write_plain: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<(TempPath, u64)> {
    let out = crate::output_file::create(staging, ".layered-")?;
    let (file, path) = out.into_parts();
    let mut writer: Box<dyn LayerWriter> = Box::new(FileEnd(BufWriter::with_capacity(
        256 * 1024,
        file.try_clone()?,
    )));
    for (i, layer) in layers.iter().enumerate().rev() {
        // Only the first layer takes the plain bytes; the others' input is its output.
        let input_len = if i == 0 { plain_len } else { None };
        writer = layer.wrap(writer, staging, input_len)?;
    }
    write_plain(&mut writer)?;
    writer.finish()?;
    let size = file.metadata()?.len();
    Ok((path, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A file of `len` bytes cycling through `period` values, and its content.
    fn plain_file(dir: &Path, len: u32, period: u32) -> (std::path::PathBuf, Vec<u8>) {
        let path = dir.join("plain");
        let content: Vec<u8> = (0..len).map(|i| (i % period) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        (path, content)
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn gzip_round_trip_streams_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, content) = plain_file(dir.path(), 3_000_000, 251);
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Gzip)];
        let (out, size) = apply(&plain, &layers, dir.path()).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        assert!(gunzip(&out) == content);
    }

    /// A zstd frame says how long its content is (one-shot decoders need it), also under
    /// another layer, and the content is intact.
    #[test]
    fn zstd_frames_record_their_content_size() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, content) = plain_file(dir.path(), 1_000_000, 97);
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Zstd)];
        let (out, _) = apply(&plain, &layers, dir.path()).unwrap();
        let frame = std::fs::read(&out).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).ok(),
            Some(Some(content.len() as u64))
        );
        assert!(zstd::decode_all(&frame[..]).unwrap() == content);
        // The outer layer's input is the compressed frame, whose length nobody pledged.
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Zstd), Box::new(Gzip)];
        let (out, _) = apply(&plain, &layers, dir.path()).unwrap();
        let frame = gunzip(&out);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).ok(),
            Some(Some(content.len() as u64))
        );
        // A wrong length is an error, never a frame that lies.
        let err = apply_with(
            &[Box::new(Zstd) as Box<dyn FileLayer>],
            dir.path(),
            Some(5),
            |w| w.write_all(b"four"),
        );
        assert!(err.is_err());
    }

    /// Two layers compose in order: the outer one sees the inner one's output.
    #[test]
    fn layers_compose_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"a,b\n\"1\",\"2\"").unwrap();
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Gzip), Box::new(Gzip)];
        let (out, _) = apply(&plain, &layers, dir.path()).unwrap();
        let once = gunzip(&out);
        let mut twice = Vec::new();
        flate2::read::GzDecoder::new(&once[..])
            .read_to_end(&mut twice)
            .unwrap();
        assert_eq!(twice, b"a,b\n\"1\",\"2\"");
    }
}
