//! The frugality report as data: per life-cycle phase and per functional unit, every
//! figure with its method class (measured, modelled, declared or unknown), the method
//! behind it, its source and an uncertainty range; SCI (ISO/IEC 21031) with its inputs;
//! the vendor's answers to the frugal-AI good-practice checklist, kept apart from what
//! Serre measured; and which earlier runs can be compared with this one, and why not.
//!
//! Everything here is pure: [`build`] turns a run's summed ledger figures
//! ([`RunFigures`]) and what the handler knows about the run ([`ReportInputs`]) into
//! [`Frugality`]; [`csv`] and the HTML page (`report::html`) are views of the same data.
//! The uncertainty bounds are documented in docs/energy.md ("Uncertainty").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::figures::RunFigures;
use crate::energy::{CarbonParams, PowerModel};

const JOULES_PER_KWH: f64 = 3.6e6;

/// How a figure was obtained, in the report's four classes. The ledger's finer methods
/// (`cadvisor`, `rapl`, `dcgm`, `kepler`, `kube_state_metrics`, `modelled`) are kept in
/// each figure's `methodDetail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MethodClass {
    /// Read from a counter or a record: cgroup CPU time, RAPL, DCGM, Kepler (a measured
    /// node total attributed to pods), object sizes, Kubernetes timestamps.
    Measured,
    /// Computed by the documented power model or from the run's requests.
    Modelled,
    /// Stated by someone (resource requests, the vendor's checklist answers, the
    /// functional-unit count of a run).
    Declared,
    /// Serre does not know it.
    Unknown,
}

impl MethodClass {
    /// The class of a ledger method.
    pub fn of(method: &str) -> Self {
        match method {
            "cadvisor" | "rapl" | "dcgm" | "kepler" | "store_admin_api" | "kubernetes"
            | "object_store" => MethodClass::Measured,
            "kube_state_metrics" | "declared" => MethodClass::Declared,
            "modelled" => MethodClass::Modelled,
            _ => MethodClass::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MethodClass::Measured => "measured",
            MethodClass::Modelled => "modelled",
            MethodClass::Declared => "declared",
            MethodClass::Unknown => "unknown",
        }
    }
}

/// One figure of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportFigure {
    /// Null when unknown.
    pub value: Option<f64>,
    pub unit: String,
    pub method: MethodClass,
    /// The ledger's method (`cadvisor`, `rapl`, `modelled`, …) or what was read.
    pub method_detail: String,
    /// Where it comes from: query, model parameters, factor with source and year.
    pub source: String,
    /// Lower end of the uncertainty range (same unit); null when unknown.
    pub low: Option<f64>,
    /// Upper end of the uncertainty range.
    pub high: Option<f64>,
    /// Why the range is what it is.
    pub uncertainty: String,
}

impl ReportFigure {
    pub fn unknown(unit: &str, why: &str) -> Self {
        Self {
            value: None,
            unit: unit.into(),
            method: MethodClass::Unknown,
            method_detail: "unknown".into(),
            source: why.into(),
            low: None,
            high: None,
            uncertainty: "unknown".into(),
        }
    }

    fn with_range(mut self, (lo, hi, basis): (f64, f64, &str)) -> Self {
        self.low = self.value.map(|v| v * lo);
        self.high = self.value.map(|v| v * hi);
        self.uncertainty = basis.into();
        self
    }

    /// Whether `x` lies within the stated range.
    pub fn covers(&self, x: f64) -> bool {
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => lo - 1e-12 <= x && x <= hi + 1e-12,
            _ => false,
        }
    }

    fn scaled(&self, factor: f64, unit: &str, source: String) -> Self {
        Self {
            value: self.value.map(|v| v * factor),
            unit: unit.into(),
            method: self.method,
            method_detail: self.method_detail.clone(),
            source,
            low: self.low.map(|v| v * factor),
            high: self.high.map(|v| v * factor),
            uncertainty: self.uncertainty.clone(),
        }
    }
}

/// What a quantity is, for its uncertainty.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Compute,
    Energy,
}

/// The uncertainty of a figure of `method`: (low factor, high factor, basis). Documented
/// in docs/energy.md ("Uncertainty"); the bounds for meters are Serre's stated bounds,
/// not vendor specifications.
fn bounds(kind: Kind, method: &str, usage_measured: bool) -> (f64, f64, &'static str) {
    match (kind, method) {
        (_, "cadvisor") => (
            0.9,
            1.1,
            "±10 %: the calibration's bound for cgroup CPU time of a known burn (docs/energy.md)",
        ),
        (_, "kube_state_metrics") => (1.0, 1.0, "declared requests: exact as declared"),
        (_, "dcgm") => (0.95, 1.05, "±5 %: the GPU's own energy counter"),
        (_, "rapl") => (
            0.9,
            1.1,
            "±10 %: RAPL counters, attributed to the run by its CPU-time share",
        ),
        (_, "kepler") => (
            0.75,
            1.25,
            "±25 %: Kepler's attribution of node energy to pods",
        ),
        (Kind::Compute, "modelled") => (
            0.0,
            1.0,
            "the run's requests × its running time: an upper bound of its use, from 0",
        ),
        (Kind::Energy, "modelled") if usage_measured => (
            0.45,
            2.2,
            "the power model's parameters are a reference server's, not this node's (×0.5 to ×2), applied to usage measured within ±10 %",
        ),
        (Kind::Energy, "modelled") => (
            0.0,
            2.0,
            "the power model (×0.5 to ×2) applied to the run's requests, an upper bound of its use: from 0",
        ),
        _ => (1.0, 1.0, "no stated uncertainty"),
    }
}

/// What the handler knows about a run besides its ledger figures.
#[derive(Clone, Debug)]
pub struct ReportInputs {
    /// The run's life-cycle phase: training, fine-tuning, inference or evaluation.
    pub phase: String,
    /// Requested resources (declared).
    pub cpu: String,
    pub memory: String,
    pub gpus: u32,
    pub gpu_resource: Option<String>,
    /// The functional unit named in the run's request and its declared count.
    pub functional_unit: Option<(String, u64)>,
    /// Bytes of the granted views the run's init step fetched, and how many views.
    pub data_read: Option<(u64, usize)>,
    /// Bytes the run wrote as results (a training run's model artefact among them), or
    /// why they are unknown.
    pub outputs: Result<u64, String>,
    /// True when no metrics source is configured (every figure from requests).
    pub declared_mode: bool,
    pub model: PowerModel,
    pub carbon: CarbonParams,
}

impl Default for ReportInputs {
    fn default() -> Self {
        Self {
            phase: String::new(),
            cpu: String::new(),
            memory: String::new(),
            gpus: 0,
            gpu_resource: None,
            functional_unit: None,
            data_read: None,
            outputs: Err("not listed".into()),
            declared_mode: false,
            model: PowerModel::default(),
            carbon: CarbonParams::default(),
        }
    }
}

/// Energy by component, kWh.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnergyFigures {
    pub cpu: ReportFigure,
    pub dram: ReportFigure,
    pub gpu: ReportFigure,
    /// CPU + DRAM + GPU, at the servers.
    pub it: ReportFigure,
    /// IT energy × PUE, at the meter.
    pub meter: ReportFigure,
}

/// An emission factor with its source and year.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmissionFactor {
    pub g_per_kwh: f64,
    pub source: String,
    pub year: u16,
    /// `life-cycle` or `direct`.
    pub scope: String,
    /// Always `declared`: a published average configured by the operator.
    pub method: MethodClass,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pue {
    pub value: f64,
    pub source: String,
    pub method: MethodClass,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmissionFigures {
    /// Meter energy × the factor, gCO2e.
    pub operational: ReportFigure,
    /// The hardware's embodied share (SCI's M), gCO2e.
    pub embodied: ReportFigure,
    pub factor: EmissionFactor,
    pub pue: Pue,
}

/// Compute, in hours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeFigures {
    pub cpu_core_hours_used: ReportFigure,
    pub cpu_core_hours_requested: ReportFigure,
    /// max(requested, used), what the model charges idle power to.
    pub cpu_core_hours_charged: ReportFigure,
    pub gpu_hours: ReportFigure,
    pub memory_gb_hours_used: ReportFigure,
    pub memory_gb_hours_charged: ReportFigure,
}

/// What the run ran on, as far as Serre knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hardware {
    pub cpu_requested: String,
    pub memory_requested: String,
    pub gpus_requested: u32,
    pub gpu_resource: Option<String>,
    /// The power model's reference hardware (what modelled figures assume).
    pub power_model: String,
    /// The CPU and node models: not recorded by Serre.
    pub node: Option<String>,
    pub method: MethodClass,
}

/// The figures of one phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseFigures {
    pub duration_seconds: ReportFigure,
    pub energy: EnergyFigures,
    pub emissions: EmissionFigures,
    pub compute: ComputeFigures,
    /// GB-hours of object storage attributable to the run.
    pub storage_gb_hours: ReportFigure,
    /// Bytes of data the run read (the granted views fetched into it).
    pub data_read_bytes: ReportFigure,
    /// Bytes the run wrote as results (for a training run, its model artefact).
    pub output_bytes: ReportFigure,
    pub hardware: Hardware,
}

/// The figures of one phase per functional unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerUnit {
    /// What is counted (e.g. `inference`).
    pub functional_unit: String,
    /// The count, as declared in the run's request (Serre does not count it).
    pub count: u64,
    pub kwh: ReportFigure,
    pub gco2e: ReportFigure,
    pub cpu_core_hours: ReportFigure,
}

/// One life-cycle phase: observed by this run, or unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    /// data-preparation, training, fine-tuning, inference or evaluation.
    pub phase: String,
    /// True for the phase this run measured.
    pub observed: bool,
    /// What Serre knows of the phase, in words.
    pub note: String,
    /// Null when the phase is unknown.
    pub figures: Option<PhaseFigures>,
    /// Null without a functional unit, or when the phase is unknown.
    pub per_unit: Option<PerUnit>,
}

/// SCI (ISO/IEC 21031:2024): `(E × I + M) / R`, with its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sci {
    pub formula: String,
    /// gCO2e per R.
    pub value: ReportFigure,
    /// E: energy at the meter, kWh.
    pub energy: ReportFigure,
    /// I: the emission factor.
    pub intensity: EmissionFactor,
    /// M: embodied emissions, gCO2e.
    pub embodied: ReportFigure,
    /// R: the functional unit (`run` when the request named none).
    pub functional_unit: String,
    pub functional_units: u64,
    /// How R was obtained (declared in the run's request, or one run).
    pub functional_unit_method: MethodClass,
}

pub use super::practices::{
    Answer, PRACTICES, PRACTICES_REFERENCE, PracticeAnswer, PracticeAnswers, PracticeChecklist,
    PracticeItem, checklist, validate_answers,
};

/// The structured part of a run's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Frugality {
    /// Data preparation, then the run's phase, then the other phases.
    pub phases: Vec<PhaseReport>,
    pub sci: Sci,
}

/// The life-cycle phases a report lists, in order.
pub const LIFECYCLE: [&str; 5] = [
    "data-preparation",
    "training",
    "fine-tuning",
    "inference",
    "evaluation",
];

fn ledger_figure(
    f: &RunFigures,
    quantity: &str,
    kind: Kind,
    factor: f64,
    unit: &str,
    usage_measured: bool,
) -> ReportFigure {
    match f.figures.get(quantity) {
        Some(x) => ReportFigure {
            value: Some(x.value * factor),
            unit: unit.into(),
            method: MethodClass::of(&x.method),
            method_detail: x.method.clone(),
            source: x.source.clone(),
            low: None,
            high: None,
            uncertainty: String::new(),
        }
        .with_range(bounds(kind, &x.method, usage_measured)),
        None => ReportFigure::unknown(unit, &format!("no `{quantity}` in the run's ledger rows")),
    }
}

fn sum(parts: &[&ReportFigure], unit: &str, detail: &str, source: String) -> ReportFigure {
    let known: Vec<&&ReportFigure> = parts.iter().filter(|p| p.value.is_some()).collect();
    if known.is_empty() {
        return ReportFigure::unknown(unit, "none of its parts is known");
    }
    let method = known
        .iter()
        .map(|p| p.method)
        .max()
        .unwrap_or(MethodClass::Unknown);
    ReportFigure {
        value: Some(known.iter().filter_map(|p| p.value).sum()),
        unit: unit.into(),
        method,
        method_detail: detail.into(),
        source,
        low: Some(known.iter().filter_map(|p| p.low).sum()),
        high: Some(known.iter().filter_map(|p| p.high).sum()),
        uncertainty: "the sum of its parts' ranges".into(),
    }
}

fn per_unit(x: &ReportFigure, n: u64, unit: &str) -> ReportFigure {
    let mut out = x.scaled(1.0 / n as f64, unit, x.source.clone());
    out.source = format!("{} ÷ {n} declared functional units", x.source);
    out
}

/// Build the structured report of a run.
pub fn build(f: &RunFigures, i: &ReportInputs) -> Frugality {
    let usage_measured = f
        .figures
        .get("cpu_used")
        .is_some_and(|x| MethodClass::of(&x.method) == MethodClass::Measured);
    let kwh = 1.0 / JOULES_PER_KWH;
    let e = |q: &str| ledger_figure(f, q, Kind::Energy, kwh, "kWh", usage_measured);
    let c = |q: &str, factor: f64, unit: &str| {
        ledger_figure(f, q, Kind::Compute, factor, unit, usage_measured)
    };
    let (cpu, dram, gpu) = (e("cpu_energy"), e("dram_energy"), e("gpu_energy"));
    let it = sum(
        &[&cpu, &dram, &gpu],
        "kWh",
        f.figures
            .get("it_energy")
            .map_or("unknown", |x| x.method.as_str()),
        "CPU + DRAM + GPU".into(),
    );
    let pue = i.carbon.pue;
    let meter = it.scaled(
        pue,
        "kWh",
        format!("IT energy × PUE {pue} ({})", i.carbon.pue_source),
    );
    let factor = EmissionFactor {
        g_per_kwh: i.carbon.intensity.g_per_kwh,
        source: i.carbon.intensity.source.clone(),
        year: i.carbon.intensity.year,
        scope: i.carbon.intensity.scope.clone(),
        method: MethodClass::Declared,
    };
    let operational = meter.scaled(
        factor.g_per_kwh,
        "gCO2e",
        format!(
            "meter energy × {} gCO2e/kWh ({}, {}, {})",
            factor.g_per_kwh, factor.source, factor.year, factor.scope
        ),
    );
    let embodied = match f.figures.get("embodied_emissions") {
        Some(x) => ReportFigure {
            value: Some(x.value),
            unit: "gCO2e".into(),
            method: MethodClass::Modelled,
            method_detail: x.method.clone(),
            source: x.source.clone(),
            low: None,
            high: None,
            uncertainty: String::new(),
        }
        .with_range((
            0.5,
            2.0,
            "×0.5 to ×2: a product carbon footprint shared over an assumed lifespan",
        )),
        None => ReportFigure::unknown(
            "gCO2e",
            "embodied emissions are not configured (no product carbon footprint)",
        ),
    };
    let h = 1.0 / 3600.0;
    let compute = ComputeFigures {
        cpu_core_hours_used: c("cpu_used", h, "core-h"),
        cpu_core_hours_requested: c("cpu_requested", h, "core-h"),
        cpu_core_hours_charged: c("cpu_charged", h, "core-h"),
        gpu_hours: c("gpu_time", h, "GPU-h"),
        memory_gb_hours_used: c("memory_used", h, "GB-h"),
        memory_gb_hours_charged: c("memory_charged", h, "GB-h"),
    };
    let duration = ReportFigure {
        value: Some(f.duration_seconds),
        unit: "s".into(),
        method: MethodClass::Measured,
        method_detail: "kubernetes".into(),
        source: "the TrialRun's start and finish times (whole seconds)".into(),
        low: Some((f.duration_seconds - 1.0).max(0.0)),
        high: Some(f.duration_seconds + 1.0),
        uncertainty: "±1 s: Kubernetes records times to the second".into(),
    };
    let exact = |value: f64, unit: &str, detail: &str, source: String| ReportFigure {
        value: Some(value),
        unit: unit.into(),
        method: MethodClass::Measured,
        method_detail: detail.into(),
        source,
        low: Some(value),
        high: Some(value),
        uncertainty: "exact: sizes as stored".into(),
    };
    let data_read_bytes = match i.data_read {
        Some((bytes, views)) => exact(
            bytes as f64,
            "bytes",
            "grant_views",
            format!("the {views} granted view(s) the run's init step fetched, each once"),
        ),
        None => ReportFigure::unknown("bytes", "the run's grants could not be read"),
    };
    let output_bytes = match &i.outputs {
        Ok(bytes) => exact(
            *bytes as f64,
            "bytes",
            "object_store",
            "the objects under the run's results prefix (a training run's model artefact among them)".into(),
        ),
        Err(why) => ReportFigure::unknown("bytes", why),
    };
    let storage_gb_hours = ReportFigure::unknown(
        "GB-h",
        "object storage is the sandbox's bucket: its GB-hours are recorded per sandbox (the sandbox report), not per run",
    );
    let hardware = Hardware {
        cpu_requested: i.cpu.clone(),
        memory_requested: i.memory.clone(),
        gpus_requested: i.gpus,
        gpu_resource: i.gpu_resource.clone(),
        power_model: format!(
            "{} W per core (idle {} of it), {} W per GB of memory, GPU {} W (idle {}): the reference hardware of modelled figures",
            i.model.cpu_watts_per_core,
            i.model.cpu_idle_fraction,
            i.model.memory_watts_per_gb,
            i.model.gpu_tdp_watts,
            i.model.gpu_idle_fraction
        ),
        node: None,
        method: MethodClass::Declared,
    };
    let unit = i.functional_unit.clone().filter(|(_, n)| *n > 0);
    let run_phase = PhaseReport {
        phase: i.phase.clone(),
        observed: true,
        note: if i.declared_mode {
            "this run; no metrics source is configured: every figure is its requests × its running time through the power model".into()
        } else {
            "this run: its pods' figures, summed over the ledger's windows".into()
        },
        per_unit: unit.as_ref().map(|(name, n)| PerUnit {
            functional_unit: name.clone(),
            count: *n,
            kwh: per_unit(&meter, *n, &format!("kWh per {name}")),
            gco2e: per_unit(
                &sum(
                    &[&operational, &embodied],
                    "gCO2e",
                    "sum",
                    "operational + embodied".into(),
                ),
                *n,
                &format!("gCO2e per {name}"),
            ),
            cpu_core_hours: per_unit(
                &compute.cpu_core_hours_used,
                *n,
                &format!("core-h per {name}"),
            ),
        }),
        figures: Some(PhaseFigures {
            duration_seconds: duration,
            energy: EnergyFigures {
                cpu,
                dram,
                gpu,
                it,
                meter: meter.clone(),
            },
            emissions: EmissionFigures {
                operational: operational.clone(),
                embodied: embodied.clone(),
                factor: factor.clone(),
                pue: Pue {
                    value: pue,
                    source: i.carbon.pue_source.clone(),
                    method: MethodClass::Declared,
                },
            },
            compute,
            storage_gb_hours,
            data_read_bytes,
            output_bytes,
            hardware,
        }),
    };
    let mut phases = Vec::new();
    if !LIFECYCLE.contains(&i.phase.as_str()) {
        phases.push(run_phase.clone());
    }
    for p in LIFECYCLE {
        if p == i.phase {
            phases.push(run_phase.clone());
            continue;
        }
        let note = if p == "data-preparation" {
            "unknown: the granted views this run read were prepared by the gateway when each grant was made (decrypt, project, filter, pseudonymise), which Serre does not account per run; the run's own data loading is inside its phase's figures"
        } else {
            "unknown: not part of this run (see the solution's other runs, or the vendor's own figures)"
        };
        phases.push(PhaseReport {
            phase: p.into(),
            observed: false,
            note: note.into(),
            figures: None,
            per_unit: None,
        });
    }
    let (r_name, r_count, r_method) = match &unit {
        Some((name, n)) => (name.clone(), *n, MethodClass::Declared),
        None => ("run".to_owned(), 1, MethodClass::Measured),
    };
    let total = sum(
        &[&operational, &embodied],
        &format!("gCO2e per {r_name}"),
        "sci",
        "(E × I + M) / R".into(),
    );
    let sci_value = per_unit(&total, r_count, &format!("gCO2e per {r_name}"));
    Frugality {
        phases,
        sci: Sci {
            formula: "SCI = (E × I + M) / R (ISO/IEC 21031:2024)".into(),
            value: sci_value,
            energy: meter,
            intensity: factor,
            embodied,
            functional_unit: r_name,
            functional_units: r_count,
            functional_unit_method: r_method,
        },
    }
}

/// Whether two runs' figures may be compared, and why not: the same phase, the same
/// functional unit, and energy of the same method class.
pub fn comparable(
    this: (&str, Option<&str>, MethodClass),
    other: (&str, Option<&str>, MethodClass),
) -> Result<(), String> {
    if this.0 != other.0 {
        return Err(format!(
            "a different phase ({} vs {}): energy per unit of different phases is not comparable",
            other.0, this.0
        ));
    }
    match (this.1, other.1) {
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => {
            return Err(format!("a different functional unit ({b} vs {a})"));
        }
        _ => {
            return Err(
                "no functional unit on one of the two runs: totals of runs of different sizes are not comparable".into(),
            );
        }
    }
    if this.2 != other.2 {
        return Err(format!(
            "energy of a different method class ({} vs {}): measured and modelled figures are not comparable",
            other.2.as_str(),
            this.2.as_str()
        ));
    }
    Ok(())
}

/// The CSV view: one row per figure, per-unit figure, SCI input and checklist answer.
/// Columns: section, phase, quantity, value, unit, low, high, method, method_detail,
/// source. The checklist's rows are in their own section, `declared_practices`.
pub fn csv(f: &Frugality, practices: &PracticeChecklist) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let figure =
        |w: &mut ::csv::Writer<Vec<u8>>, section: &str, phase: &str, q: &str, x: &ReportFigure| {
            w.write_record([
                section,
                phase,
                q,
                opt(x.value).as_str(),
                x.unit.as_str(),
                opt(x.low).as_str(),
                opt(x.high).as_str(),
                x.method.as_str(),
                x.method_detail.as_str(),
                x.source.as_str(),
            ])
        };
    for p in &f.phases {
        let Some(x) = &p.figures else {
            w.write_record([
                "phase",
                p.phase.as_str(),
                "observed",
                "",
                "",
                "",
                "",
                "unknown",
                "unknown",
                p.note.as_str(),
            ])?;
            continue;
        };
        for (q, v) in phase_rows(x) {
            figure(&mut w, "figure", &p.phase, q, v)?;
        }
        if let Some(u) = &p.per_unit {
            figure(&mut w, "per_unit", &p.phase, "energy_kwh", &u.kwh)?;
            figure(&mut w, "per_unit", &p.phase, "emissions_gco2e", &u.gco2e)?;
            figure(
                &mut w,
                "per_unit",
                &p.phase,
                "cpu_core_hours",
                &u.cpu_core_hours,
            )?;
        }
    }
    figure(&mut w, "sci", "", "sci", &f.sci.value)?;
    figure(&mut w, "sci", "", "e_kwh", &f.sci.energy)?;
    figure(&mut w, "sci", "", "m_gco2e", &f.sci.embodied)?;
    let i = &f.sci.intensity;
    let g = i.g_per_kwh.to_string();
    let source = format!("{}, {}, {}", i.source, i.year, i.scope);
    w.write_record([
        "sci",
        "",
        "i_gco2e_per_kwh",
        g.as_str(),
        "gCO2e/kWh",
        g.as_str(),
        g.as_str(),
        "declared",
        "emission_factor",
        source.as_str(),
    ])?;
    let r = f.sci.functional_units.to_string();
    w.write_record([
        "sci",
        "",
        "r",
        r.as_str(),
        f.sci.functional_unit.as_str(),
        r.as_str(),
        r.as_str(),
        f.sci.functional_unit_method.as_str(),
        "functional_unit",
        "the functional units declared in the run's request (or one run)",
    ])?;
    for item in &practices.items {
        w.write_record([
            "declared_practices",
            "",
            item.id.as_str(),
            item.answer.map_or("", Answer::as_str),
            "",
            "",
            "",
            "declared",
            "checklist",
            item.comment.as_deref().unwrap_or(""),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

pub const CSV_HEADER: [&str; 10] = [
    "section",
    "phase",
    "quantity",
    "value",
    "unit",
    "low",
    "high",
    "method",
    "method_detail",
    "source",
];

/// A phase's figures as (quantity, figure), in the order the views show them.
pub fn phase_rows(x: &PhaseFigures) -> Vec<(&'static str, &ReportFigure)> {
    vec![
        ("duration_s", &x.duration_seconds),
        ("energy_cpu_kwh", &x.energy.cpu),
        ("energy_dram_kwh", &x.energy.dram),
        ("energy_gpu_kwh", &x.energy.gpu),
        ("energy_it_kwh", &x.energy.it),
        ("energy_meter_kwh", &x.energy.meter),
        ("emissions_operational_gco2e", &x.emissions.operational),
        ("emissions_embodied_gco2e", &x.emissions.embodied),
        ("cpu_core_hours_used", &x.compute.cpu_core_hours_used),
        (
            "cpu_core_hours_requested",
            &x.compute.cpu_core_hours_requested,
        ),
        ("cpu_core_hours_charged", &x.compute.cpu_core_hours_charged),
        ("gpu_hours", &x.compute.gpu_hours),
        ("memory_gb_hours_used", &x.compute.memory_gb_hours_used),
        (
            "memory_gb_hours_charged",
            &x.compute.memory_gb_hours_charged,
        ),
        ("storage_gb_hours", &x.storage_gb_hours),
        ("data_read_bytes", &x.data_read_bytes),
        ("output_bytes", &x.output_bytes),
    ]
}

#[cfg(test)]
mod tests;
