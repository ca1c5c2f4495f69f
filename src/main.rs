//! The `s3actions` command line: parses arguments, dispatches each command to [`run`],
//! prints errors and maps them to exit codes ([`exit`]).

mod cli;
mod exit;
mod report;
mod run;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use cli::{Cli, Command, ExportTo};
use s3actions::commands::{self, RetlOptions};
use s3actions::init::Starter;
use s3actions::source::http::Limits;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let _ = commands::raise_open_file_limit();
    let json = matches!(&cli.command, Command::Replay { run, .. } | Command::Serve { run, .. } if run.json);
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = exit::message(&e);
            // A run that failed after it started has printed its JSON already (the message
            // is then empty); one refused before it started prints it here.
            if json && !msg.is_empty() {
                report::print_failure(&msg, None);
            }
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(exit::exit_code_of(&e))
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
            let progress = !quiet && !run.json && std::io::stderr().is_terminal();
            run::replay(&mapping, &inputs, (since, until), progress, run)
        }
        Command::Serve {
            mapping,
            listen,
            write_key_env,
            durability,
            spool,
            header_timeout,
            max_connections,
            max_event_bytes,
            max_request_bytes,
            tls_cert,
            tls_key,
            run,
        } => {
            let args = run::ServeArgs {
                listen,
                write_key_env,
                durability,
                spool,
                header_timeout,
                max_connections,
                limits: Limits {
                    event_bytes: max_event_bytes as usize,
                    request_bytes: max_request_bytes as usize,
                },
                tls: tls_cert.zip(tls_key),
            };
            run::serve(&mapping, args, run)
        }
        Command::Retl {
            mapping,
            state_dir,
            reset,
            run,
        } => run::retl(&mapping, RetlOptions { state_dir, reset }, run),
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
            let kafka = commands::ConsumeOptions {
                brokers,
                topics,
                group,
                overrides: kafka_settings,
                stop_at_end,
                metrics_listen,
            };
            run::consume(&mapping, kafka, run)
        }
        Command::Validate { mapping } => run::validate(&mapping),
        Command::Eval {
            expr,
            expr_inline,
            event,
        } => run::eval(expr, expr_inline, &event),
        Command::Match { trigger, event } => run::matches(&trigger, &event),
        Command::Preview {
            mapping,
            event,
            json,
        } => run::preview(&mapping, &event, json),
        Command::Check { mapping } => run::check(&mapping),
        Command::Flush { mapping, outbox } => run::flush(&mapping, outbox),
        Command::Import { from } => run::import(from),
        Command::Export {
            to:
                ExportTo::Segment {
                    mapping,
                    destination,
                    subscriptions,
                },
        } => run::export(&mapping, &destination, &subscriptions),
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
            run::init(&file, kind)
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
