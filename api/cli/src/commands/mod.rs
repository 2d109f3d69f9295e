//! The commands, one file per area; each maps to the gateway's routes (docs/gateway.md).

mod audit;
mod catalogue;
mod datasets;
mod download;
mod grant_request;
mod grants;
mod login;
mod profile_file;
mod runs;
mod sandboxes;
mod usage;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::Global;
use crate::auth::{self, store::Store};
use crate::client::Client;
use crate::error::Failure;

#[derive(Subcommand)]
pub enum Command {
    /// Sign in with the OpenID Connect device flow and remember the gateway.
    #[command(
        after_help = "Example:\n  serre login --issuer https://auth.metropolegrandparis.fr --gateway https://serre.metropolegrandparis.fr"
    )]
    Login(login::Login),
    /// Forget the signed-in tokens.
    #[command(after_help = "Example:\n  serre logout")]
    Logout,
    /// Who the gateway sees: subject, groups, roles.
    #[command(after_help = "Example:\n  serre whoami -o json")]
    Whoami,
    /// Sandboxes: request, list, show, members, delete.
    #[command(subcommand)]
    Sandboxes(sandboxes::Sandboxes),
    /// Datasets: upload CSV or Parquet, list, show.
    #[command(subcommand)]
    Datasets(datasets::Datasets),
    /// Grants of a dataset's anonymised view to a sandbox or a vendor.
    #[command(subcommand)]
    Grants(grants::Grants),
    /// Trial runs in a sandbox: start, follow, logs, results, report.
    #[command(subcommand)]
    Runs(runs::Runs),
    /// A tenant's compute and energy usage this month, and its budget.
    #[command(
        after_help = "Example:\n  serre usage est-ensemble\n  serre usage est-ensemble --from 2026-01-01T00:00:00Z --to 2026-02-01T00:00:00Z -o json"
    )]
    Usage(usage::Usage),
    /// The catalogue of AI solutions: list, show, export (JSON, CSV, DCAT-AP).
    #[command(subcommand)]
    Catalogue(catalogue::Catalogue),
    /// The hash-chained audit log: export as JSON lines, verify the chain.
    #[command(subcommand)]
    Audit(audit::Audit),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  serre completions bash > ~/.local/share/bash-completion/completions/serre\n  serre completions zsh > \"${fpath[1]}/_serre\"\n  serre completions fish > ~/.config/fish/completions/serre.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What a command works with: the flags, the HTTP client, the sign-in store.
pub struct Ctx {
    pub global: Global,
    pub http: reqwest::Client,
    pub store: Store,
}

impl Ctx {
    /// The gateway client: URL from `--gateway`/`SERRE_GATEWAY` or the login's, token from
    /// `--token`/`SERRE_TOKEN` or the sign-in.
    pub async fn client(&self) -> Result<Client> {
        let gateway = match &self.global.gateway {
            Some(g) if !g.trim().is_empty() => g.clone(),
            _ => self.store.settings()?.gateway.ok_or_else(|| {
                Failure::Usage(
                    "no gateway: pass --gateway URL or set SERRE_GATEWAY (or `serre login --gateway URL`)"
                        .into(),
                )
            })?,
        };
        let token =
            auth::access_token(self.global.token.as_deref(), &self.store, &self.http).await?;
        Client::new(self.http.clone(), &gateway, token)
    }

    /// A client without the overall request timeout, for uploads and followed logs.
    pub async fn streaming_client(&self) -> Result<Client> {
        let ctx = Ctx {
            global: self.global.clone(),
            http: http_client(None)?,
            store: self.store.clone(),
        };
        ctx.client().await
    }
}

fn http_client(timeout: Option<std::time::Duration>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("serre/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    Ok(b.build()?)
}

pub async fn run(global: Global, command: Command) -> Result<ExitCode> {
    let ctx = Ctx {
        http: http_client(Some(global.timeout))?,
        store: Store::locate()?,
        global,
    };
    match command {
        Command::Login(l) => l.run(&ctx).await,
        Command::Logout => login::logout(&ctx).await,
        Command::Whoami => login::whoami(&ctx).await,
        Command::Sandboxes(c) => c.run(&ctx).await,
        Command::Datasets(c) => c.run(&ctx).await,
        Command::Grants(c) => c.run(&ctx).await,
        Command::Runs(c) => c.run(&ctx).await,
        Command::Usage(c) => c.run(&ctx).await,
        Command::Catalogue(c) => c.run(&ctx).await,
        Command::Audit(c) => c.run(&ctx).await,
        // Printed by main, which holds the whole command tree.
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// A duration flag such as `30d` or `15m`, for clap.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30d, 12h or 15m: {e}"))
}

/// `now + d` as RFC 3339 (seconds, UTC).
pub fn after(d: std::time::Duration) -> Result<String> {
    let d = chrono::Duration::from_std(d)
        .map_err(|_| Failure::Usage("the duration is too long".into()))?;
    Ok((chrono::Utc::now() + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
