//! One window's accounting per namespace: the best source per component (never two for
//! the same energy), then PUE, carbon intensity and the SCI figures.

use std::collections::{BTreeMap, BTreeSet};

use super::EnergyError;
use super::usage::*;

#[derive(Clone, Copy)]
enum Component {
    Cpu,
    Dram,
    Gpu,
}

impl Component {
    /// Preference order of measured sources. DCGM reads the GPU's own counter, Kepler's
    /// GPU figure comes from the same NVML counter: one or the other, never both.
    fn preference(self) -> &'static [Method] {
        match self {
            Component::Cpu | Component::Dram => &[Method::Kepler, Method::Rapl],
            Component::Gpu => &[Method::Dcgm, Method::Kepler],
        }
    }

    fn pick(self, joules: &ComponentJoules) -> Option<f64> {
        match self {
            Component::Cpu => joules.cpu,
            Component::Dram => joules.dram,
            Component::Gpu => joules.gpu,
        }
    }

    fn quantity(self) -> Quantity {
        match self {
            Component::Cpu => Quantity::CpuEnergy,
            Component::Dram => Quantity::DramEnergy,
            Component::Gpu => Quantity::GpuEnergy,
        }
    }
}

/// Account one window: for each namespace seen in any input, the compute figures, then
/// per component (CPU package, DRAM, GPU) the energy from the best source that has a
/// figure for that namespace (exactly one source per component, so nothing is counted
/// twice), else the model; then IT energy, meter energy (× PUE), operational and
/// embodied emissions. Namespaces come out sorted.
pub fn account(window: Window, inputs: &AccountInputs) -> Result<Vec<NamespaceUsage>, EnergyError> {
    inputs.carbon.validate()?;
    inputs.model.validate()?;
    let mut namespaces: BTreeSet<&str> = inputs.resources.keys().map(String::as_str).collect();
    for source in &inputs.energy {
        namespaces.extend(source.by_namespace.keys().map(String::as_str));
    }
    let empty = ResourceUsage::default();
    let mut out = Vec::with_capacity(namespaces.len());
    for ns in namespaces {
        let r = inputs.resources.get(ns).unwrap_or(&empty);
        out.push(account_namespace(window, ns, r, inputs));
    }
    Ok(out)
}

fn account_namespace(
    window: Window,
    ns: &str,
    r: &ResourceUsage,
    inputs: &AccountInputs,
) -> NamespaceUsage {
    let src = r.source.as_str();
    let cpu_charged = r.cpu_requested_core_s.max(r.cpu_used_core_s);
    let mem_charged = r.memory_requested_gb_s.max(r.memory_used_gb_s);
    let mut figures = vec![
        UsageFigure::new(
            Quantity::CpuRequested,
            r.cpu_requested_core_s,
            Method::KubeStateMetrics,
            src,
        ),
        UsageFigure::new(Quantity::CpuUsed, r.cpu_used_core_s, Method::Cadvisor, src),
        UsageFigure::new(
            Quantity::CpuCharged,
            cpu_charged,
            Method::KubeStateMetrics.weakest(Method::Cadvisor),
            "max(cpu_requested, cpu_used)",
        ),
        UsageFigure::new(
            Quantity::MemoryRequested,
            r.memory_requested_gb_s,
            Method::KubeStateMetrics,
            src,
        ),
        UsageFigure::new(
            Quantity::MemoryUsed,
            r.memory_used_gb_s,
            Method::Cadvisor,
            src,
        ),
        UsageFigure::new(
            Quantity::MemoryCharged,
            mem_charged,
            Method::Cadvisor,
            "max(memory_requested, memory_used)",
        ),
        UsageFigure::new(Quantity::GpuTime, r.gpu_s, Method::KubeStateMetrics, src),
    ];

    let mut it_joules = 0.0;
    let mut it_method = Method::Dcgm;
    let mut it_parts = Vec::with_capacity(3);
    for component in [Component::Cpu, Component::Dram, Component::Gpu] {
        let measured = component.preference().iter().find_map(|method| {
            inputs
                .energy
                .iter()
                .filter(|s| s.method == *method)
                .find_map(|s| {
                    let joules = component.pick(s.by_namespace.get(ns)?)?;
                    Some((joules, s.method, s.source.clone()))
                })
        });
        let (joules, method, source) = measured.unwrap_or_else(|| {
            let (j, description) = match component {
                Component::Cpu => {
                    let (j, model) = inputs.model.cpu_joules(r.cpu_used_core_s, cpu_charged);
                    (j, format!("{model}, applied to cpu_used and cpu_charged"))
                }
                Component::Dram => inputs.model.dram_joules(mem_charged),
                Component::Gpu => inputs.model.gpu_joules(r.gpu_s, r.gpu_utilisation),
            };
            (j, Method::Modelled, description)
        });
        // A component with nothing to attribute (no GPU at all) adds nothing and does not
        // make the total "modelled".
        if !(method == Method::Modelled && joules == 0.0) {
            it_method = it_method.weakest(method);
        }
        it_parts.push(format!(
            "{}:{}",
            component.quantity().as_str(),
            method.as_str()
        ));
        it_joules += joules;
        figures.push(UsageFigure::new(
            component.quantity(),
            joules,
            method,
            source,
        ));
    }
    figures.push(UsageFigure::new(
        Quantity::ItEnergy,
        it_joules,
        it_method,
        it_parts.join("+"),
    ));

    let carbon = &inputs.carbon;
    let kwh = carbon.meter_kwh(it_joules);
    figures.push(UsageFigure::new(
        Quantity::MeterEnergy,
        kwh,
        it_method,
        format!("it_energy × PUE {} ({})", carbon.pue, carbon.pue_source),
    ));
    figures.push(UsageFigure::new(
        Quantity::OperationalEmissions,
        kwh * carbon.intensity.g_per_kwh,
        it_method,
        carbon.intensity.describe(),
    ));
    if let Some((grams, description)) = carbon.embodied_g(cpu_charged, r.gpu_s) {
        figures.push(UsageFigure::new(
            Quantity::EmbodiedEmissions,
            grams,
            Method::Modelled,
            description,
        ));
    }
    NamespaceUsage {
        window,
        namespace: ns.to_string(),
        tenant: inputs.tenants.get(ns).cloned(),
        figures,
    }
}

/// Roll namespace figures up to tenants (sums per quantity; the method of a sum is its
/// weakest part's). Namespaces without a tenant are rolled up under `""`.
pub fn by_tenant(usages: &[NamespaceUsage]) -> BTreeMap<String, Vec<UsageFigure>> {
    let mut out: BTreeMap<String, BTreeMap<Quantity, UsageFigure>> = BTreeMap::new();
    for u in usages {
        let tenant = out.entry(u.tenant.clone().unwrap_or_default()).or_default();
        for f in &u.figures {
            tenant
                .entry(f.quantity)
                .and_modify(|t| {
                    t.value += f.value;
                    t.method = t.method.weakest(f.method);
                })
                .or_insert_with(|| UsageFigure {
                    source: format!("sum over namespaces of {}", f.quantity.as_str()),
                    ..f.clone()
                });
        }
    }
    out.into_iter()
        .map(|(t, m)| (t, m.into_values().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn window() -> Window {
        Window::new(
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_300, 0).unwrap(),
        )
        .unwrap()
    }

    fn joules(cpu: Option<f64>, dram: Option<f64>, gpu: Option<f64>) -> ComponentJoules {
        ComponentJoules { cpu, dram, gpu }
    }

    fn inputs() -> AccountInputs {
        let kepler = EnergySource {
            method: Method::Kepler,
            source: "kepler".into(),
            by_namespace: BTreeMap::from([(
                "gpu-lab".to_string(),
                joules(Some(1000.0), Some(200.0), Some(5000.0)),
            )]),
        };
        let dcgm = EnergySource {
            method: Method::Dcgm,
            source: "dcgm".into(),
            by_namespace: BTreeMap::from([(
                "gpu-lab".to_string(),
                joules(None, None, Some(4800.0)),
            )]),
        };
        let rapl = EnergySource {
            method: Method::Rapl,
            source: "rapl".into(),
            by_namespace: BTreeMap::from([
                ("gpu-lab".to_string(), joules(Some(999.0), Some(99.0), None)),
                ("etl".to_string(), joules(Some(300.0), None, None)),
            ]),
        };
        let resources = BTreeMap::from([
            (
                "etl".to_string(),
                ResourceUsage {
                    cpu_requested_core_s: 600.0,
                    cpu_used_core_s: 450.0,
                    memory_requested_gb_s: 1200.0,
                    memory_used_gb_s: 1500.0,
                    ..ResourceUsage::default()
                },
            ),
            (
                "idle".to_string(),
                ResourceUsage {
                    cpu_requested_core_s: 300.0,
                    ..ResourceUsage::default()
                },
            ),
        ]);
        AccountInputs {
            resources,
            energy: vec![rapl, kepler, dcgm],
            tenants: BTreeMap::from([
                ("gpu-lab".to_string(), "t1".to_string()),
                ("etl".to_string(), "t1".to_string()),
            ]),
            ..AccountInputs::default()
        }
    }

    #[test]
    fn best_source_per_component_without_double_counting() {
        let out = account(window(), &inputs()).unwrap();
        let names: Vec<&str> = out.iter().map(|u| u.namespace.as_str()).collect();
        assert_eq!(names, ["etl", "gpu-lab", "idle"]);

        let gpu = &out[1];
        assert_eq!(
            gpu.figure(Quantity::CpuEnergy).unwrap().method,
            Method::Kepler
        );
        assert_eq!(gpu.value(Quantity::CpuEnergy), 1000.0);
        assert_eq!(
            gpu.figure(Quantity::DramEnergy).unwrap().method,
            Method::Kepler
        );
        // DCGM's GPU counter, not Kepler's copy of it, and not both.
        assert_eq!(
            gpu.figure(Quantity::GpuEnergy).unwrap().method,
            Method::Dcgm
        );
        assert_eq!(gpu.value(Quantity::ItEnergy), 1000.0 + 200.0 + 4800.0);
        assert_eq!(
            gpu.figure(Quantity::ItEnergy).unwrap().method,
            Method::Kepler
        );
        // 6000 J / 3.6 MJ × PUE 1.5 = 0.0025 kWh; × 56 g = 0.14 g.
        assert!((gpu.value(Quantity::MeterEnergy) - 0.0025).abs() < 1e-12);
        assert!((gpu.value(Quantity::OperationalEmissions) - 0.14).abs() < 1e-12);
        assert!(
            gpu.figure(Quantity::OperationalEmissions)
                .unwrap()
                .source
                .contains("ADEME")
        );

        // etl: CPU from RAPL, DRAM from the model (RAPL had no DRAM zone), no GPU.
        let etl = &out[0];
        assert_eq!(etl.value(Quantity::CpuCharged), 600.0);
        assert_eq!(etl.value(Quantity::MemoryCharged), 1500.0);
        assert_eq!(
            etl.figure(Quantity::CpuEnergy).unwrap().method,
            Method::Rapl
        );
        let dram = etl.figure(Quantity::DramEnergy).unwrap();
        assert_eq!(dram.method, Method::Modelled);
        assert!((dram.value - 0.392 * 1500.0).abs() < 1e-9);
        assert_eq!(etl.value(Quantity::GpuEnergy), 0.0);
        assert_eq!(
            etl.figure(Quantity::ItEnergy).unwrap().method,
            Method::Modelled
        );

        // idle: requested but unused cores still draw idle power (model).
        let idle = &out[2];
        assert_eq!(idle.tenant, None);
        assert!((idle.value(Quantity::CpuEnergy) - 6.25 * 0.25 * 300.0).abs() < 1e-9);
        assert!(idle.figure(Quantity::EmbodiedEmissions).is_none());
    }

    #[test]
    fn tenant_roll_up_and_embodied() {
        let mut inputs = inputs();
        inputs.carbon.embodied_cpu = Some(crate::Embodied {
            total_g: 1.0e6,
            lifespan_s: 1.0e8,
            total_units: 100.0,
            source: "test".into(),
        });
        let out = account(window(), &inputs).unwrap();
        // etl reserved 600 core-s: 1e6 × 600 / (1e8 × 100) = 0.06 g.
        assert!((out[0].value(Quantity::EmbodiedEmissions) - 0.06).abs() < 1e-12);
        let sci = out[0].sci(2.0).unwrap();
        let expected = (out[0].value(Quantity::OperationalEmissions) + 0.06) / 2.0;
        assert!((sci - expected).abs() < 1e-12);
        let tenants = by_tenant(&out);
        let t1 = &tenants["t1"];
        let it = t1
            .iter()
            .find(|f| f.quantity == Quantity::ItEnergy)
            .unwrap();
        assert!(
            (it.value - (out[0].value(Quantity::ItEnergy) + out[1].value(Quantity::ItEnergy)))
                .abs()
                < 1e-9
        );
        assert_eq!(it.method, Method::Modelled);
        assert!(tenants.contains_key(""));
    }

    #[test]
    fn invalid_window_and_parameters() {
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(Window::new(t, t).unwrap_err().category(), "config");
        let mut inputs = inputs();
        inputs.carbon.pue = 0.5;
        assert!(account(window(), &inputs).is_err());
    }
}
