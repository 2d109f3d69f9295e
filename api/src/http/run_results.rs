//! `PUT /v1/runs/{run}/results/{path}`: a trial run sends one result file, with its run
//! token (`run_token.rs`) and nothing else — its pod holds no storage credential. The
//! gateway streams the body (at most `--max-run-result-bytes`) into the sandbox bucket at
//! `runs/<run>/<path>`, with the sandbox's S3 key and SSE-C key read from the Secret
//! `sandbox-storage` for this request only: exactly where `GET …/runs/{id}/results` reads.
//! A token writes only its own run's results, and only while the run is going. Every
//! answer, written or refused, is audited under the run's name.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::run_token;
use crate::audit::{Draft, Outcome};
use crate::error::{ApiError, ErrorBody};
use crate::runs::outputs::{self, WrittenResult};

/// A trial run writes one of its results (the run's token, not an OIDC token).
#[utoipa::path(
    put, path = "/v1/runs/{run}/results/{path}", tag = "runs",
    params(
        ("run" = String, Path),
        ("path" = String, Path, description = "Key relative to runs/<run>/, e.g. results.json or preds/part-0.csv"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file, streamed; at most --max-run-result-bytes"),
    responses(
        (status = 201, description = "Written (an existing object of that path is replaced)", body = WrittenResult),
        (status = 400, description = "The body broke off: nothing kept", body = ErrorBody),
        (status = 401, description = "No valid run token", body = ErrorBody),
        (status = 403, description = "Another run's token, or the run is over or cancelled", body = ErrorBody),
        (status = 409, description = "storage_off: the sandbox has no object storage; or a gateway without a cluster", body = ErrorBody),
        (status = 413, description = "Larger than --max-run-result-bytes: nothing kept", body = ErrorBody),
        (status = 422, description = "A path with an empty, '.' or '..' segment, a leading '/', or over 1024 bytes", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn write(
    State(app): State<AppState>,
    Path((run, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // -- Extract: the run's token.
    let claims = run_token::verify(&app, &headers)?;
    let principal = run_token::principal(&run);
    let request_id = run_token::request_id(&headers);

    // -- Validation: the path, the announced size.
    outputs::validate_path(&path).map_err(|i| ApiError::Validation(vec![i]))?;
    let limit = app.data.config.max_run_result_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(outputs::OutputsError::TooLarge { limit }.into());
    }

    // -- Authorization: the token's own run, still going.
    let decision = run_token::open_run(&app, &claims, &run).await;
    let mut draft = Draft::new(
        &principal,
        "run.results.write",
        format!("Run::{run:?}"),
        if decision.is_ok() {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
    );
    draft.request_id = request_id.clone();
    draft.policies = vec!["run-token".into()];
    draft.details = serde_json::json!({ "path": path, "requestedBy": claims.sub,
        "refused": decision.as_ref().err().map(ToString::to_string) });
    if let Ok(row) = &decision {
        draft.tenant = Some(row.tenant.clone());
    }
    app.audit.append(vec![draft]).await?;
    let row = decision?;

    // -- Business logic: stream it into the sandbox bucket under the run's prefix.
    let cluster = app.cluster.clone().ok_or_else(|| {
        ApiError::Conflict("this gateway runs without a cluster: runs' results need one".into())
    })?;
    let store = outputs::bucket(cluster.client(), &row).await?;
    let written =
        outputs::write_result(store, &row.name, &path, body.into_data_stream(), limit).await?;
    let mut draft = Draft::new(
        &principal,
        "run.results.written",
        format!("Run::{run:?}"),
        Outcome::Change,
    );
    draft.request_id = request_id;
    draft.tenant = Some(row.tenant.clone());
    draft.details = serde_json::json!({ "sandbox": row.sandbox, "path": written.path,
        "bytes": written.size, "etag": written.etag, "requestedBy": claims.sub });
    app.audit.append(vec![draft]).await?;
    Ok((StatusCode::CREATED, Json(written)).into_response())
}
