//! The cluster path against a real control plane (deploy/dev/control-plane.sh, or
//! SERRE_TEST_KUBECONFIG): tenants from `Tenant` resources, approved requests applied as
//! `Sandbox` resources by server-side apply, the operator's status shown, deletion, and
//! requests waiting while the cluster is unreachable.
//!
//! No operator runs here: where a test needs a status, it writes one the way the
//! operator does (server-side apply of the status subresource by `serre-operator`).

mod support;

use std::path::PathBuf;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serre_resources::{MemberRole, Sandbox, Tenant, TenantSpec};
use support::{Backend, Gateway, Setup, eventually, sandbox_body, unique_name};

/// The tests' tenant, allowed one GPU.
fn tenant_spec(name: &str) -> TenantSpec {
    let mut spec = support::tenant_spec(name);
    spec.allowance.gpus = 1;
    spec
}

async fn setup_cluster() -> (Client, PathBuf) {
    serre_api::install_crypto_provider();
    let kubeconfig = support::kubeconfig().to_path_buf();
    let client = support::kube_client().await;
    serre_operator::manifests::install(&client, "serre-system")
        .await
        .expect("install CRDs");
    (client, kubeconfig)
}

async fn create_tenant(client: &Client, name: &str) {
    Api::<Tenant>::all(client.clone())
        .create(
            &PostParams::default(),
            &Tenant::new(name, tenant_spec(name)),
        )
        .await
        .expect("create tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_come_from_the_cluster_and_approved_requests_become_sandboxes() {
    let (client, kubeconfig) = setup_cluster().await;
    let t = unique_name("ee");
    create_tenant(&client, &t).await;
    let gw = Gateway::start(Setup {
        kubeconfig: Some(kubeconfig),
        tenants_yaml: None,
        ..Setup::local(support::fresh_database(Backend::Sqlite).await)
    })
    .await;
    eventually(30, "the gateway to be ready", || async {
        let (s, r) = gw.call("GET", "/readyz", None, None).await;
        (s == 200 && r["checks"]["cluster"] == "ok").then_some(())
    })
    .await;

    let admins = format!("{t}-admins");
    let data = format!("{t}-data");
    let bob = gw.token("bob", &[&data]);
    let alice = gw.token("alice", &[&admins]);
    let dave = gw.token("dave", &[&admins]);
    let (_, me) = gw.call("GET", "/v1/me", Some(&bob), None).await;
    assert_eq!(
        me["memberOf"],
        json!([t]),
        "roles come from the cluster's Tenant: {me}"
    );

    // Within policy: applied at once.
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body(&t, "traffic", 10)),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    let name = format!("{t}--traffic");
    let sandboxes = Api::<Sandbox>::all(client.clone());
    let applied = eventually(30, "the Sandbox to be applied", || async {
        sandboxes.get_opt(&name).await.ok().flatten()
    })
    .await;
    assert_eq!(applied.spec.tenant, t);
    assert_eq!(applied.spec.owners, ["bob"]);
    assert_eq!(applied.spec.resources.cpu, "2");
    assert_eq!(applied.spec.purpose, sb["purpose"].as_str().unwrap());
    let labels = applied.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("serre.metropolegrandparis.fr/tenant"), Some(&t));
    assert_eq!(
        labels
            .get("app.kubernetes.io/created-by")
            .map(String::as_str),
        Some("serre-api")
    );
    let annotations = applied.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("serre.metropolegrandparis.fr/requested-by")
            .map(String::as_str),
        Some("bob")
    );
    let managers: Vec<(String, String)> = applied
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("serre-api".into(), "Apply".into())),
        "server-side apply by serre-api: {managers:?}"
    );
    let path = format!("/v1/sandboxes/{name}");
    eventually(10, "the API to show it applied", || async {
        let (_, v) = gw.call("GET", &path, Some(&bob), None).await;
        (v["cluster"]["state"] == "Applied").then_some(())
    })
    .await;

    // The operator's status, as read from the cluster, is what the API shows.
    let status = json!({
        "apiVersion": "serre.metropolegrandparis.fr/v1alpha1", "kind": "Sandbox",
        "status": {
            "phase": "Ready", "namespace": format!("serre-{name}"),
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Provisioned",
                "message": "Namespace, quota and network policies are in place",
                "lastTransitionTime": "2026-03-01T09:00:00Z"
            }]
        }
    });
    sandboxes
        .patch_status(
            &name,
            &PatchParams::apply("serre-operator").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("write status");
    let shown: Value = eventually(10, "the API to show the operator's status", || async {
        let (_, v) = gw.call("GET", &path, Some(&bob), None).await;
        (v["cluster"]["phase"] == "Ready").then_some(v)
    })
    .await;
    assert_eq!(shown["cluster"]["namespace"], format!("serre-{name}"));
    assert_eq!(shown["cluster"]["conditions"][0]["type"], "Ready");
    assert_eq!(shown["cluster"]["conditions"][0]["status"], "True");
    assert_eq!(shown["cluster"]["conditions"][0]["reason"], "Provisioned");

    // Beyond policy: not in the cluster until another admin approves.
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body(&t, "long", 60)),
        )
        .await;
    assert_eq!(status, 201);
    let long = format!("{t}--long");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        sandboxes.get_opt(&long).await.unwrap().is_none(),
        "pending requests stay out of the cluster"
    );
    let (status, v) = gw
        .call(
            "POST",
            &format!("/v1/sandboxes/{long}/approve"),
            Some(&dave),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let approved = eventually(30, "the approved Sandbox", || async {
        sandboxes.get_opt(&long).await.ok().flatten()
    })
    .await;
    assert_eq!(
        approved
            .metadata
            .annotations
            .unwrap_or_default()
            .get("serre.metropolegrandparis.fr/approved-by")
            .map(String::as_str),
        Some("dave")
    );

    // Deleting an applied sandbox deletes the resource, then the request.
    let (status, v) = gw.call("DELETE", &path, Some(&bob), None).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["request"]["state"], "Deleting");
    eventually(30, "the Sandbox to be deleted", || async {
        sandboxes.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    eventually(10, "the request to be gone", || async {
        let (s, _) = gw.call("GET", &path, Some(&bob), None).await;
        (s == 404).then_some(())
    })
    .await;

    // Membership follows the Tenant resource: dropping the data group drops bob.
    let mut spec = tenant_spec(&t);
    spec.members.retain(|m| m.role == MemberRole::Admin);
    Api::<Tenant>::all(client.clone())
        .patch(
            &t,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "members": spec.members } })),
        )
        .await
        .expect("patch tenant");
    let long_path = format!("/v1/sandboxes/{long}");
    eventually(10, "bob to lose access", || async {
        let (s, _) = gw.call("GET", &long_path, Some(&bob), None).await;
        (s == 404).then_some(())
    })
    .await;
    let (s, _) = gw.call("GET", &long_path, Some(&alice), None).await;
    assert_eq!(s, 200);
    gw.stop().await;
}

/// A TCP relay to `target`, started on `port` when asked.
async fn relay(port: u16, target: String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind relay");
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_an_unreachable_cluster_and_are_pushed_once_it_answers() {
    let (client, kubeconfig) = setup_cluster().await;
    let t = unique_name("mtr");
    create_tenant(&client, &t).await;

    // The gateway talks to the cluster through a relay that is not there yet.
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let server_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap();
    let api_addr = server_line
        .trim()
        .trim_start_matches("server: https://")
        .to_owned();
    let relay_port = support::free_ports(1);
    let dir = support::new_dir("kubeconfig");
    let relayed = dir.join("kubeconfig");
    std::fs::write(
        &relayed,
        text.replace(
            server_line,
            &format!("    server: https://127.0.0.1:{relay_port}"),
        ),
    )
    .unwrap();
    let yaml = serde_yaml::to_string(&Tenant::new(&t, tenant_spec(&t))).unwrap();
    let gw = Gateway::start(Setup {
        kubeconfig: Some(relayed),
        tenants_yaml: Some(yaml),
        ..Setup::local(support::fresh_database(Backend::Sqlite).await)
    })
    .await;

    let bob = gw.token("bob", &[&format!("{t}-data")]);
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body(&t, "offline", 10)),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    assert_eq!(sb["cluster"]["state"], "WaitingForCluster");
    let path = format!("/v1/sandboxes/{t}--offline");
    let waiting: Value = eventually(15, "a failed push to be reported", || async {
        let (_, v) = gw.call("GET", &path, Some(&bob), None).await;
        v["cluster"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the cluster is unreachable"))
            .then_some(v)
    })
    .await;
    assert_eq!(waiting["cluster"]["state"], "WaitingForCluster");
    let (status, ready) = gw.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "still ready without the cluster: {ready}");
    assert_ne!(ready["checks"]["cluster"], "ok");

    // The cluster becomes reachable: the request is pushed.
    relay(relay_port, api_addr).await;
    let name = format!("{t}--offline");
    let sandboxes = Api::<Sandbox>::all(client.clone());
    eventually(60, "the Sandbox to be pushed", || async {
        sandboxes.get_opt(&name).await.ok().flatten()
    })
    .await;
    eventually(10, "the API to show it applied", || async {
        let (_, v) = gw.call("GET", &path, Some(&bob), None).await;
        (v["cluster"]["state"] == "Applied").then_some(())
    })
    .await;
    let (_, ready) = gw.call("GET", "/readyz", None, None).await;
    assert_eq!(ready["checks"]["cluster"], "ok");

    // The pushes are in the audit log, by the gateway itself.
    let store = serre_api::store::Store::connect(&gw.database_url, 1)
        .await
        .unwrap();
    let entries = store.audit_page(None, 0, 1000).await.unwrap();
    assert!(
        entries.iter().any(|e| e.action == "sandbox.apply"
            && e.principal == "system:serre-api"
            && e.tenant.as_deref() == Some(t.as_str())),
        "{entries:#?}"
    );
    gw.stop().await;
}

/// `serre-api data-keys` (the chart's install and upgrade hook): creates the keys Secret,
/// leaves a complete one alone, and adds the audit signing key to one made by an earlier
/// version without touching its other keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_keys_hook_creates_the_secret_and_adds_the_audit_key_on_upgrade() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let (client, kubeconfig) = setup_cluster().await;
    let ns = unique_name("keys");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
    let hook = |secret: &str| {
        let out = std::process::Command::new(support::gateway_binary())
            .args(["data-keys", "--namespace", &ns, "--secret", secret])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run serre-api data-keys");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let keys = |s: &Secret| s.data.clone().unwrap_or_default();

    // Fresh install: created with every key, the audit signing key included.
    assert!(hook("fresh").contains("created"));
    let fresh = keys(&secrets.get("fresh").await.unwrap());
    assert!(
        fresh.contains_key("audit-signing-key.pem"),
        "{:?}",
        fresh.keys()
    );
    assert!(hook("fresh").contains("left unchanged"));
    assert_eq!(keys(&secrets.get("fresh").await.unwrap()), fresh);

    // A Secret from before audit checkpoints: the key is added, the others stay.
    let mut old = serre_api::datasets::DataKeys::generate_secret(&ns, "old").unwrap();
    old.data.as_mut().unwrap().remove("audit-signing-key.pem");
    let before = keys(&secrets.create(&PostParams::default(), &old).await.unwrap());
    assert!(hook("old").contains("added audit-signing-key.pem"));
    let mut after = keys(&secrets.get("old").await.unwrap());
    let added = after
        .remove("audit-signing-key.pem")
        .expect("the key was added");
    assert!(String::from_utf8_lossy(&added.0).contains("BEGIN PRIVATE KEY"));
    assert_eq!(after, before, "the dataset keys are untouched");
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}
