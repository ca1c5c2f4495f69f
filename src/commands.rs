//! What the command line's subcommands do, as library calls: the binary only parses
//! arguments, calls these, prints their results and maps errors to exit codes.

use std::path::PathBuf;

use crate::expr::{Value, compile_top_level, eval};
use crate::json::Tape;
use crate::mapping::{Config, Secret};
use crate::pipeline::{RejectLog, RunError, RunOptions, RunReport};
use crate::route::decode;
use crate::sink::SinkError;
use crate::sink::local::LocalSink;
use crate::sink::manifest::ManifestSink;
use crate::sink::s3::{self, CheckResult, ClientOptions, OUTBOX_REJECTS, S3Sink};
use crate::source::Source;
use crate::source::s3archive::{ArchiveError, ArchiveUrl, DayRange, S3Archive};
use crate::source::warehouse::postgres::Postgres;
use crate::source::warehouse::{DiffReport, RetlSource, WarehouseError, diff_model};
use crate::spanned::{SValue, parse_json_or_yaml};

pub mod serve;
pub use serve::{Keep, ServeEvents, ServeSetup};

/// A command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Settings that uploading needs are missing or unresolved (one line each, with its
    /// location).
    #[error("cannot upload:\n{}", .0.join("\n"))]
    Settings(Vec<String>),
    #[error("cannot use output directory {}: {source}", dir.display())]
    OutDir {
        dir: PathBuf,
        #[source]
        source: SinkError,
    },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Kafka(#[from] crate::source::kafka::KafkaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The event or expression given to `eval`/`preview` is not usable.
    #[error("{0}")]
    Input(String),
    /// A local input file does not exist or cannot be read (found before anything is
    /// written).
    #[error("cannot read {input}: {source}")]
    MissingInput {
        input: String,
        #[source]
        source: std::io::Error,
    },
    /// `s3://` inputs or `--since`/`--until` that cannot be used.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Retl(#[from] RetlError),
    /// Settings that reading an archive needs are unresolved (one line each).
    #[error("cannot read the archive:\n{}", .0.join("\n"))]
    ArchiveSettings(Vec<String>),
    /// One replay given both `s3://` and local inputs.
    #[error(
        "s3:// inputs and local inputs cannot be mixed in one replay; replay them one after the other"
    )]
    MixedInputs,
    /// `--since`/`--until` given for local inputs.
    #[error(
        "--since and --until select received-day folders of s3:// inputs; these inputs are local"
    )]
    DaysOnLocalInputs,
    /// `serve --write-key-env VAR` with `VAR` unset or empty.
    #[error("--write-key-env {var}: the variable is not set")]
    WriteKeyEnv { var: String },
    #[error(transparent)]
    Serve(#[from] crate::source::http::ServeError),
    #[error("cannot open the spool (--spool)")]
    Spool(#[from] crate::source::spool::SpoolError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// What `replay` reads: local files and stdin, or the objects of an S3 archive.
pub enum ReplaySource {
    Files(crate::source::Inputs),
    Archive(S3Archive),
}

impl ReplaySource {
    /// Opens `inputs` (paths, `-`, or `s3://` URLs, not both kinds); `since`/`until`
    /// select received-day folders of an archive. Local files are checked first, so a
    /// missing one is found before anything is written.
    pub fn open(
        config: &Config,
        inputs: &[String],
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<ReplaySource, CommandError> {
        let s3 = inputs.iter().filter(|i| ArchiveUrl::is_s3(i)).count();
        if s3 > 0 && s3 < inputs.len() {
            return Err(CommandError::MixedInputs);
        }
        if s3 > 0 {
            return Ok(ReplaySource::Archive(open_archive(
                config, inputs, since, until,
            )?));
        }
        if since.is_some() || until.is_some() {
            return Err(CommandError::DaysOnLocalInputs);
        }
        let inputs: Vec<_> = inputs
            .iter()
            .map(|i| crate::source::Input::parse(i))
            .collect();
        check_inputs(&inputs)?;
        Ok(ReplaySource::Files(crate::source::Inputs::new(
            inputs,
            crate::pipeline::chunk_size(config),
            crate::sink::Durability::Written,
        )))
    }

    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            ReplaySource::Files(s) => s,
            ReplaySource::Archive(s) => s,
        }
    }

    /// How far a run got: what is durable, and the inputs' names (for a failed run's
    /// report, so that the same command can be resumed by hand).
    pub fn reached(&self) -> (crate::source::Durable, Vec<std::sync::Arc<str>>) {
        match self {
            ReplaySource::Files(s) => (s.progress().durable(), s.names().to_vec()),
            ReplaySource::Archive(s) => {
                let names = s.names();
                let names = names.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (s.progress().durable(), names)
            }
        }
    }
}

/// Checks that every local input file exists and can be opened, before a run writes
/// anything: a missing file in the middle of a list otherwise stops the run after the files
/// before it were written.
pub fn check_inputs(inputs: &[crate::source::Input]) -> Result<(), CommandError> {
    for input in inputs {
        if let crate::source::Input::File(path) = input {
            let opened = std::fs::File::open(path).and_then(|f| {
                if f.metadata()?.is_dir() {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "it is a directory",
                    ))
                } else {
                    Ok(())
                }
            });
            opened.map_err(|source| CommandError::MissingInput {
                input: path.display().to_string(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (Linux and other Unixes): every
/// open batch holds one file, and thousands of mappings × event types × folders go past
/// the usual soft limit of 1,024 long before the hard one. The cap on open batch files
/// follows the limit now in force (see [`crate::batch::set_open_file_cap_from_limit`]).
pub fn raise_open_file_limit() -> Option<u64> {
    let limit = open_file_limit();
    crate::batch::set_open_file_cap_from_limit(limit);
    limit
}

/// Raises the soft open-file limit to the hard one; returns the limit in force.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// An error and its causes on one line, each cause once. Many errors quote their cause in
/// their own message (`cannot read x: <why>`) and also return it as `source()`; a cause
/// whose text the line already holds is not repeated.
pub fn error_message<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut out = String::new();
    for e in chain {
        let text = e.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Where a run's files go.
#[derive(Clone, Debug)]
pub enum Destination {
    /// Under this directory, at their object keys.
    Dir(PathBuf),
    /// To S3, through the outbox.
    Upload,
}

/// A finished run, and where its files wait when uploads failed.
pub struct Replayed {
    pub report: RunReport,
    /// The outbox, when uploading.
    pub outbox: Option<PathBuf>,
}

/// Runs `source` through the mappings into `destination`; rejects go to `rejects`, or
/// beside the output (`_rejected.ndjson`).
pub fn replay(
    config: &Config,
    source: &mut dyn Source,
    opts: &RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
) -> Result<Replayed, CommandError> {
    run_into(config, source, opts, destination, rejects, false)
}

/// Runs `source` into `destination`; with `resume_outbox` (serve's spool), files that an
/// earlier run left in the outbox (a crash, an outage) are uploaded too, since their
/// events are acknowledged.
fn run_into(
    config: &Config,
    source: &mut dyn Source,
    opts: &RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
    resume_outbox: bool,
) -> Result<Replayed, CommandError> {
    run_into_with(
        config,
        source,
        opts,
        destination,
        rejects,
        resume_outbox,
        false,
    )
}

/// [`run_into`]; `once`: batches are named from a log (see [`consume`]).
fn run_into_with(
    config: &Config,
    source: &mut dyn Source,
    opts: &RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
    resume_outbox: bool,
    once: bool,
) -> Result<Replayed, CommandError> {
    match destination {
        Destination::Dir(dir) => {
            let mut sink = LocalSink::new(dir).map_err(|source| CommandError::OutDir {
                dir: dir.clone(),
                source,
            })?;
            if once {
                sink = sink.once();
            }
            let mut log = RejectLog::new(rejects.unwrap_or_else(|| dir.join("_rejected.ndjson")));
            let report = match ManifestSink::wrap(config, &mut sink, None) {
                Some(mut with_manifests) => {
                    crate::pipeline::run(config, source, opts, &mut with_manifests, &mut log)?
                }
                None => crate::pipeline::run(config, source, opts, &mut sink, &mut log)?,
            };
            Ok(Replayed {
                report,
                outbox: None,
            })
        }
        Destination::Upload => {
            require_settings(config)?;
            let outbox = s3::default_outbox(&config.settings);
            let mut sink = S3Sink::new(&config.settings, &outbox, &ClientOptions::default())?;
            if once {
                sink = sink.once();
            }
            if resume_outbox {
                let (waiting, _manifests) = sink.enqueue_outbox()?;
                if waiting > 0 {
                    tracing::info!(
                        files = waiting,
                        "uploading files an earlier run left in the outbox"
                    );
                }
            }
            let mut log = RejectLog::new(rejects.unwrap_or_else(|| outbox.join(OUTBOX_REJECTS)));
            let report = match ManifestSink::wrap(config, &mut sink, Some(&outbox)) {
                Some(mut with_manifests) => {
                    crate::pipeline::run(config, source, opts, &mut with_manifests, &mut log)?
                }
                None => crate::pipeline::run(config, source, opts, &mut sink, &mut log)?,
            };
            Ok(Replayed {
                report,
                outbox: Some(outbox),
            })
        }
    }
}

/// What `consume` is told on its command line (see [`consume`]).
#[derive(Clone, Debug)]
pub struct ConsumeOptions {
    /// `--brokers`: librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// `--topic` (repeatable).
    pub topics: Vec<String>,
    /// `--group`: the consumer group.
    pub group: String,
    /// `-X KEY=VALUE` (repeatable), applied after the mapping file's `kafka:` block.
    pub overrides: Vec<String>,
    /// `--stop-at-end`.
    pub stop_at_end: bool,
    /// `--metrics-listen`: where `GET /metrics`, `/health` and `/ready` are served.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `consume`: Kafka topics through the mappings, as a member of a consumer group. Batches
/// are named from the log (topic, partition, start offset, record times), so templates
/// that differ each time (`{{uuid}}`, `{{part}}`) are refused; a file already there with
/// the same content is a batch delivered before a crash, not a new one.
pub fn consume(
    config: &Config,
    args: ConsumeOptions,
    opts: &RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
) -> Result<Replayed, CommandError> {
    use crate::source::kafka::{KafkaError, KafkaOptions, KafkaSource};
    for m in config.mappings.iter().filter(|m| m.enabled) {
        if m.batch_interval.is_some() {
            return Err(KafkaError::Interval {
                path: config.path.clone(),
                mapping: m.name.clone(),
            }
            .into());
        }
        if let Some(var) = m.filename.non_reproducible() {
            return Err(KafkaError::Template {
                path: config.path.clone(),
                mapping: m.name.clone(),
                var,
            }
            .into());
        }
    }
    let mut settings = config.settings.kafka.clone();
    for (i, kv) in args.overrides.iter().enumerate() {
        // The value may be a password: only the key is ever shown.
        let Some((k, v)) = kv.split_once('=') else {
            return Err(KafkaError::Override { index: i + 1 }.into());
        };
        settings.push((k.trim().to_string(), Secret::new(v)));
    }
    let level = match destination {
        Destination::Dir(_) => crate::sink::Durability::Machine,
        Destination::Upload => crate::sink::Durability::Final,
    };
    if matches!(destination, Destination::Upload) {
        require_settings(config)?;
    }
    let probes = match args.metrics_listen {
        Some(addr) => {
            let handle = crate::metrics::install().map_err(KafkaError::Metrics)?;
            Some(crate::probe::serve(addr, handle).map_err(KafkaError::Probe)?)
        }
        None => None,
    };
    let mut source = KafkaSource::new(KafkaOptions {
        brokers: args.brokers,
        topics: args.topics,
        group: args.group,
        settings,
        stop_at_end: args.stop_at_end,
        level,
        chunk_size: crate::pipeline::chunk_size(config),
    })?;
    if let Some(p) = &probes {
        tracing::info!(
            "serving GET /metrics, /health, /ready on http://{}",
            p.addr()
        );
        p.set_ready(source.readiness());
    }
    crate::source::kafka::stop_on_signals(source.stopper())?;
    let done = run_into_with(config, &mut source, opts, destination, rejects, true, true);
    drop(probes);
    done
}

/// Where serve's spool lives unless `--spool` says: inside the output directory, or
/// inside the outbox when uploading, so that a restart of the same command finds it.
pub fn default_spool(config: &Config, destination: &Destination) -> PathBuf {
    match destination {
        Destination::Dir(dir) => dir.join(crate::source::spool::SPOOL_DIR),
        Destination::Upload => {
            s3::default_outbox(&config.settings).join(crate::source::spool::SPOOL_DIR)
        }
    }
}

/// `replay MAPPING.yaml s3://...`: the objects under the prefixes (or the objects named),
/// read with `settings.archive` in place of the upload settings it names; `since`/`until`
/// (`YYYY-MM-DD`) select Segment received-day folders.
pub fn open_archive(
    config: &Config,
    urls: &[String],
    since: Option<&str>,
    until: Option<&str>,
) -> Result<S3Archive, CommandError> {
    let urls = urls
        .iter()
        .map(|u| ArchiveUrl::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let days = DayRange::parse(since, until)?;
    let settings = config.settings.for_archive().map_err(|problems| {
        let path = config.path.display();
        CommandError::ArchiveSettings(problems.iter().map(|d| format!("  {path}:{d}")).collect())
    })?;
    Ok(S3Archive::open(
        &settings,
        urls,
        days,
        config.settings.download_concurrency(),
        &ClientOptions::default(),
        crate::pipeline::chunk_size(config),
    )?)
}

/// Uploading needs a bucket, a region and every ${VAR} of the settings.
pub fn require_settings(config: &Config) -> Result<(), CommandError> {
    config.settings.check_for_upload().map_err(|problems| {
        let path = config.path.display();
        CommandError::Settings(problems.iter().map(|d| format!("  {path}:{d}")).collect())
    })
}

/// Segment's connection test: the folder of every enabled mapping (for a templated folder,
/// the folders before its first variable, which every file of the mapping shares) gets
/// `dummy-object.txt`, through the role.
pub fn check(config: &Config) -> Result<Vec<CheckResult>, CommandError> {
    require_settings(config)?;
    let mut folders: Vec<(String, String)> = Vec::new();
    for m in config.mappings.iter().filter(|m| m.enabled) {
        let folder = m.folder.fixed_prefix();
        if !folders.iter().any(|(_, f)| *f == folder) {
            folders.push((m.name.clone(), folder));
        }
    }
    Ok(s3::check(
        &config.settings,
        &folders,
        &ClientOptions::default(),
    )?)
}

/// Uploads what waits in the outbox (`settings.outbox_dir` or the default when `None`).
pub fn flush(
    config: &Config,
    outbox: Option<PathBuf>,
) -> Result<(crate::sink::SinkReport, PathBuf), CommandError> {
    require_settings(config)?;
    let outbox = outbox.unwrap_or_else(|| s3::default_outbox(&config.settings));
    let report = s3::flush(&config.settings, &outbox, &ClientOptions::default())?;
    Ok((report, outbox))
}

/// An event given as a file argument, as JSON text: JSON is taken as it is, a YAML mapping
/// (for hand-written events) is converted, anything else is passed on to fail as JSON.
pub fn event_json(text: String) -> String {
    let mut tape = Tape::new();
    if tape.parse(&text).is_ok() {
        return text;
    }
    match parse_json_or_yaml(&text) {
        Ok(node) if matches!(node.value, SValue::Object(_)) => node.to_json().to_string(),
        _ => text,
    }
}

/// Parses an event for `eval`, `match` and `preview`, with the reason a run would give.
pub fn parse_event<'t>(
    tape: &'t mut Tape,
    text: &'t str,
    name: &str,
) -> Result<crate::json::NodeRef<'t>, CommandError> {
    decode(tape, text.as_bytes(), Some(text))
        .map_err(|why| CommandError::Input(format!("error: {name}: {why}")))
}

/// `eval`: one mapping expression (JSON or YAML text, named `name` in messages) resolved
/// against one event; the result as JSON, `None` when it is undefined.
pub fn eval_expression(
    source: &str,
    name: &str,
    event: &str,
    event_name: &str,
) -> Result<Option<String>, CommandError> {
    let node = parse_json_or_yaml(source)
        .map_err(|e| CommandError::Input(format!("error: {name}:{e}")))?;
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
        CommandError::Input(lines.join("\n"))
    })?;
    let mut tape = Tape::new();
    let root = parse_event(&mut tape, event, event_name)?;
    let value = eval(&compiled, &Value::Node(root))
        .map_err(|e| CommandError::Input(format!("error: {e}")))?;
    Ok(value.remove_undefined().to_json_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write x: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("run failed")]
    struct Outer(#[source] Quoting);

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = Outer(Quoting(io));
        let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![&e];
        let mut next = std::error::Error::source(&e);
        while let Some(c) = next {
            chain.push(c);
            next = c.source();
        }
        assert_eq!(
            error_message(chain),
            "run failed: cannot write x: No space left on device"
        );
    }

    #[test]
    fn missing_inputs_are_found_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("a.ndjson");
        std::fs::write(&here, "{}\n").unwrap();
        let inputs = [
            crate::source::Input::File(here),
            crate::source::Input::File(dir.path().join("nope.ndjson")),
            crate::source::Input::File(dir.path().to_path_buf()),
        ];
        let e = check_inputs(&inputs).unwrap_err();
        assert!(e.to_string().contains("nope.ndjson: No such file"), "{e}");
        let e = check_inputs(&inputs[2..]).unwrap_err();
        assert!(e.to_string().ends_with("it is a directory"), "{e}");
        assert!(check_inputs(&inputs[..1]).is_ok());
    }
}

/// Why `retl` could not do its job (beside the run's own errors).
#[derive(Debug, thiserror::Error)]
pub enum RetlError {
    #[error("{} has no models: add a `models:` section (id, connection, query, identifier)", .0.display())]
    NoModels(PathBuf),
    /// `${VAR}`s of the models' connections that are not set (one line each).
    #[error("cannot read the models:\n{}", .0.join("\n"))]
    Unresolved(Vec<String>),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("cannot start the warehouse client: {0}")]
    Runtime(#[source] std::io::Error),
    /// The run succeeded but a snapshot could not be committed: the next run sends these
    /// differences again.
    #[error(
        "the output is written, but the snapshot of {models} could not be committed ({why}); the next run sends the same differences again"
    )]
    NotCommitted { models: String, why: String },
}

/// How `retl` keeps its state.
#[derive(Clone, Debug, Default)]
pub struct RetlOptions {
    /// `--state-dir` (else `settings.state_dir`, else `./s3actions-state/`).
    pub state_dir: Option<PathBuf>,
    /// `--reset`: compare with empty snapshots (every row `new`).
    pub reset: bool,
}

/// A finished `retl`: the run, and what each model's diff found.
pub struct Retled {
    pub replayed: Replayed,
    pub models: Vec<DiffReport>,
    pub state_dir: PathBuf,
}

/// The state folder `retl` uses.
pub fn state_dir(config: &Config, opts: &RetlOptions) -> PathBuf {
    opts.state_dir
        .clone()
        .or_else(|| config.settings.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from("s3actions-state"))
}

/// `retl`: diffs every model with its snapshot, runs the differences through the mappings
/// into `destination`, and commits each snapshot once its events are durable.
pub fn retl(
    config: &Config,
    opts: &RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
    retl: &RetlOptions,
) -> Result<Retled, CommandError> {
    if config.models.is_empty() {
        return Err(RetlError::NoModels(config.path.clone()).into());
    }
    let unresolved: Vec<String> = config
        .models
        .iter()
        .flat_map(|m| &m.unresolved)
        .map(|d| format!("  {}:{d}", config.path.display()))
        .collect();
    if !unresolved.is_empty() {
        return Err(RetlError::Unresolved(unresolved).into());
    }
    let dir = state_dir(config, retl);
    let _held = crate::state::lock_folder(&dir).map_err(RetlError::State)?;
    crate::state::remove_leftovers(&dir).map_err(RetlError::State)?;
    let timestamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    let mut warehouse = Postgres::new().map_err(RetlError::Runtime)?;
    let mut diffed = Vec::new();
    for model in &config.models {
        let d = diff_model(&mut warehouse, model, &dir, retl.reset, &timestamp)
            .map_err(RetlError::Warehouse)?;
        for w in &d.report.warnings {
            tracing::warn!("{w}");
        }
        diffed.push(d);
    }
    let reports: Vec<DiffReport> = diffed.iter().map(|d| d.report.clone()).collect();
    let mut source = RetlSource::new(diffed, crate::pipeline::chunk_size(config));
    let commits = source.commits();
    let replayed = replay(config, &mut source, opts, destination, rejects)?;
    drop(source);
    for (i, r) in reports.iter().enumerate() {
        if r.events() == 0 {
            commits.commit_now(i).map_err(RetlError::State)?;
        }
    }
    let (committed, errors) = commits.outcome();
    let missing: Vec<String> = committed
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(m, _)| m)
        .collect();
    if !missing.is_empty() || !errors.is_empty() {
        let why = if errors.is_empty() {
            "its events are not all durable".to_string()
        } else {
            errors.join("; ")
        };
        return Err(RetlError::NotCommitted {
            models: missing.join(", "),
            why,
        }
        .into());
    }
    Ok(Retled {
        replayed,
        models: reports,
        state_dir: dir,
    })
}
