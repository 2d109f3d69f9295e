//! `/v1/tenants/{tenant}/data-policy`: the minimum k-anonymity a tenant's personal data
//! must reach before a grant lets it reach a vendor (the gateway's `--min-k` until set).

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::tenants::{known, unknown_tenant};
use super::{AppState, Body, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::FieldIssue;
use crate::store::{DataPolicyRow, timestamp};

/// A tenant's data policy.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataPolicy {
    /// Smallest equivalence class, over the recipe's quasi-identifiers, of a personal
    /// dataset's view granted to a vendor (at least 2).
    pub min_k: u32,
}

/// The minimum k of a tenant: its own policy, or the gateway's default.
pub async fn min_k(app: &AppState, tenant: &str) -> Result<u32, ApiError> {
    Ok(match app.store.data_policy(tenant).await? {
        Some(row) => u32::try_from(row.min_k).unwrap_or(u32::MAX),
        None => app.data.config.min_k,
    })
}

#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/data-policy", tag = "datasets",
    params(("tenant" = String, Path)),
    responses((status = 200, body = DataPolicy), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
) -> Result<Json<DataPolicy>, ApiError> {
    known(&app, &ctx, Action::TenantPolicyRead, &tenant).await?;
    app.authorize(
        &ctx,
        Action::TenantPolicyRead,
        &Resource::Tenant(&tenant),
        || unknown_tenant(&tenant),
    )
    .await?;
    Ok(Json(DataPolicy {
        min_k: min_k(&app, &tenant).await?,
    }))
}

/// Set a tenant's minimum k (Métropole admins, like the self-service policy).
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/data-policy", tag = "datasets",
    params(("tenant" = String, Path)),
    request_body = DataPolicy,
    responses(
        (status = 200, body = DataPolicy),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Body(policy): Body<DataPolicy>,
) -> Result<Json<DataPolicy>, ApiError> {
    if !(2..=1_000_000).contains(&policy.min_k) {
        return Err(ApiError::Validation(vec![FieldIssue::new(
            "minK",
            "range",
            "must be between 2 and 1000000",
        )]));
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
        .put_data_policy(&DataPolicyRow {
            tenant: tenant.clone(),
            min_k: i64::from(policy.min_k),
            updated_by: ctx.caller.principal.subject.clone(),
            updated_at: timestamp(Utc::now()),
        })
        .await?;
    app.record(
        &ctx,
        "tenant.data_policy.updated",
        format!("Tenant::{tenant:?}"),
        Some(&tenant),
        json!({ "minK": policy.min_k }),
    )
    .await?;
    Ok(Json(policy))
}
