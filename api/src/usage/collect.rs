//! One ledger window: collect compute and energy per namespace and per trial run, account
//! it (best source per component, PUE, carbon) and turn it into ledger rows.
//!
//! Two sources:
//! - **Prometheus** (`--prometheus-url`): cAdvisor and kube-state-metrics for compute,
//!   Kepler, DCGM and the node agent's RAPL counters for energy, summed by namespace, and by pod for the runs (a run's
//!   pods are its Job's, named `<run>-<suffix>`); components without a measured figure
//!   fall back to the power model, flagged `modelled`.
//! - **Declared** (no Prometheus configured): each run's requested resources × the time
//!   it ran inside the window. Every figure, compute included, is flagged `modelled`, and
//!   the source says why: an upper bound, never presented as a measurement.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::energy::dcgm::{self, DcgmSchema};
use crate::energy::kepler::{self, KeplerSchema};
use crate::energy::node_rapl::{self, RaplQueries};
use crate::energy::resources::{self, ResourceQueries};
use crate::energy::{
    AccountInputs, CarbonParams, ComponentJoules, EnergyError, EnergySource, LedgerRow, Method,
    NamespaceUsage, PowerModel, PrometheusClient, ResourceUsage, Window, account, ledger,
};

/// A run as the accounting sees it: where it ran, when, and what it asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpan {
    pub name: String,
    pub namespace: String,
    pub tenant: String,
    pub started: DateTime<Utc>,
    /// None while it runs.
    pub finished: Option<DateTime<Utc>>,
    pub cpu_cores: f64,
    pub memory_gb: f64,
    pub gpus: f64,
}

impl RunSpan {
    /// Seconds of the window during which the run ran.
    pub fn overlap_s(&self, window: &Window) -> f64 {
        let start = self.started.max(window.start);
        let end = self.finished.map_or(window.end, |f| f.min(window.end));
        ((end - start).num_milliseconds().max(0) as f64) / 1000.0
    }
}

/// What the window covers: the Serre namespaces (namespace → tenant), the runs, and the
/// bytes each namespace's bucket holds (from the store's admin API, through the
/// Sandbox's status).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub tenants: BTreeMap<String, String>,
    pub runs: Vec<RunSpan>,
    pub storage_bytes: BTreeMap<String, u64>,
}

/// Storage GB-hours of each bucket over the window (GB = 10⁹ bytes).
fn storage_rows(window: Window, scope: &Scope) -> Vec<LedgerRow> {
    let hours = window.seconds() / 3600.0;
    scope
        .storage_bytes
        .iter()
        .filter_map(|(ns, bytes)| {
            Some(LedgerRow {
                window_start: window.start,
                window_end: window.end,
                tenant: scope.tenants.get(ns)?.clone(),
                namespace: ns.clone(),
                run: String::new(),
                quantity: "storage_used".into(),
                value: *bytes as f64 / 1e9 * hours,
                unit: "gb_h".into(),
                method: "store_admin_api".into(),
                source: "bucket size from the object store's admin API (Sandbox \
                         status.storage.used) × window"
                    .into(),
            })
        })
        .collect()
}

/// Where figures come from.
pub enum Source {
    Prometheus(PrometheusClient),
    Declared,
}

/// Pods of trial-run Jobs: the run's name (`run-` and 12 hex digits), a dash, a suffix.
pub const RUN_POD_PATTERN: &str = "run-[0-9a-f]{12}-.+";

/// The container of a run's pod that runs the vendor's image (the operator's
/// `TRIAL_CONTAINER`, operator/src/build/job.rs): the one still running when the run ends.
pub const TRIAL_CONTAINER: &str = "trial";

/// How far before a window's end the samples of a run's last window are read for the
/// CPU time after cAdvisor's last sample ([`resources::exit_tail`]): more than the
/// kubelet's longest wait between two housekeepings (15 s plus 100 % jitter) plus a
/// scrape interval.
const TAIL_RANGE_S: u64 = 120;

const DECLARED: &str =
    "TrialRun requests × running time (no metrics source configured: an upper bound)";

/// The longest a run's trial container may run after cAdvisor's last sample of it for the
/// run to count as measured: the kubelet's longest wait between two housekeepings (10 s,
/// stretched up to 15 s while nothing changes, plus cAdvisor's jitter of up to 100 %).
/// Past it, the extrapolated tail would be a guess rather than a short continuation of a
/// measured rate.
pub const MAX_UNSAMPLED_TAIL_S: f64 = 30.0;

/// Why a run's figures are its requests × its running time when cAdvisor did not sample
/// its trial container enough to measure it ([`trial_coverage`], [`modelled_run_rows`]).
pub const NEVER_SAMPLED: &str = "TrialRun requests × running time (cAdvisor sampled the \
     run's trial container fewer than twice, or not in its last 30 s: a container that \
     lives less than the kubelet's housekeeping interval, 10–20 s by default, may never \
     show, and without two samples near its end its CPU time cannot be measured; an upper bound)";

/// Collect and account one window; the rows to record (namespace totals, then runs).
pub async fn window_rows(
    source: &Source,
    window: Window,
    scope: &Scope,
    model: &PowerModel,
    carbon: &CarbonParams,
) -> Result<Vec<LedgerRow>, EnergyError> {
    let runs: Vec<&RunSpan> = scope
        .runs
        .iter()
        .filter(|r| r.overlap_s(&window) > 0.0)
        .collect();
    let (namespaces, by_run) = match source {
        Source::Prometheus(client) => prometheus_inputs(client, window, scope, &runs).await?,
        Source::Declared => declared_inputs(window, &runs),
    };
    let declared = matches!(source, Source::Declared);
    let mut rows = Vec::new();
    for (inputs, run_level) in [(namespaces, false), (by_run, true)] {
        let inputs = AccountInputs {
            model: model.clone(),
            carbon: carbon.clone(),
            ..inputs
        };
        let mut usages = account(window, &inputs)?;
        usages.retain(|u| u.tenant.is_some());
        if declared {
            usages.iter_mut().for_each(|u| flag_modelled(u, DECLARED));
        }
        let mut window_rows = ledger::rows(&usages);
        if run_level {
            for row in &mut window_rows {
                if let Some(run) = runs.iter().find(|r| r.name == row.namespace) {
                    row.run = run.name.clone();
                    row.namespace = run.namespace.clone();
                }
            }
        }
        rows.extend(window_rows);
    }
    rows.extend(storage_rows(window, scope));
    Ok(rows)
}

/// Every figure of `u` becomes `modelled`, its source prefixed with why.
fn flag_modelled(u: &mut NamespaceUsage, why: &str) {
    for f in &mut u.figures {
        if f.method != Method::Modelled {
            f.method = Method::Modelled;
            f.source = format!("{why}; {}", f.source);
        }
    }
}

/// A run's requests over `seconds`: what it may have used at most.
fn requested_usage(r: &RunSpan, seconds: f64, source: &str) -> ResourceUsage {
    ResourceUsage {
        cpu_requested_core_s: r.cpu_cores * seconds,
        cpu_used_core_s: r.cpu_cores * seconds,
        memory_requested_gb_s: r.memory_gb * seconds,
        memory_used_gb_s: r.memory_gb * seconds,
        gpu_s: r.gpus * seconds,
        gpu_utilisation: None,
        source: source.into(),
    }
}

fn declared_inputs(window: Window, runs: &[&RunSpan]) -> (AccountInputs, AccountInputs) {
    let mut namespaces = AccountInputs::default();
    let mut by_run = AccountInputs::default();
    for r in runs {
        let usage = requested_usage(r, r.overlap_s(&window), DECLARED);
        add_usage(
            namespaces.resources.entry(r.namespace.clone()).or_default(),
            &usage,
        );
        namespaces
            .tenants
            .insert(r.namespace.clone(), r.tenant.clone());
        by_run.resources.insert(r.name.clone(), usage);
        by_run.tenants.insert(r.name.clone(), r.tenant.clone());
    }
    (namespaces, by_run)
}

/// The namespaces' and the runs' inputs from Prometheus. A run of which the window holds
/// no sample gets no row here: cAdvisor's counter is cumulative, so the next sample
/// counts that time; one not sampled enough to be measured is settled when it closes
/// ([`trial_coverage`]).
async fn prometheus_inputs(
    client: &PrometheusClient,
    window: Window,
    scope: &Scope,
    runs: &[&RunSpan],
) -> Result<(AccountInputs, AccountInputs), EnergyError> {
    // Namespaces: every figure summed by namespace, restricted to Serre's.
    let (rq, ks, ds) = (
        ResourceQueries::default(),
        KeplerSchema::default(),
        DcgmSchema::default(),
    );
    // One collector at a time: with per-pod answers, the decoded samples of every query
    // in flight at once would dominate the memory.
    let resources = resources::collect(client, &window, &rq).await?;
    let kepler = kepler::collect(client, &window, &ks).await?;
    let dcgm = dcgm::collect(client, &window, &ds).await?;
    let rapl = node_rapl::collect(client, &window, &RaplQueries::default()).await?;
    let known = |k: &String| scope.tenants.contains_key(k);
    let mut namespaces = AccountInputs {
        resources: resources.into_iter().filter(|(k, _)| known(k)).collect(),
        energy: [kepler, dcgm, rapl]
            .into_iter()
            .map(|mut s| {
                s.by_namespace.retain(|k, _| known(k));
                s
            })
            .collect(),
        tenants: scope.tenants.clone(),
        ..AccountInputs::default()
    };
    if runs.is_empty() {
        return Ok((namespaces, AccountInputs::default()));
    }
    // Runs: the same figures by pod, for the pods of run Jobs only (`<run>-<suffix>`),
    // rolled up to the run owning each pod.
    let pod_resources = ResourceQueries {
        namespace_label: "pod".into(),
        matcher: format!("pod=~\"{RUN_POD_PATTERN}\""),
        ..ResourceQueries::default()
    };
    let kepler_default = KeplerSchema::default();
    let only_runs = |selector: &str| {
        let m = format!("pod_name=~\"{RUN_POD_PATTERN}\"");
        match selector.strip_suffix('}') {
            Some(open) => format!("{open},{m}}}"),
            None => format!("{selector}{{{m}}}"),
        }
    };
    let pod_kepler = KeplerSchema {
        cpu: only_runs(&kepler_default.cpu),
        dram: only_runs(&kepler_default.dram),
        gpu: only_runs(&kepler_default.gpu),
        namespace_label: "pod_name".into(),
    };
    let pod_dcgm = DcgmSchema {
        namespace_label: "pod".into(),
        matcher: format!("pod=~\"{RUN_POD_PATTERN}\""),
        ..DcgmSchema::default()
    };
    let resources = resources::collect(client, &window, &pod_resources).await?;
    let kepler = kepler::collect(client, &window, &pod_kepler).await?;
    let dcgm = dcgm::collect(client, &window, &pod_dcgm).await?;
    let pod_rapl = RaplQueries {
        namespace_label: "pod".into(),
        matcher: format!("pod=~\"{RUN_POD_PATTERN}\""),
        ..RaplQueries::default()
    };
    let rapl = node_rapl::collect(client, &window, &pod_rapl).await?;
    let owner = |pod: &str| {
        runs.iter()
            .find(|r| {
                pod.strip_prefix(r.name.as_str())
                    .is_some_and(|s| s.starts_with('-'))
            })
            .map(|r| r.name.clone())
    };
    let mut by_run = AccountInputs::default();
    for (pod, usage) in resources {
        if let Some(run) = owner(&pod) {
            add_usage(by_run.resources.entry(run).or_default(), &usage);
        }
    }
    // The CPU time of a run's last moments, after cAdvisor's last sample: in the window
    // where the run ends, extrapolated to its end (added to the namespace's total too).
    let ends: Vec<(String, f64, f64)> = runs
        .iter()
        .filter_map(|r| {
            let f = r
                .finished
                .filter(|f| *f > window.start && *f <= window.end)?;
            let end = f.timestamp_millis() as f64 / 1000.0;
            Some((format!("{}-.+", r.name), end, r.cpu_cores))
        })
        .collect();
    if !ends.is_empty() {
        let tails =
            resources::exit_tails(client, &window, TRIAL_CONTAINER, &ends, TAIL_RANGE_S).await?;
        for (pod, tail) in tails {
            let Some(run) = owner(&pod) else { continue };
            let ns = runs
                .iter()
                .find(|r| r.name == run)
                .map(|r| r.namespace.clone());
            let note = format!(
                "; + {tail:.3} core-s after cAdvisor's last sample of {pod}, extrapolated at \
                 its last rate to the run's end"
            );
            // The window may hold no sample of the pod at all (its last one fell in the
            // previous window): the tail alone is then the run's CPU time here.
            let mut targets = vec![by_run.resources.entry(run).or_default()];
            if let Some(ns) = ns.filter(|ns| scope.tenants.contains_key(ns)) {
                targets.push(namespaces.resources.entry(ns).or_default());
            }
            for u in targets {
                u.cpu_used_core_s += tail;
                u.source.push_str(&note);
            }
        }
    }
    for source in [kepler, dcgm, rapl] {
        let mut rolled = EnergySource {
            method: source.method,
            source: source.source,
            by_namespace: BTreeMap::new(),
        };
        for (pod, joules) in source.by_namespace {
            if let Some(run) = owner(&pod) {
                add_joules(rolled.by_namespace.entry(run).or_default(), &joules);
            }
        }
        by_run.energy.push(rolled);
    }
    for r in runs {
        by_run.tenants.insert(r.name.clone(), r.tenant.clone());
    }
    Ok((namespaces, by_run))
}

/// How well cAdvisor sampled a run's trial container: how many samples Prometheus holds
/// and when the last one was taken (unix seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Coverage {
    pub samples: usize,
    pub last: Option<f64>,
}

impl Coverage {
    /// Whether the windows measured the container's CPU time: at least two samples (so
    /// the time after the last one is extrapolated at a measured rate, see
    /// [`resources::exit_tail`]) and the last one at most [`MAX_UNSAMPLED_TAIL_S`] before
    /// `end`. One sample is not enough: the CPU time after it, up to the whole run, would
    /// be missing from a figure presented as measured.
    pub fn measures(&self, end: DateTime<Utc>) -> bool {
        let end = end.timestamp_millis() as f64 / 1000.0;
        self.samples >= 2 && self.last.is_some_and(|t| end - t <= MAX_UNSAMPLED_TAIL_S)
    }
}

/// cAdvisor's samples of `run`'s trial container between its start and `at` (a moment
/// past its end and the ledger's settle time).
pub async fn trial_coverage(
    client: &PrometheusClient,
    run: &RunSpan,
    at: DateTime<Utc>,
) -> Result<Coverage, EnergyError> {
    let range = (at - run.started).num_seconds().max(0) + TAIL_RANGE_S as i64;
    let selector = format!(
        "container_cpu_usage_seconds_total{{container=\"{TRIAL_CONTAINER}\",image!=\"\",pod=~\"{}-.+\"}}[{range}s]",
        run.name
    );
    let mut coverage = Coverage::default();
    for series in client.query_series(&selector, at).await? {
        coverage.samples += series.points.len();
        let last = series.points.iter().map(|(t, _)| *t).reduce(f64::max);
        coverage.last = match (coverage.last, last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(coverage)
}

/// A finished run's ledger rows when cAdvisor did not sample its trial container enough
/// to measure it ([`Coverage::measures`]): its
/// requests over its whole running time, one row per quantity spanning the run, every
/// figure flagged `modelled` with why. Empty for a run that never ran.
pub fn modelled_run_rows(
    run: &RunSpan,
    model: &PowerModel,
    carbon: &CarbonParams,
) -> Result<Vec<LedgerRow>, EnergyError> {
    let Some(finished) = run.finished else {
        return Ok(Vec::new());
    };
    let Ok(window) = Window::new(run.started, finished) else {
        return Ok(Vec::new());
    };
    let usage = requested_usage(run, window.seconds(), NEVER_SAMPLED);
    let inputs = AccountInputs {
        model: model.clone(),
        carbon: carbon.clone(),
        resources: BTreeMap::from([(run.name.clone(), usage)]),
        tenants: BTreeMap::from([(run.name.clone(), run.tenant.clone())]),
        ..AccountInputs::default()
    };
    let mut usages = account(window, &inputs)?;
    usages
        .iter_mut()
        .for_each(|u| flag_modelled(u, NEVER_SAMPLED));
    let mut rows = ledger::rows(&usages);
    for row in &mut rows {
        row.run = run.name.clone();
        row.namespace = run.namespace.clone();
    }
    Ok(rows)
}

fn add_usage(total: &mut ResourceUsage, u: &ResourceUsage) {
    total.cpu_requested_core_s += u.cpu_requested_core_s;
    total.cpu_used_core_s += u.cpu_used_core_s;
    total.memory_requested_gb_s += u.memory_requested_gb_s;
    total.memory_used_gb_s += u.memory_used_gb_s;
    total.gpu_s += u.gpu_s;
    total.gpu_utilisation = match (total.gpu_utilisation, u.gpu_utilisation) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if total.source.is_empty() {
        total.source = u.source.clone();
    }
}

fn add_joules(total: &mut ComponentJoules, j: &ComponentJoules) {
    let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
    total.cpu = add(total.cpu, j.cpu);
    total.dram = add(total.dram, j.dram);
    total.gpu = add(total.gpu, j.gpu);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn run(name: &str, started: i64, finished: Option<i64>) -> RunSpan {
        RunSpan {
            name: name.into(),
            namespace: "serre-lab".into(),
            tenant: "est-ensemble".into(),
            started: t(started),
            finished: finished.map(t),
            cpu_cores: 2.0,
            memory_gb: 4.0,
            gpus: 0.0,
        }
    }

    #[test]
    fn overlap_is_clipped_to_the_window() {
        let w = Window::new(t(0), t(300)).unwrap();
        assert_eq!(run("a", -100, Some(100)).overlap_s(&w), 100.0);
        assert_eq!(run("a", 50, None).overlap_s(&w), 250.0);
        assert_eq!(run("a", 400, None).overlap_s(&w), 0.0);
        assert_eq!(run("a", -400, Some(-1)).overlap_s(&w), 0.0);
    }

    /// A Prometheus answering every instant query with `vector` (the JSON of its result)
    /// and every range query (`…[120s]`) with `matrix`.
    async fn prometheus_answering(vector: &'static str, matrix: &'static str) -> PrometheusClient {
        use axum::response::IntoResponse;
        crate::install_crypto_provider();
        let answer = move |axum::extract::Query(q): axum::extract::Query<
            std::collections::HashMap<String, String>,
        >| async move {
            let range = q.get("query").is_some_and(|p| p.trim_end().ends_with(']'));
            let (kind, result) = if range {
                ("matrix", matrix)
            } else {
                ("vector", vector)
            };
            (
                [("content-type", "application/json")],
                format!(
                    r#"{{"status":"success","data":{{"resultType":"{kind}","result":{result}}}}}"#
                ),
            )
                .into_response()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            async move { axum::serve(listener, axum::Router::new().fallback(answer)).await },
        );
        PrometheusClient::new(&format!("http://{addr}"), std::time::Duration::from_secs(5)).unwrap()
    }

    fn lab_scope(runs: Vec<RunSpan>) -> Scope {
        Scope {
            tenants: BTreeMap::from([("serre-lab".to_string(), "est-ensemble".to_string())]),
            runs,
            storage_bytes: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_window_without_a_sample_of_a_run_records_no_figure_for_it() {
        // cAdvisor's counter is cumulative: the next sample counts this window's CPU time,
        // so a figure here (measured 0 or requests) would be wrong or counted twice.
        let w = Window::new(t(0), t(30)).unwrap();
        let scope = lab_scope(vec![run("run-0123456789ab", 10, None)]);
        let source = Source::Prometheus(prometheus_answering("[]", "[]").await);
        let rows = window_rows(
            &source,
            w,
            &scope,
            &PowerModel::default(),
            &CarbonParams::default(),
        )
        .await
        .unwrap();
        let run_cpu: Vec<_> = rows
            .iter()
            .filter(|r| !r.run.is_empty() && r.quantity.starts_with("cpu_"))
            .collect();
        assert!(run_cpu.is_empty(), "{run_cpu:?}");
    }

    #[tokio::test]
    async fn a_run_never_sampled_gets_its_requests_over_its_life_flagged_modelled() {
        // A 3 s run: cAdvisor (10 s housekeeping) never saw its trial container.
        let r = run("run-0123456789ab", 10, Some(13));
        let empty = prometheus_answering("[]", "[]").await;
        let coverage = trial_coverage(&empty, &r, t(60)).await.unwrap();
        assert_eq!(coverage, Coverage::default());
        assert!(!coverage.measures(t(13)));
        let rows = modelled_run_rows(&r, &PowerModel::default(), &CarbonParams::default()).unwrap();
        let cpu = rows
            .iter()
            .find(|r| r.quantity == "cpu_used")
            .expect("the run's CPU");
        // 2 cores requested × 3 s, not a measured 0 nor the init step's CPU time.
        assert_eq!(cpu.value, 6.0);
        assert_eq!((cpu.window_start, cpu.window_end), (t(10), t(13)));
        assert!(cpu.source.contains("fewer than twice"), "{}", cpu.source);
        assert!(
            rows.iter().all(|x| x.method == "modelled"
                && x.run == "run-0123456789ab"
                && x.namespace == "serre-lab"
                && x.tenant == "est-ensemble"),
            "{rows:?}"
        );
        let energy = rows
            .iter()
            .find(|r| r.quantity == "meter_energy")
            .expect("energy");
        assert!(energy.value > 0.0);
        // A run that never ran has no rows.
        let never = run("run-0123456789ab", 10, Some(10));
        let none = modelled_run_rows(&never, &PowerModel::default(), &CarbonParams::default());
        assert!(none.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_run_is_measured_only_with_two_samples_the_last_near_its_end() {
        // A 30 s run (t = 10 … 40 s); samples at t = 12 s and t = 25 s, in two pods' series.
        let r = run("run-0123456789ab", 10, Some(40));
        let t0 = t(0).timestamp();
        let matrix: &'static str = Box::leak(
            format!(
                r#"[{{"metric":{{"pod":"run-0123456789ab-x7k2p","container":"trial"}},"values":[[{},"0.01"]]}},
                    {{"metric":{{"pod":"run-0123456789ab-q9z8w","container":"trial"}},"values":[[{},"13.0"]]}}]"#,
                t0 + 12,
                t0 + 25
            )
            .into_boxed_str(),
        );
        let two = prometheus_answering("[]", matrix).await;
        let coverage = trial_coverage(&two, &r, t(60)).await.unwrap();
        assert_eq!(coverage.samples, 2);
        assert_eq!(coverage.last, Some((t0 + 25) as f64));
        // 15 s from the last sample to the end: the tail is extrapolated, the run measured.
        assert!(coverage.measures(t(40)));
        // 31 s: too long a guess.
        assert!(!coverage.measures(t(56)));
        // One sample (the CI failure of 2026-12-07: 0.029 core-s "measured" for a 20 core-s
        // burn, the only sample taken as the container started): not measured.
        let one = Coverage {
            samples: 1,
            last: Some((t0 + 12) as f64),
        };
        assert!(!one.measures(t(20)));
    }

    #[tokio::test]
    async fn declared_figures_are_flagged_modelled_and_sum_up() {
        let w = Window::new(t(0), t(300)).unwrap();
        let scope = Scope {
            tenants: BTreeMap::from([("serre-lab".to_string(), "est-ensemble".to_string())]),
            runs: vec![run("run-a", 0, Some(100)), run("run-b", 200, None)],
            storage_bytes: BTreeMap::from([
                ("serre-lab".to_string(), 36_000_000_000),
                ("serre-unknown".to_string(), 1),
            ]),
        };
        let rows = window_rows(
            &Source::Declared,
            w,
            &scope,
            &PowerModel::default(),
            &CarbonParams::default(),
        )
        .await
        .unwrap();
        // 36 GB held for 300 s = 3 GB-hours, from the store, not modelled; a namespace
        // that is not Serre's is not recorded.
        let storage: Vec<_> = rows
            .iter()
            .filter(|r| r.quantity == "storage_used")
            .collect();
        assert_eq!(storage.len(), 1);
        assert!((storage[0].value - 3.0).abs() < 1e-12);
        assert_eq!(storage[0].method, "store_admin_api");
        assert!(
            rows.iter()
                .filter(|r| r.quantity != "storage_used")
                .all(|r| r.method == "modelled"),
            "{rows:?}"
        );
        let value = |run: &str, q: &str| {
            rows.iter()
                .find(|r| r.run == run && r.quantity == q)
                .map(|r| r.value)
                .unwrap()
        };
        assert_eq!(value("run-a", "cpu_requested"), 200.0);
        assert_eq!(value("run-b", "cpu_requested"), 200.0);
        assert_eq!(value("", "cpu_requested"), 400.0);
        assert_eq!(value("", "memory_requested"), 800.0);
        let ns_kwh = value("", "meter_energy");
        assert!(
            (ns_kwh - value("run-a", "meter_energy") - value("run-b", "meter_energy")).abs()
                < 1e-12
        );
        // Model: 2 cores × 100 s × 6.25 W (fully used) + 4 GB × 100 s × 0.392 W.
        assert!((value("run-a", "it_energy") - (1250.0 + 156.8)).abs() < 1e-9);
        let src = &rows
            .iter()
            .find(|r| r.quantity == "cpu_used")
            .unwrap()
            .source;
        assert!(src.contains("no metrics source configured"), "{src}");
        assert!(
            rows.iter()
                .all(|r| r.namespace == "serre-lab" && r.tenant == "est-ensemble")
        );
    }
}
