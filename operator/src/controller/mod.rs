//! The three controllers (Sandbox, Tenant and TrialRun), their shared context and how
//! they run.

mod admit;
mod children;
mod error;
mod ownership;
mod reservations;
mod run_pods;
pub mod sandbox;
mod storage;
pub mod tenant;
pub mod trial_run;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

pub use children::ChildCaches;
pub use error::Error;

use crate::config::BuildConfig;
use crate::resources::{LABEL_RUN, MANAGER, Sandbox, Tenant, TrialRun};
use crate::storage::lifecycle::Storage;
use crate::telemetry::Metrics;

/// What every reconciliation can use.
pub struct Context {
    pub client: Client,
    pub config: BuildConfig,
    pub caches: ChildCaches,
    pub tenants: Store<Tenant>,
    pub sandboxes: Store<Sandbox>,
    pub metrics: Arc<Metrics>,
    /// Object storage, when configured.
    pub storage: Option<Storage>,
    recorder: Recorder,
    events_namespace: String,
    tenant_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Admissions written and maybe not cached yet (admission counts them).
    admissions: reservations::Written,
    /// When each sandbox's bucket usage was last read (storage spaces the reads out).
    usage_reads: storage::UsageReads,
}

impl Context {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// The lock serialising admissions within one tenant.
    pub fn tenant_lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.tenant_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(tenant.to_owned()).or_default().clone()
    }

    /// Publish an Event about a sandbox. Sandboxes are cluster-scoped, so the Event
    /// lives in the operator's namespace. Failing to publish never fails a reconcile.
    pub async fn event(
        &self,
        sandbox: &Sandbox,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let mut reference = sandbox.object_ref(&());
        reference.namespace = Some(self.events_namespace.clone());
        self.publish(reference, type_, reason, action, note).await;
    }

    /// Publish an Event about a namespaced object (a TrialRun): it lives in the
    /// object's namespace. Failing to publish never fails a reconcile.
    pub async fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &reference).await {
            Ok(()) => self.metrics.write("Event", "create"),
            Err(e) => {
                warn!(object = ?reference.name, kind = ?reference.kind, error = %e, "could not publish event")
            }
        }
    }
}

/// Settings for [`run`].
pub struct RunOptions {
    pub concurrency: u16,
    pub storage: Option<Storage>,
    pub resync: Duration,
    pub events_namespace: String,
}

/// Run the controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: BuildConfig,
    options: RunOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Caches read by reconcilers, each driven by its own task and awaited once here
    // (a store's readiness wakes a single waiter reliably, so nothing else waits on it).
    let (caches, child_triggers) = ChildCaches::start(&client);
    let tenant_store = spawn_reflector(Api::<Tenant>::all(client.clone()));
    let sandbox_store = spawn_reflector(Api::<Sandbox>::all(client.clone()));
    caches.ready().await;
    let _ = tenant_store.wait_until_ready().await;
    let _ = sandbox_store.wait_until_ready().await;
    let controller_config = controller::Config::default().concurrency(options.concurrency);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let period = options.resync;

    let sandboxes = Controller::new(
        Api::<Sandbox>::all(client.clone()),
        watcher::Config::default(),
    );
    let tenants = Controller::new(
        Api::<Tenant>::all(client.clone()),
        watcher::Config::default(),
    );
    let runs = Controller::new(
        Api::<TrialRun>::all(client.clone()),
        watcher::Config::default(),
    );
    let run_store = runs.store();

    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        caches,
        tenants: tenant_store,
        sandboxes: sandbox_store.clone(),
        metrics,
        storage: options.storage,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: hostname(),
            },
        ),
        events_namespace: options.events_namespace,
        tenant_locks: Mutex::default(),
        admissions: reservations::Written::default(),
        usage_reads: storage::UsageReads::default(),
    });

    let by_tenant = sandbox_store.clone();
    let sandbox_loop = sandboxes
        .with_config(controller_config.clone())
        .reconcile_on(child_triggers)
        // A tenant's spec change (allowance, members, suspension) concerns its
        // sandboxes; its status writes do not, so they are filtered out by generation.
        .watches_stream(
            watcher(
                Api::<Tenant>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default()),
            move |t: Tenant| {
                let name = t.name_any();
                by_tenant
                    .state()
                    .into_iter()
                    .filter(|s| s.spec.tenant == name)
                    .map(|s| ObjectRef::from(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(resync(period))
        .graceful_shutdown_on(stopped())
        .run(sandbox::reconcile, error_policy_sandbox, ctx.clone())
        .for_each(log_outcome);

    // No debounce here: a steady stream of sandbox changes would postpone a tenant's
    // reconcile (and its finalizer) indefinitely.
    let tenant_loop = tenants
        .with_config(controller_config.clone())
        .watches(
            Api::<Sandbox>::all(client.clone()),
            watcher::Config::default(),
            |s: Sandbox| Some(ObjectRef::<Tenant>::new(&s.spec.tenant)),
        )
        .reconcile_all_on(resync(period))
        .graceful_shutdown_on(stopped())
        .run(tenant::reconcile, error_policy_tenant, ctx.clone())
        .for_each(log_outcome);

    // Trial runs: their Jobs (only those labelled with a run) and their sandbox (a run
    // waiting for it to be Ready starts as soon as it is).
    let prefix = ctx.config.namespace_prefix.clone();
    let run_loop = runs
        .with_config(controller_config)
        .owns(
            Api::<Job>::all(client.clone()),
            watcher::Config::default().labels(LABEL_RUN),
        )
        // A run's pod: an image that cannot be pulled shows only there.
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(LABEL_RUN),
            |p: Pod| {
                let run = p.labels().get(LABEL_RUN)?;
                Some(ObjectRef::<TrialRun>::new(run).within(&p.namespace()?))
            },
        )
        .watches(
            Api::<Sandbox>::all(client),
            watcher::Config::default(),
            move |s: Sandbox| {
                let name = s.name_any();
                let ns = format!("{prefix}{name}");
                run_store
                    .state()
                    .into_iter()
                    .filter(|r| r.spec.sandbox == name && r.namespace().as_deref() == Some(&ns))
                    .filter(|r| !r.status.as_ref().is_some_and(|st| st.phase.is_final()))
                    .map(|r| ObjectRef::from(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(resync(period))
        .graceful_shutdown_on(stopped())
        .run(trial_run::reconcile, error_policy_run, ctx)
        .for_each(log_outcome);

    info!("controllers started");
    tokio::join!(sandbox_loop, tenant_loop, run_loop);
    info!("controllers stopped");
}

/// Periodic full resync: every object is reconciled again even without events.
fn resync(period: Duration) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(
        tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        |mut i| async move {
            i.tick().await;
            Some(((), i))
        },
    )
}

/// A cache of `K` kept current by its own task.
fn spawn_reflector<K>(api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(e) = stream.next().await {
            if let Err(e) = e {
                warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
            }
        }
    });
    reader
}

async fn log_outcome<K: Resource, E: std::fmt::Debug, Q: std::fmt::Debug>(
    outcome: Result<(ObjectRef<K>, Action), controller::Error<E, Q>>,
) {
    match outcome {
        Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
        Err(controller::Error::ReconcilerFailed(..)) => {} // already counted by the error policy
        Err(e) => warn!(error = ?e, "controller error"),
    }
}

fn error_policy_sandbox(s: Arc<Sandbox>, e: &Error, ctx: Arc<Context>) -> Action {
    policy("sandbox", &s.name_any(), e, &ctx)
}

fn error_policy_tenant(t: Arc<Tenant>, e: &Error, ctx: Arc<Context>) -> Action {
    policy("tenant", &t.name_any(), e, &ctx)
}

fn error_policy_run(r: Arc<TrialRun>, e: &Error, ctx: Arc<Context>) -> Action {
    policy("trial_run", &r.name_any(), e, &ctx)
}

fn policy(controller: &'static str, name: &str, e: &Error, ctx: &Context) -> Action {
    ctx.metrics.failure(controller, e.category());
    if e.is_waiting() {
        info!(%controller, %name, reason = %e, "waiting");
        Action::requeue(Duration::from_secs(2))
    } else {
        warn!(%controller, %name, error = %e, category = e.category(), "reconcile failed; retrying");
        Action::requeue(Duration::from_secs(10))
    }
}

fn hostname() -> Option<String> {
    std::env::var("POD_NAME").ok().or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
    })
}
