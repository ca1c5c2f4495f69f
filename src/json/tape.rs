//! The flat parse of one JSON document.
//!
//! Nodes are stored in document order; a container is followed by its children, and every
//! node knows the index just past its subtree (`next`), so skipping a value is O(1). The
//! `Vec` is reused from event to event, so steady-state parsing allocates nothing.

use crate::text::is_ws;
use std::borrow::Cow;
use std::fmt;

/// The JSON type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

const CANONICAL: u8 = 1;
const ESCAPED: u8 = 2;
const DUP_KEYS: u8 = 4;
const TRUE: u8 = 8;

#[derive(Clone, Copy, Debug)]
struct Node {
    kind: Kind,
    flags: u8,
    /// Offset of the first byte (the opening quote for strings).
    start: u32,
    /// Offset just past the last byte (past the closing quote for strings).
    end: u32,
    /// Tape index just past this node's subtree.
    next: u32,
    /// Element count (arrays) or member count (objects).
    len: u32,
}

/// A JSON syntax error, with the byte offset where it was noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: &'static str,
}

impl ParseError {
    /// 1-based line and column of the error inside `src`.
    pub fn line_col(&self, src: &[u8]) -> (usize, usize) {
        let upto = &src[..self.offset.min(src.len())];
        let line = 1 + memchr::memchr_iter(b'\n', upto).count();
        let line_start = memchr::memrchr(b'\n', upto).map_or(0, |p| p + 1);
        let col = 1 + String::from_utf8_lossy(&upto[line_start..]).chars().count();
        (line, col)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Reusable storage for parsed documents.
#[derive(Default)]
pub struct Tape {
    nodes: Vec<Node>,
    /// Key spans of the objects being parsed, for the duplicate-key check.
    spans: Vec<(u32, u32)>,
    /// (hash of key, tape index of key) for the members of a root object: an event's
    /// top-level fields are looked up dozens of times per event.
    root_index: Vec<(u64, u32)>,
}

/// FNV-1a: short keys, no need for anything stronger.
#[inline]
fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Nesting deeper than this is rejected rather than risking the stack (serde_json uses 128).
const MAX_DEPTH: u32 = 512;

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `src` as exactly one JSON value (surrounding whitespace allowed).
    pub fn parse<'a>(&'a mut self, src: &'a str) -> Result<NodeRef<'a>, ParseError> {
        self.nodes.clear();
        self.spans.clear();
        self.root_index.clear();
        if src.len() >= u32::MAX as usize {
            return Err(ParseError {
                offset: 0,
                message: "document larger than 4 GiB",
            });
        }
        let b = src.as_bytes();
        let mut p = Parser {
            src,
            b,
            pos: 0,
            nodes: &mut self.nodes,
            spans: &mut self.spans,
        };
        let len = b.len();
        let incomplete = |e: ParseError| {
            if e.offset >= len {
                ParseError {
                    offset: len,
                    message: "unexpected end of input: the JSON value is incomplete",
                }
            } else {
                e
            }
        };
        p.skip_ws();
        p.value(0).map_err(incomplete)?;
        p.skip_ws();
        if p.pos != b.len() {
            return Err(p.err("unexpected characters after the JSON value"));
        }
        if self.nodes[0].kind == Kind::Object {
            let mut i = 1;
            while i < self.nodes[0].next {
                let k = self.nodes[i as usize];
                let h = match string_value(src, k) {
                    Cow::Borrowed(s) => key_hash(s.as_bytes()),
                    Cow::Owned(s) => key_hash(s.as_bytes()),
                };
                self.root_index.push((h, i));
                i = self.nodes[(i + 1) as usize].next;
            }
        }
        Ok(NodeRef {
            src,
            nodes: &self.nodes,
            idx: 0,
            root_index: &self.root_index,
        })
    }
}

struct Parser<'a, 'n> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    nodes: &'n mut Vec<Node>,
    spans: &'n mut Vec<(u32, u32)>,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
fn has_zero_byte(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// Index of the first `"`, `\` or control byte at or after `i`.
///
/// Event strings (ids, timestamps, user agents, emails) are mostly 16 to 64 bytes, so
/// sixteen bytes at a time with SSE2 (part of every x86-64 CPU), then eight with plain
/// integer arithmetic, then one.
#[inline(always)]
fn find_string_special(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is in the x86-64 baseline; the load reads b[i..i + 16], in bounds
            // by the loop condition, and `loadu` has no alignment requirement.
            let mask = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // Unsigned v <= 0x1f exactly when min(v, 0x1f) == v.
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
            };
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let quote = has_zero_byte(w ^ (LO * b'"' as u64));
        let backslash = has_zero_byte(w ^ (LO * b'\\' as u64));
        let control = w.wrapping_sub(LO * 0x20) & !w & HI;
        let m = quote | backslash | control;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

impl Parser<'_, '_> {
    fn err(&self, message: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            message,
        }
    }

    /// Skips whitespace; reports whether there was any (whitespace makes a container
    /// non-canonical).
    #[inline(always)]
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.b.len() && is_ws(self.b[self.pos]) {
            self.pos += 1;
        }
        self.pos != start
    }

    #[inline(always)]
    fn push(&mut self, kind: Kind, flags: u8, start: usize, end: usize) {
        let next = self.nodes.len() as u32 + 1;
        self.nodes.push(Node {
            kind,
            flags,
            start: start as u32,
            end: end as u32,
            next,
            len: 0,
        });
    }

    fn value(&mut self, depth: u32) -> Result<(), ParseError> {
        let Some(&c) = self.b.get(self.pos) else {
            return Err(self.err("unexpected end of input, expected a value"));
        };
        match c {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string(),
            b't' => self.literal(b"true", Kind::Bool, CANONICAL | TRUE),
            b'f' => self.literal(b"false", Kind::Bool, CANONICAL),
            b'n' => self.literal(b"null", Kind::Null, CANONICAL),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err(
                "expected a JSON value (an object, array, string, number, true, false or null)",
            )),
        }
    }

    #[inline]
    fn literal(&mut self, word: &[u8], kind: Kind, flags: u8) -> Result<(), ParseError> {
        if self.b[self.pos..].starts_with(word) {
            let start = self.pos;
            self.pos += word.len();
            self.push(kind, flags, start, self.pos);
            Ok(())
        } else {
            Err(self.err(
                "expected a JSON value (an object, array, string, number, true, false or null)",
            ))
        }
    }

    #[inline]
    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let (end, flags) = self.scan_number(start)?;
        self.pos = end;
        self.push(Kind::Number, flags, start, end);
        Ok(())
    }

    /// Validates the number at `start`; returns its end and flags.
    #[inline(always)]
    fn scan_number(&self, start: usize) -> Result<(usize, u8), ParseError> {
        let b = self.b;
        let mut i = start;
        if b[i] == b'-' {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            _ => return Err(self.err_at(i, "invalid number")),
        }
        let int_len = i - int_start;
        let mut canonical = true;
        let mut frac_len = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_len = i - fs;
            if frac_len == 0 {
                return Err(self.err_at(i, "invalid number: expected digits after '.'"));
            }
            let frac = &b[fs..i];
            // Canonical decimals: no trailing zero, at most 15 significant digits (so the
            // written digits are the shortest round-trip form), and not below 1e-6 (where
            // JavaScript switches to exponent notation).
            let int_is_zero = int_len == 1 && b[int_start] == b'0';
            let lead_zeros = if int_is_zero {
                frac.iter().take_while(|&&d| d == b'0').count()
            } else {
                0
            };
            let significant = if int_is_zero {
                frac_len - lead_zeros
            } else {
                int_len + frac_len
            };
            if frac[frac_len - 1] == b'0' || significant > 15 || lead_zeros > 5 {
                canonical = false;
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            let es = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == es {
                return Err(self.err_at(i, "invalid number: expected exponent digits"));
            }
            canonical = false;
        }
        if frac_len == 0 && b[start] == b'-' && int_len == 1 && b[int_start] == b'0' {
            canonical = false; // -0 prints as 0
        }
        Ok((i, if canonical { CANONICAL } else { 0 }))
    }

    #[inline(always)]
    fn string(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let (end, flags) = self.scan_string(start)?;
        self.pos = end;
        self.push(Kind::String, flags, start, end);
        Ok(())
    }

    /// Validates the string whose opening quote is at `start`; returns the offset past its
    /// closing quote and its flags.
    #[inline(always)]
    fn scan_string(&self, start: usize) -> Result<(usize, u8), ParseError> {
        let b = self.b;
        let mut i = start + 1;
        let mut flags = CANONICAL;
        loop {
            i = find_string_special(b, i);
            match b.get(i) {
                None => return Err(self.err_at(i, "unterminated string")),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    flags |= ESCAPED;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'/') => {
                            flags &= !CANONICAL;
                            i += 2;
                        }
                        Some(b'u') => {
                            let hex = b.get(i + 2..i + 6).ok_or_else(|| {
                                self.err_at(i, "invalid \\u escape: expected 4 hex digits")
                            })?;
                            let mut code = 0u32;
                            for &h in hex {
                                let d = (h as char).to_digit(16).ok_or_else(|| {
                                    self.err_at(i, "invalid \\u escape: expected 4 hex digits")
                                })?;
                                code = code * 16 + d;
                            }
                            // JSON.stringify only escapes control characters without a short
                            // form, in lowercase hex; any other \u escape prints differently.
                            let short = matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                            let lower = hex.iter().all(|h| !h.is_ascii_uppercase());
                            if code >= 0x20 || short || !lower {
                                flags &= !CANONICAL;
                            }
                            i += 6;
                        }
                        _ => return Err(self.err_at(i, "invalid escape sequence in string")),
                    }
                }
                Some(_) => return Err(self.err_at(i, "control character inside a string")),
            }
        }
        Ok((i, flags))
    }

    fn err_at(&self, offset: usize, message: &'static str) -> ParseError {
        ParseError { offset, message }
    }

    /// Enters a container at `pos` (`{` or `[`): true when it is empty (then its closing
    /// bracket is consumed too). `canonical` turns false on whitespace.
    #[inline(always)]
    fn open(&mut self, depth: u32, close: u8, canonical: &mut bool) -> Result<bool, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1;
        *canonical &= !self.skip_ws();
        let empty = self.b.get(self.pos) == Some(&close);
        if empty {
            self.pos += 1;
        }
        Ok(empty)
    }

    /// After a member or element: true when another follows (`,`), false at the closing
    /// bracket.
    #[inline(always)]
    fn more(&mut self, close: u8, canonical: &mut bool) -> Result<bool, ParseError> {
        *canonical &= !self.skip_ws();
        match self.b.get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                *canonical &= !self.skip_ws();
                Ok(true)
            }
            Some(&c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ if close == b'}' => Err(self.err("expected ',' or '}' in object")),
            _ => Err(self.err("expected ',' or ']' in array")),
        }
    }

    /// A member's key and colon; records the key for the duplicate check. Returns the key's
    /// span (quotes included) and flags.
    #[inline(always)]
    fn key(
        &mut self,
        dups: &mut DupCheck,
        canonical: &mut bool,
    ) -> Result<(usize, usize, u8), ParseError> {
        if self.b.get(self.pos) != Some(&b'"') {
            return Err(self.err("expected a string key in object"));
        }
        let start = self.pos;
        let (end, flags) = self.scan_string(start)?;
        self.pos = end;
        *canonical &= flags & CANONICAL != 0;
        dups.add(&self.b[start + 1..end - 1], flags & ESCAPED != 0);
        self.spans.push((start as u32, end as u32));
        *canonical &= !self.skip_ws();
        if self.b.get(self.pos) != Some(&b':') {
            return Err(self.err("expected ':' after object key"));
        }
        self.pos += 1;
        *canonical &= !self.skip_ws();
        Ok((start, end, flags))
    }

    /// Flags of an object whose keys were recorded from `dups.base`: repeated keys make it
    /// non-canonical (JavaScript keeps one of them).
    fn object_flags(&mut self, dups: DupCheck, canonical: bool) -> u8 {
        let mut flags = if canonical { CANONICAL } else { 0 };
        if dups.maybe && self.spans_have_duplicates(dups.base) {
            flags = DUP_KEYS;
        }
        self.spans.truncate(dups.base);
        flags
    }

    /// Sets a container's end, subtree and size once its children are parsed.
    fn close_node(&mut self, me: usize, len: u32, flags: u8) {
        let next = self.nodes.len() as u32;
        let n = &mut self.nodes[me];
        n.end = self.pos as u32;
        n.next = next;
        n.len = len;
        n.flags = flags;
    }

    fn array(&mut self, depth: u32) -> Result<(), ParseError> {
        let me = self.nodes.len();
        self.push(Kind::Array, 0, self.pos, self.pos);
        let mut canonical = true;
        let mut len = 0u32;
        if !self.open(depth, b']', &mut canonical)? {
            loop {
                let child = self.nodes.len();
                self.value(depth + 1)?;
                canonical &= self.nodes[child].flags & CANONICAL != 0;
                len += 1;
                if !self.more(b']', &mut canonical)? {
                    break;
                }
            }
        }
        self.close_node(me, len, if canonical { CANONICAL } else { 0 });
        Ok(())
    }

    fn object(&mut self, depth: u32) -> Result<(), ParseError> {
        let me = self.nodes.len();
        self.push(Kind::Object, 0, self.pos, self.pos);
        let mut canonical = true;
        let mut len = 0u32;
        let mut dups = DupCheck::new(self.spans.len());
        if !self.open(depth, b'}', &mut canonical)? {
            loop {
                let (start, end, flags) = self.key(&mut dups, &mut canonical)?;
                self.push(Kind::String, flags, start, end);
                let child = self.nodes.len();
                self.value(depth + 1)?;
                canonical &= self.nodes[child].flags & CANONICAL != 0;
                len += 1;
                if !self.more(b'}', &mut canonical)? {
                    break;
                }
            }
        }
        let flags = self.object_flags(dups, canonical);
        self.close_node(me, len, flags);
        Ok(())
    }

    fn spans_have_duplicates(&self, base: usize) -> bool {
        let spans = &self.spans[base..];
        let text = |(start, end): (u32, u32)| {
            let inner = &self.src[start as usize + 1..end as usize - 1];
            if inner.contains('\\') {
                Cow::Owned(unescape(inner))
            } else {
                Cow::Borrowed(inner)
            }
        };
        for (i, &a) in spans.iter().enumerate() {
            let ta = text(a);
            if spans[..i].iter().any(|&b| text(b) == ta) {
                return true;
            }
        }
        false
    }
}

/// Finds repeated keys in an object cheaply: a 64-bit filter on each key's (length, first,
/// last byte); only a hit, or an escaped key, pays for an exact comparison when the object
/// closes.
struct DupCheck {
    /// Where the object's keys start in `Parser::spans`.
    base: usize,
    bloom: u64,
    maybe: bool,
}

impl DupCheck {
    fn new(base: usize) -> DupCheck {
        DupCheck {
            base,
            bloom: 0,
            maybe: false,
        }
    }

    #[inline(always)]
    fn add(&mut self, key: &[u8], escaped: bool) {
        let h = (key.len() as u64)
            .wrapping_mul(31)
            .wrapping_add(key.first().copied().unwrap_or(0) as u64)
            .wrapping_add((key.last().copied().unwrap_or(0) as u64) << 3);
        let bit = 1u64 << (h & 63);
        self.maybe |= self.bloom & bit != 0 || escaped;
        self.bloom |= bit;
    }
}

/// A node of a parsed document: cheap to copy, borrows the source text and the tape.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    src: &'a str,
    nodes: &'a [Node],
    idx: u32,
    root_index: &'a [(u64, u32)],
}

impl fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeRef({:?}: {})", self.kind(), self.raw())
    }
}

fn string_value(src: &str, n: Node) -> Cow<'_, str> {
    let inner = &src[n.start as usize + 1..n.end as usize - 1];
    if n.flags & ESCAPED == 0 {
        Cow::Borrowed(inner)
    } else {
        Cow::Owned(unescape(inner))
    }
}

/// Decodes the escapes of a validated JSON string body. Lone surrogates (which JavaScript
/// strings can hold and Rust strings cannot) become U+FFFD.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&s[run..i]);
        let e = b[i + 1];
        i += 2;
        match e {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let hex = |at: usize| u32::from_str_radix(&s[at..at + 4], 16).unwrap_or(0xfffd);
                let hi = hex(i);
                i += 4;
                if (0xd800..0xdc00).contains(&hi)
                    && b.get(i) == Some(&b'\\')
                    && b.get(i + 1) == Some(&b'u')
                {
                    let lo = hex(i + 2);
                    if (0xdc00..0xe000).contains(&lo) {
                        i += 6;
                        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                    } else {
                        out.push('\u{fffd}');
                    }
                } else {
                    out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                }
            }
            other => out.push(other as char), // '"', '\\', '/'
        }
        run = i;
    }
    out.push_str(&s[run..]);
    out
}

impl<'a> NodeRef<'a> {
    #[inline]
    fn node(&self) -> Node {
        self.nodes[self.idx as usize]
    }

    /// The node's position in its tape (see [`NodeRef::at`]).
    #[inline]
    pub(crate) fn index_in_tape(&self) -> u32 {
        self.idx
    }

    /// Another node of the same document, by [`NodeRef::index_in_tape`].
    #[inline]
    pub(crate) fn at(&self, idx: u32) -> NodeRef<'a> {
        NodeRef {
            src: self.src,
            nodes: self.nodes,
            idx,
            root_index: self.root_index,
        }
    }

    #[inline]
    pub fn kind(&self) -> Kind {
        self.node().kind
    }

    /// The node's text exactly as written in the input.
    #[inline]
    pub fn raw(&self) -> &'a str {
        let n = self.node();
        &self.src[n.start as usize..n.end as usize]
    }

    /// True when `raw()` is exactly what `JSON.stringify` would print for this value.
    #[inline]
    pub fn is_canonical(&self) -> bool {
        self.node().flags & CANONICAL != 0
    }

    #[inline]
    pub fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    pub fn as_bool(&self) -> Option<bool> {
        let n = self.node();
        (n.kind == Kind::Bool).then_some(n.flags & TRUE != 0)
    }

    /// The decoded string value (borrowed when the input had no escapes).
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let n = self.node();
        (n.kind == Kind::String).then(|| string_value(self.src, n))
    }

    /// The string's bytes as written between the quotes, and whether escapes must be decoded.
    #[inline]
    pub fn str_raw(&self) -> Option<(&'a str, bool)> {
        let n = self.node();
        (n.kind == Kind::String).then(|| {
            (
                &self.src[n.start as usize + 1..n.end as usize - 1],
                n.flags & ESCAPED != 0,
            )
        })
    }

    /// The number's text as written.
    pub fn number_text(&self) -> Option<&'a str> {
        (self.kind() == Kind::Number).then(|| self.raw())
    }

    pub fn as_f64(&self) -> Option<f64> {
        self.number_text()
            .map(|t| t.parse::<f64>().unwrap_or(f64::NAN))
    }

    /// Number of elements or members (0 for scalars).
    pub fn len(&self) -> usize {
        self.node().len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Own property `key` of an object. Repeated keys resolve to the last value, as
    /// `JSON.parse` does.
    pub fn get(&self, key: &str) -> Option<NodeRef<'a>> {
        let n = self.node();
        if n.kind != Kind::Object {
            return None;
        }
        let dup = n.flags & DUP_KEYS != 0;
        let mut found = None;
        if self.idx == 0 && !self.root_index.is_empty() {
            let h = key_hash(key.as_bytes());
            for &(kh, ki) in self.root_index {
                if kh == h && key_matches(self.src, self.nodes[ki as usize], key) {
                    found = Some(self.at(ki + 1));
                    if !dup {
                        return found;
                    }
                }
            }
            return found;
        }
        let mut i = self.idx + 1;
        while i < n.next {
            let k = self.nodes[i as usize];
            let value = i + 1;
            if key_matches(self.src, k, key) {
                found = Some(self.at(value));
                if !dup {
                    return found;
                }
            }
            i = self.nodes[value as usize].next;
        }
        found
    }

    /// Element `i` of an array.
    pub fn index(&self, i: usize) -> Option<NodeRef<'a>> {
        let n = self.node();
        if n.kind != Kind::Array || i >= n.len as usize {
            return None;
        }
        let mut at = self.idx + 1;
        for _ in 0..i {
            at = self.nodes[at as usize].next;
        }
        Some(self.at(at))
    }

    /// Elements of an array (empty for anything else).
    pub fn elements(&self) -> Elements<'a> {
        let n = self.node();
        let (at, end) = if n.kind == Kind::Array {
            (self.idx + 1, n.next)
        } else {
            (0, 0)
        };
        Elements {
            base: *self,
            at,
            end,
        }
    }

    /// Members of an object in input order, repeated keys included (see
    /// [`NodeRef::has_duplicate_keys`]).
    pub fn members(&self) -> Members<'a> {
        let n = self.node();
        let (at, end) = if n.kind == Kind::Object {
            (self.idx + 1, n.next)
        } else {
            (0, 0)
        };
        Members {
            base: *self,
            at,
            end,
        }
    }

    /// True for an object in which some key occurs more than once.
    pub fn has_duplicate_keys(&self) -> bool {
        self.node().flags & DUP_KEYS != 0
    }
}

/// Equality of two slices of the same length, without a `memcmp` call for the short keys
/// events are made of.
#[inline]
pub(super) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[inline]
fn key_matches(src: &str, k: Node, key: &str) -> bool {
    let (start, end) = (k.start as usize + 1, k.end as usize - 1);
    if k.flags & ESCAPED == 0 {
        // Lengths first: most keys differ in length, and the comparison is then free.
        end - start == key.len() && short_eq(&src.as_bytes()[start..end], key.as_bytes())
    } else {
        unescape(&src[start..end]) == key
    }
}

/// Iterator over array elements.
pub struct Elements<'a> {
    base: NodeRef<'a>,
    at: u32,
    end: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = NodeRef<'a>;
    fn next(&mut self) -> Option<NodeRef<'a>> {
        if self.at >= self.end {
            return None;
        }
        let n = self.base.at(self.at);
        self.at = self.base.nodes[self.at as usize].next;
        Some(n)
    }
}

/// Iterator over object members as (key, value).
pub struct Members<'a> {
    base: NodeRef<'a>,
    at: u32,
    end: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, NodeRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let key = string_value(self.base.src, self.base.nodes[self.at as usize]);
        let value = self.base.at(self.at + 1);
        self.at = self.base.nodes[(self.at + 1) as usize].next;
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> (bool, String) {
        let mut t = Tape::new();
        let r = t.parse(s).unwrap();
        (r.is_canonical(), r.raw().to_string())
    }

    #[test]
    fn canonical_detection() {
        assert!(parse_ok(r#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}"#).0);
        assert!(!parse_ok(r#"{"a": 1}"#).0);
        assert!(!parse_ok(r#"{"a":1.0}"#).0);
        assert!(!parse_ok(r#"{"a":"\u00e9"}"#).0);
        assert!(!parse_ok(r#"{"a":"\/"}"#).0);
        assert!(parse_ok(r#"{"a":"line\nbreak \"q\" \u001f"}"#).0);
        assert!(!parse_ok(r#"{"a":"\u001F"}"#).0);
        assert!(!parse_ok(r#"{"a":1,"a":2}"#).0);
        assert!(!parse_ok(r#"[1e2]"#).0);
        assert!(!parse_ok(r#"[-0]"#).0);
        assert!(!parse_ok(r#"[0.0000001]"#).0);
        assert!(parse_ok(r#"[0.000001]"#).0);
        assert!(!parse_ok(r#"[0.1234567890123456]"#).0);
    }

    #[test]
    fn lookup_and_duplicates() {
        let mut t = Tape::new();
        let r = t
            .parse(r#"{"a":1,"b":{"c":"x\ty"},"a":3,"e\u0301":4}"#)
            .unwrap();
        assert!(r.has_duplicate_keys());
        assert_eq!(r.get("a").unwrap().raw(), "3");
        assert_eq!(
            r.get("b").unwrap().get("c").unwrap().as_str().unwrap(),
            "x\ty"
        );
        assert_eq!(r.get("e\u{301}").unwrap().raw(), "4");
        assert!(r.get("zz").is_none());
        assert_eq!(r.len(), 4);
    }

    /// Every position of every special byte, around the 16- and 8-byte steps, among
    /// UTF-8 bytes (which must not count as control characters).
    #[test]
    fn string_scan_finds_the_first_special_byte() {
        let naive = |b: &[u8], from: usize| {
            (from..b.len())
                .find(|&j| b[j] == b'"' || b[j] == b'\\' || b[j] < 0x20)
                .unwrap_or(b.len())
        };
        for len in 0..70 {
            for fill in [b'a', 0x80, 0xff, 0x20, 0x7f] {
                let plain = vec![fill; len];
                assert_eq!(find_string_special(&plain, 0), len);
                for at in 0..len {
                    for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                        let mut text = plain.clone();
                        text[at] = special;
                        for from in [0, at.saturating_sub(3), at] {
                            assert_eq!(find_string_special(&text, from), naive(&text, from));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn arrays() {
        let mut t = Tape::new();
        let r = t.parse(r#"[1,[2,3],{"x":[4]},"s"]"#).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.index(2).unwrap().raw(), r#"{"x":[4]}"#);
        assert_eq!(r.index(3).unwrap().as_str().unwrap(), "s");
        assert!(r.index(4).is_none());
        let all: Vec<_> = r.elements().map(|e| e.raw()).collect();
        assert_eq!(all, vec!["1", "[2,3]", r#"{"x":[4]}"#, r#""s""#]);
    }

    #[test]
    fn unicode_escapes_and_surrogates() {
        let mut t = Tape::new();
        let r = t.parse(r#""\ud83d\ude80 \u00e9 \ud800""#).unwrap();
        assert_eq!(r.as_str().unwrap(), "\u{1f680} \u{e9} \u{fffd}");
    }

    #[test]
    fn errors_have_positions() {
        let mut t = Tape::new();
        for bad in [
            "{",
            "[1,]",
            r#"{"a" 1}"#,
            "tru",
            "01",
            "1.",
            "-",
            r#""\x""#,
            "[1] x",
            "",
            "{\"a\":\"\u{1}\"}",
        ] {
            assert!(t.parse(bad).is_err(), "{bad:?} should fail");
        }
        let e = t.parse("{\n  \"a\": tru\n}").unwrap_err();
        assert_eq!(e.line_col(b"{\n  \"a\": tru\n}"), (2, 8));
    }

    #[test]
    fn deep_nesting_is_rejected_not_crashing() {
        let mut t = Tape::new();
        let s = "[".repeat(100_000);
        assert!(t.parse(&s).is_err());
    }
}
