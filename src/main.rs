//! The `s3actions` command line: argument parsing and output around the library.

mod report;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use s3actions::expr::{Value, compile_top_level, eval};
use s3actions::json::{Kind, Tape};
use s3actions::mapping::{Config, LoadError, Secret};
use s3actions::pipeline::{FailureHook, RejectLog, RunOptions};
use s3actions::sink::local::LocalSink;
use s3actions::source::Input;
use s3actions::source::http::Access;
use s3actions::spanned::parse_json_or_yaml;
use s3actions::trigger::Trigger;

/// Exit code for a command line or mapping file that cannot be used.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "s3actions",
    version,
    about = "Segment-compatible \"Sync to S3\" mappings, run yourself: replay events into CSV/TXT files and upload them through an assumed IAM role."
)]
struct Cli {
    /// More logging (-v: info, -vv: debug). S3ACTIONS_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Where a run's files go and how it runs (shared by `replay` and `serve`).
#[derive(clap::Args)]
struct RunArgs {
    /// Write files under this directory at their object keys instead of uploading.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only this mapping (by name).
    #[arg(long = "mapping")]
    only: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Where rejected events are appended (default: OUT/_rejected.ndjson, or
    /// <outbox>/_rejected.ndjson when uploading).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run events through a mapping file; write the files under --out, or upload them.
    Replay {
        /// The mapping file (YAML).
        mapping: PathBuf,
        /// Event files: NDJSON, a JSON array or JSON objects; .gz is decompressed; - is stdin.
        #[arg(required = true)]
        inputs: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Receive live events over HTTP (Segment's /v1/batch, /v1/track, ... endpoints) and
    /// run them through a mapping file until Ctrl-C or SIGTERM, which write every open batch.
    Serve {
        /// The mapping file (YAML).
        mapping: PathBuf,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// Require this environment variable's value as the write key (HTTP Basic
        /// authentication with the key as user name, as Segment's libraries send it).
        #[arg(long, value_name = "VAR")]
        write_key_env: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a mapping file without events: structure, keys, values, triggers, expressions,
    /// templates.
    Validate { mapping: PathBuf },
    /// Resolve one mapping expression against one event and print the result as JSON.
    Eval {
        /// The expression (JSON or YAML file; - for stdin).
        #[arg(
            long,
            conflicts_with = "expr_inline",
            required_unless_present = "expr_inline"
        )]
        expr: Option<String>,
        /// The expression as JSON text.
        #[arg(long)]
        expr_inline: Option<String>,
        /// The event (JSON or YAML file; - for stdin).
        #[arg(long)]
        event: String,
    },
    /// Evaluate an FQL trigger against one event: prints true or false.
    Match {
        #[arg(long)]
        trigger: String,
        /// The event (JSON or YAML file; - for stdin).
        #[arg(long)]
        event: String,
    },
    /// Show what every mapping does with one event: trigger result, row, object key.
    Preview {
        mapping: PathBuf,
        /// The event (JSON or YAML file; - for stdin).
        #[arg(long)]
        event: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify the S3 connection: assume the role and upload dummy-object.txt to each
    /// mapping's folder.
    Check { mapping: PathBuf },
    /// Upload the files waiting in the outbox.
    Flush {
        mapping: PathBuf,
        /// The outbox directory (default: settings.outbox_dir, else ./s3actions-outbox/<bucket>).
        #[arg(long)]
        outbox: Option<PathBuf>,
    },
}

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

/// Runs the pipeline into `--out`, or uploads when there is none.
fn run_to(
    config: &s3actions::mapping::Config,
    inputs: Vec<Input>,
    progress: bool,
    on_failure: Option<FailureHook>,
    run: RunArgs,
) -> Result<u8> {
    let RunArgs {
        out,
        only,
        threads,
        rejects,
        json,
    } = run;
    let opts = &RunOptions {
        inputs,
        only_mapping: only,
        threads,
        progress,
        on_failure,
        ..RunOptions::default()
    };
    match out {
        Some(dir) => {
            let mut sink = LocalSink::new(&dir)
                .with_context(|| format!("cannot use output directory {}", dir.display()))?;
            let mut log = RejectLog::new(rejects.unwrap_or_else(|| dir.join("_rejected.ndjson")));
            let report = s3actions::pipeline::run(config, opts, &mut sink, &mut log)?;
            report::print_run(&report, json);
            Ok(report::exit_code(&report))
        }
        None => upload::replay(config, opts, rejects, json),
    }
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
            run,
            quiet,
        } => {
            let config = load(&mapping, run.out.is_none())?;
            let progress = !quiet && !run.json && std::io::stderr().is_terminal();
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
                        return Err(Exit(
                            2,
                            format!("error: --write-key-env {var}: the variable is not set"),
                        )
                        .into());
                    }
                },
            };
            let (server, input) = s3actions::source::http::serve(&listen, access)
                .with_context(|| format!("cannot listen on {listen}"))?;
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
        Command::Validate { mapping } => validate(&mapping),
        Command::Eval {
            expr,
            expr_inline,
            event,
        } => eval_command(expr.as_deref(), expr_inline.as_deref(), &event),
        Command::Match { trigger, event } => {
            let t =
                Trigger::parse(&trigger).map_err(|e| Exit(1, format!("invalid trigger: {e}")))?;
            let text = read_event(&event)?;
            let mut tape = Tape::new();
            let root = parse_event(&mut tape, &text, &event)?;
            println!("{}", t.matches(root));
            Ok(0)
        }
        Command::Preview {
            mapping,
            event,
            json,
        } => {
            let config = load(&mapping, false)?;
            let text = read_event(&event)?;
            let mut tape = Tape::new();
            let root = parse_event(&mut tape, &text, &event)?;
            let previews = s3actions::preview::preview(&config, root);
            report::print_preview(&previews, json);
            Ok(0)
        }
        Command::Check { mapping } => {
            let config = load(&mapping, true)?;
            upload::check(&config)
        }
        Command::Flush { mapping, outbox } => {
            let config = load(&mapping, true)?;
            upload::flush(&config, outbox)
        }
    }
}

mod upload {
    //! Commands that talk to S3.
    use super::*;
    use s3actions::sink::s3::{self, ClientOptions, OUTBOX_REJECTS, S3Sink};

    /// Uploading needs a bucket, a region and every ${VAR} of the settings.
    fn require_settings(config: &Config) -> Result<()> {
        if let Err(problems) = config.settings.check_for_upload() {
            let path = config.path.display();
            let lines: Vec<String> = problems.iter().map(|d| format!("  {path}:{d}")).collect();
            return Err(Exit(
                EXIT_USAGE,
                format!("error: cannot upload:\n{}", lines.join("\n")),
            )
            .into());
        }
        Ok(())
    }

    pub fn replay(
        config: &Config,
        opts: &RunOptions,
        rejects: Option<PathBuf>,
        json: bool,
    ) -> Result<u8> {
        require_settings(config)?;
        let outbox = s3::default_outbox(&config.settings);
        let mut sink = S3Sink::new(&config.settings, &outbox, &ClientOptions::default())?;
        let mut log = RejectLog::new(rejects.unwrap_or_else(|| outbox.join(OUTBOX_REJECTS)));
        let report = s3actions::pipeline::run(config, opts, &mut sink, &mut log)?;
        report::print_run(&report, json);
        if !report.sink.pending.is_empty() && !json {
            eprintln!(
                "error: {} file(s) could not be uploaded and are waiting in {}; fix the cause above, then run: s3actions flush {}",
                report.sink.pending.len(),
                outbox.display(),
                config.path.display()
            );
        }
        Ok(report::exit_code(&report))
    }

    pub fn check(config: &Config) -> Result<u8> {
        require_settings(config)?;
        let mut folders = Vec::new();
        for m in config.mappings.iter().filter(|m| m.enabled) {
            // Templated folders are checked at their fixed part (rendered without an event).
            let folder = m.folder.constant().unwrap_or_else(|| {
                let mut tape = Tape::new();
                let empty = tape.parse("{}").expect("valid JSON");
                let (mut out, mut scratch) = (String::new(), String::new());
                m.folder.render_into(empty, &mut out, &mut scratch);
                out
            });
            if !folders.iter().any(|(_, f)| *f == folder) {
                folders.push((m.name.clone(), folder));
            }
        }
        let bucket = config.settings.bucket.clone().unwrap_or_default();
        let results = s3::check(&config.settings, &folders, &ClientOptions::default())?;
        let mut ok = true;
        for r in &results {
            match &r.result {
                Ok(()) => println!("ok: mapping {:?}: wrote s3://{bucket}/{}", r.mapping, r.key),
                Err(e) => {
                    ok = false;
                    println!(
                        "FAILED: mapping {:?}: s3://{bucket}/{}: {e}",
                        r.mapping, r.key
                    );
                }
            }
        }
        if let Some(role) = &config.settings.role_arn {
            println!(
                "{} assuming {role}",
                if ok {
                    "connection works,"
                } else {
                    "connection check failed,"
                }
            );
        }
        Ok(if ok { 0 } else { 1 })
    }

    pub fn flush(config: &Config, outbox: Option<PathBuf>) -> Result<u8> {
        require_settings(config)?;
        let outbox = outbox.unwrap_or_else(|| s3::default_outbox(&config.settings));
        let report = s3::flush(&config.settings, &outbox, &ClientOptions::default())?;
        for d in &report.delivered {
            println!("uploaded {}", d.location);
        }
        for p in &report.pending {
            println!(
                "still waiting: {} ({}): {}",
                p.key,
                p.path.display(),
                p.reason
            );
        }
        println!(
            "{} file(s) uploaded, {} still waiting in {}",
            report.delivered.len(),
            report.pending.len(),
            outbox.display()
        );
        Ok(if report.pending.is_empty() { 0 } else { 1 })
    }
}

/// Loads a mapping file; problems are printed with their locations (exit code 2).
/// Settings that only uploading needs are not mentioned for local runs.
fn load(path: &Path, uploading: bool) -> Result<Config> {
    match Config::load(path) {
        Ok(c) => {
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
        Err(e @ LoadError::Io { .. }) => Err(Exit(EXIT_USAGE, format!("error: {e}")).into()),
        Err(e) => Err(Exit(EXIT_USAGE, format!("error: {e}")).into()),
    }
}

fn validate(path: &Path) -> Result<u8> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return Err(Exit(EXIT_USAGE, format!("{e}")).into()),
    };
    for w in &config.warnings {
        println!("{}:{w}", path.display());
    }
    let enabled = config.mappings.iter().filter(|m| m.enabled).count();
    println!(
        "{}: valid ({} mapping{}, {enabled} enabled{})",
        path.display(),
        config.mappings.len(),
        if config.mappings.len() == 1 { "" } else { "s" },
        if config.warnings.is_empty() {
            String::new()
        } else {
            format!(
                ", {} warning{}",
                config.warnings.len(),
                if config.warnings.len() == 1 { "" } else { "s" }
            )
        }
    );
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

/// An event file as JSON text (YAML files are converted).
fn read_event(arg: &str) -> Result<String> {
    let text = read_arg(arg)?;
    let mut tape = Tape::new();
    if tape.parse(&text).is_ok() {
        return Ok(text);
    }
    // YAML is accepted for hand-written events; anything else is reported as JSON.
    match parse_json_or_yaml(&text) {
        Ok(node) if matches!(node.value, s3actions::spanned::SValue::Object(_)) => {
            Ok(node.to_json().to_string())
        }
        _ => Ok(text),
    }
}

fn parse_event<'a>(
    tape: &'a mut Tape,
    text: &'a str,
    name: &str,
) -> Result<s3actions::json::NodeRef<'a>> {
    let root = tape.parse(text).map_err(|e| {
        let (l, c) = e.line_col(text.as_bytes());
        Exit(
            1,
            format!("error: {name}:{l}:{c}: invalid JSON: {}", e.message),
        )
    })?;
    if root.kind() != Kind::Object {
        return Err(Exit(
            1,
            format!(
                "error: {name}: the event must be a JSON object, not {:?}",
                root.kind()
            ),
        )
        .into());
    }
    Ok(root)
}

fn eval_command(expr: Option<&str>, inline: Option<&str>, event: &str) -> Result<u8> {
    if expr == Some("-") && event == "-" {
        bail!("only one of --expr and --event can read stdin");
    }
    let (source, name) = match (expr, inline) {
        (_, Some(text)) => (text.to_string(), "--expr-inline".to_string()),
        (Some(path), None) => (read_arg(path)?, path.to_string()),
        (None, None) => bail!("give --expr FILE or --expr-inline JSON"),
    };
    let node = parse_json_or_yaml(&source).map_err(|e| Exit(1, format!("error: {name}:{e}")))?;
    let compiled = compile_top_level(&node).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                if e.mark.is_known() {
                    format!("error: {name}:{}: {e}", e.mark)
                } else {
                    format!("error: {name}: {e}")
                }
            })
            .collect();
        Exit(1, lines.join("\n"))
    })?;
    let text = read_event(event)?;
    let mut tape = Tape::new();
    let root = parse_event(&mut tape, &text, event)?;
    let value = eval(&compiled, &Value::Node(root)).map_err(|e| Exit(1, format!("error: {e}")))?;
    if let Some(json) = value.remove_undefined().to_json_string() {
        println!("{json}");
    }
    Ok(0)
}
