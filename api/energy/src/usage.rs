//! Figures and their method flags; [`account`] (in `account.rs`) does one window's
//! accounting per namespace.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::EnergyError;
use super::carbon::CarbonParams;
use super::model::PowerModel;

/// Where a figure comes from. Declared from most to least direct for energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// NVIDIA DCGM device energy counter, mapped to pods by dcgm-exporter.
    Dcgm,
    /// Kepler's per-pod energy (RAPL/NVML measured at the node, attributed by Kepler).
    Kepler,
    /// Powercap RAPL counters read on the node, attributed here by CPU-time share.
    Rapl,
    /// cAdvisor usage counters (CPU time, memory working set).
    Cadvisor,
    /// kube-state-metrics resource requests.
    KubeStateMetrics,
    /// The documented power model ([`PowerModel`]): an estimate, not a measurement.
    Modelled,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dcgm => "dcgm",
            Method::Kepler => "kepler",
            Method::Rapl => "rapl",
            Method::Cadvisor => "cadvisor",
            Method::KubeStateMetrics => "kube_state_metrics",
            Method::Modelled => "modelled",
        }
    }

    /// Rank for a figure derived from several: the least direct part wins.
    fn directness(self) -> u8 {
        match self {
            Method::Dcgm | Method::Cadvisor | Method::KubeStateMetrics => 0,
            Method::Kepler => 1,
            Method::Rapl => 2,
            Method::Modelled => 3,
        }
    }

    /// The least direct of two methods (a sum of measured and modelled is modelled).
    pub fn weakest(self, other: Method) -> Method {
        if other.directness() > self.directness() {
            other
        } else {
            self
        }
    }
}

/// What a figure measures; each has one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    CpuRequested,
    CpuUsed,
    /// max(request, usage), as OpenCost charges.
    CpuCharged,
    MemoryRequested,
    MemoryUsed,
    MemoryCharged,
    GpuTime,
    CpuEnergy,
    DramEnergy,
    GpuEnergy,
    /// CPU + DRAM + GPU, at the servers.
    ItEnergy,
    /// IT energy × PUE, at the meter.
    MeterEnergy,
    /// Meter energy × carbon intensity.
    OperationalEmissions,
    /// Embodied emissions share (SCI's M).
    EmbodiedEmissions,
}

impl Quantity {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::CpuRequested => "cpu_requested",
            Quantity::CpuUsed => "cpu_used",
            Quantity::CpuCharged => "cpu_charged",
            Quantity::MemoryRequested => "memory_requested",
            Quantity::MemoryUsed => "memory_used",
            Quantity::MemoryCharged => "memory_charged",
            Quantity::GpuTime => "gpu_time",
            Quantity::CpuEnergy => "cpu_energy",
            Quantity::DramEnergy => "dram_energy",
            Quantity::GpuEnergy => "gpu_energy",
            Quantity::ItEnergy => "it_energy",
            Quantity::MeterEnergy => "meter_energy",
            Quantity::OperationalEmissions => "operational_emissions",
            Quantity::EmbodiedEmissions => "embodied_emissions",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Quantity::CpuRequested | Quantity::CpuUsed | Quantity::CpuCharged => "core_s",
            Quantity::MemoryRequested | Quantity::MemoryUsed | Quantity::MemoryCharged => "gb_s",
            Quantity::GpuTime => "gpu_s",
            Quantity::CpuEnergy | Quantity::DramEnergy | Quantity::GpuEnergy => "j",
            Quantity::ItEnergy => "j",
            Quantity::MeterEnergy => "kwh",
            Quantity::OperationalEmissions | Quantity::EmbodiedEmissions => "gco2e",
        }
    }
}

/// One figure with its method flag and source (query, sysfs path, model parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageFigure {
    pub quantity: Quantity,
    pub value: f64,
    pub unit: String,
    pub method: Method,
    pub source: String,
}

impl UsageFigure {
    pub fn new(quantity: Quantity, value: f64, method: Method, source: impl Into<String>) -> Self {
        Self {
            quantity,
            value,
            unit: quantity.unit().to_string(),
            method,
            source: source.into(),
        }
    }
}

/// A half-open accounting window `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, EnergyError> {
        if end <= start {
            return Err(EnergyError::Config(format!(
                "window end {end} is not after its start {start}"
            )));
        }
        Ok(Self { start, end })
    }

    pub fn seconds(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 1000.0
    }

    /// The PromQL range selector for this window, e.g. `300s`; queries are evaluated at
    /// `end`, so `increase(x[300s])` covers exactly the window.
    pub fn range(&self) -> String {
        let ms = (self.end - self.start).num_milliseconds();
        if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

/// Compute used by one namespace over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    pub cpu_requested_core_s: f64,
    pub cpu_used_core_s: f64,
    pub memory_requested_gb_s: f64,
    pub memory_used_gb_s: f64,
    /// Device-seconds of GPUs allocated to the namespace.
    pub gpu_s: f64,
    /// Mean utilisation (0..1) of those GPUs, when known (the model needs it).
    pub gpu_utilisation: Option<f64>,
    /// Where these figures come from (the queries).
    pub source: String,
}

/// Energy per component for one namespace; `None` where the source has no figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentJoules {
    /// CPU package (which already includes core and uncore).
    pub cpu: Option<f64>,
    pub dram: Option<f64>,
    pub gpu: Option<f64>,
}

/// One energy source's answer for a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergySource {
    pub method: Method,
    pub source: String,
    pub by_namespace: BTreeMap<String, ComponentJoules>,
}

/// Everything [`account`] needs for one window. Sources that are not deployed are absent.
#[derive(Clone, Debug, Default)]
pub struct AccountInputs {
    pub resources: BTreeMap<String, ResourceUsage>,
    /// Measured energy, any order (Kepler, DCGM, RAPL); [`account`] ranks them.
    pub energy: Vec<EnergySource>,
    pub model: PowerModel,
    pub carbon: CarbonParams,
    /// namespace → tenant.
    pub tenants: BTreeMap<String, String>,
}

/// One namespace's accounting for a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceUsage {
    pub window: Window,
    pub namespace: String,
    pub tenant: Option<String>,
    pub figures: Vec<UsageFigure>,
}

impl NamespaceUsage {
    pub fn figure(&self, quantity: Quantity) -> Option<&UsageFigure> {
        self.figures.iter().find(|f| f.quantity == quantity)
    }

    pub fn value(&self, quantity: Quantity) -> f64 {
        self.figure(quantity).map_or(0.0, |f| f.value)
    }

    /// SCI per functional unit: (E×I + M) / R.
    pub fn sci(&self, functional_units: f64) -> Option<f64> {
        super::carbon::sci(
            self.value(Quantity::OperationalEmissions),
            self.value(Quantity::EmbodiedEmissions),
            functional_units,
        )
    }
}

pub use super::account::{account, by_tenant};
