//! FQL tokens.

use super::TriggerError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A field path or bare word, dots and brackets included (`properties.items[0].sku`).
    Ident(String),
    /// A quoted string, escapes decoded.
    Str(String),
    /// A number as written.
    Num(String),
    True,
    False,
    Null,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Bang,
    LParen,
    RParen,
    Comma,
    Eos,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::True => "'true'".into(),
            Tok::False => "'false'".into(),
            Tok::Null => "'null'".into(),
            Tok::And => "'and'".into(),
            Tok::Or => "'or'".into(),
            Tok::Eq => "'='".into(),
            Tok::Ne => "'!='".into(),
            Tok::Lt => "'<'".into(),
            Tok::Le => "'<='".into(),
            Tok::Gt => "'>'".into(),
            Tok::Ge => "'>='".into(),
            Tok::Bang => "'!'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Eos => "the end of the trigger".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the trigger text.
    pub at: usize,
}

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-'
}

pub fn lex(src: &str) -> Result<Vec<Token>, TriggerError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map_or(src.len(), |c| c.0);
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
            }
            '(' | ')' | ',' => {
                out.push(Token {
                    tok: match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        _ => Tok::Comma,
                    },
                    at: pos,
                });
                i += 1;
            }
            '=' => {
                if chars.get(i + 1).map(|c| c.1) == Some('=') {
                    return Err(TriggerError::at(
                        src,
                        pos,
                        "'==' is not an FQL operator; use '=' for equality",
                    ));
                }
                out.push(Token {
                    tok: Tok::Eq,
                    at: pos,
                });
                i += 1;
            }
            '!' => {
                if chars.get(i + 1).map(|c| c.1) == Some('=') {
                    out.push(Token {
                        tok: Tok::Ne,
                        at: pos,
                    });
                    i += 2;
                } else {
                    out.push(Token {
                        tok: Tok::Bang,
                        at: pos,
                    });
                    i += 1;
                }
            }
            '<' | '>' => {
                let eq = chars.get(i + 1).map(|c| c.1) == Some('=');
                let tok = match (c, eq) {
                    ('<', true) => Tok::Le,
                    ('<', false) => Tok::Lt,
                    ('>', true) => Tok::Ge,
                    _ => Tok::Gt,
                };
                out.push(Token { tok, at: pos });
                i += if eq { 2 } else { 1 };
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&(_, d)) = chars.get(j) else {
                        return Err(TriggerError::at(
                            src,
                            pos,
                            &format!("unterminated string: expected a closing {quote}"),
                        ));
                    };
                    if d == quote {
                        break;
                    }
                    if d == '\\' {
                        let Some(&(_, e)) = chars.get(j + 1) else {
                            return Err(TriggerError::at(
                                src,
                                at(j),
                                "unterminated escape at the end of the trigger",
                            ));
                        };
                        j += 2;
                        match e {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'u' => {
                                let hex: String =
                                    chars.iter().skip(j).take(4).map(|c| c.1).collect();
                                let code = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .filter(|_| hex.len() == 4);
                                match code.and_then(char::from_u32) {
                                    Some(ch) => s.push(ch),
                                    None => {
                                        return Err(TriggerError::at(
                                            src,
                                            at(j - 2),
                                            "invalid \\u escape: expected 4 hex digits",
                                        ));
                                    }
                                }
                                j += 4;
                            }
                            other => s.push(other),
                        }
                        continue;
                    }
                    s.push(d);
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    at: pos,
                });
                i = j + 1;
            }
            '-' | '+' | '0'..='9' => {
                let mut j = i + 1;
                if (c == '-' || c == '+') && !chars.get(j).is_some_and(|d| d.1.is_ascii_digit()) {
                    return Err(TriggerError::at(
                        src,
                        pos,
                        &format!("expected a number after '{c}'"),
                    ));
                }
                while chars.get(j).is_some_and(|d| d.1.is_ascii_digit()) {
                    j += 1;
                }
                if chars.get(j).map(|d| d.1) == Some('.') {
                    j += 1;
                    if !chars.get(j).is_some_and(|d| d.1.is_ascii_digit()) {
                        return Err(TriggerError::at(
                            src,
                            at(j),
                            "expected digits after the decimal point",
                        ));
                    }
                    while chars.get(j).is_some_and(|d| d.1.is_ascii_digit()) {
                        j += 1;
                    }
                    if chars.get(j).map(|d| d.1) == Some('.') {
                        return Err(TriggerError::at(
                            src,
                            at(j),
                            "a number has at most one decimal point",
                        ));
                    }
                }
                if chars.get(j).is_some_and(|d| ident_char(d.1)) {
                    return Err(TriggerError::at(
                        src,
                        at(j),
                        "unexpected character after a number",
                    ));
                }
                out.push(Token {
                    tok: Tok::Num(src[pos..at(j)].to_string()),
                    at: pos,
                });
                i = j;
            }
            c if ident_start(c) => {
                let mut j = i;
                let mut path = String::new();
                loop {
                    while chars.get(j).is_some_and(|d| ident_char(d.1)) {
                        path.push(chars[j].1);
                        j += 1;
                    }
                    match chars.get(j).map(|d| d.1) {
                        Some('.') if chars.get(j + 1).is_some_and(|d| ident_char(d.1)) => {
                            path.push('.');
                            j += 1;
                        }
                        Some('[') => {
                            // A bracketed index or quoted name belongs to the path.
                            let close = chars[j..].iter().position(|d| d.1 == ']');
                            match close {
                                Some(k) => {
                                    for d in &chars[j..=j + k] {
                                        path.push(d.1);
                                    }
                                    j += k + 1;
                                }
                                None => {
                                    return Err(TriggerError::at(
                                        src,
                                        at(j),
                                        "expected ']' to close the index",
                                    ));
                                }
                            }
                        }
                        _ => break,
                    }
                }
                let tok = match path.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    _ => Tok::Ident(path),
                };
                out.push(Token { tok, at: pos });
                i = j;
            }
            other => {
                return Err(TriggerError::at(
                    src,
                    pos,
                    &format!("unexpected character {other:?}"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eos,
        at: src.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks(r#"type = "track" and properties.a.b >= -1.5"#),
            vec![
                Tok::Ident("type".into()),
                Tok::Eq,
                Tok::Str("track".into()),
                Tok::And,
                Tok::Ident("properties.a.b".into()),
                Tok::Ge,
                Tok::Num("-1.5".into()),
                Tok::Eos
            ]
        );
        assert_eq!(
            toks(r#"!contains(event,"a\"b") or orange != null"#),
            vec![
                Tok::Bang,
                Tok::Ident("contains".into()),
                Tok::LParen,
                Tok::Ident("event".into()),
                Tok::Comma,
                Tok::Str("a\"b".into()),
                Tok::RParen,
                Tok::Or,
                Tok::Ident("orange".into()),
                Tok::Ne,
                Tok::Null,
                Tok::Eos
            ]
        );
        assert_eq!(
            toks("properties.items[0].sku"),
            vec![Tok::Ident("properties.items[0].sku".into()), Tok::Eos]
        );
    }

    #[test]
    fn lexical_errors() {
        for bad in ["\"abc", "5.", "5.0.1", "type * 1", "a == b", "- 1", "x[0"] {
            assert!(lex(bad).is_err(), "{bad}");
        }
        let e = lex("type * \"x\"").unwrap_err();
        assert_eq!(e.to_string(), "1:6: unexpected character '*'");
    }
}
