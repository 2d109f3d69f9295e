//! `/v1/datasets`: streaming uploads of CSV or Parquet, immutable versions, deletion of a
//! version unless a live grant uses it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::data::{ColumnType, CsvOptions};
use crate::datasets::upload::{self, Format};
use crate::datasets::view::DatasetView;
use crate::datasets::{CLASSIFICATIONS, DataPlane};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::FieldIssue;
use crate::store::{DatasetRow, VersionRow, timestamp};

/// Query parameters of an upload (the body is the file itself).
/// Also what the console's upload form fills in.
#[derive(Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Tenant that owns the dataset (new datasets only).
    pub tenant: Option<String>,
    /// Dataset name, unique in the tenant: lowercase letters, digits, `-` and `_`.
    pub name: Option<String>,
    pub description: Option<String>,
    /// open, internal, personal or anonymised (new datasets only).
    pub classification: Option<String>,
    /// csv or parquet; by default from the Content-Type (`text/csv`,
    /// `application/vnd.apache.parquet`).
    pub format: Option<String>,
    /// CSV: whether the first line names the columns (default true).
    pub header: Option<bool>,
    /// CSV: field separator (default `,`).
    pub delimiter: Option<char>,
    /// CSV: declared column types, e.g. `age:int64,postcode:string` (string, int64,
    /// float64, boolean, date, timestamp); others are inferred.
    pub types: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("dataset {id:?} not found"))
}

/// A dataset name: no path separators, no dots, nothing a file system or a Delta Sharing
/// table path would read differently.
pub fn check_name(field: &str, name: &str, issues: &mut Vec<FieldIssue>) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        let rule = if name.contains(['/', '\\']) || name.contains("..") {
            "no_path_separators"
        } else {
            "name_syntax"
        };
        issues.push(FieldIssue::new(
            field,
            rule,
            format!("{name:?} is not a valid name: 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit"),
        ));
    }
}

fn format_of(params: &UploadParams, headers: &HeaderMap, issues: &mut Vec<FieldIssue>) -> Format {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let name = match (&params.format, content_type.as_deref()) {
        (Some(f), _) => f.to_ascii_lowercase(),
        (None, Some("text/csv")) => "csv".into(),
        (None, Some("application/vnd.apache.parquet" | "application/x-parquet")) => {
            "parquet".into()
        }
        _ => String::new(),
    };
    match name.as_str() {
        "parquet" => Format::Parquet,
        "csv" => {
            let mut options = CsvOptions::default();
            if let Some(h) = params.header {
                options.header = h;
            }
            if let Some(d) = params.delimiter {
                options.delimiter = d;
            }
            for item in params.types.iter().flat_map(|t| t.split(',')) {
                let parsed = item.split_once(':').and_then(|(c, t)| {
                    serde_json::from_value::<ColumnType>(json!(t.trim()))
                        .ok()
                        .map(|t| (c.trim(), t))
                });
                match parsed {
                    Some((column, t)) if !column.is_empty() => {
                        options.column_types.insert(column.to_owned(), t);
                    }
                    _ => issues.push(FieldIssue::new(
                        "types",
                        "column_type",
                        format!("{item:?} is not COLUMN:TYPE with TYPE one of string, int64, float64, boolean, date, timestamp"),
                    )),
                }
            }
            Format::Csv(options)
        }
        "" => {
            issues.push(FieldIssue::new(
                "format",
                "required",
                "say format=csv or format=parquet, or send Content-Type text/csv or application/vnd.apache.parquet",
            ));
            Format::Parquet
        }
        other => {
            issues.push(FieldIssue::new(
                "format",
                "one_of",
                format!("{other:?} is not csv or parquet"),
            ));
            Format::Parquet
        }
    }
}

/// Refuse early what the declared length already says is too large.
fn check_length(data: &DataPlane, headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > data.config.upload_limit => {
            Err(ApiError::Upload(upload::UploadError::TooLarge {
                limit: data.config.upload_limit,
            }))
        }
        _ => Ok(()),
    }
}

/// Receive, parse, encrypt and store one version's bytes; nothing is recorded yet. The
/// body is received first (to disk, whatever the load), then the upload waits for an ingest
/// permit (`--ingest-queue-wait`, then 503 with `Retry-After`).
async fn store_upload(
    app: &AppState,
    tenant: &str,
    dataset_id: &str,
    format: Format,
    body: axum::body::Body,
    by: &str,
) -> Result<VersionRow, ApiError> {
    let data = &app.data;
    let source = data.temp_file(".upload");
    let (_, source_sha256) = upload::receive(body, source.path(), data.config.upload_limit).await?;
    let permit = data.ingest_permit().await?;
    let parquet = data.temp_file(".parquet");
    let format_name = format.name();
    let report = upload::ingest(
        source.path(),
        parquet.path(),
        format,
        data.ingest_limits(),
        permit,
    )
    .await?;
    drop(source);
    let key = format!(
        "tenants/{tenant}/datasets/{dataset_id}/{}.parquet",
        uuid::Uuid::new_v4().simple()
    );
    let stored = data.blobs.put_file(&key, parquet.path()).await?;
    Ok(VersionRow {
        dataset_id: dataset_id.to_owned(),
        version: 1,
        source_format: format_name.to_owned(),
        source_sha256,
        object_key: stored.key,
        wrapped_key: stored.wrapped_key,
        size: i64::try_from(stored.plain_size).unwrap_or(i64::MAX),
        sha256: stored.sha256,
        rows: i64::try_from(report.rows).unwrap_or(i64::MAX),
        schema_json: crate::data::schema_json(&report.schema).to_string(),
        created_by: by.to_owned(),
        created_at: timestamp(chrono::Utc::now()),
        deleted_at: None,
        deleted_by: None,
    })
}

/// Upload a new dataset (its version 1) as CSV or Parquet; the body is the file.
#[utoipa::path(
    post, path = "/v1/datasets", tag = "datasets",
    params(UploadParams),
    request_body(content = Vec<u8>, description = "The CSV or Parquet file", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored and recorded", body = DatasetView),
        (status = 400, description = "Empty or interrupted upload, bad query", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 409, description = "Name taken in this tenant", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 422, description = "Invalid parameters or file (line/row group and column named), or a file that decodes past a limit (`too_large`: field, record, memory)", body = ErrorBody),
        (status = 503, description = "Every ingest permit stayed taken for `--ingest-queue-wait` (`ingest_busy`, with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    params: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let mut body = Some(body);
    let result = match params {
        Ok(Query(params)) => upload_new(&app, &ctx, params, &headers, &mut body).await,
        Err(e) => Err(e.into()),
    };
    if result.is_err()
        && let Some(unread) = body.take()
    {
        drain(unread).await;
    }
    Ok((StatusCode::CREATED, Json(result?)).into_response())
}

/// Read and discard what a client still sends after its upload was refused before its body
/// was read (bounded), so it receives the error rather than a broken connection.
pub async fn drain(body: axum::body::Body) {
    use futures::StreamExt;
    const LIMIT: usize = 16 << 20;
    let mut stream = body.into_data_stream();
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
}

/// A new dataset (its version 1) from `body`, taken from `body` once the request is
/// valid and authorized (the API's handler and the console's upload form both call it;
/// an untaken body is the caller's to drain).
pub async fn upload_new(
    app: &AppState,
    ctx: &Ctx,
    params: UploadParams,
    headers: &HeaderMap,
    body: &mut Option<axum::body::Body>,
) -> Result<DatasetView, ApiError> {
    // -- Validation
    let mut issues = Vec::new();
    let tenant = params.tenant.clone().unwrap_or_default();
    if tenant.is_empty() {
        issues.push(FieldIssue::new("tenant", "required", "name the tenant"));
    }
    let name = params.name.clone().unwrap_or_default();
    check_name("name", &name, &mut issues);
    let classification = params.classification.clone().unwrap_or_default();
    if !CLASSIFICATIONS.contains(&classification.as_str()) {
        issues.push(FieldIssue::new(
            "classification",
            "one_of",
            format!(
                "{classification:?} is not one of {}",
                CLASSIFICATIONS.join(", ")
            ),
        ));
    }
    let description = params.description.clone().unwrap_or_default();
    if description.chars().count() > 2000 {
        issues.push(FieldIssue::new(
            "description",
            "max_length",
            "at most 2000 characters",
        ));
    }
    let format = format_of(&params, headers, &mut issues);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    check_length(&app.data, headers)?;

    // -- Authorization: an unknown or foreign tenant answers 404.
    let unknown = || ApiError::NotFound(format!("tenant {tenant:?} not found"));
    if app.tenants.get(&tenant).is_none() {
        app.record_missing(ctx, Action::DatasetCreate, format!("Tenant::{tenant:?}"))
            .await?;
        return Err(unknown());
    }
    app.authorize(
        ctx,
        Action::DatasetCreate,
        &Resource::Tenant(&tenant),
        unknown,
    )
    .await?;

    // -- Business logic: store the bytes first, then record (nothing visible on failure).
    let id = uuid::Uuid::new_v4().to_string();
    let by = ctx.caller.principal.subject.clone();
    let body = body
        .take()
        .ok_or_else(|| ApiError::Internal("upload body already taken".into()))?;
    let version = store_upload(app, &tenant, &id, format, body, &by).await?;
    let row = DatasetRow {
        id: id.clone(),
        tenant: tenant.clone(),
        name,
        description,
        classification,
        created_by: by,
        created_at: version.created_at.clone(),
    };
    if let Err(e) = app.store.insert_dataset(&row, &version).await {
        let _ = app.data.blobs.delete(&version.object_key).await;
        return Err(e.into());
    }
    app.record(
        ctx,
        "dataset.created",
        format!("Dataset::{id:?}"),
        Some(&tenant),
        json!({ "name": row.name, "classification": row.classification, "version": 1,
                "rows": version.rows, "size": version.size, "sha256": version.sha256 }),
    )
    .await?;
    Ok(DatasetView::new(&row, std::slice::from_ref(&version)))
}

/// Load a dataset and authorize `action` on it: missing and foreign both answer 404.
async fn load_authorized(
    app: &AppState,
    ctx: &Ctx,
    action: Action,
    id: &str,
) -> Result<DatasetRow, ApiError> {
    let Some(row) = app.store.get_dataset(id).await? else {
        app.record_missing(ctx, action, format!("Dataset::{id:?}"))
            .await?;
        return Err(not_found(id));
    };
    let resource = Resource::Dataset {
        id: &row.id,
        tenant: &row.tenant,
        classification: &row.classification,
    };
    app.authorize(ctx, action, &resource, || not_found(id))
        .await?;
    Ok(row)
}

/// Upload a new immutable version of a dataset (same parameters as the first upload,
/// without tenant, name and classification).
#[utoipa::path(
    post, path = "/v1/datasets/{id}/versions", tag = "datasets",
    params(("id" = String, Path), UploadParams),
    request_body(content = Vec<u8>, description = "The CSV or Parquet file", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored and recorded", body = DatasetView),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "Every ingest permit stayed taken (`ingest_busy`, with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_version(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    params: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let view = upload_version(&app, &ctx, &id, params, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A new immutable version of dataset `id` from `body` (the API's handler and the
/// console's form).
pub async fn upload_version(
    app: &AppState,
    ctx: &Ctx,
    id: &str,
    params: UploadParams,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<DatasetView, ApiError> {
    let mut issues = Vec::new();
    for (field, set) in [
        ("tenant", params.tenant.is_some()),
        ("name", params.name.is_some()),
        ("classification", params.classification.is_some()),
        ("description", params.description.is_some()),
    ] {
        if set {
            issues.push(FieldIssue::new(
                field,
                "immutable",
                "set when the dataset is created",
            ));
        }
    }
    let format = format_of(&params, headers, &mut issues);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    check_length(&app.data, headers)?;
    let dataset = load_authorized(app, ctx, Action::DatasetVersionCreate, id).await?;

    let by = ctx.caller.principal.subject.clone();
    let mut version = store_upload(app, &dataset.tenant, &dataset.id, format, body, &by).await?;
    match app.store.insert_version(&version).await {
        Ok(n) => version.version = n,
        Err(e) => {
            let _ = app.data.blobs.delete(&version.object_key).await;
            return Err(e.into());
        }
    }
    app.record(
        ctx,
        "dataset.version.created",
        format!("Dataset::{id:?}"),
        Some(&dataset.tenant),
        json!({ "version": version.version, "rows": version.rows, "size": version.size,
                "sha256": version.sha256 }),
    )
    .await?;
    let versions = app.store.list_versions(id).await?;
    Ok(DatasetView::new(&dataset, &versions))
}

/// Datasets the caller may see: its tenants' (every tenant's for Métropole admins).
#[utoipa::path(
    get, path = "/v1/datasets", tag = "datasets",
    responses((status = 200, body = Vec<DatasetView>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<DatasetView>>, ApiError> {
    list_visible(&app, &ctx).await.map(Json)
}

/// The datasets `ctx`'s caller may see (the API's list and the console's page).
pub async fn list_visible(app: &AppState, ctx: &Ctx) -> Result<Vec<DatasetView>, ApiError> {
    let roles = &ctx.caller.roles;
    let mut tenants = Vec::new();
    if !roles.metropole_admin {
        for t in &roles.member_of {
            let decision = app
                .decide_recorded(ctx, Action::DatasetList, &Resource::Tenant(t))
                .await?;
            if decision.allowed {
                tenants.push(t.clone());
            }
        }
    }
    let rows = app
        .store
        .list_datasets(&tenants, roles.metropole_admin)
        .await?;
    let mut versions: BTreeMap<String, Vec<VersionRow>> = BTreeMap::new();
    for d in &rows {
        versions.insert(d.id.clone(), app.store.list_versions(&d.id).await?);
    }
    Ok(rows
        .iter()
        .map(|d| DatasetView::new(d, versions.get(&d.id).map_or(&[], |v| v)))
        .collect())
}

/// One dataset: schema, rows, size and SHA-256 of every version.
#[utoipa::path(
    get, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path)),
    responses((status = 200, body = DatasetView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<DatasetView>, ApiError> {
    read_one(&app, &ctx, &id).await.map(Json)
}

/// One dataset `ctx`'s caller may read (else 404, foreign and missing alike).
pub async fn read_one(app: &AppState, ctx: &Ctx, id: &str) -> Result<DatasetView, ApiError> {
    let dataset = load_authorized(app, ctx, Action::DatasetRead, id).await?;
    let versions = app.store.list_versions(id).await?;
    Ok(DatasetView::new(&dataset, &versions))
}

/// Delete a version's bytes (tenant admins); refused while a live grant uses it.
#[utoipa::path(
    delete, path = "/v1/datasets/{id}/versions/{version}", tag = "datasets",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Live grants use this version (named)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_version(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let dataset = load_authorized(&app, &ctx, Action::DatasetVersionDelete, &id).await?;
    let Some(row) = app.store.get_version(&id, version).await? else {
        return Err(ApiError::NotFound(format!(
            "dataset {id:?} has no version {version}"
        )));
    };
    let now = timestamp(chrono::Utc::now());
    let blocking = app
        .store
        .delete_version(&id, version, &ctx.caller.principal.subject, &now)
        .await?;
    if !blocking.is_empty() {
        return Err(ApiError::Conflict(format!(
            "version {version} is used by live grants {}; revoke them first",
            blocking.join(", ")
        )));
    }
    if let Err(e) = app.data.blobs.delete(&row.object_key).await {
        tracing::warn!(error = %e, "deleted version's object not removed; it stays encrypted");
    }
    app.record(
        &ctx,
        "dataset.version.deleted",
        format!("Dataset::{id:?}"),
        Some(&dataset.tenant),
        json!({ "version": version }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
