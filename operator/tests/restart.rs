//! The operator binary killed mid-provisioning and restarted converges with nothing
//! duplicated or orphaned; a restart with nothing changed writes nothing; replicas stop at
//! once on SIGTERM, standing by or leading.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use chrono::Duration;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serre_operator::resources::{Sandbox, Tenant};
use support::process::OperatorProcess;
use support::*;

const SANDBOXES: usize = 12;

/// Objects labelled for this tenant, counted per sandbox.
async fn per_sandbox<K>(client: &Client, tenant: &str) -> BTreeMap<String, usize>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let lp = ListParams::default().labels(&format!("serre.metropolegrandparis.fr/tenant={tenant}"));
    let mut counts = BTreeMap::new();
    for o in Api::<K>::all(client.clone())
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        let sb = o
            .labels()
            .get("serre.metropolegrandparis.fr/sandbox")
            .cloned()
            .unwrap_or_default();
        *counts.entry(sb).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn killed_mid_provisioning_converges_and_idle_restart_writes_nothing() {
    let client = client().await;
    install(&client).await;
    let tenant = unique("restart");
    create_tenant(&client, &tenant, tenant_spec("100", 50)).await;
    let names: Vec<String> = (0..SANDBOXES).map(|i| unique(&format!("rs{i}"))).collect();
    for n in &names {
        create_sandbox(&client, n, sandbox_spec(&tenant, "1", Duration::days(5))).await;
    }

    // First run: killed as soon as the first namespace exists.
    let egress = ["--platform-egress", "127.0.0.1/32:13900"];
    let first = OperatorProcess::start(16481, &egress);
    let namespaces = Api::<Namespace>::all(client.clone());
    let lp = ListParams::default().labels(&format!("serre.metropolegrandparis.fr/tenant={tenant}"));
    eventually(60, "a first namespace", || async {
        let n = namespaces.list(&lp).await.ok()?.items.len();
        (n >= 1).then_some(())
    })
    .await;
    first.kill();
    let ready_before = {
        let api = Api::<Sandbox>::all(client.clone());
        let all = api.list(&Default::default()).await.unwrap().items;
        all.iter()
            .filter(|s| {
                s.spec.tenant == tenant
                    && s.status
                        .as_ref()
                        .is_some_and(|st| format!("{:?}", st.phase) == "Ready")
            })
            .count()
    };
    assert!(
        ready_before < SANDBOXES,
        "the kill must land mid-provisioning (ready: {ready_before})"
    );

    // Second run: converges.
    let second = OperatorProcess::start(16482, &egress);
    for n in &names {
        wait_phase(&client, n, "Ready", 120).await;
    }
    let expected: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 1)).collect();
    assert_eq!(per_sandbox::<Namespace>(&client, &tenant).await, expected);
    assert_eq!(
        per_sandbox::<ResourceQuota>(&client, &tenant).await,
        expected
    );
    assert_eq!(per_sandbox::<LimitRange>(&client, &tenant).await, expected);
    // sandbox-workload and Kubernetes' `default`, both without token automount.
    let two: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 2)).collect();
    assert_eq!(per_sandbox::<ServiceAccount>(&client, &tenant).await, two);
    assert_eq!(per_sandbox::<RoleBinding>(&client, &tenant).await, expected);
    // default-deny and allow-serre-platform.
    assert_eq!(per_sandbox::<NetworkPolicy>(&client, &tenant).await, two);
    // The tenant's status has caught up too (its controller debounces bursts).
    let tenants = Api::<Tenant>::all(client.clone());
    eventually(30, "the tenant status to count every sandbox", || async {
        let t = tenants.get(&tenant).await.ok()?;
        (t.status?.reserved.sandboxes as usize == SANDBOXES).then_some(())
    })
    .await;
    second.stop();

    // Third run with nothing changed: every sandbox is reconciled, nothing is written.
    let third = OperatorProcess::start(16483, &egress);
    let reconciled = eventually(
        60,
        "the restarted operator to reconcile every sandbox",
        || async {
            let n = third.counter("serre_operator_reconciliations")?;
            (n >= SANDBOXES as f64).then_some(n)
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let writes = third.counter("serre_operator_api_writes").expect("metrics");
    assert_eq!(
        writes, 0.0,
        "an idle restart reconciled {reconciled} objects and wrote {writes} times"
    );
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        client.clone(),
        OPERATOR_NAMESPACE,
    )
    .get("serre-operator-leader")
    .await
    .expect("the leader Lease exists");
    assert!(lease.spec.and_then(|s| s.holder_identity).is_some());

    // Clean up with the operator still running.
    let sandboxes = Api::<Sandbox>::all(client.clone());
    for n in &names {
        sandboxes.delete(n, &DeleteParams::default()).await.unwrap();
    }
    for n in &names {
        wait_gone(&sandboxes, n, 120).await;
    }
    Api::<Tenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    third.stop();
}

/// The kubelet sends SIGTERM on every rollout and uninstall, then kills after the grace
/// period (30 s): a replica standing by for the Lease must stop at once, as the leader does.
/// Each runs as PID 1 of its own PID namespace, as in its container, where a signal
/// without a handler is dropped. (A standby used to wait for leadership before listening
/// for signals, so in its pod it ignored SIGTERM and took the whole grace period; a leader
/// stopped within a second of starting its controllers could wait forever for
/// kube-runtime's graceful shutdown, now bounded by the operator's 5 s.)
#[tokio::test]
async fn replicas_stop_at_once_on_sigterm_standing_by_or_leading() {
    let client = client().await;
    install(&client).await;
    let lease = unique("stop-lease");
    // Both are PID 1: the identity in the Lease cannot default to the process id.
    let args = |identity: &'static str| {
        [
            "--lease-name".to_owned(),
            lease.clone(),
            "--identity".to_owned(),
            identity.to_owned(),
            "--platform-egress".to_owned(),
            "127.0.0.1/32:13900".to_owned(),
        ]
    };
    let leader_args = args("stop-test-leader");
    let leader_args: Vec<&str> = leader_args.iter().map(String::as_str).collect();
    let leader = OperatorProcess::start_as_init(16484, &leader_args);
    eventually(60, "the first replica to lead", || async {
        (leader.gauge("serre_operator_leader")? == 1.0).then_some(())
    })
    .await;
    let standby_args = args("stop-test-standby");
    let standby_args: Vec<&str> = standby_args.iter().map(String::as_str).collect();
    let standby = OperatorProcess::start_as_init(16485, &standby_args);
    eventually(60, "the second replica to stand by, ready", || async {
        support::process::http_get(&standby.http, "/readyz").map(|_| ())
    })
    .await;
    assert_eq!(standby.gauge("serre_operator_leader"), Some(0.0));
    let limit = std::time::Duration::from_secs(10);
    let took = standby.stop_within(limit);
    assert!(
        took.is_some(),
        "the standby replica still ran 10 s after SIGTERM"
    );
    let took = leader.stop_within(limit);
    assert!(took.is_some(), "the leader still ran 10 s after SIGTERM");
}
