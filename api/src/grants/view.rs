//! The JSON shape of a grant.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::GrantRow;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub id: String,
    pub tenant: String,
    pub dataset_id: String,
    pub version: i64,
    /// `sandbox` or `vendor`.
    pub grantee_kind: String,
    pub grantee: String,
    pub columns: Vec<String>,
    #[schema(value_type = Object)]
    pub recipe: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    pub purpose: String,
    pub expires_at: String,
    pub created_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// `active`, `revoked` or `expired`.
    pub state: String,
    /// The materialised view: rows, plaintext size, SHA-256 and columns.
    pub view: ViewSummary,
    /// k-anonymity over the recipe's quasi-identifiers, as materialised.
    #[schema(value_type = Object)]
    pub k_anonymity: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewSummary {
    pub rows: i64,
    pub size: i64,
    pub sha256: String,
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

impl GrantView {
    pub fn new(g: &GrantRow, now: chrono::DateTime<chrono::Utc>) -> Self {
        let state = if g.revoked_at.is_some() {
            "revoked"
        } else if super::inactive_reason(g, now).is_some() {
            "expired"
        } else {
            "active"
        };
        Self {
            id: g.id.clone(),
            tenant: g.tenant.clone(),
            dataset_id: g.dataset_id.clone(),
            version: g.version,
            grantee_kind: g.grantee_kind.clone(),
            grantee: g.grantee.clone(),
            columns: serde_json::from_str(&g.columns_json).unwrap_or_default(),
            recipe: json(&g.recipe_json),
            row_filter: g.row_filter.clone(),
            purpose: g.purpose.clone(),
            expires_at: g.expires_at.clone(),
            created_by: g.created_by.clone(),
            created_at: g.created_at.clone(),
            revoked_at: g.revoked_at.clone(),
            revoked_by: g.revoked_by.clone(),
            state: state.to_owned(),
            view: ViewSummary {
                rows: g.view_rows,
                size: g.view_size,
                sha256: g.view_sha256.clone(),
                schema: json(&g.view_schema_json),
            },
            k_anonymity: json(&g.kanon_json),
        }
    }
}
