//! Mapping directives: any JSON or YAML text compiles to an expression or is refused; an
//! expression evaluates against any event to a value or an error. Input: the mapping, then
//! optionally a NUL and the event's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::expr::{Value, compile_top_level, eval};
use s3actions::json::Tape;
use s3actions::spanned::parse_json_or_yaml;
use s3actions_fuzz::{EVENT, split};

fuzz_target!(|data: &[u8]| {
    let Some(parts) = split(data, 2) else {
        return;
    };
    let Ok(mapping) = parse_json_or_yaml(parts[0]) else {
        return;
    };
    let Ok(expr) = compile_top_level(&mapping) else {
        return;
    };
    let mut tape = Tape::new();
    let Ok(event) = tape.parse(parts.get(1).copied().unwrap_or(EVENT)) else {
        return;
    };
    if let Ok(v) = eval(&expr, &Value::Node(event)) {
        let _ = v.remove_undefined().to_json_string();
    }
});
