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
    /// Extra label matchers added to every selector, e.g. `pod=~"run-.+"` (empty: none),
    /// so Prometheus answers only the series asked for.
    pub matcher: String,
}

impl Default for ResourceQueries {
    fn default() -> Self {
        Self {
            namespace_label: "namespace".into(),
            resolution_s: 30,
            matcher: String::new(),
        }
    }
}

impl ResourceQueries {
    /// `metric{matchers}` with the extra matcher appended.
    fn selector(&self, metric: &str, matchers: &str) -> String {
        let extra = match (matchers.is_empty(), self.matcher.is_empty()) {
            (_, true) => matchers.to_owned(),
            (true, false) => self.matcher.clone(),
            (false, false) => format!("{matchers},{}", self.matcher),
        };
        format!("{metric}{{{extra}}}")
    }

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
        let requests = |resource: &str| {
            self.selector(
                "kube_pod_container_resource_requests",
                &format!("resource=\"{resource}\""),
            )
        };
        let running = "container!=\"\",image!=\"\"";
        [
            format!(
                "sum by ({ns}) (increase({}[{}]))",
                self.selector("container_cpu_usage_seconds_total", running),
                window.range()
            ),
            self.integral(&requests("cpu"), window, 1.0),
            self.integral(
                &self.selector("container_memory_working_set_bytes", running),
                window,
                1e-9,
            ),
            self.integral(&requests("memory"), window, 1e-9),
            self.integral(&requests("nvidia_com_gpu"), window, 1.0),
            format!(
                "avg by ({ns}) (avg_over_time({}[{}])) / 100",
                self.selector("DCGM_FI_DEV_GPU_UTIL", &format!("{ns}!=\"\"")),
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
