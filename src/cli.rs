//! The command line's arguments (clap): what each subcommand takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use s3actions::source::http::Limits;

#[derive(Parser)]
#[command(
    name = "s3actions",
    version,
    about = "Segment-compatible \"Sync to S3\" mappings, run yourself: replay events into CSV/TXT files and upload them through an assumed IAM role."
)]
pub struct Cli {
    /// More logging (-v: info, -vv: debug). S3ACTIONS_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text (default) or as JSON objects, one a line (for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines on stderr look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a run's files go and how it runs (shared by `replay` and `serve`).
#[derive(clap::Args)]
pub struct RunArgs {
    /// Write files under this directory at their object keys instead of uploading.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only this mapping (by name).
    #[arg(long = "mapping")]
    pub only: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where rejected events are appended (default: OUT/_rejected.ndjson, or
    /// <outbox>/_rejected.ndjson when uploading).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `serve --durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    Fsync,
    None,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run events through a mapping file; write the files under --out, or upload them.
    Replay {
        /// The mapping file (YAML).
        mapping: PathBuf,
        /// Event files: NDJSON, a JSON array or JSON objects; .gz is decompressed; - is stdin.
        /// Or S3: s3://bucket/prefix/ reads every object under the prefix, s3://bucket/key one.
        #[arg(required = true)]
        inputs: Vec<String>,
        /// With s3:// prefixes: only Segment received-day folders from this UTC day (YYYY-MM-DD).
        #[arg(long, value_name = "DAY")]
        since: Option<String>,
        /// With s3:// prefixes: only Segment received-day folders up to this UTC day, inclusive.
        #[arg(long, value_name = "DAY")]
        until: Option<String>,
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
        /// When a request is answered 200: `fsync` once its events are fsynced in the
        /// spool (kept whatever happens next); `none` once they are queued in memory
        /// (faster; a crash loses what was not yet in a file).
        #[arg(long, value_enum, default_value = "fsync")]
        durability: DurabilityArg,
        /// The spool's folder (default: .s3actions-spool inside --out, or inside the
        /// outbox when uploading).
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
        /// Seconds a client has to send a request's headers, however slowly the bytes come.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        header_timeout: u64,
        /// Connections served at once; a client beyond it gets `503` with `Retry-After` and
        /// the connection is closed (a cap on sockets and memory, not on requests).
        #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Largest event, in bytes of its JSON as sent (also the largest body of
        /// /v1/track and the other single-event endpoints); a request with a larger one gets
        /// `400`. Segment's limit: 32 KB.
        #[arg(long, value_name = "BYTES", default_value_t = Limits::SEGMENT.event_bytes as u32, value_parser = clap::value_parser!(u32).range(1024..=Limits::MAX as i64))]
        max_event_bytes: u32,
        /// Largest body of /v1/batch (after gzip is undone); a larger one gets `413`.
        /// Segment's limit: 500 KB.
        #[arg(long, value_name = "BYTES", default_value_t = Limits::SEGMENT.request_bytes as u32, value_parser = clap::value_parser!(u32).range(1024..=Limits::MAX as i64))]
        max_request_bytes: u32,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Reverse ETL: diff each model's query result (models:) with the last run's snapshot and
    /// send the rows that are new, updated or deleted through the mappings.
    Retl {
        /// The mapping file (YAML) with a models: section.
        mapping: PathBuf,
        /// Where the snapshots are kept (default: settings.state_dir, else ./s3actions-state/).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Compare with empty snapshots: every row is sent as new (the snapshots are
        /// replaced once the run's output is durable).
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Consume Segment events from Kafka topics as a member of a consumer group; write the
    /// files under --out, or upload them. Offsets are committed only once files are durable.
    Consume {
        /// The mapping file (YAML).
        mapping: PathBuf,
        /// Kafka bootstrap servers, HOST:PORT[,...].
        #[arg(long)]
        brokers: String,
        /// A topic to read (repeatable).
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        /// The consumer group: instances with the same group share the partitions.
        #[arg(long)]
        group: String,
        /// A librdkafka setting, KEY=VALUE (repeatable, like kcat's -X); after the mapping
        /// file's settings.kafka.
        #[arg(short = 'X', value_name = "KEY=VALUE")]
        kafka_settings: Vec<String>,
        /// Exit once the group has committed, on every partition, the end offsets current
        /// when this instance started.
        #[arg(long)]
        stop_at_end: bool,
        /// Serve GET /metrics (consumer lag, commits, rebalances, files), /health and
        /// /ready on this address (HOST:PORT).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
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
    /// Convert a Segment AWS S3 (Actions) destination into a mapping file (printed).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Write a mapping file in Segment's Public API shapes.
    Export {
        #[command(subcommand)]
        to: ExportTo,
    },
    /// Print the JSON Schema (draft-07) of mapping files, for editors.
    Schema,
    /// Write a commented starter mapping file (and mapping.schema.json next to it).
    Init {
        /// Where to write it (never replaced).
        #[arg(default_value = "mapping.yaml")]
        file: PathBuf,
        /// Audience membership from Engage (hashed emails, one folder per audience).
        #[arg(long, group = "starter")]
        audiences: bool,
        /// Reverse ETL model rows (upserts and deletes).
        #[arg(long = "reverse-etl", group = "starter")]
        reverse_etl: bool,
        /// Track and identify calls with Segment's default columns (the default).
        #[arg(long, group = "starter")]
        classic: bool,
    },
    /// Print shell completions: s3actions completions bash > /etc/bash_completion.d/s3actions
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff): s3actions man > s3actions.1
    Man,
}

/// `import` sources.
#[derive(Subcommand)]
pub enum ImportFrom {
    /// From Segment's Public API bodies: "Get Destination" and "List Subscriptions from
    /// Destination" (with or without the {"data": ...} wrapper), or read them with --from-api.
    Segment {
        /// The "Get Destination" body (a file, or - for stdin).
        #[arg(
            long,
            required_unless_present = "from_api",
            conflicts_with = "from_api"
        )]
        destination: Option<String>,
        /// The "List Subscriptions from Destination" body (a file, or - for stdin).
        #[arg(
            long,
            required_unless_present = "from_api",
            conflicts_with = "from_api"
        )]
        subscriptions: Option<String>,
        /// Read both from Segment's Public API, with the token in SEGMENT_TOKEN.
        #[arg(long, requires = "destination_id")]
        from_api: bool,
        /// The destination's id (with --from-api).
        #[arg(long, value_name = "ID")]
        destination_id: Option<String>,
        /// The Public API's address (with --from-api).
        #[arg(long, value_name = "URL", default_value = s3actions::migrate::api::DEFAULT_API_URL)]
        api_url: String,
    },
}

/// `export` targets.
#[derive(Subcommand)]
pub enum ExportTo {
    /// As the bodies of Segment's "Get Destination" and "List Subscriptions from
    /// Destination" (what `import segment` reads).
    Segment {
        /// The mapping file (YAML).
        mapping: PathBuf,
        /// Where the destination body goes (- for stdout).
        #[arg(long)]
        destination: String,
        /// Where the subscriptions body goes (- for stdout).
        #[arg(long)]
        subscriptions: String,
    },
}
