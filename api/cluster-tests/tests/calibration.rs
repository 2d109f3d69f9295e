//! Calibration of the measured figures on a real node: a real Prometheus
//! (`deploy/dev/prometheus.sh`) scrapes the test node's kubelet cAdvisor endpoint over
//! HTTPS with a ServiceAccount token allowed only `nodes/metrics`, the gateway reads it
//! (`--prometheus-url`), and a trial run of the example model burns a known amount of CPU
//! (`--burn-cpu-seconds 30`, one thread, counted by the model with
//! CLOCK_PROCESS_CPUTIME_ID). Once the run is closed, its ledger says it used 30
//! core-seconds within ±10 %, measured (`cadvisor`), its memory measured too, and its
//! energy modelled from that CPU time (no RAPL, Kepler or DCGM on this node), which the
//! frugality report says. Nothing is skipped: without Prometheus, the cluster or the
//! images, the test fails.

mod support;
mod trial_cluster;

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::{Node, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use serre_resources::Tenant;
use support::{Backend, Gateway, Setup, eventually, unique_name};
use trial_cluster::{client, run_body, start_operator, tenant_spec};

const BURN_CORE_S: f64 = 30.0;
const SCRAPER: &str = "serre-test-prometheus";

/// A token of a ServiceAccount allowed only `nodes/metrics` (as a cluster's Prometheus
/// has), from its token Secret.
async fn scraper_token(kube: &kube::Client) -> String {
    let apply = PatchParams::apply("serre-tests").force();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": SCRAPER, "namespace": "kube-system"}}))
            .unwrap();
    Api::<ServiceAccount>::namespaced(kube.clone(), "kube-system")
        .patch(SCRAPER, &apply, &Patch::Apply(&sa))
        .await
        .expect("ServiceAccount");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": SCRAPER},
        "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}],
    }))
    .unwrap();
    Api::<ClusterRole>::all(kube.clone())
        .patch(SCRAPER, &apply, &Patch::Apply(&role))
        .await
        .expect("ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": SCRAPER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SCRAPER},
        "subjects": [{"kind": "ServiceAccount", "name": SCRAPER, "namespace": "kube-system"}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(kube.clone())
        .patch(SCRAPER, &apply, &Patch::Apply(&binding))
        .await
        .expect("ClusterRoleBinding");
    // Kubernetes 1.20 creates the token Secret of a ServiceAccount itself.
    let secrets = Api::<Secret>::namespaced(kube.clone(), "kube-system");
    eventually(30, "the scraper's token Secret", || async {
        let list = secrets.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|s| {
            let annotations = s.metadata.annotations.as_ref()?;
            (annotations.get("kubernetes.io/service-account.name")? == SCRAPER
                && s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
            .then_some(())?;
            let token = s.data.as_ref()?.get("token")?;
            String::from_utf8(token.0.clone()).ok()
        })
    })
    .await
}

/// The cluster's CA (it signs the kubelet's serving certificate), PEM.
fn cluster_ca() -> Vec<u8> {
    use base64::Engine;
    let config = kube::config::Kubeconfig::read_from(support::kubeconfig()).expect("kubeconfig");
    let cluster = config.clusters[0].cluster.as_ref().expect("cluster");
    if let Some(data) = &cluster.certificate_authority_data {
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("certificate-authority-data");
    }
    let path = cluster
        .certificate_authority
        .as_ref()
        .expect("the kubeconfig names no CA");
    std::fs::read(path).expect("certificate-authority")
}

/// The kubelet's address (InternalIP:port) of the cluster's first node.
async fn kubelet_address(kube: &kube::Client) -> String {
    let nodes = Api::<Node>::all(kube.clone())
        .list(&Default::default())
        .await
        .expect("nodes");
    let node = nodes.items.first().expect("the test cluster has no node");
    let status = node.status.as_ref().expect("node status");
    let ip = status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .expect("InternalIP")
        .address
        .clone();
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(10250, |e| e.port);
    format!("{ip}:{port}")
}

/// Prometheus scraping the kubelet's cAdvisor endpoint; stops with this test binary.
struct Prometheus {
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    fn start(kubelet: &str, token: &str, ca: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(unique_name("serre-calibration-prometheus"));
        std::fs::create_dir_all(&dir).unwrap();
        let (token_file, ca_file) = (dir.join("token"), dir.join("ca.crt"));
        std::fs::write(&token_file, token).unwrap();
        std::fs::write(&ca_file, ca).unwrap();
        let script = support::repo_root().join("deploy/dev/prometheus.sh");
        // Its own target is a port nothing listens on: only the kubelet matters here.
        let out = Command::new(&script)
            .args(["start", dir.to_str().unwrap(), "127.0.0.1:9"])
            .env(
                "SERRE_PROMETHEUS_KUBELET",
                format!("{kubelet},{},{}", token_file.display(), ca_file.display()),
            )
            .env(
                "SERRE_PROMETHEUS_PARENT_PID",
                std::process::id().to_string(),
            )
            .output()
            .expect("deploy/dev/prometheus.sh");
        assert!(
            out.status.success(),
            "Prometheus did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::fs::read_to_string(dir.join("port")).expect("port");
        Self {
            url: format!("http://127.0.0.1:{}", port.trim()),
            dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let script = support::repo_root().join("deploy/dev/prometheus.sh");
        let _ = Command::new(script)
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The ledger rows of one run, from the tenant's CSV export: (quantity, value, method,
/// source).
fn run_rows(csv: &str, run: &str) -> Vec<(String, f64, String, String)> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {headers:?}"))
    };
    let (r, q, v, m, s) = (
        col("run"),
        col("quantity"),
        col("value"),
        col("method"),
        col("source"),
    );
    reader
        .records()
        .map(|rec| rec.expect("row"))
        .filter(|rec| &rec[r] == run)
        .map(|rec| {
            (
                rec[q].to_owned(),
                rec[v].parse().unwrap(),
                rec[m].to_owned(),
                rec[s].to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_burning_30_core_seconds_is_measured_within_10_percent() {
    let kube = client().await;
    serre_operator::manifests::install(&kube, "serre-system")
        .await
        .expect("install CRDs");

    // -- Prometheus scraping the node's kubelet, as a cluster's Prometheus does.
    let token = scraper_token(&kube).await;
    let kubelet = kubelet_address(&kube).await;
    let ca = cluster_ca();
    let prometheus = tokio::task::spawn_blocking(move || Prometheus::start(&kubelet, &token, &ca))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let query = |q: String| {
        let (http, url) = (http.clone(), prometheus.url.clone());
        async move {
            let v: Value = http
                .get(format!("{url}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(v["data"]["result"].as_array()?.len())
        }
    };
    eventually(60, "cAdvisor series scraped from the kubelet", || async {
        let n = query("container_cpu_usage_seconds_total{job=\"kubelet-cadvisor\"}".into()).await?;
        (n > 0).then_some(())
    })
    .await;

    // -- The gateway reads it, with short windows; the operator runs the runs.
    let t = unique_name("cal");
    Api::<Tenant>::all(kube.clone())
        .create(&Default::default(), &Tenant::new(&t, tenant_spec(&t)))
        .await
        .expect("tenant");
    let mut setup = Setup {
        kubeconfig: Some(support::kubeconfig().to_path_buf()),
        tenants_yaml: None,
        ..Setup::local(support::fresh_database(Backend::Sqlite).await)
    };
    setup.extra = vec![
        "--metropole-admin-groups".into(),
        "mgp-admins".into(),
        "--prometheus-url".into(),
        prometheus.url.clone(),
        "--usage-step".into(),
        "5s".into(),
        // cAdvisor stamps each sample with its housekeeping time and Prometheus scrapes every
        // second: 20 s after a window's end its samples are in.
        "--usage-settle".into(),
        "20s".into(),
        "--usage-interval".into(),
        "1s".into(),
    ];
    let gw = Gateway::start(setup).await;
    start_operator(&gw.url);
    let bob = gw.token("bob", &[&format!("{t}-data")]);
    let alice = gw.token("alice", &[&format!("{t}-admins")]);
    let acme = gw.token("acme", &[]);
    let mia = gw.token("mia", &["mgp-admins"]);
    eventually(30, "the tenant in the gateway's directory", || async {
        let (_, me) = gw.call("GET", "/v1/me", Some(&bob), None).await;
        (me["memberOf"] == json!([t])).then_some(())
    })
    .await;
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body(&t, "calib", 10)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let sb = format!("{t}--calib");
    eventually(120, "the sandbox to be Ready", || async {
        let (_, v) = gw
            .call("GET", &format!("/v1/sandboxes/{sb}"), Some(&bob), None)
            .await;
        (v["cluster"]["phase"] == "Ready").then_some(())
    })
    .await;
    let (s, v) = gw
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/members"),
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert!(s == 200 || s == 201, "{v}");

    // -- The run: 30 core-seconds of CPU on one core.
    let runs = format!("/v1/sandboxes/{sb}/runs");
    let burn = BURN_CORE_S.to_string();
    let (s, run) = gw
        .call(
            "POST",
            &runs,
            Some(&acme),
            Some(run_body(&[], None, 0, &["--burn-cpu-seconds", &burn])),
        )
        .await;
    assert_eq!(s, 201, "{run}");
    let name = run["name"].as_str().expect("run name").to_owned();
    let done = eventually(300, "the run to be closed with figures", || async {
        let (_, v) = gw
            .call("GET", &format!("{runs}/{name}"), Some(&acme), None)
            .await;
        assert!(
            !["Failed", "TimedOut", "Cancelled"].contains(&v["phase"].as_str().unwrap_or("")),
            "{v}"
        );
        (v["phase"] == "Succeeded" && !v["figures"].is_null()).then_some(v)
    })
    .await;

    // -- Its figures: CPU time measured within ±10 % of 30 core-s, memory measured,
    // energy modelled from the measured CPU time.
    let f = &done["figures"]["figures"];
    let cpu = f["cpu_used"]["value"].as_f64().expect("cpu_used");
    let error = (cpu - BURN_CORE_S) / BURN_CORE_S;
    eprintln!(
        "calibration: run {name} used {cpu:.3} core-s by the ledger for {BURN_CORE_S} burnt \
         ({:+.1} %); source: {}",
        error * 100.0,
        f["cpu_used"]["source"]
    );
    assert_eq!(f["cpu_used"]["method"], "cadvisor", "{f}");
    assert!(
        error.abs() <= 0.10,
        "cpu_used {cpu} core-s is not within 10 % of {BURN_CORE_S}: {f}"
    );
    assert_eq!(f["memory_used"]["method"], "cadvisor", "{f}");
    assert!(f["memory_used"]["value"].as_f64().unwrap() > 0.0, "{f}");
    assert_eq!(f["cpu_energy"]["method"], "modelled", "{f}");
    assert!(
        f["cpu_energy"]["source"]
            .as_str()
            .unwrap()
            .contains("W/core"),
        "{f}"
    );
    assert_eq!(done["figures"]["energyMethod"], "modelled");

    // The ledger says the same, method per row.
    let csv = gw
        .get_text(
            &format!("/v1/tenants/{t}/usage/ledger?format=csv&from=2000-01-01T00:00:00Z"),
            Some(&mia),
            "text/csv",
        )
        .await;
    let rows = run_rows(&csv, &name);
    let sum = |q: &str| -> (f64, Vec<String>) {
        let mine: Vec<_> = rows.iter().filter(|r| r.0 == q).collect();
        (
            mine.iter().map(|r| r.1).sum(),
            mine.iter().map(|r| r.2.clone()).collect(),
        )
    };
    let (ledger_cpu, methods) = sum("cpu_used");
    // How much of it came after cAdvisor's last sample (extrapolated to the run's end).
    let tail: f64 = rows
        .iter()
        .filter(|r| r.0 == "cpu_used")
        .filter_map(|r| {
            r.3.split("; + ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    eprintln!(
        "calibration: {:.3} core-s sampled by cAdvisor, {tail:.3} extrapolated after its last \
         sample, over {} windows",
        ledger_cpu - tail,
        methods.len()
    );
    assert!((ledger_cpu - cpu).abs() < 1e-9, "{ledger_cpu} vs {cpu}");
    assert!(methods.iter().all(|m| m == "cadvisor"), "{methods:?}");
    let (_, methods) = sum("memory_used");
    assert!(methods.iter().all(|m| m == "cadvisor"), "{methods:?}");
    let (_, methods) = sum("cpu_energy");
    assert!(methods.iter().all(|m| m == "modelled"), "{methods:?}");

    // The frugality report says which figures were measured and which modelled.
    let (s, report) = gw
        .call("GET", &format!("{runs}/{name}/report"), Some(&acme), None)
        .await;
    assert_eq!(s, 200, "{report}");
    let caveats = report["caveats"].to_string();
    assert!(
        caveats.contains("CPU time and memory are measured"),
        "{caveats}"
    );
    assert!(
        caveats.contains("modelled from the measured CPU time"),
        "{caveats}"
    );
    assert!(!caveats.contains("No metrics source"), "{caveats}");
    drop(prometheus);
}
