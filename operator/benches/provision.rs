//! Provisioning benchmark (issue 2): many sandboxes at once on a fresh local control
//! plane, with the operator binary (release) as a separate process.
//!
//! Measures the time from the first create until every sandbox is `Ready`, the API
//! writes per sandbox (from the operator's own counter and, independently, from the
//! kube-apiserver's `apiserver_request_total`), the writes of a full resync with nothing
//! changed (target 0) and the operator's peak RSS; and, to show where the time goes,
//! per-sandbox create → admitted → Ready spans, reconciles per sandbox, the status
//! changes seen by a watch, CPU seconds per process and the apiserver's time by request.
//! Prints a summary and writes the figures to `target/bench/provision.json` (the
//! operator's log to `target/bench/provision-operator.log`). `cargo bench` builds the
//! operator binary (bench profile = release) before running this.
//!
//! ```sh
//! cargo bench -p serre-operator --bench provision
//! SANDBOXES=50 TENANTS=5 cargo bench -p serre-operator --bench provision   # quick run
//! ```
//!
//! Environment: `SANDBOXES` (500), `TENANTS` (10), `IN_FLIGHT` (16 concurrent creates),
//! `RESYNC` (30s, the operator's `--resync`), `SERRE_CP_PORT_BASE` (15700: etcd = base,
//! controller-manager = base+2, apiserver = base+3, operator HTTP = base+4),
//! `READY_TIMEOUT` (10m), `KEEP_CONTROL_PLANE` (set: keep the temporary directory).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serre_operator::resources::{
    Allowance, LABEL_MANAGED_BY, MANAGER, MemberGroup, MemberRole, Sandbox, SandboxPhase,
    SandboxResources, SandboxSpec, Tenant, TenantKind, TenantSpec,
};

const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_serre-operator");
const OPERATOR_NAMESPACE: &str = "serre-system";
const PLATFORM_EGRESS: &str = "10.0.0.10/32:3900";
/// `apiserver_request_total` verbs that write (`APPLY` is a server-side-apply PATCH).
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
const PREFIX: &str = "bench";

// Targets of issue 2.
const TARGET_READY_S: f64 = 60.0;
const TARGET_RSS_MB: f64 = 150.0;

fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "provision: skipped (run it with `cargo bench -p serre-operator --bench provision`)"
        );
        return Ok(());
    }
    let params = Params::from_env()?;
    serre_operator::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(params))
}

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

struct Params {
    sandboxes: usize,
    tenants: usize,
    in_flight: usize,
    resync: String,
    resync_period: Duration,
    port_base: u16,
    ready_timeout: Duration,
    keep_control_plane: bool,
}

impl Params {
    fn from_env() -> Result<Self> {
        fn var<T: FromStr>(name: &str, default: T) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            match std::env::var(name) {
                Ok(v) => v.parse().map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}")),
                Err(_) => Ok(default),
            }
        }
        let resync: String = var("RESYNC", "30s".to_owned())?;
        let resync_period = humantime::parse_duration(&resync).context("RESYNC")?;
        let ready_timeout: String = var("READY_TIMEOUT", "10m".to_owned())?;
        let p = Self {
            sandboxes: var("SANDBOXES", 500)?,
            tenants: var("TENANTS", 10)?,
            in_flight: var("IN_FLIGHT", 16)?,
            resync,
            resync_period,
            port_base: var("SERRE_CP_PORT_BASE", 15700)?,
            ready_timeout: humantime::parse_duration(&ready_timeout).context("READY_TIMEOUT")?,
            keep_control_plane: std::env::var_os("KEEP_CONTROL_PLANE").is_some(),
        };
        if p.sandboxes == 0 || p.tenants == 0 || p.in_flight == 0 {
            bail!("SANDBOXES, TENANTS and IN_FLIGHT must be at least 1");
        }
        Ok(p)
    }

    fn per_tenant(&self) -> usize {
        self.sandboxes.div_ceil(self.tenants)
    }

    fn operator_http(&self) -> String {
        format!("127.0.0.1:{}", self.port_base + 4)
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

async fn run(p: Params) -> Result<()> {
    let target = Path::new(OPERATOR_BIN)
        .parent()
        .and_then(Path::parent)
        .context("the operator binary is not under target/<profile>/")?
        .to_path_buf();
    let out_dir = target.join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let n = p.sandboxes as f64;
    let load_start = loadavg();
    eprintln!(
        "provision: {} sandboxes across {} tenants, {} creates in flight, resync {}; load average {load_start:?}",
        p.sandboxes, p.tenants, p.in_flight, p.resync
    );

    let mut cp = ControlPlane::start(p.port_base, p.keep_control_plane)?;
    let kubeconfig = cp.dir.join("kubeconfig");
    let client = client(&kubeconfig).await?;

    // Install and tenants, before the operator starts.
    let status = Command::new(OPERATOR_BIN)
        .args(["install", "--namespace", OPERATOR_NAMESPACE])
        .env("KUBECONFIG", &kubeconfig)
        .status()
        .context("run serre-operator install")?;
    if !status.success() {
        bail!("serre-operator install failed: {status}");
    }
    let tenants: Vec<String> = (0..p.tenants)
        .map(|t| format!("{PREFIX}-t{t:02}"))
        .collect();
    for t in &tenants {
        create_tenant(&client, t, p.per_tenant()).await?;
    }

    let mut operator = Operator::start(&p, &kubeconfig, &out_dir.join("provision-operator.log"))?;
    let op = operator.http.clone();
    wait_for(Duration::from_secs(60), "the operator's /readyz", || {
        http_get(&op, "/readyz").is_some()
    })
    .await?;
    // The controllers run once every tenant has been reconciled; then let writes settle.
    wait_for(
        Duration::from_secs(60),
        "the tenants' first reconciles",
        || {
            scrape(&op).is_some_and(|m| {
                m.sum(
                    "serre_operator_reconciliations_total",
                    &[("controller", "tenant")],
                ) >= p.tenants as f64
            })
        },
    )
    .await?;
    settle(&op, Duration::from_secs(2), Duration::from_secs(30)).await;

    // 1. Provisioning.
    let pids = Pids {
        operator: operator.child.id(),
        apiserver: cp.pid("apiserver"),
        etcd: cp.pid("etcd"),
        controller_manager: cp.pid("controller-manager"),
    };
    let op0 = scrape(&op).context("operator metrics")?;
    let api0 = cp.apiserver_metrics()?;
    let kcm0 = cp.controller_manager_metrics();
    let cpu0 = CpuSample::take(&pids);
    let progress = Arc::new(Mutex::new(Progress::default()));
    let watch = tokio::spawn(track_ready(client.clone(), progress.clone()));

    let t0 = Instant::now();
    let created = create_sandboxes(&client, &p, &tenants).await?;
    let all_created = t0.elapsed();
    eprintln!(
        "provision: {} creates sent in {:.1} s",
        created.len(),
        all_created.as_secs_f64()
    );
    let (ready_all, timeline) = wait_all_ready(&p, &progress, &op, t0).await;
    // CPU, apiserver time and reconciles up to the moment all are Ready; writes once
    // the trailing ones (Events, tenant status) have settled.
    let load_provisioned = loadavg();
    let ready_window = t0.elapsed();
    let cpu1 = CpuSample::take(&pids);
    let api_ready = cp.apiserver_metrics()?;
    let op_ready = scrape(&op).context("operator metrics")?;
    settle(&op, Duration::from_secs(5), Duration::from_secs(90)).await;
    let op1 = scrape(&op).context("operator metrics")?;
    let api1 = cp.apiserver_metrics()?;
    let kcm1 = cp.controller_manager_metrics();
    watch.abort();
    let objects = count_children(&client).await?;

    // 2. Where the writes went.
    let op_writes = op1.delta(&op0, "serre_operator_api_writes_total", &["kind", "verb"]);
    let op_writes_total = total(&op_writes);
    let reconciles = op_ready.delta(
        &op0,
        "serre_operator_reconciliations_total",
        &["controller"],
    );
    let failures = op_ready.delta(
        &op0,
        "serre_operator_reconcile_failures_total",
        &["controller", "category"],
    );
    let api_writes = apiserver_writes(&api1, &api0);
    let attributed = attribute(&api_writes, p.sandboxes as f64);
    let api_errors = apiserver_write_errors(&api1, &api0);
    let api_time = apiserver_time(&api_ready, &api0);
    let kcm_writes = match (&kcm1, &kcm0) {
        (Some(a), Some(b)) => Some(a.delta(b, "rest_client_requests_total", &["method"])),
        _ => None,
    };
    let kcm_write_total = kcm_writes.as_ref().map(|m| {
        m.iter()
            .filter(|(k, _)| ["POST", "PUT", "PATCH", "DELETE"].contains(&k[0].as_str()))
            .map(|(_, v)| v)
            .sum::<f64>()
    });

    // 3. Full resync with nothing changed.
    let resync = measure_resync(&p, &op, &cp).await?;

    // 4. Peak RSS, then stop everything.
    let rss = proc_status_kib(pids.operator);
    let apiserver_rss = pids.apiserver.and_then(proc_status_kib);
    let load_end = loadavg();
    operator.stop();

    // 5. Report.
    let objects_total: usize = objects.values().sum();
    let objects_per_sandbox = objects_total as f64 / n;
    let ready_s = ready_all.map(|d| d.as_secs_f64());
    let (latencies, status_history) = {
        let pr = progress.lock().unwrap_or_else(|e| e.into_inner());
        let history = json!({
            "status_changes_per_sandbox": pr.status_changes as f64 / n,
            "changed_fields": pr.changed_fields,
            "sequences": pr.sequences().into_iter().take(5).map(|(s, c)| json!({"steps": s, "sandboxes": c})).collect::<Vec<_>>(),
        });
        let created: HashMap<String, Instant> = created.iter().cloned().collect();
        let latencies = Latencies {
            ready: spans(&created, &pr.ready),
            admitted: spans(&created, &pr.admitted),
            admitted_to_ready: spans(&pr.admitted, &pr.ready),
        };
        (latencies, history)
    };
    let cpu = cpu1.since(&cpu0, ready_window);
    let peak_mb = rss.map(|(hwm, _)| hwm as f64 * 1024.0 / 1e6);
    let report = json!({
        "parameters": {
            "sandboxes": p.sandboxes,
            "tenants": p.tenants,
            "in_flight": p.in_flight,
            "resync": p.resync,
            "operator_args": Operator::args(&p),
        },
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average_start": load_start,
            "load_average_all_ready": load_provisioned,
            "load_average_end": load_end,
            "commit": git_head(),
        },
        "provisioning": {
            "all_created_s": all_created.as_secs_f64(),
            "all_ready_s": ready_s,
            "ready": latencies.ready.len(),
            "target_ready_s": TARGET_READY_S,
            "create_to_ready_s": percentiles(&latencies.ready),
            "create_to_admitted_s": percentiles(&latencies.admitted),
            "admitted_to_ready_s": percentiles(&latencies.admitted_to_ready),
            "timeline": timeline,
            "reconciles_until_ready": to_json(&reconciles),
            "sandbox_reconciles_per_sandbox_until_ready": reconciles.get(&vec!["sandbox".to_owned()]).copied().unwrap_or(0.0) / n,
            "reconcile_failures_until_ready": to_json(&failures),
            "mean_reconcile_s": mean_reconcile(&op_ready, &op0),
            "cpu_seconds": cpu,
            "status_history": status_history,
            "apiserver_time": api_time,
        },
        "writes": {
            "objects": objects.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "objects_per_sandbox": objects_per_sandbox,
            "operator_counter": {
                "total": op_writes_total,
                "per_sandbox": op_writes_total / n,
                "per_object": op_writes_total / n / objects_per_sandbox,
                "by_kind_verb": to_json(&op_writes),
            },
            "apiserver": {
                "by_verb_resource": to_json(&api_writes),
                "attributed": attribute_json(&attributed, n),
                "operator_per_sandbox": attributed.get("operator").copied().unwrap_or(0.0) / n,
                "non_2xx": to_json(&api_errors),
                "controller_manager_rest_client_writes": kcm_write_total,
            },
        },
        "resync": resync.json(),
        "operator_rss": {
            "peak_kib": rss.map(|r| r.0),
            "current_kib": rss.map(|r| r.1),
            "peak_mb": peak_mb,
            "target_mb": TARGET_RSS_MB,
        },
        "apiserver_rss_peak_kib": apiserver_rss.map(|r| r.0),
    });
    let path = out_dir.join("provision.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;

    print_summary(&SummaryInput {
        p: &p,
        ready_s,
        all_created,
        latencies: &latencies,
        status_history: &status_history,
        api_time: &api_time,
        op_writes: &op_writes,
        op_writes_total,
        attributed: &attributed,
        kcm_write_total,
        api_errors: &api_errors,
        objects: &objects,
        objects_per_sandbox,
        reconciles: &reconciles,
        failures: &failures,
        cpu: &cpu,
        resync: &resync,
        rss,
        loads: [load_start, load_provisioned, load_end],
    });
    println!("figures written to {}", path.display());
    cp.succeeded = true;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Control plane and operator processes
// ---------------------------------------------------------------------------------------

/// A control plane of its own in a temporary directory; stopped when dropped, and its
/// directory removed unless the run failed or `KEEP_CONTROL_PLANE` is set.
struct ControlPlane {
    dir: PathBuf,
    port_base: u16,
    keep: bool,
    succeeded: bool,
}

impl ControlPlane {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/control-plane.sh")
    }

    fn start(port_base: u16, keep: bool) -> Result<Self> {
        for port in [
            port_base,
            port_base + 1,
            port_base + 2,
            port_base + 3,
            port_base + 4,
        ] {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("port {port} is in use: set SERRE_CP_PORT_BASE to a free range of 5 ports");
            }
        }
        let dir =
            std::env::temp_dir().join(format!("serre-bench-provision-{}", std::process::id()));
        let cp = Self {
            dir,
            port_base,
            keep,
            succeeded: false,
        };
        let status = Command::new(Self::script())
            .arg("start")
            .arg(&cp.dir)
            .env("SERRE_CP_PORT_BASE", port_base.to_string())
            // Torn down even if this process is killed.
            .env("SERRE_CP_PARENT_PID", std::process::id().to_string())
            .status()
            .context("run deploy/dev/control-plane.sh")?;
        if !status.success() {
            bail!(
                "the control plane did not start (logs in {})",
                cp.dir.display()
            );
        }
        Ok(cp)
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn token(&self) -> Option<String> {
        let csv = std::fs::read_to_string(self.dir.join("pki/tokens.csv")).ok()?;
        Some(csv.split(',').next()?.trim().to_owned())
    }

    /// The kube-apiserver's `/metrics`, read with the admin token and the cluster CA.
    fn apiserver_metrics(&self) -> Result<Prom> {
        let ca = self.dir.join("pki/ca.crt");
        let url = format!("https://127.0.0.1:{}/metrics", self.port_base + 3);
        self.curl(&["--cacert", &ca.to_string_lossy(), &url])
            .context("kube-apiserver /metrics")
    }

    /// The controller-manager's own `/metrics` (its `rest_client_requests_total` says
    /// how many writes it sent). Its serving certificate is self-signed, hence `-k`.
    fn controller_manager_metrics(&self) -> Option<Prom> {
        let url = format!("https://127.0.0.1:{}/metrics", self.port_base + 2);
        self.curl(&["-k", &url]).ok()
    }

    /// GET with the admin token (curl: the metrics endpoints are plain text over TLS).
    fn curl(&self, args: &[&str]) -> Result<Prom> {
        let token = self.token().context("no admin token in pki/tokens.csv")?;
        let out = Command::new("curl")
            .args(["-sSf", "--max-time", "20", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(args)
            .output()
            .context("run curl")?;
        if !out.status.success() {
            bail!(
                "curl failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Prom::parse(&String::from_utf8_lossy(&out.stdout)))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        if self.succeeded && !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "provision: control plane directory kept: {}",
                self.dir.display()
            );
        }
    }
}

/// The operator binary as a child process; killed when dropped.
struct Operator {
    child: Child,
    http: String,
}

impl Operator {
    fn args(p: &Params) -> Vec<String> {
        [
            "run",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--platform-egress",
            PLATFORM_EGRESS,
            "--resync",
            p.resync.as_str(),
            "--lease-duration",
            "5s",
            "--http-addr",
            p.operator_http().as_str(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn start(p: &Params, kubeconfig: &Path, log: &Path) -> Result<Self> {
        let child = Command::new(OPERATOR_BIN)
            .args(Self::args(p))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("start serre-operator")?;
        Ok(Self {
            child,
            http: p.operator_http(),
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

async fn create_tenant(client: &Client, name: &str, sandboxes: usize) -> Result<()> {
    let n = sandboxes as u64;
    let spec = TenantSpec {
        display_name: format!("Benchmark tenant {name}"),
        kind: TenantKind::Commune,
        members: vec![MemberGroup {
            group: format!("{name}-admins"),
            role: MemberRole::Admin,
        }],
        // Room for every sandbox of the run (1 CPU, 4Gi, 10Gi each) and then some.
        allowance: Allowance {
            cpu: (2 * n).to_string(),
            memory: format!("{}Gi", 8 * n),
            gpus: 0,
            storage: format!("{}Gi", 20 * n),
            sandboxes: u32::try_from(2 * n)?,
        },
        allowed_registries: vec![],
        suspended: false,
    };
    let api = Api::<Tenant>::all(client.clone());
    // The CRDs were just created: retry while they are being established.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api
            .create(&PostParams::default(), &Tenant::new(name, spec.clone()))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("provision: tenant {name} not created yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context(format!("create tenant {name}")),
        }
    }
}

/// Create every sandbox, `in_flight` at a time; returns when each create was answered.
async fn create_sandboxes(
    client: &Client,
    p: &Params,
    tenants: &[String],
) -> Result<Vec<(String, Instant)>> {
    let api = Api::<Sandbox>::all(client.clone());
    let expires_at = chrono::Utc::now() + chrono::Duration::days(30);
    let results: Vec<Result<(String, Instant)>> = futures::stream::iter(0..p.sandboxes)
        .map(|i| {
            let api = api.clone();
            // Round robin, so every tenant is provisioning at the same time.
            let tenant = tenants[i % tenants.len()].clone();
            async move {
                let name = format!("{PREFIX}-{i:04}");
                let spec = SandboxSpec {
                    tenant,
                    purpose: "Provisioning benchmark (issue 2)".into(),
                    owners: vec!["bench@serre.invalid".into()],
                    resources: SandboxResources {
                        cpu: "1".into(),
                        memory: "4Gi".into(),
                        gpu: None,
                        storage: "10Gi".into(),
                        max_pods: 4,
                    },
                    expires_at,
                    extra_egress_cidrs: vec![],
                };
                api.create(&PostParams::default(), &Sandbox::new(&name, spec))
                    .await
                    .with_context(|| format!("create sandbox {name}"))?;
                Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(p.in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

#[derive(Default)]
struct Progress {
    /// When each sandbox was first seen Ready.
    ready: HashMap<String, Instant>,
    /// When each sandbox was first seen admitted (out of Pending).
    admitted: HashMap<String, Instant>,
    phases: HashMap<String, SandboxPhase>,
    /// Last status seen, and the `phase/Ready reason` steps each sandbox went through.
    last_status: HashMap<String, Value>,
    steps: HashMap<String, Vec<String>>,
    /// Status changes seen (a write that changes nothing makes no watch event).
    status_changes: usize,
    /// How often each status field changed: top-level keys, conditions by type.
    changed_fields: BTreeMap<String, usize>,
}

impl Progress {
    fn observe(&mut self, s: &Sandbox) {
        let name = s.name_any();
        let phase = s.status.as_ref().map(|st| st.phase).unwrap_or_default();
        if phase == SandboxPhase::Ready && !self.ready.contains_key(&name) {
            self.ready.insert(name.clone(), Instant::now());
        }
        let admitted = s.status.as_ref().is_some_and(|st| st.admitted.is_some());
        if admitted && !self.admitted.contains_key(&name) {
            self.admitted.insert(name.clone(), Instant::now());
        }
        self.phases.insert(name.clone(), phase);
        let status = serde_json::to_value(&s.status).unwrap_or_default();
        let before = self.last_status.get(&name).cloned().unwrap_or(Value::Null);
        if status == before {
            return;
        }
        self.status_changes += 1;
        for field in changed_fields(&before, &status) {
            *self.changed_fields.entry(field).or_default() += 1;
        }
        let reason = s
            .status
            .as_ref()
            .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
            .map_or("-".to_owned(), |c| c.reason.clone());
        let step = format!("{phase:?}/{reason}");
        let steps = self.steps.entry(name.clone()).or_default();
        if steps.last() != Some(&step) {
            steps.push(step);
        }
        self.last_status.insert(name, status);
    }

    /// The distinct step sequences, most frequent first.
    fn sequences(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for steps in self.steps.values() {
            *counts.entry(steps.join(" → ")).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Top-level status fields that differ; conditions are compared by type, ignoring
/// nothing (a new `lastTransitionTime` counts as a change).
fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        if b.get(k) == a.get(k) {
            continue;
        }
        if k != "conditions" {
            out.push(k.clone());
            continue;
        }
        let by_type = |v: Option<&Value>| -> BTreeMap<String, Value> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c.clone()))
                .collect()
        };
        let (cb, ca) = (by_type(b.get(k)), by_type(a.get(k)));
        let mut types: Vec<&String> = cb.keys().chain(ca.keys()).collect();
        types.sort();
        types.dedup();
        for t in types {
            if cb.get(t) != ca.get(t) {
                out.push(format!("conditions[{t}]"));
            }
        }
    }
    out
}

/// Watch sandboxes: when each one first shows `Ready`, and how its status changed.
async fn track_ready(client: Client, progress: Arc<Mutex<Progress>>) {
    let stream = watcher(Api::<Sandbox>::all(client), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(s) = item else { continue };
        progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&s);
    }
}

/// Wait until every sandbox is Ready (or the timeout); returns the time from `t0` and
/// a one-second timeline of readiness and the operator's counters.
async fn wait_all_ready(
    p: &Params,
    progress: &Mutex<Progress>,
    op: &str,
    t0: Instant,
) -> (Option<Duration>, Vec<Value>) {
    let mut timeline = Vec::new();
    let mut next_sample = Duration::ZERO;
    loop {
        let (ready, last, phases) = {
            let pr = progress.lock().unwrap_or_else(|e| e.into_inner());
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for ph in pr.phases.values() {
                *phases.entry(format!("{ph:?}")).or_default() += 1;
            }
            (pr.ready.len(), pr.ready.values().max().copied(), phases)
        };
        let elapsed = t0.elapsed();
        if elapsed >= next_sample || ready >= p.sandboxes {
            next_sample += Duration::from_secs(1);
            let m = scrape(op);
            let get = |name: &str, filter: &[(&str, &str)]| m.as_ref().map(|m| m.sum(name, filter));
            let sample = json!({
                "t_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
                "ready": ready,
                "phases": phases,
                "sandbox_reconciles": get("serre_operator_reconciliations_total", &[("controller", "sandbox")]),
                "tenant_reconciles": get("serre_operator_reconciliations_total", &[("controller", "tenant")]),
                "writes": get("serre_operator_api_writes_total", &[]),
            });
            if timeline.len() % 5 == 0 || ready >= p.sandboxes {
                eprintln!("provision: {sample}");
            }
            timeline.push(sample);
        }
        if ready >= p.sandboxes {
            return (last.map(|l| l.saturating_duration_since(t0)), timeline);
        }
        if elapsed > p.ready_timeout {
            eprintln!(
                "provision: only {ready} of {} sandboxes Ready after {:?}",
                p.sandboxes, p.ready_timeout
            );
            return (None, timeline);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Children the operator created, by kind (found by its managed-by label).
async fn count_children(client: &Client) -> Result<BTreeMap<&'static str, usize>> {
    async fn count<K>(client: &Client) -> Result<usize>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let lp = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
        Ok(Api::<K>::all(client.clone())
            .list_metadata(&lp)
            .await?
            .items
            .len())
    }
    Ok(BTreeMap::from([
        ("Namespace", count::<Namespace>(client).await?),
        ("ResourceQuota", count::<ResourceQuota>(client).await?),
        ("LimitRange", count::<LimitRange>(client).await?),
        ("ServiceAccount", count::<ServiceAccount>(client).await?),
        ("RoleBinding", count::<RoleBinding>(client).await?),
        ("NetworkPolicy", count::<NetworkPolicy>(client).await?),
    ]))
}

// ---------------------------------------------------------------------------------------
// Resync
// ---------------------------------------------------------------------------------------

struct Resync {
    /// Seconds from the start of the wait until the first resync reconcile.
    started_after_s: Option<f64>,
    /// Seconds from the first to the last of the N reconciles.
    duration_s: Option<f64>,
    reconciles: f64,
    operator_writes: BTreeMap<Vec<String>, f64>,
    apiserver_writes: BTreeMap<Vec<String>, f64>,
    lease_writes: f64,
    completed: bool,
}

impl Resync {
    fn operator_total(&self) -> f64 {
        total(&self.operator_writes)
    }

    fn apiserver_total(&self) -> f64 {
        total(&self.apiserver_writes)
    }

    /// The apiserver's count of the writes only the operator sends (see [`attribute`]).
    fn apiserver_operator(&self) -> f64 {
        attribute(&self.apiserver_writes, 0.0)
            .get("operator")
            .copied()
            .unwrap_or(0.0)
    }

    fn json(&self) -> Value {
        json!({
            "completed": self.completed,
            "started_after_s": self.started_after_s,
            "duration_s": self.duration_s,
            "sandbox_reconciles": self.reconciles,
            "operator_writes": self.operator_total(),
            "operator_writes_by_kind_verb": to_json(&self.operator_writes),
            "apiserver_writes_without_leases": self.apiserver_total(),
            "apiserver_writes_attributed_to_operator": self.apiserver_operator(),
            "apiserver_writes_by_verb_resource": to_json(&self.apiserver_writes),
            "lease_writes": self.lease_writes,
            "target_writes": 0,
        })
    }
}

/// After provisioning has settled: wait for a full resync (≥ N sandbox reconciles) and
/// count what it wrote.
async fn measure_resync(p: &Params, op: &str, cp: &ControlPlane) -> Result<Resync> {
    let reconciles = |m: &Prom| {
        m.sum(
            "serre_operator_reconciliations_total",
            &[("controller", "sandbox")],
        )
    };
    let op0 = scrape(op).context("operator metrics")?;
    let api0 = cp.apiserver_metrics()?;
    let r0 = reconciles(&op0);
    let target = r0 + p.sandboxes as f64;
    let start = Instant::now();
    let deadline = start + p.resync_period + Duration::from_secs(180);
    let (mut first, mut last) = (None, None);
    eprintln!(
        "provision: waiting for a full resync ({} sandbox reconciles)",
        p.sandboxes
    );
    let completed = loop {
        let now = scrape(op).map(|m| reconciles(&m)).unwrap_or(r0);
        if now > r0 && first.is_none() {
            first = Some(start.elapsed());
        }
        if now >= target {
            last = Some(start.elapsed());
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    settle(op, Duration::from_secs(3), Duration::from_secs(60)).await;
    let op1 = scrape(op).context("operator metrics")?;
    let api1 = cp.apiserver_metrics()?;
    let mut apiserver_writes = apiserver_writes(&api1, &api0);
    let leases: Vec<_> = apiserver_writes
        .keys()
        .filter(|k| k[2] == "leases")
        .cloned()
        .collect();
    let lease_writes = leases
        .iter()
        .filter_map(|k| apiserver_writes.remove(k))
        .sum();
    Ok(Resync {
        started_after_s: first.map(|d| d.as_secs_f64()),
        duration_s: first.zip(last).map(|(f, l)| (l - f).as_secs_f64()),
        reconciles: reconciles(&op1) - r0,
        operator_writes: op1.delta(&op0, "serre_operator_api_writes_total", &["kind", "verb"]),
        apiserver_writes,
        lease_writes,
        completed,
    })
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// Samples of a Prometheus text exposition.
struct Prom(Vec<(String, BTreeMap<String, String>, f64)>);

impl Prom {
    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(parse_sample)
                .collect(),
        )
    }

    fn samples<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, f64)> + 'a {
        self.0.iter().filter(move |(n, labels, _)| {
            n == name
                && filter
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples(name, filter).map(|s| s.2).sum()
    }

    /// Sums of `name` grouped by the values of `keys`.
    fn group(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for (_, labels, v) in self.samples(name, &[]) {
            let key = keys
                .iter()
                .map(|k| labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_default() += v;
        }
        out
    }

    /// `self - before`, grouped by `keys`, non-zero groups only.
    fn delta(&self, before: &Prom, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let old = before.group(name, keys);
        self.group(name, keys)
            .into_iter()
            .map(|(k, v)| {
                let d = v - old.get(&k).copied().unwrap_or(0.0);
                (k, d)
            })
            .filter(|(_, d)| *d != 0.0)
            .collect()
    }
}

/// `name{a="x",b="y"} 1.5` (label values may hold escaped quotes).
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let Some(open) = line.find('{') else {
        let mut it = line.split_whitespace();
        return Some((
            it.next()?.to_owned(),
            BTreeMap::new(),
            it.next()?.parse().ok()?,
        ));
    };
    let mut labels = BTreeMap::new();
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_value, mut escaped, mut close) = (false, false, None);
    for (i, c) in line[open + 1..].char_indices() {
        if in_value {
            match (escaped, c) {
                (true, c) => {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_value = false;
                    labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                }
                (false, c) => value.push(c),
            }
        } else {
            match c {
                '"' => in_value = true,
                '}' => {
                    close = Some(open + 1 + i);
                    break;
                }
                '=' | ',' | ' ' => {}
                c => key.push(c),
            }
        }
    }
    let value = line[close? + 1..].split_whitespace().next()?.parse().ok()?;
    Some((line[..open].to_owned(), labels, value))
}

fn scrape(addr: &str) -> Option<Prom> {
    http_get(addr, "/metrics").map(|b| Prom::parse(&b))
}

/// Write requests served between two apiserver scrapes, by (verb, group, resource,
/// subresource), whatever their response code.
fn apiserver_writes(after: &Prom, before: &Prom) -> BTreeMap<Vec<String>, f64> {
    after
        .delta(
            before,
            "apiserver_request_total",
            &["verb", "group", "resource", "subresource"],
        )
        .into_iter()
        .filter(|(k, _)| WRITE_VERBS.contains(&k[0].as_str()))
        .collect()
}

/// Write requests answered with something other than 2xx, by (verb, resource, code).
fn apiserver_write_errors(after: &Prom, before: &Prom) -> BTreeMap<Vec<String>, f64> {
    after
        .delta(
            before,
            "apiserver_request_total",
            &["verb", "resource", "code"],
        )
        .into_iter()
        .filter(|(k, _)| WRITE_VERBS.contains(&k[0].as_str()) && !k[2].starts_with('2'))
        .collect()
}

/// Where the apiserver spent its time between two scrapes: request count, summed
/// request duration and response bytes by (verb, resource, subresource), most time
/// first (long-running WATCH and CONNECT requests left out).
fn apiserver_time(after: &Prom, before: &Prom) -> Vec<Value> {
    let keys = ["verb", "resource", "subresource"];
    let seconds = after.delta(before, "apiserver_request_duration_seconds_sum", &keys);
    let count = after.delta(before, "apiserver_request_duration_seconds_count", &keys);
    let bytes = after.delta(before, "apiserver_response_sizes_sum", &keys);
    let mut rows: Vec<_> = seconds
        .into_iter()
        .filter(|(k, _)| k[0] != "WATCH" && k[0] != "CONNECT")
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.into_iter()
        .take(10)
        .map(|(k, s)| {
            json!({
                "request": k.join(" ").trim_end(),
                "count": count.get(&k),
                "seconds": (s * 100.0).round() / 100.0,
                "response_mb": bytes.get(&k).map(|b| (b / 1e4).round() / 100.0),
            })
        })
        .collect()
}

/// Who sent each apiserver write. The metric has no client label, so writes are
/// attributed by what only one party does here:
/// - the benchmark client: `POST sandboxes` (exactly N);
/// - the operator: every server-side apply (`APPLY`), every `PATCH` (the finalizer
///   helper's JSON patch), and `events.k8s.io` Events (kube-rs' Recorder; the
///   controller-manager writes core/v1 Events);
/// - its leader Lease: `coordination.k8s.io` leases;
/// - the controller-manager: the rest (default ServiceAccounts, token Secrets,
///   `kube-root-ca.crt` ConfigMaps, quota status `PUT`s, core Events, and the
///   TokenReviews/SubjectAccessReviews of the benchmark's scrapes of its /metrics).
///
/// The controller-manager's own `rest_client_requests_total` checks the last group.
fn attribute(
    writes: &BTreeMap<Vec<String>, f64>,
    client_creates: f64,
) -> BTreeMap<&'static str, f64> {
    let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
    for (k, v) in writes {
        let (verb, group, resource) = (k[0].as_str(), k[1].as_str(), k[2].as_str());
        let who = if resource == "leases" {
            "operator lease"
        } else if verb == "POST" && resource == "sandboxes" {
            let client = v.min(client_creates);
            *out.entry("benchmark client").or_default() += client;
            if v - client > 0.0 {
                *out.entry("unattributed").or_default() += v - client;
            }
            continue;
        } else if verb == "APPLY" || verb == "PATCH" || group == "events.k8s.io" {
            "operator"
        } else {
            "controller-manager"
        };
        *out.entry(who).or_default() += v;
    }
    out
}

fn attribute_json(a: &BTreeMap<&'static str, f64>, n: f64) -> Value {
    a.iter()
        .map(|(k, v)| ((*k).to_owned(), json!({"total": v, "per_sandbox": v / n})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn mean_reconcile(after: &Prom, before: &Prom) -> Value {
    let sum = after.delta(
        before,
        "serre_operator_reconcile_duration_seconds_sum",
        &["controller"],
    );
    let count = after.delta(
        before,
        "serre_operator_reconcile_duration_seconds_count",
        &["controller"],
    );
    sum.iter()
        .filter_map(|(k, s)| Some((k[0].clone(), json!(s / count.get(k)?))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Sum of a group (0, not the empty sum's -0, when empty).
fn total(m: &BTreeMap<Vec<String>, f64>) -> f64 {
    m.values().fold(0.0, |a, v| a + v)
}

fn to_json(m: &BTreeMap<Vec<String>, f64>) -> Value {
    m.iter()
        .map(|(k, v)| (k.join(" "), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Wait until the operator's writes and reconciles have not moved for `quiet`.
async fn settle(op: &str, quiet: Duration, max: Duration) {
    let read = || {
        scrape(op).map(|m| {
            (
                m.sum("serre_operator_api_writes_total", &[]),
                m.sum("serre_operator_reconciliations_total", &[]),
            )
        })
    };
    let start = Instant::now();
    let mut last = read();
    let mut since = Instant::now();
    while start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = read();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
    eprintln!("provision: the operator's counters still moved after {max:?}");
}

async fn wait_for(max: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + max;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out after {max:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Minimal HTTP GET on loopback (status 200 only; the body is read to the close).
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_owned())
}

// ---------------------------------------------------------------------------------------
// Processes: CPU time, memory, load
// ---------------------------------------------------------------------------------------

struct Pids {
    operator: u32,
    apiserver: Option<u32>,
    etcd: Option<u32>,
    controller_manager: Option<u32>,
}

/// CPU ticks (user + system) of the processes involved and of the whole machine.
struct CpuSample {
    processes: Vec<(&'static str, u64)>,
    machine_busy: u64,
}

impl CpuSample {
    fn take(p: &Pids) -> Self {
        let me = std::process::id();
        let processes = [
            ("operator", Some(p.operator)),
            ("kube-apiserver", p.apiserver),
            ("etcd", p.etcd),
            ("kube-controller-manager", p.controller_manager),
            ("benchmark client", Some(me)),
        ]
        .into_iter()
        .filter_map(|(name, pid)| Some((name, process_ticks(pid?)?)))
        .collect();
        Self {
            processes,
            machine_busy: machine_busy_ticks().unwrap_or(0),
        }
    }

    /// CPU seconds per process between two samples, with everything else on the machine
    /// (other engineers' builds) as "others".
    fn since(&self, before: &CpuSample, wall: Duration) -> Value {
        let hz = clock_ticks_per_second();
        let mut out = serde_json::Map::new();
        let mut ours = 0;
        for (name, t) in &self.processes {
            if let Some((_, b)) = before.processes.iter().find(|(n, _)| n == name) {
                ours += t - b;
                out.insert((*name).to_owned(), json!((t - b) as f64 / hz));
            }
        }
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        out.insert(
            "others".into(),
            json!(busy.saturating_sub(ours) as f64 / hz),
        );
        out.insert("machine_busy".into(), json!(busy as f64 / hz));
        out.insert("wall".into(), json!(wall.as_secs_f64()));
        out.into()
    }
}

fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    Some(cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (VmHWM, VmRSS) in KiB.
fn proc_status_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Per-sandbox spans, each in seconds.
struct Latencies {
    ready: Vec<f64>,
    admitted: Vec<f64>,
    admitted_to_ready: Vec<f64>,
}

/// Seconds from `from` to `to` for each sandbox found in both, sorted.
fn spans(from: &HashMap<String, Instant>, to: &HashMap<String, Instant>) -> Vec<f64> {
    let mut v: Vec<f64> = from
        .iter()
        .filter_map(|(name, a)| Some(to.get(name)?.saturating_duration_since(*a).as_secs_f64()))
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn percentiles(sorted: &[f64]) -> Value {
    let at = |q: f64| {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

struct SummaryInput<'a> {
    p: &'a Params,
    ready_s: Option<f64>,
    all_created: Duration,
    latencies: &'a Latencies,
    status_history: &'a Value,
    api_time: &'a [Value],
    op_writes: &'a BTreeMap<Vec<String>, f64>,
    op_writes_total: f64,
    attributed: &'a BTreeMap<&'static str, f64>,
    kcm_write_total: Option<f64>,
    api_errors: &'a BTreeMap<Vec<String>, f64>,
    objects: &'a BTreeMap<&'static str, usize>,
    objects_per_sandbox: f64,
    reconciles: &'a BTreeMap<Vec<String>, f64>,
    failures: &'a BTreeMap<Vec<String>, f64>,
    cpu: &'a Value,
    resync: &'a Resync,
    rss: Option<(u64, u64)>,
    loads: [[f64; 3]; 3],
}

fn print_summary(s: &SummaryInput<'_>) {
    let n = s.p.sandboxes as f64;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let pct = |v: &[f64], q: f64| {
        (!v.is_empty())
            .then(|| v[((v.len() - 1) as f64 * q).round() as usize])
            .map_or("-".into(), |x| format!("{x:.1}"))
    };
    println!();
    println!(
        "Operator provisioning: {} sandboxes, {} tenants, {} creates in flight, {} CPUs",
        s.p.sandboxes,
        s.p.tenants,
        s.p.in_flight,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "load average (1/5/15 min): start {:?}, all Ready {:?}, end {:?}",
        s.loads[0], s.loads[1], s.loads[2]
    );
    println!();
    println!("| figure | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| time to all Ready (first create → last Ready) | {} | < {TARGET_READY_S:.0} s | {} |",
        s.ready_s
            .map_or("not reached".into(), |v| format!("{v:.1} s")),
        verdict(s.ready_s.is_some_and(|v| v < TARGET_READY_S))
    );
    println!(
        "| writes per sandbox (operator counter) | {:.2} ({:.2} × {} objects) | — | |",
        s.op_writes_total / n,
        s.op_writes_total / n / s.objects_per_sandbox,
        s.objects_per_sandbox
    );
    let operator_api = s.attributed.get("operator").copied().unwrap_or(0.0);
    println!(
        "| writes per sandbox (apiserver, attributed to the operator) | {:.2} ({:.2} × {} objects) | — | |",
        operator_api / n,
        operator_api / n / s.objects_per_sandbox,
        s.objects_per_sandbox
    );
    println!(
        "| writes during a full resync, nothing changed | {} (apiserver: {} operator, {} in all, + {} Lease) | 0 | {} |",
        s.resync.operator_total(),
        s.resync.apiserver_operator(),
        s.resync.apiserver_total(),
        s.resync.lease_writes,
        verdict(
            s.resync.completed
                && s.resync.operator_total() == 0.0
                && s.resync.apiserver_operator() == 0.0
        )
    );
    let mb = s.rss.map(|(hwm, _)| hwm as f64 * 1024.0 / 1e6);
    println!(
        "| operator peak RSS (VmHWM) | {} | < {TARGET_RSS_MB:.0} MB | {} |",
        mb.map_or("-".into(), |v| format!("{v:.1} MB")),
        verdict(mb.is_some_and(|v| v < TARGET_RSS_MB))
    );
    println!();
    println!(
        "creates answered after {:.1} s; per sandbox, p50 / p90 / max in seconds:",
        s.all_created.as_secs_f64()
    );
    for (what, v) in [
        ("create → Ready", &s.latencies.ready),
        ("create → admitted", &s.latencies.admitted),
        ("admitted → Ready", &s.latencies.admitted_to_ready),
    ] {
        println!(
            "  {what:<18} {} / {} / {}",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 1.0)
        );
    }
    println!(
        "objects per sandbox: {} ({})",
        s.objects_per_sandbox,
        s.objects
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("operator writes by kind/verb (per sandbox):");
    for (k, v) in s.op_writes {
        println!("  {:<28} {:>7} {:>7.2}", k.join(" "), v, v / n);
    }
    println!("apiserver writes by sender (per sandbox):");
    for (k, v) in s.attributed {
        println!("  {k:<28} {v:>7} {:>7.2}", v / n);
    }
    if let Some(k) = s.kcm_write_total {
        println!("  (controller-manager's own rest_client count of its writes: {k})");
    }
    if !s.api_errors.is_empty() {
        println!(
            "apiserver writes answered with an error: {}",
            to_json(s.api_errors)
        );
    }
    println!(
        "reconciles until all Ready: {} (sandbox reconciles per sandbox {:.2}); failures: {}",
        to_json(s.reconciles),
        s.reconciles
            .get(&vec!["sandbox".to_owned()])
            .copied()
            .unwrap_or(0.0)
            / n,
        to_json(s.failures)
    );
    println!(
        "status changes seen per sandbox: {} (fields changed: {}); step sequences:",
        s.status_history["status_changes_per_sandbox"], s.status_history["changed_fields"]
    );
    for seq in s.status_history["sequences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "  {:>5} × {}",
            seq["sandboxes"],
            seq["steps"].as_str().unwrap_or("")
        );
    }
    println!("CPU seconds until all Ready: {}", s.cpu);
    println!("apiserver time until all Ready, by request (count, summed duration, response size):");
    for r in s.api_time {
        let num = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x}"));
        println!(
            "  {:<36} {:>6} {:>8} s {:>8} MB",
            r["request"].as_str().unwrap_or(""),
            num(&r["count"]),
            num(&r["seconds"]),
            num(&r["response_mb"])
        );
    }
    println!(
        "resync: {} sandbox reconciles in {} s, operator writes {}, apiserver writes {} (+ {} Lease)",
        s.resync.reconciles,
        s.resync
            .duration_s
            .map_or("-".into(), |d| format!("{d:.1}")),
        to_json(&s.resync.operator_writes),
        to_json(&s.resync.apiserver_writes),
        s.resync.lease_writes
    );
}
