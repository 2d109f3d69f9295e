//! `serre grants …`: `/v1/grants` (docs/datasets.md, *Grants*).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;

use super::Ctx;
use super::grant_request::Create;
use crate::error::EXIT_CHECK_FAILED;
use crate::output::{self, Table, field, pairs};

#[derive(Subcommand)]
pub enum Grants {
    /// The grants you may see (those of your tenants, those made to you).
    #[command(after_help = "Example:\n  serre grants list")]
    List,
    /// Grant a dataset version's view to a sandbox or a vendor (tenant admins).
    #[command(
        after_help = "Examples:\n  serre grants create --dataset 6f1c… --vendor acme --columns id,age,postcode,income \\\n    --pseudonymise id --generalise age=bin:20 --generalise postcode=prefix:2 \\\n    --quasi-identifiers age,postcode --k 5 --suppress --row-filter 'age >= 18' \\\n    --purpose 'Trial of a mobility model' --expires-in 30d\n  serre grants create --from-file grant.yaml --expires-in 30d\n\ngrant.yaml holds the API body's fields:\n  datasetId: 6f1c…\n  grantee: {vendor: acme}\n  columns: [id, age, postcode]\n  recipe: {columns: {id: pseudonymise}, quasiIdentifiers: [age, postcode], k: 5}\n  purpose: Trial of a mobility model\n  expiresAt: 2027-01-31T00:00:00Z"
    )]
    Create(Box<Create>),
    /// The k-anonymity a grant would have, without creating it: smallest class, rows
    /// suppressed, and why creating it would be refused (exit 6 then).
    #[command(
        after_help = "Example:\n  serre grants preview --dataset 6f1c… --vendor acme --columns age,postcode \\\n    --generalise age=bin:20 --quasi-identifiers age,postcode --k 5 --suppress \\\n    --purpose 'Trial' --expires-in 30d\n  serre grants preview --from-file grant.yaml -o json"
    )]
    Preview(Box<Create>),
    /// One grant: its view, its k-anonymity, its state.
    #[command(after_help = "Example:\n  serre grants show 0b7e…")]
    Show { id: String },
    /// Write the grant's Delta Sharing profile (endpoint and a bearer token), owner-only.
    #[command(
        after_help = "Example:\n  serre grants profile 0b7e… --out ~/acme.share\n  python -c 'import delta_sharing; print(delta_sharing.SharingClient(\"/home/me/acme.share\").list_all_tables())'"
    )]
    Profile {
        id: String,
        /// Where to write it (default: ./<id>.share); created with mode 0600.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a grant; reads stop at once.
    #[command(after_help = "Example:\n  serre grants revoke 0b7e…")]
    Revoke { id: String },
}

fn list_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "ID", "TENANT", "DATASET", "VERSION", "GRANTEE", "STATE", "ROWS", "EXPIRES",
    ]);
    for g in v.as_array().into_iter().flatten() {
        t.row(vec![
            field(g, "/id"),
            field(g, "/tenant"),
            field(g, "/datasetId"),
            field(g, "/version"),
            format!("{}:{}", field(g, "/granteeKind"), field(g, "/grantee")),
            field(g, "/state"),
            field(g, "/view/rows"),
            field(g, "/expiresAt"),
        ]);
    }
    t.render()
}

fn detail(g: &Value) -> String {
    pairs(&[
        ("id", field(g, "/id")),
        ("tenant", field(g, "/tenant")),
        (
            "dataset",
            format!("{} v{}", field(g, "/datasetId"), field(g, "/version")),
        ),
        (
            "grantee",
            format!("{} {}", field(g, "/granteeKind"), field(g, "/grantee")),
        ),
        ("columns", field(g, "/columns")),
        ("recipe", g["recipe"].to_string()),
        ("row filter", field(g, "/rowFilter")),
        ("purpose", field(g, "/purpose")),
        ("state", field(g, "/state")),
        ("view rows", field(g, "/view/rows")),
        ("view size", field(g, "/view/size")),
        ("k-anonymity", g["kAnonymity"].to_string()),
        ("expires", field(g, "/expiresAt")),
        ("created by", field(g, "/createdBy")),
        ("revoked", field(g, "/revokedAt")),
    ])
}

/// A preview's counts for people.
fn preview(p: &Value) -> String {
    let verdict = match p.get("refusal").and_then(Value::as_str) {
        Some(r) => format!("would be refused: {r}"),
        None => "would be accepted".into(),
    };
    pairs(&[
        ("quasi-identifiers", field(p, "/quasiIdentifiers")),
        ("smallest class", field(p, "/smallestClass")),
        ("classes", field(p, "/classes")),
        ("classes below k", field(p, "/classesBelowK")),
        ("rows suppressed", field(p, "/rowsSuppressed")),
        ("rows in the view", field(p, "/rowsOut")),
        ("smallest class kept", field(p, "/smallestClassOut")),
        ("tenant's minimum k", field(p, "/minK")),
        ("k-anonymity gate", verdict),
    ])
}

impl Grants {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let fmt = ctx.global.output;
        match self {
            Grants::List => {
                let v = ctx.client().await?.get(&["grants"], &[]).await?;
                output::emit(fmt, &v, list_table);
            }
            Grants::Create(c) => {
                let body = c.body()?;
                let v = ctx.client().await?.post(&["grants"], &body).await?;
                output::emit(fmt, &v, detail);
            }
            Grants::Preview(c) => {
                let body = c.body()?;
                let v = ctx
                    .client()
                    .await?
                    .post(&["grants", "preview"], &body)
                    .await?;
                output::emit(fmt, &v, preview);
                if let Some(r) = v.get("refusal").and_then(Value::as_str) {
                    eprintln!("serre: creating this grant would be refused: {r}");
                    return Ok(ExitCode::from(EXIT_CHECK_FAILED));
                }
            }
            Grants::Profile { id, out, force } => {
                let v = ctx
                    .client()
                    .await?
                    .get(&["grants", &id, "profile"], &[])
                    .await?;
                let path = out.unwrap_or_else(|| PathBuf::from(format!("{id}.share")));
                let written = super::profile_file::write(&path, &v, force)?;
                output::emit(fmt, &written, |w| {
                    pairs(&[
                        ("file", field(w, "/file")),
                        ("endpoint", field(w, "/endpoint")),
                        ("expires", field(w, "/expirationTime")),
                    ])
                });
            }
            Grants::Show { id } => {
                let v = ctx.client().await?.get(&["grants", &id], &[]).await?;
                output::emit(fmt, &v, detail);
            }
            Grants::Revoke { id } => {
                let v = ctx.client().await?.delete(&["grants", &id]).await?;
                if v.is_null() {
                    eprintln!("Revoked {id}.");
                } else {
                    output::emit(fmt, &v, detail);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
