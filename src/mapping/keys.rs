//! Reading typed fields out of a YAML block, with located errors.

use super::diag::Diagnostic;
use crate::spanned::{Mark, SNode, SValue};

/// Unknown keys are errors, with a suggestion when one is close to a known key.
pub(crate) fn check_keys(
    members: &[(String, Mark, SNode)],
    known: &[&str],
    location: &str,
    diags: &mut Vec<Diagnostic>,
) {
    for (k, mark, _) in members {
        if !known.contains(&k.as_str()) {
            let hint = crate::suggest::did_you_mean(k, known.iter().copied())
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            diags.push(Diagnostic::error(
                location,
                *mark,
                format!(
                    "unknown key {k:?}; {hint}known keys are {}",
                    known.join(", ")
                ),
            ));
        }
    }
}

pub(crate) struct Reader<'n, 'd> {
    location: String,
    node: &'n SNode,
    diags: &'d mut Vec<Diagnostic>,
}

impl<'n, 'd> Reader<'n, 'd> {
    pub fn new(
        location: impl Into<String>,
        node: &'n SNode,
        diags: &'d mut Vec<Diagnostic>,
    ) -> Self {
        Reader {
            location: location.into(),
            node,
            diags,
        }
    }

    pub fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.location)
    }

    pub fn error(&mut self, key: &str, mark: Mark, message: impl Into<String>) {
        let at = self.at(key);
        self.diags.push(Diagnostic::error(at, mark, message));
    }

    pub fn warn(&mut self, key: &str, mark: Mark, message: impl Into<String>) {
        let at = self.at(key);
        self.diags.push(Diagnostic::warning(at, mark, message));
    }

    /// Records a diagnostic built elsewhere (its location already complete).
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub fn get(&self, key: &str) -> Option<&'n SNode> {
        self.node.get(key)
    }

    /// A string field; numbers and booleans written without quotes are not accepted.
    pub fn string(&mut self, key: &str) -> Option<(String, Mark)> {
        let n = self.get(key)?;
        match &n.value {
            SValue::String(s) => Some((s.clone(), n.mark)),
            SValue::Null => None,
            _ => {
                let message = format!("should be a string, but it is {} (quote it)", n.type_name());
                self.error(key, n.mark, message);
                None
            }
        }
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let n = self.get(key)?;
        match &n.value {
            SValue::Bool(b) => Some(*b),
            _ => {
                let message = format!("should be true or false, but it is {}", n.type_name());
                self.error(key, n.mark, message);
                None
            }
        }
    }

    pub fn integer(&mut self, key: &str, min: u64, max: u64) -> Option<u64> {
        let n = self.get(key)?;
        match &n.value {
            SValue::Number(f) if f.fract() == 0.0 && *f >= min as f64 && *f <= max as f64 => {
                Some(*f as u64)
            }
            SValue::Number(f) => {
                let message = format!("should be a whole number from {min} to {max}, not {f}");
                self.error(key, n.mark, message);
                None
            }
            _ => {
                let message = format!("should be a number, but it is {}", n.type_name());
                self.error(key, n.mark, message);
                None
            }
        }
    }
}
