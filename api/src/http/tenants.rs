//! `/v1/me` and `/v1/tenants/{tenant}/policy` (the tenant's self-service policy).

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::SelfServicePolicy;
use crate::store::{TenantPolicyRow, timestamp};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub subject: String,
    pub issuer: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    pub metropole_admin: bool,
    /// Tenants where the caller is an admin.
    pub admin_of: Vec<String>,
    /// Tenants where the caller is a member or an admin.
    pub member_of: Vec<String>,
}

/// The caller as the gateway sees them: identity and roles. It concerns no resource, so
/// it is the one endpoint that does not consult the policies.
#[utoipa::path(
    get, path = "/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn me(ctx: Ctx) -> Json<Me> {
    let p = ctx.caller.principal;
    let r = ctx.caller.roles;
    Json(Me {
        subject: p.subject,
        issuer: p.issuer,
        groups: p.groups,
        organisation: p.organisation,
        metropole_admin: r.metropole_admin,
        admin_of: r.admin_of.into_iter().collect(),
        member_of: r.member_of.into_iter().collect(),
    })
}

pub(super) fn unknown_tenant(t: &str) -> ApiError {
    ApiError::NotFound(format!("tenant {t:?} not found"))
}

pub(super) async fn known(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    tenant: &str,
) -> Result<(), ApiError> {
    if app.tenants.get(tenant).is_none() {
        app.record_missing(ctx, action, format!("Tenant::{tenant:?}"))
            .await?;
        return Err(unknown_tenant(tenant));
    }
    Ok(())
}

/// The tenant's self-service policy (the gateway's default if none was set).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/policy", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = SelfServicePolicy), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_policy(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
) -> Result<Json<SelfServicePolicy>, ApiError> {
    known(&app, &ctx, Action::TenantPolicyRead, &tenant).await?;
    app.authorize(
        &ctx,
        Action::TenantPolicyRead,
        &Resource::Tenant(&tenant),
        || unknown_tenant(&tenant),
    )
    .await?;
    Ok(Json(match app.store.tenant_policy(&tenant).await? {
        Some(row) => SelfServicePolicy::from_row(&row),
        None => SelfServicePolicy::default_from(&app.sandboxes),
    }))
}

/// Set the tenant's self-service policy (Métropole admins).
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/policy", tag = "tenants",
    params(("tenant" = String, Path)),
    request_body = SelfServicePolicy,
    responses(
        (status = 200, body = SelfServicePolicy),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_policy(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Body(policy): Body<SelfServicePolicy>,
) -> Result<Json<SelfServicePolicy>, ApiError> {
    let issues = policy.validate(&app.sandboxes);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    known(&app, &ctx, Action::TenantPolicyWrite, &tenant).await?;
    app.authorize(
        &ctx,
        Action::TenantPolicyWrite,
        &Resource::Tenant(&tenant),
        || unknown_tenant(&tenant),
    )
    .await?;
    app.store
        .put_tenant_policy(&TenantPolicyRow {
            tenant: tenant.clone(),
            max_days: i64::from(policy.max_days),
            allow_gpu: policy.allow_gpu,
            max_cpu: policy.max_cpu.clone(),
            max_memory: policy.max_memory.clone(),
            max_storage: policy.max_storage.clone(),
            updated_by: ctx.caller.principal.subject.clone(),
            updated_at: timestamp(Utc::now()),
        })
        .await?;
    app.record(
        &ctx,
        "tenant.policy.updated",
        format!("Tenant::{tenant:?}"),
        Some(&tenant),
        json!({ "policy": policy }),
    )
    .await?;
    Ok(Json(policy))
}
