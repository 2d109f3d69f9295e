//! `serre`: the command line of Serre's gateway (docs/cli.md). Every command is a call to
//! the gateway's API (docs/gateway.md); nothing is kept here but the sign-in.

mod auth;
mod client;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

use clap::{Args, Parser};

use commands::Command;
use output::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the gateway refused (its error code, message and each field's problem are printed),
     or a local error (a file that cannot be read or written)
  2  usage error (bad flags, no gateway URL)
  3  not signed in, or the sign-in expired or was refused: run `serre login`
  4  the gateway or the OpenID provider could not be reached
  5  `serre runs watch`: the run ended without succeeding
  6  a check failed: `serre grants preview` (creating the grant would be refused by the
     k-anonymity gate), `serre audit verify` (the chain is broken; the first broken entry
     is named)

Environment: SERRE_GATEWAY, SERRE_TOKEN, XDG_CONFIG_HOME (sign-in kept in
$XDG_CONFIG_HOME/serre, else ~/.config/serre).";

#[derive(Parser)]
#[command(
    name = "serre",
    version,
    about = "Serre's command line: sandboxes, datasets, grants, trial runs, usage, the catalogue and the audit log through the gateway",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// The gateway's URL (saved by `serre login --gateway`).
    #[arg(long, env = "SERRE_GATEWAY", global = true)]
    pub gateway: Option<String>,
    /// A bearer token to send instead of the signed-in one (automation).
    #[arg(long, env = "SERRE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Output: aligned tables for people, json or yaml for scripts.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// Give up on a request after this long (e.g. 30s, 2m); uploads and followed logs are
    /// not limited.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: std::time::Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "serre", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serre: cannot start: {e}");
            return ExitCode::from(error::EXIT_REFUSED);
        }
    };
    match runtime.block_on(commands::run(cli.global, cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("serre: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
