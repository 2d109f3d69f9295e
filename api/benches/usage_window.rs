//! The gateway's whole accounting of one ledger window (release build):
//!
//!     cargo bench -p serre-api --bench usage_window
//!
//! What runs is the production code, `usage::collect::window_rows` with a Prometheus
//! source: the fourteen queries summed by namespace, then the same by pod for the runs, over
//! HTTP, decoded, aggregated, rolled up to 100 active trial runs, accounted, and the ledger
//! rows written as Parquet. The answers come from an in-process HTTP endpoint serving
//! pre-generated per-pod answers for 10,000 pods in 1,000 namespaces (the heaviest form:
//! not summed by Prometheus; the run pass's selector `pod=~"run-…"` is honoured, as
//! Prometheus would), so Prometheus' own query time is not in the figure (it is tested
//! against a real Prometheus in tests/energy.rs). Reports the time per window and the peak
//! resident memory (VmHWM).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{TimeZone, Utc};
use common::response;
use serre_api::energy::{CarbonParams, PowerModel, PrometheusClient, Window, ledger};
use serre_api::usage::collect::{RUN_POD_PATTERN, RunSpan, Scope, Source, window_rows};

const PODS: usize = 10_000;
const PODS_PER_NAMESPACE: usize = 10;
const RUNS: usize = 100;
const NODES: usize = 200;

/// Pod `p`: every 100th pod belongs to a trial run's Job.
fn pod(p: usize) -> String {
    if p.is_multiple_of(PODS / RUNS) {
        format!("run-{:012x}-x7k2p", p)
    } else {
        format!("job-{p}-7d9f8")
    }
}

fn ns(p: usize) -> String {
    format!("sbx-{:04}", p / PODS_PER_NAMESPACE)
}

/// Pod indices answered: all, or (a selector `pod=~"run-…"`) the runs' pods only.
fn pods(runs_only: bool) -> impl Iterator<Item = usize> {
    (0..PODS).filter(move |p| !runs_only || p.is_multiple_of(PODS / RUNS))
}

fn kepler(zone: Option<&str>, value: f64, runs_only: bool) -> Vec<u8> {
    response(pods(runs_only).map(|p| {
        let zone = zone.map(|z| format!(r#","zone":"{z}""#)).unwrap_or_default();
        (
            format!(
                r#""instance":"10.0.{}.{}:28282","job":"kepler","node_name":"node-{}","pod_name":"{}","pod_namespace":"{}","state":"running"{zone}"#,
                p % 200,
                p % 250,
                p % 200,
                pod(p),
                ns(p)
            ),
            value + p as f64 % 97.0,
        )
    }))
}

fn kubelet(value: f64, every: usize, runs_only: bool) -> Vec<u8> {
    response(pods(runs_only).filter(move |p| p % every == 0).map(|p| {
        (
            format!(
                r#""container":"main","image":"registry.local/job:1","instance":"node-{}","namespace":"{}","pod":"{}""#,
                p % 200,
                ns(p),
                pod(p)
            ),
            value,
        )
    }))
}

/// The node agent's totals: one series per node.
fn nodes(value: f64) -> Vec<u8> {
    response((0..NODES).map(|n| (format!(r#""node":"node-{n}""#), value)))
}

/// cAdvisor's CPU time joined to the pods' nodes, by node and pod (the heaviest form).
fn rapl_cpu(runs_only: bool) -> Vec<u8> {
    response(pods(runs_only).map(|p| {
        (
            format!(
                r#""namespace":"{}","node":"node-{}","pod":"{}""#,
                ns(p),
                p % NODES,
                pod(p)
            ),
            240.0,
        )
    }))
}

/// The pre-generated answers for each query, chosen by what it asks for: every pod, or
/// only the runs' pods when the selector names them (as Prometheus would filter).
struct Answers(Vec<(&'static str, Vec<u8>, Vec<u8>)>);

type Render = fn(bool) -> Vec<u8>;

impl Answers {
    fn new() -> Self {
        let table: [(&'static str, Render); 13] = [
            // The RAPL attribution's join (it also names cAdvisor's counter: first).
            ("kube_pod_info", rapl_cpu),
            ("serre_node_rapl_joules_total", |_| nodes(4000.0)),
            ("serre_node_cpu_busy_seconds_total", |_| nodes(2400.0)),
            (r#"zone="package""#, |r| kepler(Some("package"), 1500.0, r)),
            (r#"zone="dram""#, |r| kepler(Some("dram"), 120.0, r)),
            ("kepler_pod_gpu_joules_total", |r| kepler(None, 9000.0, r)),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", |r| {
                kubelet(85_000_000.0, 10, r)
            }),
            ("DCGM_FI_DEV_GPU_UTIL", |r| kubelet(0.6, 10, r)),
            ("container_cpu_usage_seconds_total", |r| {
                kubelet(240.0, 1, r)
            }),
            (r#"resource="cpu""#, |r| kubelet(300.0, 1, r)),
            ("container_memory_working_set_bytes", |r| {
                kubelet(600.0, 1, r)
            }),
            (r#"resource="memory""#, |r| kubelet(1200.0, 1, r)),
            ("nvidia_com_gpu", |r| kubelet(300.0, 10, r)),
        ];
        Self(
            table
                .into_iter()
                .map(|(needle, render)| (needle, render(false), render(true)))
                .collect(),
        )
    }

    fn bytes(&self) -> usize {
        self.0.iter().map(|(_, all, _)| all.len()).sum()
    }
}

async fn query(
    State(answers): State<Arc<Answers>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Vec<u8> {
    let promql = q.get("query").map(String::as_str).unwrap_or_default();
    let runs_only = promql.contains(RUN_POD_PATTERN);
    answers
        .0
        .iter()
        .find(|(needle, _, _)| promql.contains(needle))
        .map(|(_, all, runs)| if runs_only { runs.clone() } else { all.clone() })
        .unwrap_or_else(|| response(std::iter::empty()))
}

fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    serre_api::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let answers = Arc::new(Answers::new());
        let input_mb = answers.bytes() as f64 / 1e6;
        let app = Router::new()
            .route("/api/v1/query", get(query))
            .with_state(answers);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let window = Window::new(
            Utc.timestamp_opt(1_772_445_600, 0).unwrap(),
            Utc.timestamp_opt(1_772_445_900, 0).unwrap(),
        )
        .unwrap();
        let tenants: BTreeMap<String, String> = (0..PODS / PODS_PER_NAMESPACE)
            .map(|n| (format!("sbx-{n:04}"), format!("tenant-{}", n % 30)))
            .collect();
        let runs = (0..PODS)
            .step_by(PODS / RUNS)
            .map(|p| RunSpan {
                name: format!("run-{:012x}", p),
                namespace: ns(p),
                tenant: tenants[&ns(p)].clone(),
                started: window.start - chrono::Duration::minutes(30),
                finished: None,
                cpu_cores: 1.0,
                memory_gb: 4.0,
                gpus: 0.0,
            })
            .collect();
        let scope = Scope {
            tenants,
            runs,
            storage_bytes: BTreeMap::new(),
        };
        let source = Source::Prometheus(PrometheusClient::new(&url, Duration::from_secs(30)).unwrap());
        let (model, carbon) = (PowerModel::default(), CarbonParams::default());
        let hwm_before = vm_hwm_kb();

        let mut times = Vec::new();
        let (mut rows_out, mut run_rows, mut parquet_bytes) = (0, 0, 0);
        for _ in 0..5 {
            let start = Instant::now();
            let rows = window_rows(&source, window, &scope, &model, &carbon)
                .await
                .unwrap();
            let mut parquet = Vec::new();
            ledger::write_parquet(&rows, &mut parquet).unwrap();
            times.push(start.elapsed().as_secs_f64());
            rows_out = rows.len();
            run_rows = rows.iter().filter(|r| !r.run.is_empty()).count();
            parquet_bytes = parquet.len();
            assert!(
                rows.iter()
                    .any(|r| r.run == "run-000000000000" && r.quantity == "cpu_energy" && r.method == "kepler"),
                "the runs have their own measured figures"
            );
        }
        times.sort_by(f64::total_cmp);
        let hwm = vm_hwm_kb();
        println!(
            "gateway ledger window, {PODS} pods in {} namespaces, {RUNS} active runs ({input_mb:.1} MB of answers per pass, 2 passes over HTTP; {rows_out} ledger rows of which {run_rows} for runs, {:.0} kB Parquet):",
            PODS / PODS_PER_NAMESPACE,
            parquet_bytes as f64 / 1e3
        );
        println!(
            "  time per window: min {:.1} ms, median {:.1} ms, max {:.1} ms (5 windows; target < 1 s)",
            times[0] * 1e3,
            times[2] * 1e3,
            times[4] * 1e3
        );
        println!(
            "  peak RSS (VmHWM): {:.1} MB (answers generated: {:.1} MB; target < 100 MB)",
            hwm as f64 / 1024.0,
            hwm_before as f64 / 1024.0
        );
    });
}
