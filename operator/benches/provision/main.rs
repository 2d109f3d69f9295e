//! Provisioning benchmark (issue 2): many sandboxes at once on a fresh local control
//! plane, with the operator binary (release) as a separate process.
//!
//! Measures the time from the first create until every sandbox is `Ready`, the API
//! writes per sandbox (from the operator's own counter and, independently, from the
//! kube-apiserver's `apiserver_request_total`), the writes of a full resync with nothing
//! changed (target 0) and the operator's peak RSS; and, to show where the time goes,
//! per-sandbox create → admitted → Ready spans, reconciles per sandbox, the status
//! changes seen by a watch, CPU seconds per component and the apiserver's time by request.
//! In a cluster, every process of the stack is counted by what it is (by pid file, by
//! the node's Pod cgroups and mount namespace): kubelet, containerd and its shims,
//! kube-proxy, kube-scheduler, the registry, Garage, Prometheus, the OpenID provider,
//! the gateway Pod, the standby operator, this bench; what is left is "outside the bench"
//! (other sessions' builds). The apiserver's requests per sandbox and Garage's requests
//! by endpoint (its `/metrics`) show what each sandbox asks of them.
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
//! `READY_TIMEOUT` (10m), `KEEP_CONTROL_PLANE` (set: keep the temporary directory),
//! `IN_CLUSTER` (set: the operator runs as ops run it, see below).
//!
//! With `IN_CLUSTER=1` the control plane also gets a real node (`deploy/dev/node.sh`) and
//! Serre is installed on it with Helm (`deploy/dev/install.sh`: images built with
//! `SERRE_CARGO_PROFILE`, default release, pushed to the node's registry; two operator
//! replicas; storage on a real Garage, so each sandbox also gets a bucket, an S3 key and a
//! wrapped data key). The figures are the leader Pod's: its `/metrics` on its Pod IP, its
//! peak RSS from `/proc` of its process on this machine.

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

mod control_plane;
mod cpu;
mod in_cluster;
mod metrics;
mod process;
mod report;
mod resync;
mod workload;

use control_plane::*;
use cpu::*;
use in_cluster::*;
use metrics::*;
use process::*;
use report::*;
use resync::*;
use workload::*;

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
    in_cluster: bool,
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
            in_cluster: std::env::var_os("IN_CLUSTER").is_some(),
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

    // Install and tenants, before the operator starts (in a cluster: before the leader
    // has anything to do).
    let installed = if p.in_cluster {
        Some(Installed::start(&p, &cp, &client).await?)
    } else {
        let status = Command::new(OPERATOR_BIN)
            .args(["install", "--namespace", OPERATOR_NAMESPACE])
            .env("KUBECONFIG", &kubeconfig)
            .status()
            .context("run serre-operator install")?;
        if !status.success() {
            bail!("serre-operator install failed: {status}");
        }
        None
    };
    let tenants: Vec<String> = (0..p.tenants)
        .map(|t| format!("{PREFIX}-t{t:02}"))
        .collect();
    for t in &tenants {
        create_tenant(&client, t, p.per_tenant()).await?;
    }

    let (mut operator, op, operator_pid) = match &installed {
        Some(i) => {
            eprintln!(
                "provision: leader Pod {} (metrics {}, pid {})",
                i.leader, i.http, i.pid
            );
            (None, i.http.clone(), i.pid)
        }
        None => {
            let o = Operator::start(&p, &kubeconfig, &out_dir.join("provision-operator.log"))?;
            let (http, pid) = (o.http.clone(), o.child.id());
            (Some(o), http, pid)
        }
    };
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
    let pods = match &installed {
        Some(_) => Installed::pods(&client).await?,
        None => HashMap::new(),
    };
    let pids = Pids {
        operator: operator_pid,
        apiserver: cp.pid("apiserver"),
        etcd: cp.pid("etcd"),
        controller_manager: cp.pid("controller-manager"),
        node: installed
            .as_ref()
            .and_then(|i| NodeProcesses::find(&cp.dir, i.state(), pods)),
    };
    let op0 = scrape(&op).context("operator metrics")?;
    let api0 = cp.apiserver_metrics()?;
    let kcm0 = cp.controller_manager_metrics();
    let garage0 = installed.as_ref().and_then(Installed::garage_metrics);
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
    let garage1 = installed.as_ref().and_then(Installed::garage_metrics);
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
    let api_requests = apiserver_requests(&api1, &api0, n);
    let garage_calls = match (&garage1, &garage0) {
        (Some(a), Some(b)) => garage_requests(a, b, n),
        _ => Value::Null,
    };
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
    if let Some(o) = operator.as_mut() {
        o.stop();
    }

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
            "mode": if p.in_cluster { "in-cluster: helm install, 2 replicas, storage on Garage" } else { "operator process, storage off" },
            "operator_args": if p.in_cluster { json!({"chart_values": {"runtime.resync": p.resync}}) } else { json!(Operator::args(&p)) },
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
        "requests_until_settled": {
            "apiserver": api_requests,
            "garage": garage_calls,
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
        api_requests: &api_requests,
        garage_calls: &garage_calls,
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
