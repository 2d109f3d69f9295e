//! The environmental criterion, derived from measured trial runs (never typed in).
//!
//! - A result counts as **measured** only when the gateway's accounting recorded it from a
//!   trial run ([`super::RUN_RECORDER`]), its method flags do not say
//!   `"estimated": true`, and it carries the gateway's signature over its current content
//!   ([`super::attestation`]): a row written or edited in the database by anyone else
//!   does not verify and is counted apart (`unverifiedResults`). A result entered by hand
//!   is **declared** (`"declared": true`): kept and shown, never counted, whatever its
//!   flags say.
//! - `totalKwh` / `totalGco2e` add up every measured result (all phases).
//! - The per-unit figures use only the measured results that counted functional units
//!   (typically inference and evaluation): Σ kWh / Σ units and Σ gCO2e / Σ units, and
//!   only when they all count the same functional unit (`method.functionalUnit`, the name
//!   the run's request gave): requests and documents do not add up, so results of
//!   different units give no per-unit figure and no score, and `basis` says so. Training
//!   and fine-tuning energy is in the totals but not spread over units (there is no agreed
//!   lifetime volume to amortise it over).
//! - The score comes from the energy per functional unit in Wh, by [`WH_PER_UNIT_THRESHOLDS`]
//!   (the first bound the figure is at most gives the score; above the last, 0). No
//!   measured result with units: score null.
//!
//! The bounds are anchored on published per-request inference estimates (about 0.3 Wh for
//! a chat request to a large hosted model): 5 is at or below that, each step down allows
//! roughly three times more energy.

use serde::Serialize;
use serre_crypto::CertificateVerifier;
use utoipa::ToSchema;

use crate::store::TrialResultRow;

/// (upper bound in Wh per functional unit, inclusive; score).
pub const WH_PER_UNIT_THRESHOLDS: [(f64, i64); 5] =
    [(0.3, 5), (1.0, 4), (3.0, 3), (10.0, 2), (30.0, 1)];

/// The score of an energy per functional unit, in Wh.
pub fn score_for_wh_per_unit(wh: f64) -> i64 {
    WH_PER_UNIT_THRESHOLDS
        .iter()
        .find(|(bound, _)| wh <= *bound)
        .map_or(0, |(_, score)| *score)
}

/// What the measured trial runs say about a solution's environmental impact.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentalAssessment {
    /// Distinct trial runs with at least one measured result.
    pub runs: usize,
    /// Measured results counted (one per run and phase).
    pub results: usize,
    /// Results kept but not counted: recorded from runs, but estimated (modelled).
    pub estimated_results: usize,
    /// Results kept but not counted: entered by hand (declared, not measured by Serre).
    pub declared_results: usize,
    /// Results kept but not counted: recorded as from a run, but without a signature of
    /// the gateway's key that verifies over their content.
    pub unverified_results: usize,
    pub total_kwh: f64,
    pub total_gco2e: f64,
    /// Functional units of the measured results that counted them.
    pub functional_units: Option<f64>,
    /// What they count (e.g. `inference`); null when unnamed or not comparable.
    pub functional_unit: Option<String>,
    pub kwh_per_unit: Option<f64>,
    pub wh_per_unit: Option<f64>,
    pub gco2e_per_unit: Option<f64>,
    /// 0–5 from `whPerUnit`; null when no measured result counted units.
    pub score: Option<i64>,
    /// How the score was reached, in words.
    pub basis: String,
    /// When the latest result (measured or estimated) was attached; RFC 3339.
    pub last_recorded_at: Option<String>,
}

fn flag(r: &TrialResultRow, name: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(&r.method_json)
        .ok()
        .and_then(|m| m.get(name).and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

/// Entered by hand rather than recorded from a run (older hand-entered rows carry no
/// flag: who recorded them tells).
pub fn declared(r: &TrialResultRow) -> bool {
    r.recorded_by != super::RUN_RECORDER || flag(r, "declared")
}

/// The functional unit a result counts, as the run named it (`method.functionalUnit`).
pub fn unit_name(r: &TrialResultRow) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&r.method_json)
        .ok()
        .and_then(|m| {
            m.get("functionalUnit")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
}

/// Recorded from a run, but its energy is modelled (`method.estimated: true`).
pub fn estimated(r: &TrialResultRow) -> bool {
    flag(r, "estimated")
}

/// Derive the environmental criterion from a solution's trial results; `verifier` holds
/// the gateway's public key.
pub fn environmental_criterion(
    results: &[TrialResultRow],
    verifier: &CertificateVerifier,
) -> EnvironmentalAssessment {
    let declared_results = results.iter().filter(|r| declared(r)).count();
    let signed = |r: &TrialResultRow| super::attestation::verified(verifier, r);
    let unverified_results = results
        .iter()
        .filter(|r| !declared(r) && !signed(r))
        .count();
    let measured: Vec<&TrialResultRow> = results
        .iter()
        .filter(|r| !declared(r) && signed(r) && !estimated(r))
        .collect();
    let mut runs: Vec<&str> = measured.iter().map(|r| r.run_id.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    // `+ 0.0`: an empty f64 sum is -0.0, which would show as "-0.0".
    let total_kwh = measured.iter().map(|r| r.kwh).sum::<f64>() + 0.0;
    let total_gco2e = measured.iter().map(|r| r.gco2e).sum::<f64>() + 0.0;
    let with_units: Vec<(&TrialResultRow, f64)> = measured
        .iter()
        .filter_map(|r| r.functional_units.filter(|u| *u > 0.0).map(|u| (*r, u)))
        .collect();
    let names: std::collections::BTreeSet<Option<String>> =
        with_units.iter().map(|(r, _)| unit_name(r)).collect();
    let functional_unit = names
        .iter()
        .next()
        .cloned()
        .flatten()
        .filter(|_| names.len() == 1);
    let (functional_units, kwh_per_unit, gco2e_per_unit) =
        if with_units.is_empty() || names.len() > 1 {
            (None, None, None)
        } else {
            let units: f64 = with_units.iter().map(|(_, u)| u).sum();
            let kwh: f64 = with_units.iter().map(|(r, _)| r.kwh).sum();
            let gco2e: f64 = with_units.iter().map(|(r, _)| r.gco2e).sum();
            (Some(units), Some(kwh / units), Some(gco2e / units))
        };
    let wh_per_unit = kwh_per_unit.map(|k| k * 1000.0);
    let score = wh_per_unit.map(score_for_wh_per_unit);
    let basis = match (measured.len(), wh_per_unit) {
        (0, _) => "no measured trial run".to_owned(),
        (_, None) if names.len() > 1 => format!(
            "measured results count different functional units ({}): their energy per unit is not comparable, so no score",
            names
                .iter()
                .map(|n| n.as_deref().unwrap_or("unnamed"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (_, None) => "measured runs counted no functional units".to_owned(),
        (_, Some(wh)) => format!(
            "{wh:.3} Wh per functional unit over {} measured result(s)",
            with_units.len()
        ),
    };
    EnvironmentalAssessment {
        runs: runs.len(),
        results: measured.len(),
        estimated_results: results.len() - measured.len() - declared_results - unverified_results,
        declared_results,
        unverified_results,
        total_kwh,
        total_gco2e,
        functional_units,
        functional_unit,
        kwh_per_unit,
        wh_per_unit,
        gco2e_per_unit,
        score,
        basis,
        last_recorded_at: results.iter().map(|r| r.recorded_at.clone()).max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serre_crypto::CertificateSigner;

    fn signer() -> &'static CertificateSigner {
        static SIGNER: std::sync::OnceLock<CertificateSigner> = std::sync::OnceLock::new();
        SIGNER.get_or_init(|| CertificateSigner::generate().unwrap())
    }

    /// The criterion as the gateway computes it: its own key verifies.
    fn criterion(results: &[TrialResultRow]) -> EnvironmentalAssessment {
        environmental_criterion(results, &signer().verifier())
    }

    /// A result as the accounting records it: signed by the gateway.
    fn result(run: &str, phase: &str, kwh: f64, gco2e: f64, units: Option<f64>) -> TrialResultRow {
        let mut r = unsigned(run, phase, kwh, gco2e, units);
        crate::catalogue::attestation::sign(signer(), &mut r);
        r
    }

    fn unsigned(
        run: &str,
        phase: &str,
        kwh: f64,
        gco2e: f64,
        units: Option<f64>,
    ) -> TrialResultRow {
        TrialResultRow {
            id: format!("{run}-{phase}"),
            solution_id: "s".into(),
            run_id: run.into(),
            tenant: "t".into(),
            sandbox: "t--s".into(),
            phase: phase.into(),
            kwh,
            gco2e,
            duration_s: 60.0,
            functional_units: units,
            quality_metric: None,
            quality_value: None,
            measured_at: "2026-05-01T00:00:00Z".into(),
            method_json: "{}".into(),
            recorded_by: crate::catalogue::RUN_RECORDER.into(),
            recorded_at: "2026-05-01T00:00:00Z".into(),
            resources_json: None,
            signature: None,
            key_id: None,
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn catalogue_thresholds_are_inclusive_upper_bounds() {
        for (wh, score) in [
            (0.0, 5),
            (0.3, 5),
            (0.31, 4),
            (1.0, 4),
            (1.5, 3),
            (3.0, 3),
            (9.99, 2),
            (10.0, 2),
            (30.0, 1),
            (30.01, 0),
            (1000.0, 0),
        ] {
            assert_eq!(score_for_wh_per_unit(wh), score, "{wh} Wh");
        }
    }

    #[test]
    fn catalogue_no_measured_run_has_no_score() {
        let a = criterion(&[]);
        assert_eq!((a.runs, a.score, a.total_kwh), (0, None, 0.0));
        let mut est = unsigned("r1", "inference", 1.0, 50.0, Some(1000.0));
        est.method_json = r#"{"estimated": true}"#.into();
        crate::catalogue::attestation::sign(signer(), &mut est);
        let a = criterion(&[est]);
        assert_eq!((a.runs, a.estimated_results, a.score), (0, 1, None));
        // Measured, but no units counted: totals, no score.
        let a = criterion(&[result("r1", "training", 12.0, 600.0, None)]);
        assert_eq!((a.runs, a.score), (1, None));
        assert!(close(Some(a.total_kwh), 12.0));
    }

    #[test]
    fn catalogue_results_without_the_gateways_signature_never_count() {
        // Written to the database as if from a run, but unsigned; signed, then edited;
        // signed by another key: kept and counted apart, never scored.
        let plain = unsigned("r1", "inference", 0.01, 1.0, Some(1000.0));
        let mut edited = result("r2", "inference", 0.9, 45.0, Some(1000.0));
        edited.kwh = 0.0009;
        let mut foreign = unsigned("r3", "inference", 0.01, 1.0, Some(1000.0));
        crate::catalogue::attestation::sign(&CertificateSigner::generate().unwrap(), &mut foreign);
        let good = result("r4", "inference", 0.9, 45.0, Some(1000.0));
        let a = criterion(&[plain, edited, foreign, good]);
        assert_eq!(
            (a.runs, a.results, a.unverified_results, a.estimated_results),
            (1, 1, 3, 0)
        );
        // Only the signed result scores: 0.9 Wh per unit → 4.
        assert!(close(a.wh_per_unit, 0.9));
        assert_eq!(a.score, Some(4));
    }

    #[test]
    fn catalogue_results_of_different_functional_units_are_not_compared() {
        let named = |run: &str, unit: &str, kwh: f64| {
            let mut r = unsigned(run, "inference", kwh, 1.0, Some(1000.0));
            r.method_json = serde_json::json!({ "functionalUnit": unit }).to_string();
            crate::catalogue::attestation::sign(signer(), &mut r);
            r
        };
        let a = criterion(&[named("r1", "request", 0.5), named("r2", "request", 0.7)]);
        assert_eq!(a.functional_unit.as_deref(), Some("request"));
        assert!(close(a.wh_per_unit, 0.6));
        assert_eq!(a.score, Some(4));
        let a = criterion(&[named("r1", "request", 0.5), named("r2", "document", 0.7)]);
        assert_eq!(
            (a.functional_unit, a.wh_per_unit, a.score),
            (None, None, None)
        );
        assert!(a.basis.contains("document, request"), "{}", a.basis);
        assert!(close(Some(a.total_kwh), 1.2), "totals still add up");
    }

    #[test]
    fn catalogue_declared_results_never_count() {
        // Entered by hand (recorded by a person, or flagged declared): kept, not counted,
        // even when they claim to be measured.
        let mut by_hand = result("r1", "inference", 0.01, 1.0, Some(1000.0));
        by_hand.recorded_by = "mgp-admin".into();
        by_hand.method_json = r#"{"estimated": false}"#.into();
        let mut flagged = result("r2", "inference", 0.01, 1.0, Some(1000.0));
        flagged.method_json = r#"{"declared": true}"#.into();
        let a = criterion(&[by_hand, flagged]);
        assert_eq!(
            (a.runs, a.results, a.declared_results, a.estimated_results),
            (0, 0, 2, 0)
        );
        assert_eq!((a.score, a.basis.as_str()), (None, "no measured trial run"));
    }

    #[test]
    fn catalogue_per_unit_figures_by_hand() {
        // Run 1: training 12 kWh (no units) + inference 0.6 kWh for 1000 requests;
        // run 2: inference 0.9 kWh for 2000 requests. Per unit: (0.6 + 0.9) kWh / 3000
        // = 0.0005 kWh = 0.5 Wh → score 4. gCO2e: (30 + 45) / 3000 = 0.025 g.
        let a = criterion(&[
            result("r1", "training", 12.0, 600.0, None),
            result("r1", "inference", 0.6, 30.0, Some(1000.0)),
            result("r2", "inference", 0.9, 45.0, Some(2000.0)),
        ]);
        assert_eq!((a.runs, a.results), (2, 3));
        assert!(close(Some(a.total_kwh), 13.5));
        assert!(close(Some(a.total_gco2e), 675.0));
        assert!(close(a.functional_units, 3000.0));
        assert!(close(a.kwh_per_unit, 0.0005));
        assert!(close(a.wh_per_unit, 0.5));
        assert!(close(a.gco2e_per_unit, 0.025));
        assert_eq!(a.score, Some(4));
    }
}
