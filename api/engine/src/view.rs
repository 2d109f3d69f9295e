//! A grant's view: what it releases ([`ViewSpec`], built from a [`ViewRequest`]) and what
//! a materialisation produced ([`ViewReport`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::anonymise::output_field;
use super::kanon::KAnonymityReport;
use super::recipe::Recipe;
use super::source::read_error;
use super::{DataError, PseudonymKey, Result, RowFilter};

/// A grant's view as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewRequest {
    /// Projection, in output order.
    pub columns: Vec<String>,
    /// Row filter, an SQL predicate (see [`RowFilter`]).
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub recipe: Recipe,
}

impl ViewRequest {
    /// Check the request against the dataset's schema and attach the grant's key.
    pub fn into_spec(self, schema: &Schema, key: PseudonymKey) -> Result<ViewSpec> {
        let filter = match self.filter.as_deref().map(str::trim) {
            Some(sql) if !sql.is_empty() => Some(RowFilter::parse(sql, schema)?),
            _ => None,
        };
        let spec = ViewSpec {
            columns: self.columns,
            filter,
            recipe: self.recipe,
            key,
        };
        spec.output_schema(schema)?;
        Ok(spec)
    }
}

/// Schema of a stored dataset, read from its footer.
pub fn dataset_schema<R: ChunkReader>(input: &R) -> Result<SchemaRef> {
    let metadata = ArrowReaderMetadata::load(input, ArrowReaderOptions::new())
        .map_err(|e| DataError::InvalidParquet(format!("dataset footer: {}", read_error(&e))))?;
    Ok(metadata.schema().clone())
}

/// What a grant releases.
#[derive(Debug)]
pub struct ViewSpec {
    /// Projection, in output order.
    pub columns: Vec<String>,
    /// Rows kept; may read columns outside the projection.
    pub filter: Option<RowFilter>,
    pub recipe: Recipe,
    pub key: PseudonymKey,
}

/// What a materialisation produced.
#[derive(Debug, Clone)]
pub struct ViewReport {
    /// Rows in the dataset.
    pub rows_in: u64,
    /// Rows that pass the filter.
    pub rows_matched: u64,
    /// Rows written (after suppression).
    pub rows_out: u64,
    pub schema: SchemaRef,
    pub kanon: KAnonymityReport,
}

impl ViewSpec {
    /// Check the projection and the recipe against the dataset's schema and return the
    /// view's schema.
    pub fn output_schema(&self, schema: &Schema) -> Result<SchemaRef> {
        self.recipe.validate(schema)?;
        let mut seen = BTreeSet::new();
        let mut fields = Vec::with_capacity(self.columns.len());
        for name in &self.columns {
            let Ok(field) = schema.field_with_name(name) else {
                return Err(DataError::InvalidRecipe(format!(
                    "view column \"{name}\" is not in the dataset"
                )));
            };
            if !seen.insert(name) {
                return Err(DataError::InvalidRecipe(format!(
                    "view column \"{name}\" is listed twice"
                )));
            }
            fields.extend(output_field(field, self.recipe.rule(name)));
        }
        for qi in &self.recipe.quasi_identifiers {
            if !seen.contains(qi) {
                return Err(DataError::InvalidRecipe(format!(
                    "quasi-identifier \"{qi}\" is not among the view's columns"
                )));
            }
        }
        if fields.is_empty() {
            return Err(DataError::InvalidRecipe(
                "the view has no column left".into(),
            ));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field};
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn request_json_becomes_a_checked_spec() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("age", DataType::Int64, true),
        ]);
        let key = || PseudonymKey::from_bytes([3; 32]);
        let request: ViewRequest = serde_json::from_value(serde_json::json!({
            "columns": ["id", "age"],
            "filter": "age >= 18",
            "recipe": {"columns": {"id": "pseudonymise"}, "quasiIdentifiers": ["age"], "k": 2}
        }))
        .expect("request");
        let spec = request.clone().into_spec(&schema, key()).expect("spec");
        assert_eq!(spec.filter.as_ref().map(RowFilter::sql), Some("age >= 18"));

        let mut bad = request.clone();
        bad.filter = Some("age >= 'x'".into());
        let err = bad.into_spec(&schema, key()).expect_err("bad filter");
        assert_eq!(err.category(), "invalid_filter");
        let mut bad = request;
        bad.columns = vec!["id".into()];
        let err = bad.into_spec(&schema, key()).expect_err("QI not projected");
        assert_eq!(err.category(), "invalid_recipe");

        let unknown =
            serde_json::from_value::<ViewRequest>(serde_json::json!({"columns": [], "x": 1}));
        assert!(unknown.is_err());
    }

    #[test]
    fn openapi_schemas_use_the_json_names() {
        let recipe = serde_json::to_string(&Recipe::schema()).expect("schema");
        assert!(recipe.contains("quasiIdentifiers"), "{recipe}");
        let request = serde_json::to_string(&ViewRequest::schema()).expect("schema");
        assert!(
            request.contains("columns") && request.contains("filter"),
            "{request}"
        );
        let report = serde_json::to_string(&KAnonymityReport::schema()).expect("schema");
        assert!(report.contains("rowsSuppressed"), "{report}");
    }
}
