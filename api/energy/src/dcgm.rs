//! GPU energy from NVIDIA DCGM: `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`, a per-device
//! counter in millijoules since boot. dcgm-exporter adds `namespace`, `pod` and
//! `container` labels when it maps devices to pods (kubelet pod-resources API).
//!
//! Caveat: a GPU shared by several pods (time slicing) appears once per pod with the
//! whole device's counter; its energy would then be counted once per pod. Serre
//! allocates whole GPUs or MIG instances, whose series are distinct.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EnergyError;
use super::prometheus::{PrometheusClient, Sample, sum_by};
use super::usage::{ComponentJoules, EnergySource, Method, Window};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DcgmSchema {
    pub metric: String,
    /// `namespace`, or `exported_namespace` when Prometheus renamed the exporter's label.
    pub namespace_label: String,
    /// Extra label matchers, e.g. `pod=~"run-.+"` (empty: none).
    pub matcher: String,
}

impl Default for DcgmSchema {
    fn default() -> Self {
        Self {
            metric: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION".into(),
            namespace_label: "namespace".into(),
            matcher: String::new(),
        }
    }
}

impl DcgmSchema {
    /// Millijoules per namespace over the window, evaluated at its end. Series not
    /// mapped to a pod (idle GPUs) are left out.
    pub fn query(&self, window: &Window) -> String {
        let label = &self.namespace_label;
        let extra = if self.matcher.is_empty() {
            String::new()
        } else {
            format!(",{}", self.matcher)
        };
        format!(
            "sum by ({label}) (increase({}{{{label}!=\"\"{extra}}}[{}]))",
            self.metric,
            window.range()
        )
    }
}

/// Per-namespace GPU joules from the answer (in millijoules).
pub fn from_samples(
    samples: &[Sample],
    namespace_label: &str,
) -> BTreeMap<String, ComponentJoules> {
    sum_by(samples, namespace_label)
        .into_iter()
        .map(|(ns, mj)| {
            let joules = ComponentJoules {
                gpu: Some(mj / 1000.0),
                ..ComponentJoules::default()
            };
            (ns, joules)
        })
        .collect()
}

pub async fn collect(
    client: &PrometheusClient,
    window: &Window,
    schema: &DcgmSchema,
) -> Result<EnergySource, EnergyError> {
    let query = schema.query(window);
    let samples = client.query(&query, window.end).await?;
    Ok(EnergySource {
        method: Method::Dcgm,
        source: format!("{query} (mJ)"),
        by_namespace: from_samples(&samples, &schema.namespace_label),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millijoules_to_joules() {
        let s = Sample {
            labels: [("namespace".to_string(), "gpu-lab".to_string())].into(),
            value: 42_000.0,
        };
        let m = from_samples(&[s], "namespace");
        assert_eq!(m["gpu-lab"].gpu, Some(42.0));
        assert_eq!(m["gpu-lab"].cpu, None);
    }
}
