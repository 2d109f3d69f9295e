//! « Exécutions »: a sandbox's trial runs (status, figures), one run's page with its
//! results, its log, and its frugality report — each through the API's own handlers and
//! functions (`crate::http::runs`, `run_outputs`, `run_report`), so the same `run.read`
//! decisions (a vendor sees its own runs; another tenant's person nothing) and the same
//! audit records (`run.logs.read`, `run.results.list`, `run.results.read`).

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::french;
use super::pages::{Layout, Signed, api_problem, page};
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::run_outputs::{download_result, list_results, logs};
use crate::http::run_report::build_report;
use crate::http::runs::{RunView, get_one, list as list_runs};
use crate::runs::report::RunReport;

/// Bytes of log a page shows at most (the API's `limitBytes`; the log says when it is cut).
const LOG_BYTES: u64 = 256 * 1024;
/// Lines of log a page shows at most (the API's `tailLines`).
const LOG_LINES: u32 = 2000;

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
        "run_not_started" => "L'exécution n'a pas encore démarré : son journal n'existe pas encore.".into(),
        "run_logs_gone" => "L'exécution est terminée et son pod a été supprimé : le journal n'est plus disponible.".into(),
        "storage_off" => "Ce bac à sable n'a pas de stockage objet : l'exécution n'a pas pu y écrire de résultats.".into(),
        "conflict" => "Cette passerelle fonctionne sans cluster : le journal et les résultats \
                       des exécutions en ont besoin."
            .into(),
        "cluster_unavailable" | "storage_unavailable" => {
            "Le cluster ou le stockage ne répond pas ; réessayez plus tard.".into()
        }
        _ => return None,
    })
}

pub(super) fn phase(p: &str) -> (&'static str, &'static str) {
    match p {
        "Pending" => ("En attente", "fr-badge--info"),
        "Running" => ("En cours", "fr-badge--new"),
        "Succeeded" => ("Réussie", "fr-badge--success"),
        "Failed" => ("Échouée", "fr-badge--error"),
        "TimedOut" => ("Délai dépassé", "fr-badge--error"),
        "Cancelled" => ("Annulée", "fr-badge--warning"),
        _ => ("État inconnu", "fr-badge--info"),
    }
}

/// « mesurée » or « modélisée » (the weakest method behind a figure).
pub(super) fn method(m: &str) -> String {
    match m {
        "modelled" | "declared" => "modélisée".into(),
        "none" | "" => "aucune donnée".into(),
        other => format!("mesurée ({other})"),
    }
}

fn kwh(v: f64) -> String {
    format!("{v:.4} kWh").replace('.', ",")
}

fn grams(v: f64) -> String {
    format!("{v:.1} g CO₂e").replace('.', ",")
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

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    layout: Layout,
    sandbox: String,
    rows: Vec<RunRow>,
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
}

#[derive(Template)]
#[template(path = "console/run_log.html")]
struct LogPage {
    layout: Layout,
    sandbox: String,
    run: String,
    text: Option<String>,
    note: Option<String>,
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

/// `GET /console/bacs-a-sable/{name}/executions`: the sandbox's runs the person may see.
pub async fn list(
    State(app): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    let runs = match list_runs(State(app), signed.ctx(), Path(name.clone())).await {
        Ok(Json(r)) => r,
        Err(e) => return api_problem(e),
    };
    page(
        StatusCode::OK,
        &RunsPage {
            layout: signed.layout(&format!("Exécutions de {name}"), "sandboxes"),
            sandbox: name,
            rows: runs.iter().map(RunRow::new).collect(),
        },
    )
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}`: one run, its figures and results.
pub async fn show(
    State(app): State<AppState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let view = match get_one(
        State(app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return api_problem(e),
    };
    let (results, results_note) =
        match list_results(State(app), signed.ctx(), Path((name.clone(), id))).await {
            Ok(Json(l)) => {
                let note = l.truncated.then(|| {
                    "La liste est tronquée : l'exécution a écrit plus d'objets.".to_owned()
                });
                let rows = l
                    .objects
                    .iter()
                    .map(|o| ResultRow {
                        path: o.path.clone(),
                        size: french::bytes(i64::try_from(o.size).unwrap_or(i64::MAX)),
                        modified: o.last_modified.format("%d/%m/%Y %H:%M UTC").to_string(),
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
        StatusCode::OK,
        &RunPage {
            layout: signed.layout(&format!("Exécution {}", view.name), "sandboxes"),
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
        },
    )
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/journal`: the end of the run's log
/// (the API's `…/logs` with `tailLines` and `limitBytes`), as text in the page.
pub async fn log(
    State(app): State<AppState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let query = vec![
        ("tailLines".to_owned(), LOG_LINES.to_string()),
        ("limitBytes".to_owned(), LOG_BYTES.to_string()),
    ];
    let answer = logs(
        State(app),
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
                        Some("Le journal n'a pas pu être lu jusqu'au bout ; réessayez.".to_owned()),
                    )
                }
            }
        }
        Err(e) => match unavailable(&e) {
            Some(note) => (None, Some(note)),
            None => return api_problem(e),
        },
    };
    page(
        StatusCode::OK,
        &LogPage {
            layout: signed.layout(&format!("Journal de {id}"), "sandboxes"),
            sandbox: name,
            run: id,
            text,
            note,
        },
    )
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/resultats/{*path}`: one result
/// object, streamed by the API's own handler (attachment).
pub async fn result(
    State(app): State<AppState>,
    signed: Signed,
    Path((name, id, path)): Path<(String, String, String)>,
) -> Response {
    match download_result(State(app), signed.ctx(), Path((name, id, path))).await {
        Ok(r) => r.into_response(),
        Err(e) => api_problem(e),
    }
}

/// `GET /console/bacs-a-sable/{name}/executions/{id}/rapport`: the frugality report
/// (the API's `…/report`, same figures, caveats and comparison).
pub async fn report(
    State(app): State<AppState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let r = match build_report(&app, &signed.ctx, &name, &id).await {
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
            value: format!("{:.4} {}", x.value, x.unit).replace('.', ","),
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
            layout: signed.layout(&format!("Rapport de frugalité de {id}"), "sandboxes"),
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
