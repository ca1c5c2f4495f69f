//! The `s3actions` command line: argument parsing and output around the library.

mod cli;
mod report;

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::{Cli, Command, RunArgs};

use s3actions::commands::{self, CommandError, Destination, RetlError, RetlOptions};
use s3actions::json::Tape;
use s3actions::mapping::{Config, Secret};
use s3actions::pipeline::{CHUNK_SIZE, FailureHook, RunError, RunOptions};
use s3actions::route::Routes;
use s3actions::sink::Durability;
use s3actions::source::http::{Access, HttpInput};
use s3actions::source::intake::MemoryIntake;
use s3actions::source::s3archive::{ArchiveError, ArchiveUrl};
use s3actions::source::{Input, Inputs, Source};
use s3actions::trigger::Trigger;

/// Exit code for a command line or mapping file that cannot be used.
const EXIT_USAGE: u8 = 2;

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("S3ACTIONS_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("s3actions={default},warn"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An error whose message is already complete (printed as is) with its exit code.
#[derive(Debug)]
struct Exit(u8, String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

/// Exit codes for library errors: unusable settings are a usage error; input that is not
/// an event is the caller's (1).
fn exit_for(e: CommandError) -> anyhow::Error {
    match e {
        CommandError::Settings(_) => Exit(EXIT_USAGE, format!("error: {e}")).into(),
        CommandError::Input(msg) => Exit(1, msg).into(),
        // The message already ends with its cause: printing the chain would repeat it.
        CommandError::Run(RunError::Input(_)) => Exit(1, format!("error: {e}")).into(),
        CommandError::ArchiveSettings(_)
        | CommandError::Retl(RetlError::Unresolved(_) | RetlError::NoModels(_))
        | CommandError::Archive(
            ArchiveError::NotS3 { .. }
            | ArchiveError::Bucket { .. }
            | ArchiveError::Day { .. }
            | ArchiveError::EmptyRange { .. }
            | ArchiveError::DaysOnObject { .. },
        ) => Exit(EXIT_USAGE, format!("error: {e}")).into(),
        other => other.into(),
    }
}

/// Runs the inputs into `--out`, or uploads when there is none; prints the summary.
fn run_to(
    config: &Config,
    inputs: Vec<Input>,
    progress: bool,
    hook: Option<FailureHook>,
    run: RunArgs,
) -> Result<u8> {
    let mut source = Inputs::new(inputs, CHUNK_SIZE, Durability::Written);
    let durable = source.progress();
    let names = source.names().to_vec();
    let on_error = || report::print_durable(&durable.durable(), &names);
    run_source(config, &mut source, progress, hook, run, &on_error)
}

/// `replay MAPPING.yaml s3://...`: the archive's objects as the inputs.
fn run_archive(
    config: &Config,
    urls: &[String],
    days: (Option<String>, Option<String>),
    progress: bool,
    run: RunArgs,
) -> Result<u8> {
    let mut source = commands::open_archive(config, urls, days.0.as_deref(), days.1.as_deref())
        .map_err(exit_for)?;
    let durable = source.progress();
    let names = source.names();
    let on_error = || {
        let names = names.lock().unwrap_or_else(|e| e.into_inner());
        report::print_durable(&durable.durable(), &names);
    };
    run_source(config, &mut source, progress, None, run, &on_error)
}

/// Runs `source` into `--out`, or uploads when there is none; prints the summary
/// (`on_error`: what to say about the source when the run fails).
fn run_source(
    config: &Config,
    source: &mut dyn Source,
    progress: bool,
    hook: Option<FailureHook>,
    run: RunArgs,
    on_error: &dyn Fn(),
) -> Result<u8> {
    let opts = RunOptions {
        only_mapping: run.only,
        threads: run.threads,
        progress,
        on_failure: hook,
    };
    let destination = run.out.map_or(Destination::Upload, Destination::Dir);
    let done = commands::replay(config, source, &opts, &destination, run.rejects);
    let replayed = match done {
        Ok(r) => r,
        Err(e) => {
            on_error();
            return Err(exit_for(e));
        }
    };
    report::print_run(&replayed.report, run.json);
    if let Some(outbox) = &replayed.outbox
        && !replayed.report.sink.pending.is_empty()
        && !run.json
    {
        eprintln!(
            "error: {} file(s) could not be uploaded and are waiting in {}; fix the cause above, then run: s3actions flush {}",
            replayed.report.sink.pending.len(),
            outbox.display(),
            config.path.display()
        );
    }
    Ok(report::exit_code(&replayed.report))
}

/// `retl`: the diff, the run, the summary (per model, then the run's).
fn retl(config: &Config, retl: RetlOptions, run: RunArgs) -> Result<u8> {
    let opts = RunOptions {
        only_mapping: run.only,
        threads: run.threads,
        progress: false,
        on_failure: None,
    };
    let destination = run.out.map_or(Destination::Upload, Destination::Dir);
    let done = commands::retl(config, &opts, &destination, run.rejects, &retl).map_err(exit_for)?;
    for m in &done.models {
        for w in &m.warnings {
            eprintln!("warning: {w}");
        }
    }
    if run.json {
        let mut summary = report::run_json(&done.replayed.report);
        summary["models"] = serde_json::to_value(&done.models)?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for m in &done.models {
            println!(
                "Model {:?}: {} rows; {} new, {} updated, {} deleted",
                m.model, m.rows, m.new, m.updated, m.deleted
            );
        }
        report::print_run(&done.replayed.report, false);
        println!("Snapshots committed in {}", done.state_dir.display());
    }
    Ok(report::exit_code(&done.replayed.report))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code, msg)) = e.downcast_ref::<Exit>() {
                if !msg.is_empty() {
                    eprintln!("{msg}");
                }
                return ExitCode::from(*code);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<u8> {
    match command {
        Command::Replay {
            mapping,
            inputs,
            since,
            until,
            run,
            quiet,
        } => {
            let config = load(&mapping, run.out.is_none())?;
            let progress = !quiet && !run.json && std::io::stderr().is_terminal();
            let s3 = inputs.iter().filter(|i| ArchiveUrl::is_s3(i)).count();
            if s3 > 0 && s3 < inputs.len() {
                let msg = "error: s3:// inputs and local inputs cannot be mixed in one replay; replay them one after the other";
                return Err(Exit(EXIT_USAGE, msg.into()).into());
            }
            if s3 > 0 {
                return run_archive(&config, &inputs, (since, until), progress, run);
            }
            if since.is_some() || until.is_some() {
                let msg = "error: --since and --until select received-day folders of s3:// inputs; these inputs are local";
                return Err(Exit(EXIT_USAGE, msg.into()).into());
            }
            let inputs = inputs.iter().map(|i| Input::parse(i)).collect();
            run_to(&config, inputs, progress, None, run)
        }
        Command::Serve {
            mapping,
            listen,
            write_key_env,
            run,
        } => {
            let config = load(&mapping, run.out.is_none())?;
            let access = match write_key_env {
                None => Access::open(),
                Some(var) => match std::env::var(&var) {
                    Ok(key) if !key.is_empty() => Access::write_key(&Secret::new(key)),
                    _ => {
                        let msg = format!("error: --write-key-env {var}: the variable is not set");
                        return Err(Exit(EXIT_USAGE, msg).into());
                    }
                },
            };
            let (intake, stream) = MemoryIntake::new();
            let server = s3actions::source::http::serve(&listen, access, intake)
                .with_context(|| format!("cannot listen on {listen}"))?;
            let input = Input::Http(HttpInput::new(server.addr(), stream));
            eprintln!(
                "listening on http://{} (POST /v1/batch, /v1/import, /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias); Ctrl-C stops and writes every open batch",
                server.addr()
            );
            let stop = server.stopper();
            let hook = FailureHook(std::sync::Arc::new(move |why: &str| {
                eprintln!("error: {why}; no longer accepting events");
                stop();
            }));
            let code = run_to(&config, vec![input], false, Some(hook), run);
            drop(server);
            code
        }
        Command::Retl {
            mapping,
            state_dir,
            reset,
            run,
        } => {
            let config = load(&mapping, run.out.is_none())?;
            retl(&config, RetlOptions { state_dir, reset }, run)
        }
        Command::Validate { mapping } => validate(&mapping),
        Command::Eval {
            expr,
            expr_inline,
            event,
        } => {
            if expr.as_deref() == Some("-") && event == "-" {
                bail!("only one of --expr and --event can read stdin");
            }
            let (source, name) = match (expr, expr_inline) {
                (_, Some(text)) => (text, "--expr-inline".to_string()),
                (Some(path), None) => (read_arg(&path)?, path),
                (None, None) => bail!("give --expr FILE or --expr-inline JSON"),
            };
            let text = commands::event_json(read_arg(&event)?);
            let result =
                commands::eval_expression(&source, &name, &text, &event).map_err(exit_for)?;
            if let Some(json) = result {
                println!("{json}");
            }
            Ok(0)
        }
        Command::Match { trigger, event } => {
            let t =
                Trigger::parse(&trigger).map_err(|e| Exit(1, format!("invalid trigger: {e}")))?;
            let text = commands::event_json(read_arg(&event)?);
            let mut tape = Tape::new();
            let root = commands::parse_event(&mut tape, &text, &event).map_err(exit_for)?;
            println!("{}", t.matches(root));
            Ok(0)
        }
        Command::Preview {
            mapping,
            event,
            json,
        } => {
            let config = load(&mapping, false)?;
            let text = commands::event_json(read_arg(&event)?);
            let mut tape = Tape::new();
            let root = commands::parse_event(&mut tape, &text, &event).map_err(exit_for)?;
            let previews = s3actions::preview::preview(&Routes::new(&config), root);
            report::print_preview(&previews, json);
            Ok(0)
        }
        Command::Check { mapping } => {
            let config = load(&mapping, true)?;
            let results = commands::check(&config).map_err(exit_for)?;
            Ok(report::print_check(&config, &results))
        }
        Command::Flush { mapping, outbox } => {
            let config = load(&mapping, true)?;
            let (done, outbox) = commands::flush(&config, outbox).map_err(exit_for)?;
            Ok(report::print_flush(&done, &outbox))
        }
    }
}

/// Loads a mapping file; problems are printed with their locations (exit code 2).
/// Settings that only uploading needs are not mentioned for local runs.
fn load(path: &Path, uploading: bool) -> Result<Config> {
    let c = Config::load(path).map_err(|e| Exit(EXIT_USAGE, format!("error: {e}")))?;
    for w in &c.warnings {
        let upload_only = c
            .settings
            .unresolved
            .iter()
            .any(|u| u.location == w.location);
        if uploading || !upload_only {
            eprintln!("{}:{w}", path.display());
        }
    }
    Ok(c)
}

fn validate(path: &Path) -> Result<u8> {
    let config = Config::load(path).map_err(|e| Exit(EXIT_USAGE, format!("{e}")))?;
    for w in &config.warnings {
        println!("{}:{w}", path.display());
    }
    report::print_valid(&config);
    Ok(0)
}

/// Reads a file argument (`-` is stdin).
fn read_arg(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))
    }
}
