//! From joules at the servers to kWh at the meter (PUE) and grams of CO2e (carbon
//! intensity, embodied emissions), following the Green Software Foundation's Software
//! Carbon Intensity (SCI) specification: `SCI = (E × I + M) / R` with
//! `M = TE × (TiR / EL) × (RR / ToR)`.

use serde::{Deserialize, Serialize};

use super::EnergyError;

pub const JOULES_PER_KWH: f64 = 3.6e6;

/// A grid carbon intensity with where it comes from; stored next to every figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intensity {
    pub g_per_kwh: f64,
    pub source: String,
    pub year: u16,
    /// `life-cycle` (includes upstream: fuel, plant construction) or `direct` (combustion).
    pub scope: String,
}

impl Intensity {
    /// France, life-cycle (ADEME Base Empreinte, mix moyen): the default, consistent with
    /// SCI, which also counts embodied emissions.
    pub fn france_life_cycle() -> Self {
        Self {
            g_per_kwh: 56.0,
            source: "ADEME Base Empreinte, électricité France, mix moyen".into(),
            year: 2024,
            scope: "life-cycle".into(),
        }
    }

    /// France, direct emissions of production (RTE, bilan électrique).
    pub fn france_direct() -> Self {
        Self {
            g_per_kwh: 32.0,
            source: "RTE, bilan électrique, émissions directes de la production".into(),
            year: 2024,
            scope: "direct".into(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "meter_energy × {} gCO2e/kWh ({}, {}, {})",
            self.g_per_kwh, self.source, self.year, self.scope
        )
    }
}

/// Embodied emissions of one kind of hardware (a server's CPUs, or its GPUs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embodied {
    /// TE: total embodied emissions of the server (or of its GPUs), gCO2e.
    pub total_g: f64,
    /// EL: expected lifespan, seconds.
    pub lifespan_s: f64,
    /// ToR: the units it offers (cores, or GPUs).
    pub total_units: f64,
    pub source: String,
}

impl Embodied {
    /// M for `unit_s` unit-seconds reserved (cores × seconds, or GPUs × seconds):
    /// TE × (TiR / EL) × (RR / ToR) with RR × TiR = unit_s.
    pub fn share_g(&self, unit_s: f64) -> f64 {
        self.total_g * unit_s / (self.lifespan_s * self.total_units)
    }
}

/// M exactly as the SCI specification writes it.
pub fn embodied_share(
    total_g: f64,
    time_reserved_s: f64,
    lifespan_s: f64,
    resources_reserved: f64,
    total_resources: f64,
) -> f64 {
    total_g * (time_reserved_s / lifespan_s) * (resources_reserved / total_resources)
}

/// SCI = (E × I + M) / R, where `operational_g` is E × I. `None` when R is not positive.
pub fn sci(operational_g: f64, embodied_g: f64, functional_units: f64) -> Option<f64> {
    (functional_units > 0.0).then(|| (operational_g + embodied_g) / functional_units)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarbonParams {
    /// Power usage effectiveness of the hosting data centre (≥ 1).
    pub pue: f64,
    pub pue_source: String,
    pub intensity: Intensity,
    /// Embodied emissions of CPU servers, charged per reserved core-second.
    pub embodied_cpu: Option<Embodied>,
    /// Embodied emissions of GPUs, charged per allocated GPU-second.
    pub embodied_gpu: Option<Embodied>,
}

impl Default for CarbonParams {
    fn default() -> Self {
        Self {
            pue: 1.5,
            pue_source: "placeholder: set the hosting data centre's measured annual PUE".into(),
            intensity: Intensity::france_life_cycle(),
            embodied_cpu: None,
            embodied_gpu: None,
        }
    }
}

impl CarbonParams {
    pub fn validate(&self) -> Result<(), EnergyError> {
        if !(self.pue.is_finite() && self.pue >= 1.0) {
            return Err(EnergyError::Config(format!("PUE {} is below 1", self.pue)));
        }
        if !(self.intensity.g_per_kwh.is_finite() && self.intensity.g_per_kwh >= 0.0) {
            return Err(EnergyError::Config(format!(
                "carbon intensity {} is not a quantity",
                self.intensity.g_per_kwh
            )));
        }
        for e in [&self.embodied_cpu, &self.embodied_gpu]
            .into_iter()
            .flatten()
        {
            if !(e.lifespan_s > 0.0 && e.total_units > 0.0 && e.total_g >= 0.0) {
                return Err(EnergyError::Config(format!(
                    "embodied emissions need a positive lifespan and unit count ({})",
                    e.source
                )));
            }
        }
        Ok(())
    }

    /// kWh at the meter for joules at the servers.
    pub fn meter_kwh(&self, it_joules: f64) -> f64 {
        it_joules / JOULES_PER_KWH * self.pue
    }

    /// M for a namespace's reserved core-seconds and GPU-seconds, with its description;
    /// `None` when no embodied figures are configured.
    pub fn embodied_g(&self, core_s: f64, gpu_s: f64) -> Option<(f64, String)> {
        if self.embodied_cpu.is_none() && self.embodied_gpu.is_none() {
            return None;
        }
        let mut grams = 0.0;
        let mut parts = Vec::new();
        if let Some(e) = &self.embodied_cpu {
            grams += e.share_g(core_s);
            parts.push(format!(
                "cpu: {} g / ({} s × {} cores) ({})",
                e.total_g, e.lifespan_s, e.total_units, e.source
            ));
        }
        if let Some(e) = &self.embodied_gpu {
            grams += e.share_g(gpu_s);
            parts.push(format!(
                "gpu: {} g / ({} s × {} GPUs) ({})",
                e.total_g, e.lifespan_s, e.total_units, e.source
            ));
        }
        Some((
            grams,
            format!("SCI M = TE × TiR/EL × RR/ToR; {}", parts.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sci_by_hand() {
        // 7.2 MJ at the servers = 2 kWh; × PUE 1.5 = 3 kWh; × 56 g = 168 g.
        let c = CarbonParams::default();
        let kwh = c.meter_kwh(7.2e6);
        assert!((kwh - 3.0).abs() < 1e-12);
        let operational = kwh * c.intensity.g_per_kwh;
        assert!((operational - 168.0).abs() < 1e-9);
        // A server of 1 200 kgCO2e, 4 years, 64 cores; 8 cores reserved for one day:
        // 1.2e6 × (86400 / 126 144 000) × (8 / 64) = 102.7397... g.
        let four_years = 4.0 * 365.0 * 86400.0;
        let m = embodied_share(1.2e6, 86400.0, four_years, 8.0, 64.0);
        assert!((m - 102.739_726_027_397_26).abs() < 1e-9);
        let e = Embodied {
            total_g: 1.2e6,
            lifespan_s: four_years,
            total_units: 64.0,
            source: "test".into(),
        };
        assert!((e.share_g(8.0 * 86400.0) - m).abs() < 1e-9);
        // R = 1000 requests: (168 + 102.74) / 1000.
        let sci = sci(operational, m, 1000.0).unwrap();
        assert!((sci - 0.270_739_726_027_397_3).abs() < 1e-12);
        assert_eq!(super::sci(1.0, 1.0, 0.0), None);
    }

    #[test]
    fn intensities_carry_source_and_year() {
        let d = Intensity::france_direct().describe();
        assert!(d.contains("RTE") && d.contains("2024") && d.contains("direct"));
        let bad = CarbonParams {
            pue: 0.9,
            ..CarbonParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().category(), "config");
    }
}
