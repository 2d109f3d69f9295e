//! `/v1/grants`: tenant admins grant a dataset version's anonymised view to a sandbox or a
//! vendor; grantees read it as Parquet (ranges) or Arrow IPC, or through Delta Sharing
//! with the profile from `/v1/grants/{id}/profile`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::serve::{ServeFormat, serve_view};
use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::grants::tokens::{self, Claims, Kind};
use crate::grants::view::GrantView;
use crate::grants::{self, CreateGrant, Grantee, SANDBOX, VENDOR};
use crate::sandboxes::FieldIssue;
use crate::store::{DELETING, GrantRow, timestamp};

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("grant {id:?} not found"))
}

/// The principals a grant names: its vendor, or its sandbox's vendors.
pub async fn readers(app: &AppState, g: &GrantRow) -> Result<Vec<String>, ApiError> {
    if g.grantee_kind == VENDOR {
        return Ok(vec![g.grantee.clone()]);
    }
    Ok(app
        .store
        .get_sandbox(&g.grantee)
        .await?
        .map(|r| r.vendor_subjects())
        .unwrap_or_default())
}

/// Load a grant and authorize `action`: missing and foreign both answer 404.
pub async fn load_authorized(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    id: &str,
) -> Result<GrantRow, ApiError> {
    let Some(g) = app.store.get_grant(id).await? else {
        app.record_missing(ctx, action, format!("Grant::{id:?}"))
            .await?;
        return Err(not_found(id));
    };
    let readers = readers(app, &g).await?;
    let resource = Resource::Grant {
        id: &g.id,
        tenant: &g.tenant,
        readers: &readers,
        to_sandbox: g.grantee_kind == SANDBOX,
    };
    app.authorize(ctx, action, &resource, || not_found(id))
        .await?;
    Ok(g)
}

/// A live grant of a sandbox that a vendor may not read, and why.
#[derive(Debug, Serialize)]
pub struct KBlocker {
    pub grant: String,
    pub dataset: String,
    pub version: i64,
    pub reason: String,
}

impl std::fmt::Display for KBlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grant {} (dataset {:?} version {}): {}",
            self.grant, self.dataset, self.version, self.reason
        )
    }
}

/// The k-anonymity gate, run again over every live grant of a sandbox: the grants a vendor
/// of that sandbox would read although their personal view does not reach the tenant's
/// minimum k (or names no quasi-identifiers). Empty when a vendor may be added.
pub async fn vendor_blockers(
    app: &AppState,
    sandbox: &str,
    tenant: &str,
) -> Result<Vec<KBlocker>, ApiError> {
    let live = app
        .store
        .live_sandbox_grants(sandbox, &timestamp(Utc::now()))
        .await?;
    let mut blockers = Vec::new();
    let mut min_k = None;
    for g in live {
        let dataset = app.store.get_dataset(&g.dataset_id).await?;
        let (name, classification) = match &dataset {
            Some(d) => (d.name.clone(), d.classification.as_str()),
            // Unknown data is treated as personal: the gate fails closed.
            None => (g.dataset_id.clone(), "personal"),
        };
        if !grants::needs_k(classification, false, 1) {
            continue;
        }
        let k = match min_k {
            Some(k) => k,
            None => *min_k.insert(super::data_policy::min_k(app, tenant).await?),
        };
        if let Err(e) = grants::recheck_k(&g, k) {
            blockers.push(KBlocker {
                grant: g.id.clone(),
                dataset: name,
                version: g.version,
                reason: e.to_string(),
            });
        }
    }
    Ok(blockers)
}

/// Revoke a grant on the gateway's own initiative (its sandbox is deleted, or a check
/// made after it was recorded failed), audited with the reason; its view is deleted.
/// False when it was already revoked.
pub async fn revoke_for(
    app: &AppState,
    ctx: &Ctx,
    g: &GrantRow,
    reason: &str,
) -> Result<bool, ApiError> {
    let by = &ctx.caller.principal.subject;
    if !app
        .store
        .revoke_grant(&g.id, by, &timestamp(Utc::now()))
        .await?
    {
        return Ok(false);
    }
    app.record(
        ctx,
        "grant.revoked",
        format!("Grant::{:?}", g.id),
        Some(&g.tenant),
        json!({ "reason": reason, "grantee": g.grantee, "granteeKind": g.grantee_kind }),
    )
    .await?;
    if let Err(e) = app.data.blobs.delete(&g.view_key).await {
        tracing::warn!(error = %e, grant = %g.id, "revoked grant's view not removed; it stays encrypted");
    }
    Ok(true)
}

/// Refuse a revoked or expired grant with 403 and the reason.
pub fn ensure_active(g: &GrantRow) -> Result<(), ApiError> {
    match grants::inactive_reason(g, Utc::now()) {
        None => Ok(()),
        Some(reason) => Err(ApiError::Forbidden(reason)),
    }
}

/// Grant a dataset version's view (tenant admins of the dataset's tenant). The view is
/// materialised, encrypted and stored before the grant is recorded.
#[utoipa::path(
    post, path = "/v1/grants", tag = "grants",
    request_body = CreateGrant,
    responses(
        (status = 201, description = "Granted; the view is materialised", body = GrantView),
        (status = 403, description = "Not a tenant admin of the dataset's tenant", body = ErrorBody),
        (status = 404, description = "Unknown dataset, version or sandbox", body = ErrorBody),
        (status = 422, description = "Invalid grant, recipe or row filter; k-anonymity not reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    Body(req): Body<CreateGrant>,
) -> Result<Response, ApiError> {
    let view = create_grant(&app, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A grant request checked against its dataset, version and grantee, authorized, with the
/// view's specification: what creating the grant and previewing it share.
struct Prepared {
    id: String,
    dataset: crate::store::DatasetRow,
    version: crate::store::VersionRow,
    kind: &'static str,
    grantee: String,
    sandbox_vendors: usize,
    reader: crate::blobs::DecryptingReader,
    spec: crate::data::ViewSpec,
}

async fn prepare(
    app: &AppState,
    ctx: &Ctx,
    req: &CreateGrant,
    now: chrono::DateTime<Utc>,
) -> Result<Prepared, ApiError> {
    // -- Validation (what needs no dataset)
    let issues = grants::validate(req, now, app.data.config.max_grant_days);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }

    // -- Authorization on the dataset (404 when missing or foreign)
    let Some(dataset) = app.store.get_dataset(&req.dataset_id).await? else {
        app.record_missing(
            ctx,
            Action::GrantCreate,
            format!("Dataset::{:?}", req.dataset_id),
        )
        .await?;
        return Err(ApiError::NotFound(format!(
            "dataset {:?} not found",
            req.dataset_id
        )));
    };
    let resource = Resource::Dataset {
        id: &dataset.id,
        tenant: &dataset.tenant,
        classification: &dataset.classification,
    };
    app.authorize(ctx, Action::GrantCreate, &resource, || {
        ApiError::NotFound(format!("dataset {:?} not found", req.dataset_id))
    })
    .await?;

    // -- Validation against the dataset, the version and the grantee
    let versions = app.store.list_versions(&dataset.id).await?;
    let live = |v: &&crate::store::VersionRow| v.deleted_at.is_none();
    let version = match req.version {
        Some(n) => versions.iter().find(|v| v.version == n).filter(live),
        None => versions.iter().rev().find(live),
    }
    .ok_or_else(|| {
        ApiError::Validation(vec![FieldIssue::new(
            "version",
            "exists",
            "no such live version of this dataset",
        )])
    })?
    .clone();
    let (kind, grantee, sandbox_vendors) = match &req.grantee {
        Grantee::Vendor(v) => (VENDOR, v.clone(), 0),
        Grantee::Sandbox(s) => match app.store.get_sandbox(s).await? {
            Some(r) if r.row.tenant == dataset.tenant && r.row.state == DELETING => {
                return Err(ApiError::Validation(vec![FieldIssue::new(
                    "grantee.sandbox",
                    "not_deleting",
                    format!("sandbox {s:?} is being deleted"),
                )]));
            }
            Some(r) if r.row.tenant == dataset.tenant => (SANDBOX, s.clone(), r.members.len()),
            _ => {
                return Err(ApiError::Validation(vec![FieldIssue::new(
                    "grantee.sandbox",
                    "exists",
                    format!("tenant {:?} has no sandbox {s:?}", dataset.tenant),
                )]));
            }
        },
    };
    let id = uuid::Uuid::new_v4().to_string();
    let blob = crate::blobs::BlobRef {
        key: version.object_key.clone(),
        wrapped_key: version.wrapped_key.clone(),
        plain_size: u64::try_from(version.size).unwrap_or(0),
    };
    let reader = app.data.blobs.open_reader(&blob).await?;
    let schema = grants::parquet_schema(&reader)?;
    let spec = grants::spec(
        &req.columns,
        &req.recipe,
        req.row_filter.as_deref(),
        &schema,
        app.data.secret(),
        &id,
    )?;
    Ok(Prepared {
        id,
        dataset,
        version,
        kind,
        grantee,
        sandbox_vendors,
        reader,
        spec,
    })
}

/// What a grant request's view would be, k-anonymity-wise, without creating it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KPreview {
    /// Rows in the smallest class of the quasi-identifiers, before suppression.
    pub smallest_class: u64,
    pub classes: u64,
    pub classes_below_k: u64,
    pub rows_suppressed: u64,
    /// Rows the view would hold, and the smallest class among them.
    pub rows_out: u64,
    pub smallest_class_out: u64,
    pub quasi_identifiers: Vec<String>,
    /// The tenant's minimum k, when this grant must reach it (a personal dataset leaving
    /// towards a vendor).
    pub min_k: Option<u32>,
    /// Why creating this grant would be refused by the k-anonymity gate, if it would.
    pub refusal: Option<String>,
}

/// Preview a grant request's k-anonymity: the same checks, authorization (`grant.create`,
/// recorded) and counting ([`crate::data::kanon_preview`]) as [`create_grant`] runs
/// before it materialises the view; nothing is stored.
pub async fn preview_grant(
    app: &AppState,
    ctx: &Ctx,
    req: &CreateGrant,
) -> Result<KPreview, ApiError> {
    let p = prepare(app, ctx, req, Utc::now()).await?;
    let min_k = if grants::needs_k(
        &p.dataset.classification,
        p.kind == VENDOR,
        p.sandbox_vendors,
    ) {
        Some(super::data_policy::min_k(app, &p.dataset.tenant).await?)
    } else {
        None
    };
    let (reader, spec) = (p.reader, p.spec);
    let report = tokio::task::spawn_blocking(move || crate::data::kanon_preview(reader, &spec))
        .await
        .map_err(|e| ApiError::Internal(format!("preview task: {e}")))??;
    let refusal = min_k.and_then(|k| {
        grants::check_k(&req.recipe, &report, k)
            .err()
            .map(|e| e.to_string())
    });
    Ok(KPreview {
        smallest_class: report.smallest_class,
        classes: report.classes,
        classes_below_k: report.classes_below_k,
        rows_suppressed: report.rows_suppressed,
        rows_out: report.rows_out,
        smallest_class_out: report.smallest_class_out,
        quasi_identifiers: report.quasi_identifiers,
        min_k,
        refusal,
    })
}

/// Preview a grant's k-anonymity without creating it: the same request as
/// `POST /v1/grants`, the same checks and `grant.create` decision (recorded), and the
/// counts the k-anonymity gate would see — smallest class, classes under k, rows
/// suppressed — with the tenant's minimum k when it applies and the gate's refusal, if
/// any. Nothing is stored.
#[utoipa::path(
    post, path = "/v1/grants/preview", tag = "grants",
    request_body = CreateGrant,
    responses(
        (status = 200, description = "The view's k-anonymity, nothing created", body = KPreview),
        (status = 403, description = "Not a tenant admin of the dataset's tenant", body = ErrorBody),
        (status = 404, description = "Unknown dataset", body = ErrorBody),
        (status = 422, description = "Invalid grant, recipe or row filter", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn preview(
    State(app): State<AppState>,
    ctx: Ctx,
    Body(req): Body<CreateGrant>,
) -> Result<Json<KPreview>, ApiError> {
    preview_grant(&app, &ctx, &req).await.map(Json)
}

/// Create a grant (the API's `POST /v1/grants` and the console's form).
pub async fn create_grant(
    app: &AppState,
    ctx: &Ctx,
    req: CreateGrant,
) -> Result<GrantView, ApiError> {
    let now = Utc::now();
    let Prepared {
        id,
        dataset,
        version,
        kind,
        grantee,
        sandbox_vendors,
        reader,
        spec,
    } = prepare(app, ctx, &req, now).await?;

    // -- Business logic: materialise (with the k-anonymity check), store, record.
    let out = app.data.temp_file(".view.parquet");
    let path = out.path().to_owned();
    let check_k = if grants::needs_k(&dataset.classification, kind == VENDOR, sandbox_vendors) {
        Some(super::data_policy::min_k(app, &dataset.tenant).await?)
    } else {
        None
    };
    let k_checked = check_k;
    let recipe = req.recipe.clone();
    let report = tokio::task::spawn_blocking(move || {
        if let Some(min_k) = check_k {
            let preview = crate::data::kanon_preview(reader.clone(), &spec)?;
            grants::check_k(&recipe, &preview, min_k)?;
        }
        grants::materialise_to(reader, &spec, &path)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("materialisation task: {e}")))??;
    let key = format!("tenants/{}/grants/{id}/view.parquet", dataset.tenant);
    let stored = app.data.blobs.put_file(&key, out.path()).await?;
    let row = GrantRow {
        id: id.clone(),
        tenant: dataset.tenant.clone(),
        dataset_id: dataset.id.clone(),
        version: version.version,
        grantee_kind: kind.to_owned(),
        grantee,
        columns_json: json!(req.columns).to_string(),
        recipe_json: serde_json::to_string(&req.recipe).unwrap_or_default(),
        row_filter: req.row_filter.clone(),
        purpose: req.purpose.trim().to_owned(),
        expires_at: timestamp(req.expires_at),
        created_by: ctx.caller.principal.subject.clone(),
        created_at: timestamp(now),
        revoked_at: None,
        revoked_by: None,
        pseudonym_key: "derived:hmac-sha256(data-secret, grant id)".to_owned(),
        view_key: stored.key.clone(),
        view_wrapped_key: stored.wrapped_key,
        view_size: i64::try_from(stored.plain_size).unwrap_or(i64::MAX),
        view_sha256: stored.sha256,
        view_rows: i64::try_from(report.rows_out).unwrap_or(i64::MAX),
        view_schema_json: crate::data::schema_json(&report.schema).to_string(),
        kanon_json: serde_json::to_string(&report.kanon).unwrap_or_default(),
    };
    if let Err(e) = app.store.insert_grant(&row).await {
        let _ = app.data.blobs.delete(&stored.key).await;
        return Err(e.into());
    }
    app.record(
        ctx,
        "grant.created",
        format!("Grant::{id:?}"),
        Some(&row.tenant),
        json!({ "dataset": row.dataset_id, "version": row.version, "grantee": row.grantee,
                "granteeKind": row.grantee_kind, "columns": req.columns,
                "rowFilter": row.row_filter, "purpose": row.purpose,
                "expiresAt": row.expires_at, "rows": row.view_rows,
                "kAnonymity": report.kanon }),
    )
    .await?;
    if kind == SANDBOX {
        recheck_sandbox_grant(app, ctx, &row, &dataset.classification, k_checked).await?;
    }
    Ok(GrantView::new(&row, now))
}

/// A sandbox grant once recorded: look at its sandbox again, for what changed while the
/// view was being made (a vendor added, the sandbox deleted). Adding a vendor checks the
/// grants recorded before it; this checks the other order, so one of the two always sees
/// the other. When the grant may not stand it is revoked (audited) and the request fails.
async fn recheck_sandbox_grant(
    app: &AppState,
    ctx: &Ctx,
    row: &GrantRow,
    classification: &str,
    k_checked: Option<u32>,
) -> Result<(), ApiError> {
    let sandbox = app.store.get_sandbox(&row.grantee).await?;
    let vendors = match &sandbox {
        Some(r) if r.row.state != DELETING => r.members.len(),
        _ => {
            let reason = format!(
                "sandbox {:?} was deleted while the grant was being made",
                row.grantee
            );
            revoke_for(app, ctx, row, &reason).await?;
            return Err(ApiError::Conflict(format!(
                "{reason}; grant {} is revoked",
                row.id
            )));
        }
    };
    if k_checked.is_some() || !grants::needs_k(classification, false, vendors) {
        return Ok(());
    }
    let min_k = super::data_policy::min_k(app, &row.tenant).await?;
    if let Err(e) = grants::recheck_k(row, min_k) {
        let reason = format!(
            "a vendor was added to sandbox {:?} while the grant was being made, and the view \
             does not pass the k-anonymity gate: {e}",
            row.grantee
        );
        revoke_for(app, ctx, row, &reason).await?;
        return Err(ApiError::Data(crate::data::DataError::KAnonymity(format!(
            "{reason}; grant {} is revoked",
            row.id
        ))));
    }
    Ok(())
}

/// Grants the caller may see: its tenants' and those that name it.
#[utoipa::path(
    get, path = "/v1/grants", tag = "grants",
    responses((status = 200, body = Vec<GrantView>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(State(app): State<AppState>, ctx: Ctx) -> Result<Json<Vec<GrantView>>, ApiError> {
    let listed = list_visible(&app, &ctx).await?;
    Ok(Json(listed.into_iter().map(|(v, _)| v).collect()))
}

/// The grants `ctx`'s caller may see, each with whether they may revoke it (the API's
/// list and the console's page).
pub async fn list_visible(app: &AppState, ctx: &Ctx) -> Result<Vec<(GrantView, bool)>, ApiError> {
    let now = Utc::now();
    let mut out = Vec::new();
    for g in app.store.list_grants().await? {
        let readers = readers(app, &g).await?;
        let resource = Resource::Grant {
            id: &g.id,
            tenant: &g.tenant,
            readers: &readers,
            to_sandbox: g.grantee_kind == SANDBOX,
        };
        if app
            .authz
            .decide(&ctx.caller, Action::GrantRead, &resource)?
            .allowed
        {
            let may_revoke = app
                .authz
                .decide(&ctx.caller, Action::GrantRevoke, &resource)?
                .allowed;
            out.push((GrantView::new(&g, now), may_revoke));
        }
    }
    Ok(out)
}

#[utoipa::path(
    get, path = "/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path)),
    responses((status = 200, body = GrantView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = load_authorized(&app, &ctx, Action::GrantRead, &id).await?;
    Ok(Json(GrantView::new(&g, Utc::now())))
}

/// Revoke a grant: from now on its data, profile tokens and file links answer 403.
#[utoipa::path(
    delete, path = "/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Revoked", body = GrantView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    revoke_grant(&app, &ctx, &id).await.map(Json)
}

/// Revoke grant `id` (the API's `DELETE /v1/grants/{id}` and the console's button).
pub async fn revoke_grant(app: &AppState, ctx: &Ctx, id: &str) -> Result<GrantView, ApiError> {
    let g = load_authorized(app, ctx, Action::GrantRevoke, id).await?;
    let now = Utc::now();
    let by = &ctx.caller.principal.subject;
    if !app.store.revoke_grant(id, by, &timestamp(now)).await? {
        return Err(ApiError::Conflict(format!(
            "grant {id:?} is already revoked"
        )));
    }
    app.record(
        ctx,
        "grant.revoked",
        format!("Grant::{id:?}"),
        Some(&g.tenant),
        json!({}),
    )
    .await?;
    if let Err(e) = app.data.blobs.delete(&g.view_key).await {
        tracing::warn!(error = %e, "revoked grant's view not removed; it stays encrypted");
    }
    let g = app
        .store
        .get_grant(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(GrantView::new(&g, now))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DataParams {
    /// `parquet` (default; supports Range) or `arrow` (Arrow IPC stream).
    format: Option<String>,
}

/// The grant's view, as Parquet (with HTTP range requests) or as an Arrow IPC stream.
#[utoipa::path(
    get, path = "/v1/grants/{id}/data", tag = "grants",
    params(("id" = String, Path), DataParams),
    responses(
        (status = 200, description = "The whole view", content_type = "application/vnd.apache.parquet"),
        (status = 206, description = "A byte range of the Parquet view"),
        (status = 403, description = "Revoked or expired grant, or not a reader", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn data(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    params: Result<Query<DataParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let format = match params.format.as_deref() {
        None | Some("parquet") => ServeFormat::Parquet,
        Some("arrow") => ServeFormat::ArrowStream,
        Some(other) => {
            return Err(ApiError::Validation(vec![FieldIssue::new(
                "format",
                "one_of",
                format!("{other:?} is not parquet or arrow"),
            )]));
        }
    };
    let g = load_authorized(&app, &ctx, Action::GrantData, &id).await?;
    ensure_active(&g)?;
    serve_view(
        &app,
        &g,
        &ctx.caller.principal.subject,
        &ctx.request_id,
        format,
        &headers,
    )
    .await
}

/// The caller's groups that make them a member of `tenant`: what a profile token records
/// so that each use can ask again whether its holder still belongs to the tenant.
fn tenant_groups(app: &AppState, ctx: &Ctx, tenant: &str) -> Vec<String> {
    let Some(t) = app.tenants.get(tenant) else {
        return Vec::new();
    };
    ctx.caller
        .principal
        .groups
        .iter()
        .filter(|g| t.spec.members.iter().any(|m| &m.group == *g))
        .cloned()
        .collect()
}

/// A Delta Sharing profile file for this grant.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub share_credentials_version: u32,
    pub endpoint: String,
    pub bearer_token: String,
    pub expiration_time: String,
}

/// A Delta Sharing profile (endpoint and a bearer token scoped to this grant, valid until
/// the grant's expiry or the profile lifetime, whichever comes first).
#[utoipa::path(
    get, path = "/v1/grants/{id}/profile", tag = "grants",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = Profile),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn profile(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let g = load_authorized(&app, &ctx, Action::GrantData, &id).await?;
    ensure_active(&g)?;
    let grant_exp = chrono::DateTime::parse_from_rfc3339(&g.expires_at)
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let ttl = i64::try_from(app.data.config.profile_ttl.as_secs()).unwrap_or(i64::MAX);
    let exp = grant_exp.min(Utc::now().timestamp().saturating_add(ttl));
    let claims = Claims {
        g: g.id.clone(),
        sub: ctx.caller.principal.subject.clone(),
        exp,
        grp: tenant_groups(&app, &ctx, &g.tenant),
    };
    let token = tokens::sign(app.data.secret(), Kind::Profile, &claims);
    app.record(
        &ctx,
        "grant.profile.issued",
        format!("Grant::{id:?}"),
        Some(&g.tenant),
        json!({ "expiresAt": exp }),
    )
    .await?;
    let expiration = chrono::DateTime::from_timestamp(exp, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(Json(Profile {
        share_credentials_version: 1,
        endpoint: format!("{}/delta-sharing", app.data.public_url()),
        bearer_token: token,
        expiration_time: expiration,
    }))
}
