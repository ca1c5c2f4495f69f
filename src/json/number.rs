//! Numbers the JavaScript way.
//!
//! Downstream loaders were written against files produced by Node, so numbers must print as
//! `Number.prototype.toString` prints them: shortest round-trip digits, exponent only below
//! 1e-6 or from 1e21 (`ryu-js` implements exactly this). One deliberate difference: integers
//! written in the input keep all their digits, even beyond 2^53 where JavaScript would round.

/// Formats a finite or non-finite `f64` as JavaScript's `String(n)` does.
pub fn js_number_to_string(n: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_js_number(&mut out, n, false);
    // ryu-js and the literals below only produce ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `n` as JavaScript prints it. In a JSON context (`json = true`) non-finite values
/// are written `null`, as `JSON.stringify` does.
pub fn write_js_number(out: &mut Vec<u8>, n: f64, json: bool) {
    if n.is_finite() {
        if n == n.trunc() && n.abs() < 1e15 {
            // Exact integers: itoa is several times faster than the general algorithm.
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(n as i64).as_bytes());
        } else {
            let mut buf = ryu_js::Buffer::new();
            out.extend_from_slice(buf.format(n).as_bytes());
        }
    } else if json {
        out.extend_from_slice(b"null");
    } else if n.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if n > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
    }
}

/// Appends a number written in JSON input as JavaScript would print it after parsing it.
///
/// `text` must be a valid JSON number. Integers (including decimals whose fraction is all
/// zeros, such as `631.0`) keep their digits; everything else goes through `f64`.
pub fn write_number_text(out: &mut Vec<u8>, text: &str, json: bool) {
    let bytes = text.as_bytes();
    let (neg, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let int_end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let rest = &digits[int_end..];
    let integral = rest.is_empty()
        || (rest[0] == b'.' && rest.len() > 1 && rest[1..].iter().all(|&b| b == b'0'));
    if integral {
        let int_part = &digits[..int_end];
        if int_part.iter().all(|&b| b == b'0') {
            out.push(b'0'); // also turns -0 into 0
            return;
        }
        if int_part.len() <= 21 {
            if neg {
                out.push(b'-');
            }
            out.extend_from_slice(int_part);
            return;
        }
        // 1e21 and beyond: JavaScript switches to exponent notation even for integers, but
        // the spec keeps integer digits; only unrepresentable magnitudes fall through.
        if neg {
            out.push(b'-');
        }
        out.extend_from_slice(int_part);
        return;
    }
    match text.parse::<f64>() {
        Ok(n) => write_js_number(out, n, json),
        Err(_) => out.extend_from_slice(if json { b"null" } else { b"NaN" }),
    }
}

/// Whitespace as JavaScript's `trim` and `\s` see it (Unicode white space and the BOM).
pub fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// JavaScript's `Number(string)` (ToNumber applied to a string).
pub fn js_string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let lower = t.get(..2).map(|p| p.to_ascii_lowercase());
    let radix = match lower.as_deref() {
        Some("0x") => 16,
        Some("0o") => 8,
        Some("0b") => 2,
        _ => 10,
    };
    if radix != 10 {
        let body = &t[2..];
        if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
            return f64::NAN;
        }
        return body.chars().fold(0.0, |acc, c| {
            acc * radix as f64 + c.to_digit(radix).unwrap_or(0) as f64
        });
    }
    // A StrDecimalLiteral: sign, digits with an optional point, optional exponent.
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+') | Some(b'-')) {
        i += 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return f64::NAN;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+') | Some(b'-')) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return f64::NAN;
        }
    }
    if i != b.len() {
        return f64::NAN;
    }
    // Rust's parser rejects a leading '+' before '.', and forms like "5." or ".5": normalise.
    let mut norm = String::with_capacity(t.len() + 2);
    let body = t.strip_prefix('+').unwrap_or(t);
    let (sign, body) = match body.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", body),
    };
    norm.push_str(sign);
    if body.starts_with('.') {
        norm.push('0');
    }
    norm.push_str(body);
    if let Some(pos) = norm.find('.') {
        let next = norm.as_bytes().get(pos + 1).copied();
        if !matches!(next, Some(b'0'..=b'9')) {
            norm.insert(pos + 1, '0');
        }
    }
    norm.parse().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> String {
        let mut out = Vec::new();
        write_number_text(&mut out, t, true);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(text("631.0"), "631");
        assert_eq!(text("1.50"), "1.5");
        assert_eq!(text("1e2"), "100");
        assert_eq!(text("-0"), "0");
        assert_eq!(text("-0.0"), "0");
        assert_eq!(text("1e21"), "1e+21");
        assert_eq!(text("1E-7"), "1e-7");
        assert_eq!(text("0.000001"), "0.000001");
        assert_eq!(text("100000000000000000000"), "100000000000000000000");
        assert_eq!(text("12345678901234567890123"), "12345678901234567890123");
        assert_eq!(text("0.1"), "0.1");
        assert_eq!(text("0.30000000000000004"), "0.30000000000000004");
        assert_eq!(text("-3.25"), "-3.25");
        assert_eq!(text("1e400"), "null");
        assert_eq!(js_number_to_string(1e21), "1e+21");
        assert_eq!(
            js_number_to_string(123456789012345680000.0),
            "123456789012345680000"
        );
        assert_eq!(js_number_to_string(f64::NAN), "NaN");
        assert_eq!(js_number_to_string(-5.0), "-5");
    }

    #[test]
    fn string_to_number_follows_ecmascript() {
        assert_eq!(js_string_to_number(""), 0.0);
        assert_eq!(js_string_to_number("  12 "), 12.0);
        assert_eq!(js_string_to_number("0x10"), 16.0);
        assert_eq!(js_string_to_number("1e3"), 1000.0);
        assert_eq!(js_string_to_number(".5"), 0.5);
        assert_eq!(js_string_to_number("5."), 5.0);
        assert_eq!(js_string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert!(js_string_to_number("abc").is_nan());
        assert!(js_string_to_number("1,000").is_nan());
        assert!(js_string_to_number("0x").is_nan());
    }
}
