//! « Consommation »: a tenant's energy at the meter and its energy budget, charted on the
//! server (SVG, `charts.rs`) per month, per sandbox and per method (measured or
//! modelled), each chart followed by a table of its numbers. The figures are the API's
//! own `GET /v1/tenants/{tenant}/usage` (`usage.read`: the tenant's members), once per
//! month shown.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Deserialize;

use super::WebState;
use super::charts::{self, Bar};
use super::lang::{tr, trf};
use super::pages::{Layout, Signed, api_problem, page};
use super::runs::method;
use crate::http::usage::{TenantUsage, UsageParams, summary};
use crate::usage::budget::BudgetLevel;

/// Months the monthly chart shows, the current one included.
const MONTHS: u32 = 6;

/// A month's abbreviated name (0: January) in the request's language.
fn month_name(i: u32) -> &'static str {
    match i {
        0 => tr("janv."),
        1 => tr("févr."),
        2 => tr("mars"),
        3 => tr("avr."),
        4 => tr("mai"),
        5 => tr("juin"),
        6 => tr("juil."),
        7 => tr("août"),
        8 => tr("sept."),
        9 => tr("oct."),
        10 => tr("nov."),
        _ => tr("déc."),
    }
}

fn kwh(v: f64) -> String {
    format!("{} kWh", super::french::decimal(v, 3))
}

/// The first instant of the month `back` months before `now`'s, and of the next one.
fn month_bounds(now: DateTime<Utc>, back: u32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let index = now.year() * 12 + now.month0() as i32 - back as i32;
    let start = |i: i32| {
        Utc.with_ymd_and_hms(i.div_euclid(12), i.rem_euclid(12) as u32 + 1, 1, 0, 0, 0)
            .single()
    };
    Some((start(index)?, start(index + 1)?))
}

fn month_label(t: DateTime<Utc>) -> String {
    format!("{} {}", month_name(t.month0()), t.year())
}

/// One chart and the rows of its table.
pub struct Chart {
    pub svg: String,
    pub caption: String,
    pub rows: Vec<(String, String)>,
}

fn chart(id: &str, title: &str, description: &str, data: Vec<Bar>) -> Chart {
    let svg = charts::bars(id, title, description, &data, kwh).unwrap_or_else(|e| {
        tracing::warn!(error = %e, chart = id, "console chart not drawn");
        String::new()
    });
    Chart {
        svg,
        caption: title.to_owned(),
        rows: data
            .iter()
            .map(|b| (b.label.clone(), kwh(b.value)))
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    layout: Layout,
    tenants: Vec<(String, String)>,
    tenant: String,
    used: String,
    budget: Option<String>,
    share: Option<String>,
    level: String,
    charts: Vec<Chart>,
}

#[derive(Deserialize)]
pub struct UsageQuery {
    collectivite: Option<String>,
}

async fn usage_of(
    app: &WebState,
    signed: &Signed,
    tenant: &str,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<TenantUsage, crate::error::ApiError> {
    let params = UsageParams {
        from: window.map(|(f, _)| f.to_rfc3339()),
        to: window.map(|(_, t)| t.to_rfc3339()),
        format: None,
    };
    let ok: Result<Query<UsageParams>, QueryRejection> = Ok(Query(params));
    summary(
        State(app.app.clone()),
        signed.ctx(),
        Path(tenant.to_owned()),
        ok,
    )
    .await
    .map(|j| j.0)
}

/// `GET /console/consommation[?collectivite=<tenant>]`: the tenant's usage and budget.
pub async fn show(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<UsageQuery>,
) -> Response {
    let tenants: Vec<(String, String)> = signed
        .ctx
        .caller
        .roles
        .member_of
        .iter()
        .map(|t| {
            let label = app
                .tenants
                .get(t)
                .map_or_else(|| t.clone(), |x| x.spec.display_name.clone());
            (t.clone(), label)
        })
        .collect();
    let tenant = q
        .collectivite
        .or_else(|| tenants.first().map(|(t, _)| t.clone()))
        .unwrap_or_default();
    // The current month first: it says whether the person may read this tenant at all.
    let current = match usage_of(&app, &signed, &tenant, None).await {
        Ok(u) => u,
        Err(e) => return api_problem(e),
    };
    let now = Utc::now();
    let mut monthly = Vec::new();
    for back in (0..MONTHS).rev() {
        let Some((from, to)) = month_bounds(now, back) else {
            continue;
        };
        let u = if back == 0 {
            current.totals.get("meter_energy").map_or(0.0, |t| t.0)
        } else {
            match usage_of(&app, &signed, &tenant, Some((from, to))).await {
                Ok(u) => u.totals.get("meter_energy").map_or(0.0, |t| t.0),
                Err(e) => return api_problem(e),
            }
        };
        monthly.push(Bar {
            label: month_label(from),
            value: u,
        });
    }
    let per_sandbox = current
        .by_sandbox
        .iter()
        .map(|s| Bar {
            label: s.sandbox.clone().unwrap_or_else(|| s.namespace.clone()),
            value: s.kwh,
        })
        .collect();
    let per_method = current
        .by_method
        .iter()
        .map(|(m, v)| Bar {
            label: trf("énergie {}", &[&method(m)]),
            value: *v,
        })
        .collect();
    let b = &current.budget;
    let level = match b.level {
        BudgetLevel::Unlimited => tr("pas de budget fixé"),
        BudgetLevel::Ok => tr("dans le budget"),
        BudgetLevel::Warning => tr("80 % du budget atteint"),
        BudgetLevel::Exhausted => tr("budget épuisé : les nouvelles exécutions sont refusées"),
    }
    .to_owned();
    page(
        StatusCode::OK,
        &UsagePage {
            layout: signed.layout(tr("Consommation et budget énergétique"), "usage"),
            tenants,
            tenant,
            used: kwh(b.used_kwh),
            budget: b.budget_kwh.map(kwh),
            share: b
                .share
                .map(|s| format!("{} %", super::french::decimal(s * 100.0, 0))),
            level,
            charts: vec![
                chart(
                    "par-mois",
                    tr("Énergie au compteur par mois"),
                    tr(
                        "Énergie consommée par les bacs à sable de la collectivité, par mois, sur six mois",
                    ),
                    monthly,
                ),
                chart(
                    "par-bac",
                    tr("Énergie du mois par bac à sable"),
                    tr("Énergie consommée ce mois-ci, bac à sable par bac à sable"),
                    per_sandbox,
                ),
                chart(
                    "par-methode",
                    tr("Énergie du mois selon la méthode"),
                    tr("Part de l'énergie de ce mois mesurée et part modélisée (estimée)"),
                    per_method,
                ),
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_go_back_across_years() {
        let now = Utc
            .with_ymd_and_hms(2026, 2, 15, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let (from, to) = month_bounds(now, 2).unwrap_or_default();
        assert_eq!(from.to_rfc3339(), "2025-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(month_label(from), "déc. 2025");
        let (from, to) = month_bounds(now, 0).unwrap_or_default();
        assert_eq!((from.month(), to.month()), (2, 3));
    }
}
