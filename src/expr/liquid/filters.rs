//! liquidjs's filters, with its conversions: string filters print their input as liquidjs
//! outputs it, math filters read numbers as JavaScript's `Number()` (NaN as 0), and an
//! unknown filter passes its input through (liquidjs's default, non-strict filters).

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::date;
use super::value::LValue;
use crate::json::{is_js_space, js_number_to_string};
use crate::text::write_hex;

fn arg(args: &[LValue], i: usize) -> LValue {
    args.get(i).cloned().unwrap_or(LValue::Nil)
}

fn text(args: &[LValue], i: usize) -> String {
    arg(args, i).render()
}

fn str_or(args: &[LValue], i: usize, default: &str) -> String {
    match args.get(i) {
        None | Some(LValue::Nil) => default.to_string(),
        Some(v) => v.render(),
    }
}

fn num_or(args: &[LValue], i: usize, default: f64) -> f64 {
    match args.get(i) {
        None | Some(LValue::Nil) => default,
        Some(v) => v.number(),
    }
}

/// liquidjs's `toArray`: arrays stay, nil is empty, anything else is one element.
fn to_array(v: LValue) -> Vec<LValue> {
    match v {
        LValue::Arr(a) => a,
        LValue::Nil => Vec::new(),
        other => vec![other],
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn from_utf16(u: &[u16]) -> String {
    String::from_utf16_lossy(u)
}

/// JavaScript's `String.prototype.slice`/`substring` start index for a possibly negative
/// position.
fn clamp_index(i: f64, len: usize) -> usize {
    let len_f = len as f64;
    let i = if i < 0.0 {
        (len_f + i).max(0.0)
    } else {
        i.min(len_f)
    };
    i as usize
}

/// Why a filter failed on its input (liquidjs throws for these).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// `url_decode` of a `%` not followed by two hexadecimal digits.
    #[error("url_decode: URI malformed")]
    MalformedUri,
    /// `url_decode` of escapes that are not UTF-8.
    #[error("url_decode: URI malformed")]
    MalformedUriText(#[source] std::string::FromUtf8Error),
}

pub fn apply_filter(
    name: &str,
    v: LValue,
    args: &[LValue],
    named: &[(&str, LValue)],
) -> Result<LValue, FilterError> {
    let s = |v: &LValue| v.render();
    let out = match name {
        // Strings.
        "upcase" => LValue::Str(s(&v).to_uppercase()),
        "downcase" => LValue::Str(s(&v).to_lowercase()),
        "capitalize" => {
            let t = s(&v);
            let mut chars = t.chars();
            LValue::Str(match chars.next() {
                Some(c) => c.to_uppercase().collect::<String>() + &chars.as_str().to_lowercase(),
                None => String::new(),
            })
        }
        "append" => LValue::Str(s(&v) + &text(args, 0)),
        "prepend" => LValue::Str(text(args, 0) + &s(&v)),
        "remove" => LValue::Str(s(&v).split(&text(args, 0)).collect::<Vec<_>>().join("")),
        "remove_first" => LValue::Str(s(&v).replacen(&text(args, 0), "", 1)),
        "remove_last" => LValue::Str(replace_last(&s(&v), &text(args, 0), "")),
        "replace" => {
            let (t, p, r) = (s(&v), text(args, 0), text(args, 1));
            LValue::Str(t.split(&p).collect::<Vec<_>>().join(&r))
        }
        "replace_first" => LValue::Str(s(&v).replacen(&text(args, 0), &text(args, 1), 1)),
        "replace_last" => LValue::Str(replace_last(&s(&v), &text(args, 0), &text(args, 1))),
        "strip" | "lstrip" | "rstrip" => {
            let t = s(&v);
            let chars: Option<Vec<char>> = args
                .first()
                .filter(|a| !matches!(a, LValue::Nil))
                .map(|a| a.render().chars().collect());
            let is_trim = |c: char| match &chars {
                Some(set) => set.contains(&c),
                None => is_js_space(c),
            };
            LValue::Str(
                match name {
                    "strip" => t.trim_matches(is_trim),
                    "lstrip" => t.trim_start_matches(is_trim),
                    _ => t.trim_end_matches(is_trim),
                }
                .to_string(),
            )
        }
        "strip_html" => LValue::Str(strip_html(&s(&v))),
        "strip_newlines" => LValue::Str(s(&v).replace("\r\n", "").replace('\n', "")),
        "escape" | "xml_escape" => LValue::Str(escape(&s(&v))),
        "escape_once" => LValue::Str(escape(&unescape(&s(&v)))),
        "url_encode" => LValue::Str(encode_uri_component(&s(&v)).replace("%20", "+")),
        "url_decode" => LValue::Str(decode_uri_component(&s(&v).replace('+', " "))?),
        "cgi_escape" => {
            let mut out = String::new();
            for c in encode_uri_component(&s(&v)).replace("%20", "+").chars() {
                match c {
                    '!' | '\'' | '(' | ')' | '*' => out.push_str(&format!("%{:X}", c as u32)),
                    c => out.push(c),
                }
            }
            LValue::Str(out)
        }
        "uri_escape" => LValue::Str(encode_uri(&s(&v)).replace("%5B", "[").replace("%5D", "]")),
        "truncate" => {
            let t = utf16(&s(&v));
            let l = num_or(args, 0, 50.0);
            let o = utf16(&str_or(args, 1, "..."));
            if t.len() as f64 <= l {
                LValue::Str(from_utf16(&t))
            } else {
                let keep = (l - o.len() as f64).max(0.0) as usize;
                LValue::Str(from_utf16(&t[..keep.min(t.len())]) + &from_utf16(&o))
            }
        }
        "truncatewords" => {
            let t = s(&v);
            let mut words = num_or(args, 0, 15.0);
            let o = str_or(args, 1, "...");
            let parts = split_js_whitespace(t.trim_start_matches(is_js_space));
            if words <= 0.0 {
                words = 1.0;
            }
            let n = (words as usize).min(parts.len());
            let mut ret = parts[..n].join(" ");
            if parts.len() as f64 >= words {
                ret += &o;
            }
            LValue::Str(ret)
        }
        "split" => {
            let t = s(&v);
            let sep = text(args, 0);
            let mut parts: Vec<LValue> = if sep.is_empty() {
                t.encode_utf16()
                    .map(|u| LValue::Str(from_utf16(&[u])))
                    .collect()
            } else {
                t.split(sep.as_str())
                    .map(|p| LValue::Str(p.to_string()))
                    .collect()
            };
            while matches!(parts.last(), Some(LValue::Str(p)) if p.is_empty()) {
                parts.pop();
            }
            LValue::Arr(parts)
        }
        "normalize_whitespace" => LValue::Str(collapse(&s(&v), is_js_space, " ")),
        "number_of_words" => {
            LValue::Num(s(&v).split(is_js_space).filter(|w| !w.is_empty()).count() as f64)
        }
        "slugify" => {
            let lower = s(&v).to_lowercase();
            let slug = collapse(&lower, |c| !c.is_alphanumeric(), "-");
            LValue::Str(slug.trim_matches('-').to_string())
        }
        "base64_encode" => LValue::Str(base64::engine::general_purpose::STANDARD.encode(s(&v))),
        "base64_decode" => {
            let clean: String = s(&v)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_'))
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            // Node's decoder ignores a dangling sixth bit group rather than failing.
            let usable = clean.len() - usize::from(clean.len() % 4 == 1);
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&clean[..usable])
                .unwrap_or_default();
            LValue::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
        "sha256" => LValue::Str(hex(&Sha256::digest(s(&v).as_bytes()))),
        "hmac_sha256" => LValue::Str(hex(&hmac_sha256(
            text(args, 0).as_bytes(),
            s(&v).as_bytes(),
        ))),

        // Numbers.
        "plus" => LValue::Num(v.number() + arg(args, 0).number()),
        "minus" => LValue::Num(v.number() - arg(args, 0).number()),
        "times" => LValue::Num(v.number() * arg(args, 0).number()),
        "divided_by" => {
            let (a, b) = (v.number(), arg(args, 0).number());
            let integer = arg(args, 1).truthy();
            LValue::Num(if integer { (a / b).floor() } else { a / b })
        }
        "modulo" => {
            let (a, b) = (v.number(), arg(args, 0).number());
            LValue::Num(((a % b) + b) % b)
        }
        "abs" => LValue::Num(v.number().abs()),
        "ceil" => LValue::Num(v.number().ceil()),
        "floor" => LValue::Num(v.number().floor()),
        "round" => LValue::Num(round(v.number(), num_or(args, 0, 0.0))),
        "at_least" => LValue::Num(js_max(v.number(), arg(args, 0).number())),
        "at_most" => LValue::Num(js_min(v.number(), arg(args, 0).number())),
        // A missing value is JavaScript's undefined here: NaN.
        "to_integer" => LValue::Num(match &v {
            LValue::Nil | LValue::Empty | LValue::Blank => f64::NAN,
            other => other.js_number(),
        }),

        // Arrays.
        "size" => LValue::Num(v.length().unwrap_or(0) as f64),
        "first" | "last" => match &v {
            LValue::Arr(a) => {
                let x = if name == "first" { a.first() } else { a.last() };
                x.cloned().unwrap_or(LValue::Nil)
            }
            LValue::Str(t) => {
                let u = utf16(t);
                let x = if name == "first" { u.first() } else { u.last() };
                x.map_or(LValue::Nil, |c| LValue::Str(from_utf16(&[*c])))
            }
            _ => LValue::Nil,
        },
        "join" => match &v {
            LValue::Arr(a) => {
                let sep = str_or(args, 0, " ");
                LValue::Str(a.iter().map(LValue::render).collect::<Vec<_>>().join(&sep))
            }
            _ => v,
        },
        "slice" => {
            // liquidjs: a negative start counts from the end, then JavaScript's `slice`.
            let length = num_or(args, 1, 1.0);
            let range = |len: usize| {
                let len_f = len as f64;
                let begin = arg(args, 0).number();
                let begin = if begin < 0.0 { len_f + begin } else { begin };
                let b = clamp_index(begin, len);
                let e = clamp_index(begin + length, len).max(b);
                (b, e)
            };
            match &v {
                LValue::Nil => LValue::Arr(Vec::new()),
                LValue::Arr(a) => {
                    let (b, e) = range(a.len());
                    LValue::Arr(a[b..e].to_vec())
                }
                other => {
                    let u = utf16(&other.render());
                    let (b, e) = range(u.len());
                    LValue::Str(from_utf16(&u[b..e]))
                }
            }
        }
        "compact" => LValue::Arr(
            to_array(v)
                .into_iter()
                .filter(|x| !matches!(x, LValue::Nil))
                .collect(),
        ),
        "where" => {
            let prop = arg(args, 0);
            let expected = args.get(1);
            LValue::Arr(
                to_array(v)
                    .into_iter()
                    .filter(|item| {
                        let got = item.member(&prop);
                        match expected {
                            None => got.truthy(),
                            Some(e) => super::value::equals(&got, e),
                        }
                    })
                    .collect(),
            )
        }
        "sum" => {
            let prop = args.first();
            LValue::Num(
                to_array(v)
                    .iter()
                    .map(|x| match prop {
                        Some(p) => x.member(p).number(),
                        None => x.number(),
                    })
                    .sum(),
            )
        }
        "push" => {
            let mut a = to_array(v);
            a.push(arg(args, 0));
            LValue::Arr(a)
        }
        "unshift" => {
            let mut a = to_array(v);
            a.insert(0, arg(args, 0));
            LValue::Arr(a)
        }
        "pop" => match v {
            LValue::Arr(mut a) => {
                a.pop();
                LValue::Arr(a)
            }
            _ => LValue::Arr(Vec::new()),
        },
        "shift" => match v {
            LValue::Arr(mut a) => {
                if !a.is_empty() {
                    a.remove(0);
                }
                LValue::Arr(a)
            }
            _ => LValue::Arr(Vec::new()),
        },

        // Everything else.
        "default" => {
            let allow_false = named.iter().any(|(k, v)| *k == "allow_false" && v.truthy());
            let use_default = match &v {
                LValue::Bool(false) => !allow_false,
                LValue::Nil => true,
                LValue::Str(t) => t.is_empty(),
                LValue::Arr(a) => a.is_empty(),
                _ => false,
            };
            if use_default { arg(args, 0) } else { v }
        }
        "json" | "jsonify" | "inspect" => {
            let indent = num_or(args, 0, 0.0).clamp(0.0, 10.0) as usize;
            let mut out = String::new();
            write_json(&v, indent, 0, &mut out);
            LValue::Str(out)
        }
        "date" => match date::parse(&v) {
            Some(t) => LValue::Str(date::strftime(
                &t,
                &str_or(args, 0, "%A, %B %-e, %Y at %-l:%M %P %z"),
            )),
            None => v,
        },
        "date_to_xmlschema" | "date_to_rfc822" | "date_to_string" | "date_to_long_string" => {
            match date::parse(&v) {
                Some(t) => {
                    let format = match name {
                        "date_to_xmlschema" => "%Y-%m-%dT%H:%M:%S+00:00",
                        "date_to_rfc822" => "%a, %d %b %Y %H:%M:%S %z",
                        "date_to_string" => "%d %b %Y",
                        _ => "%d %B %Y",
                    };
                    LValue::Str(date::strftime(&t, format))
                }
                None => v,
            }
        }
        _ => v,
    };
    Ok(out)
}

/// Runs of characters matching `sep` replaced by `with`.
fn collapse(t: &str, sep: impl Fn(char) -> bool, with: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut in_run = false;
    for c in t.chars() {
        if sep(c) {
            if !in_run {
                out.push_str(with);
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// JavaScript's `s.split(/\s+/)`.
fn split_js_whitespace(t: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in t.char_indices() {
        if is_js_space(c) {
            if !in_space {
                parts.push(&t[start..i]);
            }
            in_space = true;
        } else if in_space {
            start = i;
            in_space = false;
        }
    }
    parts.push(if in_space { "" } else { &t[start..] });
    parts
}

fn replace_last(t: &str, pattern: &str, with: &str) -> String {
    match t.rfind(pattern) {
        Some(i) => format!("{}{with}{}", &t[..i], &t[i + pattern.len()..]),
        None => t.to_string(),
    }
}

/// liquidjs rounds half away from zero on the decimal text (`1.005` to 2 places is 1.01).
fn round(n: f64, places: f64) -> f64 {
    let places = places.trunc();
    if !n.is_finite() {
        return n;
    }
    let shift = |x: f64, p: f64| -> f64 {
        format!("{}e{}", js_number_to_string(x), p)
            .parse::<f64>()
            .unwrap_or(f64::NAN)
    };
    let r = shift(n.abs(), places).round();
    let back = shift(r, -places);
    if n < 0.0 { -back } else { back }
}

fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn js_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(t: &str) -> String {
    t.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// liquidjs's `strip_html`: scripts, styles, comments and tags (a tag may not span lines).
fn strip_html(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let skip = ["script", "style"]
            .iter()
            .find(|name| tail[1..].starts_with(*name))
            .and_then(|name| tail.find(&format!("</{name}>")).map(|e| e + name.len() + 3))
            .or_else(|| {
                let line_end = tail.find('\n').unwrap_or(tail.len());
                tail[..line_end].find('>').map(|e| e + 1)
            })
            .or_else(|| {
                tail.starts_with("<!--")
                    .then(|| tail.find("-->").map(|e| e + 3))
                    .flatten()
            });
        match skip {
            Some(n) => rest = &tail[n..],
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn percent_encode(t: &str, keep: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if c.is_ascii_alphanumeric() || keep.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn encode_uri_component(t: &str) -> String {
    percent_encode(t, "-_.!~*'()")
}

fn encode_uri(t: &str) -> String {
    percent_encode(t, "-_.!~*'();/?:@&=+$,#")
}

fn decode_uri_component(t: &str) -> Result<String, FilterError> {
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = t
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(FilterError::MalformedUri)?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(FilterError::MalformedUriText)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    write_hex(bytes, &mut out);
    out
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// `JSON.stringify(v, null, indent)`.
fn write_json(v: &LValue, indent: usize, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if indent > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent * depth));
        }
    };
    match v {
        LValue::Nil | LValue::Empty | LValue::Blank => out.push_str("null"),
        LValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        LValue::Num(n) if n.is_finite() => out.push_str(&js_number_to_string(*n)),
        LValue::Num(_) => out.push_str("null"),
        LValue::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        LValue::Arr(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        LValue::Obj(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                if indent > 0 {
                    out.push(' ');
                }
                write_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}
