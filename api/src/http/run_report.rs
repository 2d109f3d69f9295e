//! `GET /v1/sandboxes/{name}/runs/{id}/report`: a run's frugality report, JSON or HTML.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use std::collections::HashMap;

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use serre_resources::TrialRunSpec;
use utoipa::IntoParams;

use super::runs::load_run;
use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::runs::RunFigures;
use crate::runs::report::{self, CarbonNote, Comparison, Requested, RunReport};
use crate::sandboxes::FieldIssue;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// json (default) or html; `Accept: text/html` also gives the page.
    format: Option<String>,
}

/// The run's frugality report (provisional until the run is closed).
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}/report", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path), ReportParams),
    responses(
        (status = 200, body = RunReport, description = "JSON, or an HTML page with format=html"),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn report(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    Query(params): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
    let body = build_report(&app, &ctx, &name, &id).await?;
    if html {
        return Ok(Html(report::html(&body)).into_response());
    }
    Ok(Json(body).into_response())
}

/// A run's frugality report (the API's `…/report` and the console's report page).
pub async fn build_report(
    app: &AppState,
    ctx: &Ctx,
    name: &str,
    id: &str,
) -> Result<RunReport, ApiError> {
    let (_, run) = load_run(app, ctx, Action::RunRead, name, id).await?;
    let accountant = &app.accountant;
    let figures = match run
        .summary_json
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
    {
        Some(f) => f,
        None => accountant
            .figures(&run)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let spec: Option<TrialRunSpec> = serde_json::from_str(&run.spec_json).ok();
    // The comparison holds only the runs the reader may read (`run.read`, decided per run
    // as the run list does): another tenant's runs, or another vendor's, never show.
    let mut comparison = Vec::new();
    let mut withheld = 0usize;
    if let Some(solution) = &run.solution {
        let mut vendors: HashMap<String, Vec<String>> = HashMap::new();
        for other in app.store.closed_runs_of_solution(solution).await? {
            if other.name == run.name {
                continue;
            }
            if !vendors.contains_key(&other.sandbox) {
                let subjects = app
                    .store
                    .get_sandbox(&other.sandbox)
                    .await?
                    .map(|s| s.vendor_subjects())
                    .unwrap_or_default();
                vendors.insert(other.sandbox.clone(), subjects);
            }
            let subjects = vendors.get(&other.sandbox).map_or(&[][..], Vec::as_slice);
            let probe = Resource::Run {
                id: &other.name,
                tenant: &other.tenant,
                vendors: subjects,
                requested_by: &other.requested_by,
            };
            if !app
                .authz
                .decide(&ctx.caller, Action::RunRead, &probe)?
                .allowed
            {
                withheld += 1;
                continue;
            }
            let Some(f) = other
                .summary_json
                .as_deref()
                .and_then(|s| serde_json::from_str::<RunFigures>(s).ok())
            else {
                continue;
            };
            comparison.push(Comparison {
                run: other.name.clone(),
                kind: other.kind.clone(),
                finished_at: other.finished_at.clone(),
                duration_seconds: f.duration_seconds,
                kwh: f.kwh,
                gco2e: f.gco2e + f.embodied_gco2e,
                kwh_per_unit: f.kwh_per_unit,
                sci_per_unit: f.sci_per_unit,
                energy_method: f.energy_method.clone(),
            });
        }
    }
    if run.solution.is_some() {
        app.record(
            ctx,
            "run.report.compared",
            format!("Run::{id:?}"),
            Some(&run.tenant),
            json!({ "solution": run.solution, "compared": comparison.len(),
                    "withheld": withheld }),
        )
        .await?;
    }
    Ok(RunReport {
        run: run.name.clone(),
        sandbox: run.sandbox.clone(),
        tenant: run.tenant.clone(),
        solution: run.solution.clone(),
        kind: run.kind.clone(),
        phase: run.phase.clone(),
        requested_by: run.requested_by.clone(),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        exit_reason: run.exit_reason.clone(),
        quality: run.quality_metric.clone().zip(run.quality_value),
        requested: Requested {
            cpu: spec
                .as_ref()
                .map(|s| s.resources.cpu.clone())
                .unwrap_or_default(),
            memory: spec
                .as_ref()
                .map(|s| s.resources.memory.clone())
                .unwrap_or_default(),
            gpus: spec
                .as_ref()
                .and_then(|s| s.resources.gpu.as_ref())
                .map_or(0, |g| g.count),
        },
        final_figures: run.closed_at.is_some(),
        caveats: report::caveats(&figures, accountant.declared()),
        figures,
        carbon: CarbonNote::from_params(&accountant.carbon),
        comparison,
        practices: report::practices(),
        generated_at: Utc::now(),
    })
}
