//! `serre audit …`: the hash-chained audit log, `/v1/audit` and `/v1/audit/verify`
//! (docs/gateway.md, *Audit log*).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use super::download::save;
use crate::error::EXIT_CHECK_FAILED;
use crate::output::{self, field, pairs};

#[derive(Subcommand)]
pub enum Audit {
    /// Every entry as JSON lines, exactly as stored (verifiable offline with
    /// `serre-api audit verify --file`): a tenant's (its admins) or all (Métropole admins).
    #[command(
        after_help = "Examples:\n  serre audit export --tenant est-ensemble --out audit-est-ensemble.jsonl\n  serre audit export --after 1200 | jq -r .action"
    )]
    Export {
        /// Only this tenant's entries (required for tenant admins).
        #[arg(long)]
        tenant: Option<String>,
        /// Only entries after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        /// Write to this file (created owner-only, 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Recompute the hash chain in the gateway's database: the whole log against the
    /// latest signed checkpoint (Métropole admins), or a tenant's entries (its admins).
    /// Exit 6 when the chain is broken, naming the first broken entry.
    #[command(
        after_help = "Examples:\n  serre audit verify\n  serre audit verify --tenant est-ensemble -o json"
    )]
    Verify {
        /// Verify this tenant's entries only (required for tenant admins).
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn verdict(v: &Value) -> String {
    let verdict = match v.get("broken").filter(|b| !b.is_null()) {
        Some(b) => format!(
            "BROKEN at entry {}: {}",
            field(b, "/seq"),
            field(b, "/reason")
        ),
        None if v["intact"] == Value::Bool(true) => "intact".into(),
        None => "NOT intact".into(),
    };
    let checkpoint = match v.get("checkpoint").filter(|c| !c.is_null()) {
        None => "- (a tenant's entries: the whole chain is verified by Métropole admins)".into(),
        Some(c) => match c["state"].as_str() {
            Some("verified") => format!(
                "entry {} of {}: signature valid, the chain reaches it",
                field(c, "/seq"),
                field(c, "/time")
            ),
            Some("none") => {
                "none published yet: the chain is checked alone (a full rewrite would not show)"
                    .into()
            }
            Some("invalid") => format!("INVALID signature: {}", field(c, "/error")),
            _ => format!(
                "unreadable ({}): the chain is checked alone",
                field(c, "/error")
            ),
        },
    };
    pairs(&[
        ("chain", verdict),
        (
            "scope",
            v["tenant"].as_str().unwrap_or("the whole log").to_owned(),
        ),
        ("entries verified", field(v, "/entries")),
        ("last entry", field(v, "/headSeq")),
        ("its hash", field(v, "/headHash")),
        ("signed checkpoint", checkpoint),
    ])
}

impl Audit {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            Audit::Export {
                tenant,
                after,
                out,
                force,
            } => {
                let client = ctx.streaming_client().await?;
                let mut query = vec![("format", "jsonl".to_owned())];
                query.extend(tenant.map(|t| ("tenant", t)));
                query.extend(after.map(|a| ("after", a.to_string())));
                let req = client
                    .request(Method::GET, client.url(&["audit"]))
                    .query(&query);
                let resp = client.send(req).await?;
                save(resp, out.as_deref(), force, 0o600, "the audit log").await?;
            }
            Audit::Verify { tenant } => {
                let query: Vec<(&str, String)> =
                    tenant.into_iter().map(|t| ("tenant", t)).collect();
                let v = ctx
                    .client()
                    .await?
                    .get(&["audit", "verify"], &query)
                    .await?;
                output::emit(ctx.global.output, &v, verdict);
                if v["intact"] != Value::Bool(true) {
                    match v.get("broken").filter(|b| !b.is_null()) {
                        Some(b) => eprintln!(
                            "serre: the audit chain is broken at entry {}: {}",
                            field(b, "/seq"),
                            field(b, "/reason")
                        ),
                        None => eprintln!(
                            "serre: the audit log is not intact: the signed checkpoint {}",
                            field(&v, "/checkpoint/error")
                        ),
                    }
                    return Ok(ExitCode::from(EXIT_CHECK_FAILED));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
