//! Extractors: the authenticated caller ([`Ctx`]) and JSON bodies whose errors name the
//! field ([`Body`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tower_http::request_id::RequestId;

use super::AppState;
use crate::authz::Caller;
use crate::error::ApiError;
use crate::identity::AuthError;
use crate::metrics::CodeLabels;
use crate::sandboxes::FieldIssue;

/// The authenticated caller of a request and the request's id.
pub struct Ctx {
    pub caller: Caller,
    pub request_id: String,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                AuthError::Malformed("the Authorization header is not ASCII".into())
            })?),
        };
        let principal = match app.verifier.verify_header(header).await {
            Ok(p) => p,
            Err(e) => {
                app.metrics
                    .auth_failures
                    .get_or_create(&CodeLabels {
                        code: e.code().to_owned(),
                    })
                    .inc();
                tracing::info!(code = e.code(), "bearer token refused");
                return Err(e.into());
            }
        };
        let roles = app.tenants.roles(&principal);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Ctx {
            caller: Caller { principal, roles },
            request_id,
        })
    }
}

/// A JSON request body. Type errors become validation errors naming the field.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    code: "invalid_body",
                    message: "the request body could not be read".into(),
                }
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// An optional JSON body: empty means `None`.
pub struct MaybeBody<T>(pub Option<T>);

impl<S, T> FromRequest<S> for MaybeBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (!req.headers().contains_key(header::CONTENT_LENGTH)
                && !req.headers().contains_key(header::TRANSFER_ENCODING));
        if empty {
            return Ok(MaybeBody(None));
        }
        Body::<T>::from_request(req, state)
            .await
            .map(|Body(v)| MaybeBody(Some(v)))
    }
}

/// Deserialize, turning serde's errors into field/rule issues.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest {
                code: "invalid_json",
                message: format!("the body is not valid JSON: {inner}"),
            };
        }
        let message = inner.to_string();
        let prefix = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        let named = |kind: &str| {
            message
                .split('`')
                .nth(1)
                .map(|f| format!("{prefix}{f}"))
                .filter(|_| message.starts_with(kind))
        };
        let issue = if let Some(field) = named("missing field") {
            FieldIssue::new(&field, "required", "is required")
        } else if message.starts_with("unknown field") {
            // The path already ends with the unknown field's name.
            FieldIssue::new(&path, "unknown_field", "is not a known field")
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            let clean = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            FieldIssue::new(&field, "type", clean)
        };
        ApiError::Validation(vec![issue])
    })?;
    de.end().map_err(|e| ApiError::BadRequest {
        code: "invalid_json",
        message: format!("the body is not valid JSON: {e}"),
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandboxes::CreateSandbox;

    fn issue(body: &str) -> (String, String) {
        match parse::<CreateSandbox>(body.as_bytes()) {
            Err(ApiError::Validation(i)) => (i[0].field.clone(), i[0].rule.clone()),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(
            issue(r#"{"tenant":"t"}"#),
            ("name".into(), "required".into())
        );
        assert_eq!(
            issue(
                r#"{"tenant":"t","name":"n","purpose":"p","expiresAt":"x","resources":{"cpu":4}}"#
            ),
            ("resources.cpu".into(), "type".into())
        );
        assert_eq!(
            issue(
                r#"{"tenant":"t","name":"n","purpose":"p","expiresAt":"x","resources":{"cpu":"4","memory":"1Gi"}}"#
            ),
            ("resources.storage".into(), "required".into())
        );
        assert_eq!(
            issue(r#"{"tenant":"t","colour":"red"}"#),
            ("colour".into(), "unknown_field".into())
        );
        assert!(matches!(
            parse::<CreateSandbox>(b"{\"tenant\":"),
            Err(ApiError::BadRequest {
                code: "invalid_json",
                ..
            })
        ));
    }
}
