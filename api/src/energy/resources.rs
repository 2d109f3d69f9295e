//! CPU, memory and GPU time per namespace over a window, from cAdvisor
//! (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`),
//! kube-state-metrics (`kube_pod_container_resource_requests`) and DCGM utilisation.
//!
//! Gauges are integrated with a subquery at `resolution` (`sum_over_time(g[W:R]) × R`),
//! so a pod that lived for part of the window counts for that part only. GB = 10⁹ bytes.

use std::collections::BTreeMap;

use super::EnergyError;
use super::prometheus::{PrometheusClient, sum_by};
use super::usage::{ResourceUsage, Window};

#[derive(Clone, Debug)]
pub struct ResourceQueries {
    pub namespace_label: String,
    /// Subquery step for integrating gauges, seconds.
    pub resolution_s: u32,
}

impl Default for ResourceQueries {
    fn default() -> Self {
        Self {
            namespace_label: "namespace".into(),
            resolution_s: 30,
        }
    }
}

impl ResourceQueries {
    fn integral(&self, selector: &str, window: &Window, scale: f64) -> String {
        let (ns, r) = (&self.namespace_label, self.resolution_s);
        format!(
            "sum by ({ns}) (sum_over_time({selector}[{}:{r}s])) * {}",
            window.range(),
            f64::from(r) * scale
        )
    }

    /// cpu used, cpu requested, memory used, memory requested, GPUs allocated, GPU
    /// utilisation (0..1).
    pub fn queries(&self, window: &Window) -> [String; 6] {
        let ns = &self.namespace_label;
        [
            format!(
                r#"sum by ({ns}) (increase(container_cpu_usage_seconds_total{{container!="",image!=""}}[{}]))"#,
                window.range()
            ),
            self.integral(
                r#"kube_pod_container_resource_requests{resource="cpu"}"#,
                window,
                1.0,
            ),
            self.integral(
                r#"container_memory_working_set_bytes{container!="",image!=""}"#,
                window,
                1e-9,
            ),
            self.integral(
                r#"kube_pod_container_resource_requests{resource="memory"}"#,
                window,
                1e-9,
            ),
            self.integral(
                r#"kube_pod_container_resource_requests{resource="nvidia_com_gpu"}"#,
                window,
                1.0,
            ),
            format!(
                r#"avg by ({ns}) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{{{ns}!=""}}[{}])) / 100"#,
                window.range()
            ),
        ]
    }
}

pub async fn collect(
    client: &PrometheusClient,
    window: &Window,
    queries: &ResourceQueries,
) -> Result<BTreeMap<String, ResourceUsage>, EnergyError> {
    let q = queries.queries(window);
    let at = window.end;
    let (cpu, cpu_req, mem, mem_req, gpu, util) = tokio::try_join!(
        client.query(&q[0], at),
        client.query(&q[1], at),
        client.query(&q[2], at),
        client.query(&q[3], at),
        client.query(&q[4], at),
        client.query(&q[5], at),
    )?;
    let label = queries.namespace_label.as_str();
    let source = q.join("; ");
    let mut out: BTreeMap<String, ResourceUsage> = BTreeMap::new();
    let mut set = |samples: &[super::Sample], f: fn(&mut ResourceUsage, f64)| {
        for (ns, v) in sum_by(samples, label) {
            let r = out.entry(ns).or_insert_with(|| ResourceUsage {
                source: source.clone(),
                ..ResourceUsage::default()
            });
            f(r, v);
        }
    };
    set(&cpu, |r, v| r.cpu_used_core_s = v);
    set(&cpu_req, |r, v| r.cpu_requested_core_s = v);
    set(&mem, |r, v| r.memory_used_gb_s = v);
    set(&mem_req, |r, v| r.memory_requested_gb_s = v);
    set(&gpu, |r, v| r.gpu_s = v);
    set(&util, |r, v| r.gpu_utilisation = Some(v.clamp(0.0, 1.0)));
    Ok(out)
}
