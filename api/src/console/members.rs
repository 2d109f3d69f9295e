//! « Membres »: the vendors added to a sandbox, and (where Cedar lets the person: the
//! tenant's admins) the forms that add and remove one, through the API's own
//! `add_member` and `remove_member` handlers — with their k-anonymity re-check of the
//! sandbox's live grants before a vendor may read them.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebState;
use super::approvals::may;
use super::french;
use super::lang::{tr, trf};
use super::pages::{Layout, Signed, api_problem, page};
use crate::authz::Action;
use crate::error::ApiError;
use crate::http::Body;
use crate::http::sandbox_members::{add_member, remove_member};
use crate::http::sandboxes::{load_authorized, render};
use crate::sandboxes::AddMember;

struct MemberRow {
    subject: String,
    /// The subject percent-encoded, for the removal form's path.
    path: String,
    added_by: String,
    added: String,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    layout: Layout,
    sandbox: String,
    members: Vec<MemberRow>,
    may_add: bool,
    may_remove: bool,
    subject: String,
    error: Option<String>,
    general: Option<String>,
    notice: Option<String>,
}

struct Refusal {
    subject: String,
    error: Option<String>,
    general: Option<String>,
}

async fn members_page(
    app: &WebState,
    signed: &Signed,
    name: &str,
    notice: Option<String>,
    refusal: Option<Refusal>,
    status: StatusCode,
) -> Response {
    let record = match load_authorized(&app.app, &signed.ctx, Action::SandboxRead, name).await {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let view = match render(&app.app, &record) {
        Ok(v) => v,
        Err(e) => return api_problem(e),
    };
    let refusal = refusal.unwrap_or(Refusal {
        subject: String::new(),
        error: None,
        general: None,
    });
    page(
        status,
        &MembersPage {
            layout: signed.layout(&trf("Membres de {}", &[&name]), "sandboxes"),
            sandbox: view.name.clone(),
            members: view
                .members
                .iter()
                .map(|m| MemberRow {
                    subject: m.subject.clone(),
                    path: urlencoding(&m.subject),
                    added_by: m.added_by.clone(),
                    added: french::when(&m.added_at),
                })
                .collect(),
            may_add: may(app, signed, Action::SandboxMembersAdd, &view),
            may_remove: may(app, signed, Action::SandboxMembersRemove, &view),
            subject: refusal.subject,
            error: refusal.error,
            general: refusal.general,
            notice,
        },
    )
}

#[derive(Deserialize)]
pub struct Notice {
    ajoute: Option<String>,
    retire: Option<String>,
}

/// `GET /console/bacs-a-sable/{name}/membres`: the sandbox's vendors.
pub async fn list(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    let notice = match (q.ajoute, q.retire) {
        (Some(s), _) => Some(trf("{} est ajouté au bac à sable.", &[&s])),
        (None, Some(s)) => Some(trf("{} est retiré du bac à sable.", &[&s])),
        (None, None) => None,
    };
    members_page(&app, &signed, &name, notice, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
}

/// `POST /console/bacs-a-sable/{name}/membres`: the API's `add_member`.
pub async fn add(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(f): Form<MemberForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    let subject = f.subject.trim().to_owned();
    let body = Body(AddMember {
        subject: subject.clone(),
    });
    let e = match add_member(
        State(app.app.clone()),
        signed.ctx(),
        Path(name.clone()),
        body,
    )
    .await
    {
        Ok(_) => {
            let to = format!(
                "/console/bacs-a-sable/{name}/membres?ajoute={}",
                urlencoding(&subject)
            );
            return Redirect::to(&to).into_response();
        }
        Err(e) => e,
    };
    let refusal = match e {
        ApiError::Validation(issues) => Refusal {
            subject: f.subject,
            error: Some(match issues.first().map(|i| i.rule.as_str()) {
                Some("required") => tr("Indiquez l'identifiant du prestataire.").into(),
                _ => tr("L'identifiant doit tenir en 255 caractères imprimables.").into(),
            }),
            general: None,
        },
        ApiError::Conflict(m) if m.contains("already a member") => Refusal {
            subject: f.subject,
            error: Some(tr("Ce prestataire est déjà membre du bac à sable.").into()),
            general: None,
        },
        ApiError::Conflict(m) => Refusal {
            subject: f.subject,
            error: None,
            general: Some(trf(
                "Le prestataire n'est pas ajouté : des partages de données personnelles de ce \
                 bac à sable n'atteignent pas le k-anonymat exigé pour un prestataire. \
                 Révoquez-les ou partagez de nouveau avec une anonymisation suffisante. \
                 Détail : {}",
                &[&m],
            )),
        },
        e => return api_problem(e),
    };
    members_page(
        &app,
        &signed,
        &name,
        None,
        Some(refusal),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// `POST /console/bacs-a-sable/{name}/membres/{subject}/retirer`: the API's
/// `remove_member`.
pub async fn remove(
    State(app): State<WebState>,
    signed: Signed,
    Path((name, subject)): Path<(String, String)>,
    Form(f): Form<MemberForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    match remove_member(
        State(app.app.clone()),
        signed.ctx(),
        Path((name.clone(), subject.clone())),
    )
    .await
    {
        Ok(_) => {
            let to = format!(
                "/console/bacs-a-sable/{name}/membres?retire={}",
                urlencoding(&subject)
            );
            Redirect::to(&to).into_response()
        }
        Err(e) => api_problem(e),
    }
}

/// Percent-encode a query value (everything but unreserved characters).
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::urlencoding("vendor x/é"), "vendor%20x%2F%C3%A9");
    }
}
