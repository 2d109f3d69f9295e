//! « Libre-service » (`/console/libre-service`): the Métropole's admins set each tenant's
//! self-service policy — what a sandbox request gets without approval — through the
//! API's own `PUT /v1/tenants/{tenant}/policy` handler (`put_policy`: the same
//! validation, `tenant.policy.write` decision and `tenant.policy.updated` audit record).
//! The page lists the tenants for which Cedar allows the person `tenant.policy.write`;
//! nobody else gets it (403).

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kube::ResourceExt;
use serde::Deserialize;

use super::WebState;
use super::lang::{Lang, tr};
use super::pages::{Layout, Signed, api_problem, page};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::http::Body;
use crate::http::tenants::{get_policy, put_policy};
use crate::sandboxes::{FieldIssue, SelfServicePolicy};

/// The form's values as typed, and the refusals beside their fields (by input id).
#[derive(Default)]
pub struct PolicyForm {
    max_days: String,
    allow_gpu: bool,
    max_cpu: String,
    max_memory: String,
    max_storage: String,
    errors: Vec<(String, String)>,
}

impl PolicyForm {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn of(p: &SelfServicePolicy) -> Self {
        Self {
            max_days: p.max_days.to_string(),
            allow_gpu: p.allow_gpu,
            max_cpu: p.max_cpu.clone().unwrap_or_default(),
            max_memory: p.max_memory.clone().unwrap_or_default(),
            max_storage: p.max_storage.clone().unwrap_or_default(),
            errors: Vec::new(),
        }
    }

    /// The API's body, or `None` with the form's own refusal (days not a number).
    fn policy(&mut self) -> Option<SelfServicePolicy> {
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        let Ok(max_days) = self.max_days.trim().parse::<u32>() else {
            self.errors.push((
                "max_days".into(),
                tr("Indiquez un nombre entier de jours.").into(),
            ));
            return None;
        };
        Some(SelfServicePolicy {
            max_days,
            allow_gpu: self.allow_gpu,
            max_cpu: opt(&self.max_cpu),
            max_memory: opt(&self.max_memory),
            max_storage: opt(&self.max_storage),
        })
    }

    fn refused(&mut self, issues: &[FieldIssue]) {
        for i in issues {
            let (field, message) = match (i.field.as_str(), i.rule.as_str()) {
                ("maxDays", "max_lifetime") => (
                    "max_days",
                    format!(
                        "Au-delà de la durée de vie maximale d'un bac à sable ({}).",
                        i.message
                    ),
                ),
                ("maxCpu", _) => ("max_cpu", quantity()),
                ("maxMemory", _) => ("max_memory", quantity()),
                ("maxStorage", _) => ("max_storage", quantity()),
                _ => ("max_days", super::french::issue(i)),
            };
            // In English, the API's own words.
            let message = match Lang::current() {
                Lang::En => i.message.clone(),
                Lang::Fr => message,
            };
            self.errors.push((field.into(), message));
        }
    }
}

fn quantity() -> String {
    tr(
        "Quantité invalide : un nombre, éventuellement suivi d'une unité (ex. 2, 500m, 4Gi) ; \
     vide : sans limite propre.",
    )
    .into()
}

#[derive(Template)]
#[template(path = "console/policy_edit.html")]
struct PolicyPage {
    layout: Layout,
    tenants: Vec<(String, String)>,
    tenant: String,
    fields: Vec<super::pages::TextField>,
    form: PolicyForm,
    saved: bool,
}

#[derive(Deserialize)]
pub struct PolicyQuery {
    collectivite: Option<String>,
    enregistree: Option<String>,
}

/// The tenants whose policy Cedar lets the person set, with their names.
fn writable(app: &WebState, signed: &Signed) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = app
        .tenants
        .all()
        .iter()
        .map(|t| (t.name_any(), t.spec.display_name.clone()))
        .filter(|(name, _)| {
            app.authz
                .decide(
                    &signed.ctx.caller,
                    Action::TenantPolicyWrite,
                    &Resource::Tenant(name),
                )
                .is_ok_and(|d| d.allowed)
        })
        .collect();
    out.sort();
    out
}

async fn render(
    app: &WebState,
    signed: &Signed,
    tenant: Option<String>,
    form: Option<PolicyForm>,
    saved: bool,
    status: StatusCode,
) -> Response {
    let tenants = writable(app, signed);
    let Some(tenant) = tenant.or_else(|| tenants.first().map(|(t, _)| t.clone())) else {
        return api_problem(ApiError::Forbidden(
            "only the Métropole's admins set self-service policies".into(),
        ));
    };
    if !tenants.iter().any(|(t, _)| *t == tenant) {
        // Unknown, or not one the person may set: as the API would answer.
        return match app.tenants.get(&tenant) {
            None => api_problem(ApiError::NotFound(format!("tenant {tenant:?}"))),
            Some(_) => api_problem(ApiError::Forbidden(
                "only the Métropole's admins set self-service policies".into(),
            )),
        };
    }
    let form = match form {
        Some(f) => f,
        None => {
            match get_policy(State(app.app.clone()), signed.ctx(), Path(tenant.clone())).await {
                Ok(Json(p)) => PolicyForm::of(&p),
                Err(e) => return api_problem(e),
            }
        }
    };
    page(
        status,
        &PolicyPage {
            layout: signed.layout(tr("Libre-service des collectivités"), "policy"),
            tenants,
            tenant,
            fields: super::pages::TextField::all(
                &[
                    (
                        "max_days",
                        tr("Durée de vie maximale (jours)"),
                        tr("Au-delà, la demande attend une approbation"),
                        &form.max_days,
                    ),
                    (
                        "max_cpu",
                        tr("Processeurs au plus"),
                        tr(
                            "Ex. 4 ou 500m ; vide : sans limite propre (l'allocation de la collectivité s'applique)",
                        ),
                        &form.max_cpu,
                    ),
                    (
                        "max_memory",
                        tr("Mémoire au plus"),
                        tr("Ex. 16Gi ; vide : sans limite propre"),
                        &form.max_memory,
                    ),
                    (
                        "max_storage",
                        tr("Stockage au plus"),
                        tr("Ex. 100Gi ; vide : sans limite propre"),
                        &form.max_storage,
                    ),
                ],
                |f| form.error(f),
            ),
            form,
            saved,
        },
    )
}

/// `GET /console/libre-service[?collectivite=<tenant>]`.
pub async fn show(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<PolicyQuery>,
) -> Response {
    let tenant = q.collectivite.filter(|t| !t.is_empty());
    render(
        &app,
        &signed,
        tenant,
        None,
        q.enregistree.is_some(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct Posted {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    max_days: String,
    #[serde(default)]
    allow_gpu: Option<String>,
    #[serde(default)]
    max_cpu: String,
    #[serde(default)]
    max_memory: String,
    #[serde(default)]
    max_storage: String,
}

/// `POST /console/libre-service/{tenant}`: the API's `put_policy`; refusals beside their
/// fields with the form as typed.
pub async fn save(
    State(app): State<WebState>,
    signed: Signed,
    Path(tenant): Path<String>,
    Form(p): Form<Posted>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&p.csrf) {
        return r;
    }
    let mut form = PolicyForm {
        max_days: p.max_days,
        allow_gpu: p.allow_gpu.is_some(),
        max_cpu: p.max_cpu,
        max_memory: p.max_memory,
        max_storage: p.max_storage,
        errors: Vec::new(),
    };
    if let Some(policy) = form.policy() {
        match put_policy(
            State(app.app.clone()),
            signed.ctx(),
            Path(tenant.clone()),
            Body(policy),
        )
        .await
        {
            Ok(_) => {
                return Redirect::to(&format!(
                    "/console/libre-service?collectivite={tenant}&enregistree=1"
                ))
                .into_response();
            }
            Err(ApiError::Validation(issues)) => form.refused(&issues),
            Err(e) => return api_problem(e),
        }
    }
    render(
        &app,
        &signed,
        Some(tenant),
        Some(form),
        false,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}
