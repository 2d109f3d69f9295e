//! Test harness: a real control plane (started with the project's own script, or
//! shared through SERRE_TEST_KUBECONFIG), clients, and objects with unique names.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serre_operator::resources::{
    Allowance, MemberGroup, MemberRole, Sandbox, SandboxResources, SandboxSpec, Tenant, TenantKind,
    TenantSpec,
};

pub const OPERATOR_NAMESPACE: &str = "serre-system";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of a kubeconfig for a running control plane. Uses SERRE_TEST_KUBECONFIG when
/// set (deploy/dev/test.sh starts one for the whole run); otherwise starts one for
/// this test binary with deploy/dev/control-plane.sh, stopped when the binary exits.
pub fn kubeconfig() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("SERRE_TEST_KUBECONFIG") {
            return PathBuf::from(p);
        }
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("serre-cp-{pid}"));
        let base = 20000 + (pid % 4000) * 5;
        let status = Command::new(repo_root().join("deploy/dev/control-plane.sh"))
            .arg("start")
            .arg(&dir)
            .env("SERRE_CP_PORT_BASE", base.to_string())
            .env("SERRE_CP_PARENT_PID", pid.to_string())
            .status()
            .expect("run deploy/dev/control-plane.sh");
        assert!(
            status.success(),
            "the control plane did not start (see {})",
            dir.display()
        );
        dir.join("kubeconfig")
    })
}

pub async fn client() -> Client {
    serre_operator::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig()).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Where the images built for the tests live: `SERRE_TEST_IMAGES` (a registry and path
/// the test cluster's node pulls from, e.g. `10.250.0.1:16445/serre`) and their tag
/// `SERRE_TEST_IMAGE_TAG`. deploy/dev/test.sh pushes deploy/images.sh's images there
/// before the tests; a test that runs pods cannot run without them, and fails.
pub fn test_images() -> String {
    std::env::var("SERRE_TEST_IMAGES").unwrap_or_else(|_| {
        panic!(
            "SERRE_TEST_IMAGES is not set: this test runs real pods on the test cluster's \
             node. Run deploy/dev/test.sh, or push the images with \
             `deploy/images.sh push <node registry>` and set SERRE_TEST_IMAGES=<registry>/serre \
             and SERRE_TEST_IMAGE_TAG"
        )
    })
}

/// The reference of one of Serre's images built for the tests (`serre-api`,
/// `serre-example-model`, ...).
pub fn test_image(name: &str) -> String {
    let tag = std::env::var("SERRE_TEST_IMAGE_TAG")
        .unwrap_or_else(|_| panic!("SERRE_TEST_IMAGE_TAG is not set (see SERRE_TEST_IMAGES)"));
    format!("{}/{name}:{tag}", test_images())
}

/// Install CRDs, the editor ClusterRole and the operator namespace (idempotent).
pub async fn install(client: &Client) {
    serre_operator::manifests::install(client, OPERATOR_NAMESPACE)
        .await
        .expect("install manifests");
}

/// A name unique to this run, for cluster-scoped objects shared between tests.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

pub fn tenant_spec(cpu: &str, sandboxes: u32) -> TenantSpec {
    TenantSpec {
        display_name: "Est Ensemble".into(),
        kind: TenantKind::Ept,
        members: vec![
            MemberGroup {
                group: "ept-admins".into(),
                role: MemberRole::Admin,
            },
            MemberGroup {
                group: "ept-data".into(),
                role: MemberRole::Member,
            },
        ],
        allowance: Allowance {
            cpu: cpu.into(),
            memory: "64Gi".into(),
            gpus: 1,
            storage: "500Gi".into(),
            sandboxes,
        },
        allowed_registries: vec![],
        suspended: false,
        energy_budget_kwh: None,
    }
}

pub fn sandbox_spec(tenant: &str, cpu: &str, expires_in: chrono::Duration) -> SandboxSpec {
    SandboxSpec {
        tenant: tenant.into(),
        purpose: "Integration test of the sandbox lifecycle".into(),
        owners: vec!["data-team@est-ensemble.fr".into()],
        resources: SandboxResources {
            cpu: cpu.into(),
            memory: "4Gi".into(),
            gpu: None,
            storage: "10Gi".into(),
            max_pods: 4,
        },
        expires_at: Utc::now() + expires_in,
        extra_egress_cidrs: vec![],
    }
}

pub async fn create_tenant(client: &Client, name: &str, spec: TenantSpec) -> Tenant {
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &Tenant::new(name, spec))
        .await
        .expect("create tenant")
}

pub async fn create_sandbox(client: &Client, name: &str, spec: SandboxSpec) -> Sandbox {
    Api::<Sandbox>::all(client.clone())
        .create(&PostParams::default(), &Sandbox::new(name, spec))
        .await
        .expect("create sandbox")
}

/// Poll `check` until it returns Some, or fail after `secs` with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the sandbox reaches `phase` and return it.
pub async fn wait_phase(client: &Client, name: &str, phase: &str, secs: u64) -> Sandbox {
    let api = Api::<Sandbox>::all(client.clone());
    eventually(secs, &format!("sandbox {name} to be {phase}"), || {
        let api = api.clone();
        async move {
            let s = api.get_opt(name).await.ok()??;
            let p = s
                .status
                .as_ref()
                .map(|st| format!("{:?}", st.phase))
                .unwrap_or_default();
            (p == phase).then_some(s)
        }
    })
    .await
}

pub async fn wait_gone<K>(api: &Api<K>, name: &str, secs: u64)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(secs, &format!("{name} to be deleted"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
}

pub fn condition<'a>(s: &'a Sandbox, type_: &str) -> &'a serre_operator::resources::Condition {
    s.status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| {
            panic!(
                "sandbox {} has no {type_} condition: {:?}",
                s.name_any(),
                s.status
            )
        })
}

/// Merge-patch a sandbox's spec.
pub async fn patch_sandbox(client: &Client, name: &str, patch: serde_json::Value) {
    Api::<Sandbox>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch sandbox");
}
pub mod garage;
pub mod operator;
pub mod process;
