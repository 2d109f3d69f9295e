//! The environmental criterion, derived from measured trial runs (never typed in).
//!
//! - A result counts as **measured** only when the gateway's accounting recorded it from a
//!   trial run ([`super::RUN_RECORDER`]) and its method flags do not say
//!   `"estimated": true`. A result entered by hand is **declared** (`"declared": true`):
//!   kept and shown, never counted, whatever its flags say.
//! - `totalKwh` / `totalGco2e` add up every measured result (all phases).
//! - The per-unit figures use only the measured results that counted functional units
//!   (typically inference and evaluation): Σ kWh / Σ units and Σ gCO2e / Σ units. Training
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
    pub total_kwh: f64,
    pub total_gco2e: f64,
    /// Functional units of the measured results that counted them.
    pub functional_units: Option<f64>,
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

fn estimated(r: &TrialResultRow) -> bool {
    flag(r, "estimated")
}

/// Derive the environmental criterion from a solution's trial results.
pub fn environmental_criterion(results: &[TrialResultRow]) -> EnvironmentalAssessment {
    let declared_results = results.iter().filter(|r| declared(r)).count();
    let measured: Vec<&TrialResultRow> = results
        .iter()
        .filter(|r| !declared(r) && !estimated(r))
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
    let (functional_units, kwh_per_unit, gco2e_per_unit) = if with_units.is_empty() {
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
        (_, None) => "measured runs counted no functional units".to_owned(),
        (_, Some(wh)) => format!(
            "{wh:.3} Wh per functional unit over {} measured result(s)",
            with_units.len()
        ),
    };
    EnvironmentalAssessment {
        runs: runs.len(),
        results: measured.len(),
        estimated_results: results.len() - measured.len() - declared_results,
        declared_results,
        total_kwh,
        total_gco2e,
        functional_units,
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

    fn result(run: &str, phase: &str, kwh: f64, gco2e: f64, units: Option<f64>) -> TrialResultRow {
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
        let a = environmental_criterion(&[]);
        assert_eq!((a.runs, a.score, a.total_kwh), (0, None, 0.0));
        let mut est = result("r1", "inference", 1.0, 50.0, Some(1000.0));
        est.method_json = r#"{"estimated": true}"#.into();
        let a = environmental_criterion(&[est]);
        assert_eq!((a.runs, a.estimated_results, a.score), (0, 1, None));
        // Measured, but no units counted: totals, no score.
        let a = environmental_criterion(&[result("r1", "training", 12.0, 600.0, None)]);
        assert_eq!((a.runs, a.score), (1, None));
        assert!(close(Some(a.total_kwh), 12.0));
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
        let a = environmental_criterion(&[by_hand, flagged]);
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
        let a = environmental_criterion(&[
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
