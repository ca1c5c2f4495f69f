//! FQL: any text parses into a trigger or is an error with a position inside the text; a
//! trigger matches any event without panicking, and prints back as FQL that parses to the
//! same tree. Input: the trigger, then optionally a NUL and the event's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::json::Tape;
use s3actions::trigger::{Field, Node, Trigger, print};
use s3actions_fuzz::{EVENT, split};

/// Whether [`print`] can write the tree: no path key holds `]`.
fn printable(node: &Node) -> bool {
    match node {
        Node::Group { items, .. } => items.iter().all(printable),
        Node::Cond(Field::Properties(p) | Field::Traits(p) | Field::Context(p), _) => {
            !p.iter().any(|seg| seg.key.contains(']'))
        }
        Node::Cond(..) => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(parts) = split(data, 2) else {
        return;
    };
    let fql = parts[0];
    let trigger = match Trigger::parse(fql) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.line >= 1 && e.col >= 1, "{e}");
            return;
        }
    };
    let printed = print(trigger.root());
    if !printable(trigger.root()) {
        return;
    }
    let again = Trigger::parse(&printed)
        .unwrap_or_else(|e| panic!("{fql:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(
        again.root(),
        trigger.root(),
        "{fql:?} printed as {printed:?}"
    );
    let mut tape = Tape::new();
    if let Ok(event) = tape.parse(parts.get(1).copied().unwrap_or(EVENT)) {
        let _ = trigger.matches(event);
    }
});
