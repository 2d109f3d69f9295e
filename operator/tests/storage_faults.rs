//! Garage stopped during provisioning and during teardown: the sandbox converges
//! once Garage is back, and no bucket or key is left orphaned.

#[path = "support/mod.rs"]
mod support;

use std::sync::OnceLock;

use chrono::Duration;
use kube::Api;
use kube::api::DeleteParams;
use serre_operator::resources::{Sandbox, Tenant};
use serre_operator::storage::StorageProvisioner;
use serre_operator::storage::garage::GarageAdmin;
use support::garage::Garage;
use support::operator::shared_storage_operator;
use support::*;

fn garage() -> &'static Garage {
    static G: OnceLock<Garage> = OnceLock::new();
    G.get_or_init(Garage::start_own)
}

async fn inventory() -> (Vec<String>, Vec<String>) {
    serre_operator::install_crypto_provider();
    let admin = GarageAdmin::new(
        garage().get("SERRE_GARAGE_ADMIN_ENDPOINT"),
        garage().admin_token(),
    )
    .unwrap();
    admin.inventory().await.expect("inventory")
}

/// Wait for the StorageReady condition to carry `reason`; returns it.
async fn storage_reason(
    api: &Api<Sandbox>,
    name: &str,
    reason: &str,
) -> serre_operator::resources::Condition {
    eventually(30, &format!("StorageReady reason {reason}"), || async {
        let s = api.get_opt(name).await.ok()??;
        let c = s
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "StorageReady")?
            .clone();
        (c.reason == reason).then_some(c)
    })
    .await
}

#[tokio::test]
async fn store_outages_during_provisioning_and_teardown_converge_without_orphans() {
    shared_storage_operator(garage());
    let client = client().await;
    let tenant = unique("ept-fault");
    create_tenant(&client, &tenant, tenant_spec("8", 5)).await;

    // Provisioning while the store is down: not Ready, and the condition says why.
    garage().stop();
    let name = unique("outage");
    create_sandbox(
        &client,
        &name,
        sandbox_spec(&tenant, "1", Duration::days(2)),
    )
    .await;
    let api = Api::<Sandbox>::all(client.clone());
    storage_reason(&api, &name, "StoreUnavailable").await;
    let waiting = api.get(&name).await.unwrap();
    assert_ne!(
        format!("{:?}", waiting.status.as_ref().unwrap().phase),
        "Ready"
    );

    // Back: converges, with exactly one bucket and one key for it.
    garage().restart();
    wait_phase(&client, &name, "Ready", 90).await;
    let bucket = format!("serre-{name}");
    let (buckets, keys) = inventory().await;
    assert_eq!(
        buckets.iter().filter(|b| **b == bucket).count(),
        1,
        "{buckets:?}"
    );
    assert_eq!(keys.iter().filter(|k| **k == bucket).count(), 1, "{keys:?}");

    // Teardown while the store is down: the finalizer holds the sandbox.
    garage().stop();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let held = storage_reason(&api, &name, "TeardownPending").await;
    assert!(held.message.contains("retrying"), "{}", held.message);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        api.get_opt(&name).await.unwrap().is_some(),
        "the sandbox must not go while its storage remains"
    );

    // Back: the sandbox goes, and nothing of it remains in the store.
    garage().restart();
    wait_gone(&api, &name, 90).await;
    let (buckets, keys) = inventory().await;
    assert!(
        !buckets.contains(&bucket) && !keys.contains(&bucket),
        "orphans: {buckets:?} {keys:?}"
    );
    Api::<Tenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
}
