//! The `netherbrain` binary: the agent server, database migrations, a chat
//! client, preset and API key management, and configuration display.
//!
//! The binary only parses arguments, loads configuration, wires the library
//! crates together and prints; the logic lives in `netherbrain-core`,
//! `netherbrain-store` and `netherbrain-http`.

mod agent;
mod chat;
mod cli;
mod config;
mod db;
mod first_run;
mod gateway;
mod keys;
mod local;
mod logging;
mod presets;
mod reload;
mod tasks;
mod terminal;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::Env;

/// Exit status for runtime errors.
const EXIT_ERROR: u8 = 1;
/// Exit status for bad usage (as clap uses).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // `.env` is loaded before any thread exists: it may set variables.
    let env = match Env::load() {
        Ok(env) => env,
        Err(e) => return report(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(run(cli, env));
    // Do not wait for blocked stdin readers and the like.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints clap's message as one line (help and version as they are).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments")
                .trim_end();
            eprintln!("{first} (see --help)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Prints an error as one `error: …` line.
fn report(e: &anyhow::Error) -> ExitCode {
    let _ = std::io::stdout().flush();
    let message = format!("{e:#}").replace('\n', " ");
    eprintln!("error: {message}");
    ExitCode::from(EXIT_ERROR)
}

async fn run(cli: Cli, env: Env) -> anyhow::Result<ExitCode> {
    let overrides = cli.overrides();
    let settings = config::load(&overrides, &env)?;
    let is_server = match &cli.command {
        Command::Agent(_) => true,
        Command::Gateway(args) => args.command.is_none(),
        _ => false,
    };
    logging::init(&settings, &env, is_server)?;
    match cli.command {
        Command::Agent(_) => agent::run(settings, move || config::load(&overrides, &env))
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Db { command } => db::run(&settings, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Chat(args) => chat::run(&settings, args).await,
        Command::Presets { command } => presets::run(&settings, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Keys { command } => keys::run(&settings, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Tasks { command } => tasks::run(&settings, command).await,
        Command::Config {
            command: ConfigCommand::Show(_),
        } => {
            print!("{}", config::render(&settings));
            Ok(ExitCode::SUCCESS)
        }
        Command::Gateway(args) => gateway::run(&settings, args)
            .await
            .map(|()| ExitCode::SUCCESS),
    }
}
