//! « Journal d'audit »: the audit log, a tenant's entries for its admins (all entries for
//! the Métropole's admins), read through the API's own `authorize_read` (`audit.read`,
//! recorded) and `read_page`, fifty entries a page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::WebState;
use super::french;
use super::lang::tr;
use super::pages::{Layout, Signed, api_problem, page};
use crate::http::audit::{authorize_read, read_page};

const PAGE: i64 = 50;

/// A decision in French.
fn decision(d: &str) -> (&'static str, &'static str) {
    match d {
        "allow" => (tr("autorisé"), "fr-badge--success"),
        "deny" => (tr("refusé"), "fr-badge--error"),
        "not_found" => (tr("introuvable"), "fr-badge--warning"),
        "change" => (tr("changement"), "fr-badge--info"),
        _ => (tr("autre"), "fr-badge--info"),
    }
}

struct EntryRow {
    seq: i64,
    time: String,
    principal: String,
    action: String,
    resource: String,
    decision: &'static str,
    badge: &'static str,
    policies: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    tenants: Vec<String>,
    /// Empty: the whole log (Métropole admins).
    tenant: String,
    all: bool,
    rows: Vec<EntryRow>,
    next: Option<i64>,
    /// What « Vérifier la chaîne » found, after it was asked.
    verdict: Option<super::audit_tools::Verdict>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    collectivite: Option<String>,
    #[serde(default)]
    apres: i64,
}

/// `GET /console/journal[?collectivite=<tenant>&apres=<seq>]`.
pub async fn show(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    let tenant = super::audit_tools::scope(&signed, q.collectivite);
    render(&app, &signed, tenant, q.apres.max(0), None).await
}

/// The audit page of `tenant` (`None`: the whole log) from entry `after`, with the
/// verdict of a verification when one was asked.
pub(super) async fn render(
    app: &WebState,
    signed: &Signed,
    tenant: Option<String>,
    after: i64,
    verdict: Option<super::audit_tools::Verdict>,
) -> Response {
    let roles = &signed.ctx.caller.roles;
    let tenants: Vec<String> = roles.admin_of.iter().cloned().collect();
    if let Err(e) = authorize_read(&app.app, &signed.ctx, tenant.as_deref()).await {
        return api_problem(e);
    }
    let p = match read_page(&app.app, tenant.as_deref(), after, PAGE).await {
        Ok(p) => p,
        Err(e) => return api_problem(e),
    };
    let rows = p
        .entries
        .iter()
        .map(|e| {
            let (d, badge) = decision(&e.decision);
            EntryRow {
                seq: e.seq,
                time: french::when(&e.time),
                principal: e.principal.clone(),
                action: e.action.clone(),
                resource: e.resource.clone(),
                decision: d,
                badge,
                policies: e.policies.join(", "),
            }
        })
        .collect();
    page(
        StatusCode::OK,
        &AuditPage {
            layout: signed.layout(tr("Journal d'audit"), "audit"),
            tenants,
            all: roles.metropole_admin,
            tenant: tenant.unwrap_or_default(),
            rows,
            next: p.next,
            verdict,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn decisions_read_in_french() {
        assert_eq!(super::decision("deny").0, "refusé");
        assert_eq!(super::decision("not_found").0, "introuvable");
    }
}
