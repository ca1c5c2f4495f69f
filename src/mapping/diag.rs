//! Problems found while loading a mapping file, each with where it is.

use std::fmt;
use std::path::PathBuf;

use crate::spanned::Mark;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem: where (`mappings[0].columns.email`, line and column) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: String,
    pub mark: Mark,
    pub message: String,
}

impl Diagnostic {
    pub fn error(location: impl Into<String>, mark: Mark, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location: location.into(),
            mark,
            message: message.into(),
        }
    }

    pub fn warning(location: impl Into<String>, mark: Mark, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(location, mark, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mark.is_known() {
            write!(f, "{}: ", self.mark)?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if self.location.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

/// Why a mapping file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{err}", path.display())]
    Syntax {
        path: PathBuf,
        err: crate::spanned::SyntaxError,
    },
    #[error("{} has {} problem{}:\n{}", path.display(), errors(diagnostics), if errors(diagnostics) == 1 { "" } else { "s" }, render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

fn errors(d: &[Diagnostic]) -> usize {
    d.iter().filter(|d| d.is_error()).count()
}

/// One line per diagnostic, each starting with `file:line:col:`.
pub fn render(path: &std::path::Path, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("  {}:{d}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}
