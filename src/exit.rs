//! What the binary's errors print and which exit code each gives.
//!
//! 0: done; 1: the run failed or some events were rejected; 2 ([`EXIT_USAGE`]): the
//! command line or the mapping file cannot be used.

use s3actions::commands::{self, CommandError, RetlError};
use s3actions::pipeline::RunError;
use s3actions::source::s3archive::ArchiveError;

/// Exit code for a command line or mapping file that cannot be used.
pub const EXIT_USAGE: u8 = 2;

/// An error whose message is already complete (printed as is) with its exit code; an
/// empty message means it was printed already.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

/// A usage error (exit 2) with `error: ` before `what`.
pub fn usage(what: impl std::fmt::Display) -> anyhow::Error {
    Exit(EXIT_USAGE, format!("error: {what}")).into()
}

/// Exit codes for library errors: unusable settings or arguments are a usage error; input
/// that is not an event is the caller's (1).
pub fn exit_for(e: CommandError) -> anyhow::Error {
    match e {
        CommandError::Settings(_)
        | CommandError::MissingInput { .. }
        | CommandError::MixedInputs
        | CommandError::DaysOnLocalInputs
        | CommandError::WriteKeyEnv { .. }
        | CommandError::ArchiveSettings(_)
        | CommandError::Retl(RetlError::Unresolved(_) | RetlError::NoModels(_))
        | CommandError::Archive(
            ArchiveError::NotS3 { .. }
            | ArchiveError::Bucket { .. }
            | ArchiveError::Day { .. }
            | ArchiveError::EmptyRange { .. }
            | ArchiveError::DaysOnObject { .. },
        ) => usage(e),
        CommandError::Kafka(k) if k.is_usage() => usage(k),
        CommandError::Input(msg) => Exit(1, msg).into(),
        // The message already ends with its cause: printing the chain would repeat it.
        CommandError::Run(RunError::Input(_)) => Exit(1, format!("error: {e}")).into(),
        other => other.into(),
    }
}

/// The message printed for an error: an [`Exit`]'s as is, anything else as `error: ` and
/// its cause chain with each cause once.
pub fn message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Exit>() {
        Some(Exit(_, msg)) => msg.clone(),
        None => format!("error: {}", commands::error_message(e.chain())),
    }
}

pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Exit>() {
        Some(Exit(code, _)) => *code,
        None => 1,
    }
}
