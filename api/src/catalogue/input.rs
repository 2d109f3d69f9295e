//! Request bodies of the catalogue endpoints.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::*;

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicenceInput {
    /// SPDX licence identifier, e.g. `Apache-2.0`, `EUPL-1.2`, `LicenseRef-Proprietary`.
    pub spdx: String,
    /// Refused: derived from the SPDX identifier.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub free: Option<Value>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostingInput {
    /// Hosting provider (e.g. `Scaleway`, `OVHcloud`, `on premises`).
    pub provider: String,
    /// Where the data lies: ISO 3166-1 alpha-2 country code (e.g. `FR`) or `EU`.
    pub data_location: String,
    /// Whether any data is transferred outside the EU (support, sub-processors, …).
    pub extra_eu_transfer: bool,
    /// Refused: derived from the data location and the transfers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub sovereign: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    pub title: String,
    /// A link to the evidence (http or https)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// …or the evidence itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One assessed criterion.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criterion {
    /// 0 (worst) to 5 (best); null: not assessed.
    #[serde(default)]
    pub score: Option<i64>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// The criteria in a request: each one given replaces that criterion.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CriteriaInput {
    pub technological_added_value: Option<Criterion>,
    pub innovation: Option<Criterion>,
    pub fit_to_needs: Option<Criterion>,
    pub data_sovereignty: Option<Criterion>,
    pub legal_framework: Option<Criterion>,
    /// Refused: derived from measured trial runs.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub environmental_impact: Option<Value>,
}

/// A new catalogue entry. Métropole admins create published entries; vendors propose.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSolution {
    /// The vendor organisation's name.
    pub vendor: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub licence: LicenceInput,
    pub hosting: HostingInput,
    /// prohibited, high, limited or minimal (EU AI Act).
    pub ai_act_risk_class: String,
    #[serde(default)]
    pub gdpr_notes: String,
    #[serde(default)]
    pub criteria: CriteriaInput,
}

/// Changes to an entry: the fields given replace the stored ones.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSolution {
    pub vendor: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub licence: Option<LicenceInput>,
    pub hosting: Option<HostingInput>,
    pub ai_act_risk_class: Option<String>,
    pub gdpr_notes: Option<String>,
    pub criteria: Option<CriteriaInput>,
    /// proposed, published or rejected (Métropole admins only).
    pub status: Option<String>,
}

/// The quality a trial run reached (e.g. `f1` 0.91).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quality {
    pub metric: String,
    pub value: f64,
}

/// One measured phase of a trial run, as the trial-run controller reports it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialResultInput {
    pub run_id: String,
    pub tenant: String,
    pub sandbox: String,
    /// training, fine-tuning, inference or evaluation.
    pub phase: String,
    /// Energy measured, kWh.
    pub kwh: f64,
    /// Emissions, grams CO2-equivalent.
    pub gco2e: f64,
    pub duration_s: f64,
    /// Units of useful work done (requests answered, documents processed…), if counted.
    #[serde(default)]
    pub functional_units: Option<f64>,
    #[serde(default)]
    pub quality: Option<Quality>,
    /// RFC 3339.
    pub measured_at: String,
    /// Method flags, e.g. `{"estimated": false, "meter": "nvml+rapl", "pue": 1.2}`. A
    /// result with `"estimated": true` is kept but not counted as measured.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub method: serde_json::Map<String, Value>,
}
