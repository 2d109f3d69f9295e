//! Flags of the usage accounting: where figures come from, the ledger's step, PUE and
//! carbon intensity (each with its source, stored next to every figure).

use std::time::Duration;

use super::parse_duration;
use crate::energy::{CarbonParams, Intensity, Ledger, PowerModel};

#[derive(Clone, Debug, clap::Args)]
pub struct UsageConfig {
    /// Prometheus holding Kepler, DCGM, cAdvisor and kube-state-metrics series. Without
    /// it, figures are modelled from the runs' requests (flagged `modelled`).
    #[arg(long, env = "SERRE_API_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    #[arg(long, env = "SERRE_API_PROMETHEUS_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub prometheus_timeout: Duration,

    /// Length of one ledger window.
    #[arg(long, env = "SERRE_API_USAGE_STEP", default_value = "5m", value_parser = parse_duration)]
    pub usage_step: Duration,

    /// A window is collected once this long has passed since its end (scrapes settle).
    #[arg(long, env = "SERRE_API_USAGE_SETTLE", default_value = "60s", value_parser = parse_duration)]
    pub usage_settle: Duration,

    /// How often the accounting wakes up (follow runs, collect settled windows).
    #[arg(long, env = "SERRE_API_USAGE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub usage_interval: Duration,

    /// Power usage effectiveness of the hosting data centre (≥ 1).
    #[arg(long, env = "SERRE_API_PUE", default_value_t = 1.5)]
    pub pue: f64,

    #[arg(
        long,
        env = "SERRE_API_PUE_SOURCE",
        default_value = "placeholder: set the hosting data centre's measured annual PUE"
    )]
    pub pue_source: String,

    /// Grid carbon intensity, gCO2e per kWh (default: France, life-cycle, ADEME).
    #[arg(long, env = "SERRE_API_CARBON_INTENSITY", default_value_t = 56.0)]
    pub carbon_intensity: f64,

    #[arg(
        long,
        env = "SERRE_API_CARBON_INTENSITY_SOURCE",
        default_value = "ADEME Base Empreinte, électricité France, mix moyen"
    )]
    pub carbon_intensity_source: String,

    #[arg(long, env = "SERRE_API_CARBON_INTENSITY_YEAR", default_value_t = 2024)]
    pub carbon_intensity_year: u16,

    /// `life-cycle` or `direct` (see docs/energy.md for the choice).
    #[arg(
        long,
        env = "SERRE_API_CARBON_INTENSITY_SCOPE",
        default_value = "life-cycle"
    )]
    pub carbon_intensity_scope: String,
}

impl UsageConfig {
    pub fn carbon(&self) -> CarbonParams {
        CarbonParams {
            pue: self.pue,
            pue_source: self.pue_source.clone(),
            intensity: Intensity {
                g_per_kwh: self.carbon_intensity,
                source: self.carbon_intensity_source.clone(),
                year: self.carbon_intensity_year,
                scope: self.carbon_intensity_scope.clone(),
            },
            ..CarbonParams::default()
        }
    }

    pub fn model(&self) -> PowerModel {
        PowerModel::default()
    }

    pub fn ledger(&self) -> Ledger {
        let d = |v: Duration| chrono::Duration::from_std(v).unwrap_or(chrono::Duration::zero());
        Ledger {
            step: d(self.usage_step),
            settle: d(self.usage_settle),
            ..Ledger::default()
        }
    }

    /// Problems with the flags, as `(flag, message)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.carbon()
            .validate()
            .map_err(|e| ("--pue / --carbon-intensity", e.to_string()))?;
        if self.usage_step < Duration::from_secs(1) {
            return Err(("--usage-step", "must be at least 1s".into()));
        }
        if !matches!(
            self.carbon_intensity_scope.as_str(),
            "life-cycle" | "direct"
        ) {
            return Err((
                "--carbon-intensity-scope",
                format!(
                    "{:?} is not life-cycle or direct",
                    self.carbon_intensity_scope
                ),
            ));
        }
        Ok(())
    }
}
