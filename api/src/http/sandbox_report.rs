//! `GET /v1/sandboxes/{name}/report`: the sandbox's frugality report (tenant members and
//! Métropole admins: it shows every run of the sandbox, so not vendors).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::sandboxes::load_authorized as load_sandbox;
use super::usage::window_of;
use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::runs::figures::{RunFigures, summarise};
use crate::runs::report::{CarbonNote, caveats};
use crate::sandboxes::FieldIssue;
use crate::store::{LedgerQuery, parse_timestamp};
use crate::usage::budget;
use crate::usage::sandbox_report::{self, RunLine, SandboxReport};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SandboxReportParams {
    /// Window start, RFC 3339 (default: the first instant of the current month, UTC).
    from: Option<String>,
    /// Window end, RFC 3339, exclusive (default: the first instant of the next month).
    to: Option<String>,
    /// json (default) or html; `Accept: text/html` also gives the page.
    format: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/report", tag = "runs",
    params(("name" = String, Path), SandboxReportParams),
    responses(
        (status = 200, body = SandboxReport, description = "JSON, or an HTML page with format=html"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn report(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    params: Result<Query<SandboxReportParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // -- Extract
    let Query(params) = params?;
    let (from, to) = window_of(&params.from, &params.to)?;
    let html = match params.format.as_deref() {
        Some("html") => true,
        Some("json") => false,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
        Some(other) => {
            return Err(ApiError::Validation(vec![FieldIssue::new(
                "format",
                "one_of",
                format!("{other:?} is not json or html"),
            )]));
        }
    };
    // -- Authorize: see the sandbox, and read its tenant's usage.
    let sandbox = load_sandbox(&app, &ctx, Action::SandboxRead, &name).await?;
    let tenant = sandbox.row.tenant.clone();
    // The caller sees the sandbox (a vendor may): a refusal here is a 403, not a 404.
    let decision = app
        .decide_recorded(&ctx, Action::UsageRead, &Resource::Tenant(&tenant))
        .await?;
    if !decision.allowed {
        return Err(ApiError::Forbidden(format!(
            "the report of sandbox {name:?} shows every run in it: only {tenant:?}'s members read it"
        )));
    }

    // -- Act
    let runs = app.store.list_runs(&name).await?;
    let namespace = app
        .cluster
        .as_ref()
        .and_then(|c| c.sandbox(&name))
        .and_then(|s| s.status.as_ref()?.namespace.clone())
        .or_else(|| runs.first().map(|r| r.namespace.clone()));
    let rows = match &namespace {
        Some(ns) => {
            app.store
                .ledger_rows(&LedgerQuery {
                    namespace: Some(ns),
                    run: Some(""),
                    from: Some(from),
                    to: Some(to),
                    ..LedgerQuery::default()
                })
                .await?
        }
        None => Vec::new(),
    };
    let seconds = (to.min(Utc::now()) - from).num_milliseconds().max(0) as f64 / 1000.0;
    let figures = summarise(&rows, seconds, None);
    let now = Utc::now();
    let (month_start, month_end) = budget::month(now);
    let used = app
        .store
        .tenant_meter_kwh(&tenant, month_start, month_end)
        .await?;
    let budget_kwh = app
        .tenants
        .get(&tenant)
        .and_then(|t| t.spec.energy_budget_kwh);
    let month_kwh: f64 = match &namespace {
        Some(ns) => app
            .store
            .ledger_rows(&LedgerQuery {
                namespace: Some(ns),
                run: Some(""),
                from: Some(month_start),
                to: Some(month_end),
                ..LedgerQuery::default()
            })
            .await?
            .iter()
            .filter(|r| r.quantity == "meter_energy")
            .map(|r| r.value)
            .sum(),
        None => 0.0,
    };
    let lines = runs
        .iter()
        .filter(|r| {
            let created = parse_timestamp(&r.created_at);
            created.is_some_and(|c| c < to)
                && r.finished_at
                    .as_deref()
                    .and_then(parse_timestamp)
                    .is_none_or(|f| f >= from)
        })
        .map(|r| {
            let f: Option<RunFigures> = r
                .summary_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok());
            RunLine {
                run: r.name.clone(),
                kind: r.kind.clone(),
                solution: r.solution.clone(),
                phase: r.phase.clone(),
                requested_by: r.requested_by.clone(),
                finished_at: r.finished_at.clone(),
                kwh: f.as_ref().map(|f| f.kwh),
                gco2e: f.as_ref().map(|f| f.gco2e + f.embodied_gco2e),
                energy_method: f.map(|f| f.energy_method),
            }
        })
        .collect();
    let body = SandboxReport {
        sandbox: name,
        tenant,
        namespace,
        from,
        to,
        caveats: caveats(&figures, app.accountant.declared()),
        figures,
        runs: lines,
        budget: budget::state(now, budget_kwh, used),
        budget_share: budget_kwh.filter(|b| *b > 0.0).map(|b| month_kwh / b),
        carbon: CarbonNote::from_params(&app.accountant.carbon),
        generated_at: now,
    };
    if html {
        return Ok(Html(sandbox_report::html(&body)).into_response());
    }
    Ok(Json(body).into_response())
}
