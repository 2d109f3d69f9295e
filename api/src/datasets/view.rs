//! The JSON shapes of datasets and their versions.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{DatasetRow, VersionRow};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    /// open, internal, personal or anonymised.
    pub classification: String,
    pub created_by: String,
    pub created_at: String,
    /// The newest version that is not deleted.
    pub latest_version: Option<i64>,
    pub versions: Vec<VersionView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub version: i64,
    /// Format of the uploaded file (csv or parquet) and its SHA-256.
    pub source_format: String,
    pub source_sha256: String,
    /// The stored Parquet (ZSTD): plaintext size in bytes and SHA-256.
    pub size: i64,
    pub sha256: String,
    pub rows: i64,
    /// Columns: name, type, nullable.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    pub created_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl VersionView {
    pub fn new(v: &VersionRow) -> Self {
        Self {
            version: v.version,
            source_format: v.source_format.clone(),
            source_sha256: v.source_sha256.clone(),
            size: v.size,
            sha256: v.sha256.clone(),
            rows: v.rows,
            schema: serde_json::from_str(&v.schema_json).unwrap_or(serde_json::Value::Null),
            created_by: v.created_by.clone(),
            created_at: v.created_at.clone(),
            deleted_at: v.deleted_at.clone(),
        }
    }
}

impl DatasetView {
    pub fn new(d: &DatasetRow, versions: &[VersionRow]) -> Self {
        Self {
            id: d.id.clone(),
            tenant: d.tenant.clone(),
            name: d.name.clone(),
            description: d.description.clone(),
            classification: d.classification.clone(),
            created_by: d.created_by.clone(),
            created_at: d.created_at.clone(),
            latest_version: versions
                .iter()
                .filter(|v| v.deleted_at.is_none())
                .map(|v| v.version)
                .max(),
            versions: versions.iter().map(VersionView::new).collect(),
        }
    }
}
