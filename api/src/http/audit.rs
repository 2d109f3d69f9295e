//! `GET /v1/audit`: the audit log, scoped by tenant for tenant admins, as JSON pages or
//! JSON lines. JSON lines carry entries exactly as stored (`policies` and `details` as
//! JSON text), so an export can be checked with `serre-api audit verify --file`.

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::FieldIssue;
use crate::store::{AuditRow, Store};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries of this tenant only (required for tenant admins).
    pub tenant: Option<String>,
    /// Entries after this sequence number.
    pub after: Option<i64>,
    /// Page size for JSON (default 100, at most 1000).
    pub limit: Option<i64>,
    /// `json` (default, paged) or `jsonl` (every entry after `after`, one per line, as
    /// stored: verifiable with `serre-api audit verify --file`).
    pub format: Option<String>,
}

/// One audit entry as exported.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: i64,
    pub time: String,
    pub principal: String,
    pub tenant: Option<String>,
    pub action: String,
    pub resource: String,
    /// `allow`, `deny`, `not_found` or `change`.
    pub decision: String,
    /// Ids of the policies that decided.
    pub policies: Vec<String>,
    pub request_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The exported form; `policies` and `details` are parsed from their stored JSON.
    /// (`serre-api audit verify` checks the hashes over the stored form.)
    pub fn from_row(r: AuditRow) -> Self {
        Self {
            policies: serde_json::from_str(&r.policies).unwrap_or_default(),
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            seq: r.seq,
            time: r.time,
            principal: r.principal,
            tenant: r.tenant,
            action: r.action,
            resource: r.resource,
            decision: r.decision,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// Read the audit log: a tenant's entries (its admins, Métropole admins) or all of
/// them (Métropole admins).
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage, description = "JSON page, or JSON lines with format=jsonl"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown tenant (or not yours)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    // -- Validation
    let jsonl = match q.format.as_deref() {
        Some("jsonl") => true,
        Some("json") => false,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/x-ndjson") || v.contains("application/jsonl")),
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldIssue::new(
                "format",
                "enum",
                "must be json or jsonl",
            )]));
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldIssue::new(
            "limit",
            "range",
            "must be between 1 and 1000",
        )]));
    }
    let after = q.after.unwrap_or(0);

    // -- Authorization
    authorize_read(&app, &ctx, q.tenant.as_deref()).await?;

    // -- Business logic
    if jsonl {
        let stream = lines(app.store.clone(), q.tenant.clone(), after);
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            HttpBody::from_stream(stream),
        )
            .into_response());
    }
    let page = read_page(&app, q.tenant.as_deref(), after, limit).await?;
    Ok(Json(page).into_response())
}

/// `audit.read` on a tenant (its admins, Métropole admins) or on the whole log (Métropole
/// admins); recorded. An unknown or foreign tenant answers 404.
pub async fn authorize_read(
    app: &AppState,
    ctx: &Ctx,
    tenant: Option<&str>,
) -> Result<(), ApiError> {
    match tenant {
        Some(t) => {
            let hidden = || ApiError::NotFound(format!("tenant {t:?} not found"));
            if app.tenants.get(t).is_none() {
                app.record_missing(ctx, Action::AuditRead, format!("Tenant::{t:?}"))
                    .await?;
                return Err(hidden());
            }
            app.authorize(ctx, Action::AuditRead, &Resource::Tenant(t), hidden)
                .await?;
        }
        None => {
            app.authorize(ctx, Action::AuditRead, &Resource::Platform, || {
                ApiError::Forbidden("name a tenant: ?tenant=…".into())
            })
            .await?;
        }
    }
    Ok(())
}

/// One page of entries after `after` (a tenant's, or all); call [`authorize_read`] first.
pub async fn read_page(
    app: &AppState,
    tenant: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<AuditPage, ApiError> {
    let rows = app.store.audit_page(tenant, after, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(AuditPage {
        entries: rows.into_iter().map(AuditEntry::from_row).collect(),
        next,
    })
}

/// Every entry after `after`, as JSON lines, read page by page.
fn lines(
    store: Store,
    tenant: Option<String>,
    after: i64,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(Some(after), move |cursor| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            let after = cursor?;
            match store.audit_page(tenant.as_deref(), after, 1000).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map(|r| r.seq);
                    let mut out = String::new();
                    for r in rows {
                        if let Ok(line) = serde_json::to_string(&r) {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                    Some((Ok(out), last))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    })
}
