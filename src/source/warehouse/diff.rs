//! Comparing a model's rows with its previous snapshot, as Segment's Reverse ETL does: a
//! `record_id` (the identifier) and a `checksum` per row; a row whose identifier is new is
//! `new`, one whose checksum changed is `updated`, an identifier that is gone is `deleted`.
//!
//! The snapshot is a versioned state file (`<state_dir>/<model id>.snapshot`, see
//! [`crate::state`]): a header line, one JSON line describing the model's columns, then one
//! line per row (sorted by identifier): `<checksum: 16 hex digits of an MD5>\t<identifier as JSON>\t<userId JSON>\t<anonymousId
//! JSON>` (the last two empty when not configured). The checksum covers the
//! `compare_columns` (default: every column), names and values, so a change elsewhere sends
//! nothing.
//!
//! Events go to a spool file as the rows stream in (`<row>\t<event JSON>` per line, row 0
//! for deletions), and the next snapshot is written beside the current one, not yet in
//! place: [`super::RetlSource`] commits it once the events are durable.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::{Cell, RowSink, Warehouse, WarehouseError};
use crate::mapping::Model;
use crate::state::{self, Prepared, StateError};

/// The snapshot files' kind and format version (see [`crate::state`]).
pub const SNAPSHOT_KIND: &str = "snapshot";
pub const SNAPSHOT_VERSION: u32 = 1;

/// Where a model's snapshot lives.
pub fn snapshot_path(state_dir: &Path, model: &str) -> PathBuf {
    state_dir.join(format!("{model}.snapshot"))
}

/// What one model's diff found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiffReport {
    pub model: String,
    pub rows: u64,
    pub new: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Things to know (a changed column set), already worded.
    pub warnings: Vec<String>,
}

impl DiffReport {
    pub fn events(&self) -> u64 {
        self.new + self.updated + self.deleted
    }
}

/// A diffed model: its events in a spool file and its next snapshot, prepared.
pub struct Diffed {
    pub report: DiffReport,
    pub spool: tempfile::NamedTempFile,
    pub snapshot: Prepared,
}

/// Identifiers (as JSON text) in one string, so that a million rows cost no million
/// allocations: an identifier is its `(start, len)` in the arena.
#[derive(Default)]
struct Arena(String);

type Span = (u32, u32);

impl Arena {
    fn push(&mut self, id: &str) -> Span {
        let start = self.0.len() as u32;
        self.0.push_str(id);
        (start, id.len() as u32)
    }

    fn get(&self, (start, len): Span) -> &str {
        &self.0[start as usize..(start + len) as usize]
    }
}

/// `userId` / `anonymousId` (JSON text) kept for a row's `deleted` event, when they come
/// from columns other than the identifier.
#[derive(Clone, Debug, Default, PartialEq)]
struct Extra {
    user: Option<Box<str>>,
    anon: Option<Box<str>>,
}

/// A row of the previous snapshot, and its checksum in this run once seen.
struct Old {
    id: Span,
    sum: u64,
    new: Option<u64>,
    extra: Option<Box<Extra>>,
}

/// A row this run found that the previous snapshot does not have.
struct Added {
    id: Span,
    sum: u64,
    row: u64,
    extra: Option<Box<Extra>>,
}

/// The previous snapshot: rows sorted by identifier (binary search; 40 bytes a row).
#[derive(Default)]
struct Previous {
    ids: Arena,
    rows: Vec<Old>,
}

impl Previous {
    fn find(&self, id: &str) -> Option<usize> {
        self.rows
            .binary_search_by(|r| self.ids.get(r.id).cmp(id))
            .ok()
    }
}

/// The header line of a snapshot's body.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Header {
    model: String,
    identifier: String,
    columns: Vec<String>,
    /// The columns the checksum covers, in order.
    compared: Vec<String>,
}

fn damaged(path: &Path, line: u64, why: impl Into<String>) -> StateError {
    StateError::Damaged {
        path: path.to_path_buf(),
        line,
        why: why.into(),
    }
}

/// Reads a snapshot: its header and rows (empty when there is none).
fn load_snapshot(path: &Path) -> Result<(Option<Header>, Previous), StateError> {
    let Some(mut r) = state::open(path, SNAPSHOT_KIND, SNAPSHOT_VERSION)? else {
        return Ok((None, Previous::default()));
    };
    let io = |e| StateError::Io {
        action: "read",
        path: path.to_path_buf(),
        source: e,
    };
    let mut line = String::new();
    r.read_line(&mut line).map_err(io)?;
    let header: Header =
        serde_json::from_str(line.trim_end()).map_err(|e| damaged(path, 2, e.to_string()))?;
    let mut prev = Previous::default();
    let mut n = 2u64;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(io)? == 0 {
            break;
        }
        n += 1;
        let l = line
            .strip_suffix('\n')
            .ok_or_else(|| damaged(path, n, "the file ends mid-line"))?;
        let mut parts = l.split('\t');
        let (Some(sum), Some(id), Some(user), Some(anon), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(damaged(path, n, "expected 4 tab-separated fields"));
        };
        let sum = u64::from_str_radix(sum, 16).map_err(|_| damaged(path, n, "bad checksum"))?;
        let opt = |s: &str| (!s.is_empty()).then(|| Box::from(s));
        let extra = (!user.is_empty() || !anon.is_empty()).then(|| {
            Box::new(Extra {
                user: opt(user),
                anon: opt(anon),
            })
        });
        let id = prev.ids.push(id);
        prev.rows.push(Old {
            id,
            sum,
            new: None,
            extra,
        });
    }
    // Written sorted; sorted again only if someone edited the file.
    let ids = &prev.ids;
    if !prev
        .rows
        .is_sorted_by(|a, b| ids.get(a.id) <= ids.get(b.id))
    {
        prev.rows.sort_by(|a, b| ids.get(a.id).cmp(ids.get(b.id)));
    }
    Ok((Some(header), prev))
}

/// The diff as a [`RowSink`]: rows in, events to the spool.
struct Differ<'m> {
    model: &'m Model,
    timestamp: String,
    prev: Previous,
    added_ids: Arena,
    added: Vec<Added>,
    previous: Option<Header>,
    header: Option<Header>,
    /// Column indexes: identifier, compared, user and anonymous id.
    id_col: usize,
    compared: Vec<usize>,
    user_col: Option<usize>,
    anon_col: Option<usize>,
    columns: Vec<String>,
    spool: BufWriter<std::fs::File>,
    spool_path: PathBuf,
    report: DiffReport,
    /// Scratch buffers, reused for every row.
    id_json: Vec<u8>,
    value: Vec<u8>,
    event: Vec<u8>,
    props: Vec<u8>,
}

impl Differ<'_> {
    fn spool_error(&self, source: std::io::Error) -> WarehouseError {
        WarehouseError::Spool {
            model: self.model.id.clone(),
            path: self.spool_path.clone(),
            source,
        }
    }

    /// Writes one event line to the spool.
    fn emit(
        &mut self,
        row: u64,
        name: &str,
        id_json: &[u8],
        checksum: u64,
        user: Option<&str>,
        anon: Option<&str>,
    ) -> Result<(), WarehouseError> {
        // The same difference gets the same messageId whenever it is sent again (after a
        // failed run), so a loader can drop repeats.
        let mut h = Md5::new();
        h.update(self.model.id.as_bytes());
        h.update([0]);
        h.update(id_json);
        h.update([0]);
        h.update(name.as_bytes());
        h.update(checksum.to_le_bytes());
        let digest: [u8; 16] = h.finalize().into();
        let message_id = uuid::Builder::from_md5_bytes(digest).into_uuid();
        let e = &mut self.event;
        e.clear();
        e.extend_from_slice(itoa::Buffer::new().format(row).as_bytes());
        e.push(b'\t');
        e.extend_from_slice(b"{\"type\":\"track\",\"event\":\"");
        e.extend_from_slice(name.as_bytes());
        e.extend_from_slice(b"\",\"messageId\":\"");
        e.extend_from_slice(message_id.hyphenated().to_string().as_bytes());
        e.extend_from_slice(b"\",\"timestamp\":\"");
        e.extend_from_slice(self.timestamp.as_bytes());
        e.push(b'"');
        if let Some(u) = user {
            e.extend_from_slice(b",\"userId\":");
            e.extend_from_slice(u.as_bytes());
        }
        if let Some(a) = anon {
            e.extend_from_slice(b",\"anonymousId\":");
            e.extend_from_slice(a.as_bytes());
        }
        e.extend_from_slice(b",\"properties\":");
        e.extend_from_slice(&self.props);
        e.extend_from_slice(b",\"context\":{\"warehouse\":{\"model_id\":");
        serde_json::to_writer(&mut *e, &self.model.id).expect("writing to a Vec");
        e.extend_from_slice(b"},\"library\":{\"name\":\"s3actions\",\"version\":\"");
        e.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        e.extend_from_slice(b"\"}}}\n");
        let written = self.spool.write_all(&self.event);
        written.map_err(|err| self.spool_error(err))
    }

    fn column_index(&self, key: &'static str, name: &str) -> Result<usize, WarehouseError> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            let columns = self.columns.join(", ");
            if key == "identifier" {
                WarehouseError::MissingIdentifier {
                    model: self.model.id.clone(),
                    column: name.to_string(),
                    columns,
                }
            } else {
                WarehouseError::MissingColumn {
                    model: self.model.id.clone(),
                    key,
                    column: name.to_string(),
                    columns,
                }
            }
        })
    }
}

/// An identifier's JSON text as a `userId`/`anonymousId` (a JSON string).
fn id_string_from_json(id: &str) -> Box<str> {
    if id.starts_with('"') {
        Box::from(id)
    } else {
        serde_json::to_string(id)
            .expect("a string")
            .into_boxed_str()
    }
}

/// `cell` as JSON text for `userId`/`anonymousId` (a string), `None` for NULL.
fn id_string(cell: &Cell) -> Option<Box<str>> {
    let text = cell.id_text()?;
    Some(
        serde_json::to_string(&text)
            .expect("a string")
            .into_boxed_str(),
    )
}

impl RowSink for Differ<'_> {
    fn columns(&mut self, names: &[String]) -> Result<(), WarehouseError> {
        self.columns = names.to_vec();
        self.id_col = self.column_index("identifier", &self.model.identifier)?;
        self.compared = match &self.model.compare_columns {
            Some(cols) => cols
                .iter()
                .map(|c| self.column_index("compare_columns", c))
                .collect::<Result<_, _>>()?,
            None => (0..names.len()).collect(),
        };
        self.user_col = match &self.model.user_id_column {
            Some(c) => Some(self.column_index("user_id_column", c)?),
            None => None,
        };
        self.anon_col = match &self.model.anonymous_id_column {
            Some(c) => Some(self.column_index("anonymous_id_column", c)?),
            None => None,
        };
        let header = Header {
            model: self.model.id.clone(),
            identifier: self.model.identifier.clone(),
            columns: names.to_vec(),
            compared: self.compared.iter().map(|&i| names[i].clone()).collect(),
        };
        if let Some(prev) = &self.previous
            && !self.prev.rows.is_empty()
            && prev.compared != header.compared
        {
            let added: Vec<&str> = header
                .compared
                .iter()
                .filter(|c| !prev.compared.contains(c))
                .map(String::as_str)
                .collect();
            let removed: Vec<&str> = prev
                .compared
                .iter()
                .filter(|c| !header.compared.contains(c))
                .map(String::as_str)
                .collect();
            let mut what = Vec::new();
            if !added.is_empty() {
                what.push(format!("added {}", added.join(", ")));
            }
            if !removed.is_empty() {
                what.push(format!("removed {}", removed.join(", ")));
            }
            if what.is_empty() {
                what.push("reordered".into());
            }
            self.report.warnings.push(format!(
                "model {}: the compared columns changed since the last run ({}), so every row that is still there is sent as `updated` once; to start again from an empty snapshot instead (every row `new`, no `deleted`), run with --reset; to compare fewer columns, set compare_columns",
                self.model.id,
                what.join("; ")
            ));
        }
        self.header = Some(header);
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError> {
        self.report.rows += 1;
        let row = self.report.rows;
        let id = &cells[self.id_col];
        if *id == Cell::Null {
            return Err(WarehouseError::NullIdentifier {
                model: self.model.id.clone(),
                row,
                column: self.model.identifier.clone(),
            });
        }
        self.id_json.clear();
        id.write_json(&mut self.id_json);
        let mut h = Md5::new();
        for &i in &self.compared {
            self.value.clear();
            cells[i].write_json(&mut self.value);
            h.update(self.columns[i].as_bytes());
            h.update([0x1f]);
            h.update(&self.value);
            h.update([0x1e]);
        }
        let digest: [u8; 16] = h.finalize().into();
        let checksum = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        let id_text = std::str::from_utf8(&self.id_json).expect("JSON is UTF-8");
        let user = self.user_col.and_then(|c| id_string(&cells[c]));
        let anon = self.anon_col.and_then(|c| id_string(&cells[c]));
        // Kept for a `deleted` event later, unless the identifier gives them.
        let extra = {
            let e = Extra {
                user: user.clone().filter(|_| self.user_col != Some(self.id_col)),
                anon: anon.clone().filter(|_| self.anon_col != Some(self.id_col)),
            };
            (e != Extra::default()).then(|| Box::new(e))
        };
        let name = match self.prev.find(id_text) {
            Some(i) => {
                let old = &mut self.prev.rows[i];
                if old.new.is_some() {
                    return Err(WarehouseError::DuplicateIdentifier {
                        model: self.model.id.clone(),
                        row,
                        column: self.model.identifier.clone(),
                        value: id_text.to_string(),
                    });
                }
                old.new = Some(checksum);
                old.extra = extra;
                (old.sum != checksum).then_some("updated")
            }
            None => {
                let id = self.added_ids.push(id_text);
                self.added.push(Added {
                    id,
                    sum: checksum,
                    row,
                    extra,
                });
                Some("new")
            }
        };
        let Some(name) = name else { return Ok(()) };
        if name == "new" {
            self.report.new += 1;
        } else {
            self.report.updated += 1;
        }
        self.props.clear();
        self.props.push(b'{');
        for (i, (col, cell)) in self.columns.iter().zip(cells).enumerate() {
            if i > 0 {
                self.props.push(b',');
            }
            serde_json::to_writer(&mut self.props, col).expect("writing to a Vec");
            self.props.push(b':');
            cell.write_json(&mut self.props);
        }
        self.props.push(b'}');
        let id_json = std::mem::take(&mut self.id_json);
        let r = self.emit(
            row,
            name,
            &id_json,
            checksum,
            user.as_deref(),
            anon.as_deref(),
        );
        self.id_json = id_json;
        r
    }
}

/// Diffs one model: streams its rows from `warehouse`, writes its events to a spool file in
/// `state_dir` and prepares its next snapshot there. `reset`: compare with an empty
/// snapshot. `timestamp`: the events' `timestamp`.
pub fn diff_model(
    warehouse: &mut dyn Warehouse,
    model: &Model,
    state_dir: &Path,
    reset: bool,
    timestamp: &str,
) -> Result<Diffed, WarehouseError> {
    let path = snapshot_path(state_dir, &model.id);
    let (previous, prev) = if reset {
        (None, Previous::default())
    } else {
        load_snapshot(&path)?
    };
    std::fs::create_dir_all(state_dir).map_err(|source| WarehouseError::Spool {
        model: model.id.clone(),
        path: state_dir.to_path_buf(),
        source,
    })?;
    let spool = tempfile::Builder::new()
        .prefix(&format!("{}{}-events-", state::TEMP_PREFIX, model.id))
        .tempfile_in(state_dir)
        .map_err(|source| WarehouseError::Spool {
            model: model.id.clone(),
            path: state_dir.to_path_buf(),
            source,
        })?;
    let spool_path = spool.path().to_path_buf();
    let file = spool.reopen().map_err(|source| WarehouseError::Spool {
        model: model.id.clone(),
        path: spool_path.clone(),
        source,
    })?;
    let mut d = Differ {
        model,
        timestamp: timestamp.to_string(),
        prev,
        added_ids: Arena::default(),
        added: Vec::new(),
        previous,
        header: None,
        id_col: 0,
        compared: Vec::new(),
        user_col: None,
        anon_col: None,
        columns: Vec::new(),
        spool: BufWriter::with_capacity(256 * 1024, file),
        spool_path,
        report: DiffReport {
            model: model.id.clone(),
            ..DiffReport::default()
        },
        id_json: Vec::new(),
        value: Vec::new(),
        event: Vec::new(),
        props: Vec::new(),
    };
    warehouse.stream(model, &mut d)?;
    let header = d.header.take().expect("columns() comes before the rows");
    // The next snapshot, and a `deleted` event (identifier, every other column null) for
    // every row that is gone.
    let mut next = Prepared::new(&path, SNAPSHOT_KIND, SNAPSHOT_VERSION)?;
    let state_error = |e: std::io::Error| StateError::Io {
        action: "write",
        path: path.clone(),
        source: e,
    };
    serde_json::to_writer(next.writer(), &header).map_err(|e| state_error(e.into()))?;
    next.writer().write_all(b"\n").map_err(state_error)?;
    // Identifiers new in this run must be unique among themselves too.
    let (added_ids, mut added) = (
        std::mem::take(&mut d.added_ids),
        std::mem::take(&mut d.added),
    );
    added.sort_by(|a, b| added_ids.get(a.id).cmp(added_ids.get(b.id)));
    if let Some(w) = added
        .windows(2)
        .find(|w| added_ids.get(w[0].id) == added_ids.get(w[1].id))
    {
        return Err(WarehouseError::DuplicateIdentifier {
            model: model.id.clone(),
            row: w[0].row.max(w[1].row),
            column: model.identifier.clone(),
            value: added_ids.get(w[0].id).to_string(),
        });
    }
    let prev = std::mem::take(&mut d.prev);
    let mut line = String::new();
    let mut write_row = |next: &mut Prepared, sum: u64, id: &str, extra: &Option<Box<Extra>>| {
        use std::fmt::Write as _;
        line.clear();
        let e = extra.as_deref();
        let _ = writeln!(
            line,
            "{sum:016x}\t{id}\t{}\t{}",
            e.and_then(|e| e.user.as_deref()).unwrap_or(""),
            e.and_then(|e| e.anon.as_deref()).unwrap_or("")
        );
        next.writer().write_all(line.as_bytes())
    };
    // The next snapshot, sorted by identifier: the previous rows still there merged with
    // the new ones.
    let mut new_rows = added.iter().peekable();
    for old in prev.rows.iter().filter(|o| o.new.is_some()) {
        let id = prev.ids.get(old.id);
        while let Some(a) = new_rows.next_if(|a| added_ids.get(a.id) < id) {
            write_row(&mut next, a.sum, added_ids.get(a.id), &a.extra).map_err(state_error)?;
        }
        let sum = old.new.expect("filtered");
        write_row(&mut next, sum, id, &old.extra).map_err(state_error)?;
    }
    for a in new_rows {
        write_row(&mut next, a.sum, added_ids.get(a.id), &a.extra).map_err(state_error)?;
    }
    // A `deleted` event (identifier, every other column null) for every row that is gone,
    // in identifier order.
    for old in prev.rows.iter().filter(|o| o.new.is_none()) {
        let id = prev.ids.get(old.id);
        d.report.deleted += 1;
        d.props.clear();
        d.props.push(b'{');
        for (i, col) in header.columns.iter().enumerate() {
            if i > 0 {
                d.props.push(b',');
            }
            serde_json::to_writer(&mut d.props, col).expect("writing to a Vec");
            d.props.push(b':');
            if i == d.id_col {
                d.props.extend_from_slice(id.as_bytes());
            } else {
                d.props.extend_from_slice(b"null");
            }
        }
        d.props.push(b'}');
        let from_id = || id_string_from_json(id);
        let e = old.extra.as_deref();
        let user = if d.user_col == Some(d.id_col) {
            Some(from_id())
        } else {
            e.and_then(|e| e.user.clone())
        };
        let anon = if d.anon_col == Some(d.id_col) {
            Some(from_id())
        } else {
            e.and_then(|e| e.anon.clone())
        };
        d.emit(
            0,
            "deleted",
            id.as_bytes(),
            old.sum,
            user.as_deref(),
            anon.as_deref(),
        )?;
    }
    let flushed = d.spool.flush();
    flushed.map_err(|e| d.spool_error(e))?;
    Ok(Diffed {
        report: d.report,
        spool,
        snapshot: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warehouse of fixed rows.
    struct Rows(Vec<String>, Vec<Vec<Cell>>);

    impl Warehouse for Rows {
        fn stream(&mut self, _: &Model, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
            sink.columns(&self.0)?;
            for r in &self.1 {
                sink.row(r)?;
            }
            Ok(())
        }
    }

    fn model(compare: Option<&[&str]>) -> Model {
        Model {
            id: "mdl".into(),
            connection: None,
            query: "select".into(),
            identifier: "id".into(),
            compare_columns: compare.map(|c| c.iter().map(|s| s.to_string()).collect()),
            user_id_column: Some("id".into()),
            anonymous_id_column: None,
            unresolved: Vec::new(),
        }
    }

    fn row(id: i64, email: &str, plan: &str) -> Vec<Cell> {
        vec![
            Cell::Int(id),
            Cell::Text(email.into()),
            Cell::Text(plan.into()),
        ]
    }

    fn cols() -> Vec<String> {
        vec!["id".into(), "email".into(), "plan".into()]
    }

    /// Runs a diff and commits it; returns (report, event lines).
    fn run(dir: &Path, m: &Model, rows: Vec<Vec<Cell>>) -> (DiffReport, Vec<String>) {
        let d = diff_model(
            &mut Rows(cols(), rows),
            m,
            dir,
            false,
            "2026-11-01T00:00:00.000Z",
        )
        .unwrap();
        let events = std::fs::read_to_string(d.spool.path()).unwrap();
        d.snapshot.commit().unwrap();
        (d.report, events.lines().map(str::to_string).collect())
    }

    #[test]
    fn new_updated_deleted_and_nothing_on_a_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(Some(&["email"]));
        let (r, ev) = run(
            dir.path(),
            &m,
            vec![row(1, "a@x", "free"), row(2, "b@x", "pro")],
        );
        assert_eq!((r.new, r.updated, r.deleted), (2, 0, 0));
        assert!(
            ev[0].starts_with("1\t{\"type\":\"track\",\"event\":\"new\",\"messageId\":\""),
            "{}",
            ev[0]
        );
        assert!(ev[0].contains(",\"userId\":\"1\",\"properties\":{\"id\":1,\"email\":\"a@x\",\"plan\":\"free\"},\"context\":{\"warehouse\":{\"model_id\":\"mdl\"}"), "{}", ev[0]);
        // Same rows: nothing. A change of an uncompared column: nothing.
        let (r, ev) = run(
            dir.path(),
            &m,
            vec![row(1, "a@x", "free"), row(2, "b@x", "enterprise")],
        );
        assert_eq!((r.new, r.updated, r.deleted, ev.len()), (0, 0, 0, 0));
        // A compared change, a new row, a deleted row.
        let (r, ev) = run(
            dir.path(),
            &m,
            vec![row(1, "A@x", "free"), row(3, "c@x", "pro")],
        );
        assert_eq!((r.new, r.updated, r.deleted), (1, 1, 1));
        assert!(ev[0].contains("\"event\":\"updated\""));
        assert!(ev[1].contains("\"event\":\"new\""));
        assert!(
            ev[2].starts_with("0\t{\"type\":\"track\",\"event\":\"deleted\""),
            "{}",
            ev[2]
        );
        assert!(
            ev[2].contains(
                "\"userId\":\"2\",\"properties\":{\"id\":2,\"email\":null,\"plan\":null}"
            ),
            "{}",
            ev[2]
        );
    }

    #[test]
    fn a_resend_has_the_same_message_ids() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(None);
        let first = diff_model(
            &mut Rows(cols(), vec![row(1, "a", "b")]),
            &m,
            dir.path(),
            false,
            "t",
        )
        .unwrap();
        drop(first); // not committed
        let (_, again) = run(dir.path(), &m, vec![row(1, "a", "b")]);
        let (_, reset) = {
            let d = diff_model(
                &mut Rows(cols(), vec![row(1, "a", "b")]),
                &m,
                dir.path(),
                true,
                "t",
            )
            .unwrap();
            (d.report, std::fs::read_to_string(d.spool.path()).unwrap())
        };
        assert_eq!(again.len(), 1);
        let id = |l: &str| l.split("\"messageId\":\"").nth(1).unwrap()[..36].to_string();
        assert_eq!(id(&again[0]), id(reset.lines().next().unwrap()));
    }

    #[test]
    fn bad_results_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(None);
        let e = diff_model(
            &mut Rows(cols(), vec![row(1, "a", "b"), row(1, "c", "d")]),
            &m,
            dir.path(),
            false,
            "t",
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "model mdl: row 2 repeats the identifier 1 (id) of an earlier row; identifiers must be unique, nothing was sent or committed"
        );
        let e = diff_model(
            &mut Rows(cols(), vec![vec![Cell::Null, Cell::Null, Cell::Null]]),
            &m,
            dir.path(),
            false,
            "t",
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("row 1 has a NULL identifier (id)"),
            "{e}"
        );
        let e = diff_model(
            &mut Rows(vec!["key".into()], vec![]),
            &m,
            dir.path(),
            false,
            "t",
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "model mdl: the query has no identifier column \"id\" (its columns: key)"
        );
        let e = diff_model(
            &mut Rows(cols(), vec![]),
            &model(Some(&["nope"])),
            dir.path(),
            false,
            "t",
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("compare_columns names \"nope\""),
            "{e}"
        );
        assert!(
            state::open(
                &snapshot_path(dir.path(), "mdl"),
                SNAPSHOT_KIND,
                SNAPSHOT_VERSION
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn a_changed_column_set_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(None);
        run(dir.path(), &m, vec![row(1, "a", "b")]);
        let mut w = Rows(
            vec!["id".into(), "email".into(), "plan".into(), "score".into()],
            vec![{
                let mut r = row(1, "a", "b");
                r.push(Cell::Int(5));
                r
            }],
        );
        let d = diff_model(&mut w, &m, dir.path(), false, "t").unwrap();
        assert_eq!(d.report.updated, 1);
        assert!(
            d.report.warnings[0].contains("added score"),
            "{:?}",
            d.report.warnings
        );
        assert!(d.report.warnings[0].contains("--reset"));
    }
}
