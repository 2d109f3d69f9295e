//! The documented power model, used when no measured source covers a component. Every
//! figure it produces is flagged [`Method::Modelled`](super::Method::Modelled).
//!
//! - CPU, a linear load curve (SPECpower-like): a core draws
//!   `W_core × (idle + (1 − idle) × u)`. The idle part is charged to the cores a namespace
//!   reserves (max(request, usage)), the dynamic part to the cores it uses:
//!   `E_cpu = W_core × (idle × charged_core_s + (1 − idle) × used_core_s)`.
//! - DRAM: `E_dram = W_per_GB × charged GB-s` (memory draws power whether busy or not).
//! - GPU: `E_gpu = TDP × (idle + (1 − idle) × utilisation) × GPU-s`; an unknown
//!   utilisation counts as `default_gpu_utilisation` (1.0: an upper bound).

use serde::{Deserialize, Serialize};

use super::EnergyError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerModel {
    /// CPU package TDP divided by its cores, W.
    pub cpu_watts_per_core: f64,
    /// Fraction of TDP drawn by an idle core (0..1).
    pub cpu_idle_fraction: f64,
    /// DRAM power per GB, W.
    pub memory_watts_per_gb: f64,
    /// One GPU's board power limit, W.
    pub gpu_tdp_watts: f64,
    pub gpu_idle_fraction: f64,
    pub default_gpu_utilisation: f64,
}

impl Default for PowerModel {
    /// Defaults (docs/energy.md): Xeon Platinum 8480+ (350 W, 56 cores → 6.25 W/core),
    /// idle at 25 % of TDP; 0.392 W/GB for DRAM (Cloud Carbon Footprint's coefficient);
    /// NVIDIA H100 SXM (700 W), idle at 10 %.
    fn default() -> Self {
        Self {
            cpu_watts_per_core: 6.25,
            cpu_idle_fraction: 0.25,
            memory_watts_per_gb: 0.392,
            gpu_tdp_watts: 700.0,
            gpu_idle_fraction: 0.10,
            default_gpu_utilisation: 1.0,
        }
    }
}

impl PowerModel {
    pub fn validate(&self) -> Result<(), EnergyError> {
        let fractions = [
            ("cpu_idle_fraction", self.cpu_idle_fraction),
            ("gpu_idle_fraction", self.gpu_idle_fraction),
            ("default_gpu_utilisation", self.default_gpu_utilisation),
        ];
        for (name, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return Err(EnergyError::Config(format!("{name} = {v} is not in 0..1")));
            }
        }
        let powers = [
            ("cpu_watts_per_core", self.cpu_watts_per_core),
            ("memory_watts_per_gb", self.memory_watts_per_gb),
            ("gpu_tdp_watts", self.gpu_tdp_watts),
        ];
        for (name, v) in powers {
            if !(v.is_finite() && v >= 0.0) {
                return Err(EnergyError::Config(format!("{name} = {v} is not a power")));
            }
        }
        Ok(())
    }

    /// CPU joules and the description stored as the figure's source.
    pub fn cpu_joules(&self, used_core_s: f64, charged_core_s: f64) -> (f64, String) {
        let idle = self.cpu_idle_fraction;
        let charged = charged_core_s.max(used_core_s);
        let joules = self.cpu_watts_per_core * (idle * charged + (1.0 - idle) * used_core_s);
        let source = format!(
            "model: {} W/core × ({idle} × charged core-s + {} × used core-s)",
            self.cpu_watts_per_core,
            1.0 - idle
        );
        (joules, source)
    }

    pub fn dram_joules(&self, charged_gb_s: f64) -> (f64, String) {
        (
            self.memory_watts_per_gb * charged_gb_s,
            format!("model: {} W/GB × charged GB-s", self.memory_watts_per_gb),
        )
    }

    pub fn gpu_joules(&self, gpu_s: f64, utilisation: Option<f64>) -> (f64, String) {
        let u = utilisation
            .unwrap_or(self.default_gpu_utilisation)
            .clamp(0.0, 1.0);
        let idle = self.gpu_idle_fraction;
        let joules = self.gpu_tdp_watts * (idle + (1.0 - idle) * u) * gpu_s;
        let measured = if utilisation.is_some() {
            "measured"
        } else {
            "assumed"
        };
        let source = format!(
            "model: {} W × ({idle} + {} × utilisation {u} ({measured})) × GPU-s",
            self.gpu_tdp_watts,
            1.0 - idle
        );
        (joules, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_hand() {
        let m = PowerModel::default();
        // 2 cores requested for 100 s (200 core-s), 1 core busy on average (100 core-s):
        // 6.25 × (0.25 × 200 + 0.75 × 100) = 6.25 × 125 = 781.25 J.
        assert!((m.cpu_joules(100.0, 200.0).0 - 781.25).abs() < 1e-9);
        // Usage above the request is charged at usage: 6.25 × (0.25 × 300 + 0.75 × 300).
        assert!((m.cpu_joules(300.0, 200.0).0 - 1875.0).abs() < 1e-9);
        // 16 GB for an hour: 0.392 × 57600 = 22579.2 J.
        assert!((m.dram_joules(16.0 * 3600.0).0 - 22_579.2).abs() < 1e-6);
        // One GPU for 60 s at 50 %: 700 × (0.1 + 0.9 × 0.5) × 60 = 23100 J.
        assert!((m.gpu_joules(60.0, Some(0.5)).0 - 23_100.0).abs() < 1e-9);
        // Unknown utilisation is the upper bound: 700 × 60.
        let (j, source) = m.gpu_joules(60.0, None);
        assert!((j - 42_000.0).abs() < 1e-9);
        assert!(source.contains("assumed"));
        assert_eq!(m.gpu_joules(0.0, None).0, 0.0);
    }

    #[test]
    fn rejects_nonsense() {
        let m = PowerModel {
            cpu_idle_fraction: 1.5,
            ..PowerModel::default()
        };
        assert_eq!(m.validate().unwrap_err().category(), "config");
    }
}
