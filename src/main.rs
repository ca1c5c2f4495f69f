//! The `s3actions` command line: argument parsing and output around the library.

mod cli;
mod report;

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};

use cli::{Cli, Command, DurabilityArg, ExportTo, ImportFrom, RunArgs};

use s3actions::commands::{self, CommandError, Destination, RetlError, RetlOptions};
use s3actions::init::Starter;
use s3actions::json::Tape;
use s3actions::mapping::{Config, Secret};
use s3actions::migrate;
use s3actions::pipeline::{CHUNK_SIZE, FailureHook, RunError, RunOptions};
use s3actions::route::Routes;
use s3actions::sink::Durability;
use s3actions::source::http::{Access, HttpInput, ServeOptions, TlsFiles};
use s3actions::source::intake::MemoryIntake;
use s3actions::source::s3archive::{ArchiveError, ArchiveUrl};
use s3actions::source::{Input, Inputs, Source, spool};
use s3actions::trigger::Trigger;

/// Exit code for a command line or mapping file that cannot be used.
const EXIT_USAGE: u8 = 2;

fn init_logging(verbose: u8, format: cli::LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    s3actions::logging::init(
        &format!("s3actions={default},warn"),
        format == cli::LogFormat::Json,
    );
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
        CommandError::Settings(_) | CommandError::MissingInput { .. } => {
            Exit(EXIT_USAGE, format!("error: {e}")).into()
        }
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
        CommandError::Kafka(k) if k.is_usage() => Exit(EXIT_USAGE, format!("error: {k}")).into(),
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
    let reached = || (durable.durable(), names.clone());
    run_source(config, &mut source, progress, hook, run, &reached)
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
    let reached = || {
        let names = names.lock().unwrap_or_else(|e| e.into_inner());
        (durable.durable(), names.clone())
    };
    run_source(config, &mut source, progress, None, run, &reached)
}

/// What a failed run had reached in its inputs: what is durable, and the inputs' names.
type Reached<'a> = &'a dyn Fn() -> (s3actions::source::Durable, Vec<std::sync::Arc<str>>);

/// Runs `source` into `--out`, or uploads when there is none; prints the summary
/// (`reached`: what to say about the source when the run fails).
fn run_source(
    config: &Config,
    source: &mut dyn Source,
    progress: bool,
    hook: Option<FailureHook>,
    run: RunArgs,
    reached: Reached<'_>,
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
            let (durable, names) = reached();
            report::print_durable(&durable, &names);
            let e = exit_for(e);
            if run.json {
                // A scheduler parsing stdout gets the error and what was reached.
                let msg = message(&e);
                report::print_failure(&msg, Some((&durable, &names)));
                eprintln!("{msg}");
                return Err(Exit(exit_code_of(&e), String::new()).into());
            }
            return Err(e);
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

/// The message printed for an error: an [`Exit`]'s as is, anything else as `error: ` and
/// its cause chain with each cause once.
fn message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Exit>() {
        Some(Exit(_, msg)) => msg.clone(),
        None => format!("error: {}", commands::error_message(e.chain())),
    }
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Exit>() {
        Some(Exit(code, _)) => *code,
        None => 1,
    }
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
    init_logging(cli.verbose, cli.log_format);
    let _ = commands::raise_open_file_limit();
    let json = matches!(&cli.command, Command::Replay { run, .. } | Command::Serve { run, .. } if run.json);
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = message(&e);
            // A run that failed after it started has printed its JSON already (the message
            // is then empty); one refused before it started prints it here.
            if json && !msg.is_empty() {
                report::print_failure(&msg, None);
            }
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(exit_code_of(&e))
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
            let inputs: Vec<Input> = inputs.iter().map(|i| Input::parse(i)).collect();
            commands::check_inputs(&inputs).map_err(exit_for)?;
            run_to(&config, inputs, progress, None, run)
        }
        Command::Serve {
            mapping,
            listen,
            write_key_env,
            durability,
            spool,
            header_timeout,
            tls_cert,
            tls_key,
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
            let mut opts = ServeOptions::new(&listen, access);
            opts.header_timeout = std::time::Duration::from_secs(header_timeout.max(1));
            opts.tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| TlsFiles { cert, key });
            opts.metrics = Some(s3actions::metrics::install()?);
            let listening = |server: &s3actions::source::http::HttpServer| {
                // Printed whatever the log format: scripts read the port from it.
                eprintln!(
                    "listening on {} (POST /v1/batch, /v1/import, /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias; GET /health, /ready, /metrics); Ctrl-C stops and writes every open batch",
                    server.url()
                );
                let stop = server.stopper();
                FailureHook(std::sync::Arc::new(move |why: &str| {
                    eprintln!("error: {why}; no longer accepting events");
                    stop();
                }))
            };
            if durability == DurabilityArg::None {
                let (intake, stream) = MemoryIntake::new();
                let server = s3actions::source::http::serve(opts, intake)?;
                let input = Input::Http(HttpInput::new(server.addr(), stream));
                let hook = listening(&server);
                let code = run_to(&config, vec![input], false, Some(hook), run);
                drop(server);
                return code;
            }
            let destination = run
                .out
                .clone()
                .map_or(Destination::Upload, Destination::Dir);
            let dir = spool.unwrap_or_else(|| commands::default_spool(&config, &destination));
            let options = spool::SpoolOptions {
                max_bytes: config.settings.spool_max_bytes,
                dedupe_window: config.settings.dedupe_window,
            };
            let (intake, mut source) = spool::open(&dir, &options)
                .with_context(|| "cannot open the spool (--spool)".to_string())?;
            if source.recovered() > 0 {
                eprintln!(
                    "spool {}: {} event(s) left by the last run are written first",
                    dir.display(),
                    source.recovered()
                );
            }
            let server = s3actions::source::http::serve(opts, intake)?;
            let hook = listening(&server);
            let opts = RunOptions {
                only_mapping: run.only,
                threads: run.threads,
                progress: false,
                on_failure: Some(hook),
            };
            let done = commands::serve(&config, &mut source, &opts, &destination, run.rejects);
            drop(server);
            let replayed = done.map_err(exit_for)?;
            report::print_run(&replayed.report, run.json);
            Ok(report::exit_code(&replayed.report))
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
        Command::Consume {
            mapping,
            brokers,
            topics,
            group,
            kafka_settings,
            stop_at_end,
            metrics_listen,
            run,
        } => {
            let config = load(&mapping, run.out.is_none())?;
            let kafka = commands::ConsumeOptions {
                brokers,
                topics,
                group,
                overrides: kafka_settings,
                stop_at_end,
                metrics_listen,
            };
            let destination = run.out.map_or(Destination::Upload, Destination::Dir);
            let opts = RunOptions {
                only_mapping: run.only,
                threads: run.threads,
                progress: false,
                on_failure: None,
            };
            let replayed = commands::consume(&config, kafka, &opts, &destination, run.rejects)
                .map_err(exit_for)?;
            report::print_run(&replayed.report, run.json);
            Ok(report::exit_code(&replayed.report))
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
        Command::Import { from } => import(from),
        Command::Export {
            to:
                ExportTo::Segment {
                    mapping,
                    destination,
                    subscriptions,
                },
        } => {
            if destination == "-" && subscriptions == "-" {
                bail!("only one of --destination and --subscriptions can be - (stdout)");
            }
            let exported = migrate::export_segment(&mapping)
                .map_err(|e| Exit(EXIT_USAGE, format!("error: {e}")))?;
            for n in &exported.notes {
                eprintln!("note: {n}");
            }
            for (arg, body) in [
                (&destination, &exported.destination),
                (&subscriptions, &exported.subscriptions),
            ] {
                let text = format!("{body:#}\n");
                if arg == "-" {
                    print!("{text}");
                } else {
                    std::fs::write(arg, text).with_context(|| format!("cannot write {arg}"))?;
                }
            }
            Ok(0)
        }
        Command::Schema => {
            print!("{}", s3actions::mapping::schema::mapping_schema_text());
            Ok(0)
        }
        Command::Init {
            file,
            audiences,
            reverse_etl,
            classic: _,
        } => {
            let kind = match (audiences, reverse_etl) {
                (true, _) => Starter::Audiences,
                (_, true) => Starter::ReverseEtl,
                _ => Starter::Classic,
            };
            let written = s3actions::init::write_starter(&file, kind)
                .map_err(|e| Exit(1, format!("error: {e}")))?;
            for p in written {
                eprintln!("wrote {}", p.display());
            }
            eprintln!("next: s3actions validate {}", file.display());
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "s3actions", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let page = clap_mangen::Man::new(Cli::command());
            page.render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            Ok(0)
        }
    }
}

/// `import segment`: the mapping file on stdout, what was left out on stderr. Exit 1 when
/// the result does not validate (it is still printed, to be fixed by hand).
fn import(from: ImportFrom) -> Result<u8> {
    let ImportFrom::Segment {
        destination,
        subscriptions,
        from_api,
        destination_id,
        api_url,
    } = from;
    let (dest, subs, names) = if from_api {
        let token = match std::env::var("SEGMENT_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Secret::new(t.trim()),
            _ => {
                let msg = "error: --from-api needs a Segment Public API token in SEGMENT_TOKEN";
                return Err(Exit(EXIT_USAGE, msg.into()).into());
            }
        };
        let id = destination_id.unwrap_or_default();
        let fetched = migrate::api::fetch(&api_url, &token, &id)
            .map_err(|e| Exit(1, format!("error: {e}")))?;
        let names = (
            format!("destination {id}"),
            format!("subscriptions of {id}"),
        );
        (fetched.destination, fetched.subscriptions, names)
    } else {
        let (d, s) = (
            destination.unwrap_or_default(),
            subscriptions.unwrap_or_default(),
        );
        if d == "-" && s == "-" {
            bail!("only one of --destination and --subscriptions can be - (stdin)");
        }
        let body = |arg: &str| -> Result<serde_json::Value> {
            let text = read_arg(arg)?;
            let name = if arg == "-" { "stdin" } else { arg };
            migrate::parse_body(&text, name)
                .map_err(|e| Exit(EXIT_USAGE, format!("error: {e}")).into())
        };
        (body(&d)?, body(&s)?, (d, s))
    };
    let imported = migrate::import_segment(&dest, &subs, (&names.0, &names.1))
        .map_err(|e| Exit(EXIT_USAGE, format!("error: {e}")))?;
    for n in &imported.notes {
        eprintln!("note: {n}");
    }
    print!("{}", imported.yaml);
    match imported.invalid {
        None => Ok(0),
        Some(e) => {
            eprintln!("error: the imported mapping does not validate; fix it by hand:\n{e}");
            Ok(1)
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
