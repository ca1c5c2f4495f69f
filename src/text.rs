//! Small byte and text helpers shared by stages that must not depend on each other.

use std::fmt::Write as _;

/// JSON's insignificant whitespace (RFC 8259): space, tab, line feed, carriage return.
#[inline]
pub fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Appends `bytes` as lowercase hexadecimal (how digests are written).
pub fn write_hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// An event time: ISO-8601 text (`2026-11-01T07:30:00.250Z`, any offset; none means UTC).
pub fn parse_iso_time(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let t = text.trim();
    time::OffsetDateTime::parse(t, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(t, &Iso8601::DEFAULT))
        .or_else(|_| time::PrimitiveDateTime::parse(t, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}
