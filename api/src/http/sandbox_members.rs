//! `/v1/sandboxes/{name}/members`: the vendors of a sandbox, added and removed by tenant
//! admins. A vendor reads every live grant of the sandbox, so adding one re-runs the
//! k-anonymity gate on each.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::sandboxes::{load_authorized, not_found, render};
use super::{AppState, Body, Ctx};
use crate::authz::Action;
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::{self, AddMember, SandboxView};
use crate::store::{MemberRow, SandboxRecord, timestamp};

/// Add a vendor principal to a sandbox (tenant admins).
#[utoipa::path(
    post, path = "/v1/sandboxes/{name}/members", tag = "sandboxes",
    params(("name" = String, Path)),
    request_body = AddMember,
    responses(
        (status = 201, body = SandboxView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_member(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Body(body): Body<AddMember>,
) -> Result<Response, ApiError> {
    let issues = sandboxes::validate_subject(&body.subject);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let record = load_authorized(&app, &ctx, Action::SandboxMembersAdd, &name).await?;
    let tenant = &record.row.tenant;

    // -- Business logic. A vendor reads every live grant of the sandbox: the k-anonymity
    //    gate runs again on each, before adding and once more after (a grant recorded
    //    meanwhile is checked by one side or the other).
    let blockers = super::grants::vendor_blockers(&app, &name, tenant).await?;
    if !blockers.is_empty() {
        return Err(refuse_vendor(&app, &ctx, &record, &body.subject, &blockers).await);
    }
    let member = MemberRow {
        sandbox: name.clone(),
        subject: body.subject.clone(),
        added_by: ctx.caller.principal.subject.clone(),
        added_at: timestamp(Utc::now()),
    };
    if !app.store.add_member(&member).await? {
        return Err(ApiError::Conflict(format!(
            "{:?} is already a member",
            body.subject
        )));
    }
    let blockers = super::grants::vendor_blockers(&app, &name, tenant).await?;
    if !blockers.is_empty() {
        app.store.remove_member(&name, &body.subject).await?;
        return Err(refuse_vendor(&app, &ctx, &record, &body.subject, &blockers).await);
    }
    app.record(
        &ctx,
        "sandbox.member_added",
        format!("Sandbox::{name:?}"),
        Some(&record.row.tenant),
        json!({ "subject": body.subject }),
    )
    .await?;
    let record = app
        .store
        .get_sandbox(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok((StatusCode::CREATED, Json(render(&app, &record)?)).into_response())
}

/// Refuse a vendor because of grants that do not pass the k-anonymity gate: audited (a
/// denial naming the grants and the rule) and answered 409 with the same reasons.
async fn refuse_vendor(
    app: &AppState,
    ctx: &Ctx,
    record: &SandboxRecord,
    subject: &str,
    blockers: &[super::grants::KBlocker],
) -> ApiError {
    let name = &record.row.name;
    let mut draft = ctx.draft(
        Action::SandboxMembersAdd.name(),
        format!("Sandbox::{name:?}"),
        crate::audit::Outcome::Deny,
    );
    draft.tenant = Some(record.row.tenant.clone());
    draft.details = json!({ "subject": subject, "rule": "k-anonymity", "grants": blockers });
    if let Err(e) = app.audit.append(vec![draft]).await {
        return e.into();
    }
    let grants: Vec<String> = blockers.iter().map(ToString::to_string).collect();
    ApiError::Conflict(format!(
        "vendor {subject:?} may not be added to sandbox {name:?}: a vendor reads every live \
         grant of the sandbox, and personal data reaches a vendor only through a view that \
         passes the k-anonymity gate; these do not: {}. Revoke them, or grant again with a \
         recipe that reaches the tenant's minimum k, then add the vendor",
        grants.join("; ")
    ))
}

/// Remove a vendor principal from a sandbox (tenant admins).
#[utoipa::path(
    delete, path = "/v1/sandboxes/{name}/members/{subject}", tag = "sandboxes",
    params(("name" = String, Path), ("subject" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove_member(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, subject)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let record = load_authorized(&app, &ctx, Action::SandboxMembersRemove, &name).await?;
    if !app.store.remove_member(&name, &subject).await? {
        return Err(ApiError::NotFound(format!(
            "{subject:?} is not a member of sandbox {name:?}"
        )));
    }
    app.record(
        &ctx,
        "sandbox.member_removed",
        format!("Sandbox::{name:?}"),
        Some(&record.row.tenant),
        json!({ "subject": subject }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
