//! `custody`: run the ledger server, record evidence, and verify it offline.
//!
//! Every client command talks to a server over HTTP (`--server`, default
//! `http://127.0.0.1:7878`); `verify` never does. Read commands print text for people and, with
//! `--json`, JSON for scripts. Errors are one line on stderr naming the field and the fix, with
//! a non-zero exit.
//!
//! This file only parses, sets up and dispatches. The command line is read in two stages: the
//! plain flags ([`args`]), then the settings they mean, checked once ([`settings`]) and handed
//! to each command. Each command family runs in its own module under [`commands`]; the
//! checking of evidence itself is the `custody-verify` library's.

mod args;
mod commands;
mod objects;
mod output;
mod pins;
mod settings;
mod shared_flags;
mod submit;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::commands::{
    append, audit, demo, drift, erasure, export, govern, integrity, keys, log, model, monitor,
    principals, serve, tenant, verify,
};
use crate::settings::Settings;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("error: {}", output::usage_error(&e));
            std::process::exit(2);
        }
    };
    let serving = cli.command.serves();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    custody_client::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let settings = Settings::new(&cli.global);
    match runtime.block_on(dispatch(cli.command, &settings)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::exit(1);
        }
    }
}

/// Runs one command; returns its exit code.
async fn dispatch(command: Command, settings: &Settings) -> anyhow::Result<i32> {
    match command {
        Command::Serve(a) => {
            serve::run(
                a.data_dir,
                a.listen,
                a.server_name,
                a.database_url,
                a.key_dir,
                a.bootstrap_token_file,
                a.limits,
            )
            .await?;
            Ok(0)
        }
        Command::Demo(a) => {
            demo::run(a.data_dir, a.listen, a.server_name).await?;
            Ok(0)
        }
        Command::Tenant(c) => tenant::run(c, settings).await,
        Command::Whoami => principals::whoami(settings).await,
        Command::Principal(c) => principals::principal(c, settings).await,
        Command::Token(c) => principals::token(c, settings).await,
        Command::Witness(a) => integrity::witness(a, settings).await,
        Command::Monitor(a) => monitor::run(a, settings).await,
        Command::Drift(a) => drift::run(a, settings).await,
        Command::RotateKey(a) => log::rotate_key(a, settings).await,
        Command::Retention(c) => erasure::retention(c, settings).await,
        Command::Erase(a) => erasure::erase(a, settings).await,
        Command::Logs(a) => log::logs(a, settings).await,
        Command::Append(a) => append::run(a, settings).await,
        Command::Get(a) => log::get(a, settings).await,
        Command::List(a) => log::list(a, settings).await,
        Command::Checkpoint(a) => log::checkpoint(a, settings).await,
        Command::Vkey(a) => log::vkey(a, settings).await,
        Command::Proof(c) => log::proof(c, settings).await,
        Command::Export(a) => export::run(a, settings).await,
        Command::Verify(a) => verify::run(a, settings).await,
        Command::Model(c) => model::run(c, settings).await,
        Command::Key(c) => keys::run(c, settings).await,
        Command::Approve(a) => govern::approve(a, settings).await,
        Command::Promote(a) => govern::promote(a, settings).await,
        Command::Rollback(a) => govern::rollback(a, settings).await,
        Command::Trace(a) => audit::trace(a, settings).await,
        Command::Served(a) => audit::served(a, settings).await,
        Command::History(a) => audit::history(a, settings).await,
        Command::Admit(a) => audit::admit(a, settings).await,
    }
}
