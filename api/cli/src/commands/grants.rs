//! `serre grants …`: `/v1/grants` (docs/datasets.md, *Grants*).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{Ctx, after, duration};
use crate::error::Failure;
use crate::output::{self, Table, field, pairs};

#[derive(Subcommand)]
pub enum Grants {
    /// The grants you may see (those of your tenants, those made to you).
    #[command(after_help = "Example:\n  serre grants list")]
    List,
    /// Grant a dataset version's view to a sandbox or a vendor (tenant admins).
    #[command(
        after_help = "Example:\n  serre grants create --dataset 6f1c… --vendor acme --columns id,age,postcode,income \\\n    --pseudonymise id --generalise age=bin:20 --generalise postcode=prefix:2 \\\n    --quasi-identifiers age,postcode --k 5 --suppress --row-filter 'age >= 18' \\\n    --purpose 'Trial of a mobility model' --expires-in 30d"
    )]
    Create(Box<Create>),
    /// One grant: its view, its k-anonymity, its state.
    #[command(after_help = "Example:\n  serre grants show 0b7e…")]
    Show { id: String },
    /// Revoke a grant; reads stop at once.
    #[command(after_help = "Example:\n  serre grants revoke 0b7e…")]
    Revoke { id: String },
}

#[derive(Args, Debug)]
pub struct Create {
    /// The dataset's id.
    #[arg(long)]
    dataset: String,
    /// Its version (default: the latest).
    #[arg(long)]
    version: Option<i64>,
    /// Grant to this sandbox (`<tenant>--<name>`): its tenant's members and its vendors read.
    #[arg(long, conflicts_with = "vendor", required_unless_present = "vendor")]
    sandbox: Option<String>,
    /// Grant to this vendor principal (the `sub` of its tokens).
    #[arg(long)]
    vendor: Option<String>,
    /// Columns of the view, in order (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    columns: Vec<String>,
    /// Drop this column from the view (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Replace this column by a keyed pseudonym (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pseudonymise: Vec<String>,
    /// COLUMN=bin:WIDTH, COLUMN=truncate:day|month|year or COLUMN=prefix:N (repeatable).
    #[arg(long)]
    generalise: Vec<String>,
    /// Columns that together could identify a person (comma-separated).
    #[arg(long, value_delimiter = ',')]
    quasi_identifiers: Vec<String>,
    /// Least number of rows sharing the same quasi-identifiers.
    #[arg(long)]
    k: Option<u32>,
    /// Remove rows of classes smaller than k instead of refusing the view.
    #[arg(long)]
    suppress: bool,
    /// A whole recipe as JSON (a file path, or the JSON itself); the flags above add to it.
    #[arg(long)]
    recipe: Option<String>,
    /// Rows kept: an SQL predicate, e.g. "age >= 18 AND commune = 'Montreuil'".
    #[arg(long)]
    row_filter: Option<String>,
    /// What the data is for.
    #[arg(long)]
    purpose: String,
    /// Lifetime from now, e.g. 30d.
    #[arg(long, value_parser = duration, conflicts_with = "expires_at", required_unless_present = "expires_at")]
    expires_in: Option<Duration>,
    /// Expiry as RFC 3339.
    #[arg(long)]
    expires_at: Option<String>,
}

/// `bin:20`, `truncate:month`, `prefix:2` as the recipe's generalisation.
fn generalisation(spec: &str) -> Result<Value> {
    let bad = || {
        Failure::Usage(format!(
            "--generalise {spec:?}: say COLUMN=bin:WIDTH, COLUMN=truncate:day|month|year or COLUMN=prefix:N"
        ))
    };
    let (how, arg) = spec.split_once(':').ok_or_else(bad)?;
    Ok(match how {
        "bin" => json!({ "bin": arg.parse::<f64>().map_err(|_| bad())? }),
        "truncate" if ["day", "month", "year"].contains(&arg) => json!({ "truncate": arg }),
        "prefix" => json!({ "prefix": arg.parse::<u32>().map_err(|_| bad())? }),
        _ => return Err(bad().into()),
    })
}

impl Create {
    /// The body of `POST /v1/grants`.
    pub fn body(&self) -> Result<Value> {
        let mut recipe: Map<String, Value> = match &self.recipe {
            None => Map::new(),
            Some(r) => {
                let text = if r.trim_start().starts_with('{') {
                    r.clone()
                } else {
                    std::fs::read_to_string(r).with_context(|| format!("read the recipe {r}"))?
                };
                serde_json::from_str(&text)
                    .map_err(|e| Failure::Usage(format!("--recipe: not a JSON object: {e}")))?
            }
        };
        let columns = recipe
            .entry("columns")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| Failure::Usage("--recipe: `columns` must be an object".into()))?;
        for c in &self.drop {
            columns.insert(c.clone(), json!("drop"));
        }
        for c in &self.pseudonymise {
            columns.insert(c.clone(), json!("pseudonymise"));
        }
        for g in &self.generalise {
            let (col, spec) = g
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--generalise {g:?}: say COLUMN=HOW:ARG")))?;
            columns.insert(
                col.to_owned(),
                json!({ "generalise": generalisation(spec)? }),
            );
        }
        if !self.quasi_identifiers.is_empty() {
            recipe.insert("quasiIdentifiers".into(), json!(self.quasi_identifiers));
        }
        if let Some(k) = self.k {
            recipe.insert("k".into(), json!(k));
        }
        if self.suppress {
            recipe.insert("suppress".into(), json!(true));
        }
        let grantee = match (&self.sandbox, &self.vendor) {
            (Some(s), _) => json!({ "sandbox": s }),
            (None, Some(v)) => json!({ "vendor": v }),
            (None, None) => return Err(Failure::Usage("say --sandbox or --vendor".into()).into()),
        };
        let expires_at = match (&self.expires_at, self.expires_in) {
            (Some(at), _) => at.clone(),
            (None, Some(d)) => after(d)?,
            (None, None) => {
                return Err(Failure::Usage("say --expires-in or --expires-at".into()).into());
            }
        };
        let mut body = json!({
            "datasetId": self.dataset, "grantee": grantee, "columns": self.columns,
            "recipe": recipe, "purpose": self.purpose, "expiresAt": expires_at,
        });
        if let Some(v) = self.version {
            body["version"] = json!(v);
        }
        if let Some(f) = &self.row_filter {
            body["rowFilter"] = json!(f);
        }
        Ok(body)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: Create,
    }

    #[test]
    fn flags_build_the_documented_recipe() {
        let t = T::parse_from([
            "t",
            "--dataset",
            "d1",
            "--vendor",
            "acme",
            "--columns",
            "id,age,postcode,income",
            "--pseudonymise",
            "id",
            "--generalise",
            "age=bin:20",
            "--generalise",
            "postcode=prefix:2",
            "--quasi-identifiers",
            "age,postcode",
            "--k",
            "5",
            "--suppress",
            "--row-filter",
            "age >= 18",
            "--purpose",
            "Trial",
            "--expires-at",
            "2027-01-31T00:00:00Z",
        ]);
        assert_eq!(
            t.c.body().unwrap(),
            json!({
                "datasetId": "d1", "grantee": {"vendor": "acme"},
                "columns": ["id", "age", "postcode", "income"],
                "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}},
                                       "postcode": {"generalise": {"prefix": 2}}},
                           "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true},
                "rowFilter": "age >= 18", "purpose": "Trial", "expiresAt": "2027-01-31T00:00:00Z"
            })
        );
    }

    #[test]
    fn a_recipe_file_is_merged_and_bad_generalisations_are_usage_errors() {
        let t = T::parse_from([
            "t",
            "--dataset",
            "d1",
            "--sandbox",
            "est-ensemble--traffic",
            "--columns",
            "a",
            "--recipe",
            r#"{"columns": {"b": "drop"}, "k": 3}"#,
            "--drop",
            "c",
            "--purpose",
            "p",
            "--expires-in",
            "1d",
        ]);
        let body = t.c.body().unwrap();
        assert_eq!(
            body["recipe"],
            json!({"columns": {"b": "drop", "c": "drop"}, "k": 3})
        );
        assert_eq!(body["grantee"], json!({"sandbox": "est-ensemble--traffic"}));
        for bad in ["age=bin:x", "age=round:2", "age"] {
            let t = T::parse_from([
                "t",
                "--dataset",
                "d",
                "--vendor",
                "v",
                "--columns",
                "a",
                "--generalise",
                bad,
                "--purpose",
                "p",
                "--expires-in",
                "1d",
            ]);
            let e = t.c.body().unwrap_err();
            assert_eq!(
                crate::error::exit_code(&e),
                crate::error::EXIT_USAGE,
                "{bad}"
            );
        }
    }
}
