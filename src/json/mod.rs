//! Event JSON: a borrowed, allocation-free parse of one event, and JavaScript-compatible
//! serialisation.
//!
//! Segment's engine works on JavaScript values, and the files it writes are whatever
//! `JSON.stringify` and `String()` print. A `serde_json::Value` tree per event would cost an
//! allocation per node and would print numbers the Rust way (`631.0`), so events are parsed
//! into a flat [`Tape`] of nodes pointing back into the input text. Every node records whether
//! its raw text is already exactly what `JSON.stringify` would print (compact, canonical
//! numbers, no redundant escapes, no repeated keys); such subtrees are copied byte for byte
//! into the output, which is what makes the default columns cheap.

mod number;
mod tape;
mod write;

pub use number::{
    is_js_space, js_number_to_string, js_string_to_number, write_js_number, write_number_text,
};
pub use tape::{Elements, Kind, Members, NodeRef, ParseError, Tape};
pub use write::{JsonWriter, write_json_string, write_node_json};
