//! FQL grammar, with Segment's grouping rule.

use super::lexer::{Tok, Token, lex};
use super::{Field, Node, Ordering, Test, TriggerError, written_number};
use crate::json::js_number_to_string;
use crate::value::{Path, Seg};

/// The fields a condition can test, for error messages.
pub const FIELDS: &[&str] = &[
    "type",
    "event",
    "name",
    "userId",
    "properties.<path>",
    "traits.<path>",
    "context.<path>",
];

/// How deeply groups may nest: `(` is checked against it before the parser recurses, so a
/// trigger of thousands of parentheses is an error, not a stack overflow.
pub const MAX_DEPTH: usize = 100;

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    warnings: Vec<String>,
}

pub fn parse(src: &str) -> Result<(Node, Vec<String>), TriggerError> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        warnings: Vec::new(),
    };
    if p.peek() == &Tok::Eos {
        return Err(
            p.error_here("the trigger is empty; expected a condition such as type = \"track\"")
        );
    }
    let root = p.group(0)?;
    Ok((root, p.warnings))
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error_at(&self, tok: &Token, message: &str) -> TriggerError {
        TriggerError::at(self.src, tok.at, message)
    }

    fn error_here(&self, message: &str) -> TriggerError {
        self.error_at(&self.toks[self.pos], message)
    }

    /// A sequence of items joined by `and`/`or`, up to `)` (depth > 0) or the end.
    fn group(&mut self, depth: usize) -> Result<Node, TriggerError> {
        let mut items = Vec::new();
        let mut conj: Option<Tok> = None;
        let mut mixed = false;
        let mut implicit = false;
        loop {
            items.push(self.item(depth)?);
            match self.peek().clone() {
                Tok::And | Tok::Or => {
                    let t = self.next();
                    if let Some(prev) = &conj
                        && *prev != t.tok
                    {
                        mixed = true;
                    }
                    conj = Some(t.tok);
                    if matches!(self.peek(), Tok::Eos | Tok::RParen) {
                        return Err(self.error_here(&format!(
                            "expected a condition after '{}'",
                            if conj == Some(Tok::And) { "and" } else { "or" }
                        )));
                    }
                }
                Tok::RParen if depth > 0 => break,
                Tok::RParen => return Err(self.error_here("unmatched ')'")),
                Tok::Eos if depth > 0 => {
                    return Err(self.error_here("expected ')' to close the group"));
                }
                Tok::Eos => break,
                Tok::Ident(_) | Tok::Bang | Tok::LParen => {
                    // Segment joins conditions written side by side with the group's
                    // conjunction (and by default).
                    implicit = true;
                }
                other => {
                    return Err(self.error_here(&format!(
                        "expected 'and', 'or' or the end of the trigger, found {}",
                        other.describe()
                    )));
                }
            }
        }
        let any = conj == Some(Tok::Or);
        if mixed {
            self.warnings.push(format!(
                "'and' and 'or' are mixed without parentheses; like Segment, the last one ('{}') applies to every condition of the group. Add parentheses to say which conditions go together.",
                if any { "or" } else { "and" }
            ));
        }
        if implicit {
            self.warnings.push(
                "two conditions follow each other without 'and' or 'or'; they are joined with the group's conjunction. Write it explicitly.".into(),
            );
        }
        if items.len() == 1 {
            return Ok(items.pop().expect("one item"));
        }
        Ok(Node::Group { any, items })
    }

    fn item(&mut self, depth: usize) -> Result<Node, TriggerError> {
        let tok = self.next();
        match tok.tok.clone() {
            Tok::LParen => {
                if self.peek() == &Tok::RParen {
                    return Err(self.error_here("empty parentheses: expected a condition"));
                }
                if depth >= MAX_DEPTH {
                    return Err(self.error_at(
                        &tok,
                        &format!("parentheses are nested more than {MAX_DEPTH} levels deep"),
                    ));
                }
                let inner = self.group(depth + 1)?;
                let close = self.next();
                debug_assert_eq!(close.tok, Tok::RParen);
                Ok(inner)
            }
            Tok::Bang => match self.peek().clone() {
                Tok::Ident(name) if is_function(&name) => {
                    let name_tok = self.next();
                    self.function(&name, &name_tok, true)
                }
                _ => {
                    self.warnings.push(
                        "'!' only negates contains() and match(); Segment ignores it anywhere else. Use '!=' to negate a comparison.".into(),
                    );
                    // A run of ignored '!'s is skipped here rather than by recursing once
                    // per '!'.
                    while self.peek() == &Tok::Bang
                        && !matches!(&self.toks[(self.pos + 1).min(self.toks.len() - 1)].tok,
                            Tok::Ident(n) if is_function(n))
                    {
                        self.next();
                    }
                    self.item(depth)
                }
            },
            Tok::Ident(name) if is_function(&name) && self.peek() == &Tok::LParen => {
                self.function(&name, &tok, false)
            }
            Tok::Ident(name) => self.condition(&name, &tok),
            Tok::Eos => Err(self.error_at(&tok, "expected a condition")),
            other => Err(self.error_at(
                &tok,
                &format!(
                    "expected a condition (a field such as type, event or properties.x), found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn field(&self, name: &str, tok: &Token) -> Result<Field, TriggerError> {
        let (head, rest) = match name.find(['.', '[']) {
            Some(i) => (&name[..i], Some(name[i..].trim_start_matches('.'))),
            None => (name, None),
        };
        // Segment takes the part after "properties." as the path; a bare "properties"
        // (no dot) is looked up as the key "properties" inside properties.
        let path = |root: &str| -> Vec<Seg> {
            let p = rest.unwrap_or(root);
            match Path::keys(p) {
                Path::Keys(k) => k,
                _ => Vec::new(),
            }
        };
        Ok(match head {
            "type" => Field::Type,
            "event" => Field::Event,
            "name" => Field::Name,
            "userId" => Field::UserId,
            "properties" => Field::Properties(path("properties")),
            "traits" => Field::Traits(path("traits")),
            "context" => Field::Context(path("context")),
            _ => {
                let candidates = [
                    "type",
                    "event",
                    "name",
                    "userId",
                    "properties",
                    "traits",
                    "context",
                ];
                let hint = crate::suggest::did_you_mean(head, candidates)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(self.error_at(
                    tok,
                    &format!(
                        "unknown field '{name}'{hint}; a condition tests one of: {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
        })
    }

    fn condition(&mut self, name: &str, field_tok: &Token) -> Result<Node, TriggerError> {
        let field = self.field(name, field_tok)?;
        let op_tok = self.next();
        let op = op_tok.tok.clone();
        if !matches!(
            op,
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge
        ) {
            return Err(self.error_at(
                &op_tok,
                &format!(
                    "expected an operator (=, !=, <, <=, >, >=) after '{name}', found {}",
                    op.describe()
                ),
            ));
        }
        let value_tok = self.next();
        let value = value_tok.tok.clone();
        if !matches!(
            value,
            Tok::Str(_) | Tok::Num(_) | Tok::True | Tok::False | Tok::Null | Tok::Ident(_)
        ) {
            let op_text = op.describe();
            let op_text = op_text.trim_matches('\'');
            return Err(self.error_at(
                &value_tok,
                &format!(
                    "expected a value after '{op_text}', found {}",
                    value.describe()
                ),
            ));
        }
        let nullable = matches!(
            field,
            Field::Name
                | Field::UserId
                | Field::Properties(_)
                | Field::Traits(_)
                | Field::Context(_)
        );
        let boolean = matches!(
            field,
            Field::UserId | Field::Properties(_) | Field::Traits(_) | Field::Context(_)
        );
        let numeric = matches!(
            field,
            Field::Properties(_) | Field::Traits(_) | Field::Context(_)
        );
        let test = match (&op, &value) {
            (Tok::Ne, Tok::Null) if nullable => Test::Exists(true),
            (Tok::Eq, Tok::Null) if nullable => Test::Exists(false),
            (Tok::Eq, Tok::True) if boolean => Test::IsBool(true),
            (Tok::Eq, Tok::False) if boolean => Test::IsBool(false),
            (Tok::Eq, Tok::Num(n)) if numeric => Test::NumEq(written_number(n), false),
            (Tok::Ne, Tok::Num(n)) if numeric => Test::NumEq(written_number(n), true),
            (Tok::Eq, v) => Test::StrEq(text(v)),
            (Tok::Ne, v) => Test::StrNe(text(v)),
            (op, v) => {
                let n = number(v);
                let ord = match op {
                    Tok::Lt => Ordering::Lt,
                    Tok::Le => Ordering::Le,
                    Tok::Gt => Ordering::Gt,
                    _ => Ordering::Ge,
                };
                Test::Compare(ord, n)
            }
        };
        Ok(Node::Cond(field, test))
    }

    fn function(
        &mut self,
        name: &str,
        name_tok: &Token,
        negate: bool,
    ) -> Result<Node, TriggerError> {
        let open = self.next();
        if open.tok != Tok::LParen {
            return Err(self.error_at(&open, &format!("expected '(' after {name}")));
        }
        let field_tok = self.next();
        let Tok::Ident(field_name) = field_tok.tok.clone() else {
            return Err(self.error_at(
                &field_tok,
                &format!(
                    "{name}() needs a field as its first argument, found {}",
                    field_tok.tok.describe()
                ),
            ));
        };
        let field = self.field(&field_name, &field_tok)?;
        if field == Field::Type {
            return Err(self.error_at(
                &field_tok,
                &format!(
                    "{name}() does not work on 'type' (Segment rejects it); use type = \"...\""
                ),
            ));
        }
        let comma = self.next();
        if comma.tok != Tok::Comma {
            return Err(self.error_at(&comma, &format!("expected ',' after the field in {name}()")));
        }
        let value_tok = self.next();
        if !matches!(
            value_tok.tok,
            Tok::Str(_) | Tok::Num(_) | Tok::Ident(_) | Tok::True | Tok::False | Tok::Null
        ) {
            return Err(self.error_at(
                &value_tok,
                &format!(
                    "{name}() needs a text to look for as its second argument, found {}",
                    value_tok.tok.describe()
                ),
            ));
        }
        let close = self.next();
        if close.tok != Tok::RParen {
            return Err(self.error_at(&close, &format!("expected ')' to close {name}()")));
        }
        let written = text(&value_tok.tok);
        let test = if name == "contains" {
            Test::Contains(written, negate)
        } else {
            match &value_tok.tok {
                // Segment: a quoted pattern ending in '*' is a prefix; anything else is
                // taken to start with '*' and tests the suffix after its first character.
                Tok::Str(s) if s.ends_with('*') => {
                    Test::StartsWith(s[..s.len() - 1].to_string(), negate)
                }
                _ => {
                    let mut chars = written.chars();
                    chars.next();
                    Test::EndsWith(chars.as_str().to_string(), negate)
                }
            }
        };
        let _ = name_tok;
        Ok(Node::Cond(field, test))
    }
}

fn is_function(name: &str) -> bool {
    name == "contains" || name == "match"
}

/// The written value as Segment's `String(getTokenValue(token))` reads it.
fn text(v: &Tok) -> String {
    match v {
        Tok::Str(s) | Tok::Ident(s) => s.clone(),
        Tok::Num(n) => js_number_to_string(written_number(n)),
        Tok::True => "true".into(),
        Tok::False => "false".into(),
        _ => "null".into(),
    }
}

/// The written value as `Number(getTokenValue(token))` reads it.
fn number(v: &Tok) -> f64 {
    match v {
        Tok::Num(n) | Tok::Str(n) | Tok::Ident(n) => written_number(n),
        Tok::True => 1.0,
        Tok::False => 0.0,
        _ => f64::NAN,
    }
}
