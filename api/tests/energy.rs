//! Energy accounting against a real Prometheus (Debian's package, started by
//! `deploy/dev/prometheus.sh`) scraping an exporter served by this test in Kepler's and
//! DCGM's exposition formats. If Prometheus cannot be installed the test fails, saying so.

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
    AccountInputs, CarbonParams, Method, PowerModel, PrometheusClient, Quantity, Window, account,
    ledger,
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

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 0.08 * expected.abs();
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within 8 % of {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_kepler_and_dcgm_through_a_real_prometheus() {
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

    // Wait for at least 12 scrapes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let samples = client
            .query(
                r#"count_over_time(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"}[1m])"#,
                Utc::now(),
            )
            .await
            .unwrap();
        if samples.first().is_some_and(|s| s.value >= 12.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus took more than a minute to scrape 12 samples"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

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
    let value = |run: &str, ns: &str, q: &str| {
        let r = rows
            .iter()
            .find(|r| r.run == run && r.namespace == ns && r.quantity == q)
            .unwrap_or_else(|| panic!("no {q} row for run {run:?} in {ns}"));
        (r.value, r.method.clone())
    };
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
