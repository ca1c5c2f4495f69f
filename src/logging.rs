//! Logging set-up: `S3ACTIONS_LOG` filters, and two guards that keep credentials out of the
//! log at every level, `trace` included.
//!
//! Our own code never logs a secret (`mapping::Secret` has a redacted `Debug`), but the AWS
//! SDK does at its lower levels: its `Credentials` debug output shows the caller's and the
//! assumed role's access key IDs, and its HTTP traces show signed headers. So (1) the SDK's
//! and the HTTP stack's own targets are capped at `info`, whatever the filter says, and
//! (2) every line written is scanned for AWS access key IDs, which are masked, as a last
//! line of defence for anything that still gets through.

use std::io::{self, Write};

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Crates whose own log events may carry credentials or signed requests: never shown
/// below `info`.
const CAPPED_TARGETS: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_",
    "aws_sigv4",
    "aws_smithy_",
    "aws_types",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "tower",
];

/// The prefixes of AWS access key IDs (IAM users, STS temporary credentials, roles...).
const KEY_ID_PREFIXES: &[&[u8]] = &[
    b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AIPA", b"AKIA", b"ANPA", b"ANVA", b"APKA", b"AROA",
    b"ASCA", b"ASIA",
];

fn capped(target: &str) -> bool {
    CAPPED_TARGETS.iter().any(|t| {
        target.starts_with(t)
            && (t.ends_with('_') || target.len() == t.len() || target.as_bytes()[t.len()] == b':')
    })
}

/// Starts logging to stderr: `S3ACTIONS_LOG` when set (an `EnvFilter`), else `default`.
pub fn init(default: &str) {
    let filter =
        EnvFilter::try_from_env("S3ACTIONS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let cap = filter_fn(|meta| !(*meta.level() > Level::INFO && capped(meta.target())));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(RedactingStderr)
        .with_target(false)
        .with_filter(filter)
        .with_filter(cap);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Masks what looks like an AWS access key ID (a known prefix and at least 12 more
/// upper-case letters or digits): the prefix stays, the rest becomes `****`.
pub fn redact(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_id_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i + 4 <= line.len() {
        let starts_word = i == 0 || !line[i - 1].is_ascii_alphanumeric();
        if starts_word && KEY_ID_PREFIXES.contains(&&line[i..i + 4]) {
            let rest = line[i + 4..].iter().take_while(|&&b| is_id_char(b)).count();
            if rest >= 12 {
                let o = out.get_or_insert_with(|| Vec::with_capacity(line.len()));
                o.extend_from_slice(&line[copied..i + 4]);
                o.extend_from_slice(b"****");
                i += 4 + rest;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(line),
        Some(mut o) => {
            o.extend_from_slice(&line[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

/// Hands out one [`RedactedEvent`] per log event.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedEvent;

    fn make_writer(&'a self) -> RedactedEvent {
        RedactedEvent(Vec::new())
    }
}

/// One event's text, redacted and written to stderr as a whole when dropped.
struct RedactedEvent(Vec<u8>);

impl Write for RedactedEvent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedEvent {
    fn drop(&mut self) {
        let _ = io::stderr().lock().write_all(&redact(&self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_masked_wherever_they_are() {
        let line =
            b"Credentials { access_key_id: \"ASIAZ4XQ7EXAMPLE1234\", x: AKIAIOSFODNN7EXAMPLE }";
        let out = redact(line);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("Z4XQ7EXAMPLE1234"), "{text}");
        assert!(!text.contains("IOSFODNN7EXAMPLE"), "{text}");
        assert_eq!(
            text,
            "Credentials { access_key_id: \"ASIA****\", x: AKIA**** }"
        );
        // Words that merely start like one are left alone.
        assert_eq!(
            &*redact(b"ASIAN AKIA12 xAKIAIOSFODNN7EXAMPLE"),
            b"ASIAN AKIA12 xAKIAIOSFODNN7EXAMPLE"
        );
    }

    #[test]
    fn sdk_targets_are_capped() {
        assert!(capped("aws_smithy_runtime::client::identity"));
        assert!(capped("aws_sdk_sts::operation"));
        assert!(capped("hyper"));
        assert!(capped("hyper_util::client"));
        assert!(!capped("s3actions::sink"));
        assert!(!capped("h2o"));
    }
}
