//! Acting on runs from the console: start one (the form on a sandbox's runs page), cancel
//! one, report its quality — through the API's own handlers (`crate::http::runs::create`,
//! `cancel`, `quality`), so the same validation, Cedar decisions (`run.create`,
//! `run.cancel`, `run.quality`), energy-budget gate and audit records. What the pages
//! offer is decided by Cedar too (the API decides again when the form is sent).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::WebState;
use super::lang::{Lang, tr, trf};
use super::pages::{Signed, api_problem};
use super::runs::{RunExtras, render_list, render_run};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::http::Body;
use crate::http::runs::{
    Quality, cancel as api_cancel, create as api_create, quality as api_quality,
};
use crate::runs::{CreateRun, FunctionalUnitBody, MAX_TIMEOUT_S, RunResourcesBody};
use crate::sandboxes::FieldIssue;
use crate::store::SandboxRecord;
use serre_resources::RunKind;

/// The run kinds the form offers, with their labels in the request's language.
pub fn kinds() -> [(&'static str, &'static str); 4] {
    [
        ("inference", tr("Inférence")),
        ("evaluation", tr("Évaluation")),
        ("fineTuning", tr("Affinage (fine-tuning)")),
        ("training", tr("Entraînement")),
    ]
}

/// The start form's values as typed, and the refusals beside their fields (by input id).
pub struct StartForm {
    pub image: String,
    pub kind: String,
    pub cpu: String,
    pub memory: String,
    pub gpu: String,
    pub timeout: String,
    pub solution: String,
    pub unit_name: String,
    pub unit_count: String,
    pub grants: Vec<String>,
    pub errors: Vec<(String, String)>,
    pub general: Vec<String>,
}

impl Default for StartForm {
    fn default() -> Self {
        Self {
            image: String::new(),
            kind: "inference".into(),
            cpu: "1".into(),
            memory: "2Gi".into(),
            gpu: String::new(),
            timeout: "60".into(),
            solution: String::new(),
            unit_name: String::new(),
            unit_count: String::new(),
            grants: Vec::new(),
            errors: Vec::new(),
            general: Vec::new(),
        }
    }
}

impl StartForm {
    /// The form's text inputs, as typed, with their refusals.
    pub fn text_fields(&self) -> Vec<super::pages::TextField> {
        super::pages::TextField::all(
            &[
                (
                    "cpu",
                    tr("Processeur (CPU)"),
                    tr("Nombre de cœurs, ex. 1 ou 500m"),
                    &self.cpu,
                ),
                ("memory", tr("Mémoire"), tr("Ex. 2Gi, 512Mi"), &self.memory),
                (
                    "gpu",
                    tr("GPU"),
                    tr("Nombre de GPU ; vide : aucun"),
                    &self.gpu,
                ),
                (
                    "timeout",
                    tr("Durée maximale (minutes)"),
                    tr("L'exécution est arrêtée au-delà ; 7 jours au plus"),
                    &self.timeout,
                ),
                (
                    "solution",
                    tr("Solution du catalogue (facultatif)"),
                    tr("Identifiant de la solution que l'exécution mesure"),
                    &self.solution,
                ),
                (
                    "unit_name",
                    tr("Unité fonctionnelle (facultatif)"),
                    tr("Ce que l'exécution traite, ex. inférence, document"),
                    &self.unit_name,
                ),
                (
                    "unit_count",
                    tr("Nombre d'unités fonctionnelles (facultatif)"),
                    tr("Pour l'énergie et les émissions par unité"),
                    &self.unit_count,
                ),
            ],
            |f| self.error(f),
        )
    }

    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn push(&mut self, field: &str, message: String) {
        if self.error(field).is_none() {
            self.errors.push((field.to_owned(), message));
        }
    }

    /// The form as sent (repeated `grants` keys: the checked grants). `csrf` apart.
    fn from_pairs(pairs: &[(String, String)]) -> (Self, String) {
        let mut f = Self {
            kind: String::new(),
            cpu: String::new(),
            memory: String::new(),
            timeout: String::new(),
            ..Self::default()
        };
        let mut csrf = String::new();
        for (k, v) in pairs {
            let v = v.clone();
            match k.as_str() {
                "csrf" => csrf = v,
                "image" => f.image = v,
                "kind" => f.kind = v,
                "cpu" => f.cpu = v,
                "memory" => f.memory = v,
                "gpu" => f.gpu = v,
                "timeout" => f.timeout = v,
                "solution" => f.solution = v,
                "unit_name" => f.unit_name = v,
                "unit_count" => f.unit_count = v,
                "grants" => f.grants.push(v),
                _ => {}
            }
        }
        (f, csrf)
    }

    /// The API's request, or `None` with the form's own refusals (numbers that are not).
    fn request(&mut self) -> Option<CreateRun> {
        let kind = match self.kind.as_str() {
            "training" => Some(RunKind::Training),
            "fineTuning" => Some(RunKind::FineTuning),
            "inference" => Some(RunKind::Inference),
            "evaluation" => Some(RunKind::Evaluation),
            _ => {
                self.push("kind", tr("Choisissez un type d'exécution.").into());
                None
            }
        };
        let max_minutes = MAX_TIMEOUT_S / 60;
        let timeout = match self.timeout.trim().parse::<u32>() {
            Ok(m) if (1..=max_minutes).contains(&m) => Some(m * 60),
            _ => {
                self.push(
                    "timeout",
                    trf(
                        "Indiquez un nombre entier de minutes, de 1 à {} (7 jours).",
                        &[&max_minutes],
                    ),
                );
                None
            }
        };
        let gpu = match self.gpu.trim() {
            "" => Some(None),
            g => match g.parse::<u32>() {
                Ok(n) => Some((n > 0).then_some(n)),
                Err(_) => {
                    self.push(
                        "gpu",
                        tr("Indiquez un nombre entier de GPU (ou laissez vide).").into(),
                    );
                    None
                }
            },
        };
        let unit = match (self.unit_name.trim(), self.unit_count.trim()) {
            ("", "") => Some(None),
            (name, count) => match count.parse::<u64>() {
                Ok(count) => Some(Some(FunctionalUnitBody {
                    name: name.to_owned(),
                    count,
                })),
                Err(_) => {
                    self.push(
                        "unit_count",
                        tr("Indiquez combien d'unités fonctionnelles l'exécution traite (un nombre entier).").into(),
                    );
                    None
                }
            },
        };
        let ok = kind.is_some() && timeout.is_some() && gpu.is_some() && unit.is_some();
        let solution = self.solution.trim();
        let req = CreateRun {
            image: self.image.trim().to_owned(),
            command: Vec::new(),
            args: Vec::new(),
            resources: RunResourcesBody {
                cpu: self.cpu.trim().to_owned(),
                memory: self.memory.trim().to_owned(),
                gpu: gpu.flatten(),
                gpu_resource: None,
            },
            grants: self.grants.clone(),
            solution: (!solution.is_empty()).then(|| solution.to_owned()),
            kind: kind.unwrap_or(RunKind::Inference),
            timeout_seconds: timeout.unwrap_or(60),
            functional_unit: unit.flatten(),
        };
        if ok {
            return Some(req);
        }
        // The form's own refusals, and the API's checks of the rest of the request (no
        // side effect: the request alone), so that every wrong field is said at once.
        for i in crate::runs::validate(&req) {
            if let Some(f) = start_field(&i.field)
                && self.error(f).is_none()
            {
                let m = start_issue(&i);
                self.push(f, m);
            }
        }
        None
    }

    /// The API's refusal beside its field, in French; `Err` when it is not the form's
    /// (404, 403, a server error: the page's).
    fn refused(&mut self, e: ApiError) -> Result<(), ApiError> {
        match e {
            ApiError::Validation(issues) => {
                for i in &issues {
                    match start_field(&i.field) {
                        Some(f) => self.push(f, start_issue(i)),
                        None => self.general.push(start_issue(i)),
                    }
                }
                Ok(())
            }
            e => match e.code() {
                "conflict" => {
                    self.general.push(conflict(&e.to_string()));
                    Ok(())
                }
                "energy_budget_exhausted" => {
                    self.general.push(trf(
                        "Le budget d'énergie du mois de la collectivité est épuisé : les \
                         nouvelles exécutions sont refusées ({}).",
                        &[&e],
                    ));
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }
}

/// Why the API answered 409 to a start, in French.
fn conflict(message: &str) -> String {
    if message.contains("without a cluster") {
        tr("Cette passerelle fonctionne sans cluster : les exécutions ont besoin d'un cluster.")
            .into()
    } else if message.contains("not ready for runs") {
        trf(
            "Le bac à sable n'est pas prêt pour des exécutions ({}).",
            &[&message],
        )
    } else {
        trf("Exécution refusée : {}", &[&message])
    }
}

/// The input an API field belongs to.
fn start_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "image" => "image",
        "kind" => "kind",
        "timeoutSeconds" => "timeout",
        "resources.cpu" => "cpu",
        "resources.memory" => "memory",
        "resources.gpu" | "resources.gpuResource" => "gpu",
        "solution" => "solution",
        "functionalUnit.name" => "unit_name",
        "functionalUnit.count" => "unit_count",
        f if f == "grants" || f.starts_with("grants[") => "grants",
        _ => return None,
    })
}

/// One of the API's refusals of a run, in French (its English message kept when the rule
/// has no French wording).
fn start_issue(i: &FieldIssue) -> String {
    if Lang::current() == Lang::En {
        return i.message.clone();
    }
    match (i.field.as_str(), i.rule.as_str()) {
        ("image", "image_reference") => {
            "Indiquez une référence d'image, par exemple registry.example.fr/equipe/modele:1.0 \
             (sans espace)."
                .into()
        }
        ("timeoutSeconds", "range") => "La durée maximale doit aller de 1 minute à 7 jours.".into(),
        ("functionalUnit.count", "minimum") => "Au moins une unité fonctionnelle.".into(),
        ("functionalUnit.name", "length") => {
            "Nommez l'unité fonctionnelle en 1 à 64 caractères (ex. « inférence »).".into()
        }
        (_, "grant_usable") => format!("Partage inutilisable pour cette exécution : {}", i.message),
        (_, "unknown_solution") => "Aucune solution de ce nom au catalogue.".into(),
        (_, "run_policy") => format!("Refusé par la politique de la collectivité : {}", i.message),
        _ => super::french::issue(i),
    }
}

/// Whether Cedar lets the person take `action` on the sandbox's runs (`run.create`).
pub fn may_on_sandbox(app: &WebState, signed: &Signed, action: Action, s: &SandboxRecord) -> bool {
    let vendors = s.vendor_subjects();
    let resource = Resource::Sandbox {
        name: &s.row.name,
        tenant: &s.row.tenant,
        created_by: &s.row.created_by,
        vendors: &vendors,
    };
    app.authz
        .decide(&signed.ctx.caller, action, &resource)
        .is_ok_and(|d| d.allowed)
}

/// `POST /console/bacs-a-sable/{name}/executions`: start a run (the API's `create`);
/// refusals come back beside their fields with the form as typed.
pub async fn start(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (mut form, csrf) = StartForm::from_pairs(&pairs);
    if let Some(r) = signed.csrf_refusal(&csrf) {
        return r;
    }
    if let Some(req) = form.request() {
        match api_create(
            State(app.app.clone()),
            signed.ctx(),
            Path(name.clone()),
            Body(req),
        )
        .await
        {
            Ok(created) => {
                let body = axum::body::to_bytes(created.into_body(), 1 << 20)
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                let run = body
                    .as_ref()
                    .and_then(|v| v["name"].as_str())
                    .unwrap_or_default();
                return Redirect::to(&format!(
                    "/console/bacs-a-sable/{name}/executions/{run}?lancee=1"
                ))
                .into_response();
            }
            Err(e) => {
                if let Err(e) = form.refused(e) {
                    return api_problem(e);
                }
            }
        }
    }
    render_list(&app, &signed, name, form, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// The quality form's values as typed, and its refusals.
#[derive(Default, serde::Deserialize)]
pub struct QualityForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub value: String,
    #[serde(skip)]
    pub errors: Vec<(String, String)>,
}

impl QualityForm {
    /// The form's inputs, as typed, with their refusals.
    pub fn fields(&self) -> Vec<super::pages::TextField> {
        super::pages::TextField::all(
            &[
                (
                    "metric",
                    tr("Mesure"),
                    tr("Ex. rougeL, f1, accuracy"),
                    &self.metric,
                ),
                (
                    "value",
                    tr("Valeur"),
                    tr("Un nombre, ex. 0,41"),
                    &self.value,
                ),
            ],
            |f| self.error(f),
        )
    }

    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// `POST /console/bacs-a-sable/{name}/executions/{id}/qualite`: report the quality the
/// run's model reached (the API's `quality`: its requester only).
pub async fn quality(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
    Form(mut form): Form<QualityForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&form.csrf) {
        return r;
    }
    // French decimals (« 0,41 ») as well as « 0.41 ».
    let value = form.value.trim().replace(',', ".").parse::<f64>();
    let Ok(value) = value else {
        form.errors.push((
            "value".into(),
            tr("Indiquez un nombre, par exemple 0,41.").into(),
        ));
        return refused(&app, &signed, name, id, form, None).await;
    };
    let q = Quality {
        metric: form.metric.clone(),
        value,
    };
    match api_quality(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
        Body(q),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/bacs-a-sable/{name}/executions/{id}?qualite=1"
        ))
        .into_response(),
        Err(ApiError::Validation(issues)) => {
            for i in &issues {
                let message = match (i.field.as_str(), i.rule.as_str()) {
                    _ if Lang::current() == Lang::En => i.message.clone(),
                    ("metric", "metric_name") => {
                        "Nommez la mesure en 1 à 64 lettres, chiffres, espaces ou -_.@/ \
                         (ex. rougeL, f1, accuracy)."
                            .to_owned()
                    }
                    ("value", _) => "Indiquez un nombre fini.".to_owned(),
                    _ => super::french::issue(i),
                };
                let field = if i.field == "value" {
                    "value"
                } else {
                    "metric"
                };
                form.errors.push((field.into(), message));
            }
            refused(&app, &signed, name, id, form, None).await
        }
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let note = tr(
                "L'exécution est close et son résultat est attaché à la solution du \
                        catalogue : sa qualité ne peut plus changer.",
            )
            .to_owned();
            refused(&app, &signed, name, id, form, Some(note)).await
        }
        Err(e) => api_problem(e),
    }
}

/// The run page again with the quality form as typed: 422 beside the field, or 409 with
/// `refusal` (the result is attached: immutable).
async fn refused(
    app: &WebState,
    signed: &Signed,
    name: String,
    id: String,
    form: QualityForm,
    refusal: Option<String>,
) -> Response {
    let status = if refusal.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let extras = RunExtras {
        quality_form: Some(form),
        refusal,
        ..RunExtras::default()
    };
    render_run(app, signed, name, id, extras, status).await
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/bacs-a-sable/{name}/executions/{id}/annuler`: cancel a run (the API's
/// `cancel`: its requester or the tenant's admins).
pub async fn cancel(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&form.csrf) {
        return r;
    }
    match api_cancel(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), id.clone())),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/bacs-a-sable/{name}/executions/{id}?annulee=1"
        ))
        .into_response(),
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let note =
                tr("L'exécution est déjà terminée : il n'y a plus rien à annuler.").to_owned();
            let extras = RunExtras {
                refusal: Some(note),
                ..RunExtras::default()
            };
            render_run(&app, &signed, name, id, extras, StatusCode::CONFLICT).await
        }
        Err(e) => api_problem(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn the_form_becomes_the_api_request_or_says_which_field_is_wrong() {
        let (mut f, csrf) = StartForm::from_pairs(&pairs(&[
            ("csrf", "t"),
            ("image", " registry.example.fr/m:1 "),
            ("kind", "evaluation"),
            ("cpu", "2"),
            ("memory", "4Gi"),
            ("gpu", ""),
            ("timeout", "90"),
            ("grants", "g1"),
            ("grants", "g2"),
            ("unit_name", "inférence"),
            ("unit_count", "1000"),
        ]));
        assert_eq!(csrf, "t");
        let r = f.request().expect("a request");
        assert_eq!(r.image, "registry.example.fr/m:1");
        assert_eq!(r.kind, RunKind::Evaluation);
        assert_eq!(r.timeout_seconds, 5400);
        assert_eq!(r.grants, ["g1", "g2"]);
        assert_eq!(r.resources.gpu, None);
        assert_eq!(r.functional_unit.map(|u| u.count), Some(1000));

        let (mut f, _) = StartForm::from_pairs(&pairs(&[
            ("kind", "mining"),
            ("timeout", "0"),
            ("gpu", "deux"),
        ]));
        assert!(f.request().is_none());
        for field in ["kind", "timeout", "gpu"] {
            assert!(f.error(field).is_some(), "{field}");
        }
        assert_eq!(start_field("grants[3]"), Some("grants"));
        assert!(start_issue(&FieldIssue::new("image", "image_reference", "x")).contains("image"));
        assert!(conflict("this gateway runs without a cluster").contains("sans cluster"));
    }
}
