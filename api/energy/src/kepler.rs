//! Kepler's per-pod energy counters, summed by namespace over a window.
//!
//! Kepler (0.10 and later) exports `kepler_pod_cpu_joules_total` with a `zone` label:
//! `package`, `core`, `uncore`, `dram` (and `psys` on some hosts). These zones overlap:
//! `package` already contains `core` and `uncore`, and `psys` contains the package. So
//! CPU energy is the `package` zone alone, DRAM the `dram` zone, GPU
//! `kepler_pod_gpu_joules_total`; nothing else is added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EnergyError;
use super::prometheus::{PrometheusClient, Sample, sum_by};
use super::usage::{ComponentJoules, EnergySource, Method, Window};

/// The series selectors for each component and the namespace label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeplerSchema {
    pub cpu: String,
    pub dram: String,
    pub gpu: String,
    pub namespace_label: String,
}

impl Default for KeplerSchema {
    /// Kepler 0.10+: zones as a label of the CPU counter.
    fn default() -> Self {
        Self {
            cpu: r#"kepler_pod_cpu_joules_total{zone="package"}"#.into(),
            dram: r#"kepler_pod_cpu_joules_total{zone="dram"}"#.into(),
            gpu: "kepler_pod_gpu_joules_total".into(),
            namespace_label: "pod_namespace".into(),
        }
    }
}

impl KeplerSchema {
    /// Exporters with a separate DRAM counter (`kepler_pod_dram_joules_total`).
    pub fn separate_dram() -> Self {
        Self {
            dram: "kepler_pod_dram_joules_total".into(),
            ..Self::default()
        }
    }

    /// The three queries (CPU, DRAM, GPU) for a window, evaluated at its end.
    pub fn queries(&self, window: &Window) -> [String; 3] {
        let range = window.range();
        let label = &self.namespace_label;
        [&self.cpu, &self.dram, &self.gpu]
            .map(|s| format!("sum by ({label}) (increase({s}[{range}]))"))
    }
}

/// Per-namespace joules from the three query answers (already summed by namespace, or
/// per pod: they are summed again here). A component absent from every answer stays
/// `None`, so another source (or the model) can supply it.
pub fn from_samples(
    cpu: &[Sample],
    dram: &[Sample],
    gpu: &[Sample],
    namespace_label: &str,
) -> BTreeMap<String, ComponentJoules> {
    let mut out: BTreeMap<String, ComponentJoules> = BTreeMap::new();
    for (ns, j) in sum_by(cpu, namespace_label) {
        out.entry(ns).or_default().cpu = Some(j);
    }
    for (ns, j) in sum_by(dram, namespace_label) {
        out.entry(ns).or_default().dram = Some(j);
    }
    for (ns, j) in sum_by(gpu, namespace_label) {
        out.entry(ns).or_default().gpu = Some(j);
    }
    out
}

/// Query Prometheus for one window.
pub async fn collect(
    client: &PrometheusClient,
    window: &Window,
    schema: &KeplerSchema,
) -> Result<EnergySource, EnergyError> {
    let [q_cpu, q_dram, q_gpu] = schema.queries(window);
    let (cpu, dram, gpu) = tokio::try_join!(
        client.query(&q_cpu, window.end),
        client.query(&q_dram, window.end),
        client.query(&q_gpu, window.end),
    )?;
    Ok(EnergySource {
        method: Method::Kepler,
        source: format!("{q_cpu}; {q_dram}; {q_gpu}"),
        by_namespace: from_samples(&cpu, &dram, &gpu, &schema.namespace_label),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn sample(ns: &str, v: f64) -> Sample {
        Sample {
            labels: [("pod_namespace".to_string(), ns.to_string())].into(),
            value: v,
        }
    }

    #[test]
    fn queries_use_package_and_dram_zones_only() {
        let w = Window::new(
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_300, 0).unwrap(),
        )
        .unwrap();
        let [cpu, dram, gpu] = KeplerSchema::default().queries(&w);
        assert_eq!(
            cpu,
            r#"sum by (pod_namespace) (increase(kepler_pod_cpu_joules_total{zone="package"}[300s]))"#
        );
        assert!(dram.contains(r#"zone="dram""#));
        assert!(gpu.contains("kepler_pod_gpu_joules_total[300s]"));
    }

    #[test]
    fn components_per_namespace() {
        let m = from_samples(
            &[sample("a", 10.0), sample("a", 5.0), sample("b", 1.0)],
            &[sample("a", 2.0)],
            &[],
            "pod_namespace",
        );
        assert_eq!(m["a"].cpu, Some(15.0));
        assert_eq!(m["a"].dram, Some(2.0));
        assert_eq!(m["a"].gpu, None);
        assert_eq!(m["b"].dram, None);
    }
}
