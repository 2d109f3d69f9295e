//! `/v1/tenants/{tenant}/usage`: a tenant's compute and energy over a window (default:
//! the current month) with its energy budget and each sandbox's share, and the ledger
//! itself as CSV or Parquet.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Ctx};
use crate::authz::{Action, Resource};
use crate::energy::ledger;
use crate::error::{ApiError, ErrorBody};
use crate::sandboxes::FieldIssue;
use crate::store::LedgerQuery;
use crate::usage::budget::{self, BudgetState};

#[derive(Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Window start, RFC 3339 (default: the first instant of the current month, UTC).
    pub from: Option<String>,
    /// Window end, RFC 3339, exclusive (default: the first instant of the next month).
    pub to: Option<String>,
    /// Ledger export only: csv (default) or parquet.
    pub format: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxShare {
    pub namespace: String,
    /// The Sandbox owning the namespace, when the cluster is known.
    pub sandbox: Option<String>,
    pub kwh: f64,
    /// Share of the tenant's budget (absent without a budget).
    pub budget_share: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    pub tenant: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The budget for the current month (whatever the window).
    pub budget: BudgetState,
    /// Quantity → sum over the window (namespace totals), with its unit.
    pub totals: BTreeMap<String, (f64, String)>,
    pub by_sandbox: Vec<SandboxShare>,
    /// Methods behind the figures (`modelled` means estimated).
    pub methods: Vec<String>,
    /// Energy at the meter (kWh) by the method behind it (`modelled`, or the measuring
    /// source: `kepler`, `rapl`, …).
    pub by_method: BTreeMap<String, f64>,
}

fn window(params: &UsageParams) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    window_of(&params.from, &params.to)
}

/// `[from, to)` from optional RFC 3339 strings; the current month by default.
pub(super) fn window_of(
    from: &Option<String>,
    to: &Option<String>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (month_start, month_end) = budget::month(Utc::now());
    let parse = |field: &str, v: &Option<String>, default| match v {
        None => Ok(default),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| FieldIssue::new(field, "rfc3339", format!("{s:?}: {e}"))),
    };
    let from = parse("from", from, month_start);
    let to = parse("to", to, month_end);
    match (from, to) {
        (Ok(f), Ok(t)) if f < t => Ok((f, t)),
        (Ok(_), Ok(_)) => Err(ApiError::Validation(vec![FieldIssue::new(
            "to",
            "after_from",
            "must be after from",
        )])),
        (a, b) => Err(ApiError::Validation(
            [a.err(), b.err()].into_iter().flatten().collect(),
        )),
    }
}

async fn authorize(app: &AppState, ctx: &Ctx, tenant: &str) -> Result<(), ApiError> {
    let hidden = || ApiError::NotFound(format!("tenant {tenant:?} not found"));
    if app.tenants.get(tenant).is_none() {
        app.record_missing(ctx, Action::UsageRead, format!("Tenant::{tenant:?}"))
            .await?;
        return Err(hidden());
    }
    app.authorize(ctx, Action::UsageRead, &Resource::Tenant(tenant), hidden)
        .await?;
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/usage", tag = "usage",
    params(("tenant" = String, Path), UsageParams),
    responses((status = 200, body = TenantUsage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn summary(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<TenantUsage>, ApiError> {
    let Query(params) = params?;
    let (from, to) = window(&params)?;
    authorize(&app, &ctx, &tenant).await?;
    let rows = app
        .store
        .ledger_rows(&LedgerQuery {
            tenant: Some(&tenant),
            run: Some(""),
            from: Some(from),
            to: Some(to),
            ..LedgerQuery::default()
        })
        .await?;
    let mut totals: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let mut by_ns: BTreeMap<String, f64> = BTreeMap::new();
    let mut methods = std::collections::BTreeSet::new();
    let mut by_method: BTreeMap<String, f64> = BTreeMap::new();
    for r in &rows {
        let t = totals
            .entry(r.quantity.clone())
            .or_insert((0.0, r.unit.clone()));
        t.0 += r.value;
        methods.insert(r.method.clone());
        if r.quantity == "meter_energy" {
            *by_ns.entry(r.namespace.clone()).or_default() += r.value;
            *by_method.entry(r.method.clone()).or_default() += r.value;
        }
    }
    let now = Utc::now();
    let (month_start, month_end) = budget::month(now);
    let used = app
        .store
        .tenant_meter_kwh(&tenant, month_start, month_end)
        .await?;
    let budget_kwh = app
        .tenants
        .get(&tenant)
        .and_then(|t| t.spec.energy_budget_kwh);
    let sandboxes: BTreeMap<String, String> = app
        .cluster
        .as_ref()
        .map(|c| {
            c.sandboxes()
                .iter()
                .filter_map(|s| {
                    let ns = s.status.as_ref()?.namespace.clone()?;
                    Some((ns, s.metadata.name.clone()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let by_sandbox = by_ns
        .into_iter()
        .map(|(namespace, kwh)| SandboxShare {
            sandbox: sandboxes.get(&namespace).cloned(),
            budget_share: budget_kwh.filter(|b| *b > 0.0).map(|b| kwh / b),
            namespace,
            kwh,
        })
        .collect();
    Ok(Json(TenantUsage {
        tenant,
        from,
        to,
        budget: budget::state(now, budget_kwh, used),
        totals,
        by_sandbox,
        methods: methods.into_iter().collect(),
        by_method,
    }))
}

/// The tenant's ledger rows (namespace totals and runs) as CSV or Parquet.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/usage/ledger", tag = "usage",
    params(("tenant" = String, Path), UsageParams),
    responses(
        (status = 200, description = "text/csv or application/vnd.apache.parquet"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn ledger(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let (from, to) = window(&params)?;
    let parquet = match params.format.as_deref() {
        None | Some("csv") => false,
        Some("parquet") => true,
        Some(other) => {
            return Err(ApiError::Validation(vec![FieldIssue::new(
                "format",
                "one_of",
                format!("{other:?} is not csv or parquet"),
            )]));
        }
    };
    authorize(&app, &ctx, &tenant).await?;
    let rows = app
        .store
        .ledger_rows(&LedgerQuery {
            tenant: Some(&tenant),
            from: Some(from),
            to: Some(to),
            ..LedgerQuery::default()
        })
        .await?;
    let mut out = Vec::new();
    let written = if parquet {
        ledger::write_parquet(&rows, &mut out)
    } else {
        ledger::write_csv(&rows, &mut out)
    };
    written.map_err(|e| ApiError::Internal(e.to_string()))?;
    let (content_type, ext) = if parquet {
        ("application/vnd.apache.parquet", "parquet")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    let disposition = format!("attachment; filename=\"{tenant}-usage.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}
