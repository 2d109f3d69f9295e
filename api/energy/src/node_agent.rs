//! Serre's node agent (`serre-api node-energy`, a DaemonSet in the chart): samples the
//! node's RAPL counters and busy CPU time often enough never to miss a counter wrap, and
//! serves them to Prometheus as monotonic totals:
//!
//! - `serre_node_rapl_joules_total{node, zone="package"|"dram"}`;
//! - `serre_node_cpu_busy_seconds_total{node}` (from `/proc/stat`: user, nice, system,
//!   irq, softirq, steal; not idle or iowait; guest time is already inside user);
//! - `serre_node_rapl_read_errors_total{node}`.
//!
//! The gateway reads them back through Prometheus ([`super::node_rapl`]). A restart of
//! the agent resets the totals, which Prometheus's `increase()` treats as a counter reset.
//!
//! This module samples and keeps the totals ([`Sampler`], [`NodeMetrics`]); the gateway's
//! `node_agent` module runs it on a timer and serves `/metrics` over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::EnergyError;
use super::rapl::{self, RaplSnapshot};

/// Linux reports `/proc/stat` in USER_HZ, 100 on every architecture Kubernetes runs on.
const USER_HZ: f64 = 100.0;

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node's name (the downward API's `spec.nodeName`), as kube-state-metrics names it.
    pub node: String,
    /// `/sys/class/powercap` on a node.
    pub powercap: PathBuf,
    /// `/proc/stat` (not namespaced: the node's figures, also inside a container).
    pub proc_stat: PathBuf,
    pub with_dram: bool,
    /// Shorter than one wrap of the fastest counter (minutes at full load).
    pub sample: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabels {
    node: String,
    zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

type FloatCounter = Counter<f64, AtomicU64>;

/// The agent's totals and their exposition.
pub struct NodeMetrics {
    registry: Registry,
    joules: Family<ZoneLabels, FloatCounter>,
    busy: Family<NodeLabels, FloatCounter>,
    errors: Family<NodeLabels, Counter>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("serre_node");
        let joules = Family::<ZoneLabels, FloatCounter>::default();
        registry.register(
            "rapl_joules",
            "RAPL energy of the node's CPU packages and DRAM since the agent started, J",
            joules.clone(),
        );
        let busy = Family::<NodeLabels, FloatCounter>::default();
        registry.register(
            "cpu_busy_seconds",
            "Busy CPU time of the node since the agent started (all processes), core-s",
            busy.clone(),
        );
        let errors = Family::<NodeLabels, Counter>::default();
        registry.register(
            "rapl_read_errors",
            "Samples that could not be read (the interval is then not counted)",
            errors.clone(),
        );
        Self {
            registry,
            joules,
            busy,
            errors,
        }
    }
}

impl NodeMetrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Busy core-seconds since boot from the `cpu` line of `/proc/stat`.
pub fn busy_seconds(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| fields.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    (fields.len() >= 4).then_some(busy as f64 / USER_HZ)
}

fn read_busy(path: &Path) -> Result<f64, EnergyError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnergyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    busy_seconds(&text).ok_or_else(|| EnergyError::Rapl {
        path: path.to_path_buf(),
        message: "no `cpu` line with counters".into(),
    })
}

/// Reads the counters and adds each interval to the [`NodeMetrics`] totals.
pub struct Sampler {
    cfg: AgentConfig,
    metrics: Arc<NodeMetrics>,
    last: Option<(RaplSnapshot, f64)>,
}

impl Sampler {
    /// Check the directories can be read (refuse to start on a node without RAPL rather
    /// than serve nothing forever), then take a first step so that Prometheus sees the
    /// series from the first scrape on and counts the first interval's increase.
    pub fn start(cfg: AgentConfig) -> Result<Self, EnergyError> {
        let mut sampler = Sampler {
            cfg,
            metrics: Arc::new(NodeMetrics::default()),
            last: None,
        };
        sampler.last = Some(sampler.read()?);
        sampler.step();
        Ok(sampler)
    }

    /// The totals this sampler adds to.
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// How often [`Sampler::step`] should run.
    pub fn period(&self) -> Duration {
        self.cfg.sample
    }

    fn read(&self) -> Result<(RaplSnapshot, f64), EnergyError> {
        Ok((
            rapl::read_snapshot(&self.cfg.powercap, self.cfg.with_dram)?,
            read_busy(&self.cfg.proc_stat)?,
        ))
    }

    /// Add what happened since the previous sample; a failed read drops the interval
    /// (counted) and starts again from the next good sample.
    pub fn step(&mut self) {
        let node = NodeLabels {
            node: self.cfg.node.clone(),
        };
        let now = match self.read() {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "node energy sample failed");
                self.metrics.errors.get_or_create(&node).inc();
                self.last = None;
                return;
            }
        };
        if let Some((before, busy_before)) = &self.last {
            match rapl::energy_between(before, &now.0) {
                Ok(j) => {
                    let zone = |zone: &str| ZoneLabels {
                        node: self.cfg.node.clone(),
                        zone: zone.into(),
                    };
                    self.metrics
                        .joules
                        .get_or_create(&zone("package"))
                        .inc_by(j.package);
                    if let Some(d) = j.dram {
                        self.metrics.joules.get_or_create(&zone("dram")).inc_by(d);
                    }
                    // /proc/stat only goes back on a reboot, which restarts the agent too.
                    let busy = (now.1 - busy_before).max(0.0);
                    self.metrics.busy.get_or_create(&node).inc_by(busy);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "node energy zones changed");
                    self.metrics.errors.get_or_create(&node).inc();
                }
            }
        }
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_leaves_idle_and_iowait_out() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 7 0\ncpu0 50 10 15 500 25 2 2 5 3 0\nintr 1\n";
        // user 100 + nice 20 + system 30 + irq 5 + softirq 5 + steal 10 = 170 ticks.
        assert_eq!(busy_seconds(stat), Some(1.7));
        assert_eq!(busy_seconds("cpu0 1 2 3 4\n"), None);
        assert_eq!(busy_seconds("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn counters_accumulate_across_a_wrap() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rapl");
        let dir = std::env::temp_dir().join(format!("serre-node-agent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stat = dir.join("stat");
        std::fs::write(&stat, "cpu  100 0 0 1000 0 0 0 0 0 0\n").unwrap();
        let metrics = Arc::new(NodeMetrics::default());
        let mut sampler = Sampler {
            cfg: AgentConfig {
                node: "node-1".into(),
                powercap: fixtures.join("t0"),
                proc_stat: stat.clone(),
                with_dram: true,
                sample: Duration::from_secs(1),
            },
            metrics: metrics.clone(),
            last: None,
        };
        sampler.step();
        std::fs::write(&stat, "cpu  300 0 0 1000 0 0 0 0 0 0\n").unwrap();
        sampler.cfg.powercap = fixtures.join("t1");
        sampler.step();
        // A directory that vanished: an error, and the next interval starts afresh.
        sampler.cfg.powercap = fixtures.join("absent");
        sampler.step();
        let text = metrics.encode();
        std::fs::remove_dir_all(&dir).unwrap();
        // t0 → t1: 250 J of packages (one wraps), 30 J of DRAM, 2 busy core-seconds.
        assert!(
            text.contains(r#"serre_node_rapl_joules_total{node="node-1",zone="package"} 250.0"#),
            "{text}"
        );
        assert!(text.contains(r#"serre_node_rapl_joules_total{node="node-1",zone="dram"} 30.0"#));
        assert!(text.contains(r#"serre_node_cpu_busy_seconds_total{node="node-1"} 2.0"#));
        assert!(text.contains(r#"serre_node_rapl_read_errors_total{node="node-1"} 1"#));
    }
}
