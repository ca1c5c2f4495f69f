//! What each mapping does with one event: trigger result, the row, and where it would go.
//! The tool for editing a mapping (`s3actions preview`).
//!
//! It goes through the same routing step as a run ([`crate::route`]) and names the file as
//! a run names its batches ([`crate::batch::key_for`]), so a reject reason or a fallback
//! name shown here is what a run would write.

use crate::batch::key_for;
use crate::json::NodeRef;
use crate::naming::{BatchInfo, BatchTime};
use crate::route::{Routed, Router, Routes, SingleRow};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MappingPreview {
    pub mapping: String,
    pub enabled: bool,
    pub trigger: String,
    pub matched: bool,
    /// Column name and cell text, in file order (present when the trigger matched).
    pub row: Option<Vec<(String, String)>>,
    /// Why no row could be made, when that happened: the reason a run writes to the
    /// rejects file.
    pub error: Option<String>,
    /// Why the filename template could not name the file, when a run would fall back to
    /// Segment's naming (`key` is then that name).
    pub warning: Option<String>,
    /// The object key the row would go to (its timestamp is "now").
    pub key: Option<String>,
    /// The exact file content if this event were alone in its batch (before file layers).
    pub file: Option<String>,
}

/// Previews every mapping of `routes` for one event (a JSON object).
pub fn preview(routes: &Routes<'_>, event: NodeRef<'_>) -> Vec<MappingPreview> {
    let mut router = Router::new(routes);
    (0..routes.config.mappings.len())
        .map(|mi| preview_mapping(routes, &mut router, mi, event))
        .collect()
}

fn preview_mapping(
    routes: &Routes<'_>,
    router: &mut Router<'_, '_>,
    mi: usize,
    event: NodeRef<'_>,
) -> MappingPreview {
    let m = routes.mapping(mi);
    let mut p = MappingPreview {
        mapping: m.name.clone(),
        enabled: m.enabled,
        trigger: m.trigger.source().to_string(),
        matched: false,
        row: None,
        error: None,
        warning: None,
        key: None,
        file: None,
    };
    let mut single = SingleRow::default();
    match router.route(mi, event, &mut single) {
        Routed::NotMatched => return p,
        Routed::Rejected(why) => {
            p.matched = true;
            p.error = Some(why);
            return p;
        }
        Routed::Row => p.matched = true,
    }
    let format = routes.format(mi);
    if let Some(fix) = format.batch_size_fix(1) {
        fix.apply(&mut single.row);
    }
    let mut content = format.header().to_vec();
    content.extend_from_slice(&single.row);
    content.extend_from_slice(format.footer());
    p.row = Some(format.cells(&content));
    p.file = Some(String::from_utf8_lossy(&content).into_owned());
    let first = m
        .filename
        .uses_event()
        .then(|| crate::expr::Value::Node(event).to_serde());
    let info = BatchInfo {
        prefix: &m.filename_prefix,
        extension: m.extension.as_str(),
        time: BatchTime::next(),
        event_type: &single.event_type,
        mapping: &m.name,
        part: 1,
        rows: 1,
        first_event: first.as_ref(),
        log: None,
    };
    match key_for(m, routes.layers(mi), &single.folder, &info) {
        Ok((key, fallback)) => {
            p.key = Some(key);
            p.warning = fallback;
        }
        Err(e) => p.error = Some(e.to_string()),
    }
    p
}
