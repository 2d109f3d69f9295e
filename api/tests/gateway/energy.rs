//! Energy accounting against a real Prometheus (Debian's package, started by
//! `deploy/dev/prometheus.sh`) scraping an exporter served by this test in Kepler's and
//! DCGM's exposition formats, and Serre's node agent reading a powercap directory that
//! the test advances. If Prometheus cannot be installed the test fails, saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use chrono::Utc;
use serre_api::energy::dcgm::{self, DcgmSchema};
use serre_api::energy::kepler::{self, KeplerSchema};
use serre_api::energy::resources::{self, ResourceQueries};
use serre_api::energy::{
    AccountInputs, CarbonParams, LedgerRow, Method, PowerModel, PrometheusClient, Quantity, Window,
    account, ledger,
};
use serre_api::usage::collect::{RunSpan, Scope, Source, window_rows};

/// Power of each series, W (joules per second); counters are power × seconds elapsed.
struct Exporter {
    started: Instant,
}

const ALPHA: &str = "sbx-alpha";
const BETA: &str = "sbx-beta";

// (namespace, pod, zone, watts). package contains core and uncore: a sum of all the
// zones would count them twice.
const KEPLER_CPU: &[(&str, &str, &str, f64)] = &[
    (ALPHA, "run-0123456789ab-x7k2p", "package", 12.0),
    (ALPHA, "run-0123456789ab-x7k2p", "core", 9.0),
    (ALPHA, "run-0123456789ab-x7k2p", "uncore", 2.0),
    (ALPHA, "run-0123456789ab-x7k2p", "dram", 3.0),
    (ALPHA, "notebook-0", "package", 8.0),
    (ALPHA, "notebook-0", "core", 6.0),
    (ALPHA, "notebook-0", "uncore", 1.0),
    (ALPHA, "notebook-0", "dram", 1.0),
    (BETA, "etl-0", "package", 10.0),
    (BETA, "etl-0", "core", 7.0),
    (BETA, "etl-0", "uncore", 2.0),
    (BETA, "etl-0", "dram", 2.0),
];
/// Kepler's GPU figure for the trainer (NVML), and DCGM's counter for the same GPU.
const KEPLER_GPU_W: f64 = 100.0;
const DCGM_GPU_W: f64 = 90.0;
/// CPU cores used (cAdvisor).
const CPU_CORES: &[(&str, &str, f64)] =
    &[(ALPHA, "run-0123456789ab-x7k2p", 2.0), (BETA, "etl-0", 0.5)];

impl Exporter {
    fn render(&self) -> String {
        let t = self.started.elapsed().as_secs_f64() + 1000.0;
        let mut out = String::new();
        out.push_str(
            "# HELP kepler_pod_cpu_joules_total Energy consumption of cpu at pod level in joules\n",
        );
        out.push_str("# TYPE kepler_pod_cpu_joules_total counter\n");
        for (ns, pod, zone, w) in KEPLER_CPU {
            let path = match *zone {
                "package" => "/sys/class/powercap/intel-rapl:0",
                "core" => "/sys/class/powercap/intel-rapl:0:0",
                "uncore" => "/sys/class/powercap/intel-rapl:0:1",
                _ => "/sys/class/powercap/intel-rapl:0:2",
            };
            out.push_str(&format!(
                "kepler_pod_cpu_joules_total{{node_name=\"node-1\",path=\"{path}\",pod_id=\"{pod}-uid\",pod_name=\"{pod}\",pod_namespace=\"{ns}\",state=\"running\",zone=\"{zone}\"}} {}\n",
                w * t
            ));
        }
        out.push_str(
            "# HELP kepler_pod_gpu_joules_total Energy consumption of gpu at pod level in joules\n",
        );
        out.push_str("# TYPE kepler_pod_gpu_joules_total counter\n");
        out.push_str(&format!(
            "kepler_pod_gpu_joules_total{{gpu=\"0\",node_name=\"node-1\",pod_id=\"run-0123456789ab-x7k2p-uid\",pod_name=\"run-0123456789ab-x7k2p\",pod_namespace=\"{ALPHA}\",state=\"running\"}} {}\n",
            KEPLER_GPU_W * t
        ));
        out.push_str("# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).\n");
        out.push_str("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n");
        out.push_str(&format!(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{gpu=\"0\",UUID=\"GPU-5e1f0c2a-8d3b-4c1e-9f7a-2b6d4e8c1a3f\",pci_bus_id=\"00000000:17:00.0\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"node-1\",DCGM_FI_DRIVER_VERSION=\"550.54.15\",container=\"trainer\",namespace=\"{ALPHA}\",pod=\"run-0123456789ab-x7k2p\"}} {}\n",
            (DCGM_GPU_W * t * 1000.0).round()
        ));
        // An idle GPU not mapped to any pod: never attributed.
        out.push_str(&format!(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{gpu=\"1\",UUID=\"GPU-0a1b\",pci_bus_id=\"00000000:18:00.0\",device=\"nvidia1\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"node-1\",DCGM_FI_DRIVER_VERSION=\"550.54.15\",container=\"\",namespace=\"\",pod=\"\"}} {}\n",
            (60.0 * t * 1000.0).round()
        ));
        out.push_str(
            "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n",
        );
        out.push_str("# TYPE container_cpu_usage_seconds_total counter\n");
        for (ns, pod, cores) in CPU_CORES {
            out.push_str(&format!(
                "container_cpu_usage_seconds_total{{container=\"main\",cpu=\"total\",image=\"registry.local/{pod}:1\",namespace=\"{ns}\",pod=\"{pod}\"}} {}\n",
                cores * t
            ));
        }
        out
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/prometheus.sh")
}

struct Prometheus {
    dir: PathBuf,
    url: String,
}

/// The tests of this file run one at a time: each starts its own Prometheus, and two
/// starting together could both pick the same free port.
static ONE_PROMETHEUS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("energy-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new(script())
            .args(["start", dir.to_str().unwrap(), target])
            .env(
                "SERRE_PROMETHEUS_PARENT_PID",
                std::process::id().to_string(),
            )
            .status()
            .expect("run deploy/dev/prometheus.sh");
        assert!(
            status.success(),
            "deploy/dev/prometheus.sh could not start Prometheus (is Debian's `prometheus` package \
             installable with apt-get here?); this test needs a real Prometheus and does not skip"
        );
        let port = std::fs::read_to_string(dir.join("port")).unwrap();
        Self {
            url: format!("http://127.0.0.1:{}", port.trim()),
            dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wait (a minute at most) until Prometheus holds 12 samples of each series.
async fn scraped_12_times(client: &PrometheusClient, series: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for selector in series {
        loop {
            let samples = client
                .query(&format!("count_over_time({selector}[1m])"), Utc::now())
                .await
                .unwrap();
            if samples.first().is_some_and(|s| s.value >= 12.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus took more than a minute to scrape 12 samples of {selector}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The value and method of one ledger row of the window (run "" = namespace total).
fn row_value(rows: &[LedgerRow], run: &str, ns: &str, q: &str) -> (f64, String) {
    let r = rows
        .iter()
        .find(|r| r.run == run && r.namespace == ns && r.quantity == q)
        .unwrap_or_else(|| panic!("no {q} row for run {run:?} in {ns}: {rows:?}"));
    (r.value, r.method.clone())
}

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 0.08 * expected.abs();
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within 8 % of {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_kepler_and_dcgm_through_a_real_prometheus() {
    let _one = ONE_PROMETHEUS.lock().await;
    serre_api::install_crypto_provider();
    let exporter = Arc::new(Exporter {
        started: Instant::now(),
    });
    let app = Router::new().route(
        "/metrics",
        get({
            let exporter = exporter.clone();
            move || async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    exporter.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let prometheus = tokio::task::spawn_blocking(move || Prometheus::start(&target))
        .await
        .unwrap();
    let client = PrometheusClient::new(&prometheus.url, Duration::from_secs(5)).unwrap();

    scraped_12_times(
        &client,
        &[r#"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"}"#],
    )
    .await;

    let end = Utc::now() - chrono::Duration::seconds(1);
    let window = Window::new(end - chrono::Duration::seconds(10), end).unwrap();
    let seconds = window.seconds();
    let kepler = kepler::collect(&client, &window, &KeplerSchema::default())
        .await
        .unwrap();
    let dcgm = dcgm::collect(&client, &window, &DcgmSchema::default())
        .await
        .unwrap();
    let resources = resources::collect(&client, &window, &ResourceQueries::default())
        .await
        .unwrap();
    let inputs = AccountInputs {
        resources,
        energy: vec![kepler, dcgm],
        tenants: BTreeMap::from([(ALPHA.to_string(), "tenant-a".to_string())]),
        ..AccountInputs::default()
    };
    let out = account(window, &inputs).unwrap();
    let names: Vec<&str> = out.iter().map(|u| u.namespace.as_str()).collect();
    assert_eq!(
        names,
        [ALPHA, BETA],
        "the idle GPU (no namespace) is not a namespace"
    );
    let (alpha, beta) = (&out[0], &out[1]);
    assert_eq!(alpha.tenant.as_deref(), Some("tenant-a"));

    // CPU: package only (12 + 8 W), not package + core + uncore.
    let cpu = alpha.figure(Quantity::CpuEnergy).unwrap();
    assert_eq!(cpu.method, Method::Kepler);
    close(cpu.value, 20.0 * seconds, "alpha CPU package joules");
    let dram = alpha.figure(Quantity::DramEnergy).unwrap();
    assert_eq!(dram.method, Method::Kepler);
    close(dram.value, 4.0 * seconds, "alpha DRAM joules");
    // GPU: DCGM's 90 W, not Kepler's 100 W, and not both.
    let gpu = alpha.figure(Quantity::GpuEnergy).unwrap();
    assert_eq!(gpu.method, Method::Dcgm);
    close(gpu.value, DCGM_GPU_W * seconds, "alpha GPU joules");
    let it = alpha.value(Quantity::ItEnergy);
    close(it, (20.0 + 4.0 + DCGM_GPU_W) * seconds, "alpha IT joules");
    assert!(it < (20.0 + 4.0 + DCGM_GPU_W + KEPLER_GPU_W) * seconds * 0.9);
    let kwh = alpha.value(Quantity::MeterEnergy);
    assert!((kwh - it / 3.6e6 * inputs.carbon.pue).abs() < 1e-12);
    close(
        alpha.value(Quantity::CpuUsed),
        2.0 * seconds,
        "alpha core-seconds",
    );

    // beta: no GPU at all; CPU and DRAM from Kepler.
    close(
        beta.value(Quantity::CpuEnergy),
        10.0 * seconds,
        "beta CPU joules",
    );
    close(
        beta.value(Quantity::DramEnergy),
        2.0 * seconds,
        "beta DRAM joules",
    );
    assert_eq!(beta.value(Quantity::GpuEnergy), 0.0);
    assert_eq!(
        beta.figure(Quantity::ItEnergy).unwrap().method,
        Method::Kepler
    );
    close(
        beta.value(Quantity::CpuUsed),
        0.5 * seconds,
        "beta core-seconds",
    );

    // The rows of the window export.
    let rows = ledger::rows(&out);
    let mut csv = Vec::new();
    ledger::write_csv(&rows, &mut csv).unwrap();
    assert!(
        String::from_utf8(csv)
            .unwrap()
            .contains(",sbx-alpha,,gpu_energy,")
    );

    // The gateway's ledger window: namespace totals as above, plus a trial run's own
    // figures from its pods (`trainer` owns pod `run-0123456789ab-x7k2p`), measured, never modelled.
    let scope = Scope {
        tenants: BTreeMap::from([
            (ALPHA.to_string(), "tenant-a".to_string()),
            (BETA.to_string(), "tenant-b".to_string()),
        ]),
        runs: vec![RunSpan {
            name: "run-0123456789ab".into(),
            namespace: ALPHA.into(),
            tenant: "tenant-a".into(),
            started: window.start - chrono::Duration::hours(1),
            finished: None,
            cpu_cores: 4.0,
            memory_gb: 8.0,
            gpus: 1.0,
        }],
        storage_bytes: BTreeMap::new(),
    };
    let source =
        Source::Prometheus(PrometheusClient::new(&prometheus.url, Duration::from_secs(5)).unwrap());
    let rows = window_rows(
        &source,
        window,
        &scope,
        &PowerModel::default(),
        &CarbonParams::default(),
    )
    .await
    .unwrap();
    let value = |run: &str, ns: &str, q: &str| row_value(&rows, run, ns, q);
    close(
        value("", ALPHA, "cpu_energy").0,
        20.0 * seconds,
        "ledger alpha CPU",
    );
    close(
        value("", BETA, "cpu_energy").0,
        10.0 * seconds,
        "ledger beta CPU",
    );
    let (cpu, method) = value("run-0123456789ab", ALPHA, "cpu_energy");
    close(cpu, 12.0 * seconds, "run CPU package joules (its pod only)");
    assert_eq!(method, "kepler");
    close(
        value("run-0123456789ab", ALPHA, "dram_energy").0,
        3.0 * seconds,
        "run DRAM",
    );
    let (gpu, method) = value("run-0123456789ab", ALPHA, "gpu_energy");
    close(gpu, DCGM_GPU_W * seconds, "run GPU joules");
    assert_eq!(method, "dcgm");
    let (used, method) = value("run-0123456789ab", ALPHA, "cpu_used");
    close(used, 2.0 * seconds, "run core-seconds");
    assert_eq!(method, "cadvisor");
    assert!(
        rows.iter().all(|r| !r.tenant.is_empty()),
        "only Serre's namespaces are recorded"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.run == "run-0123456789ab" && r.namespace != ALPHA),
        "a run's rows carry its namespace"
    );
    drop(prometheus);
}

/// A powercap directory and `/proc/stat` whose counters advance like a node drawing
/// `PACKAGE_W` and `DRAM_W` with `BUSY_CORES` busy; the package counter wraps every
/// half second (as real ones do every few minutes).
const PACKAGE_W: f64 = 60.0;
const DRAM_W: f64 = 6.0;
const BUSY_CORES: f64 = 4.0;
const PACKAGE_RANGE_UJ: u64 = 30_000_000;

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn advance_node(dir: &Path, t: f64) {
    let package = (PACKAGE_W * t * 1e6) as u64 % PACKAGE_RANGE_UJ;
    write_atomically(
        &dir.join("powercap/intel-rapl:0/energy_uj"),
        &format!("{package}\n"),
    );
    let dram = (DRAM_W * t * 1e6) as u64;
    write_atomically(
        &dir.join("powercap/intel-rapl:0:2/energy_uj"),
        &format!("{dram}\n"),
    );
    let busy = (BUSY_CORES * t * 100.0) as u64;
    write_atomically(
        &dir.join("stat"),
        &format!("cpu  {busy} 0 0 900000 0 0 0 0 0 0\n"),
    );
}

fn fake_node(dir: &Path) {
    for (zone, name, range) in [
        ("intel-rapl:0", "package-0", PACKAGE_RANGE_UJ),
        ("intel-rapl:0:0", "core", PACKAGE_RANGE_UJ),
        ("intel-rapl:0:2", "dram", 262_143_328_850),
    ] {
        let z = dir.join("powercap").join(zone);
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(z.join("energy_uj"), "0\n").unwrap();
        std::fs::write(z.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }
    advance_node(dir, 1.0);
}

/// cAdvisor's CPU time and kube-state-metrics' pod → node mapping: on node-1 (the agent's)
/// the run's pod uses 2 of the 4 busy cores and beta's pod 1; gamma's pod runs on node-2,
/// which has no agent.
fn pods_on_nodes(t: f64) -> String {
    let mut out = String::from(
        "# TYPE container_cpu_usage_seconds_total counter\n# TYPE kube_pod_info gauge\n",
    );
    for (ns, pod, node, cores) in [
        (ALPHA, "run-0123456789ab-x7k2p", "node-1", 2.0),
        (BETA, "etl-0", "node-1", 1.0),
        ("sbx-gamma", "etl-0", "node-2", 3.0),
    ] {
        out.push_str(&format!(
            "container_cpu_usage_seconds_total{{container=\"main\",cpu=\"total\",image=\"registry.local/x:1\",namespace=\"{ns}\",pod=\"{pod}\"}} {}\n",
            cores * t
        ));
        out.push_str(&format!(
            "kube_pod_info{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"{pod}-uid\",node=\"{node}\",host_ip=\"10.0.0.1\",pod_ip=\"10.1.0.1\",created_by_kind=\"Job\"}} 1\n"
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_rapl_from_the_node_agent_through_a_real_prometheus() {
    let _one = ONE_PROMETHEUS.lock().await;
    serre_api::install_crypto_provider();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("energy-rapl-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    fake_node(&dir);
    let started = Instant::now();
    let node_dir = dir.clone();
    let advancing = tokio::spawn(async move {
        loop {
            advance_node(&node_dir, started.elapsed().as_secs_f64() + 1.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // The real agent, sampling every 100 ms.
    let agent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent.local_addr().unwrap().to_string();
    let cfg = serre_api::energy::node_agent::AgentConfig {
        node: "node-1".into(),
        powercap: dir.join("powercap"),
        proc_stat: dir.join("stat"),
        with_dram: true,
        sample: Duration::from_millis(100),
    };
    tokio::spawn(serre_api::node_agent::run(
        cfg,
        agent,
        std::future::pending(),
    ));
    let pods = Router::new().route(
        "/metrics",
        get(move || async move {
            (
                [("content-type", "text/plain; version=0.0.4")],
                pods_on_nodes(started.elapsed().as_secs_f64() + 1000.0),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pods_addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, pods).await.unwrap() });

    let targets = format!("{pods_addr},{agent_addr}");
    let prometheus = tokio::task::spawn_blocking(move || Prometheus::start(&targets))
        .await
        .unwrap();
    let client = PrometheusClient::new(&prometheus.url, Duration::from_secs(5)).unwrap();
    scraped_12_times(
        &client,
        &[
            r#"serre_node_rapl_joules_total{zone="package"}"#,
            "kube_pod_info",
        ],
    )
    .await;

    let end = Utc::now() - chrono::Duration::seconds(1);
    let window = Window::new(end - chrono::Duration::seconds(10), end).unwrap();
    let seconds = window.seconds();
    let scope = Scope {
        tenants: BTreeMap::from([
            (ALPHA.to_string(), "tenant-a".to_string()),
            (BETA.to_string(), "tenant-b".to_string()),
            ("sbx-gamma".to_string(), "tenant-c".to_string()),
        ]),
        runs: vec![RunSpan {
            name: "run-0123456789ab".into(),
            namespace: ALPHA.into(),
            tenant: "tenant-a".into(),
            started: window.start - chrono::Duration::hours(1),
            finished: None,
            cpu_cores: 4.0,
            memory_gb: 8.0,
            gpus: 0.0,
        }],
        storage_bytes: BTreeMap::new(),
    };
    let source = Source::Prometheus(client);
    let rows = window_rows(
        &source,
        window,
        &scope,
        &PowerModel::default(),
        &CarbonParams::default(),
    )
    .await
    .unwrap();
    advancing.abort();
    let value = |run: &str, ns: &str, q: &str| row_value(&rows, run, ns, q);
    // node-1's 60 W package: half to the run's pod (2 of 4 busy cores), a quarter to
    // beta, the last quarter (processes outside any pod) to no one.
    let (cpu, method) = value("run-0123456789ab", ALPHA, "cpu_energy");
    close(cpu, PACKAGE_W / 2.0 * seconds, "run CPU joules from RAPL");
    assert_eq!(method, "rapl");
    let (dram, method) = value("run-0123456789ab", ALPHA, "dram_energy");
    close(dram, DRAM_W / 2.0 * seconds, "run DRAM joules from RAPL");
    assert_eq!(method, "rapl");
    let (cpu, method) = value("", ALPHA, "cpu_energy");
    close(cpu, PACKAGE_W / 2.0 * seconds, "alpha CPU joules");
    assert_eq!(method, "rapl");
    close(
        value("", BETA, "cpu_energy").0,
        PACKAGE_W / 4.0 * seconds,
        "beta CPU joules",
    );
    // node-2 has no agent: gamma's CPU energy is modelled, and says so.
    let (_, method) = value("", "sbx-gamma", "cpu_energy");
    assert_eq!(method, "modelled");
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&dir);
}
