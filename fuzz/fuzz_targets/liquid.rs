//! Liquid: any template compiles or is refused; a template renders against any event to
//! text or an error (the render clock included). Input: the template, then optionally a NUL
//! and the event's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::expr::Liquid;
use s3actions::expr::Value;
use s3actions::json::Tape;
use s3actions_fuzz::{EVENT, split};

fuzz_target!(|data: &[u8]| {
    let Some(parts) = split(data, 2) else {
        return;
    };
    let Ok(template) = Liquid::compile(parts[0]) else {
        return;
    };
    let mut tape = Tape::new();
    let Ok(event) = tape.parse(parts.get(1).copied().unwrap_or(EVENT)) else {
        return;
    };
    let _ = template.render(&Value::Node(event));
});
