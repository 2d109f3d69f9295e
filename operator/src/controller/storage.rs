//! The storage steps of sandbox reconciliation (see [`crate::storage`]).

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::error::Result;
use crate::resources::{
    Condition, ConditionStatus, RemovedData, Sandbox, SandboxStatus, StorageStatus, set_condition,
};
use crate::storage::keys::StorageKeys;
use crate::storage::lifecycle::{SANDBOX_SECRET, Target};
use crate::storage::{StorageError, bucket_name};

fn condition(
    status: &mut SandboxStatus,
    s: ConditionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    set_condition(
        &mut status.conditions,
        Condition::new("StorageReady", s, reason, message, generation, now),
    );
}

/// Provision storage; true when it is ready. On failure the condition says why and
/// the error makes the controller retry with backoff.
pub async fn provision(
    ctx: &Context,
    sandbox: &Sandbox,
    target: &Target<'_>,
    storage: &str,
    status: &mut SandboxStatus,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let generation = sandbox.metadata.generation;
    let Some(store) = &ctx.storage else {
        if status.conditions.iter().any(|c| c.type_ == "StorageReady") {
            condition(
                status,
                ConditionStatus::False,
                "StorageNotConfigured",
                "This Serre installation has no object store configured.".into(),
                generation,
                now,
            );
        }
        return Ok(true);
    };
    match store
        .provision(&ctx.client, target, storage, status.storage.as_ref())
        .await
    {
        Ok(s) => {
            let message = format!(
                "Bucket {} on {} with a {} byte quota; credentials and the SSE-C key are in Secret {}/{}.",
                s.bucket, s.endpoint, s.max_size, target.namespace, SANDBOX_SECRET
            );
            if status.storage.as_ref() != Some(&s) {
                ctx.metrics.write("Secret", "apply");
            }
            status.storage = Some(s);
            condition(
                status,
                ConditionStatus::True,
                "Provisioned",
                message,
                generation,
                now,
            );
            Ok(true)
        }
        Err(e) => {
            condition(
                status,
                ConditionStatus::False,
                "StoreUnavailable",
                format!("Could not provision storage ({e}); retrying."),
                generation,
                now,
            );
            Err(e)
        }
    }
}

/// Empty and delete the sandbox's storage, destroy its data key and certify it.
/// Progress is recorded in the status so a retry after a crash counts everything.
pub async fn teardown(
    ctx: &Context,
    sandbox: &Sandbox,
    target: &Target<'_>,
    status: &mut SandboxStatus,
) -> Result<(), StorageError> {
    let Some(store) = &ctx.storage else {
        return Ok(());
    };
    let now = ctx.now();
    let provisioned = status.storage.is_some();
    let mut base = match status.storage.clone() {
        Some(s) => s,
        None => StorageStatus {
            bucket: bucket_name(target.sandbox),
            endpoint: store.config.s3_endpoint.clone(),
            data_key_id: StorageKeys::wrapped_key_id(
                &ctx.client,
                &store.namespace,
                &store.config.data_keys_secret,
                target.sandbox,
            )
            .await?
            .unwrap_or_default(),
            ..StorageStatus::default()
        },
    };
    let existed = provisioned
        || store.provisioner.bucket(&base.bucket).await?.is_some()
        || !base.data_key_id.is_empty();
    let mut removed = base.removed.clone().unwrap_or(RemovedData {
        objects: 0,
        bytes: 0,
        started_at: now,
    });
    let (objects, bytes) = store.empty(target).await?;
    removed.objects += objects;
    removed.bytes += bytes;
    if base.removed.as_ref() != Some(&removed) {
        base.removed = Some(removed.clone());
        status.storage = Some(base.clone());
        super::sandbox::write_status_now(ctx, sandbox, status.clone())
            .await
            .map_err(|e| match e {
                super::Error::Kube(k) => StorageError::Kube(k),
                other => StorageError::Keys(other.to_string()),
            })?;
    }
    store.destroy(&ctx.client, target).await?;
    if existed {
        let signed = store
            .certify(
                &ctx.client,
                target,
                &base,
                removed.started_at,
                removed.objects,
                removed.bytes,
            )
            .await?;
        ctx.event(
            sandbox,
            EventType::Normal,
            "StorageDestroyed",
            "Cleanup",
            format!(
                "Bucket {} emptied ({} objects, {} bytes) and deleted, data key {} destroyed; certificate signed by {}.",
                base.bucket, removed.objects, removed.bytes, base.data_key_id, signed.key_id
            ),
        )
        .await;
    }
    tracing::info!(sandbox = %sandbox.name_any(), "storage destroyed");
    Ok(())
}
