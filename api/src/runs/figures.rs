//! A run's figures, summed from its ledger rows: compute (requested, used, charged),
//! energy per component with the method behind each, kWh at the meter, emissions with
//! their source, SCI per functional unit, and what was reserved but not used.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::energy::LedgerRow;

/// One quantity summed over a run's windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figure {
    pub value: f64,
    pub unit: String,
    /// The least direct method among the windows (`dcgm`, `kepler`, `rapl`, `cadvisor`,
    /// `kube_state_metrics`, `modelled`).
    pub method: String,
    /// How the figure was obtained (query, model parameters, intensity source and year).
    pub source: String,
}

/// Energy of one ledger window, by component (for the chart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowEnergy {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub cpu_joules: f64,
    pub dram_joules: f64,
    pub gpu_joules: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunFigures {
    pub duration_seconds: f64,
    /// Quantity name (`cpu_used`, `meter_energy`, …) → figure.
    pub figures: BTreeMap<String, Figure>,
    pub windows: Vec<WindowEnergy>,
    /// Weakest method behind the energy at the meter.
    pub energy_method: String,
    pub kwh: f64,
    pub gco2e: f64,
    pub embodied_gco2e: f64,
    pub functional_units: Option<u64>,
    pub functional_unit: Option<String>,
    /// (operational + embodied) gCO2e per functional unit.
    pub sci_per_unit: Option<f64>,
    /// kWh per functional unit.
    pub kwh_per_unit: Option<f64>,
    /// Share of the requested CPU time not used (0..1), when usage is measured.
    pub cpu_waste: Option<f64>,
    /// Share of the requested memory not used (0..1), when usage is measured.
    pub memory_waste: Option<f64>,
}

/// Rank of a method for "weakest of": the least direct wins.
fn directness(method: &str) -> u8 {
    match method {
        "dcgm" | "cadvisor" | "kube_state_metrics" => 0,
        "kepler" => 1,
        "rapl" => 2,
        _ => 3,
    }
}

/// Sum a run's rows (all `run == name`), in any order.
pub fn summarise(
    rows: &[LedgerRow],
    duration_seconds: f64,
    unit: Option<(&str, u64)>,
) -> RunFigures {
    let mut figures: BTreeMap<String, Figure> = BTreeMap::new();
    let mut windows: BTreeMap<DateTime<Utc>, WindowEnergy> = BTreeMap::new();
    for r in rows {
        figures
            .entry(r.quantity.clone())
            .and_modify(|f| {
                f.value += r.value;
                if directness(&r.method) > directness(&f.method) {
                    f.method = r.method.clone();
                    f.source = r.source.clone();
                }
            })
            .or_insert_with(|| Figure {
                value: r.value,
                unit: r.unit.clone(),
                method: r.method.clone(),
                source: r.source.clone(),
            });
        let w = windows.entry(r.window_start).or_insert(WindowEnergy {
            start: r.window_start,
            end: r.window_end,
            cpu_joules: 0.0,
            dram_joules: 0.0,
            gpu_joules: 0.0,
        });
        match r.quantity.as_str() {
            "cpu_energy" => w.cpu_joules += r.value,
            "dram_energy" => w.dram_joules += r.value,
            "gpu_energy" => w.gpu_joules += r.value,
            _ => {}
        }
    }
    let value = |q: &str| figures.get(q).map_or(0.0, |f| f.value);
    let measured_usage = |q: &str| figures.get(q).is_some_and(|f| f.method == "cadvisor");
    let waste = |requested: &str, used: &str| {
        let r = value(requested);
        (measured_usage(used) && r > 0.0).then(|| ((r - value(used)) / r).clamp(0.0, 1.0))
    };
    let kwh = value("meter_energy");
    let gco2e = value("operational_emissions");
    let embodied = value("embodied_emissions");
    let units = unit.map(|(_, n)| n).filter(|n| *n > 0);
    RunFigures {
        duration_seconds,
        energy_method: figures
            .get("meter_energy")
            .map_or_else(|| "none".to_owned(), |f| f.method.clone()),
        kwh,
        gco2e,
        embodied_gco2e: embodied,
        functional_units: units,
        functional_unit: unit.map(|(n, _)| n.to_owned()),
        sci_per_unit: units.map(|n| (gco2e + embodied) / n as f64),
        kwh_per_unit: units.map(|n| kwh / n as f64),
        cpu_waste: waste("cpu_requested", "cpu_used"),
        memory_waste: waste("memory_requested", "memory_used"),
        windows: windows.into_values().collect(),
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(start: i64, quantity: &str, value: f64, method: &str) -> LedgerRow {
        LedgerRow {
            window_start: Utc.timestamp_opt(start, 0).unwrap(),
            window_end: Utc.timestamp_opt(start + 300, 0).unwrap(),
            tenant: "t".into(),
            namespace: "ns".into(),
            run: "run-1".into(),
            quantity: quantity.into(),
            value,
            unit: "x".into(),
            method: method.into(),
            source: format!("{method} source"),
        }
    }

    #[test]
    fn sums_windows_keeps_the_weakest_method_and_derives_per_unit_figures() {
        let rows = vec![
            row(0, "meter_energy", 0.002, "kepler"),
            row(300, "meter_energy", 0.001, "modelled"),
            row(0, "operational_emissions", 0.112, "kepler"),
            row(300, "operational_emissions", 0.056, "modelled"),
            row(0, "cpu_energy", 3000.0, "kepler"),
            row(300, "cpu_energy", 1000.0, "modelled"),
            row(0, "gpu_energy", 500.0, "dcgm"),
            row(0, "cpu_requested", 600.0, "kube_state_metrics"),
            row(300, "cpu_requested", 600.0, "kube_state_metrics"),
            row(0, "cpu_used", 300.0, "cadvisor"),
            row(300, "cpu_used", 0.0, "cadvisor"),
        ];
        let f = summarise(&rows, 480.0, Some(("inference", 1000)));
        assert!((f.kwh - 0.003).abs() < 1e-12);
        assert_eq!(f.energy_method, "modelled");
        assert_eq!(f.figures["meter_energy"].source, "modelled source");
        assert!((f.sci_per_unit.unwrap() - 0.168 / 1000.0).abs() < 1e-12);
        assert!((f.kwh_per_unit.unwrap() - 0.000003).abs() < 1e-15);
        assert_eq!(f.cpu_waste, Some(0.75));
        assert_eq!(f.memory_waste, None);
        assert_eq!(f.windows.len(), 2);
        assert_eq!(f.windows[0].cpu_joules, 3000.0);
        assert_eq!(f.windows[0].gpu_joules, 500.0);
        // Modelled usage (no measurement): no waste figure.
        let modelled = summarise(
            &[
                row(0, "cpu_requested", 10.0, "modelled"),
                row(0, "cpu_used", 10.0, "modelled"),
            ],
            10.0,
            None,
        );
        assert_eq!(modelled.cpu_waste, None);
        assert_eq!(modelled.sci_per_unit, None);
    }
}
