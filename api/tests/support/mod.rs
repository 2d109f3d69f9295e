//! Test harness: real services started with the project's scripts (or shared through
//! environment variables), and the gateway itself, started in-process on a free port.
//!
//! - PostgreSQL: `SERRE_TEST_DATABASE_URL` (a superuser URL; each test creates its own
//!   database) or `deploy/dev/postgres.sh start`.
//! - OpenID provider: `SERRE_TEST_OIDC_DIR` (a directory where `deploy/dev/oidc-provider.sh
//!   start` ran: `issuer`, `signing-key.pem`, `kid`) or the script itself.
//! - Kubernetes: `SERRE_TEST_KUBECONFIG` or `deploy/dev/control-plane.sh start`.
//! - Images for pods on the test cluster's node: `SERRE_TEST_IMAGES` and
//!   `SERRE_TEST_IMAGE_TAG` ([`test_image`]); the address pods reach this machine on
//!   (where the gateway under test listens): `SERRE_TEST_HOST_ADDR`. deploy/dev/test.sh
//!   sets all three.
//!
//! Services started here stop when the test binary exits (parent-pid watchdogs). Their
//! ports are free ones in 15400–15497.
#![allow(dead_code)]

mod gateway;
pub mod policy;

// Not every test binary starts a gateway.
#[allow(unused_imports)]
pub use gateway::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use serre_api::app::Running;
use serre_api::config::Config;
use serre_api::identity::dev::{DevClaims, DevIssuer};

/// The reference of one of Serre's images built for the tests (`serre-api`,
/// `serre-example-model`), from `SERRE_TEST_IMAGES` (a registry path the test cluster's
/// node pulls from, e.g. `10.250.0.1:16445/serre`) and `SERRE_TEST_IMAGE_TAG`. A test
/// that runs pods cannot run without them, and fails.
pub fn test_image(name: &str) -> String {
    format!(
        "{}/{name}:{}",
        test_images(),
        test_env("SERRE_TEST_IMAGE_TAG")
    )
}

/// The registry path of the test images (`SERRE_TEST_IMAGES`).
pub fn test_images() -> String {
    test_env("SERRE_TEST_IMAGES")
}

fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test runs real pods on the test cluster's node. Run \
             deploy/dev/test.sh, or push the images with `deploy/images.sh push <node \
             registry>` and set SERRE_TEST_IMAGES=<registry>/serre, SERRE_TEST_IMAGE_TAG \
             and SERRE_TEST_HOST_ADDR"
        )
    })
}

/// Where the gateway under test listens: the address pods on the test node reach this
/// machine on (`SERRE_TEST_HOST_ADDR`), else loopback.
pub fn listen_host() -> String {
    std::env::var("SERRE_TEST_HOST_ADDR").unwrap_or_else(|_| "127.0.0.1".into())
}

/// The workspace root: the first ancestor of the crate under test that holds `deploy/dev`
/// (this module is also included by serre-cli's tests, one directory deeper).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("deploy/dev").is_dir())
        .expect("workspace root")
        .to_path_buf()
}

/// The gateway's binary, `serre-api`: cargo names it to serre-api's own tests
/// (`CARGO_BIN_EXE_serre-api`); the cluster tests (`api/cluster-tests`, another package)
/// find it beside their own binary, in `target/<profile>/`, where `cargo test --workspace`
/// (or `cargo build -p serre-api`) put it.
pub fn gateway_binary() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_serre-api") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("path of this test binary");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("serre-api");
    assert!(
        bin.is_file(),
        "{} is missing: build the gateway first (`cargo build -p serre-api`)",
        bin.display()
    );
    bin
}

fn script(name: &str) -> PathBuf {
    repo_root().join("deploy/dev").join(name)
}

/// `count` consecutive free loopback ports in 15400–15497, searched from a point that
/// depends on the process id (so concurrent test binaries rarely collide).
pub fn free_ports(count: u16) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = 98 - u32::from(count);
    let start =
        (std::process::id() * 7 + NEXT.fetch_add(u32::from(count), Ordering::Relaxed)) % span;
    for i in 0..span {
        let base = 15400 + ((start + i) % span) as u16;
        if (0..count).all(|k| TcpListener::bind(("127.0.0.1", base + k)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} free consecutive ports in 15400-15497");
}

fn run_script(name: &str, args: &[&str], env: &[(&str, String)]) {
    let mut cmd = Command::new(script(name));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("run deploy/dev/{name}: {e}"));
    assert!(status.success(), "deploy/dev/{name} {args:?} failed");
}

/// A scratch directory for this test binary, removed once the binary exits.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("serre-api-test-{pid}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(trap '' HUP; while kill -0 {pid} 2>/dev/null; do sleep 1; done; rm -rf '{}') >/dev/null 2>&1 </dev/null &",
                dir.display()
            ))
            .status();
        dir
    })
}

/// A new directory inside [`scratch_dir`].
pub fn new_dir(prefix: &str) -> PathBuf {
    let dir = scratch_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("create dir");
    dir
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---- PostgreSQL -----------------------------------------------------------------------------

/// Superuser URL of a PostgreSQL server for this test binary.
pub fn postgres_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SERRE_TEST_DATABASE_URL") {
            return url;
        }
        // Services keep their own directories: their watchdogs need them to stop.
        let dir = std::env::temp_dir().join(format!("serre-api-pg-{}", std::process::id()));
        let port = free_ports(1);
        run_script(
            "postgres.sh",
            &["start", dir.to_str().expect("utf-8 path")],
            &[
                ("SERRE_PG_PORT", port.to_string()),
                ("SERRE_PG_PARENT_PID", std::process::id().to_string()),
                ("SERRE_PG_REMOVE_ON_EXIT", "1".into()),
            ],
        );
        std::fs::read_to_string(dir.join("url"))
            .expect("postgres.sh wrote DIR/url")
            .trim()
            .to_owned()
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of the given backend.
pub async fn fresh_database(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = new_dir("sqlite");
            format!("sqlite://{}", dir.join("serre-api.db").display())
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let name = unique("serre_test");
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .expect("connect to PostgreSQL");
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create database");
            let (base, _) = admin.rsplit_once('/').expect("URL with a database");
            format!("{base}/{name}")
        }
    }
}

/// Run the same async test body against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Backend::Postgres).await
                }
            )*
        }
    };
}

// ---- OpenID provider ------------------------------------------------------------------------

pub struct Oidc {
    pub issuer: String,
    pub dir: PathBuf,
}

impl Oidc {
    pub fn signing_key_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("signing-key.pem")).expect("signing-key.pem")
    }

    pub fn kid(&self) -> String {
        std::fs::read_to_string(self.dir.join("kid"))
            .expect("kid")
            .trim()
            .to_owned()
    }

    /// A real access token from the provider (client-credentials grant).
    pub async fn token(&self, client: &str, resource: &str) -> String {
        serre_api::install_crypto_provider();
        let secret = format!("dev-secret-{client}");
        let r: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
            .await
            .expect("token request")
            .error_for_status()
            .expect("token issued")
            .json()
            .await
            .expect("token response");
        r["access_token"].as_str().expect("access_token").to_owned()
    }
}

/// The OpenID provider for this test binary.
pub fn oidc() -> &'static Oidc {
    static OIDC: OnceLock<Oidc> = OnceLock::new();
    OIDC.get_or_init(|| {
        let dir = match std::env::var("SERRE_TEST_OIDC_DIR") {
            Ok(d) => PathBuf::from(d),
            Err(_) => {
                let dir =
                    std::env::temp_dir().join(format!("serre-api-oidc-{}", std::process::id()));
                run_script(
                    "oidc-provider.sh",
                    &["start", dir.to_str().expect("utf-8 path")],
                    &[
                        ("SERRE_OIDC_PORT", free_ports(1).to_string()),
                        ("SERRE_OIDC_PARENT_PID", std::process::id().to_string()),
                        ("SERRE_OIDC_REMOVE_ON_EXIT", "1".into()),
                    ],
                );
                dir
            }
        };
        let issuer = std::fs::read_to_string(dir.join("issuer"))
            .expect("DIR/issuer")
            .trim()
            .to_owned();
        Oidc { issuer, dir }
    })
}

// ---- Kubernetes -----------------------------------------------------------------------------

/// Path of a kubeconfig for a running control plane (SERRE_TEST_KUBECONFIG, or one
/// started for this test binary with deploy/dev/control-plane.sh).
pub fn kubeconfig() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("SERRE_TEST_KUBECONFIG") {
            return PathBuf::from(p);
        }
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("serre-api-cp-{pid}"));
        run_script(
            "control-plane.sh",
            &["start", dir.to_str().expect("utf-8 path")],
            &[
                ("SERRE_CP_PORT_BASE", free_ports(4).to_string()),
                ("SERRE_CP_PARENT_PID", pid.to_string()),
            ],
        );
        dir.join("kubeconfig")
    })
}

/// A client of the test control plane ([`kubeconfig`]).
pub async fn kube_client() -> kube::Client {
    serre_api::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("kubeconfig");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

// ---- Tenants --------------------------------------------------------------------------------

/// A Tenant resource's spec for cluster tests: groups `<name>-admins` (admin) and
/// `<name>-data` (member), a 16-core allowance without GPUs, no registry allowed.
pub fn tenant_spec(name: &str) -> serre_resources::TenantSpec {
    use serre_resources::{Allowance, MemberGroup, MemberRole, TenantKind, TenantSpec};
    TenantSpec {
        display_name: format!("Tenant {name}"),
        kind: TenantKind::Ept,
        members: vec![
            MemberGroup {
                group: format!("{name}-admins"),
                role: MemberRole::Admin,
            },
            MemberGroup {
                group: format!("{name}-data"),
                role: MemberRole::Member,
            },
        ],
        allowance: Allowance {
            cpu: "16".into(),
            memory: "64Gi".into(),
            gpus: 0,
            storage: "500Gi".into(),
            sandboxes: 5,
        },
        allowed_registries: vec![],
        suspended: false,
        energy_budget_kwh: None,
    }
}

/// Tenants of the tests: the Métropole, Est Ensemble (EPT) and Montreuil (commune).
pub const TENANTS_YAML: &str = r#"
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: metropole}
spec:
  displayName: Métropole du Grand Paris
  kind: Metropole
  members: [{group: mgp-admins, role: admin}]
  allowance: {cpu: "64", memory: 256Gi, storage: 2Ti, gpus: 4, sandboxes: 20}
---
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: est-ensemble}
spec:
  displayName: Est Ensemble
  kind: EPT
  members:
  - {group: est-ensemble-admins, role: admin}
  - {group: est-ensemble-data, role: member}
  allowance: {cpu: "16", memory: 64Gi, storage: 500Gi, gpus: 1, sandboxes: 5}
---
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: montreuil}
spec:
  displayName: Commune de Montreuil
  kind: Commune
  members:
  - {group: montreuil-admins, role: admin}
  - {group: montreuil-data, role: member}
  allowance: {cpu: "8", memory: 32Gi, storage: 200Gi, sandboxes: 3}
"#;

/// The (field, rule) pairs of a validation error's details.
pub fn issues(got: &(u16, Value)) -> Vec<(String, String)> {
    got.1["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {}", got.1))
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap_or_default().to_owned(),
                d["rule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Assert an error body: status, code, and that the message is not empty.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
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

/// A name unique to this run, for cluster-scoped objects shared between tests.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
