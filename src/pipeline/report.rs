//! What a run reports: events read, matched, written and rejected, per mapping.

use std::path::PathBuf;
use std::time::Duration;

use crate::sink::SinkReport;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingStats {
    pub name: String,
    /// Events whose trigger matched.
    pub matched: u64,
    /// Rows written (matched events that mapped to a row).
    pub rows: u64,
    /// Matched events rejected because a column (or the folder) could not be computed.
    pub failed: u64,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct RunReport {
    pub events_read: u64,
    /// Events that matched no trigger.
    pub not_matched: u64,
    /// Input records that are not JSON objects (never reached a trigger).
    pub rejected: u64,
    pub mappings: Vec<MappingStats>,
    pub sink: SinkReport,
    pub rejects_path: Option<PathBuf>,
    pub rejects_written: u64,
    pub bytes_read: u64,
    pub elapsed: Duration,
}

impl RunReport {
    /// Events matched by at least one mapping.
    pub fn matched_events(&self) -> u64 {
        self.events_read - self.not_matched - self.rejected
    }

    pub fn failed_rows(&self) -> u64 {
        self.mappings.iter().map(|m| m.failed).sum()
    }

    pub fn rows(&self) -> u64 {
        self.mappings.iter().map(|m| m.rows).sum()
    }
}

/// A worker's counts for one chunk, added to the report in input order.
#[derive(Default)]
pub(super) struct Counts {
    pub read: u64,
    pub not_matched: u64,
    pub rejected: u64,
    pub matched: Vec<u64>,
    pub rows: Vec<u64>,
    pub failed: Vec<u64>,
}

impl Counts {
    pub fn new(mappings: usize) -> Counts {
        Counts {
            matched: vec![0; mappings],
            rows: vec![0; mappings],
            failed: vec![0; mappings],
            ..Counts::default()
        }
    }

    pub fn add_to(&self, report: &mut RunReport) {
        report.events_read += self.read;
        report.not_matched += self.not_matched;
        report.rejected += self.rejected;
        crate::metrics::events_counted(self.read, self.not_matched, self.rejected);
        for (i, s) in report.mappings.iter_mut().enumerate() {
            s.matched += self.matched[i];
            s.rows += self.rows[i];
            s.failed += self.failed[i];
            crate::metrics::rows_counted(&s.name, self.rows[i], self.failed[i]);
        }
    }
}
