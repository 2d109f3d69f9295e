//! The storage steps of sandbox reconciliation (see [`crate::storage`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::Context;
use super::error::Result;
use crate::resources::{
    Condition, ConditionStatus, RemovedData, Sandbox, SandboxStatus, StorageStatus, set_condition,
};
use crate::storage::keys::StorageKeys;
use crate::storage::lifecycle::{SANDBOX_SECRET, Target};
use crate::storage::{StorageError, bucket_name};

/// How often an idle reconcile reads a sandbox bucket's usage from the store. A burst of
/// sandboxes reconciles each one several times (its own status writes and its children
/// trigger reconciles); reading the usage each time was most of the store's admin calls,
/// and each costs the store an Argon2 check of the admin token (Garage: about 20 ms of
/// CPU). The usage shown in the status (`status.storage.used`) is then at most this old
/// after a reconcile; the ledger reads it per window of 5 minutes.
pub const USAGE_EVERY: Duration = Duration::from_secs(30);

/// When each sandbox's bucket usage was last read (by sandbox uid).
#[derive(Default)]
pub struct UsageReads(Mutex<HashMap<String, Instant>>);

impl UsageReads {
    /// Whether `uid`'s usage is due for a read at `now`.
    fn due(&self, uid: &str, now: Instant) -> bool {
        let reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reads
            .get(uid)
            .is_none_or(|at| now.duration_since(*at) >= USAGE_EVERY)
    }

    fn record(&self, uid: &str, now: Instant) {
        let mut reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reads.insert(uid.to_owned(), now);
    }

    fn forget(&self, uid: &str) {
        let mut reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reads.remove(uid);
    }
}

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
    // What storage the sandbox has recorded decides whether a data key may be made: none
    // recorded and none in the data keys Secret means a new key. A reconcile may hold a
    // Sandbox from the cache older than the status a previous reconcile wrote (during a
    // burst, events queue reconciles faster than the cache catches up), so "none recorded"
    // is confirmed from the API server first: otherwise a key removed meanwhile would be
    // silently replaced by a fresh one, leaving the bucket's objects unreadable.
    let recorded = match &status.storage {
        Some(s) => Some(s.clone()),
        None => Api::<Sandbox>::all(ctx.client.clone())
            .get_opt(&sandbox.name_any())
            .await?
            .and_then(|live| live.status)
            .and_then(|live| live.storage),
    };
    let read_usage = ctx.usage_reads.due(target.uid, Instant::now());
    match store
        .provision(&ctx.client, target, storage, recorded.as_ref(), read_usage)
        .await
    {
        Ok(s) => {
            if read_usage {
                ctx.usage_reads.record(target.uid, Instant::now());
            }
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
    ctx.usage_reads.forget(target.uid);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buckets_usage_is_read_at_most_every_30_s() {
        let reads = UsageReads::default();
        let t0 = Instant::now();
        assert!(reads.due("u1", t0), "never read");
        reads.record("u1", t0);
        assert!(!reads.due("u1", t0 + Duration::from_secs(29)));
        assert!(reads.due("u1", t0 + USAGE_EVERY));
        assert!(reads.due("u2", t0), "another sandbox");
        reads.forget("u1");
        assert!(reads.due("u1", t0));
    }
}
