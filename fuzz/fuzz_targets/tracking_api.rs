//! `serve`'s tracking API, as bodies arrive from the network: any bytes to any endpoint are
//! either refused with a reason or become one compact JSON object per line, each with a
//! `type`, the request's `receivedAt` and a `messageId`, the one reported for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3actions::json::{Kind, Tape};
use s3actions::source::http::api::{Arrival, SINGLE, normalise};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let path = match which as usize % (SINGLE.len() + 3) {
        0 => "/v1/batch",
        1 => "/v1/import",
        2 => "/v1/nothing",
        n => SINGLE[n - 3].0,
    };
    let at = Arrival::from_unix_millis(1_796_515_200_123).expect("a valid time");
    let received = match normalise(path, body, &at) {
        Ok(r) => r,
        Err(refused) => {
            assert!(!refused.0.is_empty(), "a refusal without a reason");
            return;
        }
    };
    let text = std::str::from_utf8(&received.lines).expect("lines are UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'), "a line without its newline");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), received.events());
    assert_eq!(lines.len(), received.message_ids.len(), "one messageId per event");
    assert_eq!(lines.len(), received.generated.len(), "each id marked sent or generated");
    let mut tape = Tape::new();
    for (line, id) in lines.iter().zip(&received.message_ids) {
        let event = tape
            .parse(line)
            .unwrap_or_else(|e| panic!("line {line:?} is not JSON: {e}"));
        assert_eq!(event.kind(), Kind::Object, "{line}");
        assert!(event.get("type").and_then(|t| t.as_str()).is_some(), "{line}");
        assert_eq!(
            event.get("receivedAt").and_then(|t| t.as_str()).as_deref(),
            Some(at.iso()),
            "{line}"
        );
        // A string messageId is reported as it is; another value (kept as sent) by its
        // JSON text.
        let message_id = event.get("messageId").expect("every event has a messageId");
        match message_id.as_str() {
            Some(s) => assert_eq!(&*s, &**id, "{line}"),
            None => assert!(!id.is_empty(), "{line}"),
        }
    }
});
