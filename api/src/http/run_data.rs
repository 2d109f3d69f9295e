//! `GET /v1/runs/{run}/grants/{id}/data`: a trial run's init step fetches one granted
//! view with the run's token (`serre-rt1.…`, from the Secret the gateway created with the
//! run). The token opens only the grants the run lists, only while the run is not over,
//! and only while each grant is active and still names the run's sandbox or requester.
//! Every answer, served or refused, is audited under the run's name.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use chrono::Utc;
use serre_resources::TrialRunSpec;

use super::AppState;
use super::serve::{ServeFormat, serve_view};
use crate::audit::{Draft, Outcome};
use crate::error::ApiError;
use crate::grants::tokens::{self, Kind};
use crate::identity::AuthError;
use crate::runs;

/// One granted view for a trial run's init step, with the run's token (not an OIDC
/// token): Parquet, single ranges honoured.
#[utoipa::path(
    get, path = "/v1/runs/{run}/grants/{id}/data", tag = "runs",
    params(("run" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "The view as Parquet"),
        (status = 206, description = "A range of it"),
        (status = 401, description = "No valid run token", body = crate::error::ErrorBody),
        (status = 403, description = "The run is over, or does not list this grant, or the grant is no longer active", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn data(
    State(app): State<AppState>,
    Path((run, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // -- Extract: the run's token.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingToken)?;
    let token = token
        .strip_prefix("Bearer ")
        .ok_or(AuthError::NotBearer)?
        .trim();
    let claims = tokens::verify(app.data.secret(), Kind::Run, token, Utc::now().timestamp())
        .map_err(|e| match e {
            tokens::TokenError::Expired => AuthError::Expired,
            tokens::TokenError::BadSignature => AuthError::InvalidSignature,
            tokens::TokenError::Malformed => AuthError::Malformed("not a run token".into()),
        })?;
    let principal = format!("run:{run}");
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();

    // -- Authorize: the token's run, still going, listing this grant, which still names it.
    let decision = authorize(&app, &claims.g, &run, &id).await;
    let mut draft = Draft::new(
        &principal,
        "grant.data",
        format!("Grant::{id:?}"),
        if decision.is_ok() {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
    );
    draft.request_id = request_id.clone();
    draft.policies = vec!["run-token".into()];
    draft.details = serde_json::json!({ "via": "run", "requestedBy": claims.sub,
        "refused": decision.as_ref().err().map(ToString::to_string) });
    if let Ok((g, _)) = &decision {
        draft.tenant = Some(g.tenant.clone());
    }
    app.audit.append(vec![draft]).await?;
    let (grant, _) = decision?;

    // -- Act: serve the stored view (audited with bytes and range by serve_view).
    serve_view(
        &app,
        &grant,
        &principal,
        &request_id,
        ServeFormat::Parquet,
        &headers,
    )
    .await
}

async fn authorize(
    app: &AppState,
    token_run: &str,
    run: &str,
    grant: &str,
) -> Result<(crate::store::GrantRow, crate::store::RunRow), ApiError> {
    let refuse = |m: String| ApiError::Forbidden(m);
    if token_run != run {
        return Err(refuse(format!(
            "this token belongs to another run, not {run:?}"
        )));
    }
    let row = app
        .store
        .get_run(run)
        .await?
        .ok_or_else(|| refuse(format!("run {run:?} does not exist")))?;
    if runs::is_final(&row.phase) || row.closed_at.is_some() {
        return Err(refuse(format!("run {run:?} is over ({})", row.phase)));
    }
    let spec: TrialRunSpec = serde_json::from_str(&row.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored run spec: {e}")))?;
    if !spec.grants.iter().any(|g| g == grant) {
        return Err(refuse(format!("run {run:?} does not list grant {grant:?}")));
    }
    let g = app
        .store
        .get_grant(grant)
        .await?
        .ok_or_else(|| refuse(format!("grant {grant:?} no longer exists")))?;
    let vendors = app
        .store
        .get_sandbox(&row.sandbox)
        .await?
        .map(|s| s.vendor_subjects())
        .unwrap_or_default();
    runs::grant_usable(
        &g,
        &row.sandbox,
        &row.tenant,
        &row.requested_by,
        &vendors,
        Utc::now(),
    )
    .map_err(refuse)?;
    Ok((g, row))
}
