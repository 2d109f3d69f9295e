//! « Exécutions »: a sandbox's trial runs (status, figures), one run's page with its
//! results, its log, and its frugality report — each through the API's own handlers and
//! functions (`crate::http::runs`, `run_outputs`, `run_report`), so the same `run.read`
//! decisions (a vendor sees its own runs; another tenant's person nothing) and the same
//! audit records (`run.logs.read`, `run.results.list`, `run.results.read`).

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::WebState;
use super::french;
use super::lang::{tr, trf};
use super::pages::{Layout, Signed, api_problem, page};
use super::run_actions::{QualityForm, StartForm, may_on_sandbox};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::http::grants::list_visible;
use crate::http::run_outputs::{download_result, list_results, logs};
use crate::http::run_report::build_report;
use crate::http::runs::{RunView, get_one, list as list_runs};
use crate::http::sandboxes::load_authorized;
use crate::runs::report::RunReport;

/// Bytes of log a page shows at most (the API's `limitBytes`; the log says when it is cut).
const LOG_BYTES: u64 = 256 * 1024;
/// Lines of log a page shows at most (the API's `tailLines`).
const LOG_LINES: u32 = 2000;
/// Seconds between two reloads of a followed log (`?suivre=1`).
pub const FOLLOW_EVERY_S: u32 = 5;

/// What the run pages can meet besides the API's own refusals.
#[derive(Debug, thiserror::Error)]
pub enum RunPageError {
    #[error("the log could not be read: {0}")]
    Log(String),
}

/// Why a run's outputs cannot be shown, in French (the API's 409/410 answers), or `None`
/// when the error is the page's (404, 403, 5xx).
fn unavailable(e: &ApiError) -> Option<String> {
    Some(match e.code() {
        "run_not_started" => tr("L'exécution n'a pas encore démarré : son journal n'existe pas encore.").into(),
        "run_logs_gone" => tr("L'exécution est terminée et son pod a été supprimé : le journal n'est plus disponible.").into(),
        "storage_off" => tr("Ce bac à sable n'a pas de stockage objet : l'exécution n'a pas pu y écrire de résultats.").into(),
        "conflict" => tr("Cette passerelle fonctionne sans cluster : le journal et les résultats \
                       des exécutions en ont besoin.")
            .into(),
        "cluster_unavailable" | "storage_unavailable" => {
            tr("Le cluster ou le stockage ne répond pas ; réessayez plus tard.").into()
        }
        _ => return None,
    })
}

pub(super) fn phase(p: &str) -> (&'static str, &'static str) {
    match p {
        "Pending" => (tr("En attente"), "fr-badge--info"),
        "Running" => (tr("En cours"), "fr-badge--new"),
        "Succeeded" => (tr("Réussie"), "fr-badge--success"),
        "Failed" => (tr("Échouée"), "fr-badge--error"),
        "TimedOut" => (tr("Délai dépassé"), "fr-badge--error"),
        "Cancelled" => (tr("Annulée"), "fr-badge--warning"),
        _ => (tr("État inconnu"), "fr-badge--info"),
    }
}

/// « mesurée » or « modélisée » (the weakest method behind a figure).
pub(super) fn method(m: &str) -> String {
    match m {
        "modelled" | "declared" => tr("modélisée").into(),
        "none" | "" => tr("aucune donnée").into(),
        other => trf("mesurée ({})", &[&other]),
    }
}

fn kwh(v: f64) -> String {
    format!("{} kWh", french::decimal(v, 4))
}

fn grams(v: f64) -> String {
    format!("{} g CO₂e", french::decimal(v, 1))
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

struct RunRow {
    name: String,
    kind: String,
    requested_by: String,
    created: String,
    state: &'static str,
    badge: &'static str,
    energy: String,
    method: String,
}

impl RunRow {
    fn new(r: &RunView) -> Self {
        let (state, badge) = phase(&r.phase);
        Self {
            name: r.name.clone(),
            kind: r.kind.clone(),
            requested_by: r.requested_by.clone(),
            created: french::when(&r.created_at),
            state,
            badge,
            energy: r
                .figures
                .as_ref()
                .map_or_else(|| "—".into(), |f| kwh(f.kwh)),
            method: r
                .figures
                .as_ref()
                .map_or_else(|| "—".into(), |f| method(&f.energy_method)),
        }
    }
}

/// A grant the start form offers (active, to this sandbox or to the person).
struct GrantChoice {
    id: String,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    layout: Layout,
    sandbox: String,
    rows: Vec<RunRow>,
    /// The start form, where Cedar allows `run.create`.
    start: Option<StartForm>,
    start_fields: Vec<super::pages::TextField>,
    grants: Vec<GrantChoice>,
    kinds: [(&'static str, &'static str); 4],
    refused_title: &'static str,
}

struct ResultRow {
    path: String,
    size: String,
    modified: String,
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    layout: Layout,
    sandbox: String,
    row: RunRow,
    view: RunView,
    quality: Option<String>,
    started: String,
    finished: String,
    results: Vec<ResultRow>,
    results_note: Option<String>,
    /// Cedar allows `run.cancel` and the run is not over.
    may_cancel: bool,
    /// The quality form, where Cedar allows `run.quality` (the run's requester).
    quality_form: Option<QualityForm>,
    quality_fields: Vec<super::pages::TextField>,
    /// What the last action did or why it was refused.
    notice: Option<String>,
    refusal: Option<String>,
    running: bool,
}

#[derive(Template)]
#[template(path = "console/run_log.html")]
struct LogPage {
    layout: Layout,
    sandbox: String,
    run: String,
    text: Option<String>,
    note: Option<String>,
    state: &'static str,
    badge: &'static str,
    /// The run is still going: the page offers to follow its log.
    running: bool,
    /// The log is followed: the page reloads every `every` seconds.
    following: bool,
    every: u32,
}

struct FigureRow {
    label: String,
    value: String,
    method: String,
}

#[derive(Template)]
#[template(path = "console/run_report.html")]
struct ReportPage {
    layout: Layout,
    r: RunReport,
    state: &'static str,
    energy: String,
    emissions: String,
    embodied: String,
    duration: String,
    method: String,
    per_unit: Option<String>,
    figures: Vec<FigureRow>,
    comparison: Vec<(String, String, String, String, String)>,
}

/// `GET /console/bacs-a-sable/{name}/executions`: the sandbox's runs the person may see,
/// and the start form where Cedar allows `run.create`.
pub async fn list(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    render_list(&app, &signed, name, StartForm::default(), StatusCode::OK).await
}

/// The runs page with `form` (as typed, with its refusals, after a refused start).
pub(super) async fn render_list(
    app: &WebState,
    signed: &Signed,
    name: String,
    form: StartForm,
    status: StatusCode,
) -> Response {
    let runs = match list_runs(State(app.app.clone()), signed.ctx(), Path(name.clone())).await {
        Ok(Json(r)) => r,
        Err(e) => return api_problem(e),
    };
    let record = match load_authorized(&app.app, &signed.ctx, Action::SandboxRead, &name).await {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let may_start = may_on_sandbox(app, signed, Action::RunCreate, &record);
    let mut grants = Vec::new();
    if may_start {
        let me = &signed.ctx.caller.principal.subject;
        let visible = match list_visible(&app.app, &signed.ctx).await {
            Ok(v) => v,
            Err(e) => return api_problem(e),
        };
        for (g, _) in visible {
            let usable = g.state == "active"
                && ((g.grantee_kind == "sandbox" && g.grantee == name)
                    || (g.grantee_kind == "vendor" && &g.grantee == me));
            if usable {
                grants.push(GrantChoice {
                    checked: form.grants.contains(&g.id),
                    label: format!(
                        "{} — {} (v{}) : {}",
                        g.id, g.dataset_id, g.version, g.purpose
                    ),
                    id: g.id,
                });
            }
        }
    }
    page(
        status,
        &RunsPage {
            layout: signed.layout(&trf("Exécutions de {}", &[&name]), "sandboxes"),
            sandbox: name,
            rows: runs.iter().map(RunRow::new).collect(),
            start_fields: form.text_fields(),
            start: may_start.then_some(form),
            grants,
            kinds: super::run_actions::kinds(),
            refused_title: tr("L'exécution n'a pas été lancée"),
        },
    )
}

#[derive(Deserialize)]
pub struct RunQuery {
    lancee: Option<String>,
    annulee: Option<String>,
    qualite: Option<String>,
    suivre: Option<String>,
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}`: one run, its figures and results,
/// and what the person may do with it (cancel, report its quality).
pub async fn show(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<RunQuery>,
) -> Response {
    let notice = if q.lancee.is_some() {
        Some(tr(
            "L'exécution est demandée : le cluster la lance dès que possible.",
        ))
    } else if q.annulee.is_some() {
        Some(tr("L'exécution est annulée."))
    } else if q.qualite.is_some() {
        Some(tr("La qualité déclarée est enregistrée."))
    } else {
        None
    };
    let extras = RunExtras {
        notice: notice.map(str::to_owned),
        ..RunExtras::default()
    };
    render_run(&app, &signed, name, id, extras, StatusCode::OK).await
}

/// What a run page shows besides the run: the quality form as typed (after a refusal),
/// what the last action did, why an action was refused.
#[derive(Default)]
pub(super) struct RunExtras {
    pub quality_form: Option<QualityForm>,
    pub notice: Option<String>,
    pub refusal: Option<String>,
}

/// The run page, with its [`RunExtras`].
pub(super) async fn render_run(
    app: &WebState,
    signed: &Signed,
    name: String,
    id: String,
    extras: RunExtras,
    status: StatusCode,
) -> Response {
    let RunExtras {
        quality_form,
        notice,
        refusal,
    } = extras;
    let view = match get_one(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return api_problem(e),
    };
    let record = match load_authorized(&app.app, &signed.ctx, Action::SandboxRead, &name).await {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let vendors = record.vendor_subjects();
    let resource = Resource::Run {
        id: &view.name,
        tenant: &view.tenant,
        vendors: &vendors,
        requested_by: &view.requested_by,
    };
    let may = |action| {
        app.authz
            .decide(&signed.ctx.caller, action, &resource)
            .is_ok_and(|d| d.allowed)
    };
    let running = !crate::runs::is_final(&view.phase);
    let may_cancel = running && may(Action::RunCancel);
    let quality_form = may(Action::RunQuality).then(|| {
        quality_form.unwrap_or_else(|| QualityForm {
            metric: view
                .quality
                .as_ref()
                .map(|q| q.metric.clone())
                .unwrap_or_default(),
            value: view
                .quality
                .as_ref()
                .map(|q| q.value.to_string())
                .unwrap_or_default(),
            ..QualityForm::default()
        })
    });
    let (results, results_note) = match list_results(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id)),
    )
    .await
    {
        Ok(Json(l)) => {
            let note = l.truncated.then(|| {
                tr("La liste est tronquée : l'exécution a écrit plus d'objets.").to_owned()
            });
            let rows = l
                .objects
                .iter()
                .map(|o| ResultRow {
                    path: o.path.clone(),
                    size: french::bytes(i64::try_from(o.size).unwrap_or(i64::MAX)),
                    modified: french::time(o.last_modified),
                })
                .collect();
            (rows, note)
        }
        Err(e) => match unavailable(&e) {
            Some(note) => (Vec::new(), Some(note)),
            None => return api_problem(e),
        },
    };
    let when = |t: &Option<String>| t.as_deref().map_or_else(|| "—".into(), french::when);
    page(
        status,
        &RunPage {
            layout: signed.layout(&trf("Exécution {}", &[&view.name]), "sandboxes"),
            sandbox: name,
            row: RunRow::new(&view),
            quality: view
                .quality
                .as_ref()
                .map(|q| format!("{} = {}", q.metric, q.value)),
            started: when(&view.started_at),
            finished: when(&view.finished_at),
            view,
            results,
            results_note,
            may_cancel,
            quality_fields: quality_form
                .as_ref()
                .map(QualityForm::fields)
                .unwrap_or_default(),
            quality_form,
            notice,
            refusal,
            running,
        },
    )
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/journal`: the end of the run's log
/// (the API's `…/logs` with `tailLines` and `limitBytes`), as text in the page.
///
/// A run still going offers to follow its log: with `?suivre=1` the response carries
/// `Refresh: 5`, so the browser reloads it every five seconds without JavaScript, until
/// the run is over or the person follows « Arrêter le suivi » (an automatic refresh the
/// person turned on and can turn off: WCAG 2.2.1).
pub async fn log(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<RunQuery>,
) -> Response {
    let view = match get_one(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return api_problem(e),
    };
    let running = !crate::runs::is_final(&view.phase);
    let following = running && q.suivre.is_some();
    let (state, badge) = phase(&view.phase);
    let query = vec![
        ("tailLines".to_owned(), LOG_LINES.to_string()),
        ("limitBytes".to_owned(), LOG_BYTES.to_string()),
    ];
    let answer = logs(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
        axum::extract::Query(query),
    )
    .await;
    let (text, note) = match answer {
        Ok(r) => {
            // The API bounds the body at LOG_BYTES and one more line saying it was cut.
            let limit = usize::try_from(LOG_BYTES).unwrap_or(usize::MAX) + 4096;
            match axum::body::to_bytes(r.into_body(), limit)
                .await
                .map_err(|e| RunPageError::Log(e.to_string()))
            {
                Ok(b) => (Some(String::from_utf8_lossy(&b).into_owned()), None),
                Err(e) => {
                    tracing::warn!(error = %e, "console run log");
                    (
                        None,
                        Some(
                            tr("Le journal n'a pas pu être lu jusqu'au bout ; réessayez.")
                                .to_owned(),
                        ),
                    )
                }
            }
        }
        Err(e) => match unavailable(&e) {
            Some(note) => (None, Some(note)),
            None => return api_problem(e),
        },
    };
    let mut r = page(
        StatusCode::OK,
        &LogPage {
            layout: signed.layout(&trf("Journal de {}", &[&id]), "sandboxes"),
            sandbox: name,
            run: id,
            text,
            note,
            state,
            badge,
            running,
            following,
            every: FOLLOW_EVERY_S,
        },
    );
    if following {
        r.headers_mut()
            .insert("refresh", HeaderValue::from(FOLLOW_EVERY_S));
    }
    r
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/resultats/{*path}`: one result
/// object, streamed by the API's own handler (attachment).
pub async fn result(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id, path)): Path<(String, String, String)>,
) -> Response {
    match download_result(State(app.app.clone()), signed.ctx(), Path((name, id, path))).await {
        Ok(r) => r.into_response(),
        Err(e) => api_problem(e),
    }
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/rapport`: the frugality report
/// (the API's `…/report`, same figures, caveats and comparison).
pub async fn report(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let r = match build_report(&app.app, &signed.ctx, &name, &id).await {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let f = &r.figures;
    let per_unit = match (&f.functional_unit, f.kwh_per_unit, f.sci_per_unit) {
        (Some(unit), Some(k), Some(s)) => Some(format!("{} et {} par {unit}", kwh(k), grams(s))),
        _ => None,
    };
    let figures = f
        .figures
        .iter()
        .map(|(name, x)| FigureRow {
            label: name.clone(),
            value: format!("{} {}", french::decimal(x.value, 4), x.unit),
            method: method(&x.method),
        })
        .collect();
    let comparison = r
        .comparison
        .iter()
        .map(|c| {
            (
                c.run.clone(),
                c.finished_at
                    .as_deref()
                    .map_or_else(|| "—".into(), french::when),
                duration(c.duration_seconds),
                kwh(c.kwh),
                grams(c.gco2e),
            )
        })
        .collect();
    page(
        StatusCode::OK,
        &ReportPage {
            layout: signed.layout(&trf("Rapport de frugalité de {}", &[&id]), "sandboxes"),
            state: phase(&r.phase).0,
            energy: kwh(f.kwh),
            emissions: grams(f.gco2e),
            embodied: grams(f.embodied_gco2e),
            duration: duration(f.duration_seconds),
            method: method(&f.energy_method),
            per_unit,
            figures,
            comparison,
            r,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_in_french() {
        assert_eq!(kwh(0.00125), "0,0013 kWh");
        assert_eq!(grams(56.04), "56,0 g CO₂e");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(7260.0), "2 h 1 min");
        assert_eq!(method("modelled"), "modélisée");
        assert_eq!(method("cadvisor"), "mesurée (cadvisor)");
        assert_eq!(method("none"), "aucune donnée");
        assert_eq!(phase("Succeeded").0, "Réussie");
        let e = ApiError::Conflict("this gateway runs without a cluster".into());
        assert!(unavailable(&e).is_some_and(|m| m.contains("sans cluster")));
        assert!(unavailable(&ApiError::NotFound("x".into())).is_none());
    }
}
