//! The tenants' self-service policies, shown beside the sandbox request form: what is
//! created at once and what waits for a tenant admin. Read through the API's own
//! `GET /v1/tenants/{tenant}/policy` handler (`tenant.policy.read`, audited).

use axum::Json;
use axum::extract::{Path, State};

use super::WebState;
use super::lang::{tr, trf};
use super::pages::Signed;
use crate::http::tenants::get_policy;

/// One tenant's policy, in French lines.
pub struct PolicyBox {
    pub tenant: String,
    pub lines: Vec<String>,
}

/// The policies of the tenants the person may request sandboxes in (those they may read;
/// a refusal leaves the tenant out rather than failing the page).
pub async fn boxes(app: &WebState, signed: &Signed) -> Vec<PolicyBox> {
    let mut out = Vec::new();
    for t in &signed.ctx.caller.roles.member_of {
        let Ok(Json(p)) = get_policy(State(app.app.clone()), signed.ctx(), Path(t.clone())).await
        else {
            continue;
        };
        let label = app
            .tenants
            .get(t)
            .map_or_else(|| t.clone(), |x| x.spec.display_name.clone());
        let mut lines = vec![trf(
            "Durée de vie jusqu'à {} jours sans approbation",
            &[&p.max_days],
        )];
        lines.push(if p.allow_gpu {
            tr("GPU accordés sans approbation").into()
        } else {
            tr("Toute demande de GPU attend un administrateur").into()
        });
        for (what, max) in [
            (tr("Processeurs"), &p.max_cpu),
            (tr("Mémoire"), &p.max_memory),
            (tr("Stockage"), &p.max_storage),
        ] {
            if let Some(m) = max {
                lines.push(trf("{} : jusqu'à {} sans approbation", &[&what, &m]));
            }
        }
        lines.push(tr("Au-delà : la demande attend un administrateur de la collectivité").into());
        out.push(PolicyBox {
            tenant: label,
            lines,
        });
    }
    out
}
