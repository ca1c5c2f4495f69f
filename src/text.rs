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
