//! The operator against a real kube-apiserver + etcd + kube-controller-manager.
//! Pods are never run (no kubelet); creating them still goes through the real
//! admission chain, which is what the quota test checks.

#[path = "support/mod.rs"]
mod support;

use chrono::Duration;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use serre_operator::resources::{Sandbox, Tenant};
use support::operator::shared_operator;
use support::*;

fn hard(q: &ResourceQuota) -> std::collections::BTreeMap<String, String> {
    quantities(q.spec.as_ref().and_then(|s| s.hard.clone()))
}

/// The limits quota admission enforces: the controller manager copies `spec.hard` to
/// `status.hard`, and admission reads the status, so a raised quota admits more only then.
fn enforced(q: &ResourceQuota) -> std::collections::BTreeMap<String, String> {
    quantities(q.status.as_ref().and_then(|s| s.hard.clone()))
}

fn quantities(
    map: Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
) -> std::collections::BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn pod(cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("trial-{}", cpu.replace('m', "milli"))},
        "spec": {
            "serviceAccountName": "sandbox-workload",
            "containers": [{
                "name": "model", "image": "registry.example/model:1",
                "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}, "limits": {"cpu": cpu, "memory": "256Mi"}}
            }]
        }
    }))
    .expect("pod")
}

#[tokio::test]
async fn sandbox_is_provisioned_enforced_resized_and_cleaned_up() {
    shared_operator();
    let client = client().await;
    let tenant = unique("ept");
    create_tenant(&client, &tenant, tenant_spec("8", 3)).await;
    let name = unique("forecast");
    create_sandbox(
        &client,
        &name,
        sandbox_spec(&tenant, "2", Duration::days(30)),
    )
    .await;

    let sb = wait_phase(&client, &name, "Ready", 120).await;
    let ns = format!("serre-{name}");
    assert_eq!(
        sb.status.as_ref().unwrap().namespace.as_deref(),
        Some(ns.as_str())
    );
    assert_eq!(condition(&sb, "Admitted").reason, "WithinAllowance");

    // The exact objects.
    let namespace = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .unwrap();
    assert_eq!(
        namespace.labels()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(
        namespace.labels()["serre.metropolegrandparis.fr/tenant"],
        tenant
    );
    assert_eq!(namespace.owner_references()[0].name, name);
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("sandbox-quota")
        .await
        .unwrap();
    let h = hard(&quota);
    assert_eq!(
        (h["requests.cpu"].as_str(), h["limits.cpu"].as_str()),
        ("2", "2")
    );
    assert_eq!(
        (
            h["requests.memory"].as_str(),
            h["requests.storage"].as_str()
        ),
        ("4Gi", "10Gi")
    );
    assert_eq!(
        (h["pods"].as_str(), h["services.nodeports"].as_str()),
        ("4", "0")
    );
    assert_eq!(h["requests.nvidia.com/gpu"], "0");
    let lr = Api::<LimitRange>::namespaced(client.clone(), &ns)
        .get("sandbox-defaults")
        .await
        .unwrap();
    assert_eq!(
        lr.spec.unwrap().limits[0].default_request.as_ref().unwrap()["cpu"].0,
        "100m"
    );
    let mut policies: Vec<_> = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.name_any())
        .collect();
    policies.sort();
    assert_eq!(policies, ["allow-serre-platform", "default-deny"]);
    // No ServiceAccount of the namespace mounts a token, Kubernetes' `default` included.
    for account in ["sandbox-workload", "default"] {
        let sa = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .get(account)
            .await
            .unwrap();
        assert_eq!(sa.automount_service_account_token, Some(false), "{account}");
    }
    let rb = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .get("sandbox-editors")
        .await
        .unwrap();
    let groups: Vec<_> = rb.subjects.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(groups, ["ept-admins", "ept-data"]);
    assert_eq!(rb.role_ref.name, "serre-sandbox-editor");

    // The tenant reports the reservation.
    let tenants = Api::<Tenant>::all(client.clone());
    let reserved = eventually(20, "tenant reservation", || async {
        let t = tenants.get(&tenant).await.ok()?;
        let r = t.status?.reserved;
        (r.sandboxes == 1).then_some(r)
    })
    .await;
    assert_eq!(
        (reserved.cpu.as_str(), reserved.memory.as_str()),
        ("2", "4Gi")
    );

    // Real ResourceQuota admission: within quota accepted, over quota refused.
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &ns);
    eventually(30, "quota enforced", || async {
        let q = quotas.get("sandbox-quota").await.ok()?;
        (enforced(&q) == hard(&q)).then_some(())
    })
    .await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("500m"))
        .await
        .expect("a pod within quota is admitted");
    let err = pods
        .create(&PostParams::default(), &pod("1800m"))
        .await
        .expect_err("over quota");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("exceeded quota"),
        "{}",
        status.message
    );

    // Resize: the quota follows the spec.
    patch_sandbox(&client, &name, json!({"spec": {"resources": {"cpu": "3"}}})).await;
    eventually(30, "quota raised to 3 cpu and enforced", || async {
        let q = quotas.get("sandbox-quota").await.ok()?;
        let cpu = |m: std::collections::BTreeMap<String, String>| m.get("requests.cpu").cloned();
        (cpu(hard(&q)).as_deref() == Some("3") && cpu(enforced(&q)).as_deref() == Some("3"))
            .then_some(())
    })
    .await;
    pods.create(&PostParams::default(), &pod("1800m"))
        .await
        .expect("fits after the resize");

    // Extra egress appears, and disappears again as an orphan removed by label.
    patch_sandbox(
        &client,
        &name,
        json!({"spec": {"extraEgressCidrs": ["192.0.2.0/24"]}}),
    )
    .await;
    let netpols = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    eventually(30, "extra egress policy", || async {
        netpols
            .get_opt("allow-extra-egress")
            .await
            .ok()?
            .map(|_| ())
    })
    .await;
    patch_sandbox(&client, &name, json!({"spec": {"extraEgressCidrs": []}})).await;
    eventually(30, "extra egress policy removed", || async {
        netpols
            .get_opt("allow-extra-egress")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // Delete: the finalizer removes the namespace, then the sandbox goes.
    let sandboxes = Api::<Sandbox>::all(client.clone());
    sandboxes
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &name, 90).await;
    let gone = Api::<Namespace>::all(client.clone())
        .get_opt(&ns)
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "the namespace is removed before the sandbox is released"
    );
    tenants
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&tenants, &tenant, 30).await;
}

#[tokio::test]
async fn over_allowance_is_denied_and_nothing_is_created() {
    shared_operator();
    let client = client().await;
    let tenant = unique("commune");
    create_tenant(&client, &tenant, tenant_spec("4", 5)).await;
    let first = unique("ok");
    create_sandbox(
        &client,
        &first,
        sandbox_spec(&tenant, "3", Duration::days(10)),
    )
    .await;
    wait_phase(&client, &first, "Ready", 120).await;

    let second = unique("toobig");
    create_sandbox(
        &client,
        &second,
        sandbox_spec(&tenant, "2", Duration::days(10)),
    )
    .await;
    let denied = wait_phase(&client, &second, "Denied", 30).await;
    let admitted = condition(&denied, "Admitted");
    assert_eq!(admitted.reason, "OverAllowance");
    assert!(
        admitted
            .message
            .contains("cpu: allowance 4, already reserved 3, this sandbox asks 2, over by 1"),
        "{}",
        admitted.message
    );
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(&format!("serre-{second}"))
        .await
        .unwrap();
    assert!(ns.is_none(), "nothing is created for a denied sandbox");

    // Freeing the first sandbox lets the second one in (it is re-evaluated).
    let sandboxes = Api::<Sandbox>::all(client.clone());
    sandboxes
        .delete(&first, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &first, 90).await;
    patch_sandbox(
        &client,
        &second,
        json!({"metadata": {"annotations": {"touch": "1"}}}),
    )
    .await;
    wait_phase(&client, &second, "Ready", 120).await;
    sandboxes
        .delete(&second, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &second, 90).await;
}

#[tokio::test]
async fn sandboxes_created_at_once_never_share_out_more_than_the_allowance() {
    shared_operator();
    let client = client().await;
    let tenant = unique("rush");
    create_tenant(&client, &tenant, tenant_spec("4", 10)).await;
    // Six sandboxes of 1 CPU at once against 4 CPUs: whatever the order, exactly four
    // are admitted. (Here the cache usually shows a written admission before the next
    // one: the case where it does not is reservations.rs's unit test.)
    let names: Vec<String> = (0..6).map(|_| unique("rush")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|n| create_sandbox(&client, n, sandbox_spec(&tenant, "1", Duration::days(10)))),
    )
    .await;
    let mut phases = Vec::new();
    for n in &names {
        let s = eventually(120, &format!("{n} to be Ready or Denied"), || async {
            let s = Api::<Sandbox>::all(client.clone()).get(n).await.ok()?;
            let phase = format!("{:?}", s.status.as_ref()?.phase);
            (phase == "Ready" || phase == "Denied").then_some(phase)
        })
        .await;
        phases.push(s);
    }
    let ready = phases.iter().filter(|p| *p == "Ready").count();
    assert_eq!((ready, phases.len() - ready), (4, 2), "{phases:?}");
    let sandboxes = Api::<Sandbox>::all(client.clone());
    for n in &names {
        sandboxes.delete(n, &DeleteParams::default()).await.unwrap();
    }
    for n in &names {
        wait_gone(&sandboxes, n, 120).await;
    }
}

#[tokio::test]
async fn invalid_specs_and_unknown_tenants_get_a_status_not_a_stall() {
    shared_operator();
    let client = client().await;
    let tenant = unique("ept-inv");
    create_tenant(&client, &tenant, tenant_spec("4", 5)).await;

    let too_long = unique("long-life");
    create_sandbox(
        &client,
        &too_long,
        sandbox_spec(&tenant, "1", Duration::days(120)),
    )
    .await;
    let s = wait_phase(&client, &too_long, "Denied", 30).await;
    let c = condition(&s, "Admitted");
    assert_eq!(c.reason, "InvalidSpec");
    assert!(
        c.message.contains("spec.expiresAt") && c.message.contains("beyond the maximum of 90d"),
        "{}",
        c.message
    );

    let orphan = unique("no-tenant");
    create_sandbox(
        &client,
        &orphan,
        sandbox_spec("does-not-exist", "1", Duration::days(1)),
    )
    .await;
    let s = wait_phase(&client, &orphan, "Denied", 30).await;
    assert_eq!(condition(&s, "Admitted").reason, "TenantNotFound");

    // The controller keeps working for valid objects meanwhile.
    let good = unique("good");
    create_sandbox(
        &client,
        &good,
        sandbox_spec(&tenant, "1", Duration::days(1)),
    )
    .await;
    wait_phase(&client, &good, "Ready", 120).await;

    // A tenant with sandboxes cannot be deleted until they are gone.
    let tenants = Api::<Tenant>::all(client.clone());
    tenants
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = eventually(30, "DeletionBlocked condition", || async {
        let t = tenants.get(&tenant).await.ok()?;
        t.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "DeletionBlocked")
    })
    .await;
    assert!(blocked.message.contains(&good), "{}", blocked.message);
    let sandboxes = Api::<Sandbox>::all(client.clone());
    for s in [&too_long, &good] {
        sandboxes.delete(s, &DeleteParams::default()).await.unwrap();
    }
    for s in [&too_long, &good] {
        wait_gone(&sandboxes, s, 90).await;
    }
    wait_gone(&tenants, &tenant, 30).await;
    sandboxes
        .delete(&orphan, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &orphan, 30).await;
}

#[tokio::test]
async fn expiry_stops_work_then_deletes_after_grace() {
    shared_operator();
    let client = client().await;
    let tenant = unique("ept-exp");
    create_tenant(&client, &tenant, tenant_spec("4", 5)).await;
    let name = unique("short");
    // Expires in 8 s; the shared operator runs with a 1 h notice and a 6 s grace.
    create_sandbox(
        &client,
        &name,
        sandbox_spec(&tenant, "1", Duration::seconds(8)),
    )
    .await;
    let ready = wait_phase(&client, &name, "Ready", 30).await;
    assert_eq!(
        condition(&ready, "ExpiringSoon").status,
        serre_operator::resources::ConditionStatus::True
    );

    let expired = wait_phase(&client, &name, "Expired", 30).await;
    assert_eq!(condition(&expired, "Ready").reason, "Expired");
    let ns = format!("serre-{name}");
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("sandbox-quota")
        .await
        .unwrap();
    assert_eq!(
        hard(&quota)["pods"],
        "0",
        "an expired sandbox may run no pods"
    );
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), OPERATOR_NAMESPACE);
    eventually(10, "Expired event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Expired")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
            })
            .then_some(())
    })
    .await;

    let sandboxes = Api::<Sandbox>::all(client.clone());
    wait_gone(&sandboxes, &name, 60).await;
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_none()
    );
    Api::<Tenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_namespace_serre_did_not_create_is_never_adopted() {
    shared_operator();
    let client = client().await;
    let tenant = unique("ept");
    create_tenant(&client, &tenant, tenant_spec("8", 3)).await;
    // Someone made the namespace the sandbox would get, before the sandbox.
    let name = unique("squat");
    let ns = format!("serre-{name}");
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"team": "other"}}}))
                .unwrap(),
        )
        .await
        .expect("create namespace");
    create_sandbox(
        &client,
        &name,
        sandbox_spec(&tenant, "1", Duration::days(30)),
    )
    .await;
    let sb = wait_phase(&client, &name, "Denied", 60).await;
    let admitted = condition(&sb, "Admitted");
    assert_eq!(admitted.reason, "NamespaceNotOwned");
    assert!(
        admitted.message.contains(&format!(
            "Namespace {ns} already exists and was not created by Serre"
        )),
        "{}",
        admitted.message
    );
    // Nothing was applied there: no RoleBinding, quota or policy, labels untouched.
    assert!(
        Api::<RoleBinding>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<ResourceQuota>::namespaced(client.clone(), &ns)
            .get_opt("sandbox-quota")
            .await
            .unwrap()
            .is_none()
    );
    let n = namespaces.get(&ns).await.unwrap();
    assert!(!n.labels().contains_key("app.kubernetes.io/managed-by"));
    assert!(n.owner_references().is_empty());
    // The tenant reserves nothing for it.
    let t = Api::<Tenant>::all(client.clone())
        .get(&tenant)
        .await
        .unwrap();
    assert_eq!(t.status.map(|s| s.reserved.sandboxes).unwrap_or(0), 0);

    // Deleting the sandbox leaves the namespace that is not its own.
    let sandboxes = Api::<Sandbox>::all(client.clone());
    sandboxes
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &name, 60).await;
    let n = namespaces.get(&ns).await.unwrap();
    assert!(n.metadata.deletion_timestamp.is_none());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
