//! The cluster side: reflector caches of `Tenant` and `Sandbox` resources, and the
//! pusher that applies approved requests as `Sandbox` resources (server-side apply,
//! field manager `serre-api`) and deletes withdrawn ones. Without a reachable cluster the
//! gateway keeps running: requests wait in the database and are pushed once it answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serre_resources::{LABEL_TENANT, Sandbox, SandboxSpec, Tenant};
use tokio::sync::Notify;

use crate::audit::{AuditLog, Draft, Outcome};
use crate::config::ClusterConfig;
use crate::metrics::{CodeLabels, Metrics};
use crate::store::{DELETING, Store, timestamp};

/// Field manager of every apply the gateway makes.
pub const FIELD_MANAGER: &str = "serre-api";
/// Label marking Sandboxes created through the gateway.
pub const LABEL_CREATED_BY: &str = "app.kubernetes.io/created-by";
/// Principal recorded in the audit log for the gateway's own actions.
pub const SYSTEM_PRINCIPAL: &str = "system:serre-api";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("the cluster refused the request: {0}")]
    Rejected(String),
    #[error("the cluster is unreachable: {0}")]
    Unreachable(String),
}

impl ClusterError {
    pub(crate) fn from_kube(e: kube::Error) -> Self {
        match e {
            // 4xx other than conflicts and throttling will not fix themselves.
            kube::Error::Api(s)
                if (400..500).contains(&s.code) && s.code != 409 && s.code != 429 =>
            {
                ClusterError::Rejected(format!("{} ({})", s.message, s.code))
            }
            other => ClusterError::Unreachable(other.to_string()),
        }
    }
}

/// Build a client from `--kubeconfig`, or `KUBECONFIG` / `~/.kube/config` / in-cluster.
/// This does not contact the cluster.
pub async fn client(config: &ClusterConfig) -> Result<Client, ClusterError> {
    let cfg = match &config.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
    };
    Client::try_from(cfg).map_err(|e| ClusterError::Config(e.to_string()))
}

/// A reflector cache kept up to date by a background watch.
pub struct Cache<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    pub store: reflector::Store<K>,
    pub synced: Arc<AtomicBool>,
}

/// Start watching every `K` in the cluster. The watch retries with backoff while the
/// cluster is unreachable; `synced` turns true after the first complete list.
pub fn watch<K>(client: Client) -> Cache<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let synced = Arc::new(AtomicBool::new(false));
    let stream = watcher(Api::<K>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::debug!(error = %e, "watch error (retrying)");
            }
        }
    });
    let reader = store.clone();
    let flag = synced.clone();
    tokio::spawn(async move {
        if reader.wait_until_ready().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    Cache { store, synced }
}

/// The gateway's view of the cluster.
pub struct Cluster {
    client: Client,
    sandboxes: Cache<Sandbox>,
    /// Last error talking to the cluster (None after a success).
    last_error: Mutex<Option<String>>,
}

impl Cluster {
    pub fn start(client: Client) -> Self {
        let sandboxes = watch::<Sandbox>(client.clone());
        Self {
            client,
            sandboxes,
            last_error: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every Sandbox as last seen by the watch.
    pub fn sandboxes(&self) -> Vec<Arc<Sandbox>> {
        self.sandboxes.store.state()
    }

    /// The Sandbox as last seen by the watch.
    pub fn sandbox(&self, name: &str) -> Option<Arc<Sandbox>> {
        self.sandboxes.store.get(&ObjectRef::new(name))
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn record(&self, result: &Result<(), ClusterError>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = match result {
                Err(ClusterError::Unreachable(m)) => Some(m.clone()),
                _ => None,
            };
        }
    }

    /// Whether the API server answers now (for readiness).
    pub async fn check(&self) -> Result<(), ClusterError> {
        let result = tokio::time::timeout(Duration::from_secs(2), self.client.apiserver_version())
            .await
            .map_err(|_| ClusterError::Unreachable("no answer within 2s".into()))
            .and_then(|r| r.map(|_| ()).map_err(ClusterError::from_kube));
        self.record(&result);
        result
    }

    /// Create or update the Sandbox with server-side apply.
    pub async fn apply(
        &self,
        name: &str,
        spec: &SandboxSpec,
        annotations: BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        let mut sandbox = Sandbox::new(name, spec.clone());
        sandbox.metadata.labels = Some(BTreeMap::from([
            (LABEL_TENANT.to_owned(), spec.tenant.clone()),
            (LABEL_CREATED_BY.to_owned(), FIELD_MANAGER.to_owned()),
        ]));
        sandbox.metadata.annotations = Some(annotations);
        let api = Api::<Sandbox>::all(self.client.clone());
        let result = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&sandbox),
            )
            .await
            .map(|_| ())
            .map_err(ClusterError::from_kube);
        self.record(&result);
        result
    }

    /// Record the month's energy against the budget in the Tenant's status (the `energy`
    /// field only, server-side apply with field manager `serre-api`); the operator turns
    /// it into the `EnergyBudget` condition.
    pub async fn set_tenant_energy(
        &self,
        tenant: &str,
        energy: &serre_resources::EnergyBudgetStatus,
    ) -> Result<(), ClusterError> {
        let patch = serde_json::json!({
            "apiVersion": "serre.metropolegrandparis.fr/v1alpha1",
            "kind": "Tenant",
            "status": { "energy": energy },
        });
        Api::<Tenant>::all(self.client.clone())
            .patch_status(
                tenant,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map(|_| ())
            .map_err(ClusterError::from_kube)
    }

    /// Publish a Warning Event about a tenant (energy budget); failures are only logged.
    pub async fn tenant_event(&self, tenant: &Tenant, level: &str, message: &str) {
        use kube::Resource;
        use kube::runtime::events::{Event, EventType, Recorder, Reporter};
        let recorder = Recorder::new(
            self.client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        );
        let reason = match level {
            "exhausted" => "EnergyBudgetExhausted",
            _ => "EnergyBudgetWarning",
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(message.to_owned()),
            action: "Account".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &tenant.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish the budget event");
        }
    }

    /// Delete the Sandbox; a missing one counts as deleted.
    pub async fn delete(&self, name: &str) -> Result<(), ClusterError> {
        let api = Api::<Sandbox>::all(self.client.clone());
        let result = match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube(e)),
        };
        self.record(&result);
        result
    }
}

/// Tenant cache for the directory.
pub fn watch_tenants(client: Client) -> Cache<Tenant> {
    watch::<Tenant>(client)
}

/// Push what the cluster has not caught up with, until `shutdown` resolves.
pub async fn pusher(
    cluster: Arc<Cluster>,
    store: Store,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    notify: Arc<Notify>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = push_once(&cluster, &store, &audit, &metrics).await {
            tracing::warn!(error = %e, "push pass failed");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = notify.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One pass over pending requests. Stops at the first unreachable error (the next
/// pass retries everything).
pub async fn push_once(
    cluster: &Cluster,
    store: &Store,
    audit: &AuditLog,
    metrics: &Metrics,
) -> Result<(), String> {
    let pending = store.pending_pushes().await.map_err(|e| e.to_string())?;
    for row in pending {
        let resource = format!("Sandbox::{:?}", row.name);
        let (action, result) = if row.state == DELETING {
            ("sandbox.remove", cluster.delete(&row.name).await)
        } else {
            let spec: SandboxSpec = match serde_json::from_str(&row.spec) {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!("stored spec is unreadable: {e}");
                    let _ = store.mark_push_failed(&row.name, row.version, &msg).await;
                    continue;
                }
            };
            let mut annotations = BTreeMap::from([(
                "serre.metropolegrandparis.fr/requested-by".to_owned(),
                row.created_by.clone(),
            )]);
            if let Some(by) = &row.decided_by {
                annotations.insert(
                    "serre.metropolegrandparis.fr/approved-by".to_owned(),
                    by.clone(),
                );
            }
            (
                "sandbox.apply",
                cluster.apply(&row.name, &spec, annotations).await,
            )
        };
        let label = match &result {
            Ok(()) => "ok",
            Err(ClusterError::Rejected(_)) => "rejected",
            Err(_) => "unreachable",
        };
        metrics
            .cluster_pushes
            .get_or_create(&CodeLabels { code: label.into() })
            .inc();
        let mut draft = Draft::new(SYSTEM_PRINCIPAL, action, resource, Outcome::Change);
        draft.tenant = Some(row.tenant.clone());
        match result {
            Ok(()) => {
                if row.state == DELETING {
                    store
                        .delete_sandbox(&row.name)
                        .await
                        .map_err(|e| e.to_string())?;
                    // The deletion request revoked its grants; one recorded since (a race)
                    // ends here. Its encrypted view stays until the data store is swept.
                    let now = timestamp(chrono::Utc::now());
                    let revoked = store
                        .revoke_sandbox_grants(&row.name, SYSTEM_PRINCIPAL, &now)
                        .await
                        .map_err(|e| e.to_string())?;
                    let drafts = revoked
                        .iter()
                        .map(|g| {
                            let mut d = Draft::new(
                                SYSTEM_PRINCIPAL,
                                "grant.revoked",
                                format!("Grant::{:?}", g.id),
                                Outcome::Change,
                            );
                            d.tenant = Some(g.tenant.clone());
                            d.details = serde_json::json!({
                                "reason": format!("sandbox {:?} was deleted", row.name),
                                "grantee": g.grantee, "granteeKind": g.grantee_kind });
                            d
                        })
                        .collect::<Vec<_>>();
                    if !drafts.is_empty() {
                        audit.append(drafts).await.map_err(|e| e.to_string())?;
                    }
                } else {
                    store
                        .mark_applied(&row.name, row.version, &timestamp(chrono::Utc::now()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                draft.details = serde_json::json!({ "result": "ok", "version": row.version });
                audit.append(vec![draft]).await.map_err(|e| e.to_string())?;
            }
            Err(ClusterError::Rejected(msg)) => {
                store
                    .mark_push_failed(&row.name, row.version, &msg)
                    .await
                    .map_err(|e| e.to_string())?;
                draft.details = serde_json::json!({ "result": "rejected", "message": msg, "version": row.version });
                audit.append(vec![draft]).await.map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
