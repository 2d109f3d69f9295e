//! Sandbox storage against a real Garage node and a real control plane: SSE-C with
//! the namespace Secret, isolation between sandboxes, quotas, Serre's client-side
//! encryption, quota resize, teardown with crypto-shredding and a signed certificate.

#[path = "support/mod.rs"]
mod support;

use std::sync::OnceLock;

use bytes::Bytes;
use chrono::Duration;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::DeleteParams;
use kube::{Api, Client};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;
use serre_operator::crypto::{CertificateVerifier, DataKey};
use serre_operator::resources::{Sandbox, Tenant};
use serre_operator::storage::garage::GarageAdmin;
use serre_operator::storage::lifecycle::certificate_name;
use serre_operator::storage::objects::{bucket_store, get_decrypted, put_encrypted_bytes};
use serre_operator::storage::{KeyCredentials, StorageProvisioner};
use support::garage::Garage;
use support::operator::shared_storage_operator;
use support::*;

fn garage() -> &'static Garage {
    static G: OnceLock<Garage> = OnceLock::new();
    G.get_or_init(Garage::start_own)
}

struct SandboxS3 {
    bucket: String,
    creds: KeyCredentials,
    key: DataKey,
}

async fn sandbox_s3(client: &Client, ns: &str) -> SandboxS3 {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get("sandbox-storage")
        .await
        .expect("namespace Secret");
    let data = secret.data.expect("data");
    let get = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf8");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(get("SSE_C_KEY"))
        .expect("base64 key");
    let key = DataKey::from_bytes(raw.try_into().expect("32-byte key"));
    SandboxS3 {
        bucket: get("S3_BUCKET"),
        creds: KeyCredentials {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
        },
        key,
    }
}

fn endpoint() -> &'static str {
    garage().get("SERRE_S3_ENDPOINT")
}

fn admin() -> GarageAdmin {
    serre_operator::install_crypto_provider();
    GarageAdmin::new(
        garage().get("SERRE_GARAGE_ADMIN_ENDPOINT"),
        garage().admin_token(),
    )
    .expect("admin")
}

#[tokio::test]
async fn bucket_is_encrypted_isolated_quota_limited_and_shredded_with_a_certificate() {
    shared_storage_operator(garage());
    let client = client().await;
    let tenant = unique("ept-s3");
    create_tenant(&client, &tenant, tenant_spec("8", 5)).await;
    let (a, b) = (unique("sa"), unique("sb"));
    let mut spec = sandbox_spec(&tenant, "1", Duration::days(3));
    spec.resources.storage = "2Mi".into();
    create_sandbox(&client, &a, spec.clone()).await;
    create_sandbox(&client, &b, sandbox_spec(&tenant, "1", Duration::days(3))).await;
    let ready = wait_phase(&client, &a, "Ready", 120).await;
    wait_phase(&client, &b, "Ready", 120).await;
    assert_eq!(condition(&ready, "StorageReady").reason, "Provisioned");
    let st = ready
        .status
        .as_ref()
        .and_then(|s| s.storage.clone())
        .expect("status.storage");
    assert_eq!(st.bucket, format!("serre-{a}"));
    assert_eq!(st.max_size, (2 * 1024 * 1024).to_string());
    assert!(st.data_key_id.starts_with("wk-"), "{}", st.data_key_id);

    let s3a = sandbox_s3(&client, &format!("serre-{a}")).await;
    let s3b = sandbox_s3(&client, &format!("serre-{b}")).await;
    assert_eq!(
        s3a.creds.access_key_id, st.key_id,
        "status names the key, never the secret"
    );

    // SSE-C with the namespace Secret: write, read back.
    let with_key = bucket_store(
        endpoint(),
        "garage",
        &s3a.bucket,
        &s3a.creds,
        Some(&s3a.key),
    )
    .unwrap();
    let path = Path::from("results/run-1.txt");
    with_key
        .put(&path, PutPayload::from_static(b"accuracy=0.91"))
        .await
        .expect("SSE-C put");
    let back = with_key.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(back.as_ref(), b"accuracy=0.91");

    // Without the key: refused.
    let without_key = bucket_store(endpoint(), "garage", &s3a.bucket, &s3a.creds, None).unwrap();
    assert!(
        without_key.get(&path).await.is_err(),
        "reading an SSE-C object without the key must fail"
    );
    // Wrong key: refused.
    let wrong = bucket_store(
        endpoint(),
        "garage",
        &s3a.bucket,
        &s3a.creds,
        Some(&s3b.key),
    )
    .unwrap();
    assert!(
        wrong.get(&path).await.is_err(),
        "reading with another key must fail"
    );

    // Another sandbox's credentials are denied on this bucket.
    let foreign = bucket_store(
        endpoint(),
        "garage",
        &s3a.bucket,
        &s3b.creds,
        Some(&s3a.key),
    )
    .unwrap();
    assert!(
        foreign.get(&path).await.is_err(),
        "B's key must not read A's bucket"
    );
    assert!(
        foreign
            .put(&Path::from("intrusion"), PutPayload::from_static(b"x"))
            .await
            .is_err(),
        "B's key must not write A's bucket"
    );

    // Garage enforces the 2 MiB quota.
    let big = PutPayload::from(vec![7u8; 3 * 1024 * 1024]);
    let err = with_key
        .put(&Path::from("too-big.bin"), big)
        .await
        .expect_err("over quota");
    assert!(err.to_string().to_lowercase().contains("quota"), "{err}");

    // Serre's own writes are encrypted client-side: the marker never reaches Garage's disk.
    let marker = format!("SERRE-MARKER-{}", std::process::id());
    let enc_path = Path::from("serre/marker.enc");
    put_encrypted_bytes(
        with_key.as_ref(),
        &enc_path,
        &s3a.key,
        Bytes::from(marker.clone()),
    )
    .await
    .expect("encrypted put");
    let plain: Vec<Bytes> = get_decrypted(with_key.as_ref(), &enc_path, &s3a.key)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(plain.concat(), marker.as_bytes());
    assert!(
        !garage().data_dir_contains(marker.as_bytes()),
        "plaintext marker found in Garage's data directory"
    );
    let kept_aside = with_key
        .get(&enc_path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    // Resize: the bucket quota follows.
    patch_sandbox(
        &client,
        &a,
        json!({"spec": {"resources": {"storage": "4Mi"}}}),
    )
    .await;
    let admin = admin();
    eventually(30, "bucket quota raised to 4 MiB", || async {
        let info = admin.bucket(&s3a.bucket).await.ok()??;
        (info.max_size == Some(4 * 1024 * 1024)).then_some(())
    })
    .await;
    // What the bucket holds, read from the admin API at reconcile, is in the status (the
    // gateway's storage GB-hours come from it).
    let sandboxes = Api::<Sandbox>::all(client.clone());
    let used = eventually(60, "bucket usage in the Sandbox status", || async {
        let s = sandboxes.get(&a).await.ok()?;
        let used = s.status?.storage?.used?;
        (used.bytes > 0 && used.objects >= 2).then_some(used)
    })
    .await;
    let info = admin.bucket(&s3a.bucket).await.unwrap().unwrap();
    assert_eq!((used.bytes, used.objects), (info.bytes, info.objects));

    // Teardown.
    let uid = ready.metadata.uid.clone().unwrap();
    let sandboxes = Api::<Sandbox>::all(client.clone());
    sandboxes
        .delete(&a, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &a, 90).await;
    let (buckets, keys) = admin.inventory().await.unwrap();
    assert!(
        !buckets.contains(&s3a.bucket),
        "bucket left behind: {buckets:?}"
    );
    assert!(!keys.contains(&s3a.bucket), "key left behind: {keys:?}");
    assert!(
        buckets.contains(&s3b.bucket),
        "the other sandbox keeps its bucket"
    );
    // Both wrapped keys lived in the one data keys Secret; a's entry is gone, b's stays.
    let secrets = Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let entries = secrets
        .get("serre-storage-data-keys")
        .await
        .expect("the data keys Secret")
        .data
        .unwrap_or_default();
    assert!(!entries.contains_key(&a), "wrapped data key not destroyed");
    assert!(
        entries.contains_key(&b),
        "the other sandbox keeps its data key"
    );

    // The ciphertext kept aside cannot be decrypted without the destroyed key.
    let other_key = DataKey::generate().unwrap();
    let attempt: Result<Vec<Bytes>, _> = serre_operator::crypto::decrypt_stream(
        &other_key,
        futures::stream::iter([Ok::<_, std::io::Error>(kept_aside.clone())]),
    )
    .try_collect()
    .await;
    assert!(attempt.is_err());

    // The certificate verifies with the published public key, and not once altered.
    let cms = Api::<ConfigMap>::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let cert = cms
        .get(&certificate_name(&a, &uid))
        .await
        .expect("certificate kept after the sandbox is gone");
    let json = cert.data.unwrap()["certificate.json"].clone();
    let pem = cms
        .get("serre-signing-public-key")
        .await
        .unwrap()
        .data
        .unwrap()["public-key.pem"]
        .clone();
    let verifier = CertificateVerifier::from_public_key_pem(&pem).unwrap();
    let c = verifier.verify_json(&json).expect("certificate verifies");
    assert_eq!(
        (c.sandbox.as_str(), c.tenant.as_str(), c.bucket.as_str()),
        (a.as_str(), tenant.as_str(), s3a.bucket.as_str())
    );
    assert!(c.objects_removed >= 2 && c.bytes_removed > 0, "{c:?}");
    assert_eq!(c.key_id_destroyed, st.data_key_id);
    let tampered = json.replacen(
        &format!("\"objectsRemoved\":{}", c.objects_removed),
        "\"objectsRemoved\":0",
        1,
    );
    let tampered = if tampered == json {
        json.replacen(&a, &b, 1)
    } else {
        tampered
    };
    assert_ne!(tampered, json);
    assert!(
        verifier.verify_json(&tampered).is_err(),
        "a changed certificate must not verify"
    );

    sandboxes
        .delete(&b, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&sandboxes, &b, 90).await;
    Api::<Tenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
}

/// The wrapped data keys live in one Secret of a fixed name (`serre-storage-data-keys`),
/// so the operator's Role reads Secrets by name only. An install from before kept one
/// Secret per sandbox (`serre-dk-<sandbox>`): `migrate-data-keys` moves each into an entry
/// and deletes it, and refuses to replace an entry holding another key. A sandbox whose
/// recorded data key is missing from the Secret gets an error, never a fresh key (which
/// would leave its bucket unreadable).
#[tokio::test]
async fn legacy_data_keys_move_in_and_a_lost_data_key_is_never_replaced() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams, PostParams};
    use serre_operator::storage::keys::{DATA_KEYS_SECRET, migrate_data_keys};

    shared_storage_operator(garage());
    let client = client().await;

    // -- Migration, in a namespace of its own.
    let ns = unique("keys-mig");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let legacy = |sandbox: &str, blob: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": format!("serre-dk-{sandbox}"), "labels": {
                "app.kubernetes.io/managed-by": "serre-operator",
                "serre.metropolegrandparis.fr/sandbox": sandbox}},
            "data": {"wrapped-key": ByteString(blob.as_bytes().to_vec())},
        }))
        .unwrap()
    };
    for (sandbox, blob) in [("lab-1", "wk-one"), ("lab-2", "wk-two")] {
        secrets
            .create(&PostParams::default(), &legacy(sandbox, blob))
            .await
            .unwrap();
    }
    let done = migrate_data_keys(&client, &ns, DATA_KEYS_SECRET)
        .await
        .unwrap();
    assert_eq!(done.moved, ["lab-1", "lab-2"]);
    let entries = secrets.get(DATA_KEYS_SECRET).await.unwrap().data.unwrap();
    assert_eq!(entries["lab-1"].0, b"wk-one");
    assert_eq!(entries["lab-2"].0, b"wk-two");
    for sandbox in ["lab-1", "lab-2"] {
        let old = secrets
            .get_opt(&format!("serre-dk-{sandbox}"))
            .await
            .unwrap();
        assert!(old.is_none(), "serre-dk-{sandbox} not deleted");
    }
    // Again: nothing to do. Another key for a sandbox that has one: refused, both kept.
    let again = migrate_data_keys(&client, &ns, DATA_KEYS_SECRET)
        .await
        .unwrap();
    assert!(again.moved.is_empty() && again.already.is_empty());
    secrets
        .create(&PostParams::default(), &legacy("lab-1", "wk-other"))
        .await
        .unwrap();
    let err = migrate_data_keys(&client, &ns, DATA_KEYS_SECRET)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another data key"), "{err}");
    assert!(secrets.get_opt("serre-dk-lab-1").await.unwrap().is_some());
    let entries = secrets.get(DATA_KEYS_SECRET).await.unwrap().data.unwrap();
    assert_eq!(entries["lab-1"].0, b"wk-one");

    // -- A lost data key is an error, not a new key.
    let tenant = unique("ept-lost");
    create_tenant(&client, &tenant, tenant_spec("4", 2)).await;
    let sb = unique("slost");
    create_sandbox(&client, &sb, sandbox_spec(&tenant, "1", Duration::days(3))).await;
    let ready = wait_phase(&client, &sb, "Ready", 120).await;
    let recorded = ready.status.unwrap().storage.unwrap().data_key_id;
    let keys = Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE);
    keys.patch(
        DATA_KEYS_SECRET,
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {sb.clone(): null}})),
    )
    .await
    .unwrap();
    // Make the operator provision again: its namespace Secret is gone. A reconcile still
    // running from the sandbox's creation may have read the key before it was removed and
    // write the Secret again after: then it is deleted and the sandbox poked once more.
    let namespace_secrets = Api::<Secret>::namespaced(client.clone(), &format!("serre-{sb}"));
    let pokes = std::sync::atomic::AtomicU32::new(0);
    let refused = eventually(60, "StorageReady=False naming the lost key", || async {
        let s = Api::<Sandbox>::all(client.clone()).get(&sb).await.ok()?;
        let c = condition(&s, "StorageReady").clone();
        if c.status == serre_operator::resources::ConditionStatus::False {
            return Some(c);
        }
        if namespace_secrets
            .get_opt("sandbox-storage")
            .await
            .ok()?
            .is_some()
        {
            namespace_secrets
                .delete("sandbox-storage", &DeleteParams::default())
                .await
                .ok()?;
            let poke = pokes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            patch_sandbox(
                &client,
                &sb,
                json!({"metadata": {"labels": {"serre-test/poke": poke.to_string()}}}),
            )
            .await;
        }
        None
    })
    .await;
    assert!(
        refused.message.contains(&recorded) && refused.message.contains("migrate-data-keys"),
        "{}",
        refused.message
    );
    let entries = keys.get(DATA_KEYS_SECRET).await.unwrap().data.unwrap();
    assert!(!entries.contains_key(&sb), "a new key was made");
    Api::<Sandbox>::all(client.clone())
        .delete(&sb, &DeleteParams::default())
        .await
        .unwrap();
}
