//! The cluster side of tests/runs.rs: a client of the test cluster (control plane and a
//! real node), a Garage node, the operator running in-process with object storage on it,
//! and the tenant and run bodies the test uses. Runs are Serre's example model
//! (deploy/examples/model) pulled from the node's registry; their init step is the real
//! `serre-api fetch-grants` image, which fetches the grants from the gateway under test
//! (listening where pods reach it), and the model sends its results to that gateway, which
//! writes them into the sandbox's Garage bucket. tests/calibration.rs runs the operator
//! without storage (the model then prints its results).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::Client;
use serde_json::{Value, json};
use serre_operator::storage::config::StorageConfig;
use serre_operator::storage::garage::GarageAdmin;
use serre_operator::storage::keys::StorageKeys;
use serre_operator::storage::lifecycle::Storage;
use serre_resources::TenantSpec;

use crate::support::{self, test_image, test_images};

pub async fn client() -> Client {
    support::kube_client().await
}

/// A Garage node for this test binary (deploy/dev/garage.sh, stopped with the process):
/// its env file (endpoints, admin token file).
pub struct Garage {
    pub env: HashMap<String, String>,
}

impl Garage {
    pub fn start() -> Self {
        let pid = std::process::id();
        let dir: PathBuf = support::new_dir("garage");
        // Five consecutive free ports below the ephemeral range, from a point the pid picks.
        let base = (0..200u32)
            .map(|i| 14000 + ((pid + i) % 200) * 5)
            .find(|b| {
                (0..5).all(|k| std::net::TcpListener::bind(("127.0.0.1", (b + k) as u16)).is_ok())
            })
            .expect("five free consecutive ports in 14000-14999");
        let status = std::process::Command::new(support::repo_root().join("deploy/dev/garage.sh"))
            .arg("start")
            .arg(&dir)
            .env("SERRE_GARAGE_PORT_BASE", base.to_string())
            .env("SERRE_GARAGE_PARENT_PID", pid.to_string())
            .status()
            .expect("run deploy/dev/garage.sh");
        assert!(status.success(), "garage.sh start failed");
        let env = std::fs::read_to_string(dir.join("env")).expect("garage env file");
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { env }
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from garage env"))
    }
}

/// The operator, in-process on its own runtime (it lives as long as this test binary),
/// without object storage.
pub fn start_operator(gateway_url: &str) {
    spawn_operator(gateway_url, None);
}

/// The operator with object storage on `garage`: every sandbox gets a bucket, an S3 key,
/// a data key and the Secret `sandbox-storage` the gateway reads.
pub fn start_operator_with_storage(gateway_url: &str, garage: &Garage) {
    spawn_operator(gateway_url, Some(garage));
}

fn spawn_operator(gateway_url: &str, garage: Option<&Garage>) {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        build: serre_validation::config::BuildConfig,
        #[command(flatten)]
        storage: StorageConfig,
    }
    let fetch_image = test_image("serre-api");
    let mut args = vec![
        "serre-operator",
        "--gateway-url",
        gateway_url,
        "--run-fetch-image",
        &fetch_image,
    ];
    if let Some(g) = garage {
        args.extend([
            "--garage-admin-endpoint",
            g.get("SERRE_GARAGE_ADMIN_ENDPOINT"),
            "--garage-admin-token-file",
            g.get("SERRE_GARAGE_ADMIN_TOKEN_FILE"),
            "--s3-endpoint",
            g.get("SERRE_S3_ENDPOINT"),
        ]);
    }
    let flags = Flags::parse_from(args);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = client().await;
            let storage = if flags.storage.enabled() {
                Some(storage(&client, flags.storage).await)
            } else {
                None
            };
            let options = serre_operator::controller::RunOptions {
                concurrency: 4,
                storage,
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

/// The operator's storage side: its keys Secret in `serre-system` (made once), the Garage
/// admin client, the published verification key.
async fn storage(client: &Client, config: StorageConfig) -> Storage {
    let ns = "serre-system";
    let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns);
    if secrets
        .get_opt(&config.storage_keys_secret)
        .await
        .expect("get keys")
        .is_none()
    {
        let s = StorageKeys::generate_secret(ns, &config.storage_keys_secret).expect("keys");
        let _ = secrets.create(&Default::default(), &s).await;
    }
    let token = config.admin_token().expect("admin token");
    let endpoint = config.garage_admin_endpoint.clone().unwrap_or_default();
    let provisioner = GarageAdmin::new(&endpoint, token).expect("admin client");
    let keys = StorageKeys::load(client, ns, &config.storage_keys_secret)
        .await
        .expect("load keys");
    keys.publish_public_key(client, ns)
        .await
        .expect("publish key");
    Storage {
        provisioner: Arc::new(provisioner),
        keys,
        config,
        namespace: ns.into(),
    }
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
