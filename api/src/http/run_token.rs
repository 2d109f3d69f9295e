//! A trial run's pod as a caller: the run token (`serre-rt1.…`, from the Secret the
//! gateway made with the run, mounted into the init step and the trial container). It is
//! the pod's only credential: it opens this run's granted views (`run_data.rs`) and this
//! run's results endpoint (`run_results.rs`), nothing else, and only while the run is
//! going. Every route that takes it goes through [`verify`] then [`open_run`].

use axum::http::{HeaderMap, header};
use chrono::Utc;

use super::AppState;
use crate::error::ApiError;
use crate::grants::tokens::{self, Claims, Kind};
use crate::identity::AuthError;
use crate::runs;
use crate::store::RunRow;

/// The run token of the request, its signature checked in constant time
/// (`Mac::verify_slice`) and its expiry; 401 otherwise (an OIDC token is not one).
pub(super) fn verify(app: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingToken)?;
    let token = token
        .strip_prefix("Bearer ")
        .ok_or(AuthError::NotBearer)?
        .trim();
    tokens::verify(app.data.secret(), Kind::Run, token, Utc::now().timestamp()).map_err(|e| {
        match e {
            tokens::TokenError::Expired => AuthError::Expired,
            tokens::TokenError::BadSignature => AuthError::InvalidSignature,
            tokens::TokenError::Malformed => AuthError::Malformed("not a run token".into()),
        }
        .into()
    })
}

/// The audit principal of a run's pod.
pub(super) fn principal(run: &str) -> String {
    format!("run:{run}")
}

/// The request id, for the audit entries.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The run named by the path, if the token is this run's and the run is still going;
/// 403 with the reason otherwise. "Going" is asked of the gateway's record (set at once
/// by a cancellation) and, with a cluster, of the TrialRun itself: the record follows the
/// TrialRun only at each accounting pass, the TrialRun is over as soon as its Job is.
pub(super) async fn open_run(
    app: &AppState,
    claims: &Claims,
    run: &str,
) -> Result<RunRow, ApiError> {
    let refuse = |m: String| ApiError::Forbidden(m);
    if claims.g != run {
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
    if let Some(cluster) = &app.cluster {
        let live = runs::cluster::get(cluster.client(), &row.namespace, run)
            .await?
            .ok_or_else(|| refuse(format!("run {run:?} no longer exists in the cluster")))?;
        if live.spec.cancelled {
            return Err(refuse(format!("run {run:?} is over (Cancelled)")));
        }
        if let Some(phase) = live.status.map(|s| s.phase).filter(|p| p.is_final()) {
            return Err(refuse(format!("run {run:?} is over ({phase:?})")));
        }
    }
    Ok(row)
}
