//! The command line's arguments (clap): what each subcommand takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    pub command: Command,
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
