//! The Delta Sharing protocol (delta-io/delta-sharing PROTOCOL.md) over grants. A profile
//! token (from `/v1/grants/{id}/profile`) opens exactly one table: share = the grant's
//! tenant, schema = the dataset's name, table = the grant id. Queries answer NDJSON with
//! the `Delta-Table-Version` header; `file` lines carry short-lived self-authorising links
//! to `/delta-sharing/files/{token}` (the client sends no Authorization header there).
//! Errors are `{"errorCode", "message"}`. Every use (each request, each file-link mint,
//! each file-link read) re-checks that the grant is active and that the token's holder may
//! still read it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::grants::readers;
use super::serve::{ServeFormat, serve_view};
use crate::audit::{Draft, Outcome};
use crate::authz::{Action, Caller, Resource};
use crate::error::ApiError;
use crate::grants::tokens::{self, Claims, Kind};
use crate::grants::{self, SANDBOX, spark};
use crate::identity::Principal;
use crate::store::GrantRow;

/// A protocol error, as the Delta Sharing clients expect it.
pub struct SharingError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl SharingError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn missing(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            format!("{what} does not exist"),
        )
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }
}

impl From<ApiError> for SharingError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let code = match status {
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            StatusCode::FORBIDDEN => "PERMISSION_DENIED",
            StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
            StatusCode::RANGE_NOT_SATISFIABLE => "INVALID_PARAMETER_VALUE",
            s if s.is_client_error() => "INVALID_PARAMETER_VALUE",
            _ => "INTERNAL_ERROR",
        };
        let message = if status.is_server_error() {
            tracing::error!(error = %e, "sharing request failed");
            "internal error; try again later".to_owned()
        } else {
            e.to_string()
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for SharingError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "errorCode": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"serre-sharing\""),
            );
        }
        r
    }
}

type Result<T, E = SharingError> = std::result::Result<T, E>;

/// The grant a token names, if it still exists and is neither revoked nor expired.
async fn active_grant(app: &AppState, id: &str) -> Result<GrantRow> {
    let denied = |m: String| SharingError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", m);
    let grant = app
        .store
        .get_grant(id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| denied("the grant no longer exists".into()))?;
    match grants::inactive_reason(&grant, Utc::now()) {
        Some(reason) => Err(denied(reason)),
        None => Ok(grant),
    }
}

/// Whether the token's holder may still read the grant: the policies are asked again
/// (`grant.data`) with the holder's subject, the groups the token recorded, today's
/// tenants and the grant's readers today (its vendor, or its sandbox's vendors). A refusal
/// is audited with the reason and `via` (the profile, or a file link) and answers 403.
async fn ensure_holder(
    app: &AppState,
    grant: &GrantRow,
    claims: &Claims,
    via: &str,
    headers: &HeaderMap,
) -> Result<()> {
    let principal = Principal {
        issuer: "urn:serre:sharing-token".to_owned(),
        subject: claims.sub.clone(),
        groups: claims.grp.clone(),
        organisation: None,
    };
    let caller = Caller {
        roles: app.tenants.roles(&principal),
        principal,
    };
    let readers = readers(app, grant).await?;
    let resource = Resource::Grant {
        id: &grant.id,
        tenant: &grant.tenant,
        readers: &readers,
        to_sandbox: grant.grantee_kind == SANDBOX,
    };
    let decision = app
        .authz
        .decide(&caller, Action::GrantData, &resource)
        .map_err(ApiError::from)?;
    if decision.allowed {
        return Ok(());
    }
    let through = if grant.grantee_kind == SANDBOX {
        format!("a vendor of sandbox {:?}", grant.grantee)
    } else {
        format!("the grant's vendor {:?}", grant.grantee)
    };
    let reason = format!(
        "{:?} may no longer read grant {}: not {through} nor a member of tenant {:?}; \
         ask for a new profile if you should",
        claims.sub, grant.id, grant.tenant
    );
    let mut draft = Draft::new(
        &claims.sub,
        Action::GrantData.name(),
        resource.describe(),
        Outcome::Deny,
    );
    draft.tenant = Some(grant.tenant.clone());
    draft.policies = decision.policies;
    draft.request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    draft.details = json!({ "via": via, "reason": reason });
    app.audit
        .append(vec![draft])
        .await
        .map_err(ApiError::from)?;
    Err(SharingError::new(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        reason,
    ))
}

/// The table a profile token opens, after checking the token, the grant and the holder.
struct Table {
    grant: GrantRow,
    claims: Claims,
    share: String,
    schema: String,
}

async fn table(app: &AppState, headers: &HeaderMap) -> Result<Table> {
    let unauthenticated =
        |m: &str| SharingError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", m);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| unauthenticated("send the profile's bearer token"))?;
    let claims = tokens::verify(
        app.data.secret(),
        Kind::Profile,
        token.trim(),
        Utc::now().timestamp(),
    )
    .map_err(|e| unauthenticated(&e.to_string()))?;
    let grant = active_grant(app, &claims.g).await?;
    ensure_holder(app, &grant, &claims, "delta-sharing", headers).await?;
    let dataset = app
        .store
        .get_dataset(&grant.dataset_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| SharingError::missing("the dataset"))?;
    Ok(Table {
        share: grant.tenant.clone(),
        schema: dataset.name,
        grant,
        claims,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    max_results: Option<String>,
    page_token: Option<String>,
}

/// One page of `items`; the page token is the base64url offset of the next item.
fn paginate(items: Vec<Value>, page: &Page) -> Result<Value> {
    let max = match &page.max_results {
        None => 500,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| SharingError::invalid(format!("maxResults {s:?} must be 1 to 1000")))?,
    };
    let start = match &page.page_token {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| SharingError::invalid("invalid pageToken"))?,
    };
    let end = (start + max).min(items.len());
    let mut body = json!({ "items": items[start..end] });
    if end < items.len() {
        body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(end.to_string()));
    }
    Ok(body)
}

fn share_json(t: &Table) -> Value {
    json!({ "name": t.share, "id": format!("{}:{}", t.share, t.grant.id) })
}

fn table_json(t: &Table) -> Value {
    json!({ "name": t.grant.id, "schema": t.schema, "share": t.share,
            "shareId": format!("{}:{}", t.share, t.grant.id), "id": t.grant.id })
}

fn check(t: &Table, share: &str, schema: Option<&str>, table: Option<&str>) -> Result<()> {
    if share != t.share {
        return Err(SharingError::missing(&format!("share {share:?}")));
    }
    if let Some(s) = schema.filter(|s| *s != t.schema) {
        return Err(SharingError::missing(&format!("schema {s:?}")));
    }
    if let Some(n) = table.filter(|n| *n != t.grant.id) {
        return Err(SharingError::missing(&format!("table {n:?}")));
    }
    Ok(())
}

pub async fn list_shares(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let t = table(&app, &headers).await?;
    Ok(Json(paginate(vec![share_json(&t)], &page)?))
}

pub async fn get_share(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(share): Path<String>,
) -> Result<Json<Value>> {
    let t = table(&app, &headers).await?;
    check(&t, &share, None, None)?;
    Ok(Json(json!({ "share": share_json(&t) })))
}

pub async fn list_schemas(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(share): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let t = table(&app, &headers).await?;
    check(&t, &share, None, None)?;
    Ok(Json(paginate(
        vec![json!({ "name": t.schema, "share": t.share })],
        &page,
    )?))
}

pub async fn list_tables(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((share, schema)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let t = table(&app, &headers).await?;
    check(&t, &share, Some(&schema), None)?;
    Ok(Json(paginate(vec![table_json(&t)], &page)?))
}

pub async fn all_tables(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(share): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let t = table(&app, &headers).await?;
    check(&t, &share, None, None)?;
    Ok(Json(paginate(vec![table_json(&t)], &page)?))
}

fn with_version(mut r: Response, version: i64) -> Response {
    r.headers_mut()
        .insert("delta-table-version", HeaderValue::from(version));
    r
}

pub async fn table_version(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
) -> Result<Response> {
    let t = table(&app, &headers).await?;
    check(&t, &share, Some(&schema), Some(&name))?;
    Ok(with_version(
        StatusCode::OK.into_response(),
        t.grant.version,
    ))
}

fn ndjson(lines: &[Value], version: i64) -> Response {
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    with_version(r, version)
}

fn metadata_lines(t: &Table) -> Result<Vec<Value>> {
    let schema: Value = serde_json::from_str(&t.grant.view_schema_json).unwrap_or(Value::Null);
    let schema_string = spark::schema_string(&schema)
        .map_err(|e| SharingError::from(ApiError::Internal(format!("view schema: {e}"))))?;
    Ok(vec![
        json!({ "protocol": { "minReaderVersion": 1 } }),
        json!({ "metaData": {
            "id": t.grant.id,
            "name": t.grant.id,
            "description": t.grant.purpose,
            "format": { "provider": "parquet", "options": {} },
            "schemaString": schema_string,
            "partitionColumns": [],
            "configuration": {},
            "size": t.grant.view_size,
            "numFiles": 1,
        } }),
    ])
}

pub async fn table_metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
) -> Result<Response> {
    let t = table(&app, &headers).await?;
    check(&t, &share, Some(&schema), Some(&name))?;
    Ok(ndjson(&metadata_lines(&t)?, t.grant.version))
}

pub async fn query_table(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let t = table(&app, &headers).await?;
    check(&t, &share, Some(&schema), Some(&name))?;
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| SharingError::invalid(format!("the query body is not JSON: {e}")))?
    };
    if request.get("startingVersion").is_some() || request.get("endingVersion").is_some() {
        return Err(SharingError::invalid(
            "change data feed queries are not supported",
        ));
    }
    if let Some(v) = request
        .get("version")
        .and_then(Value::as_i64)
        .filter(|v| *v != t.grant.version)
    {
        return Err(SharingError::invalid(format!(
            "version {v} is not available; the table is at version {}",
            t.grant.version
        )));
    }
    let ttl = i64::try_from(app.data.config.file_link_ttl.as_secs()).unwrap_or(900);
    let grant_exp = chrono::DateTime::parse_from_rfc3339(&t.grant.expires_at)
        .map(|x| x.timestamp())
        .unwrap_or(0);
    let exp = (Utc::now().timestamp() + ttl)
        .min(grant_exp)
        .min(t.claims.exp);
    let link = tokens::sign(
        app.data.secret(),
        Kind::FileLink,
        &Claims {
            g: t.grant.id.clone(),
            sub: t.claims.sub.clone(),
            exp,
            grp: t.claims.grp.clone(),
        },
    );
    let mut lines = metadata_lines(&t)?;
    lines.push(json!({ "file": {
        "url": format!("{}/delta-sharing/files/{link}", app.data.public_url()),
        "id": t.grant.view_sha256,
        "partitionValues": {},
        "size": t.grant.view_size,
        "stats": json!({ "numRecords": t.grant.view_rows }).to_string(),
        "expirationTimestamp": exp * 1000,
    } }));
    Ok(ndjson(&lines, t.grant.version))
}

/// A pre-signed file link: the token is the only credential.
pub async fn file(
    State(app): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let claims = tokens::verify(
        app.data.secret(),
        Kind::FileLink,
        &token,
        Utc::now().timestamp(),
    )
    .map_err(|e| {
        SharingError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("file link refused: {e}"),
        )
    })?;
    let grant = active_grant(&app, &claims.g).await?;
    ensure_holder(&app, &grant, &claims, "file-link", &headers).await?;
    Ok(serve_view(
        &app,
        &grant,
        &claims.sub,
        "",
        ServeFormat::Parquet,
        &headers,
    )
    .await?)
}
