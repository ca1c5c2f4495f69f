//! Template text to a tree of nodes, parsed once when the mapping is loaded.

use super::value::LValue;
use super::{DISABLED_FILTERS, DISABLED_TAGS};

/// Why template text does not parse. Each displays as liquidjs-style text (Liquid's compile
/// error adds its prefix).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// `what` is "output" or "tag"; `shown` the first 40 characters from its opening.
    #[error("{what} \"{shown}\" not closed")]
    NotClosed { what: &'static str, shown: String },
    #[error("tag {{% {name} %}} not closed")]
    TagNotClosed { name: String },
    #[error("unexpected tag \"{tag}\"")]
    UnexpectedTag { tag: String },
    #[error("tag \"{name}\" is disabled")]
    DisabledTag { name: String },
    #[error("filter \"{name}\" is disabled")]
    DisabledFilter { name: String },
    #[error("tag \"{name}\" not found")]
    UnknownTag { name: String },
    #[error("empty tag {{% %}}")]
    EmptyTag,
    #[error("illegal assign \"{args}\": expected name = value")]
    AssignWithoutValue { args: String },
    #[error("illegal assign \"{args}\": \"{var}\" is not a variable name")]
    AssignName { args: String, var: String },
    #[error("capture needs a variable name, not \"{args}\"")]
    CaptureName { args: String },
    /// `increment` or `decrement` without a variable name.
    #[error("{tag} needs a variable name, not \"{args}\"")]
    CounterName { tag: String, args: String },
    #[error("invalid value expression: \"{text}\"")]
    InvalidExpression { text: String },
    #[error("unexpected \"{rest}\" in \"{text}\"")]
    Unexpected { rest: String, text: String },
    #[error("a value is missing in \"{text}\"")]
    MissingValue { text: String },
    #[error("unterminated string in \"{text}\"")]
    UnterminatedString { text: String },
    #[error("invalid range in \"{text}\"")]
    InvalidRange { text: String },
    #[error("missing \"]\" in \"{text}\"")]
    MissingBracket { text: String },
}

impl ParseError {
    /// A tag or filter Segment disables.
    pub fn is_disabled(&self) -> bool {
        matches!(
            self,
            ParseError::DisabledTag { .. } | ParseError::DisabledFilter { .. }
        )
    }
}

#[derive(Debug)]
pub enum Node {
    Text(String),
    Output(Expr),
    If(Vec<(Cond, Vec<Node>)>, Vec<Node>),
    Assign(String, Expr),
    Capture(String, Vec<Node>),
    Increment(String),
    Decrement(String),
    Cycle(String, Vec<Operand>),
}

/// A value followed by filters.
#[derive(Debug)]
pub struct Expr {
    pub head: Operand,
    pub filters: Vec<Filter>,
}

#[derive(Debug)]
pub struct Filter {
    pub name: String,
    pub args: Vec<Operand>,
    pub named: Vec<(String, Operand)>,
}

#[derive(Debug)]
pub enum Operand {
    Lit(LValue),
    /// A variable: its root name, then members.
    Var(Vec<Operand>),
    Range(Box<Operand>, Box<Operand>),
}

/// A condition of `if`/`unless`: `and`/`or` group from the right, as in liquidjs.
#[derive(Debug)]
pub enum Cond {
    Value(Operand),
    Not(Box<Cond>),
    Compare(Operand, CmpOp, Operand),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Contains,
}

/// One piece of template text.
#[derive(Debug)]
enum Token<'a> {
    Text(&'a str),
    Output(&'a str),
    Tag(&'a str),
}

/// Cuts the template into text, `{{ output }}` and `{% tag %}` pieces, applying whitespace
/// control (`{{-`, `-%}`...), which removes all whitespace on that side.
fn tokenize(src: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos < src.len() {
        let rest = &src[pos..];
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = open else {
            push_text(&mut tokens, rest, trim_next, false);
            break;
        };
        let is_output = rest[at..].starts_with("{{");
        let inner_start = at + 2;
        let trim_left = rest[inner_start..].starts_with('-');
        let close = if is_output { "}}" } else { "%}" };
        let Some(end) = find_close(&rest[inner_start..], close) else {
            let what = if is_output { "output" } else { "tag" };
            let shown: String = rest[at..].chars().take(40).collect();
            return Err(ParseError::NotClosed { what, shown });
        };
        push_text(&mut tokens, &rest[..at], trim_next, trim_left);
        let mut inner = &rest[inner_start..inner_start + end];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with('-');
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let inner = inner.trim();
        let after = pos + inner_start + end + 2;
        if !is_output {
            let name = inner.split_whitespace().next().unwrap_or("");
            if name == "liquid" {
                // Each line is a tag of its own, blocks included.
                let body = inner["liquid".len()..].trim();
                for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    tokens.push(Token::Tag(line));
                }
                pos = after;
                continue;
            }
            if name == "raw" || name == "comment" {
                let endname = format!("end{name}");
                let body_start = after;
                let (body_end, next) =
                    find_end_tag(src, body_start, &endname).ok_or_else(|| {
                        ParseError::TagNotClosed {
                            name: name.to_string(),
                        }
                    })?;
                if name == "raw" {
                    tokens.push(Token::Text(&src[body_start..body_end.0]));
                }
                trim_next = body_end.1;
                pos = next;
                continue;
            }
        }
        tokens.push(if is_output {
            Token::Output(inner)
        } else {
            Token::Tag(inner)
        });
        pos = after;
    }
    Ok(tokens)
}

fn push_text<'a>(tokens: &mut Vec<Token<'a>>, mut text: &'a str, trim_start: bool, trim_end: bool) {
    if trim_start {
        text = text.trim_start();
    }
    if trim_end {
        text = text.trim_end();
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
}

/// Where `close` ends an output or tag, skipping quoted strings.
fn find_close(s: &str, close: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote = None;
    while i < b.len() {
        match quote {
            Some(q) if b[i] == q => quote = None,
            Some(_) => {}
            None if b[i] == b'"' || b[i] == b'\'' => quote = Some(b[i]),
            // Bytes, not `&s[i..]`: `i` steps through bytes and may sit inside a
            // multi-byte character.
            None if b[i..].starts_with(close.as_bytes()) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// Finds `{% endname %}` from `from`: returns ((start of the end tag, whether it trims the
/// text after it), position after it).
fn find_end_tag(src: &str, from: usize, endname: &str) -> Option<((usize, bool), usize)> {
    let mut pos = from;
    while let Some(at) = src[pos..].find("{%") {
        let start = pos + at;
        let inner_start = start + 2;
        let end = find_close(&src[inner_start..], "%}")?;
        let inner = &src[inner_start..inner_start + end];
        let trimmed = inner.trim_start_matches('-').trim_end_matches('-').trim();
        if trimmed == endname {
            return Some(((start, inner.ends_with('-')), inner_start + end + 2));
        }
        pos = inner_start + end + 2;
    }
    None
}

/// Parses a whole template.
pub fn parse(src: &str) -> Result<Vec<Node>, ParseError> {
    let tokens = tokenize(src)?;
    let mut it = tokens.into_iter().peekable();
    let (nodes, end) = parse_block(&mut it, &[])?;
    match end {
        None => Ok(nodes),
        Some(tag) => Err(ParseError::UnexpectedTag {
            tag: tag.to_string(),
        }),
    }
}

type Tokens<'a> = std::iter::Peekable<std::vec::IntoIter<Token<'a>>>;

/// Parses nodes until one of the `stops` tags (returned with its whole text) or the end.
fn parse_block<'a>(
    it: &mut Tokens<'a>,
    stops: &[&str],
) -> Result<(Vec<Node>, Option<&'a str>), ParseError> {
    let mut nodes = Vec::new();
    while let Some(tok) = it.next() {
        match tok {
            Token::Text(t) => nodes.push(Node::Text(t.to_string())),
            Token::Output(o) => nodes.push(Node::Output(parse_expr(o)?)),
            Token::Tag(t) => {
                let (name, args) = split_tag(t);
                if stops.contains(&name) {
                    return Ok((nodes, Some(t)));
                }
                parse_tag(name, args, it, &mut nodes)?;
            }
        }
    }
    if stops.is_empty() {
        Ok((nodes, None))
    } else {
        Err(ParseError::TagNotClosed {
            name: stops[stops.len() - 1].to_string(),
        })
    }
}

fn split_tag(t: &str) -> (&str, &str) {
    if let Some(rest) = t.strip_prefix('#') {
        return ("#", rest);
    }
    match t.find(char::is_whitespace) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    }
}

fn parse_tag(
    name: &str,
    args: &str,
    it: &mut Tokens<'_>,
    nodes: &mut Vec<Node>,
) -> Result<(), ParseError> {
    if DISABLED_TAGS.contains(&name) {
        return Err(ParseError::DisabledTag {
            name: name.to_string(),
        });
    }
    match name {
        "if" | "unless" => {
            let end = if name == "if" { "endif" } else { "endunless" };
            let mut branches = Vec::new();
            let mut cond = parse_cond(args)?;
            if name == "unless" {
                cond = Cond::Not(Box::new(cond));
            }
            let mut else_nodes = Vec::new();
            loop {
                let (body, stop) = parse_block(it, &["elsif", "else", end])?;
                branches.push((cond, body));
                let (stop_name, stop_args) = split_tag(stop.unwrap_or(end));
                match stop_name {
                    "elsif" => cond = parse_cond(stop_args)?,
                    "else" => {
                        let (body, _) = parse_block(it, &[end])?;
                        else_nodes = body;
                        break;
                    }
                    _ => break,
                }
            }
            nodes.push(Node::If(branches, else_nodes));
        }
        "assign" => {
            let (var, value) =
                args.split_once('=')
                    .ok_or_else(|| ParseError::AssignWithoutValue {
                        args: args.to_string(),
                    })?;
            let var = var.trim();
            if !is_identifier(var) {
                return Err(ParseError::AssignName {
                    args: args.to_string(),
                    var: var.to_string(),
                });
            }
            nodes.push(Node::Assign(var.to_string(), parse_expr(value)?));
        }
        "capture" => {
            let var = args.trim().trim_matches(|c| c == '"' || c == '\'');
            if !is_identifier(var) {
                return Err(ParseError::CaptureName {
                    args: args.to_string(),
                });
            }
            let (body, _) = parse_block(it, &["endcapture"])?;
            nodes.push(Node::Capture(var.to_string(), body));
        }
        "increment" | "decrement" => {
            let var = args.trim();
            if !is_identifier(var) {
                return Err(ParseError::CounterName {
                    tag: name.to_string(),
                    args: args.to_string(),
                });
            }
            nodes.push(if name == "increment" {
                Node::Increment(var.to_string())
            } else {
                Node::Decrement(var.to_string())
            });
        }
        "cycle" => {
            let mut lexer = Lexer::new(args);
            let first = lexer.operand()?;
            let (group, mut values) = if lexer.eat(":") {
                (format!("{first:?}"), Vec::new())
            } else {
                (String::new(), vec![first])
            };
            loop {
                if !values.is_empty() && !lexer.eat(",") {
                    break;
                }
                values.push(lexer.operand()?);
            }
            lexer.end()?;
            let group = if group.is_empty() {
                format!("{values:?}")
            } else {
                group
            };
            nodes.push(Node::Cycle(group, values));
        }
        "echo" => nodes.push(Node::Output(parse_expr(args)?)),
        "#" => {}
        "" => return Err(ParseError::EmptyTag),
        other => {
            return Err(ParseError::UnknownTag {
                name: other.to_string(),
            });
        }
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// `value | filter: arg, name: arg | ...`
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut lexer = Lexer::new(text);
    if lexer.at_end() {
        return Err(ParseError::InvalidExpression {
            text: text.trim().to_string(),
        });
    }
    let head = lexer.operand()?;
    let mut filters = Vec::new();
    while lexer.eat("|") {
        // liquidjs ignores a `|` with no filter name after it.
        let Some(name) = lexer.word() else {
            continue;
        };
        if DISABLED_FILTERS.contains(&name.as_str()) {
            return Err(ParseError::DisabledFilter { name });
        }
        let mut filter = Filter {
            name,
            args: Vec::new(),
            named: Vec::new(),
        };
        if lexer.eat(":") {
            loop {
                let save = lexer.pos;
                if let Some(word) = lexer.word()
                    && lexer.eat(":")
                {
                    filter.named.push((word, lexer.operand()?));
                } else {
                    lexer.pos = save;
                    filter.args.push(lexer.operand()?);
                }
                if !lexer.eat(",") {
                    break;
                }
            }
        }
        filters.push(filter);
    }
    lexer.end()?;
    Ok(Expr { head, filters })
}

/// `a == b and not c or d contains 'x'`
fn parse_cond(text: &str) -> Result<Cond, ParseError> {
    let mut lexer = Lexer::new(text);
    if lexer.at_end() {
        return Err(ParseError::InvalidExpression {
            text: text.trim().to_string(),
        });
    }
    let cond = cond_chain(&mut lexer)?;
    lexer.end()?;
    Ok(cond)
}

fn cond_chain(lexer: &mut Lexer<'_>) -> Result<Cond, ParseError> {
    let left = cond_term(lexer)?;
    if lexer.keyword("and") {
        Ok(Cond::And(Box::new(left), Box::new(cond_chain(lexer)?)))
    } else if lexer.keyword("or") {
        Ok(Cond::Or(Box::new(left), Box::new(cond_chain(lexer)?)))
    } else {
        Ok(left)
    }
}

fn cond_term(lexer: &mut Lexer<'_>) -> Result<Cond, ParseError> {
    if lexer.keyword("not") {
        return Ok(Cond::Not(Box::new(cond_term(lexer)?)));
    }
    let left = lexer.operand()?;
    let op = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<>", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ]
    .into_iter()
    .find(|(s, _)| lexer.eat(s))
    .map(|(_, op)| op)
    .or_else(|| lexer.keyword("contains").then_some(CmpOp::Contains));
    match op {
        Some(op) => Ok(Cond::Compare(left, op, lexer.operand()?)),
        None => Ok(Cond::Value(left)),
    }
}

/// Reads operands and punctuation out of tag and output text.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Lexer<'a> {
        Lexer { s, pos: 0 }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s.as_bytes()[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn rest(&mut self) -> &'a str {
        self.skip_ws();
        &self.s[self.pos..]
    }

    fn at_end(&mut self) -> bool {
        self.rest().is_empty()
    }

    fn end(&mut self) -> Result<(), ParseError> {
        let rest = self.rest();
        if rest.is_empty() {
            Ok(())
        } else {
            Err(ParseError::Unexpected {
                rest: rest.to_string(),
                text: self.s.trim().to_string(),
            })
        }
    }

    fn invalid_range(&self) -> ParseError {
        ParseError::InvalidRange {
            text: self.s.trim().to_string(),
        }
    }

    fn eat(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.pos += p.len();
            true
        } else {
            false
        }
    }

    /// A whole word (not a prefix of a longer name).
    fn keyword(&mut self, w: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(w) && !rest[w.len()..].starts_with(|c: char| is_name_char(c)) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Option<String> {
        let rest = self.rest();
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(rest[..len].to_string())
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Err(ParseError::MissingValue {
                text: self.s.trim().to_string(),
            });
        };
        if c == '"' || c == '\'' {
            let end = rest[1..]
                .find(c)
                .ok_or_else(|| ParseError::UnterminatedString {
                    text: self.s.trim().to_string(),
                })?;
            self.pos += end + 2;
            return Ok(Operand::Lit(LValue::Str(rest[1..1 + end].to_string())));
        }
        if c == '(' {
            self.pos += 1;
            let from = self.operand()?;
            if !self.eat("..") {
                return Err(self.invalid_range());
            }
            let to = self.operand()?;
            if !self.eat(")") {
                return Err(self.invalid_range());
            }
            return Ok(Operand::Range(Box::new(from), Box::new(to)));
        }
        if let Some(n) = number_prefix(rest) {
            self.pos += n.len();
            return Ok(Operand::Lit(LValue::Num(n.parse().unwrap_or(f64::NAN))));
        }
        let Some(root) = self.word() else {
            if c == '[' {
                return self.variable(Vec::new());
            }
            return Err(ParseError::InvalidExpression {
                text: rest.to_string(),
            });
        };
        let lit = match root.as_str() {
            "true" => Some(LValue::Bool(true)),
            "false" => Some(LValue::Bool(false)),
            "nil" | "null" => Some(LValue::Nil),
            "empty" => Some(LValue::Empty),
            "blank" => Some(LValue::Blank),
            _ => None,
        };
        if let Some(lit) = lit
            && !self.s[self.pos..].starts_with(['.', '['])
        {
            return Ok(Operand::Lit(lit));
        }
        self.variable(vec![Operand::Lit(LValue::Str(root))])
    }

    fn variable(&mut self, mut path: Vec<Operand>) -> Result<Operand, ParseError> {
        loop {
            let rest = &self.s[self.pos..];
            if let Some(after) = rest.strip_prefix('.') {
                let len = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                if len == 0 {
                    break;
                }
                path.push(Operand::Lit(LValue::Str(after[..len].to_string())));
                self.pos += 1 + len;
            } else if rest.starts_with('[') {
                self.pos += 1;
                let key = self.operand()?;
                if !self.eat("]") {
                    return Err(ParseError::MissingBracket {
                        text: self.s.trim().to_string(),
                    });
                }
                path.push(key);
            } else {
                break;
            }
        }
        if path.is_empty() {
            return Err(ParseError::InvalidExpression {
                text: self.s.trim().to_string(),
            });
        }
        Ok(Operand::Var(path))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '?'
}

/// A number literal at the start of `s`: `-?digits(.digits)?`, not followed by a name
/// character (liquidjs reads `1e21` as a variable name).
fn number_prefix(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits {
        return None;
    }
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if s[i..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some(&s[..i])
}
