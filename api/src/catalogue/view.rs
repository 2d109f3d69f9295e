//! The JSON views of catalogue entries.

use serde::Serialize;
use serre_crypto::CertificateVerifier;
use utoipa::ToSchema;

use super::*;
use crate::store::{SolutionRow, TrialResultRow};

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenceView {
    pub spdx: String,
    /// Derived: the identifier is one of the free-software allowlist.
    pub free: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostingView {
    pub provider: String,
    pub data_location: String,
    pub extra_eu_transfer: bool,
    /// Derived: data in the EU and no transfer outside it.
    pub sovereign: bool,
}

/// The environmental criterion: derived from measured trial runs, never typed in.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentalCriterion {
    /// 0–5 from the energy per functional unit; null without a measured run with units.
    pub score: Option<i64>,
    pub assessment: EnvironmentalAssessment,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CriteriaView {
    pub technological_added_value: Criterion,
    pub innovation: Criterion,
    pub fit_to_needs: Criterion,
    pub data_sovereignty: Criterion,
    pub legal_framework: Criterion,
    pub environmental_impact: EnvironmentalCriterion,
}

/// A catalogue entry as shown (and exported).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SolutionView {
    pub id: String,
    /// proposed, published or rejected.
    pub status: String,
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub licence: LicenceView,
    pub hosting: HostingView,
    pub ai_act_risk_class: String,
    pub gdpr_notes: String,
    pub criteria: CriteriaView,
    /// The vendor principal who proposed it; null when a Métropole admin created it.
    pub proposed_by: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    pub published_at: Option<String>,
    /// The trial results attached to the entry, oldest measurement first.
    pub results: Vec<TrialResultView>,
}

/// One measured phase of one trial run, as attached to an entry.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialResultView {
    pub run_id: String,
    pub tenant: String,
    pub sandbox: String,
    /// training, fine-tuning, inference or evaluation.
    pub phase: String,
    pub kwh: f64,
    pub gco2e: f64,
    pub duration_s: f64,
    pub functional_units: Option<f64>,
    /// The vendor's reported quality metric, if given.
    pub quality: Option<QualityView>,
    /// Resources used (core-seconds, GB-seconds, GPU-seconds, what was requested).
    #[schema(value_type = Object)]
    pub resources: Option<serde_json::Value>,
    /// How the figures were obtained (`estimated: true` when modelled).
    #[schema(value_type = Object)]
    pub method: serde_json::Value,
    pub measured_at: String,
    pub recorded_by: String,
    /// How the environmental criterion counts it: `measured` (recorded from a run by the
    /// gateway, signed, not estimated: scored), `modelled` (recorded from a run, energy
    /// estimated: not scored), `declared` (entered by hand: not scored) or `unverified`
    /// (no valid gateway signature: not scored).
    pub counted_as: String,
    /// The gateway's signature over the result, for checking an export; null for
    /// hand-entered results.
    pub attestation: Option<attestation::Attestation>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QualityView {
    pub metric: String,
    pub value: f64,
}

impl TrialResultView {
    fn new(r: &TrialResultRow, verifier: &CertificateVerifier) -> Self {
        let attestation = attestation::Attestation::of(verifier, r);
        let counted_as = if environment::declared(r) {
            "declared"
        } else if !attestation.as_ref().is_some_and(|a| a.verified) {
            "unverified"
        } else if environment::estimated(r) {
            "modelled"
        } else {
            "measured"
        };
        Self {
            run_id: r.run_id.clone(),
            tenant: r.tenant.clone(),
            sandbox: r.sandbox.clone(),
            phase: r.phase.clone(),
            kwh: r.kwh,
            gco2e: r.gco2e,
            duration_s: r.duration_s,
            functional_units: r.functional_units,
            quality: r
                .quality_metric
                .clone()
                .zip(r.quality_value)
                .map(|(metric, value)| QualityView { metric, value }),
            resources: r
                .resources_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            method: serde_json::from_str(&r.method_json).unwrap_or(serde_json::Value::Null),
            measured_at: r.measured_at.clone(),
            recorded_by: r.recorded_by.clone(),
            counted_as: counted_as.to_owned(),
            attestation,
        }
    }
}

impl SolutionView {
    /// The entry as shown; `verifier` holds the gateway's public key (results count as
    /// measured only when it verifies their signature).
    pub fn new(
        row: &SolutionRow,
        results: &[TrialResultRow],
        verifier: &CertificateVerifier,
    ) -> Self {
        let d = Draft::from_row(row);
        let assessment = environmental_criterion(results, verifier);
        SolutionView {
            id: row.id.clone(),
            status: row.status.clone(),
            vendor: d.vendor,
            name: d.name,
            version: d.version,
            description: d.description,
            licence: LicenceView {
                free: is_free_licence(&d.licence_spdx),
                spdx: d.licence_spdx,
            },
            hosting: HostingView {
                sovereign: is_sovereign(&d.hosting_location, d.extra_eu_transfer),
                provider: d.hosting_provider,
                data_location: d.hosting_location,
                extra_eu_transfer: d.extra_eu_transfer,
            },
            ai_act_risk_class: d.ai_act_risk_class,
            gdpr_notes: d.gdpr_notes,
            criteria: CriteriaView {
                technological_added_value: d.criteria.technological_added_value,
                innovation: d.criteria.innovation,
                fit_to_needs: d.criteria.fit_to_needs,
                data_sovereignty: d.criteria.data_sovereignty,
                legal_framework: d.criteria.legal_framework,
                environmental_impact: EnvironmentalCriterion {
                    score: assessment.score,
                    assessment,
                },
            },
            proposed_by: row.proposed_by.clone(),
            created_by: row.created_by.clone(),
            created_at: row.created_at.clone(),
            updated_by: row.updated_by.clone(),
            updated_at: row.updated_at.clone(),
            published_at: row.published_at.clone(),
            results: results
                .iter()
                .map(|r| TrialResultView::new(r, verifier))
                .collect(),
        }
    }
}
