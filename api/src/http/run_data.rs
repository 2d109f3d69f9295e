//! `GET /v1/runs/{run}/grants/{id}/data`: a trial run's init step fetches one granted
//! view with the run's token (`serre-rt1.…`, from the Secret the gateway created with the
//! run; `run_token.rs`). The token opens only the grants the run lists, only while the run
//! is not over, and only while each grant is active and still names the run's sandbox or
//! requester. Every answer, served or refused, is audited under the run's name.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serre_resources::TrialRunSpec;

use super::AppState;
use super::run_token;
use super::serve::{ServeFormat, serve_view};
use crate::audit::{Draft, Outcome};
use crate::error::ApiError;
use crate::grants::tokens::Claims;
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
    let claims = run_token::verify(&app, &headers)?;
    let principal = run_token::principal(&run);
    let request_id = run_token::request_id(&headers);

    // -- Authorize: the token's run, still going, listing this grant, which still names it.
    let decision = authorize(&app, &claims, &run, &id).await;
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
    claims: &Claims,
    run: &str,
    grant: &str,
) -> Result<(crate::store::GrantRow, crate::store::RunRow), ApiError> {
    let refuse = |m: String| ApiError::Forbidden(m);
    let row = run_token::open_run(app, claims, run).await?;
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
