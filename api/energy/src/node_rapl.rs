//! RAPL energy through Prometheus: each node's package and DRAM joules, as exported by
//! Serre's node agent (`serre-api node-energy`, [`super::node_agent`]), shared among the
//! namespaces (or run pods) that used CPU on that node, by CPU-time share
//! ([`super::rapl::attribute`]).
//!
//! Four instant queries at the window's end:
//! - `sum by (node) (increase(serre_node_rapl_joules_total{zone="package"}[W]))`, and
//!   the same for `zone="dram"`;
//! - `sum by (node) (increase(serre_node_cpu_busy_seconds_total[W]))`: the node's busy
//!   CPU time, every process included (from `/proc/stat`, read by the same agent);
//! - cAdvisor's CPU time per container joined to kube-state-metrics' `kube_pod_info` on
//!   (namespace, pod) for the node each pod ran on, summed by node and namespace (or pod).
//!
//! The part of a node's energy that no pod accounts for (system daemons, kubelet, idle
//! power) stays unattributed. Nodes without the agent give nothing here, and the next
//! source (the model) supplies their figures; when no node has it, only the first query
//! is asked.

use std::collections::BTreeMap;

use super::EnergyError;
use super::prometheus::{PrometheusClient, Sample, sum_by};
use super::rapl::{self, NodeJoules};
use super::usage::{EnergySource, Method, Window};

/// The agent's counters and how pods are mapped to namespaces (or runs).
#[derive(Clone, Debug)]
pub struct RaplQueries {
    pub energy_metric: String,
    pub busy_metric: String,
    /// The label the attribution is keyed by: `namespace`, or `pod` for runs.
    pub namespace_label: String,
    /// Extra matchers on cAdvisor's series, e.g. `pod=~"run-.+"` (empty: none).
    pub matcher: String,
}

impl Default for RaplQueries {
    fn default() -> Self {
        Self {
            energy_metric: "serre_node_rapl_joules_total".into(),
            busy_metric: "serre_node_cpu_busy_seconds_total".into(),
            namespace_label: "namespace".into(),
            matcher: String::new(),
        }
    }
}

impl RaplQueries {
    /// Package joules, DRAM joules, busy core-seconds (each by node), and CPU time by node
    /// and namespace (or pod).
    pub fn queries(&self, window: &Window) -> [String; 4] {
        let range = window.range();
        let energy = |zone: &str| {
            format!(
                "sum by (node) (increase({}{{zone=\"{zone}\"}}[{range}]))",
                self.energy_metric
            )
        };
        let extra = if self.matcher.is_empty() {
            String::new()
        } else {
            format!(",{}", self.matcher)
        };
        let label = &self.namespace_label;
        [
            energy("package"),
            energy("dram"),
            format!("sum by (node) (increase({}[{range}]))", self.busy_metric),
            format!(
                "sum by (node, {label}) (increase(container_cpu_usage_seconds_total\
                 {{container!=\"\",image!=\"\"{extra}}}[{range}]) * on (namespace, pod) \
                 group_left (node) max by (namespace, pod, node) (kube_pod_info))"
            ),
        ]
    }
}

/// Attribute each node's energy from the four answers (see [`RaplQueries::queries`]).
pub fn from_samples(
    package: &[Sample],
    dram: &[Sample],
    busy: &[Sample],
    cpu: &[Sample],
    namespace_label: &str,
) -> EnergySource {
    let package = sum_by(package, "node");
    let dram = sum_by(dram, "node");
    let busy = sum_by(busy, "node");
    let mut cpu_by_node: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for s in cpu {
        let (Some(node), Some(key)) = (s.label("node"), s.label(namespace_label)) else {
            continue;
        };
        if node.is_empty() || key.is_empty() || !s.value.is_finite() {
            continue;
        }
        *cpu_by_node
            .entry(node)
            .or_default()
            .entry(key.to_string())
            .or_insert(0.0) += s.value;
    }
    let nodes: Vec<EnergySource> = package
        .iter()
        .filter_map(|(node, joules)| {
            let used = cpu_by_node.get(node.as_str())?;
            let energy = NodeJoules {
                package: *joules,
                dram: dram.get(node).copied(),
            };
            Some(rapl::attribute(
                node,
                energy,
                used,
                busy.get(node).copied().unwrap_or(0.0),
            ))
        })
        .collect();
    rapl::merge(&nodes)
}

/// Query Prometheus for one window.
pub async fn collect(
    client: &PrometheusClient,
    window: &Window,
    queries: &RaplQueries,
) -> Result<EnergySource, EnergyError> {
    let [q_package, q_dram, q_busy, q_cpu] = queries.queries(window);
    let package = client.query(&q_package, window.end).await?;
    if package.is_empty() {
        // No node runs the agent (or none reported in this window): the join over every
        // pod's CPU time would be asked for nothing.
        return Ok(EnergySource {
            method: Method::Rapl,
            source: q_package,
            by_namespace: Default::default(),
        });
    }
    let (dram, busy, cpu) = tokio::try_join!(
        client.query(&q_dram, window.end),
        client.query(&q_busy, window.end),
        client.query(&q_cpu, window.end),
    )?;
    let mut source = from_samples(&package, &dram, &busy, &cpu, &queries.namespace_label);
    source.method = Method::Rapl;
    source.source = if source.source.is_empty() {
        format!("{q_package}; {q_dram}; {q_busy}; {q_cpu}")
    } else {
        format!("{} ({q_package}; {q_dram})", source.source)
    };
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn each_node_is_shared_by_cpu_time_on_that_node() {
        let package = [
            sample(&[("node", "n1")], 400.0),
            sample(&[("node", "n2")], 100.0),
            // A node with the agent but no pod: nothing to attribute.
            sample(&[("node", "n3")], 50.0),
        ];
        let dram = [sample(&[("node", "n1")], 40.0)];
        let busy = [
            sample(&[("node", "n1")], 40.0),
            sample(&[("node", "n2")], 10.0),
        ];
        let cpu = [
            sample(&[("node", "n1"), ("namespace", "a")], 20.0),
            sample(&[("node", "n1"), ("namespace", "b")], 10.0),
            sample(&[("node", "n2"), ("namespace", "a")], 10.0),
            // A pod whose node is unknown (no kube_pod_info): left out.
            sample(&[("namespace", "c")], 10.0),
        ];
        let s = from_samples(&package, &dram, &busy, &cpu, "namespace");
        assert_eq!(s.method, Method::Rapl);
        let a = &s.by_namespace["a"];
        // n1: 20/40 of 400 J = 200 J; n2: 10/10 of 100 J = 100 J.
        assert!((a.cpu.unwrap() - 300.0).abs() < 1e-9, "{a:?}");
        // DRAM is measured on n1 only: a's share of it (20/40 of 40 J).
        assert!((a.dram.unwrap() - 20.0).abs() < 1e-9, "{a:?}");
        let b = &s.by_namespace["b"];
        assert!((b.cpu.unwrap() - 100.0).abs() < 1e-9);
        assert!(!s.by_namespace.contains_key("c"));
        assert!(s.source.contains("n1") && s.source.contains("n2"));
    }

    #[test]
    fn pods_using_more_than_the_busy_time_take_it_all() {
        // The agent's busy time lags cAdvisor's by a scrape: shares never exceed 100 %.
        let s = from_samples(
            &[sample(&[("node", "n1")], 100.0)],
            &[],
            &[sample(&[("node", "n1")], 5.0)],
            &[sample(
                &[("node", "n1"), ("pod", "run-0123456789ab-x")],
                8.0,
            )],
            "pod",
        );
        let j = &s.by_namespace["run-0123456789ab-x"];
        assert!((j.cpu.unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(j.dram, None);
    }

    #[test]
    fn run_queries_filter_cadvisor_and_join_the_node() {
        let w = Window::new(
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            chrono::DateTime::from_timestamp(1_700_000_300, 0).unwrap(),
        )
        .unwrap();
        let q = RaplQueries {
            namespace_label: "pod".into(),
            matcher: "pod=~\"run-.+\"".into(),
            ..RaplQueries::default()
        };
        let [package, _, busy, cpu] = q.queries(&w);
        assert_eq!(
            package,
            r#"sum by (node) (increase(serre_node_rapl_joules_total{zone="package"}[300s]))"#
        );
        assert!(busy.contains("serre_node_cpu_busy_seconds_total[300s]"));
        assert!(cpu.starts_with("sum by (node, pod) (increase(container_cpu_usage_seconds_total{container!=\"\",image!=\"\",pod=~\"run-.+\"}[300s])"), "{cpu}");
        assert!(cpu.ends_with("group_left (node) max by (namespace, pod, node) (kube_pod_info))"));
    }
}
