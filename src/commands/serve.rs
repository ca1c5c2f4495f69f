//! `s3actions serve`: the HTTP front end, its intake (the spool, or memory with
//! `--durability none`) and the pipeline behind it, put together.
//!
//! The binary only prints what [`ServeEvents`] reports; every decision (which intake,
//! where the spool lives, what a restart recovers) is made here, so that tests and other
//! front ends get the same server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{CommandError, Destination, Replayed, run_into};
use crate::mapping::{Config, Secret};
use crate::pipeline::{FailureHook, RunOptions};
use crate::sink::Durability;
use crate::source::http::{self, Access, HttpInput, ServeOptions, TlsFiles};
use crate::source::intake::MemoryIntake;
use crate::source::{Input, Inputs, spool};

/// How `serve` keeps what it acknowledges (`--durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Events are fsynced in the spool before `200` (the default).
    Fsync,
    /// Events are queued in memory: a crash loses what was not yet written.
    Memory,
}

/// What `serve` is asked to do, as the command line gives it.
#[derive(Clone, Debug)]
pub struct ServeSetup {
    /// `--listen`: the address to bind (`:0` picks a free port).
    pub listen: String,
    /// `--write-key-env`: the variable holding the write key senders must give.
    pub write_key_env: Option<String>,
    pub keep: Keep,
    /// `--spool`: where the spool lives instead of beside the output.
    pub spool: Option<PathBuf>,
    /// `--header-timeout`.
    pub header_timeout: Duration,
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--max-event-bytes` and `--max-request-bytes`.
    pub limits: http::Limits,
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<TlsFiles>,
}

/// What a running server tells the one who started it (the binary prints these).
pub trait ServeEvents: Send + Sync {
    /// The server listens on `url`; requests are taken from now on.
    fn listening(&self, url: &str);
    /// The spool in `dir` held `events` events of an earlier run: they are written first.
    fn recovered(&self, dir: &Path, events: u64);
    /// Events can no longer be written (`why`): the server stops taking them.
    fn stopping(&self, why: &str);
}

/// Serves until stopped (Ctrl-C, SIGTERM) or until events can no longer be written; then
/// every open batch is written.
pub fn serve(
    config: &Config,
    setup: &ServeSetup,
    opts: RunOptions,
    destination: &Destination,
    rejects: Option<PathBuf>,
    events: Arc<dyn ServeEvents>,
) -> Result<Replayed, CommandError> {
    let access = match &setup.write_key_env {
        None => Access::open(),
        Some(var) => match std::env::var(var) {
            Ok(key) if !key.is_empty() => Access::write_key(&Secret::new(key)),
            _ => return Err(CommandError::WriteKeyEnv { var: var.clone() }),
        },
    };
    let mut server_opts = ServeOptions::new(&setup.listen, access);
    server_opts.header_timeout = setup.header_timeout.max(Duration::from_secs(1));
    server_opts.max_connections = setup.max_connections.max(1);
    server_opts.limits = setup.limits;
    server_opts.tls = setup.tls.clone();
    server_opts.metrics = Some(crate::metrics::install()?);
    let started = |server: &http::HttpServer| {
        events.listening(&server.url());
        let stop = server.stopper();
        let events = events.clone();
        FailureHook(Arc::new(move |why: &str| {
            events.stopping(why);
            stop();
        }))
    };
    if setup.keep == Keep::Memory {
        let (intake, stream) = MemoryIntake::new();
        let server = http::serve(server_opts, intake)?;
        let input = Input::Http(HttpInput::new(server.addr(), stream));
        let mut source = Inputs::new(
            vec![input],
            crate::pipeline::chunk_size(config),
            Durability::Written,
        );
        let opts = RunOptions {
            on_failure: Some(started(&server)),
            ..opts
        };
        let done = run_into(config, &mut source, &opts, destination, rejects, false);
        drop(server);
        return done;
    }
    let dir = setup
        .spool
        .clone()
        .unwrap_or_else(|| super::default_spool(config, destination));
    let options = spool::SpoolOptions {
        max_bytes: config.settings.spool_max_bytes,
        dedupe_window: config.settings.dedupe_window,
        dedupe_max_ids: config.settings.dedupe_max_ids,
    };
    let (intake, mut source) = spool::open(&dir, &options)?;
    if source.recovered() > 0 {
        events.recovered(&dir, source.recovered());
    }
    let server = http::serve(server_opts, intake)?;
    let opts = RunOptions {
        on_failure: Some(started(&server)),
        ..opts
    };
    // Files an earlier run left in the outbox hold acknowledged events: they are uploaded.
    let done = run_into(config, &mut source, &opts, destination, rejects, true);
    drop(server);
    done
}
