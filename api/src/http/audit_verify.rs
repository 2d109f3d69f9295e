//! `GET /v1/audit/verify`: recompute the audit log's hash chain in the database, as
//! `serre-api audit verify` does — the whole log against the latest signed checkpoint
//! (Métropole admins), or one tenant's entries (its admins). The console's « Vérifier la
//! chaîne » shows the same verification.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::authorize_read;
use super::{AppState, Ctx};
use crate::audit::checkpoint;
use crate::audit::{ChainChecker, ExportScope};
use crate::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Verify this tenant's entries only (required for tenant admins); without it, the
    /// whole log against the latest signed checkpoint (Métropole admins).
    pub tenant: Option<String>,
}

/// The signed checkpoint the whole log was checked against.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointCheck {
    /// `verified` (valid signature, the chain must reach its hash), `none` (none
    /// published yet), `unreadable` (it could not be read: the chain is checked alone) or
    /// `invalid` (bad signature: the log is not intact).
    pub state: String,
    pub seq: Option<u64>,
    /// RFC 3339.
    pub time: Option<String>,
    pub error: Option<String>,
}

/// The first entry that breaks the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: String,
}

/// What the verification found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Every hash recomputed, every link followed, and the checkpoint (if any) reached.
    pub intact: bool,
    /// The tenant verified, or null for the whole log.
    pub tenant: Option<String>,
    /// Entries verified (before the broken one, if any).
    pub entries: u64,
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub broken: Option<BrokenEntry>,
    /// Only for the whole log.
    pub checkpoint: Option<CheckpointCheck>,
}

/// Verify the chain (the whole log when `tenant` is `None`). Call [`authorize_read`]
/// first.
pub async fn check(app: &AppState, tenant: Option<&str>) -> Result<Verification, ApiError> {
    let (report, checkpoint) = match tenant {
        None => {
            let mut anchors = Vec::new();
            let cp = match checkpoint::latest(&app.data.blobs).await {
                Ok(Some(signed)) => {
                    let verifier = app.data.audit_signer.verifier();
                    match checkpoint::verify(&verifier, &signed) {
                        Ok(c) => {
                            anchors
                                .push((i64::try_from(c.seq).unwrap_or(i64::MAX), c.hash.clone()));
                            CheckpointCheck {
                                state: "verified".into(),
                                seq: Some(c.seq),
                                time: Some(
                                    c.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                ),
                                error: None,
                            }
                        }
                        Err(e) => {
                            return Ok(Verification {
                                intact: false,
                                tenant: None,
                                entries: 0,
                                head_seq: None,
                                head_hash: None,
                                broken: None,
                                checkpoint: Some(CheckpointCheck {
                                    state: "invalid".into(),
                                    seq: Some(signed.checkpoint.seq),
                                    time: None,
                                    error: Some(e.to_string()),
                                }),
                            });
                        }
                    }
                }
                Ok(None) => CheckpointCheck {
                    state: "none".into(),
                    seq: None,
                    time: None,
                    error: None,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "audit verify: checkpoint");
                    CheckpointCheck {
                        state: "unreadable".into(),
                        seq: None,
                        time: None,
                        error: Some(e.to_string()),
                    }
                }
            };
            (crate::audit::verify(&app.store, &anchors).await?, Some(cp))
        }
        Some(t) => {
            let mut checker = ChainChecker::new(ExportScope::Tenant(t.to_owned()), Vec::new());
            let mut after = 0i64;
            'pages: loop {
                let page = app.store.audit_page(Some(t), after, 1000).await?;
                if page.is_empty() {
                    break;
                }
                for row in &page {
                    after = row.seq;
                    if !checker.push(row) {
                        break 'pages;
                    }
                }
            }
            (checker.finish(), None)
        }
    };
    let (head_seq, head_hash) = report.head.unzip();
    Ok(Verification {
        intact: report.broken.is_none(),
        tenant: tenant.map(str::to_owned),
        entries: report.entries,
        head_seq,
        head_hash,
        broken: report.broken.map(|b| BrokenEntry {
            seq: b.seq,
            reason: b.reason,
        }),
        checkpoint,
    })
}

/// Verify the audit log's hash chain: a tenant's entries (its admins, Métropole admins)
/// or the whole log against the latest signed checkpoint (Métropole admins). A broken
/// chain is a 200 with `intact: false` and the first broken entry.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, body = Verification),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown tenant (or not yours)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(app): State<AppState>,
    ctx: Ctx,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    authorize_read(&app, &ctx, q.tenant.as_deref()).await?;
    check(&app, q.tenant.as_deref()).await.map(Json)
}
