//! Grants: one dataset version, to one sandbox or one vendor principal, through a
//! projection, an optional row filter and an anonymisation recipe, for a purpose and until
//! an expiry. Each grant's view is materialised once (projection, filter, pseudonyms with
//! a key of its own, suppression), encrypted and stored; reads serve those bytes, so
//! masked data never leaves.

pub mod spark;
pub mod tokens;
pub mod view;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::data::{self, DataError, KAnonymityReport, PseudonymKey, RowFilter, ViewSpec};
/// A grant's anonymisation recipe (the console builds one from its form).
pub use crate::data::{ColumnRule, DateUnit, Generalisation, Recipe};
use crate::sandboxes::FieldIssue;
use crate::store::GrantRow;

/// Who receives a grant.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Grantee {
    /// A sandbox of the same tenant (by its full name, `<tenant>--<name>`): the tenant's
    /// members and the sandbox's vendors read the view.
    Sandbox(String),
    /// One vendor principal (the `sub` of its tokens).
    Vendor(String),
}

/// `POST /v1/grants`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGrant {
    pub dataset_id: String,
    /// Dataset version (default: the latest).
    pub version: Option<i64>,
    pub grantee: Grantee,
    /// Columns of the view, in order.
    pub columns: Vec<String>,
    #[serde(default)]
    pub recipe: Recipe,
    /// Rows kept: an SQL predicate over the dataset's columns, e.g.
    /// `commune = 'Montreuil' AND age >= 18`.
    pub row_filter: Option<String>,
    pub purpose: String,
    pub expires_at: DateTime<Utc>,
}

pub const VENDOR: &str = "vendor";
pub const SANDBOX: &str = "sandbox";

/// Checks that need no dataset: purpose, expiry, grantee, columns.
pub fn validate(req: &CreateGrant, now: DateTime<Utc>, max_days: u32) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    let purpose = req.purpose.trim();
    if purpose.is_empty() {
        issues.push(FieldIssue::new(
            "purpose",
            "required",
            "say what the data is for",
        ));
    } else if purpose.chars().count() > 1000 {
        issues.push(FieldIssue::new(
            "purpose",
            "max_length",
            "at most 1000 characters",
        ));
    }
    if req.expires_at <= now {
        issues.push(FieldIssue::new(
            "expiresAt",
            "future",
            "must be in the future",
        ));
    } else if req.expires_at > now + chrono::Duration::days(i64::from(max_days)) {
        issues.push(FieldIssue::new(
            "expiresAt",
            "max_lifetime",
            format!("a grant lasts at most {max_days} days"),
        ));
    }
    let grantee = match &req.grantee {
        Grantee::Sandbox(s) | Grantee::Vendor(s) => s,
    };
    if grantee.trim().is_empty() || grantee.len() > 255 {
        issues.push(FieldIssue::new(
            "grantee",
            "required",
            "name a sandbox or a vendor principal",
        ));
    }
    if req.columns.is_empty() {
        issues.push(FieldIssue::new(
            "columns",
            "required",
            "list the columns of the view",
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &req.columns {
        if !seen.insert(c) {
            issues.push(FieldIssue::new(
                "columns",
                "unique",
                format!("{c:?} is listed twice"),
            ));
        }
    }
    issues
}

/// The view specification of a grant, checked against the dataset's schema. The
/// pseudonym key is derived from the gateway's secret and the grant id, so two grants'
/// pseudonyms never match.
pub fn spec(
    req_columns: &[String],
    recipe: &Recipe,
    row_filter: Option<&str>,
    schema: &arrow_schema::Schema,
    secret: &[u8],
    grant_id: &str,
) -> Result<ViewSpec, DataError> {
    let filter = row_filter
        .map(|sql| RowFilter::parse(sql, schema))
        .transpose()?;
    let spec = ViewSpec {
        columns: req_columns.to_vec(),
        filter,
        recipe: recipe.clone(),
        key: PseudonymKey::derive(secret, &format!("grant/{grant_id}")),
    };
    spec.output_schema(schema)?;
    Ok(spec)
}

/// The Arrow schema of a stored Parquet file.
pub fn parquet_schema<R: parquet::file::reader::ChunkReader + 'static>(
    reader: &R,
) -> Result<arrow_schema::SchemaRef, DataError> {
    ArrowReaderMetadata::load(reader, Default::default())
        .map(|m| m.schema().clone())
        .map_err(|e| DataError::InvalidParquet(e.to_string()))
}

/// Whether a personal dataset's view must reach the minimum k: when it leaves towards a
/// vendor (directly, or through a sandbox with vendors).
pub fn needs_k(classification: &str, to_vendor: bool, sandbox_vendors: usize) -> bool {
    classification == "personal" && (to_vendor || sandbox_vendors > 0)
}

/// Refuse a personal view below `min_k`, saying why and what to do.
pub fn check_k(recipe: &Recipe, report: &KAnonymityReport, min_k: u32) -> Result<(), DataError> {
    if recipe.quasi_identifiers.is_empty() {
        return Err(DataError::KAnonymity(format!(
            "dataset is personal: the recipe must name its quasi-identifiers and reach k ≥ {min_k} over them"
        )));
    }
    report.ensure(min_k.max(recipe.k.unwrap_or(0)))
}

/// Re-run the k-anonymity gate on a grant that already exists, for when a vendor may start
/// reading it (a vendor added to its sandbox, or the grant created while one was being
/// added). The view is immutable and its report was recorded when it was materialised,
/// so the report is exactly the released view's; it is checked against today's minimum.
/// A grant whose recipe or report cannot be read fails closed.
pub fn recheck_k(g: &GrantRow, min_k: u32) -> Result<(), DataError> {
    let unreadable = |what: &str, e: serde_json::Error| {
        DataError::KAnonymity(format!(
            "grant {}'s recorded {what} cannot be read ({e}), so its view cannot be shown to reach k ≥ {min_k}",
            g.id
        ))
    };
    let recipe: Recipe =
        serde_json::from_str(&g.recipe_json).map_err(|e| unreadable("recipe", e))?;
    let report: KAnonymityReport =
        serde_json::from_str(&g.kanon_json).map_err(|e| unreadable("k-anonymity report", e))?;
    check_k(&recipe, &report, min_k)
}

/// Whether a grant may be used now; the reason when not.
pub fn inactive_reason(g: &GrantRow, now: DateTime<Utc>) -> Option<String> {
    if let Some(at) = &g.revoked_at {
        return Some(format!("grant {} was revoked at {at}", g.id));
    }
    match DateTime::parse_from_rfc3339(&g.expires_at) {
        Ok(t) if t > now => None,
        Ok(_) => Some(format!("grant {} expired at {}", g.id, g.expires_at)),
        Err(_) => Some(format!("grant {} has an unreadable expiry", g.id)),
    }
}

/// Materialise a view into `out` (blocking; call from a blocking task).
pub fn materialise_to(
    reader: crate::blobs::DecryptingReader,
    spec: &ViewSpec,
    out: &std::path::Path,
) -> Result<data::ViewReport, DataError> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let report = data::materialise(reader, spec, &mut file)?;
    file.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateGrant {
        serde_json::from_value(serde_json::json!({
            "datasetId": "d", "grantee": {"vendor": "acme"}, "columns": ["a", "b"],
            "purpose": "trial", "expiresAt": "2030-01-01T00:00:00Z"
        }))
        .expect("request")
    }

    #[test]
    fn validation_names_fields() {
        let now = DateTime::parse_from_rfc3339("2029-12-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        assert!(validate(&req(), now, 90).is_empty());
        let mut r = req();
        r.columns = vec!["a".into(), "a".into()];
        r.purpose = " ".into();
        let issues = validate(&r, now, 10);
        let rules: Vec<&str> = issues.iter().map(|i| i.rule.as_str()).collect();
        assert_eq!(rules, ["required", "max_lifetime", "unique"]);
        let later = now + chrono::Duration::days(365);
        assert_eq!(validate(&req(), later, 90)[0].rule, "future");
    }

    #[test]
    fn expired_and_revoked_grants_are_inactive_with_the_reason() {
        let row = |expires: &str, revoked: Option<&str>| GrantRow {
            id: "g".into(),
            tenant: "t".into(),
            dataset_id: "d".into(),
            version: 1,
            grantee_kind: VENDOR.into(),
            grantee: "acme".into(),
            columns_json: "[]".into(),
            recipe_json: "{}".into(),
            row_filter: None,
            purpose: "p".into(),
            expires_at: expires.into(),
            created_by: "alice".into(),
            created_at: "2029-01-01T00:00:00Z".into(),
            revoked_at: revoked.map(str::to_owned),
            revoked_by: revoked.map(|_| "alice".to_owned()),
            pseudonym_key: String::new(),
            view_key: String::new(),
            view_wrapped_key: String::new(),
            view_size: 0,
            view_sha256: String::new(),
            view_rows: 0,
            view_schema_json: "[]".into(),
            kanon_json: "{}".into(),
        };
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        assert_eq!(
            inactive_reason(&row("2030-01-02T00:00:00Z", None), now),
            None
        );
        let expired = inactive_reason(&row("2030-01-01T00:00:00Z", None), now).expect("expired");
        assert!(expired.contains("expired"), "{expired}");
        let revoked = inactive_reason(
            &row("2031-01-01T00:00:00Z", Some("2029-12-31T00:00:00Z")),
            now,
        )
        .expect("revoked");
        assert!(revoked.contains("revoked"), "{revoked}");
        assert!(inactive_reason(&row("soon", None), now).is_some());
    }

    #[test]
    fn k_applies_to_personal_data_leaving_towards_vendors() {
        assert!(needs_k("personal", true, 0));
        assert!(needs_k("personal", false, 2));
        assert!(!needs_k("personal", false, 0));
        assert!(!needs_k("open", true, 3));
    }
}
