//! CPU, memory and GPU time per namespace over a window, from cAdvisor
//! (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`),
//! kube-state-metrics (`kube_pod_container_resource_requests`) and DCGM utilisation.
//!
//! Gauges are integrated with a subquery at `resolution` (`sum_over_time(g[W:R]) × R`,
//! R at most the window, W one millisecond short of it), so a pod that lived for part of
//! the window counts for that part only. GB = 10⁹ bytes.
//!
//! CPU time is the counter's exact difference, not `increase()`: per series, the last
//! sample in the window minus the last sample before it (looked up `lookback_s` back), or
//! the last sample itself for a series that begins in the window (cAdvisor's counter
//! starts at zero with its container) or was reset. Consecutive windows then add up to
//! the counter's total, and a container that starts and ends inside one window counts
//! whole: `increase()` extrapolates at the window's edges instead, and drops the CPU time
//! a new series had before its first sample.

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
    /// How far before the window's start the counters' previous sample is looked for,
    /// seconds (at least the window). A series with no sample that far back counts from
    /// zero: keep it above the longest tolerated gap in scraping.
    pub lookback_s: u32,
}

impl Default for ResourceQueries {
    fn default() -> Self {
        Self {
            namespace_label: "namespace".into(),
            resolution_s: 30,
            matcher: String::new(),
            lookback_s: 3600,
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

    /// `∫ g dt` over the window as a Riemann sum of the gauge at the subquery's points,
    /// which Prometheus aligns to multiples of the step since the epoch. The step is at
    /// most the window (a window shorter than the step would otherwise hold no point most
    /// of the time: CI's calibration, with 5 s windows, once recorded no memory for a
    /// 20 s run), and the range is one millisecond short of the window so that its points
    /// are those in (start, end]: Prometheus 2 counts a range's start, 3 does not, and
    /// consecutive windows must not both count the point on their shared edge.
    fn integral(&self, selector: &str, window: &Window, scale: f64) -> String {
        let ns = &self.namespace_label;
        let whole_s = (window.seconds().floor() as u32).max(1);
        let r = self.resolution_s.clamp(1, whole_s);
        let range_ms = ((window.end - window.start).num_milliseconds() - 1).max(1);
        format!(
            "sum by ({ns}) (sum_over_time({selector}[{range_ms}ms:{r}s])) * {}",
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
                "sum by ({ns}) ({})",
                counter_difference(
                    &self.selector("container_cpu_usage_seconds_total", running),
                    window,
                    self.lookback_s
                )
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

/// Per series, the counter's increase over `window` (evaluated at its end) as the exact
/// difference of its samples: last in the window − last before it (up to `lookback_s`
/// earlier), or the last in the window when there is none before or the counter went
/// down (a series that starts, or restarts, from zero).
pub fn counter_difference(selector: &str, window: &Window, lookback_s: u32) -> String {
    let w = window.range();
    let lookback = (window.seconds().ceil() as u64).max(u64::from(lookback_s));
    let last = format!("last_over_time({selector}[{w}])");
    format!("({last} - last_over_time({selector}[{lookback}s] offset {w}) >= 0) or {last}")
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

/// CPU time a container used after cAdvisor's last sample of it, up to `end`, the moment
/// it is known to have stopped (a run's end). cAdvisor refreshes a container's counters
/// once per housekeeping interval (the kubelet's `--housekeeping-interval`, 10 s by
/// default, stretched up to 15 s while nothing changes) and forgets the container when
/// it exits, so the last interval's CPU time never reaches Prometheus. It is extrapolated
/// here at the rate of the last two samples, at most `max_cores`. `points` are the
/// series' samples `(unix seconds, core-seconds)`, oldest first.
pub fn exit_tail(points: &[(f64, f64)], end: f64, max_cores: f64) -> f64 {
    let [.., (t0, v0), (t1, v1)] = points else {
        return 0.0;
    };
    if end <= *t1 || t1 <= t0 {
        return 0.0;
    }
    let rate = ((v1 - v0) / (t1 - t0)).clamp(0.0, max_cores.max(0.0));
    rate * (end - t1)
}

/// Each finished run pod's [`exit_tail`], by pod: `ends` maps a pod-name regex (a run's
/// pods) to the run's end and CPU limit; the samples are its `container` series over
/// `range` before the window's end.
pub async fn exit_tails(
    client: &PrometheusClient,
    window: &Window,
    container: &str,
    ends: &[(String, f64, f64)],
    range_s: u64,
) -> Result<BTreeMap<String, f64>, EnergyError> {
    let mut out = BTreeMap::new();
    for (pods, end, cores) in ends {
        let selector = format!(
            "container_cpu_usage_seconds_total{{container=\"{container}\",image!=\"\",pod=~\"{pods}\"}}[{range_s}s]"
        );
        for series in client.query_series(&selector, window.end).await? {
            if let Some(pod) = series.labels.get("pod") {
                *out.entry(pod.clone()).or_insert(0.0) += exit_tail(&series.points, *end, *cores);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn window(start: i64, end: i64) -> Window {
        Window::new(
            Utc.timestamp_opt(start, 0).unwrap(),
            Utc.timestamp_opt(end, 0).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn cpu_time_is_the_counters_exact_difference() {
        let q = counter_difference("c{pod=\"p\"}", &window(1000, 1300), 3600);
        assert_eq!(
            q,
            "(last_over_time(c{pod=\"p\"}[300s]) - last_over_time(c{pod=\"p\"}[3600s] offset 300s) >= 0) \
             or last_over_time(c{pod=\"p\"}[300s])"
        );
        // The lookback is never shorter than the window.
        let q = counter_difference("c", &window(0, 7200), 3600);
        assert!(q.contains("c[7200s] offset 7200s"), "{q}");
        let q = ResourceQueries::default().queries(&window(1000, 1300))[0].clone();
        assert!(q.starts_with("sum by (namespace) ((last_over_time("), "{q}");
        assert!(!q.contains("increase("), "{q}");
    }

    #[test]
    fn gauges_are_summed_at_points_in_the_window_at_most_a_window_apart() {
        let q = ResourceQueries::default();
        // 5 min windows: 10 points 30 s apart, the window's start left out.
        let five_min = q.queries(&window(1200, 1500));
        assert!(
            five_min[2].contains("[299999ms:30s])) * 0.00000003"),
            "{}",
            five_min[2]
        );
        // 5 s windows (CI's calibration): one point, at the end, weighing 5 s.
        let five_s = q.queries(&window(1200, 1205));
        assert!(five_s[1].contains("[4999ms:5s])) * 5"), "{}", five_s[1]);
    }

    #[test]
    fn the_tail_after_the_last_sample_is_extrapolated_to_the_end() {
        // The calibration run's samples (kubelet with a 10 s housekeeping interval): the
        // last one, 16.49 core-s, came 4.3 s before the container stopped.
        let points = [(205.703, 0.0085), (216.838, 4.5617), (234.013, 16.4868)];
        let tail = exit_tail(&points, 238.3, 1.0);
        assert!((tail - 0.6943 * 4.287).abs() < 1e-3, "{tail}");
        // Capped at the CPU limit, nothing past the last sample, nothing from one sample.
        assert_eq!(exit_tail(&[(0.0, 0.0), (1.0, 5.0)], 3.0, 2.0), 4.0);
        assert_eq!(exit_tail(&points, 234.0, 1.0), 0.0);
        assert_eq!(exit_tail(&points[..1], 300.0, 1.0), 0.0);
        // A reset (counter going down) extrapolates nothing.
        assert_eq!(exit_tail(&[(0.0, 5.0), (1.0, 1.0)], 3.0, 2.0), 0.0);
    }
}
