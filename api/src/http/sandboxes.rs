//! `/v1/sandboxes`: self-service requests and approval (vendor members:
//! `sandbox_members.rs`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use serre_resources::SandboxSpec;
use utoipa::IntoParams;

use super::{AppState, Body, Ctx, MaybeBody};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::{
    self, ClusterKnowledge, CreateSandbox, Decide, FieldIssue, SandboxList, SandboxView,
    SelfServicePolicy,
};
use crate::store::{
    APPROVED, DELETING, PENDING_APPROVAL, REJECTED, SandboxRecord, SandboxRow, timestamp,
};

pub(super) fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("sandbox {name:?} not found"))
}

fn resource<'a>(r: &'a SandboxRecord, vendors: &'a [String]) -> Resource<'a> {
    Resource::Sandbox {
        name: &r.row.name,
        tenant: &r.row.tenant,
        created_by: &r.row.created_by,
        vendors,
    }
}

/// Load a sandbox; a missing one is recorded and answers 404.
async fn load(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    name: &str,
) -> Result<SandboxRecord, ApiError> {
    match app.store.get_sandbox(name).await? {
        Some(r) => Ok(r),
        None => {
            app.record_missing(ctx, action, format!("Sandbox::{name:?}"))
                .await?;
            Err(not_found(name))
        }
    }
}

/// Load and authorize in one step: missing and foreign sandboxes both answer 404.
pub(crate) async fn load_authorized(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    name: &str,
) -> Result<SandboxRecord, ApiError> {
    let record = load(app, ctx, action, name).await?;
    let vendors = record.vendor_subjects();
    app.authorize(ctx, action, &resource(&record, &vendors), || {
        not_found(name)
    })
    .await?;
    Ok(record)
}

pub(crate) fn render(app: &AppState, record: &SandboxRecord) -> Result<SandboxView, ApiError> {
    let spec = sandboxes::spec_of(record).map_err(ApiError::Internal)?;
    let seen = app.cluster.as_ref().map(|c| c.sandbox(&record.row.name));
    let knowledge = match (&app.cluster, &seen) {
        (None, _) => ClusterKnowledge::Disabled,
        (Some(c), seen) => ClusterKnowledge::Seen {
            status: seen
                .as_ref()
                .and_then(|s| s.as_ref())
                .and_then(|s| s.status.as_ref()),
            last_error: c.last_error(),
        },
    };
    Ok(sandboxes::view(record, &spec, knowledge))
}

/// Request a sandbox. Within the tenant's self-service policy it is approved at once;
/// otherwise it waits for a tenant admin.
#[utoipa::path(
    post, path = "/v1/sandboxes", tag = "sandboxes",
    request_body = CreateSandbox,
    responses(
        (status = 201, description = "Created (approved or waiting for approval)", body = SandboxView),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed to request sandboxes for this tenant", body = ErrorBody),
        (status = 409, description = "Name already taken in this tenant", body = ErrorBody),
        (status = 422, description = "Invalid request; each problem names its field and rule", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    Body(body): Body<CreateSandbox>,
) -> Result<Response, ApiError> {
    let view = create_sandbox(&app, &ctx, body).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// The request itself, shared by the API and the console: validation, authorization
/// (Cedar, audited), then the self-service decision.
pub(crate) async fn create_sandbox(
    app: &AppState,
    ctx: &Ctx,
    body: CreateSandbox,
) -> Result<SandboxView, ApiError> {
    // -- Validation: a tenant the caller cannot see answers like an unknown one.
    let now = Utc::now();
    let tenant = match app.tenants.get(&body.tenant) {
        None => None,
        Some(t) => {
            let probe = Resource::Tenant(&body.tenant);
            let seen = app.authz.decide(&ctx.caller, Action::TenantRead, &probe)?;
            if seen.allowed {
                Some(t)
            } else {
                let mut draft = ctx.draft(
                    Action::SandboxCreate.name(),
                    probe.describe(),
                    crate::audit::Outcome::Deny,
                );
                draft.tenant = Some(body.tenant.clone());
                draft.policies = seen.policies;
                app.audit.append(vec![draft]).await?;
                None
            }
        }
    };
    let (name, spec) = sandboxes::validate_create(
        &body,
        tenant.as_deref(),
        &ctx.caller.principal.subject,
        &app.sandboxes,
        now,
    )
    .map_err(ApiError::Validation)?;

    // -- Authorization
    app.authorize(
        ctx,
        Action::SandboxCreate,
        &Resource::Tenant(&spec.tenant),
        || {
            ApiError::Validation(vec![FieldIssue::new(
                "tenant",
                "unknown_tenant",
                format!("no tenant {:?} that you belong to", spec.tenant),
            )])
        },
    )
    .await?;

    // -- Business logic
    let policy = match app.store.tenant_policy(&spec.tenant).await? {
        Some(row) => SelfServicePolicy::from_row(&row),
        None => SelfServicePolicy::default_from(&app.sandboxes),
    };
    let reasons = policy.approval_reasons(&spec, now);
    let self_service = reasons.is_empty();
    let row = SandboxRow {
        name: name.clone(),
        tenant: spec.tenant.clone(),
        spec: serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        state: if self_service {
            APPROVED
        } else {
            PENDING_APPROVAL
        }
        .to_owned(),
        self_service,
        created_by: ctx.caller.principal.subject.clone(),
        created_at: timestamp(now),
        decided_by: None,
        decided_at: self_service.then(|| timestamp(now)),
        decision_reason: self_service.then(|| "within the tenant's self-service policy".to_owned()),
        approval_reasons: serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into()),
        version: 1,
        applied_version: None,
        applied_at: None,
        push_error: None,
        push_failed_version: None,
    };
    app.store.insert_sandbox(&row).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(m) => ApiError::Conflict(m),
        other => other.into(),
    })?;
    app.record(
        ctx,
        "sandbox.requested",
        format!("Sandbox::{name:?}"),
        Some(&spec.tenant),
        json!({ "state": row.state, "selfService": self_service, "approvalReasons": reasons }),
    )
    .await?;
    if self_service {
        app.push.notify_one();
    }
    let record = SandboxRecord {
        row,
        members: Vec::new(),
    };
    render(app, &record)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's sandboxes.
    pub tenant: Option<String>,
    /// Only requests in this state (`PendingApproval`, `Approved`, `Rejected`, `Deleting`).
    pub state: Option<String>,
}

/// The sandboxes the caller may see: their tenants', those they were added to as a
/// vendor, or every tenant's for a Métropole admin.
#[utoipa::path(
    get, path = "/v1/sandboxes", tag = "sandboxes",
    params(ListQuery),
    responses(
        (status = 200, body = SandboxList),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown tenant (or not yours)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Result<Json<SandboxList>, ApiError> {
    list_sandboxes(&app, &ctx, q).await.map(Json)
}

/// The listing itself, shared by the API and the console: one recorded decision per
/// tenant listed, vendors' sandboxes each authorized.
pub(crate) async fn list_sandboxes(
    app: &AppState,
    ctx: &Ctx,
    q: ListQuery,
) -> Result<SandboxList, ApiError> {
    // -- Validation
    if let Some(s) = &q.state
        && ![PENDING_APPROVAL, APPROVED, REJECTED, DELETING].contains(&s.as_str())
    {
        return Err(ApiError::Validation(vec![FieldIssue::new(
            "state",
            "enum",
            "must be PendingApproval, Approved, Rejected or Deleting",
        )]));
    }

    // -- Authorization (per tenant listed) and business logic
    let records = match &q.tenant {
        Some(t) => {
            let hidden = || ApiError::NotFound(format!("tenant {t:?} not found"));
            if app.tenants.get(t).is_none() {
                app.record_missing(ctx, Action::SandboxList, format!("Tenant::{t:?}"))
                    .await?;
                return Err(hidden());
            }
            app.authorize(ctx, Action::SandboxList, &Resource::Tenant(t), hidden)
                .await?;
            app.store
                .list_sandboxes(std::slice::from_ref(t), None, false)
                .await?
        }
        None if ctx.caller.roles.metropole_admin => {
            app.authorize(ctx, Action::SandboxList, &Resource::Platform, || {
                ApiError::Forbidden("you may not list every tenant's sandboxes".into())
            })
            .await?;
            app.store.list_sandboxes(&[], None, true).await?
        }
        None => {
            let mut tenants = Vec::new();
            for t in &ctx.caller.roles.member_of {
                let res = Resource::Tenant(t);
                if app
                    .decide_recorded(ctx, Action::SandboxList, &res)
                    .await?
                    .allowed
                {
                    tenants.push(t.clone());
                }
            }
            let mut records = app.store.list_sandboxes(&tenants, None, false).await?;
            // Sandboxes the caller was added to as a vendor: each one authorized.
            let vendor = app
                .store
                .list_sandboxes(&[], Some(&ctx.caller.principal.subject), false)
                .await?;
            for r in vendor {
                if tenants.contains(&r.row.tenant) {
                    continue;
                }
                let vendors = r.vendor_subjects();
                let allowed = app
                    .decide_recorded(ctx, Action::SandboxRead, &resource(&r, &vendors))
                    .await?
                    .allowed;
                if allowed {
                    records.push(r);
                }
            }
            records.sort_by(|a, b| a.row.name.cmp(&b.row.name));
            records
        }
    };
    let items = records
        .iter()
        .filter(|r| q.state.as_ref().is_none_or(|s| &r.row.state == s))
        .map(|r| render(app, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SandboxList { items })
}

/// One sandbox, with the operator's status (phase, conditions) when it is applied.
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}", tag = "sandboxes",
    params(("name" = String, Path, description = "Sandbox name, `<tenant>--<name>`")),
    responses(
        (status = 200, body = SandboxView),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such sandbox (or not yours)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let record = load_authorized(&app, &ctx, Action::SandboxRead, &name).await?;
    Ok(Json(render(&app, &record)?))
}

/// Withdraw a request or delete a sandbox (its creator, a tenant admin or a Métropole
/// admin). An applied sandbox is deleted from the cluster (202 until then).
#[utoipa::path(
    delete, path = "/v1/sandboxes/{name}", tag = "sandboxes",
    params(("name" = String, Path)),
    responses(
        (status = 202, description = "Deletion from the cluster requested", body = SandboxView),
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Changed concurrently; retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let record = load_authorized(&app, &ctx, Action::SandboxDelete, &name).await?;
    let res = format!("Sandbox::{name:?}");
    let tenant = record.row.tenant.clone();
    let never_pushed = record.row.state != APPROVED && record.row.state != DELETING;
    if never_pushed || app.cluster.is_none() {
        app.store.delete_sandbox(&name).await?;
        app.record(
            &ctx,
            "sandbox.deleted",
            res,
            Some(&tenant),
            json!({ "previousState": record.row.state }),
        )
        .await?;
        revoke_grants_of(&app, &ctx, &name).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if record.row.state == APPROVED {
        if !app.store.mark_deleting(&name, record.row.version).await? {
            return Err(ApiError::Conflict(format!(
                "sandbox {name:?} changed meanwhile; retry"
            )));
        }
        app.record(
            &ctx,
            "sandbox.deletion_requested",
            res,
            Some(&tenant),
            json!({}),
        )
        .await?;
        // Its grants end with the request, not when the cluster catches up.
        revoke_grants_of(&app, &ctx, &name).await?;
        app.push.notify_one();
    }
    let record = app
        .store
        .get_sandbox(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok((StatusCode::ACCEPTED, Json(render(&app, &record)?)).into_response())
}

async fn decide(
    app: AppState,
    ctx: Ctx,
    name: String,
    action: Action,
    reason: Option<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let record = load_authorized(&app, &ctx, action, &name).await?;
    if record.row.state != PENDING_APPROVAL {
        return Err(ApiError::Conflict(format!(
            "sandbox {name:?} is {}; only requests waiting for approval can be decided",
            record.row.state
        )));
    }
    if action == Action::SandboxApprove {
        check_egress_approval(&app, &ctx, &record).await?;
    }
    let (state, event) = match action {
        Action::SandboxApprove => (APPROVED, "sandbox.approved"),
        _ => (REJECTED, "sandbox.rejected"),
    };
    let now = timestamp(Utc::now());
    let by = &ctx.caller.principal.subject;
    if !app
        .store
        .decide(
            &name,
            record.row.version,
            state,
            by,
            &now,
            reason.as_deref(),
        )
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "sandbox {name:?} changed meanwhile; retry"
        )));
    }
    app.record(
        &ctx,
        event,
        format!("Sandbox::{name:?}"),
        Some(&record.row.tenant),
        json!({ "reason": reason }),
    )
    .await?;
    if state == APPROVED {
        app.push.notify_one();
    }
    let record = app
        .store
        .get_sandbox(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(render(&app, &record)?))
}

/// Extra egress on approval: a destination never reachable is 422 (naming the field and
/// the rule); one beyond the Métropole's allowlist needs a Métropole admin (403
/// `egress_needs_metropole`, rule `egress_allowlist`). Refusals are audited.
async fn check_egress_approval(
    app: &AppState,
    ctx: &Ctx,
    record: &SandboxRecord,
) -> Result<(), ApiError> {
    let name = &record.row.name;
    let spec: SandboxSpec = serde_json::from_str(&record.row.spec)
        .map_err(|e| ApiError::Internal(format!("stored spec of {name:?}: {e}")))?;
    let refused =
        |rule: &str, detail: serde_json::Value| json!({ "rule": rule, "extraEgressCidrs": detail });
    match sandboxes::egress_beyond_allowlist(&spec, &app.sandboxes.egress) {
        Err(issues) => {
            let rules: Vec<&str> = issues.iter().map(|i| i.rule.as_str()).collect();
            app.record(
                ctx,
                "sandbox.approval.refused",
                format!("Sandbox::{name:?}"),
                Some(&record.row.tenant),
                refused("egress_rules", json!(rules)),
            )
            .await?;
            Err(ApiError::Validation(issues))
        }
        Ok(beyond) if !beyond.is_empty() && !ctx.caller.roles.metropole_admin => {
            app.record(
                ctx,
                "sandbox.approval.refused",
                format!("Sandbox::{name:?}"),
                Some(&record.row.tenant),
                refused("egress_allowlist", json!(beyond)),
            )
            .await?;
            let listed: Vec<String> = beyond.iter().map(|(f, c)| format!("{f} {c}")).collect();
            Err(ApiError::Refused {
                code: "egress_needs_metropole",
                message: format!(
                    "extra egress beyond the Métropole's allowlist needs a Métropole admin's \
                     approval (rule egress_allowlist): {}",
                    listed.join(", ")
                ),
            })
        }
        Ok(_) => Ok(()),
    }
}

/// Approve a request waiting for approval (tenant admins; never one's own request).
#[utoipa::path(
    post, path = "/v1/sandboxes/{name}/approve", tag = "sandboxes",
    params(("name" = String, Path)),
    request_body(content = Decide, description = "Optional reason"),
    responses(
        (status = 200, body = SandboxView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not waiting for approval", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn approve(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    MaybeBody(body): MaybeBody<Decide>,
) -> Result<Json<SandboxView>, ApiError> {
    let reason = body.and_then(|b| b.reason).filter(|r| !r.trim().is_empty());
    decide(app, ctx, name, Action::SandboxApprove, reason).await
}

/// Reject a request waiting for approval, with a reason.
#[utoipa::path(
    post, path = "/v1/sandboxes/{name}/reject", tag = "sandboxes",
    params(("name" = String, Path)),
    request_body = Decide,
    responses(
        (status = 200, body = SandboxView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, description = "No reason given", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reject(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Body(body): Body<Decide>,
) -> Result<Json<SandboxView>, ApiError> {
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldIssue::new(
                "reason",
                "required",
                "a rejection needs a reason",
            )])
        })?;
    decide(app, ctx, name, Action::SandboxReject, Some(reason)).await
}

/// Revoke every grant to a sandbox that is being deleted, each audited with the reason.
async fn revoke_grants_of(app: &AppState, ctx: &Ctx, name: &str) -> Result<(), ApiError> {
    let reason = format!("sandbox {name:?} was deleted");
    for g in app.store.unrevoked_sandbox_grants(name).await? {
        super::grants::revoke_for(app, ctx, &g, &reason).await?;
    }
    Ok(())
}
