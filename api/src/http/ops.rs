//! Operations endpoints (no authentication): health, readiness, metrics, the OpenAPI
//! document; and the policy reload (Métropole admins).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Serre gateway",
        description = "Self-service sandboxes, datasets and anonymised grants, measured trial runs with energy accounting, and the catalogue of AI solutions for the Métropole du Grand Paris: OIDC bearer tokens, Cedar policies, approval, audit log."
    ),
    paths(
        healthz, readyz, metrics, reload_policies,
        super::tenants::me, super::tenants::get_policy, super::tenants::put_policy,
        super::sandboxes::create, super::sandboxes::list, super::sandboxes::get_one,
        super::sandboxes::delete, super::sandboxes::approve, super::sandboxes::reject,
        super::sandbox_members::add_member, super::sandbox_members::remove_member,
        super::audit::list,
        super::audit_verify::verify,
        super::catalogue::create, super::catalogue::list, super::catalogue::get_one,
        super::catalogue::update, super::catalogue::attach_result, super::catalogue::export,
        super::catalogue::signing_key,
        super::datasets::create, super::datasets::create_version, super::datasets::list,
        super::datasets::get_one, super::datasets::delete_version,
        super::data_policy::get, super::data_policy::put,
        super::grants::create, super::grants::list, super::grants::get_one,
        super::grants::revoke, super::grants::data, super::grants::profile,
        super::grants::preview,
        super::runs::create, super::runs::list, super::runs::get_one, super::runs::cancel,
        super::run_report::report, super::run_report::practices, super::runs::quality, super::run_data::data, super::sandbox_report::report,
        super::run_outputs::logs, super::run_outputs::list_results, super::run_outputs::download_result,
        super::run_results::write,
        super::usage::summary, super::usage::ledger,
    ),
    components(schemas(ErrorBody, Readiness, Reloaded)),
    modifiers(&BearerAuth),
    tags(
        (name = "sandboxes", description = "Self-service sandbox requests and approval"),
        (name = "tenants", description = "Per-tenant self-service policy"),
        (name = "audit", description = "Hash-chained audit log"),
        (name = "datasets", description = "Encrypted Parquet datasets and their immutable versions"),
        (name = "grants", description = "Anonymised views granted to sandboxes and vendors; Delta Sharing profiles"),
        (name = "catalogue", description = "Catalogue of AI solutions judged on six criteria (Action 1)"),
        (name = "runs", description = "Measured trial runs in sandboxes and their frugality reports"),
        (name = "usage", description = "Compute and energy usage, budgets, the usage ledger"),
        (name = "identity", description = "The caller"),
        (name = "operations", description = "Health, readiness, metrics, policies"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of this API.
pub async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    /// `ok`, or what is wrong, for `database`, `identity`, `tenants`, `cluster`.
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}

/// Readiness: the database answers, the identity provider's keys and the tenants are
/// loaded. The cluster is reported but does not make the gateway unready (requests wait
/// for it).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match app.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let identity = if app.verifier.ready() {
        "ok".to_owned()
    } else {
        "identity provider keys not fetched yet".to_owned()
    };
    let tenants = if app.tenants.ready() {
        "ok".to_owned()
    } else {
        "tenants not listed from the cluster yet".to_owned()
    };
    let cluster = match &app.cluster {
        None => "disabled".to_owned(),
        Some(c) => match c.check().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        },
    };
    let ready = database == "ok" && identity == "ok" && tenants == "ok";
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" }.to_owned(),
        checks: json!({ "database": database, "identity": identity, "tenants": tenants, "cluster": cluster }),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    /// Ids of the policies now in force.
    pub policies: Vec<String>,
}

/// Reload the Cedar policies and schema from disk (also done on SIGHUP). On error the
/// policies in force stay.
#[utoipa::path(
    post, path = "/v1/admin/policies/reload", tag = "operations",
    responses(
        (status = 200, body = Reloaded),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "The files on disk are invalid; nothing changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reload_policies(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Reloaded>, ApiError> {
    app.authorize(&ctx, Action::PolicyReload, &Resource::Platform, || {
        ApiError::Forbidden("only Métropole admins reload policies".into())
    })
    .await?;
    let result = app.authz.reload();
    let details = match &result {
        Ok(ids) => json!({ "result": "ok", "policies": ids }),
        Err(e) => json!({ "result": "failed", "error": e.to_string() }),
    };
    app.record(
        &ctx,
        "policy.reload",
        "Platform::\"serre\"".into(),
        None,
        details,
    )
    .await?;
    match result {
        Ok(policies) => Ok(Json(Reloaded { policies })),
        Err(e) => Err(ApiError::PolicyReload(e)),
    }
}
