//! `/v1/catalogue`: the catalogue of AI solutions. Métropole admins create published
//! entries and publish or reject vendors' proposals; vendors propose and edit their
//! proposals; everyone signed in reads and exports the published catalogue. Measured
//! trial results are attached by Métropole admins (the trial-run controller's attach point).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::catalogue::export;
use crate::catalogue::{
    CreateSolution, Draft, PROPOSED, PUBLISHED, Provenance, STATUSES, SolutionView,
    TrialResultInput, UpdateSolution, validate_result,
};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::FieldIssue;
use crate::store::{SolutionRow, TrialResultRow, timestamp};

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("solution {id:?} not found"))
}

fn resource(row: &SolutionRow) -> Resource<'_> {
    Resource::Solution {
        id: &row.id,
        status: &row.status,
        proposed_by: row.proposed_by.as_deref(),
    }
}

/// Load an entry and authorize `action` on it: missing and invisible both answer 404.
async fn load_authorized(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    id: &str,
) -> Result<SolutionRow, ApiError> {
    let row = match uuid::Uuid::parse_str(id) {
        Ok(_) => app.store.get_solution(id).await?,
        Err(_) => None,
    };
    let Some(row) = row else {
        app.record_missing(ctx, action, format!("Solution::{id:?}"))
            .await?;
        return Err(not_found(id));
    };
    app.authorize(ctx, action, &resource(&row), || not_found(id))
        .await?;
    Ok(row)
}

/// The gateway's public key, which verifies the signatures of results attached from runs.
fn verifier(app: &AppState) -> serre_crypto::CertificateVerifier {
    app.data.audit_signer.verifier()
}

async fn view(app: &AppState, row: &SolutionRow) -> Result<SolutionView, ApiError> {
    let results = app.store.list_trial_results(&row.id).await?;
    Ok(SolutionView::new(row, &results, &verifier(app)))
}

/// Add an entry: published at once for Métropole admins, `proposed` for vendors
/// (principals who belong to no tenant). The environmental criterion is refused.
#[utoipa::path(
    post, path = "/v1/catalogue/solutions", tag = "catalogue",
    request_body = CreateSolution,
    responses(
        (status = 201, description = "Created (published) or proposed", body = SolutionView),
        (status = 403, description = "Tenant members read the catalogue but do not write to it", body = ErrorBody),
        (status = 409, description = "Same vendor, name and version already listed", body = ErrorBody),
        (status = 422, description = "Invalid entry (field and rule named), derived field given, prohibited entry published", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    Body(req): Body<CreateSolution>,
) -> Result<Response, ApiError> {
    // -- Validation
    let admin = ctx.caller.roles.metropole_admin;
    let status = if admin { PUBLISHED } else { PROPOSED };
    let mut issues = Vec::new();
    let draft = Draft::from_create(&req, status, &mut issues);
    issues.extend(draft.validate(false));
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }

    // -- Authorization
    let action = if admin {
        Action::CatalogueCreate
    } else {
        Action::CataloguePropose
    };
    app.authorize(&ctx, action, &Resource::Platform, || {
        ApiError::Forbidden("you may not add to the catalogue".into())
    })
    .await?;

    // -- Business logic
    let now = timestamp(chrono::Utc::now());
    let by = ctx.caller.principal.subject.clone();
    let row = draft
        .into_row(
            status.to_owned(),
            Provenance {
                id: uuid::Uuid::new_v4().to_string(),
                proposed_by: (!admin).then(|| by.clone()),
                created_by: by.clone(),
                created_at: now.clone(),
                updated_by: by,
                updated_at: now.clone(),
                published_at: admin.then(|| now.clone()),
            },
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    app.store.insert_solution(&row).await?;
    app.record(
        &ctx,
        if admin {
            "catalogue.solution.created"
        } else {
            "catalogue.solution.proposed"
        },
        format!("Solution::{:?}", row.id),
        None,
        json!({ "vendor": row.vendor, "name": row.name, "version": row.version,
                "status": row.status, "aiActRiskClass": row.ai_act_risk_class }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SolutionView::new(&row, &[], &verifier(&app))),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only entries in this status (proposed, published, rejected).
    status: Option<String>,
}

/// The entries the caller may see: published ones for everyone, proposals for Métropole
/// admins and for the vendor who proposed them.
#[utoipa::path(
    get, path = "/v1/catalogue/solutions", tag = "catalogue",
    params(ListParams),
    responses((status = 200, body = Vec<SolutionView>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<SolutionView>>, ApiError> {
    let Query(params) = params?;
    list_solutions(&app, &ctx, params.status).await.map(Json)
}

/// The listing itself, shared by the API and the console: the list decision is
/// recorded, then each entry is shown only where `catalogue.read` allows it.
pub(crate) async fn list_solutions(
    app: &AppState,
    ctx: &Ctx,
    status: Option<String>,
) -> Result<Vec<SolutionView>, ApiError> {
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::Validation(vec![FieldIssue::new(
            "status",
            "one_of",
            format!("{s:?} is not one of {}", STATUSES.join(", ")),
        )]));
    }
    app.authorize(ctx, Action::CatalogueList, &Resource::Platform, || {
        ApiError::Forbidden("you may not list the catalogue".into())
    })
    .await?;
    let results = app.store.trial_results_by_solution().await?;
    let key = verifier(app);
    let mut out = Vec::new();
    for row in app.store.list_solutions(false).await? {
        if status.as_ref().is_some_and(|s| *s != row.status) {
            continue;
        }
        // The list decision is recorded; each entry's visibility follows the policies.
        if app
            .authz
            .decide(&ctx.caller, Action::CatalogueRead, &resource(&row))?
            .allowed
        {
            let r = results.get(&row.id).map_or(&[][..], Vec::as_slice);
            out.push(SolutionView::new(&row, r, &key));
        }
    }
    Ok(out)
}

/// One entry, with its environmental criterion derived from the measured trial runs.
#[utoipa::path(
    get, path = "/v1/catalogue/solutions/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "UUID")),
    responses((status = 200, body = SolutionView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<SolutionView>, ApiError> {
    let row = load_authorized(&app, &ctx, Action::CatalogueRead, &id).await?;
    Ok(Json(view(&app, &row).await?))
}

/// Change an entry: Métropole admins any field and the status (publish, reject); the
/// proposing vendor its proposal's fields while it is `proposed`, never the status.
#[utoipa::path(
    patch, path = "/v1/catalogue/solutions/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "UUID")),
    request_body = UpdateSolution,
    responses(
        (status = 200, body = SolutionView),
        (status = 403, description = "Not yours to change, no longer a proposal, or the status (admins only)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Changed concurrently, or same vendor, name and version listed", body = ErrorBody),
        (status = 422, description = "Invalid change, derived field given, prohibited entry published", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(req): Body<UpdateSolution>,
) -> Result<Json<SolutionView>, ApiError> {
    // -- Authorization (first: the entry decides who may even know it exists)
    let old = load_authorized(&app, &ctx, Action::CatalogueUpdate, &id).await?;
    let status_change = req.status.as_ref().filter(|s| **s != old.status).cloned();
    if status_change.is_some() {
        app.authorize(&ctx, Action::CatalogueReview, &resource(&old), || {
            not_found(&id)
        })
        .await?;
    }

    // -- Validation of the entry as it would be
    let mut issues = Vec::new();
    let mut draft = Draft::from_row(&old);
    draft.apply(&req, &mut issues);
    issues.extend(draft.validate(req.status.is_some()));
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }

    // -- Business logic
    let now = timestamp(chrono::Utc::now());
    let published_at = match &status_change {
        Some(s) if s == PUBLISHED => Some(now.clone()),
        _ => old.published_at.clone(),
    };
    let status = draft.status.clone();
    let new = draft
        .into_row(
            status,
            Provenance {
                id: old.id.clone(),
                proposed_by: old.proposed_by.clone(),
                created_by: old.created_by.clone(),
                created_at: old.created_at.clone(),
                updated_by: ctx.caller.principal.subject.clone(),
                updated_at: now,
                published_at,
            },
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let changed = changed_fields(&old, &new);
    if changed.is_empty() {
        return Ok(Json(view(&app, &old).await?));
    }
    if !app.store.update_solution(&new, &old.updated_at).await? {
        return Err(ApiError::Conflict(format!(
            "solution {id:?} changed while you edited it; read it again"
        )));
    }
    let action = match status_change.as_deref() {
        Some(s) => format!("catalogue.solution.{s}"),
        None => "catalogue.solution.updated".to_owned(),
    };
    app.record(
        &ctx,
        &action,
        format!("Solution::{id:?}"),
        None,
        json!({ "changed": changed, "status": { "from": old.status, "to": new.status } }),
    )
    .await?;
    Ok(Json(view(&app, &new).await?))
}

fn changed_fields(old: &SolutionRow, new: &SolutionRow) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 12] = [
        ("status", old.status != new.status),
        ("vendor", old.vendor != new.vendor),
        ("name", old.name != new.name),
        ("version", old.version != new.version),
        ("description", old.description != new.description),
        ("licence", old.licence_spdx != new.licence_spdx),
        (
            "hosting",
            old.hosting_provider != new.hosting_provider
                || old.hosting_location != new.hosting_location
                || old.extra_eu_transfer != new.extra_eu_transfer,
        ),
        (
            "aiActRiskClass",
            old.ai_act_risk_class != new.ai_act_risk_class,
        ),
        ("gdprNotes", old.gdpr_notes != new.gdpr_notes),
        (
            "criteria",
            Draft::from_row(old).criteria != Draft::from_row(new).criteria,
        ),
        ("publishedAt", old.published_at != new.published_at),
        ("proposedBy", old.proposed_by != new.proposed_by),
    ];
    pairs
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(f, _)| f)
        .collect()
}

/// Attach a result of a trial run measured outside Serre (Métropole admins). It is stored
/// as declared (`method.declared: true`): shown with the entry, never counted in the
/// environmental criterion, which only measured results recorded from runs move.
#[utoipa::path(
    post, path = "/v1/catalogue/solutions/{id}/results", tag = "catalogue",
    params(("id" = String, Path, description = "UUID")),
    request_body = TrialResultInput,
    responses(
        (status = 201, description = "Attached; the entry with its new environmental criterion", body = SolutionView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "This run already has a result for this phase", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn attach_result(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(req): Body<TrialResultInput>,
) -> Result<Response, ApiError> {
    // -- Validation
    let mut issues = validate_result(&req, chrono::Utc::now());
    if !req.tenant.is_empty() && app.tenants.get(&req.tenant).is_none() {
        issues.push(FieldIssue::new(
            "tenant",
            "unknown_tenant",
            format!("no tenant {:?}", req.tenant),
        ));
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    // -- Authorization
    let solution = load_authorized(&app, &ctx, Action::CatalogueResultsAttach, &id).await?;
    // -- Business logic: a result entered by hand is declared, never measured (only the
    // gateway's accounting records measured results, from trial runs).
    let mut method = req.method.clone();
    method.insert("declared".into(), serde_json::Value::Bool(true));
    let row = TrialResultRow {
        id: uuid::Uuid::new_v4().to_string(),
        solution_id: solution.id.clone(),
        run_id: req.run_id.trim().to_owned(),
        tenant: req.tenant.clone(),
        sandbox: req.sandbox.trim().to_owned(),
        phase: req.phase.clone(),
        kwh: req.kwh,
        gco2e: req.gco2e,
        duration_s: req.duration_s,
        functional_units: req.functional_units,
        quality_metric: req.quality.as_ref().map(|q| q.metric.trim().to_owned()),
        quality_value: req.quality.as_ref().map(|q| q.value),
        measured_at: req.measured_at.clone(),
        method_json: serde_json::Value::Object(method.clone()).to_string(),
        recorded_by: ctx.caller.principal.subject.clone(),
        recorded_at: timestamp(chrono::Utc::now()),
        resources_json: None,
        signature: None,
        key_id: None,
    };
    app.store.attach_trial_result(&row).await?;
    app.record(
        &ctx,
        "catalogue.result.attached",
        format!("Solution::{id:?}"),
        Some(&row.tenant),
        json!({ "result": row.id, "runId": row.run_id, "sandbox": row.sandbox,
                "phase": row.phase, "kwh": row.kwh, "gco2e": row.gco2e,
                "functionalUnits": row.functional_units, "method": method }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&app, &solution).await?)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// json (default), csv or dcat (DCAT-AP JSON-LD).
    format: Option<String>,
}

/// The published catalogue as JSON, CSV or DCAT-AP JSON-LD.
#[utoipa::path(
    get, path = "/v1/catalogue/export", tag = "catalogue",
    params(ExportParams),
    responses(
        (status = 200, description = "application/json, text/csv or application/ld+json"),
        (status = 422, description = "Unknown format", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn export(
    State(app): State<AppState>,
    ctx: Ctx,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let format = params.format.as_deref().unwrap_or("json");
    if !["json", "csv", "dcat"].contains(&format) {
        return Err(ApiError::Validation(vec![FieldIssue::new(
            "format",
            "one_of",
            format!("{format:?} is not one of json, csv, dcat"),
        )]));
    }
    app.authorize(&ctx, Action::CatalogueExport, &Resource::Platform, || {
        ApiError::Forbidden("you may not export the catalogue".into())
    })
    .await?;
    let results = app.store.trial_results_by_solution().await?;
    let key = verifier(&app);
    let items: Vec<SolutionView> = app
        .store
        .list_solutions(true)
        .await?
        .iter()
        .map(|row| {
            let r = results.get(&row.id).map_or(&[][..], Vec::as_slice);
            SolutionView::new(row, r, &key)
        })
        .collect();
    Ok(match format {
        "csv" => {
            let body = export::to_csv(&items).map_err(|e| ApiError::Internal(e.to_string()))?;
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "text/csv; charset=utf-8; header=present",
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"catalogue.csv\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        "dcat" => {
            let doc = export::to_dcat(&items, app.data.public_url());
            (
                [(header::CONTENT_TYPE, "application/ld+json")],
                doc.to_string(),
            )
                .into_response()
        }
        _ => Json(items).into_response(),
    })
}

/// The key that signs the results trial runs attach (`attestation` in entries and
/// exports).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    /// `ed25519:<16 hex>`, as in each attestation's `keyId`.
    pub key_id: String,
    /// The Ed25519 public key, SPKI PEM (for `openssl pkeyutl -verify -pubin`).
    pub public_key_pem: String,
}

/// The gateway's public key that verifies attached results' signatures.
#[utoipa::path(
    get, path = "/v1/catalogue/signing-key", tag = "catalogue",
    responses((status = 200, body = SigningKey), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn signing_key(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Json<SigningKey>, ApiError> {
    app.authorize(&ctx, Action::CatalogueExport, &Resource::Platform, || {
        ApiError::Forbidden("you may not export the catalogue".into())
    })
    .await?;
    let signer = &app.data.audit_signer;
    Ok(Json(SigningKey {
        key_id: signer.key_id().to_owned(),
        public_key_pem: signer
            .public_key_pem()
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    }))
}
