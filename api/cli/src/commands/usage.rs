//! `serre usage TENANT`: `/v1/tenants/{tenant}/usage` (docs/energy.md).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::Ctx;
use crate::output::{self, Table, field, pairs, text};

#[derive(Args)]
pub struct Usage {
    tenant: String,
    /// Window start, RFC 3339 (default: the start of this month, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Window end, RFC 3339, exclusive (default: the start of next month).
    #[arg(long)]
    to: Option<String>,
}

fn human(v: &Value) -> String {
    let mut out = pairs(&[
        ("tenant", field(v, "/tenant")),
        ("from", field(v, "/from")),
        ("to", field(v, "/to")),
        ("budget (kWh)", field(v, "/budget/budgetKwh")),
        ("used this month (kWh)", field(v, "/budget/usedKwh")),
        ("budget level", field(v, "/budget/level")),
        ("methods", field(v, "/methods")),
    ]);
    if let Some(totals) = v["totals"].as_object() {
        let mut t = Table::new(&["TOTAL", "VALUE", "UNIT"]);
        for (k, pair) in totals {
            t.row(vec![k.clone(), text(&pair[0]), text(&pair[1])]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if let Some(rows) = v["bySandbox"].as_array().filter(|r| !r.is_empty()) {
        let mut t = Table::new(&["SANDBOX", "NAMESPACE", "KWH", "BUDGET SHARE"]);
        for r in rows {
            t.row(vec![
                field(r, "/sandbox"),
                field(r, "/namespace"),
                field(r, "/kwh"),
                field(r, "/budgetShare"),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

impl Usage {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let mut q = Vec::new();
        if let Some(f) = self.from {
            q.push(("from", f));
        }
        if let Some(t) = self.to {
            q.push(("to", t));
        }
        let v = ctx
            .client()
            .await?
            .get(&["tenants", &self.tenant, "usage"], &q)
            .await?;
        output::emit(ctx.global.output, &v, human);
        Ok(ExitCode::SUCCESS)
    }
}
