//! The objects the operator creates for sandboxes: in-memory caches of them (watched
//! by label) and the apply step, which writes only what differs from the desired state.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::error::Result;
use crate::build::Child;
use crate::resources::{ANNOTATION_HASH, LABEL_MANAGED_BY, LABEL_SANDBOX, MANAGER, Sandbox};
use crate::telemetry::Metrics;
use tracing::warn;

/// Read-only caches of every kind of child object, filtered by the managed-by label.
#[derive(Clone)]
pub struct ChildCaches {
    pub namespaces: Store<Namespace>,
    pub quotas: Store<ResourceQuota>,
    pub limit_ranges: Store<LimitRange>,
    pub service_accounts: Store<ServiceAccount>,
    pub role_bindings: Store<RoleBinding>,
    pub network_policies: Store<NetworkPolicy>,
}

/// Sender of "this sandbox's children changed" notifications.
pub type Triggers = futures::channel::mpsc::UnboundedSender<ObjectRef<Sandbox>>;

/// Fill a cache from a label-selected watch in its own task, so caches stay current
/// whatever the controller is doing, and notify the owning sandbox of each change.
/// The owner is found by label: Sandboxes are cluster-scoped, and a reference built
/// from a namespaced child's owner reference would carry the child's namespace.
fn cached<K>(client: &Client, triggers: Triggers) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let config = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(Api::<K>::all(client.clone()), config))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(obj) => {
                    if let Some(sandbox) = obj.labels().get(LABEL_SANDBOX) {
                        let _ = triggers.unbounded_send(ObjectRef::new(sandbox));
                    }
                }
                Err(e) => {
                    warn!(kind = %K::kind(&()), error = %e, "watch of child objects failed; retrying")
                }
            }
        }
    });
    reader
}

impl ChildCaches {
    /// Start the caches; returns them and the stream of sandboxes to reconcile.
    pub fn start(
        client: &Client,
    ) -> (
        Self,
        futures::channel::mpsc::UnboundedReceiver<ObjectRef<Sandbox>>,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let caches = Self {
            namespaces: cached(client, tx.clone()),
            quotas: cached(client, tx.clone()),
            limit_ranges: cached(client, tx.clone()),
            service_accounts: cached(client, tx.clone()),
            role_bindings: cached(client, tx.clone()),
            network_policies: cached(client, tx),
        };
        (caches, rx)
    }

    /// Wait until every cache holds its first full list.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.namespaces.wait_until_ready(),
            self.quotas.wait_until_ready(),
            self.limit_ranges.wait_until_ready(),
            self.service_accounts.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
            self.network_policies.wait_until_ready(),
        );
    }

    /// Metadata of the cached object a child describes, if the cache has it.
    fn cached_meta(&self, child: &Child) -> Option<ObjectMeta> {
        fn get<K: Resource<DynamicType = ()> + Clone>(
            s: &Store<K>,
            c: &Child,
        ) -> Option<ObjectMeta> {
            let mut r = ObjectRef::<K>::new(&c.name);
            if let Some(ns) = &c.namespace {
                r = r.within(ns);
            }
            s.get(&r).map(|o| o.meta().clone())
        }
        match child.resource.kind.as_str() {
            "Namespace" => get(&self.namespaces, child),
            "ResourceQuota" => get(&self.quotas, child),
            "LimitRange" => get(&self.limit_ranges, child),
            "ServiceAccount" => get(&self.service_accounts, child),
            "RoleBinding" => get(&self.role_bindings, child),
            "NetworkPolicy" => get(&self.network_policies, child),
            _ => None,
        }
    }

    /// Whether the cache shows the child exactly as desired (same hash, not deleting).
    pub fn is_current(&self, child: &Child) -> bool {
        self.cached_meta(child).is_some_and(|m| {
            m.deletion_timestamp.is_none()
                && m.annotations.as_ref().and_then(|a| a.get(ANNOTATION_HASH)) == Some(&child.hash)
        })
    }

    /// Namespaced children of a sandbox that the desired set no longer contains.
    fn orphans(
        &self,
        sandbox: &str,
        desired: &BTreeSet<String>,
    ) -> Vec<(ApiResource, String, String)> {
        fn scan<K: Resource<DynamicType = ()> + Clone>(
            s: &Store<K>,
            sandbox: &str,
            desired: &BTreeSet<String>,
            out: &mut Vec<(ApiResource, String, String)>,
        ) {
            let kind = K::kind(&()).into_owned();
            let resource = ApiResource::erase::<K>(&());
            for o in s.state() {
                if o.labels().get(LABEL_SANDBOX).map(String::as_str) != Some(sandbox) {
                    continue;
                }
                let ns = o.namespace().unwrap_or_default();
                let key = format!("{kind}/{ns}/{}", o.name_any());
                if !desired.contains(&key) && o.meta().deletion_timestamp.is_none() {
                    out.push((resource.clone(), ns, o.name_any()));
                }
            }
        }
        let mut out = Vec::new();
        scan(&self.quotas, sandbox, desired, &mut out);
        scan(&self.limit_ranges, sandbox, desired, &mut out);
        scan(&self.service_accounts, sandbox, desired, &mut out);
        scan(&self.role_bindings, sandbox, desired, &mut out);
        scan(&self.network_policies, sandbox, desired, &mut out);
        out
    }

    /// The sandbox namespace is Active and its quota has been computed by the
    /// controller-manager with the hard limits we asked for.
    pub fn is_enforced(&self, namespace: &str, quota: &Child) -> bool {
        let ns_active = self
            .namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|n| n.status.as_ref()?.phase.clone())
            .is_some_and(|p| p == "Active");
        let quota_enforced = self
            .quotas
            .get(&ObjectRef::new(&quota.name).within(namespace))
            .is_some_and(|q| {
                let spec_hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
                let status_hard = q.status.as_ref().and_then(|s| s.hard.as_ref());
                spec_hard.is_some() && spec_hard == status_hard
            });
        ns_active && quota_enforced
    }
}

/// Apply the children that differ from their cached state, then delete orphans.
/// Returns how many objects were written.
pub async fn apply_children(
    client: &Client,
    caches: &ChildCaches,
    metrics: &Arc<Metrics>,
    sandbox: &str,
    children: &[Child],
) -> Result<usize> {
    let params = PatchParams::apply(MANAGER).force();
    let mut writes = 0;
    for child in children {
        if caches.is_current(child) {
            continue;
        }
        let api: Api<DynamicObject> = match &child.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &child.resource),
            None => Api::all_with(client.clone(), &child.resource),
        };
        api.patch(&child.name, &params, &Patch::Apply(&child.object))
            .await?;
        metrics.write(&child.resource.kind, "apply");
        writes += 1;
    }
    let desired: BTreeSet<String> = children.iter().map(Child::key).collect();
    for (resource, ns, name) in caches.orphans(sandbox, &desired) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        metrics.write(&resource.kind, "delete");
        writes += 1;
    }
    Ok(writes)
}
