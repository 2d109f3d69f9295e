//! `GET /v1/sandboxes/{name}/runs/{id}/report`: a run's frugality report, JSON, HTML or
//! CSV; `PUT …/practices`: the requester's answers to the good-practice checklist.

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
use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::runs::RunFigures;
use crate::runs::frugality::{self, MethodClass, PracticeAnswers, ReportInputs};
use crate::runs::report::{self, CarbonNote, Comparison, Requested, RunReport};
use crate::sandboxes::FieldIssue;
use crate::store::{RunRow, timestamp};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// json (default), html or csv; `Accept: text/html` or `text/csv` also choose.
    format: Option<String>,
}

/// The run's frugality report (provisional until the run is closed).
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}/report", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path), ReportParams),
    responses(
        (status = 200, body = RunReport, description = "JSON; an HTML page with format=html; CSV (one row per figure: section, phase, quantity, value, unit, low, high, method, method_detail, source) with format=csv"),
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
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = match params.format.as_deref() {
        Some(f @ ("html" | "json" | "csv")) => f,
        None if accept.contains("text/html") => "html",
        None if accept.contains("text/csv") => "csv",
        None => "json",
        Some(other) => {
            return Err(ApiError::Validation(vec![FieldIssue::new(
                "format",
                "one_of",
                format!("{other:?} is not json, html or csv"),
            )]));
        }
    };
    let body = build_report(&app, &ctx, &name, &id).await?;
    match format {
        "html" => Ok(Html(report::html(&body)).into_response()),
        "csv" => {
            let csv = frugality::csv(&body.frugality, &body.practices)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "text/csv; charset=utf-8; header=present",
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"frugality-report.csv\"",
                    ),
                ],
                csv,
            )
                .into_response())
        }
        _ => Ok(Json(body).into_response()),
    }
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
    let inputs = report_inputs(app, &run, spec.as_ref()).await?;
    let this = (
        inputs.phase.clone(),
        inputs.functional_unit.as_ref().map(|(n, _)| n.clone()),
        MethodClass::of(&figures.energy_method),
    );
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
            let other_unit = serde_json::from_str::<TrialRunSpec>(&other.spec_json)
                .ok()
                .and_then(|s| s.functional_unit.map(|u| u.name));
            let other_phase = serde_json::from_str::<TrialRunSpec>(&other.spec_json)
                .map(|s| crate::runs::catalogue_phase(s.kind).to_owned())
                .unwrap_or_else(|_| other.kind.clone());
            let method_class = MethodClass::of(&f.energy_method);
            let verdict = frugality::comparable(
                (this.0.as_str(), this.1.as_deref(), this.2),
                (other_phase.as_str(), other_unit.as_deref(), method_class),
            );
            comparison.push(Comparison {
                run: other.name.clone(),
                kind: other.kind.clone(),
                method_class,
                functional_unit: other_unit,
                comparable: verdict.is_ok(),
                not_comparable: verdict.err(),
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
        frugality: frugality::build(&figures, &inputs),
        figures,
        carbon: CarbonNote::from_params(&accountant.carbon),
        comparison,
        practices: practices_of(app, &run.name).await?,
        generated_at: Utc::now(),
    })
}

/// What the report needs beside the ledger: the run's phase, requests and functional
/// unit, the bytes of the views it fetched, the bytes it wrote.
async fn report_inputs(
    app: &AppState,
    run: &RunRow,
    spec: Option<&TrialRunSpec>,
) -> Result<ReportInputs, ApiError> {
    let mut data_read = Some((0u64, 0usize));
    for g in spec.map_or(&[][..], |s| s.grants.as_slice()) {
        match app.store.get_grant(g).await? {
            Some(grant) => {
                data_read = data_read
                    .map(|(bytes, n)| (bytes + u64::try_from(grant.view_size).unwrap_or(0), n + 1));
            }
            None => data_read = None,
        }
    }
    let outputs = match &app.cluster {
        None => Err("no cluster: the run's results cannot be listed here".to_owned()),
        Some(cluster) => match crate::runs::outputs::bucket(cluster.client(), run).await {
            Err(e) => Err(format!("the run's results cannot be listed: {e}")),
            Ok(store) => {
                match crate::runs::outputs::list_results(store.as_ref(), &run.name).await {
                    Err(e) => Err(format!("the run's results cannot be listed: {e}")),
                    Ok(l) if l.truncated => Err(format!(
                        "the run wrote more than {} objects: not summed",
                        crate::runs::outputs::results::MAX_RESULTS
                    )),
                    Ok(l) => Ok(l.objects.iter().map(|o| o.size).sum()),
                }
            }
        },
    };
    let accountant = &app.accountant;
    Ok(ReportInputs {
        phase: spec
            .map(|s| crate::runs::catalogue_phase(s.kind).to_owned())
            .unwrap_or_else(|| run.kind.clone()),
        cpu: spec.map(|s| s.resources.cpu.clone()).unwrap_or_default(),
        memory: spec.map(|s| s.resources.memory.clone()).unwrap_or_default(),
        gpus: spec
            .and_then(|s| s.resources.gpu.as_ref())
            .map_or(0, |g| g.count),
        gpu_resource: spec
            .and_then(|s| s.resources.gpu.as_ref())
            .map(|g| g.resource_name.clone()),
        functional_unit: spec
            .and_then(|s| s.functional_unit.as_ref())
            .map(|u| (u.name.clone(), u.count)),
        data_read,
        outputs,
        declared_mode: accountant.declared(),
        model: accountant.model().clone(),
        carbon: accountant.carbon.clone(),
    })
}

/// The checklist with the requester's answers, if given.
async fn practices_of(app: &AppState, run: &str) -> Result<frugality::PracticeChecklist, ApiError> {
    Ok(match app.store.run_practices(run).await? {
        Some((json, by, at)) => {
            let answers: Option<PracticeAnswers> = serde_json::from_str(&json).ok();
            frugality::checklist(answers.as_ref(), Some(by), Some(at))
        }
        None => frugality::checklist(None, None, None),
    })
}

/// Answer the frugal-AI good-practice checklist for a run (its requester only, as for
/// its quality): declared, shown in the report apart from the figures. Answers replace
/// earlier ones; once a run of a catalogue solution is closed they no longer change (409).
#[utoipa::path(
    put, path = "/v1/sandboxes/{name}/runs/{id}/practices", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path)),
    request_body = PracticeAnswers,
    responses(
        (status = 200, body = frugality::PracticeChecklist),
        (status = 403, description = "Only the run's requester answers", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is closed and its catalogue result attached", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn practices(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    Body(answers): Body<PracticeAnswers>,
) -> Result<Json<frugality::PracticeChecklist>, ApiError> {
    // -- Validation
    let issues = frugality::validate_answers(&answers);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    // -- Authorization: who may report a run's quality answers its checklist.
    let (_, run) = load_run(&app, &ctx, Action::RunQuality, &name, &id).await?;
    // -- Business logic
    let json = serde_json::to_string(&answers).map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = timestamp(Utc::now());
    if !app
        .store
        .set_run_practices(&run.name, &json, &ctx.caller.principal.subject, &now)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "run {id:?} is closed and its result is attached to a catalogue solution: its \
             report is final, so its checklist can no longer change"
        )));
    }
    app.record(
        &ctx,
        "run.practices",
        format!("Run::{id:?}"),
        Some(&run.tenant),
        json!({ "answered": answers.answers.len() }),
    )
    .await?;
    Ok(Json(practices_of(&app, &run.name).await?))
}
