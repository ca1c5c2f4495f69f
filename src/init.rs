//! `s3actions init`: a commented starter mapping file, and the schema next to it so that an
//! editor with the YAML language server completes and checks it right away.
//!
//! The starters are the bundled mappings (`mappings/*.yaml`), which the tests replay and
//! validate, so a starter always works.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Which starter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starter {
    /// Track and identify calls with Segment's default columns.
    Classic,
    /// Engage audience membership.
    Audiences,
    /// Reverse ETL model rows.
    ReverseEtl,
}

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists; init never replaces a file (give another FILE)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The starter's text, its first line pointing editors at `mapping.schema.json` beside it.
pub fn starter(kind: Starter) -> String {
    let bundled = match kind {
        Starter::Classic => include_str!("../mappings/events.yaml"),
        Starter::Audiences => include_str!("../mappings/audiences.yaml"),
        Starter::ReverseEtl => include_str!("../mappings/reverse-etl.yaml"),
    };
    let body = bundled.strip_prefix(BUNDLED_MODELINE).unwrap_or(bundled);
    format!("{}{body}", crate::migrate::SCHEMA_MODELINE)
}

/// The first line of the bundled mappings (the schema, relative to `mappings/`).
pub const BUNDLED_MODELINE: &str =
    "# yaml-language-server: $schema=../schema/mapping.schema.json\n";

/// Writes the starter to `path` and, unless there is one, `mapping.schema.json` beside it.
/// Returns the files written.
pub fn write_starter(path: &Path, kind: Starter) -> Result<Vec<PathBuf>, InitError> {
    let mut written = vec![path.to_path_buf()];
    create_new(path, starter(kind).as_bytes())?;
    let schema = path
        .parent()
        .unwrap_or(Path::new("."))
        .join("mapping.schema.json");
    if !schema.exists() {
        create_new(
            &schema,
            crate::mapping::schema::mapping_schema_text().as_bytes(),
        )?;
        written.push(schema);
    }
    Ok(written)
}

fn create_new(path: &Path, bytes: &[u8]) -> Result<(), InitError> {
    let write = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(InitError::Exists(path.to_path_buf()));
        }
        Err(e) => return Err(write(e)),
    };
    f.write_all(bytes).map_err(write)
}
