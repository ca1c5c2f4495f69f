//! What the fuzz targets share: splitting one input into several texts, and visiting every
//! node of a parsed document.

use s3actions::json::{Kind, NodeRef};

/// The CSV round trip, shared with the main crate's property test.
#[path = "../../tests/support/csv_roundtrip.rs"]
pub mod csv_roundtrip;

/// The event the targets use when an input gives none (the Liquid conformance event).
pub const EVENT: &str = include_str!("../../tests/conformance/liquidjs-event.json");

/// `data` cut at NUL bytes into at most `n` UTF-8 texts (the last one keeps any further
/// NULs); `None` when a piece is not UTF-8.
pub fn split(data: &[u8], n: usize) -> Option<Vec<&str>> {
    data.splitn(n, |&b| b == 0)
        .map(|part| std::str::from_utf8(part).ok())
        .collect()
}

/// Calls every accessor on every node below `node`, as the pipeline does when it reads an
/// event.
pub fn visit(node: NodeRef<'_>) {
    let _ = (
        node.raw(),
        node.is_canonical(),
        node.is_null(),
        node.as_bool(),
    );
    let _ = (
        node.as_str(),
        node.str_raw(),
        node.number_text(),
        node.as_f64(),
    );
    match node.kind() {
        Kind::Object => {
            let _ = node.has_duplicate_keys();
            for (key, value) in node.members() {
                assert!(node.get(&key).is_some(), "member {key:?} not found by get");
                visit(value);
            }
        }
        Kind::Array => {
            assert_eq!(node.elements().count(), node.len());
            for (i, value) in node.elements().enumerate() {
                assert!(node.index(i).is_some());
                visit(value);
            }
            assert!(node.index(node.len()).is_none());
        }
        _ => {}
    }
}
