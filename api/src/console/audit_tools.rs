//! The audit log's export and verification from the console, beside « Journal d'audit »:
//! the JSON-lines export (the API's `GET /v1/audit?format=jsonl`, streamed as a file,
//! verifiable offline with `serre-api audit verify --file`), and « Vérifier la chaîne »,
//! which recomputes the hash chain in the database as `serre-api audit verify` does —
//! the whole log against the latest signed checkpoint for the Métropole's admins, the
//! tenant's own entries for its admins. Both decide `audit.read` through the API's
//! `authorize_read` (recorded).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

use super::WebState;
use super::lang::{tr, trf};
use super::pages::{Signed, api_problem};
use crate::error::ApiError;
use crate::http::audit::{AuditQuery as ApiQuery, authorize_read, list};
use crate::http::audit_verify::Verification;

/// The tenant a page is about: the named one, or the person's first as a tenant admin,
/// or the whole log (`None`) for the Métropole's admins.
pub(super) fn scope(signed: &Signed, named: Option<String>) -> Option<String> {
    let roles = &signed.ctx.caller.roles;
    named.filter(|t| !t.is_empty()).or_else(|| {
        (!roles.metropole_admin)
            .then(|| roles.admin_of.iter().next().cloned())
            .flatten()
    })
}

#[derive(Deserialize)]
pub struct ExportQuery {
    collectivite: Option<String>,
}

/// `GET /console/journal/export[?collectivite=<tenant>]`: every entry as JSON lines, as a
/// file (the API's export, streamed).
pub async fn export(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<ExportQuery>,
) -> Response {
    let tenant = scope(&signed, q.collectivite);
    let query = ApiQuery {
        tenant: tenant.clone(),
        after: None,
        limit: None,
        format: Some("jsonl".into()),
    };
    let mut r = match list(
        State(app.app.clone()),
        signed.ctx(),
        HeaderMap::new(),
        Query(query),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let name = match &tenant {
        Some(t) => format!("journal-audit-{}.jsonl", file_safe(t)),
        None => "journal-audit.jsonl".to_owned(),
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

fn file_safe(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// What « Vérifier la chaîne » found, in French.
pub struct Verdict {
    pub intact: bool,
    pub lines: Vec<String>,
}

/// Recompute the chain: the whole log against the latest signed checkpoint (`tenant`
/// `None`), or one tenant's entries (the API's `GET /v1/audit/verify`). Call
/// [`authorize_read`] first.
async fn check(app: &WebState, tenant: Option<&str>) -> Result<Verdict, ApiError> {
    Ok(verdict(
        &crate::http::audit_verify::check(&app.app, tenant).await?,
    ))
}

fn verdict(v: &Verification) -> Verdict {
    let mut lines = Vec::new();
    if let Some(cp) = &v.checkpoint {
        match cp.state.as_str() {
            "verified" => {
                let when = cp
                    .time
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| super::french::time(t.with_timezone(&chrono::Utc)))
                    .unwrap_or_default();
                lines.push(trf(
                    "Point de contrôle signé de l'entrée {} ({}) : signature valide.",
                    &[&cp.seq.unwrap_or_default(), &when],
                ));
            }
            "invalid" => {
                return Verdict {
                    intact: false,
                    lines: vec![trf(
                        "Le dernier point de contrôle publié a une signature invalide : {}.",
                        &[&cp.error.as_deref().unwrap_or_default()],
                    )],
                };
            }
            "none" => lines.push(
                tr(
                    "Aucun point de contrôle signé n'est encore publié : la chaîne est vérifiée \
                 seule (une réécriture complète du journal ne serait pas décelée).",
                )
                .into(),
            ),
            _ => lines.push(
                tr("Le point de contrôle signé n'a pas pu être lu : la chaîne est vérifiée seule.")
                    .into(),
            ),
        }
    }
    if let Some(t) = &v.tenant {
        lines.push(trf(
            "Entrées de {} : chaque empreinte est recalculée et chaque entrée suit la \
             précédente ; les entrées des autres collectivités et la chaîne entière sont \
             vérifiées par les administrateurs de la Métropole.",
            &[t],
        ));
    }
    let anchored = v.checkpoint.as_ref().is_some_and(|c| c.state == "verified");
    let first = match (&v.broken, &v.head_seq, &v.head_hash) {
        (Some(b), _, _) => trf(
            "Chaîne ROMPUE à l'entrée {} : {} ({} entrées vérifiées avant elle).",
            &[&b.seq, &b.reason, &v.entries],
        ),
        (None, Some(seq), Some(hash)) => trf(
            "Chaîne intacte : {} entrées vérifiées{} ; dernière entrée {}, empreinte {}.",
            &[
                &v.entries,
                &if anchored {
                    tr(", jusqu'au point de contrôle signé")
                } else {
                    ""
                },
                seq,
                hash,
            ],
        ),
        (None, _, _) => tr("Chaîne intacte : aucune entrée.").into(),
    };
    lines.insert(0, first);
    Verdict {
        intact: v.intact,
        lines,
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    collectivite: Option<String>,
}

/// `POST /console/journal/verifier`: the audit page with the verdict above the entries.
pub async fn verify(
    State(app): State<WebState>,
    signed: Signed,
    Form(f): Form<VerifyForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    let tenant = scope(&signed, f.collectivite);
    if let Err(e) = authorize_read(&app.app, &signed.ctx, tenant.as_deref()).await {
        return api_problem(e);
    }
    let verdict = match check(&app, tenant.as_deref()).await {
        Ok(v) => v,
        Err(e) => return api_problem(e),
    };
    super::audit::render(&app, &signed, tenant, 0, Some(verdict)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::audit_verify::{BrokenEntry, CheckpointCheck};

    #[test]
    fn verdicts_read_in_french() {
        let ok = verdict(&Verification {
            intact: true,
            tenant: None,
            entries: 3,
            head_seq: Some(3),
            head_hash: Some("ab".into()),
            broken: None,
            checkpoint: Some(CheckpointCheck {
                state: "verified".into(),
                seq: Some(3),
                time: Some("2026-12-07T10:00:00Z".into()),
                error: None,
            }),
        });
        assert!(ok.intact && ok.lines[0].contains("jusqu'au point de contrôle signé"));
        assert!(
            ok.lines[1].contains("07/12/2026 10:00 UTC"),
            "{:?}",
            ok.lines
        );
        let ko = verdict(&Verification {
            intact: false,
            tenant: Some("est-ensemble".into()),
            entries: 1,
            head_seq: None,
            head_hash: None,
            broken: Some(BrokenEntry {
                seq: 2,
                reason: "hash mismatch".into(),
            }),
            checkpoint: None,
        });
        assert!(!ko.intact && ko.lines[0].starts_with("Chaîne ROMPUE à l'entrée 2"));
    }
}
