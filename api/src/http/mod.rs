//! The HTTP layer: shared state, extractors, the router and its middleware. Handlers
//! read in three sections: validation, authorization, business logic.

pub(crate) mod audit;
pub(crate) mod audit_verify;
pub(crate) mod catalogue;
mod data_policy;
pub(crate) mod datasets;
mod extract;
pub(crate) mod grants;
mod ops;
mod run_data;
pub(crate) mod run_outputs;
pub(crate) mod run_report;
mod run_results;
mod run_token;
pub(crate) mod runs;
pub(crate) mod sandbox_members;
mod sandbox_report;
pub(crate) mod sandboxes;
mod serve;
mod sharing;
pub(crate) mod tenants;
pub(crate) mod usage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use extract::{Body, Ctx, MaybeBody};
pub use ops::ApiDoc;

use crate::audit::{AuditLog, Draft, Outcome};
use crate::authz::{Action, Authorizer, Decision, Resource};
use crate::cluster::Cluster;
use crate::config::SandboxConfig;
use crate::datasets::DataPlane;
use crate::error::ApiError;
use crate::identity::Verifier;
use crate::metrics::{DecisionLabels, Metrics, RequestLabels, RouteLabels};
use crate::store::Store;
use crate::tenants::Directory;

/// Everything handlers need; built once at start.
pub struct App {
    pub verifier: Verifier,
    pub authz: Authorizer,
    pub tenants: Directory,
    pub store: Store,
    pub audit: AuditLog,
    pub cluster: Option<Arc<Cluster>>,
    pub metrics: Arc<Metrics>,
    /// Wakes the pusher after a request was approved or withdrawn.
    pub push: Arc<Notify>,
    pub sandboxes: SandboxConfig,
    pub data: Arc<DataPlane>,
    /// Usage accounting: trial-run figures, ledger, budgets.
    pub accountant: Arc<crate::usage::Accountant>,
}

pub type AppState = Arc<App>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl App {
    /// Ask the authorizer, record the decision in the audit log, and turn a denial into
    /// 403 — or into `hidden` when the caller may not even see the resource (tenant
    /// isolation: a foreign resource answers exactly like a missing one).
    pub async fn authorize(
        &self,
        ctx: &Ctx,
        action: Action,
        resource: &Resource<'_>,
        hidden: impl FnOnce() -> ApiError,
    ) -> Result<Decision, ApiError> {
        let decision = self.decide_recorded(ctx, action, resource).await?;
        if decision.allowed {
            return Ok(decision);
        }
        if self.visible(ctx, action, resource)? {
            Err(ApiError::Forbidden(format!(
                "you may not {} on {}",
                action.name(),
                resource.describe()
            )))
        } else {
            Err(hidden())
        }
    }

    /// Ask the authorizer and record the decision (allowed or not) in the audit log.
    pub async fn decide_recorded(
        &self,
        ctx: &Ctx,
        action: Action,
        resource: &Resource<'_>,
    ) -> Result<Decision, ApiError> {
        let decision = self.authz.decide(&ctx.caller, action, resource)?;
        let outcome = if decision.allowed {
            Outcome::Allow
        } else {
            Outcome::Deny
        };
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                action: action.name().to_owned(),
                decision: outcome.as_str().to_owned(),
            })
            .inc();
        let mut draft = ctx.draft(action.name(), resource.describe(), outcome);
        draft.tenant = resource.tenant().map(str::to_owned);
        draft.policies = decision.policies.clone();
        self.audit.append(vec![draft]).await?;
        Ok(decision)
    }

    /// Whether the caller may see the resource at all (not audited: it only chooses
    /// between 403 and 404 after a recorded denial).
    pub fn visible(
        &self,
        ctx: &Ctx,
        action: Action,
        resource: &Resource<'_>,
    ) -> Result<bool, ApiError> {
        let probe = match resource {
            Resource::Platform => return Ok(true),
            Resource::Tenant(_) => Action::TenantRead,
            Resource::Sandbox { .. } => Action::SandboxRead,
            Resource::Dataset { .. } => Action::DatasetRead,
            Resource::Grant { .. } => Action::GrantRead,
            Resource::Solution { .. } => Action::CatalogueRead,
            Resource::Run { .. } => Action::RunRead,
        };
        if probe == action {
            return Ok(false);
        }
        Ok(self.authz.decide(&ctx.caller, probe, resource)?.allowed)
    }

    /// Record a state change.
    pub async fn record(
        &self,
        ctx: &Ctx,
        action: &str,
        resource: String,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let mut draft = ctx.draft(action, resource, Outcome::Change);
        draft.tenant = tenant.map(str::to_owned);
        draft.details = details;
        self.audit.append(vec![draft]).await?;
        Ok(())
    }

    /// Record an attempt on something that does not exist.
    pub async fn record_missing(
        &self,
        ctx: &Ctx,
        action: Action,
        resource: String,
    ) -> Result<(), ApiError> {
        let draft = ctx.draft(action.name(), resource, Outcome::NotFound);
        self.audit.append(vec![draft]).await?;
        Ok(())
    }
}

impl Ctx {
    pub fn draft(&self, action: &str, resource: String, outcome: Outcome) -> Draft {
        let mut d = Draft::new(&self.caller.principal.subject, action, resource, outcome);
        d.request_id = self.request_id.clone();
        d
    }
}

/// The full router with its middleware.
/// The Prometheus endpoint alone, for a separate metrics listener.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(middleware::from_fn(json_errors))
        .with_state(app)
}

/// The API. With `metrics_here` false, `/metrics` is left to [`metrics_router`].
pub fn router(
    app: AppState,
    body_limit: usize,
    timeout: Duration,
    metrics_here: bool,
    pages: Router<AppState>,
) -> Router {
    let v1 = Router::new()
        .route("/me", get(tenants::me))
        .route("/sandboxes", post(sandboxes::create).get(sandboxes::list))
        .route(
            "/sandboxes/{name}",
            get(sandboxes::get_one).delete(sandboxes::delete),
        )
        .route("/sandboxes/{name}/approve", post(sandboxes::approve))
        .route("/sandboxes/{name}/reject", post(sandboxes::reject))
        .route(
            "/sandboxes/{name}/members",
            post(sandbox_members::add_member),
        )
        .route(
            "/sandboxes/{name}/members/{subject}",
            axum::routing::delete(sandbox_members::remove_member),
        )
        .route(
            "/tenants/{tenant}/policy",
            get(tenants::get_policy).put(tenants::put_policy),
        )
        .route("/sandboxes/{name}/runs", post(runs::create).get(runs::list))
        .route(
            "/sandboxes/{name}/runs/{id}",
            get(runs::get_one).delete(runs::cancel),
        )
        .route(
            "/sandboxes/{name}/runs/{id}/report",
            get(run_report::report),
        )
        .route(
            "/sandboxes/{name}/runs/{id}/quality",
            axum::routing::put(runs::quality),
        )
        .route(
            "/sandboxes/{name}/runs/{id}/practices",
            axum::routing::put(run_report::practices),
        )
        .route("/sandboxes/{name}/report", get(sandbox_report::report))
        .route("/tenants/{tenant}/usage", get(usage::summary))
        .route("/tenants/{tenant}/usage/ledger", get(usage::ledger))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit_verify::verify))
        .route("/admin/policies/reload", post(ops::reload_policies))
        .route("/datasets", get(datasets::list))
        .route("/datasets/{id}", get(datasets::get_one))
        .route(
            "/datasets/{id}/versions/{version}",
            axum::routing::delete(datasets::delete_version),
        )
        .route("/grants", post(grants::create).get(grants::list))
        .route("/grants/preview", post(grants::preview))
        .route("/grants/{id}", get(grants::get_one).delete(grants::revoke))
        .route("/grants/{id}/profile", get(grants::profile))
        .route(
            "/tenants/{tenant}/data-policy",
            get(data_policy::get).put(data_policy::put),
        )
        .route(
            "/catalogue/solutions",
            post(catalogue::create).get(catalogue::list),
        )
        .route(
            "/catalogue/solutions/{id}",
            get(catalogue::get_one).patch(catalogue::update),
        )
        .route(
            "/catalogue/solutions/{id}/results",
            post(catalogue::attach_result),
        )
        .route("/catalogue/export", get(catalogue::export))
        .route("/catalogue/signing-key", get(catalogue::signing_key))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ));
    // Uploads and data reads: large bodies, streamed; their own limits and timeout.
    let data_timeout = app.data.config.upload_timeout;
    let v1_data = Router::new()
        .route("/datasets", post(datasets::create))
        .route("/datasets/{id}/versions", post(datasets::create_version))
        .route("/grants/{id}/data", get(grants::data))
        .route("/runs/{run}/grants/{id}/data", get(run_data::data))
        // A run's pod sends its results with its run token (no OIDC): streamed, bounded.
        .route(
            "/runs/{run}/results/{*path}",
            axum::routing::put(run_results::write),
        )
        // A run's logs and results: streamed, so with the data routes.
        .route("/sandboxes/{name}/runs/{id}/logs", get(run_outputs::logs))
        .route(
            "/sandboxes/{name}/runs/{id}/results",
            get(run_outputs::list_results),
        )
        .route(
            "/sandboxes/{name}/runs/{id}/results/{*path}",
            get(run_outputs::download_result),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            data_timeout,
        ));
    let sharing = Router::new()
        .route("/shares", get(sharing::list_shares))
        .route("/shares/{share}", get(sharing::get_share))
        .route("/shares/{share}/schemas", get(sharing::list_schemas))
        .route("/shares/{share}/all-tables", get(sharing::all_tables))
        .route(
            "/shares/{share}/schemas/{schema}/tables",
            get(sharing::list_tables),
        )
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/version",
            get(sharing::table_version),
        )
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/metadata",
            get(sharing::table_metadata),
        )
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/query",
            post(sharing::query_table),
        )
        .route("/files/{token}", get(sharing::file))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            data_timeout,
        ));

    let probes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    let probes = if metrics_here {
        probes.route("/metrics", get(ops::metrics))
    } else {
        probes
    };
    probes
        .route("/openapi.json", get(ops::openapi))
        .nest("/v1", v1.merge(v1_data))
        .nest("/delta-sharing", sharing)
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(json_errors))
        // The console answers HTML, errors included: outside `json_errors`.
        .nest("/console", pages)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("handler panicked".into()).into_response()
                }))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request| {
                        // Method, path and request id only: never headers or query
                        // strings, and no credential a path may carry (file links).
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let path = loggable_path(req.uri().path());
                        tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
                    }),
                ),
        )
}

/// What replaces a credential in a logged path.
pub const REDACTED: &str = "<redacted>";

/// A request path as it may be logged: the token of a file link
/// (`/delta-sharing/files/<token>`, a bearer credential in the path itself) and any
/// segment shaped like a Serre token (`serre-xx1.…`) or a JWT (`eyJ….…`) are replaced by
/// `<redacted>`. Query strings are never logged at all.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    // `<prefix>.<claims>.<signature>`: a Serre token's prefix is `serre-` + two letters +
    // a digit (`serre-fl1`, `serre-ds1`, `serre-rt1`); a JWT's header starts `eyJ`.
    fn credential(segment: &str) -> bool {
        let parts: Vec<&str> = segment.split('.').collect();
        let serre = |p: &str| {
            p.strip_prefix("serre-").is_some_and(|k| {
                let k = k.as_bytes();
                k.len() == 3 && k[..2].iter().all(u8::is_ascii_lowercase) && k[2].is_ascii_digit()
            })
        };
        parts.len() == 3
            && parts.iter().all(|p| !p.is_empty())
            && (serre(parts[0]) || parts[0].starts_with("eyJ"))
    }
    let files = path.strip_prefix("/delta-sharing/files/");
    if files.is_none_or(str::is_empty) && !path.split('/').any(credential) {
        return std::borrow::Cow::Borrowed(path);
    }
    if files.is_some_and(|rest| !rest.is_empty()) {
        return std::borrow::Cow::Owned(format!("/delta-sharing/files/{REDACTED}"));
    }
    let redacted: Vec<&str> = path
        .split('/')
        .map(|s| if credential(s) { REDACTED } else { s })
        .collect();
    std::borrow::Cow::Owned(redacted.join("/"))
}

/// Count requests by route and status and time them.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    app.metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Give error responses produced by tower layers (timeout, body limit) a JSON body.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !json {
        return ApiError::from_status(status).into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn credentials_in_paths_are_not_logged() {
        let link = "serre-fl1.eyJnIjoiZy0xIn0.c2lnbmF0dXJlLW9mLXRoZS1saW5r";
        assert_eq!(
            loggable_path(&format!("/delta-sharing/files/{link}")),
            "/delta-sharing/files/<redacted>"
        );
        // Whatever follows files/ is the credential, token-shaped or not.
        assert_eq!(
            loggable_path("/delta-sharing/files/abc/def"),
            "/delta-sharing/files/<redacted>"
        );
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        assert_eq!(
            loggable_path(&format!("/v1/x/{jwt}/y")),
            "/v1/x/<redacted>/y"
        );
        assert_eq!(
            loggable_path("/v1/echo/serre-rt1.e30.c2ln"),
            "/v1/echo/<redacted>"
        );
        assert_eq!(
            loggable_path("/v1/runs/run-0123456789ab/grants/g-1/data"),
            "/v1/runs/run-0123456789ab/grants/g-1/data"
        );
        for kept in [
            "/delta-sharing/files/",
            "/delta-sharing/shares/s/schemas/x/tables/t/query",
            "/v1/sandboxes/est-ensemble--air/runs/run-1/results/results.json",
            "/v1/datasets/serre-datasets.v2",
            "/v1/datasets/serre-ds1.x",
        ] {
            assert_eq!(loggable_path(kept), kept);
        }
    }
}
