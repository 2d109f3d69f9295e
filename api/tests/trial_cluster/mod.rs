//! The cluster side of tests/runs.rs: a client of the test cluster (control plane and a
//! real node), the operator running in-process, and the tenant and run bodies the test
//! uses. Runs are Serre's example model (deploy/examples/model) pulled from the node's
//! registry; their init step is the real `serre-api fetch-grants` image, which fetches the
//! grants from the gateway under test (listening where pods reach it).

use std::time::Duration;

use clap::Parser;
use kube::Client;
use serde_json::{Value, json};
use serre_resources::TenantSpec;

use crate::support::{self, test_image, test_images};

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
    let fetch_image = test_image("serre-api");
    let flags = Flags::parse_from([
        "serre-operator",
        "--gateway-url",
        gateway_url,
        "--run-fetch-image",
        &fetch_image,
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

/// A tenant allowed to run images from the test images' registry.
pub fn tenant_spec(name: &str) -> TenantSpec {
    TenantSpec {
        allowed_registries: vec![test_images()],
        ..support::tenant_spec(name)
    }
}

/// A run of the example model: a per-commune trend of `deliberations` over `year`, after
/// `sleep` seconds (so the test sees it running), then `extra` flags.
pub fn run_body(grants: &[&str], solution: Option<&str>, sleep: u32, extra: &[&str]) -> Value {
    let mut args = vec![
        "--group".to_owned(),
        "commune".into(),
        "--x".into(),
        "year".into(),
        "--y".into(),
        "deliberations".into(),
        "--sleep-seconds".into(),
        sleep.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    json!({
        "image": test_image("serre-example-model"),
        "args": args,
        "resources": {"cpu": "1", "memory": "256Mi"},
        "grants": grants,
        "solution": solution,
        "kind": "inference",
        "timeoutSeconds": 900,
        "functionalUnit": {"name": "deliberation", "count": 40},
    })
}
