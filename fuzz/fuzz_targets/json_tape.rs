//! The JSON tape parser: any text parses or is an error with a position inside the text;
//! what parses can be walked, and its JSON as written parses again to the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::json::{Tape, write_node_json};
use s3actions_fuzz::visit;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut tape = Tape::new();
    let root = match tape.parse(text) {
        Ok(root) => root,
        Err(e) => {
            assert!(e.offset <= text.len(), "{e} past the end");
            let _ = e.line_col(data);
            return;
        }
    };
    visit(root);
    let mut written = Vec::new();
    write_node_json(&mut written, root);
    let written = String::from_utf8(written).expect("written JSON is UTF-8");
    let mut again = Tape::new();
    let reparsed = again
        .parse(&written)
        .unwrap_or_else(|e| panic!("written JSON {written:?} does not parse: {e}"));
    let mut rewritten = Vec::new();
    write_node_json(&mut rewritten, reparsed);
    assert_eq!(written.as_bytes(), &rewritten[..], "writing is not stable");
});
