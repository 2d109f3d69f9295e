//! The frugality report of a sandbox over a window: the namespace's figures (every pod,
//! runs or not), energy per window by component, each run with its figures, and the
//! sandbox's share of the tenant's monthly budget. JSON, or one HTML page.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::budget::BudgetState;
use crate::runs::figures::RunFigures;
use crate::runs::report::{CarbonNote, energy_chart, esc, num, page_head};

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLine {
    pub run: String,
    pub kind: String,
    pub solution: Option<String>,
    pub phase: String,
    pub requested_by: String,
    pub finished_at: Option<String>,
    /// Present once the run is closed.
    pub kwh: Option<f64>,
    pub gco2e: Option<f64>,
    pub energy_method: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxReport {
    pub sandbox: String,
    pub tenant: String,
    pub namespace: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The namespace's figures over the window (all its pods).
    pub figures: RunFigures,
    pub runs: Vec<RunLine>,
    /// The tenant's budget this month, and this sandbox's kWh share of it.
    pub budget: BudgetState,
    pub budget_share: Option<f64>,
    pub carbon: CarbonNote,
    pub caveats: Vec<String>,
    pub generated_at: DateTime<Utc>,
}

pub fn html(r: &SandboxReport) -> String {
    let f = &r.figures;
    let mut page = page_head(&format!("sandbox {}", r.sandbox));
    let _ = write!(
        page,
        "<p>Tenant {t}, namespace {ns}, from {from} to {to}.</p>",
        t = esc(&r.tenant),
        ns = esc(r.namespace.as_deref().unwrap_or("—")),
        from = r.from.to_rfc3339(),
        to = r.to.to_rfc3339(),
    );
    let _ = write!(
        page,
        "<ul><li>{} kWh at the meter (method: {}), PUE {} ({})</li><li>{} gCO2e at {} g/kWh ({}, {}, {})</li>",
        num(f.kwh),
        esc(&f.energy_method),
        num(r.carbon.pue),
        esc(&r.carbon.pue_source),
        num(f.gco2e),
        num(r.carbon.g_per_kwh),
        esc(&r.carbon.intensity_source),
        r.carbon.intensity_year,
        esc(&r.carbon.intensity_scope)
    );
    match (r.budget.budget_kwh, r.budget_share) {
        (Some(b), Some(share)) => {
            let _ = write!(
                page,
                "<li>This month: {:.1} % of the tenant's {} kWh budget (tenant at {:.1} %)</li>",
                share * 100.0,
                num(b),
                r.budget.share.unwrap_or(0.0) * 100.0
            );
        }
        _ => page.push_str("<li>The tenant has no energy budget.</li>"),
    }
    for (label, waste) in [("CPU", f.cpu_waste), ("Memory", f.memory_waste)] {
        let _ = match waste {
            Some(w) => write!(
                page,
                "<li>{label} requested but not used: {:.0} %</li>",
                w * 100.0
            ),
            None => write!(
                page,
                "<li>{label} requested but not used: not measured</li>"
            ),
        };
    }
    page.push_str("</ul><h2>Energy over time, by component</h2>");
    page.push_str(&energy_chart(f));
    page.push_str("<h2>Runs</h2><table><tr><th>Run</th><th>Kind</th><th>Solution</th><th>Phase</th><th>By</th><th>kWh</th><th>gCO2e</th><th>Method</th></tr>");
    for run in &r.runs {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&run.run),
            esc(&run.kind),
            esc(run.solution.as_deref().unwrap_or("—")),
            esc(&run.phase),
            esc(&run.requested_by),
            run.kwh.map_or_else(|| "pending".into(), num),
            run.gco2e.map_or_else(|| "pending".into(), num),
            esc(run.energy_method.as_deref().unwrap_or("—")),
        );
    }
    page.push_str("</table><h2>Caveats</h2><ul>");
    for c in &r.caveats {
        let _ = write!(page, "<li>{}</li>", esc(c));
    }
    let _ = write!(
        page,
        "</ul><p class=\"note\">Generated {} by Serre.</p></body></html>",
        r.generated_at.to_rfc3339()
    );
    page
}
