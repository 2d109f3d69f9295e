//! « Approbations »: the sandbox requests waiting for the person's decision (those where
//! Cedar allows them `sandbox.approve`: their tenants' admins, the Métropole's), with
//! « Approuver » and « Refuser » through the API's own `approve` and `reject` handlers
//! (same decisions, audit and push to the cluster).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebState;
use super::french;
use super::lang::{tr, trf};
use super::pages::{Layout, Signed, api_problem, page};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::http::sandboxes::{
    ListQuery, approve as api_approve, list_sandboxes, reject as api_reject,
};
use crate::http::{Body, MaybeBody};
use crate::sandboxes::{Decide, SandboxView};

/// Whether Cedar lets the person take `action` on the sandbox (what the page offers; the
/// API decides again, recorded, when they do).
pub(super) fn may(app: &WebState, signed: &Signed, action: Action, v: &SandboxView) -> bool {
    let vendors: Vec<String> = v.members.iter().map(|m| m.subject.clone()).collect();
    let resource = Resource::Sandbox {
        name: &v.name,
        tenant: &v.tenant,
        created_by: &v.created_by,
        vendors: &vendors,
    };
    app.authz
        .decide(&signed.ctx.caller, action, &resource)
        .is_ok_and(|d| d.allowed)
}

struct Waiting {
    name: String,
    tenant: String,
    purpose: String,
    created_by: String,
    resources: String,
    expires: String,
    countdown: String,
    reasons: Vec<String>,
    /// The rejection reason typed and its error, when a refusal came back.
    reason: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    layout: Layout,
    waiting: Vec<Waiting>,
    notice: Option<String>,
}

async fn approvals_page(
    app: &WebState,
    signed: &Signed,
    notice: Option<String>,
    refused: Option<(String, String, String)>,
    status: StatusCode,
) -> Response {
    let list = match list_sandboxes(
        &app.app,
        &signed.ctx,
        ListQuery {
            tenant: None,
            state: Some("PendingApproval".into()),
        },
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return api_problem(e),
    };
    let waiting = list
        .items
        .iter()
        .filter(|v| may(app, signed, Action::SandboxApprove, v))
        .map(|v| {
            let (reason, error) = match &refused {
                Some((name, reason, error)) if *name == v.name => {
                    (reason.clone(), Some(error.clone()))
                }
                _ => (String::new(), None),
            };
            Waiting {
                name: v.name.clone(),
                tenant: v.tenant.clone(),
                purpose: v.purpose.clone(),
                created_by: v.created_by.clone(),
                resources: trf(
                    "{} CPU, {} de mémoire, {} de stockage{}",
                    &[
                        &v.resources.cpu,
                        &v.resources.memory,
                        &v.resources.storage,
                        &v.resources
                            .gpu
                            .as_ref()
                            .map_or_else(String::new, |g| format!(", {} GPU", g.count)),
                    ],
                ),
                expires: french::day(v.expires_at),
                countdown: french::countdown((v.expires_at - chrono::Utc::now()).num_days()),
                reasons: v.request.approval_reasons.clone(),
                reason,
                error,
            }
        })
        .collect();
    page(
        status,
        &ApprovalsPage {
            layout: signed.layout(tr("Approbations"), "approvals"),
            waiting,
            notice,
        },
    )
}

#[derive(Deserialize)]
pub struct Notice {
    approuve: Option<String>,
    refuse: Option<String>,
}

/// `GET /console/approbations`: the requests waiting for the person's decision.
pub async fn list(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<Notice>,
) -> Response {
    let notice = match (q.approuve, q.refuse) {
        (Some(n), _) => Some(trf("Le bac à sable {} est approuvé.", &[&n])),
        (None, Some(n)) => Some(trf("La demande {} est refusée.", &[&n])),
        (None, None) => None,
    };
    approvals_page(&app, &signed, notice, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn reason(f: &DecisionForm) -> Option<String> {
    let r = f.reason.trim();
    (!r.is_empty()).then(|| r.to_owned())
}

/// `POST /console/approbations/{name}/approuver`: the API's approval (reason optional).
pub async fn approve(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    let body = MaybeBody(Some(Decide { reason: reason(&f) }));
    match api_approve(
        State(app.app.clone()),
        signed.ctx(),
        Path(name.clone()),
        body,
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/approbations?approuve={name}")).into_response(),
        Err(e) => api_problem(e),
    }
}

/// `POST /console/approbations/{name}/refuser`: the API's rejection (reason required; its
/// absence comes back beside the field).
pub async fn reject(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    let body = Body(Decide { reason: reason(&f) });
    match api_reject(
        State(app.app.clone()),
        signed.ctx(),
        Path(name.clone()),
        body,
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/approbations?refuse={name}")).into_response(),
        Err(ApiError::Validation(_)) => {
            let refused = (
                name,
                f.reason,
                tr("Indiquez la raison du refus : la personne qui a demandé le bac à sable la lira.")
                    .to_owned(),
            );
            approvals_page(
                &app,
                &signed,
                None,
                Some(refused),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => api_problem(e),
    }
}
