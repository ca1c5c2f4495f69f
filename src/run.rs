//! One function per command: calls the library, prints what it returns. Nothing here
//! decides how events are read, routed or written: that is the library's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::cli::{DurabilityArg, ImportFrom, RunArgs};
use crate::exit::{EXIT_USAGE, Exit, exit_code_of, exit_for, message, usage};
use crate::report;

use s3actions::commands::{self, Destination, Keep, ReplaySource, RetlOptions, ServeSetup};
use s3actions::json::Tape;
use s3actions::mapping::{Config, Secret};
use s3actions::migrate;
use s3actions::pipeline::RunOptions;
use s3actions::source::http::{Limits, TlsFiles};
use s3actions::trigger::Trigger;

fn run_options(run: &RunArgs, progress: bool) -> RunOptions {
    RunOptions {
        only_mapping: run.only.clone(),
        threads: run.threads,
        progress,
        on_failure: None,
    }
}

fn destination(run: &RunArgs) -> Destination {
    run.out
        .clone()
        .map_or(Destination::Upload, Destination::Dir)
}

/// `replay`: the inputs (files, stdin or an S3 archive) into `--out`, or uploaded; prints
/// the summary, and on failure how far the inputs were durably written.
pub fn replay(
    mapping: &Path,
    inputs: &[String],
    days: (Option<String>, Option<String>),
    progress: bool,
    run: RunArgs,
) -> Result<u8> {
    let config = load(mapping, run.out.is_none())?;
    let mut source = ReplaySource::open(&config, inputs, days.0.as_deref(), days.1.as_deref())
        .map_err(exit_for)?;
    let opts = run_options(&run, progress);
    let done = commands::replay(
        &config,
        source.source(),
        &opts,
        &destination(&run),
        run.rejects.clone(),
    );
    let replayed = match done {
        Ok(r) => r,
        Err(e) => {
            let (durable, names) = source.reached();
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

/// What a running server reports, printed on stderr.
struct ServePrinter;

impl commands::ServeEvents for ServePrinter {
    fn listening(&self, url: &str) {
        // Printed whatever the log format: scripts read the port from it.
        eprintln!(
            "listening on {url} (POST /v1/batch, /v1/import, /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias; GET /health, /ready, /metrics); Ctrl-C stops and writes every open batch"
        );
    }

    fn recovered(&self, dir: &Path, events: u64) {
        eprintln!(
            "spool {}: {events} event(s) left by the last run are written first",
            dir.display()
        );
    }

    fn stopping(&self, why: &str) {
        eprintln!("error: {why}; no longer accepting events");
    }
}

/// The `serve` flags that are not a run's.
pub struct ServeArgs {
    pub listen: String,
    pub write_key_env: Option<String>,
    pub durability: DurabilityArg,
    pub spool: Option<PathBuf>,
    pub header_timeout: u64,
    pub max_connections: u32,
    pub limits: Limits,
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// `serve`: until Ctrl-C, SIGTERM, or events can no longer be written.
pub fn serve(mapping: &Path, args: ServeArgs, run: RunArgs) -> Result<u8> {
    let config = load(mapping, run.out.is_none())?;
    let setup = ServeSetup {
        listen: args.listen,
        write_key_env: args.write_key_env,
        keep: match args.durability {
            DurabilityArg::Fsync => Keep::Fsync,
            DurabilityArg::None => Keep::Memory,
        },
        spool: args.spool,
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
        max_connections: args.max_connections as usize,
        limits: args.limits,
        tls: args.tls.map(|(cert, key)| TlsFiles { cert, key }),
    };
    let opts = run_options(&run, false);
    let replayed = commands::serve::serve(
        &config,
        &setup,
        opts,
        &destination(&run),
        run.rejects.clone(),
        Arc::new(ServePrinter),
    )
    .map_err(exit_for)?;
    report::print_run(&replayed.report, run.json);
    Ok(report::exit_code(&replayed.report))
}

/// `retl`: the diff, the run, the summary (per model, then the run's).
pub fn retl(mapping: &Path, retl: RetlOptions, run: RunArgs) -> Result<u8> {
    let config = load(mapping, run.out.is_none())?;
    let opts = run_options(&run, false);
    let done =
        commands::retl(&config, &opts, &destination(&run), run.rejects, &retl).map_err(exit_for)?;
    report::print_retl(&done, run.json)?;
    Ok(report::exit_code(&done.replayed.report))
}

/// `consume`: a member of the consumer group until stopped (or, with `--stop-at-end`, until
/// the group has finished what the topics held when it started).
pub fn consume(mapping: &Path, kafka: commands::ConsumeOptions, run: RunArgs) -> Result<u8> {
    let config = load(mapping, run.out.is_none())?;
    let opts = run_options(&run, false);
    let replayed = commands::consume(&config, kafka, &opts, &destination(&run), run.rejects)
        .map_err(exit_for)?;
    report::print_run(&replayed.report, run.json);
    Ok(report::exit_code(&replayed.report))
}

/// `eval`: one expression against one event, the result as JSON.
pub fn eval(expr: Option<String>, expr_inline: Option<String>, event: &str) -> Result<u8> {
    if expr.as_deref() == Some("-") && event == "-" {
        bail!("only one of --expr and --event can read stdin");
    }
    let (source, name) = match (expr, expr_inline) {
        (_, Some(text)) => (text, "--expr-inline".to_string()),
        (Some(path), None) => (read_arg(&path)?, path),
        (None, None) => bail!("give --expr FILE or --expr-inline JSON"),
    };
    let text = commands::event_json(read_arg(event)?);
    let result = commands::eval_expression(&source, &name, &text, event).map_err(exit_for)?;
    if let Some(json) = result {
        println!("{json}");
    }
    Ok(0)
}

/// `match`: whether a trigger matches one event.
pub fn matches(trigger: &str, event: &str) -> Result<u8> {
    let t = Trigger::parse(trigger).map_err(|e| Exit(1, format!("invalid trigger: {e}")))?;
    let text = commands::event_json(read_arg(event)?);
    let mut tape = Tape::new();
    let root = commands::parse_event(&mut tape, &text, event).map_err(exit_for)?;
    println!("{}", t.matches(root));
    Ok(0)
}

/// `preview`: what every mapping does with one event.
pub fn preview(mapping: &Path, event: &str, json: bool) -> Result<u8> {
    let config = load(mapping, false)?;
    let text = commands::event_json(read_arg(event)?);
    let mut tape = Tape::new();
    let root = commands::parse_event(&mut tape, &text, event).map_err(exit_for)?;
    let previews = s3actions::preview::preview(&s3actions::route::Routes::new(&config), root);
    report::print_preview(&previews, json);
    Ok(0)
}

/// `check`: `dummy-object.txt` into each mapping's folder, through the role.
pub fn check(mapping: &Path) -> Result<u8> {
    let config = load(mapping, true)?;
    let results = commands::check(&config).map_err(exit_for)?;
    Ok(report::print_check(&config, &results))
}

/// `flush`: what waits in the outbox.
pub fn flush(mapping: &Path, outbox: Option<PathBuf>) -> Result<u8> {
    let config = load(mapping, true)?;
    let (done, outbox) = commands::flush(&config, outbox).map_err(exit_for)?;
    Ok(report::print_flush(&done, &outbox))
}

/// `import segment`: the mapping file on stdout, what was left out on stderr. Exit 1 when
/// the result does not validate (it is still printed, to be fixed by hand).
pub fn import(from: ImportFrom) -> Result<u8> {
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
                return Err(usage(
                    "--from-api needs a Segment Public API token in SEGMENT_TOKEN",
                ));
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
            migrate::parse_body(&text, name).map_err(usage)
        };
        (body(&d)?, body(&s)?, (d, s))
    };
    let imported = migrate::import_segment(&dest, &subs, (&names.0, &names.1)).map_err(usage)?;
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

/// `export segment`: the two Public API bodies, each to a file or stdout.
pub fn export(mapping: &Path, destination: &str, subscriptions: &str) -> Result<u8> {
    if destination == "-" && subscriptions == "-" {
        bail!("only one of --destination and --subscriptions can be - (stdout)");
    }
    let exported = migrate::export_segment(mapping).map_err(usage)?;
    for n in &exported.notes {
        eprintln!("note: {n}");
    }
    for (arg, body) in [
        (destination, &exported.destination),
        (subscriptions, &exported.subscriptions),
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

/// `init`: a starter mapping file.
pub fn init(file: &Path, kind: s3actions::init::Starter) -> Result<u8> {
    let written =
        s3actions::init::write_starter(file, kind).map_err(|e| Exit(1, format!("error: {e}")))?;
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    eprintln!("next: s3actions validate {}", file.display());
    Ok(0)
}

/// Loads a mapping file; problems are printed with their locations (exit code 2).
/// Settings that only uploading needs are not mentioned for local runs.
pub fn load(path: &Path, uploading: bool) -> Result<Config> {
    let c = Config::load(path).map_err(usage)?;
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

/// `validate`: the mapping file's problems, or what it defines.
pub fn validate(path: &Path) -> Result<u8> {
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
