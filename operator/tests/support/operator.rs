//! The operator under test, run in-process on its own thread and runtime, shared by
//! every test of a binary (one operator per cluster, as in production).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use kube::Client;
use serre_operator::config::BuildConfig;
use serre_operator::controller::{self, RunOptions};
use serre_operator::storage::config::StorageConfig;
use serre_operator::storage::garage::GarageAdmin;
use serre_operator::storage::keys::StorageKeys;
use serre_operator::storage::lifecycle::Storage;
use serre_operator::telemetry::Metrics;
use serre_operator::webhook::{self, WebhookConfig};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    build: BuildConfig,
    #[command(flatten)]
    storage: StorageConfig,
    #[command(flatten)]
    webhook: WebhookConfig,
}

/// Run an operator on a dedicated thread; `storage` prepares its storage side (or
/// none) once the CRDs are installed. Returns when the controllers are starting.
fn spawn_operator<F, Fut>(args: Vec<String>, storage: F) -> Arc<Metrics>
where
    F: FnOnce(Client, StorageConfig) -> Fut + Send + 'static,
    Fut: Future<Output = Option<Storage>>,
{
    let metrics = Arc::new(Metrics::default());
    let m = metrics.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = super::client().await;
            super::install(&client).await;
            let flags = Flags::parse_from(std::iter::once("test".to_owned()).chain(args));
            let storage = storage(client.clone(), flags.storage).await;
            // The admission webhook, when asked for, serves before the controllers run
            // (as in the binary); the API server reaches it on the host address.
            if flags.webhook.enabled {
                flags.webhook.validate().expect("webhook flags");
                webhook::start(
                    client.clone(),
                    flags.webhook.clone(),
                    super::OPERATOR_NAMESPACE.into(),
                    webhook::platform_images(&flags.build),
                    m.clone(),
                )
                .await
                .expect("the admission webhook starts");
            }
            let options = RunOptions {
                concurrency: 8,
                storage,
                resync: Duration::from_secs(600),
                events_namespace: super::OPERATOR_NAMESPACE.into(),
            };
            let _ = tx.send(());
            controller::run(client, flags.build, options, m, std::future::pending()).await;
        });
    });
    rx.recv().expect("operator thread started");
    metrics
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Where this process's webhook listens, once [`webhook_flags`] chose it.
pub static WEBHOOK_URL: OnceLock<String> = OnceLock::new();

/// The test cluster's PKI directory (beside its kubeconfig), where the API server's
/// webhook client certificate, its key and its CA are.
pub fn webhook_client_pki() -> std::path::PathBuf {
    super::kubeconfig()
        .parent()
        .expect("the kubeconfig's directory")
        .join("pki")
}

/// Flags serving the admission webhook from this process on the host address (where the
/// API server runs), on a free port, with a configuration named for this process.
/// `scope_tenant`: apply the policy to that tenant's sandbox namespaces only, so that the
/// configuration (failurePolicy Fail) never touches other test binaries sharing the
/// cluster, even once this process is gone.
pub fn webhook_flags(scope_tenant: Option<&str>) -> Vec<String> {
    let host = std::env::var("SERRE_TEST_HOST_ADDR").unwrap_or_else(|_| "10.250.0.1".into());
    let port = std::net::TcpListener::bind((host.as_str(), 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on the host address")
        .port();
    let _ = WEBHOOK_URL.set(format!("https://{host}:{port}"));
    // The test cluster's API server presents a client certificate of this CA to webhooks
    // (deploy/dev/control-plane.sh): the webhook answers no one else.
    let client_ca = webhook_client_pki().join("webhook-client-ca.crt");
    assert!(
        client_ca.exists(),
        "{} is missing: a control plane from an older deploy/dev/control-plane.sh (restart it)",
        client_ca.display()
    );
    let mut flags = args(&[
        "--webhook",
        "--webhook-addr",
        &format!("{host}:{port}"),
        "--webhook-url",
        &format!("https://{host}:{port}"),
        "--webhook-configuration",
        &format!("serre-test-policy-{}", std::process::id()),
        "--webhook-secret",
        "serre-test-webhook-tls",
        // This process talks to the API server as the test cluster's admin user
        // (deploy/dev/control-plane.sh, tokens.csv): the operator's identity here.
        "--webhook-platform-users",
        "serre-admin",
        "--webhook-client-ca",
        &client_ca.to_string_lossy(),
    ]);
    if let Some(t) = scope_tenant {
        flags.push("--webhook-namespace-selector".into());
        flags.push(format!("serre.metropolegrandparis.fr/tenant={t}"));
    }
    flags
}

/// The settings of the shared operators: short notice and grace so expiry can be observed.
fn shared_flags() -> Vec<String> {
    // Runs' init step is the real gateway image; nothing listens on the gateway URL here
    // (a run with grants fails to fetch them). Binaries without runs (lifecycle.rs) need
    // no images: the tests of trial_runs.rs read SERRE_TEST_IMAGES themselves and fail
    // without it.
    let fetch_image = match std::env::var("SERRE_TEST_IMAGES") {
        Ok(_) => super::test_image("serre-api"),
        Err(_) => "images.invalid/serre-api:unset".to_owned(),
    };
    args(&[
        "--expiry-notice",
        "1h",
        "--expiry-grace",
        "6s",
        "--platform-egress",
        "127.0.0.1/32:13900",
        "--gateway-url",
        "http://127.0.0.1:13901",
        "--run-fetch-image",
        &fetch_image,
    ])
}

/// Start the operator of the admission webhook tests once: the shared settings, and the
/// webhook applying to the sandbox namespaces of tenant `tenant` only. Returns its metrics.
pub fn shared_webhook_operator(tenant: &str) -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let mut flags = shared_flags();
            flags.extend(webhook_flags(Some(tenant)));
            spawn_operator(flags, |_, _| async { None })
        })
        .clone()
}

/// Start the shared operator (no object store) once; returns its metrics.
/// Short notice and grace so expiry can be observed in a test. With
/// `SERRE_TEST_WEBHOOK=1` it also serves the admission webhook for every sandbox
/// namespace (to run a binary's tests under the sandbox policy, on a cluster of its own:
/// the configuration outlives the process and refuses pods once nothing answers).
pub fn shared_operator() -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            if std::env::var("SERRE_TEST_WEBHOOK").is_ok_and(|v| v == "1") {
                let mut flags = shared_flags();
                flags.extend(webhook_flags(None));
                return spawn_operator(flags, |_, _| async { None });
            }
            spawn_operator(shared_flags(), |_, _| async { None })
        })
        .clone()
}

/// Start (once) an operator with object storage on the given Garage node.
pub fn shared_storage_operator(garage: &'static super::garage::Garage) -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let flags = args(&[
                "--expiry-grace",
                "6s",
                "--garage-admin-endpoint",
                garage.get("SERRE_GARAGE_ADMIN_ENDPOINT"),
                "--garage-admin-token-file",
                garage.get("SERRE_GARAGE_ADMIN_TOKEN_FILE"),
                "--s3-endpoint",
                garage.get("SERRE_S3_ENDPOINT"),
            ]);
            spawn_operator(flags, |client, config| async move {
                let ns = super::OPERATOR_NAMESPACE;
                let secrets =
                    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns);
                if secrets
                    .get_opt("serre-storage-keys")
                    .await
                    .expect("get keys")
                    .is_none()
                {
                    let s = StorageKeys::generate_secret(ns, "serre-storage-keys").expect("keys");
                    let _ = secrets.create(&Default::default(), &s).await;
                }
                let token = config.admin_token().expect("token");
                let endpoint = config.garage_admin_endpoint.clone().unwrap_or_default();
                let provisioner = GarageAdmin::new(&endpoint, token).expect("admin client");
                let keys = StorageKeys::load(&client, ns, "serre-storage-keys")
                    .await
                    .expect("load keys");
                keys.publish_public_key(&client, ns)
                    .await
                    .expect("publish key");
                Some(Storage {
                    provisioner: Arc::new(provisioner),
                    keys,
                    config,
                    namespace: ns.into(),
                })
            })
        })
        .clone()
}
