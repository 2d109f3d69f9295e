//! `/v1/sandboxes/{name}/runs`: vendors and tenant members start measured trial runs,
//! follow them, cancel them, and read their frugality reports.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serre_resources::{SandboxPhase, TrialRunSpec};
use utoipa::ToSchema;

use super::sandboxes::load_authorized as load_sandbox;
use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::catalogue;
use crate::error::{ApiError, ErrorBody};
use crate::grants::tokens::{self, Claims, Kind};
use crate::runs::{self, CreateRun, RunFigures};
use crate::sandboxes::FieldIssue;
use crate::store::{RunRow, SandboxRecord, timestamp};
use crate::usage::budget::{self, BudgetLevel};

/// A run as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub name: String,
    pub sandbox: String,
    pub tenant: String,
    pub namespace: String,
    pub kind: String,
    pub solution: Option<String>,
    pub image: String,
    pub grants: Vec<String>,
    pub requested_by: String,
    pub created_at: String,
    /// Pending, Running, Succeeded, Failed, TimedOut or Cancelled.
    pub phase: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_reason: Option<String>,
    /// The quality the requester reported (`PUT …/quality`), if any.
    pub quality: Option<Quality>,
    /// Final figures, once the run is over and its last window accounted.
    pub figures: Option<RunFigures>,
}

/// A quality figure the requester reports for its run (e.g. `rougeL` 0.41).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    /// What was measured, e.g. `rougeL`, `f1`, `accuracy`.
    pub metric: String,
    pub value: f64,
}

pub(super) fn view(r: &RunRow) -> RunView {
    let spec: Option<TrialRunSpec> = serde_json::from_str(&r.spec_json).ok();
    RunView {
        name: r.name.clone(),
        sandbox: r.sandbox.clone(),
        tenant: r.tenant.clone(),
        namespace: r.namespace.clone(),
        kind: r.kind.clone(),
        solution: r.solution.clone(),
        image: spec.as_ref().map(|s| s.image.clone()).unwrap_or_default(),
        grants: spec.map(|s| s.grants).unwrap_or_default(),
        requested_by: r.requested_by.clone(),
        created_at: r.created_at.clone(),
        phase: r.phase.clone(),
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        exit_reason: r.exit_reason.clone(),
        quality: r
            .quality_metric
            .clone()
            .zip(r.quality_value)
            .map(|(metric, value)| Quality { metric, value }),
        figures: r
            .summary_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("run {id:?} not found"))
}

fn resource<'a>(r: &'a RunRow, vendors: &'a [String]) -> Resource<'a> {
    Resource::Run {
        id: &r.name,
        tenant: &r.tenant,
        vendors,
        requested_by: &r.requested_by,
    }
}

/// Load a run of this sandbox and authorize `action` on it: missing, foreign and
/// another vendor's runs all answer 404.
pub(super) async fn load_run(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    name: &str,
    id: &str,
) -> Result<(SandboxRecord, RunRow), ApiError> {
    let sandbox = load_sandbox(app, ctx, Action::SandboxRead, name).await?;
    let Some(run) = app.store.get_run(id).await?.filter(|r| r.sandbox == name) else {
        app.record_missing(ctx, action, format!("Run::{id:?}"))
            .await?;
        return Err(not_found(id));
    };
    let vendors = sandbox.vendor_subjects();
    app.authorize(ctx, action, &resource(&run, &vendors), || not_found(id))
        .await?;
    Ok((sandbox, run))
}

/// Start a trial run: a `TrialRun` in the sandbox's namespace, which the operator turns
/// into a Job fed with the granted views.
#[utoipa::path(
    post, path = "/v1/sandboxes/{name}/runs", tag = "runs",
    params(("name" = String, Path)),
    request_body = CreateRun,
    responses(
        (status = 201, body = RunView),
        (status = 403, description = "Not allowed, or the tenant's energy budget is exhausted", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The sandbox is not ready", body = ErrorBody),
        (status = 422, description = "Invalid request; each problem names its field and rule", body = ErrorBody),
        (status = 503, description = "No cluster", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Body(req): Body<CreateRun>,
) -> Result<Response, ApiError> {
    // -- Validation (request alone)
    let issues = runs::validate(&req);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    // -- Authorization
    let sandbox = load_sandbox(&app, &ctx, Action::SandboxRead, &name).await?;
    let vendors = sandbox.vendor_subjects();
    let resource = Resource::Sandbox {
        name: &sandbox.row.name,
        tenant: &sandbox.row.tenant,
        created_by: &sandbox.row.created_by,
        vendors: &vendors,
    };
    app.authorize(&ctx, Action::RunCreate, &resource, || {
        ApiError::NotFound(format!("sandbox {name:?} not found"))
    })
    .await?;

    // -- Validation against the sandbox, the tenant, the grants and the catalogue
    let now = Utc::now();
    let requester = ctx.caller.principal.subject.clone();
    let tenant_name = sandbox.row.tenant.clone();
    let Some(cluster) = app.cluster.clone() else {
        return Err(ApiError::Conflict(
            "this gateway runs without a cluster: trial runs need one".into(),
        ));
    };
    let live = cluster.sandbox(&name);
    let (namespace, live) = match live
        .as_ref()
        .and_then(|s| Some((s.status.as_ref()?.namespace.clone()?, s)))
    {
        Some((ns, s))
            if s.status
                .as_ref()
                .is_some_and(|st| st.phase == SandboxPhase::Ready) =>
        {
            (ns, s.clone())
        }
        _ => {
            let phase = live.as_ref().and_then(|s| s.status.as_ref()).map_or_else(
                || "not created yet".to_owned(),
                |st| format!("{:?}", st.phase),
            );
            return Err(ApiError::Conflict(format!(
                "sandbox {name:?} is not ready for runs (phase: {phase})"
            )));
        }
    };
    let tenant = app
        .tenants
        .get(&tenant_name)
        .ok_or_else(|| ApiError::Conflict(format!("tenant {tenant_name:?} is not known")))?;
    let run_name = runs::new_name();
    let spec = runs::spec(&req, &name, &run_name, &requester);
    let mut issues: Vec<FieldIssue> = runs::check_against(&spec, &namespace, &live, &tenant.spec);
    for (i, id) in req.grants.iter().enumerate() {
        let field = format!("grants[{i}]");
        match app.store.get_grant(id).await? {
            Some(g) => {
                if let Err(m) =
                    runs::grant_usable(&g, &name, &tenant_name, &requester, &vendors, now)
                {
                    issues.push(FieldIssue::new(&field, "grant_usable", m));
                }
            }
            None => issues.push(FieldIssue::new(
                &field,
                "grant_usable",
                format!("no grant {id:?} for this sandbox or for you"),
            )),
        }
    }
    if let Some(s) = &req.solution {
        // A solution the requester may not read answers like one that does not exist.
        let unknown = || {
            FieldIssue::new(
                "solution",
                "unknown_solution",
                format!("no catalogue solution {s:?}"),
            )
        };
        match app.store.get_solution(s).await? {
            None => issues.push(unknown()),
            Some(sol) => {
                if let Err(m) = catalogue::open_for_trials(&sol, &requester) {
                    let probe = Resource::Solution {
                        id: &sol.id,
                        status: &sol.status,
                        proposed_by: sol.proposed_by.as_deref(),
                    };
                    let seen = app
                        .authz
                        .decide(&ctx.caller, Action::CatalogueRead, &probe)?
                        .allowed;
                    issues.push(if seen {
                        FieldIssue::new("solution", catalogue::OPEN_FOR_TRIALS, m)
                    } else {
                        unknown()
                    });
                }
            }
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let (from, to) = budget::month(now);
    let used = app.store.tenant_meter_kwh(&tenant_name, from, to).await?;
    let state = budget::state(now, tenant.spec.energy_budget_kwh, used);
    if state.level == BudgetLevel::Exhausted {
        let message = format!(
            "tenant {tenant_name:?} has used {used:.3} kWh of its {} kWh monthly energy budget; \
             new runs are refused until {} or until the budget is raised",
            tenant.spec.energy_budget_kwh.unwrap_or(0.0),
            state.month_end.to_rfc3339()
        );
        app.record(
            &ctx,
            "run.refused",
            format!("Sandbox::{name:?}"),
            Some(&tenant_name),
            json!({ "reason": "energy_budget_exhausted", "usedKwh": used }),
        )
        .await?;
        return Err(ApiError::Refused {
            code: "energy_budget_exhausted",
            message,
        });
    }

    // -- Business logic: record, then create in the cluster (the record is removed if the
    // cluster refuses, so nothing half-made stays).
    let token = tokens::sign(
        app.data.secret(),
        Kind::Run,
        &Claims {
            g: run_name.clone(),
            sub: requester.clone(),
            exp: runs::token_expiry(now, spec.timeout_seconds).timestamp(),
            grp: Vec::new(),
        },
    );
    let row = RunRow {
        name: run_name.clone(),
        namespace: namespace.clone(),
        sandbox: name.clone(),
        tenant: tenant_name.clone(),
        solution: spec.solution.clone(),
        kind: spec.kind.as_str().to_owned(),
        requested_by: requester.clone(),
        spec_json: serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at: timestamp(now),
        phase: "Pending".into(),
        started_at: None,
        finished_at: None,
        exit_reason: None,
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    };
    app.store.insert_run(&row).await?;
    if let Err(e) = runs::cluster::create(
        cluster.client(),
        &namespace,
        &run_name,
        &tenant_name,
        &spec,
        &token,
    )
    .await
    {
        app.store.delete_run(&run_name).await?;
        return Err(e.into());
    }
    app.record(
        &ctx,
        "run.created",
        format!("Run::{run_name:?}"),
        Some(&tenant_name),
        json!({ "sandbox": name, "kind": row.kind, "image": spec.image, "grants": spec.grants,
                "solution": spec.solution, "budget": state.level }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&row))).into_response())
}

/// The sandbox's runs the caller may see (a vendor sees its own), newest first.
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs", tag = "runs",
    params(("name" = String, Path)),
    responses((status = 200, body = [RunView]), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let sandbox = load_sandbox(&app, &ctx, Action::SandboxRead, &name).await?;
    let vendors = sandbox.vendor_subjects();
    let resource = Resource::Sandbox {
        name: &sandbox.row.name,
        tenant: &sandbox.row.tenant,
        created_by: &sandbox.row.created_by,
        vendors: &vendors,
    };
    app.authorize(&ctx, Action::RunList, &resource, || {
        ApiError::NotFound(format!("sandbox {name:?} not found"))
    })
    .await?;
    let mut out = Vec::new();
    for r in app.store.list_runs(&name).await? {
        if app
            .authz
            .decide(&ctx.caller, Action::RunRead, &self::resource(&r, &vendors))?
            .allowed
        {
            out.push(view(&r));
        }
    }
    Ok(Json(out))
}

#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<RunView>, ApiError> {
    let (_, run) = load_run(&app, &ctx, Action::RunRead, &name, &id).await?;
    Ok(Json(view(&run)))
}

/// Cancel a run: the operator deletes its Job; the run ends as Cancelled. Its token stops
/// working at once and its Secret is deleted. Cancelling a finished run changes nothing
/// (409).
#[utoipa::path(
    delete, path = "/v1/sandboxes/{name}/runs/{id}", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path)),
    responses(
        (status = 202, body = RunView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is already over", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, run) = load_run(&app, &ctx, Action::RunCancel, &name, &id).await?;
    if runs::is_final(&run.phase) {
        return Err(ApiError::Conflict(format!(
            "run {id:?} is already over ({})",
            run.phase
        )));
    }
    if let Some(cluster) = &app.cluster {
        runs::cluster::cancel(cluster.client(), &run.namespace, &run.name).await?;
        // The token is refused from now on; its Secret goes too (the accounting's pass
        // tries again if this fails).
        if let Err(e) =
            runs::cluster::delete_token(cluster.client(), &run.namespace, &run.name).await
        {
            tracing::warn!(run = %run.name, error = %e, "could not delete the run's token Secret");
        }
    }
    let now = timestamp(Utc::now());
    let reason = format!("cancelled by {}", ctx.caller.principal.subject);
    let finished = run.started_at.as_ref().map(|_| now.as_str());
    app.store
        .update_run_state(
            &run.name,
            "Cancelled",
            run.started_at.as_deref(),
            finished,
            Some(&reason),
        )
        .await?;
    app.record(
        &ctx,
        "run.cancelled",
        format!("Run::{id:?}"),
        Some(&run.tenant),
        json!({ "sandbox": name }),
    )
    .await?;
    let run = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::ACCEPTED, Json(view(&run))).into_response())
}

/// Report the quality the run's model reached: shown with the run, in its report, and on
/// the catalogue result the run attaches to its solution when it closes. Once a run of a
/// solution is closed its attached result is immutable: 409.
#[utoipa::path(
    put, path = "/v1/sandboxes/{name}/runs/{id}/quality", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path)),
    request_body = Quality,
    responses(
        (status = 200, body = RunView),
        (status = 403, description = "Only the run's requester reports its quality", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is closed and its catalogue result attached: immutable", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn quality(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    Body(q): Body<Quality>,
) -> Result<Json<RunView>, ApiError> {
    // -- Validation
    let metric = q.metric.trim();
    let mut issues = Vec::new();
    if metric.is_empty()
        || metric.len() > 64
        || !metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@/ ".contains(c))
    {
        issues.push(FieldIssue::new(
            "metric",
            "metric_name",
            "1 to 64 letters, digits, spaces or -_.@/, e.g. \"rougeL\"",
        ));
    }
    if !q.value.is_finite() {
        issues.push(FieldIssue::new("value", "type", "a finite number"));
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    // -- Authorization
    let (_, run) = load_run(&app, &ctx, Action::RunQuality, &name, &id).await?;
    // -- Business logic: a closed run of a catalogue solution has attached its result,
    // which is immutable (checked and written in one statement).
    if !app
        .store
        .set_run_quality(&run.name, metric, q.value)
        .await?
    {
        let solution = run.solution.as_deref().unwrap_or_default();
        app.record(
            &ctx,
            "run.quality.refused",
            format!("Run::{id:?}"),
            Some(&run.tenant),
            json!({ "reason": "result_attached", "solution": solution,
                    "metric": metric, "value": q.value }),
        )
        .await?;
        return Err(ApiError::Conflict(format!(
            "run {id:?} is closed and its result is attached to catalogue solution \
             {solution:?}: an attached result is immutable, so the run's quality can no \
             longer change; report quality before the run closes"
        )));
    }
    app.record(
        &ctx,
        "run.quality",
        format!("Run::{id:?}"),
        Some(&run.tenant),
        json!({ "metric": metric, "value": q.value }),
    )
    .await?;
    let run = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(view(&run)))
}
