//! The API's error type and its one mapping to HTTP. Bodies are always
//! `{"error": {"code": "...", "message": "...", "details": [...]?}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::AuditError;
use crate::authz::AuthzError;
use crate::blobs::BlobError;
use crate::cluster::ClusterError;
use crate::data::DataError;
use crate::datasets::upload::UploadError;
use crate::identity::AuthError;
use crate::runs::outputs::OutputsError;
use crate::sandboxes::FieldIssue;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{}", describe(.0))]
    Validation(Vec<FieldIssue>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Allowed in principle but refused by a limit (e.g. an exhausted energy budget): 403.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request took too long")]
    Timeout,
    #[error("policies not reloaded: {0}")]
    PolicyReload(AuthzError),
    #[error(transparent)]
    Authz(#[from] AuthzError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A run's logs or results (`crate::runs::outputs`); built by the `From` impl below.
    #[error(transparent)]
    Outputs(OutputsError),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(issues: &[FieldIssue]) -> String {
    let parts: Vec<String> = issues
        .iter()
        .map(|i| format!("{}: {} ({})", i.field, i.message, i.rule))
        .collect();
    format!("invalid request: {}", parts.join("; "))
}

/// The error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (e.g. `token_expired`, `validation_failed`).
    pub code: String,
    pub message: String,
    /// For `validation_failed`: one entry per problem, naming the field and the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldIssue>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(AuthError::ProviderUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict(_)) => {
                StatusCode::CONFLICT
            }
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout | ApiError::Audit(_) | ApiError::Cluster(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::PolicyReload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Data(e) if e.is_client_error() => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upload(UploadError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upload(UploadError::Empty | UploadError::Body(_)) => StatusCode::BAD_REQUEST,
            ApiError::Upload(UploadError::Busy { .. })
            | ApiError::Data(DataError::Cancelled)
            | ApiError::Upload(UploadError::Data(DataError::Cancelled)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upload(UploadError::Data(e)) if e.is_client_error() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Outputs(e) => match e {
                OutputsError::NotStarted(_) | OutputsError::StorageOff(_) => StatusCode::CONFLICT,
                OutputsError::Gone(_) => StatusCode::GONE,
                OutputsError::NoSuchResult(_) => StatusCode::NOT_FOUND,
                OutputsError::NoSuchContainer(_) => StatusCode::UNPROCESSABLE_ENTITY,
                OutputsError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                OutputsError::Body(_) => StatusCode::BAD_REQUEST,
                OutputsError::Settings(_) => StatusCode::INTERNAL_SERVER_ERROR,
                OutputsError::Bucket(_) | OutputsError::Cluster(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            ApiError::Data(_) | ApiError::Upload(_) | ApiError::Blob(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Authz(_) | ApiError::Store(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Auth(e) => e.code(),
            ApiError::Validation(_) => "validation_failed",
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict(_)) => "conflict",
            ApiError::BadRequest { code, .. } | ApiError::Refused { code, .. } => code,
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RouteNotFound => "route_not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Timeout => "timeout",
            ApiError::PolicyReload(_) => "invalid_policies",
            ApiError::Authz(_) => "authorization_error",
            ApiError::Store(_) => "database_error",
            ApiError::Audit(_) => "audit_unavailable",
            ApiError::Cluster(_) => "cluster_unavailable",
            ApiError::Data(e) | ApiError::Upload(UploadError::Data(e)) => e.category(),
            ApiError::Upload(UploadError::TooLarge { .. }) => "payload_too_large",
            ApiError::Upload(UploadError::Empty) => "empty_upload",
            ApiError::Upload(UploadError::Body(_)) => "bad_body",
            ApiError::Upload(UploadError::Busy { .. }) => "ingest_busy",
            ApiError::Upload(_) => "upload_failed",
            ApiError::Blob(_) => "storage_error",
            ApiError::RangeNotSatisfiable(_) => "range_not_satisfiable",
            ApiError::Outputs(e) => match e {
                OutputsError::NotStarted(_) => "run_not_started",
                OutputsError::Gone(_) => "run_logs_gone",
                OutputsError::StorageOff(_) => "storage_off",
                OutputsError::NoSuchResult(_) => "not_found",
                OutputsError::NoSuchContainer(_) => "validation_failed",
                OutputsError::TooLarge { .. } => "payload_too_large",
                OutputsError::Body(_) => "bad_body",
                OutputsError::Settings(_) => "storage_settings_unusable",
                OutputsError::Bucket(_) => "storage_unavailable",
                OutputsError::Cluster(_) => "cluster_unavailable",
            },
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The error a bare status (from a tower layer) stands for.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::NOT_FOUND => ApiError::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            s if s.is_client_error() => ApiError::BadRequest {
                code: "bad_request",
                message: s.canonical_reason().unwrap_or("bad request").to_owned(),
            },
            _ => ApiError::Internal("unexpected failure".into()),
        }
    }
}

/// A run's logs or results: a missing container is a validation error naming `container`
/// (with its details), a cluster failure the same as anywhere else.
impl From<OutputsError> for ApiError {
    fn from(e: OutputsError) -> Self {
        match e {
            OutputsError::NoSuchContainer(m) => {
                ApiError::Validation(vec![FieldIssue::new("container", "present_in_run", m)])
            }
            OutputsError::Cluster(c) => ApiError::Cluster(c),
            other => ApiError::Outputs(other),
        }
    }
}

/// A query string that does not fit the handler's parameters: 400 `invalid_query`, with
/// axum's explanation (which parameter, what was expected).
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_query",
            message: e.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let busy = match &self {
            ApiError::Upload(UploadError::Busy { retry_after, .. }) => Some(*retry_after),
            _ => None,
        };
        if busy.is_some() {
            tracing::warn!(code = self.code(), error = %self, "upload refused");
        } else if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        // Internal details stay in the log; the client gets the category.
        let message = match &self {
            ApiError::Store(StoreError::Conflict(m)) => m.clone(),
            ApiError::Store(_) => "the database failed; try again later".to_owned(),
            ApiError::Authz(_) => "authorization could not be evaluated".to_owned(),
            ApiError::Internal(_) => "internal error".to_owned(),
            ApiError::Blob(_) => "the data store failed; try again later".to_owned(),
            ApiError::Outputs(OutputsError::Bucket(_)) => {
                "the sandbox bucket failed; try again later".to_owned()
            }
            ApiError::Outputs(OutputsError::Settings(_)) => {
                "the sandbox's storage settings are unusable; the gateway's log says why".to_owned()
            }
            ApiError::Upload(e @ UploadError::Busy { .. }) => e.to_string(),
            e @ (ApiError::Data(_) | ApiError::Upload(_)) if status.is_server_error() => {
                let _ = e;
                "the data could not be processed; try again later".to_owned()
            }
            other => other.to_string(),
        };
        let details = match &self {
            ApiError::Validation(issues) => Some(issues.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(after) = busy {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        if let ApiError::Auth(e) = &self
            && status == StatusCode::UNAUTHORIZED
        {
            let error = match e {
                AuthError::MissingToken | AuthError::NotBearer => "",
                _ => ", error=\"invalid_token\"",
            };
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"serre\"{error}")) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}
