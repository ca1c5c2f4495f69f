//! Workers: each takes a chunk, routes every record through the active mappings (see
//! [`crate::route`]), and returns the rows grouped by partition, with counts and rejects.

use std::io;

use crate::json::Tape;
use crate::partition::RowGroups;
use crate::route::{Routed, Router, Routes, decode};
use crate::source::Chunk;

use super::rejects::RawReject;
use super::report::Counts;

/// What a worker made of one chunk.
pub(super) struct ChunkResult {
    pub chunk: Chunk,
    pub groups: RowGroups,
    pub counts: Counts,
    pub rejects: Vec<RawReject>,
    /// The chunk's bytes could not be read (see [`Chunk::load`]): nothing else is set.
    pub unreadable: Option<io::Error>,
}

/// Per-worker reusable state.
pub(super) struct Worker<'r, 'c> {
    active: &'r [usize],
    router: Router<'r, 'c>,
    tape: Tape,
}

impl<'r, 'c> Worker<'r, 'c> {
    pub fn new(routes: &'r Routes<'c>, active: &'r [usize]) -> Worker<'r, 'c> {
        Worker {
            active,
            router: Router::new(routes),
            tape: Tape::new(),
        }
    }

    pub fn process(&mut self, mut chunk: Chunk, mappings: usize) -> ChunkResult {
        if let Err(e) = chunk.load() {
            return ChunkResult {
                chunk,
                groups: RowGroups::default(),
                counts: Counts::default(),
                rejects: Vec::new(),
                unreadable: Some(e),
            };
        }
        chunk.split_lines();
        let mut counts = Counts::new(mappings);
        let mut groups = RowGroups::default();
        let mut rejects = Vec::new();
        let Worker {
            active,
            router,
            tape,
        } = self;
        // One UTF-8 check for the whole chunk (fast); per record only when it fails.
        let whole = std::str::from_utf8(&chunk.data).ok();
        for (ri, rec) in chunk.records.iter().enumerate() {
            counts.read += 1;
            let span = rec.start as usize..rec.end as usize;
            let mut reject = |reason: String, mapping: Option<usize>| {
                rejects.push(RawReject {
                    record: (rec.start, rec.end),
                    line: rec.line,
                    mapping,
                    reason,
                });
            };
            // Records of a valid chunk are valid: they are cut at ASCII bytes.
            let checked = whole.map(|all| &all[span.clone()]);
            let root = match decode(tape, &chunk.data[span], checked) {
                Ok(root) => root,
                Err(reason) => {
                    counts.rejected += 1;
                    reject(reason, None);
                    continue;
                }
            };
            groups.record = ri as u32;
            let mut any = false;
            for &mi in active.iter() {
                match router.route(mi, root, &mut groups) {
                    Routed::NotMatched => continue,
                    Routed::Row => counts.rows[mi] += 1,
                    Routed::Rejected(why) => {
                        counts.failed[mi] += 1;
                        reject(why, Some(mi));
                    }
                }
                any = true;
                counts.matched[mi] += 1;
            }
            if !any {
                counts.not_matched += 1;
            }
        }
        for (rec, why) in &chunk.broken {
            counts.read += 1;
            counts.rejected += 1;
            rejects.push(RawReject {
                record: (rec.start, rec.end),
                line: rec.line,
                mapping: None,
                reason: why.clone(),
            });
        }
        ChunkResult {
            chunk,
            groups,
            counts,
            rejects,
            unreadable: None,
        }
    }
}
