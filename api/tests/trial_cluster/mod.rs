//! The cluster side of tests/runs.rs: a client of the test control plane, the operator
//! running in-process, the tenant and run bodies the test uses, and the kubelet's part
//! (no kubelet runs there) for a run's pod.

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use serre_resources::{LABEL_RUN, TenantSpec};

use crate::support::{self, eventually};

pub const REGISTRY: &str = "registry.example.fr/vendors";

pub async fn client() -> Client {
    support::kube_client().await
}

/// The operator, in-process on its own runtime (it lives as long as this test binary).
pub fn start_operator(gateway_url: &str) {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        build: serre_validation::config::BuildConfig,
    }
    let flags = Flags::parse_from([
        "serre-operator",
        "--gateway-url",
        gateway_url,
        "--run-fetch-image",
        "registry.example.fr/serre/serre-api:test",
    ]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = client().await;
            let options = serre_operator::controller::RunOptions {
                concurrency: 4,
                storage: None,
                resync: Duration::from_secs(600),
                events_namespace: "serre-system".into(),
            };
            let _ = tx.send(());
            serre_operator::controller::run(
                client,
                flags.build,
                options,
                std::sync::Arc::new(serre_operator::telemetry::Metrics::default()),
                std::future::pending(),
            )
            .await;
        });
    });
    rx.recv().expect("operator started");
}

/// A tenant allowed to run images from [`REGISTRY`].
pub fn tenant_spec(name: &str) -> TenantSpec {
    TenantSpec {
        allowed_registries: vec![REGISTRY.into()],
        ..support::tenant_spec(name)
    }
}

pub fn run_body(grants: &[&str], solution: Option<&str>) -> Value {
    json!({
        "image": format!("{REGISTRY}/summariser:2.1"),
        "command": ["python", "summarise.py"],
        "resources": {"cpu": "1", "memory": "2Gi"},
        "grants": grants,
        "solution": solution,
        "kind": "inference",
        "timeoutSeconds": 900,
        "functionalUnit": {"name": "deliberation", "count": 40},
    })
}

/// Play the kubelet for the run's pod.
pub async fn drive_pod(client: &Client, ns: &str, run: &str, phase: &str) {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = format!("{LABEL_RUN}={run}");
    let pod = eventually(90, &format!("the pod of {run}"), || {
        let (pods, selector) = (pods.clone(), selector.clone());
        async move {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            list.items.first().map(ResourceExt::name_any)
        }
    })
    .await;
    let mut status = json!({"phase": phase, "startTime": chrono::Utc::now().to_rfc3339()});
    if phase == "Succeeded" {
        status["containerStatuses"] = json!([{
            "name": "trial", "image": format!("{REGISTRY}/summariser:2.1"), "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": chrono::Utc::now().to_rfc3339(),
                "finishedAt": chrono::Utc::now().to_rfc3339()}}
        }]);
    }
    pods.patch_status(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .expect("patch pod status");
}
