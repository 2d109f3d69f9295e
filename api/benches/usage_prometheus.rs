//! The gateway's accounting window against a real Prometheus holding 10,000 pods' series
//! (issue 15 §3), Prometheus's own query time included:
//!
//!     cargo bench -p serre-api --bench usage_prometheus
//!
//! The series a cluster's Prometheus holds for 10,000 pods in 1,000 sandbox namespaces
//! (cAdvisor's CPU time and working set, kube-state-metrics' requests and `kube_pod_info`,
//! Kepler's package and DRAM joules: 7 series per pod, 70,000 in all) are written as
//! OpenMetrics, 65 minutes of them at a 30 s scrape interval (the CPU counters' difference
//! looks up to an hour back), and loaded into a fresh TSDB with `promtool tsdb
//! create-blocks-from openmetrics`; Debian's `prometheus` then serves that TSDB on
//! loopback. The production code `usage::collect::window_rows` runs the last 5-minute
//! window against it, five times (the first one cold: Prometheus has just started), 100
//! of the pods being active trial runs. Reported: wall time per window (Serre and
//! Prometheus together), Prometheus's CPU time per window (from /proc), the gateway side's
//! peak RSS (this process, VmHWM) and Prometheus's RSS. Needs `prometheus` and `promtool`
//! (Debian `prometheus`, which deploy/dev/test.sh installs); fails without them. Also
//! printed: Prometheus's own evaluation time of each query (its query log). With
//! `SERRE_BENCH_QUERY_COST=1`, deploy/dev/prometheus_query_cost.py then measures the CPU
//! time of each query shape (and of variants) on the same Prometheus.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serre_api::energy::{CarbonParams, PowerModel, PrometheusClient, Window, ledger};
use serre_api::usage::collect::{RunSpan, Scope, Source, window_rows};

const PODS: usize = 10_000;
const PODS_PER_NAMESPACE: usize = 10;
const RUNS: usize = 100;
const NODES: usize = 200;
/// Scrape interval and history of the generated series.
const STEP_S: i64 = 30;
const HISTORY_S: i64 = 65 * 60;

fn pod(p: usize) -> String {
    if p.is_multiple_of(PODS / RUNS) {
        format!("run-{p:012x}-x7k2p")
    } else {
        format!("job-{p}-7d9f8")
    }
}

fn ns(p: usize) -> String {
    format!("sbx-{:04}", p / PODS_PER_NAMESPACE)
}

/// One metric family: its OpenMetrics name and type, and each pod's labels and value at
/// step `k` (counters grow, gauges hold).
struct Family {
    name: &'static str,
    kind: &'static str,
    sample: &'static str,
    labels: fn(usize) -> String,
    value: fn(usize, i64) -> f64,
}

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "container_cpu_usage_seconds",
            kind: "counter",
            sample: "container_cpu_usage_seconds_total",
            labels: |p| {
                format!(
                    r#"container="main",image="registry.local/job:1",instance="node-{}",namespace="{}",pod="{}""#,
                    p % NODES,
                    ns(p),
                    pod(p)
                )
            },
            value: |p, k| (k as f64) * STEP_S as f64 * (0.2 + (p % 7) as f64 * 0.1),
        },
        Family {
            name: "container_memory_working_set_bytes",
            kind: "gauge",
            sample: "container_memory_working_set_bytes",
            labels: |p| {
                format!(
                    r#"container="main",image="registry.local/job:1",instance="node-{}",namespace="{}",pod="{}""#,
                    p % NODES,
                    ns(p),
                    pod(p)
                )
            },
            value: |p, _| 2.5e8 + (p % 13) as f64 * 1e7,
        },
        Family {
            name: "kube_pod_container_resource_requests",
            kind: "gauge",
            sample: "kube_pod_container_resource_requests",
            labels: |p| {
                format!(
                    r#"container="main",namespace="{}",pod="{}",resource="cpu",unit="core""#,
                    ns(p),
                    pod(p)
                )
            },
            value: |_, _| 1.0,
        },
        Family {
            name: "kube_pod_container_resource_requests",
            kind: "gauge",
            sample: "kube_pod_container_resource_requests",
            labels: |p| {
                format!(
                    r#"container="main",namespace="{}",pod="{}",resource="memory",unit="byte""#,
                    ns(p),
                    pod(p)
                )
            },
            value: |_, _| 1073741824.0,
        },
        Family {
            name: "kube_pod_info",
            kind: "gauge",
            sample: "kube_pod_info",
            labels: |p| {
                format!(
                    r#"namespace="{}",node="node-{}",pod="{}""#,
                    ns(p),
                    p % NODES,
                    pod(p)
                )
            },
            value: |_, _| 1.0,
        },
        Family {
            name: "kepler_pod_cpu_joules",
            kind: "counter",
            sample: "kepler_pod_cpu_joules_total",
            labels: |p| {
                format!(
                    r#"node_name="node-{}",pod_name="{}",pod_namespace="{}",zone="package""#,
                    p % NODES,
                    pod(p),
                    ns(p)
                )
            },
            value: |p, k| (k as f64) * STEP_S as f64 * (3.0 + (p % 5) as f64),
        },
        Family {
            name: "kepler_pod_cpu_joules",
            kind: "counter",
            sample: "kepler_pod_cpu_joules_total",
            labels: |p| {
                format!(
                    r#"node_name="node-{}",pod_name="{}",pod_namespace="{}",zone="dram""#,
                    p % NODES,
                    pod(p),
                    ns(p)
                )
            },
            value: |p, k| (k as f64) * STEP_S as f64 * (0.4 + (p % 3) as f64 * 0.1),
        },
    ]
}

/// Write the OpenMetrics file: each family's TYPE once, each series' samples in order.
fn write_openmetrics(path: &Path, end: i64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let steps = HISTORY_S / STEP_S;
    let mut samples = 0u64;
    let mut typed = Vec::new();
    let mut line = String::new();
    for f in families() {
        if !typed.contains(&f.name) {
            writeln!(out, "# TYPE {} {}", f.name, f.kind)?;
            typed.push(f.name);
        }
        for p in 0..PODS {
            let labels = (f.labels)(p);
            for k in 0..=steps {
                line.clear();
                let t = end - HISTORY_S + k * STEP_S;
                let _ = writeln!(line, "{}{{{labels}}} {} {t}", f.sample, (f.value)(p, k));
                out.write_all(line.as_bytes())?;
                samples += 1;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok(samples)
}

fn proc_stat_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 14th field.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kb(pid: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: install Debian's prometheus package (deploy/dev/test.sh does)"
    );
}

fn main() {
    need("prometheus");
    need("promtool");
    serre_api::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temporary directory");
    // The series end a few minutes ago (inside Prometheus's retention and head window).
    let end = (Utc::now().timestamp() - 300) / STEP_S * STEP_S;
    let om = dir.path().join("series.om");
    let started = Instant::now();
    let samples = write_openmetrics(&om, end).expect("write OpenMetrics");
    let om_mb = std::fs::metadata(&om).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "generated {} series, {samples} samples ({om_mb:.0} MB of OpenMetrics) in {:.1} s",
        families().len() * PODS,
        started.elapsed().as_secs_f64()
    );
    let tsdb = dir.path().join("tsdb");
    let started = Instant::now();
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .stdout(Stdio::null())
        .status()
        .expect("run promtool");
    assert!(status.success(), "promtool could not create the blocks");
    std::fs::remove_file(&om).expect("remove the OpenMetrics file");
    println!(
        "promtool: blocks in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("prometheus.yml");
    // The query log gives each query's own evaluation time (Prometheus's share, by query).
    let query_log = dir.path().join("queries.log");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1h\n  query_log_file: {}\nscrape_configs: []\n",
            query_log.display()
        ),
    )
    .expect("write prometheus.yml");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prom = Prometheus(child);
    let pid = prom.0.id();
    let url = format!("http://127.0.0.1:{port}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = http
                .get(format!("{url}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 120 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let window = Window::new(
            Utc.timestamp_opt(end - 300, 0).unwrap(),
            Utc.timestamp_opt(end, 0).unwrap(),
        )
        .expect("window");
        let tenants: BTreeMap<String, String> = (0..PODS / PODS_PER_NAMESPACE)
            .map(|n| (format!("sbx-{n:04}"), format!("tenant-{}", n % 30)))
            .collect();
        let runs = (0..PODS)
            .step_by(PODS / RUNS)
            .map(|p| RunSpan {
                name: format!("run-{p:012x}"),
                namespace: ns(p),
                tenant: tenants[&ns(p)].clone(),
                started: window.start - chrono::Duration::minutes(30),
                finished: None,
                cpu_cores: 1.0,
                memory_gb: 1.0,
                gpus: 0.0,
            })
            .collect();
        let scope = Scope {
            tenants,
            runs,
            storage_bytes: BTreeMap::new(),
        };
        let source = Source::Prometheus(
            PrometheusClient::new(&url, Duration::from_secs(60)).expect("client"),
        );
        let (model, carbon) = (PowerModel::default(), CarbonParams::default());
        let mut lines = Vec::new();
        let (mut rows_out, mut run_rows) = (0, 0);
        for i in 0..5 {
            let prom_cpu = proc_stat_cpu_s(pid);
            let own_cpu = proc_stat_cpu_s(std::process::id());
            let start = Instant::now();
            let rows = window_rows(&source, window, &scope, &model, &carbon)
                .await
                .expect("the window's rows");
            let mut parquet = Vec::new();
            ledger::write_parquet(&rows, &mut parquet).expect("Parquet");
            let wall = start.elapsed().as_secs_f64();
            let prom = proc_stat_cpu_s(pid) - prom_cpu;
            let own = proc_stat_cpu_s(std::process::id()) - own_cpu;
            rows_out = rows.len();
            run_rows = rows.iter().filter(|r| !r.run.is_empty()).count();
            // Run 0's pod used 0.2 core × 300 s of CPU time in the window: the figures
            // are checked, not only timed.
            let used = rows
                .iter()
                .find(|r| r.run == "run-000000000000" && r.quantity == "cpu_used")
                .expect("run-000000000000 has its CPU time");
            assert_eq!(used.unit, "core_s");
            assert!(
                (used.value - 60.0).abs() < 1.0,
                "run-000000000000's CPU time: {} {}, expected 60 core-s",
                used.value,
                used.unit
            );
            lines.push((i, wall, prom, own));
        }
        println!(
            "accounting window over {PODS} pods ({} namespaces, {RUNS} active runs) against Prometheus {url} ({rows_out} ledger rows, {run_rows} for runs):",
            PODS / PODS_PER_NAMESPACE
        );
        for (i, wall, prom, own) in &lines {
            println!(
                "  window {}{}: {:.0} ms wall (Serre + Prometheus); CPU: Prometheus {:.0} ms, Serre {:.0} ms",
                i + 1,
                if *i == 0 { " (cold)" } else { "" },
                wall * 1e3,
                prom * 1e3,
                own * 1e3
            );
        }
        let mut warm: Vec<f64> = lines.iter().skip(1).map(|l| l.1).collect();
        warm.sort_by(f64::total_cmp);
        println!(
            "  median of the warm windows: {:.0} ms (target < 1 s)",
            warm[warm.len() / 2] * 1e3
        );
        println!(
            "  peak RSS: Serre side (this process) {:.1} MB (target < 100 MB); Prometheus {:.0} MB (VmHWM)",
            status_kb("self", "VmHWM:") as f64 / 1024.0,
            status_kb(&pid.to_string(), "VmHWM:") as f64 / 1024.0
        );
        print_query_times(&query_log, lines.len());
        // SERRE_BENCH_QUERY_COST=1: the CPU cost of each query shape, and of variants,
        // on this same Prometheus (deploy/dev/prometheus_query_cost.py).
        if std::env::var_os("SERRE_BENCH_QUERY_COST").is_some() {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/prometheus_query_cost.py");
            let ok = Command::new("python3")
                .arg(script)
                .arg(&url)
                .arg(pid.to_string())
                .arg(end.to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "prometheus_query_cost.py failed");
        }
    });
}

/// Prometheus's own time by query, from its query log (`execTotalTime` of each query,
/// summed over the warm windows and divided by their number; the window's queries partly
/// run at the same time, so the sum may exceed the window's wall time).
fn print_query_times(log: &Path, windows: usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let entries: Vec<(String, f64, u64)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["params"]["query"].as_str()?.to_owned(),
                v["stats"]["timings"]["execTotalTime"].as_f64()?,
                v["stats"]["samples"]["totalQueryableSamples"]
                    .as_u64()
                    .unwrap_or(0),
            ))
        })
        .collect();
    assert!(
        !entries.is_empty(),
        "Prometheus wrote no query log at {}",
        log.display()
    );
    // The first window's queries are the cold ones: skip them.
    let per_window = entries.len() / windows.max(1);
    let mut by_query: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for (q, t, samples) in entries.iter().skip(per_window) {
        let e = by_query.entry(q.clone()).or_default();
        e.0 += t;
        e.1 = *samples;
    }
    let warm = (windows.max(2) - 1) as f64;
    let mut rows: Vec<(f64, u64, String)> = by_query
        .into_iter()
        .map(|(q, (t, s))| (t / warm, s, q))
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = rows.iter().map(|r| r.0).sum();
    println!(
        "  Prometheus's evaluation time per warm window: {:.0} ms summed over its {per_window} queries; by query:",
        total * 1e3
    );
    for (t, samples, q) in &rows {
        let short: String = q.chars().take(150).collect();
        println!("    {:>6.1} ms  {samples:>8} samples  {short}", t * 1e3);
    }
}
