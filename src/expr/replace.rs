//! `@replace`: JavaScript's `String.prototype.replace` with an escaped (literal) pattern.
//!
//! Segment escapes every regular-expression character of the pattern, so matching is plain
//! text, but the replacement is still a JavaScript replacement string: `$&` inserts the
//! match, `` $` `` and `$'` the text before and after it, `$$` a dollar sign. With
//! `ignorecase`, characters compare the way a non-Unicode JavaScript regex compares them.

/// JavaScript regex case-insensitive comparison key (ES `Canonicalize` without the `u`
/// flag): the simple upper-case mapping, unless it is not a single character or maps a
/// non-ASCII character to ASCII.
fn canonicalize(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) if !(c as u32 >= 128 && (u as u32) < 128) => u,
        _ => c,
    }
}

fn substitute(out: &mut String, replacement: &str, matched: &str, before: &str, after: &str) {
    let mut chars = replacement.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, n)| n) {
            Some('$') => {
                out.push('$');
                chars.next();
            }
            Some('&') => {
                out.push_str(matched);
                chars.next();
            }
            Some('`') => {
                out.push_str(before);
                chars.next();
            }
            Some('\'') => {
                out.push_str(after);
                chars.next();
            }
            // No capture groups exist in an escaped pattern: `$1`, `$<name>` stay literal.
            _ => out.push('$'),
        }
    }
}

/// Replaces `pattern` (literal text) in `value` with the JavaScript replacement string.
pub fn js_replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    global: bool,
    ignore_case: bool,
) -> String {
    if pattern.is_empty() {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    let mut i = 0;
    let pat: Vec<char> = pattern.chars().collect();
    while i < value.len() {
        let found = if ignore_case {
            let mut it = value[i..].char_indices();
            let mut end = None;
            let mut ok = true;
            for (k, p) in pat.iter().enumerate() {
                match it.next() {
                    Some((_, c)) if canonicalize(c) == canonicalize(*p) => {
                        if k + 1 == pat.len() {
                            end = Some(i + it.next().map_or(value.len() - i, |(o, _)| o));
                        }
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok { end } else { None }
        } else if value[i..].starts_with(pattern) {
            Some(i + pattern.len())
        } else {
            None
        };
        match found {
            Some(end) => {
                out.push_str(&value[last..i]);
                substitute(
                    &mut out,
                    replacement,
                    &value[i..end],
                    &value[..i],
                    &value[end..],
                );
                last = end;
                i = end;
                if !global {
                    break;
                }
            }
            None => {
                i += value[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out.push_str(&value[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::js_replace;

    #[test]
    fn literal_patterns() {
        assert_eq!(
            js_replace("Hello World", ".", "-", true, false),
            "Hello World"
        );
        assert_eq!(js_replace("a.b.c", ".", "-", true, false), "a-b-c");
        assert_eq!(js_replace("a.b.c", ".", "-", false, false), "a-b.c");
        assert_eq!(js_replace("aAa", "a", "x", true, true), "xxx");
        assert_eq!(js_replace("aAa", "a", "x", true, false), "xAx");
        assert_eq!(js_replace("Straße", "SS", "x", true, true), "Straße");
        assert_eq!(
            js_replace("ÉCOLE école", "é", "e", true, true),
            "eCOLE ecole"
        );
    }

    #[test]
    fn replacement_patterns() {
        assert_eq!(js_replace("abc", "b", "[$&]", true, false), "a[b]c");
        assert_eq!(js_replace("abc", "b", "$`", true, false), "aac");
        assert_eq!(js_replace("abc", "b", "$'", true, false), "acc");
        assert_eq!(js_replace("abc", "b", "$$", true, false), "a$c");
        assert_eq!(js_replace("abc", "b", "$1$", true, false), "a$1$c");
    }
}
