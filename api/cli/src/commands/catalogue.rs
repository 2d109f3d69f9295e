//! `serre catalogue …`: the catalogue of AI solutions, `/v1/catalogue/*`
//! (docs/catalogue.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use super::download::save;
use crate::output::{self, Table, field, pairs};

#[derive(Subcommand)]
pub enum Catalogue {
    /// The entries you may see: published ones, and your own proposals (vendors) or all
    /// proposals (Métropole admins).
    #[command(
        after_help = "Examples:\n  serre catalogue list\n  serre catalogue list --status proposed -o json"
    )]
    List {
        /// Only entries in this status: proposed, published or rejected.
        #[arg(long)]
        status: Option<String>,
    },
    /// One entry: licence, hosting, AI Act risk class, the six criteria and the measured
    /// trial results.
    #[command(after_help = "Example:\n  serre catalogue show 3d9a…")]
    Show { id: String },
    /// The published catalogue as JSON, CSV or DCAT-AP (JSON-LD), to a file or stdout.
    #[command(
        after_help = "Examples:\n  serre catalogue export --format dcat-ap --out catalogue.jsonld\n  serre catalogue export --format csv > catalogue.csv"
    )]
    Export {
        /// json, csv or dcat-ap (JSON-LD).
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
    /// DCAT-AP as JSON-LD (the gateway's `dcat`).
    #[value(name = "dcat-ap", alias = "dcat")]
    DcatAp,
}

impl ExportFormat {
    fn api(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
            ExportFormat::DcatAp => "dcat",
        }
    }
}

fn list_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "ID", "STATUS", "VENDOR", "NAME", "VERSION", "AI ACT", "HOSTING", "RESULTS",
    ]);
    for s in v.as_array().into_iter().flatten() {
        t.row(vec![
            field(s, "/id"),
            field(s, "/status"),
            field(s, "/vendor"),
            field(s, "/name"),
            field(s, "/version"),
            field(s, "/aiActRiskClass"),
            format!(
                "{} ({})",
                field(s, "/hosting/provider"),
                field(s, "/hosting/dataLocation")
            ),
            s["results"].as_array().map_or(0, Vec::len).to_string(),
        ]);
    }
    t.render()
}

fn criterion(s: &Value, name: &str) -> String {
    let c = &s["criteria"][name];
    let evidence = c["evidence"].as_array().map_or(0, Vec::len);
    format!("{} ({evidence} evidence)", field(c, "/score"))
}

/// The environmental criterion: derived from the measured trial runs.
fn environmental(s: &Value) -> String {
    let c = &s["criteria"]["environmentalImpact"];
    let a = |f: &str| field(&c["assessment"], f);
    format!(
        "{} ({}; {} measured runs, {} kWh, {} gCO2e, {} gCO2e per {})",
        field(c, "/score"),
        a("/basis"),
        a("/runs"),
        a("/totalKwh"),
        a("/totalGco2e"),
        a("/gco2ePerUnit"),
        a("/functionalUnit"),
    )
}

fn detail(s: &Value) -> String {
    let mut out = pairs(&[
        ("id", field(s, "/id")),
        ("status", field(s, "/status")),
        ("vendor", field(s, "/vendor")),
        ("name", field(s, "/name")),
        ("version", field(s, "/version")),
        ("description", field(s, "/description")),
        (
            "licence",
            format!(
                "{} (free: {})",
                field(s, "/licence/spdx"),
                field(s, "/licence/free")
            ),
        ),
        (
            "hosting",
            format!(
                "{} in {}, transfer outside the EU: {}, sovereign: {}",
                field(s, "/hosting/provider"),
                field(s, "/hosting/dataLocation"),
                field(s, "/hosting/extraEuTransfer"),
                field(s, "/hosting/sovereign")
            ),
        ),
        ("AI Act risk class", field(s, "/aiActRiskClass")),
        ("GDPR notes", field(s, "/gdprNotes")),
        (
            "technological added value",
            criterion(s, "technologicalAddedValue"),
        ),
        ("innovation", criterion(s, "innovation")),
        ("fit to needs", criterion(s, "fitToNeeds")),
        ("data sovereignty", criterion(s, "dataSovereignty")),
        ("legal framework", criterion(s, "legalFramework")),
        ("environmental impact", environmental(s)),
        ("proposed by", field(s, "/proposedBy")),
        ("published", field(s, "/publishedAt")),
    ]);
    let results = s["results"].as_array().cloned().unwrap_or_default();
    if !results.is_empty() {
        let mut t = Table::new(&["RUN", "SANDBOX", "PHASE", "KWH", "GCO2E", "DURATION S"]);
        for r in &results {
            t.row(vec![
                field(r, "/runId"),
                field(r, "/sandbox"),
                field(r, "/phase"),
                field(r, "/kwh"),
                field(r, "/gco2e"),
                field(r, "/durationS"),
            ]);
        }
        out.push_str("\nTrial results:\n");
        out.push_str(&t.render());
    }
    out
}

impl Catalogue {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let fmt = ctx.global.output;
        match self {
            Catalogue::List { status } => {
                let query: Vec<(&str, String)> =
                    status.into_iter().map(|s| ("status", s)).collect();
                let v = ctx
                    .client()
                    .await?
                    .get(&["catalogue", "solutions"], &query)
                    .await?;
                output::emit(fmt, &v, list_table);
            }
            Catalogue::Show { id } => {
                let v = ctx
                    .client()
                    .await?
                    .get(&["catalogue", "solutions", &id], &[])
                    .await?;
                output::emit(fmt, &v, detail);
            }
            Catalogue::Export { format, out, force } => {
                let client = ctx.client().await?;
                let req = client
                    .request(Method::GET, client.url(&["catalogue", "export"]))
                    .query(&[("format", format.api())]);
                let resp = client.send(req).await?;
                save(resp, out.as_deref(), force, 0o644, "the catalogue").await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
