//! `GET /v1/sandboxes/{name}/runs/{id}/logs` and `…/results[/{path}]`: what a run leaves
//! behind — its logs, streamed and bounded, and the objects it wrote to the sandbox bucket —
//! for whoever may read the run (`run.read`: the requester's own runs for a vendor, every
//! run for the tenant's members; anyone else gets 404). Every access is audited.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::runs::load_run;
use super::{AppState, Ctx};
use crate::audit::Outcome;
use crate::authz::Action;
use crate::error::{ApiError, ErrorBody};
use crate::runs::outputs::{self, ResultListing};
use crate::store::RunRow;

/// Header telling the byte limit a log body was read under (a cut body ends with a line
/// saying so).
const LIMIT_HEADER: &str = "x-serre-log-limit-bytes";

fn cluster(app: &AppState) -> Result<std::sync::Arc<crate::cluster::Cluster>, ApiError> {
    app.cluster.clone().ok_or_else(|| {
        ApiError::Conflict(
            "this gateway runs without a cluster: runs' logs and results need one".into(),
        )
    })
}

/// Record a read of the run's outputs (the `run.read` decision itself is recorded by
/// `load_run`).
async fn audit_read(
    app: &AppState,
    ctx: &Ctx,
    action: &str,
    run: &RunRow,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let mut draft = ctx.draft(action, format!("Run::{:?}", run.name), Outcome::Allow);
    draft.tenant = Some(run.tenant.clone());
    draft.details = details;
    app.audit.append(vec![draft]).await?;
    Ok(())
}

/// The run's log, from its pod, as plain text; at most `limitBytes` (a cut log ends with a
/// line saying so).
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}/logs", tag = "runs",
    params(
        ("name" = String, Path), ("id" = String, Path),
        ("container" = Option<String>, Query, description = "trial (default) or fetch-grants"),
        ("tailLines" = Option<i64>, Query, description = "Only the last lines, 1 to 100000"),
        ("limitBytes" = Option<u64>, Query, description = "At most this many bytes in the body, 1024 to 10485760 (default 1048576)"),
        ("follow" = Option<bool>, Query, description = "Stream while the container runs (until it ends, the limit, or one hour)"),
        ("timestamps" = Option<bool>, Query, description = "Prefix each line with its RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "text/plain; charset=utf-8, streamed; header x-serre-log-limit-bytes"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "run_not_started: the run has no pod yet, or the container has not started", body = ErrorBody),
        (status = 410, description = "run_logs_gone: the run is over and its pod was deleted", body = ErrorBody),
        (status = 422, description = "A bad parameter, or a container the run does not have", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn logs(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    // -- Validation
    let opts = outputs::parse_log_query(&query).map_err(ApiError::Validation)?;
    // -- Authorization
    let (_, run) = load_run(&app, &ctx, Action::RunRead, &name, &id).await?;
    // -- Business logic
    let cluster = cluster(&app)?;
    let (pod, body) = outputs::logs(cluster.client(), &run, &opts).await?;
    audit_read(
        &app,
        &ctx,
        "run.logs.read",
        &run,
        json!({ "sandbox": name, "pod": pod, "container": opts.container,
                "tailLines": opts.tail_lines, "limitBytes": opts.limit_bytes,
                "follow": opts.follow }),
    )
    .await?;
    let mut r = Body::from_stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(LIMIT_HEADER, HeaderValue::from(opts.limit_bytes));
    Ok(r)
}

/// The objects the run wrote under `runs/<run>/` in the sandbox bucket (at most 10 000).
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}/results", tag = "runs",
    params(("name" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = ResultListing),
        (status = 404, body = ErrorBody),
        (status = 409, description = "storage_off: the sandbox has no object storage", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_results(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ResultListing>, ApiError> {
    // -- Authorization
    let (_, run) = load_run(&app, &ctx, Action::RunRead, &name, &id).await?;
    // -- Business logic
    let cluster = cluster(&app)?;
    let store = outputs::bucket(cluster.client(), &run).await?;
    let listing = outputs::list_results(store.as_ref(), &run.name).await?;
    audit_read(
        &app,
        &ctx,
        "run.results.list",
        &run,
        json!({ "sandbox": name, "objects": listing.objects.len(),
                "truncated": listing.truncated }),
    )
    .await?;
    Ok(Json(listing))
}

/// One object the run wrote, streamed (SSE-C decrypted by the bucket with the sandbox's key).
#[utoipa::path(
    get, path = "/v1/sandboxes/{name}/runs/{id}/results/{path}", tag = "runs",
    params(
        ("name" = String, Path), ("id" = String, Path),
        ("path" = String, Path, description = "Key relative to runs/<run>/, e.g. metrics.json or preds/part-0.csv"),
    ),
    responses(
        (status = 200, description = "The object's bytes: application/json, text/csv, text/plain, application/vnd.apache.parquet or application/octet-stream by extension; Content-Length, Content-Disposition: attachment"),
        (status = 404, description = "No such run, or no such object", body = ErrorBody),
        (status = 409, description = "storage_off: the sandbox has no object storage", body = ErrorBody),
        (status = 422, description = "A path with an empty, '.' or '..' segment, a leading '/', or over 1024 bytes", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn download_result(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((name, id, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    // -- Validation
    outputs::validate_path(&path).map_err(|i| ApiError::Validation(vec![i]))?;
    // -- Authorization
    let (_, run) = load_run(&app, &ctx, Action::RunRead, &name, &id).await?;
    // -- Business logic
    let cluster = cluster(&app)?;
    let store = outputs::bucket(cluster.client(), &run).await?;
    let object = outputs::open_result(store.as_ref(), &run.name, &path).await?;
    audit_read(
        &app,
        &ctx,
        "run.results.read",
        &run,
        json!({ "sandbox": name, "path": path, "bytes": object.size }),
    )
    .await?;
    let mut r = Body::from_stream(object.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(outputs::content_type(&path)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    if let Ok(v) = HeaderValue::from_str(&outputs::content_disposition(&path)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(v) = object
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(
        &object
            .last_modified
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    ) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}
