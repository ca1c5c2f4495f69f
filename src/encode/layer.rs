//! File layers: transformations of a sealed file's bytes (compression; later encryption),
//! composed in order on the byte stream, whatever the format.
//!
//! A batch's rows are rewritten in place when it closes early (see
//! [`Format::batch_size_fix`](super::Format::batch_size_fix)), so layers cannot run while
//! rows arrive: the sealed file is streamed through them into a second file beside it
//! (bounded memory; twice the disk for a moment), which then replaces it.
//!
//! A new layer is a type implementing [`FileLayer`], built in [`layers_for`].

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use tempfile::TempPath;

use crate::mapping::{Compression, Mapping};

/// A writer that must be told when its input ends (compressors write a trailer), then
/// hands the finish on to the writer it wraps.
pub trait LayerWriter: Write {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// One transformation of a file's bytes.
pub trait FileLayer: Send + Sync + std::fmt::Debug {
    /// What the layer adds to the object key (`.gz`).
    fn key_suffix(&self) -> &'static str;

    /// The object's `Content-Encoding`, when the layer is one HTTP names (gzip).
    fn content_encoding(&self) -> Option<&'static str> {
        None
    }

    /// Wraps `inner`: bytes written to the result come out of `inner` transformed.
    fn wrap<'w>(&self, inner: Box<dyn LayerWriter + 'w>) -> Box<dyn LayerWriter + 'w>;
}

/// The layers of a mapping's files, in the order they apply.
pub fn layers_for(m: &Mapping) -> Vec<Box<dyn FileLayer>> {
    let mut layers: Vec<Box<dyn FileLayer>> = Vec::new();
    match m.compression {
        Compression::None => {}
        Compression::Gzip => layers.push(Box::new(Gzip)),
    }
    layers
}

/// gzip (RFC 1952) at the default level, as `gzip` and Segment classic's logs write it.
#[derive(Debug)]
pub struct Gzip;

struct GzWriter<'w>(flate2::write::GzEncoder<Box<dyn LayerWriter + 'w>>);

impl Write for GzWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl LayerWriter for GzWriter<'_> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

impl FileLayer for Gzip {
    fn key_suffix(&self) -> &'static str {
        ".gz"
    }

    fn content_encoding(&self) -> Option<&'static str> {
        Some("gzip")
    }

    fn wrap<'w>(&self, inner: Box<dyn LayerWriter + 'w>) -> Box<dyn LayerWriter + 'w> {
        Box::new(GzWriter(flate2::write::GzEncoder::new(
            inner,
            flate2::Compression::default(),
        )))
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

/// Streams the sealed file at `sealed` through `layers` into a new temporary file in
/// `staging`; returns it and its size. The sealed file is removed when `sealed` drops.
pub fn apply(
    sealed: &Path,
    layers: &[Box<dyn FileLayer>],
    staging: &Path,
) -> io::Result<(TempPath, u64)> {
    let out = tempfile::Builder::new()
        .prefix(".layered-")
        .tempfile_in(staging)?;
    let (file, path) = out.into_parts();
    let mut writer: Box<dyn LayerWriter> = Box::new(FileEnd(BufWriter::with_capacity(
        256 * 1024,
        file.try_clone()?,
    )));
    for layer in layers.iter().rev() {
        writer = layer.wrap(writer);
    }
    let mut input = BufReader::with_capacity(256 * 1024, File::open(sealed)?);
    io::copy(&mut input, &mut writer)?;
    writer.finish()?;
    let size = file.metadata()?.len();
    Ok((path, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trip_streams_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&plain, &content).unwrap();
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Gzip)];
        let (out, size) = apply(&plain, &layers, dir.path()).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(File::open(&out).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == content);
    }

    /// Two layers compose in order: the outer one sees the inner one's output.
    #[test]
    fn layers_compose_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"a,b\n\"1\",\"2\"").unwrap();
        let layers: Vec<Box<dyn FileLayer>> = vec![Box::new(Gzip), Box::new(Gzip)];
        let (out, _) = apply(&plain, &layers, dir.path()).unwrap();
        let mut once = Vec::new();
        flate2::read::GzDecoder::new(File::open(&out).unwrap())
            .read_to_end(&mut once)
            .unwrap();
        let mut twice = Vec::new();
        flate2::read::GzDecoder::new(&once[..])
            .read_to_end(&mut twice)
            .unwrap();
        assert_eq!(twice, b"a,b\n\"1\",\"2\"");
    }
}
