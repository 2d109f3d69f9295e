//! Sandbox reconciliation: fetch → validate → admit → build → apply → status.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::Context;
use super::admit::{Admission, admit};
use super::error::{Error, Result};
use super::ownership::{Ownership, namespace_ownership};
use super::storage;
use crate::build::{self, BuildInput, Workloads};
use crate::controller::children::apply_children;
use crate::resources::{
    Condition, ConditionStatus, LABEL_TENANT, MANAGER, Sandbox, SandboxPhase, SandboxStatus,
    set_condition,
};
use crate::storage::lifecycle::Target;
use serre_validation::config::namespace_name;
use serre_validation::net::parse_cidr;
use serre_validation::validate::{describe, validate_sandbox};

pub const FINALIZER: &str = "serre.metropolegrandparis.fr/cleanup";

/// Entry point used by the controller.
pub async fn reconcile(sandbox: Arc<Sandbox>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.measure("sandbox");
    let api: Api<Sandbox> = Api::all(ctx.client.clone());
    finalizer(&api, FINALIZER, sandbox, |event| async {
        match event {
            Finalizer::Apply(s) => apply(s, ctx.clone()).await,
            Finalizer::Cleanup(s) => cleanup(s, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

#[instrument(skip_all, fields(sandbox = %sandbox.name_any()))]
async fn apply(sandbox: Arc<Sandbox>, ctx: Arc<Context>) -> Result<Action> {
    let name = sandbox.name_any();
    let uid = sandbox.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let now = ctx.now();
    let generation = sandbox.metadata.generation;
    let created = sandbox
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or(now);
    let old_status = sandbox.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    status.observed_generation = generation;
    let cond = |t: &str, s: ConditionStatus, reason: &str, msg: String| {
        Condition::new(t, s, reason, msg, generation, now)
    };

    // Validate. An admitted sandbox whose spec became invalid keeps running as it was
    // admitted (and still expires): only a never-admitted one is Denied.
    let spec_errors = validate_sandbox(&name, &sandbox.spec, created, &ctx.config).err();
    if let Some(errors) = &spec_errors {
        let message = format!("The spec is invalid: {}", describe(errors));
        if status.admitted.is_none() {
            set_condition(
                &mut status.conditions,
                cond(
                    "Admitted",
                    ConditionStatus::False,
                    "InvalidSpec",
                    message.clone(),
                ),
            );
            status.phase = SandboxPhase::Denied;
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, "Denied", message),
            );
            write_status(&ctx, &sandbox, &old_status, status).await?;
            return Ok(Action::await_change());
        }
        set_condition(
            &mut status.conditions,
            cond(
                "Admitted",
                ConditionStatus::False,
                "InvalidSpec",
                format!(
                    "{message}. The sandbox keeps the resources it was admitted with until the spec is fixed."
                ),
            ),
        );
    }

    // Tenant.
    let tenant = ctx.tenants.get(&ObjectRef::new(&sandbox.spec.tenant));
    let Some(tenant) = tenant.filter(|t| t.meta().deletion_timestamp.is_none()) else {
        if status.admitted.is_none() {
            let message = format!(
                "Tenant {:?} does not exist or is being deleted; create it or fix spec.tenant.",
                sandbox.spec.tenant
            );
            status.phase = SandboxPhase::Denied;
            set_condition(
                &mut status.conditions,
                cond(
                    "Admitted",
                    ConditionStatus::False,
                    "TenantNotFound",
                    message.clone(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, "Denied", message),
            );
            write_status(&ctx, &sandbox, &old_status, status).await?;
        }
        return Ok(Action::await_change());
    };

    // Every sandbox carries its tenant as a label, so admission lists only that
    // tenant's sandboxes (and kubectl can select them).
    if sandbox.labels().get(LABEL_TENANT) != Some(&sandbox.spec.tenant) {
        let patch = json!({"metadata": {"labels": {(LABEL_TENANT): sandbox.spec.tenant}}});
        Api::<Sandbox>::all(ctx.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        ctx.metrics.write("Sandbox", "label");
    }

    // Never adopt a namespace Serre did not make for this sandbox: nothing is reserved
    // or applied (no quota, policies or RoleBindings land in someone else's namespace).
    let ns = namespace_name(&ctx.config, &name);
    match namespace_ownership(&ctx, &ns, &name).await? {
        Ownership::Absent | Ownership::Ours => {}
        Ownership::Terminating => return Err(Error::NamespaceTerminating(ns)),
        Ownership::Foreign(why) => {
            let message = format!(
                "Namespace {ns} already exists and {why}; Serre never takes over a namespace it did not create. Choose another sandbox name, or have an administrator remove that namespace."
            );
            let reported = old_status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "NamespaceNotOwned");
            if status.admitted.is_none() {
                status.phase = SandboxPhase::Denied;
                set_condition(
                    &mut status.conditions,
                    cond(
                        "Admitted",
                        ConditionStatus::False,
                        "NamespaceNotOwned",
                        message.clone(),
                    ),
                );
            }
            set_condition(
                &mut status.conditions,
                cond(
                    "Ready",
                    ConditionStatus::False,
                    "NamespaceNotOwned",
                    message.clone(),
                ),
            );
            write_status(&ctx, &sandbox, &old_status, status).await?;
            if !reported {
                ctx.event(
                    &sandbox,
                    EventType::Warning,
                    "NamespaceNotOwned",
                    "Reconcile",
                    message,
                )
                .await;
            }
            // The namespace is not watched (it is not Serre's): look again later.
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    }

    // Admit against the tenant's allowance.
    let resources = match (&spec_errors, status.admitted.clone()) {
        (Some(_), Some(admitted)) => admitted,
        _ => match admit(&ctx, &sandbox, &tenant, &mut status, generation, now).await? {
            Admission::Admitted(r) => r,
            Admission::Denied => return Ok(Action::await_change()),
            Admission::Busy => return Ok(Action::requeue(Duration::from_millis(200))),
        },
    };

    // Expiry.
    // Never later than the maximum lifetime, even if that maximum was lowered since.
    let expires = sandbox
        .spec
        .expires_at
        .min(created + chrono_duration(ctx.config.max_lifetime));
    let extra_egress: Vec<String> = sandbox
        .spec
        .extra_egress_cidrs
        .iter()
        .filter(|c| parse_cidr(c).is_ok())
        .cloned()
        .collect();
    let delete_at = expires + chrono_duration(ctx.config.expiry_grace);
    if now >= delete_at {
        info!("grace period after expiry is over: deleting the sandbox");
        ctx.event(
            &sandbox,
            EventType::Normal,
            "Deleted",
            "Delete",
            format!("Expired at {expires}; grace period over, deleting."),
        )
        .await;
        Api::<Sandbox>::all(ctx.client.clone())
            .delete(&name, &DeleteParams::default())
            .await?;
        ctx.metrics.write("Sandbox", "delete");
        return Ok(Action::await_change());
    }
    let expired = now >= expires;
    let suspended = tenant.spec.suspended;
    let workloads = if expired || suspended {
        Workloads::Stopped
    } else {
        Workloads::Running
    };

    // Build and apply.
    let input = BuildInput {
        sandbox_name: &name,
        sandbox_uid: &uid,
        tenant_name: &tenant.name_any(),
        tenant: &tenant.spec,
        resources: &resources,
        extra_egress_cidrs: &extra_egress,
        workloads,
        config: &ctx.config,
    };
    let children = build::desired(&input);
    apply_children(&ctx.client, &ctx.caches, &ctx.metrics, &name, &children).await?;
    status.namespace = Some(ns.clone());

    // Storage: bucket, key, data key and the namespace Secret.
    let tenant_name = tenant.name_any();
    let target = Target {
        sandbox: &name,
        uid: &uid,
        tenant: &tenant_name,
        namespace: &ns,
    };
    let storage_ready = match storage::provision(
        &ctx,
        &sandbox,
        &target,
        &resources.storage,
        &mut status,
        now,
    )
    .await
    {
        Ok(ready) => ready,
        Err(e) => {
            write_status(&ctx, &sandbox, &old_status, status).await?;
            return Err(e.into());
        }
    };

    // Stop running work when the sandbox stops (the quota alone only blocks new pods).
    let stopping = workloads == Workloads::Stopped
        && !matches!(
            old_status.phase,
            SandboxPhase::Expired | SandboxPhase::Suspended
        );
    if stopping {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        pods.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        ctx.metrics.write("Pod", "deletecollection");
    }

    // Status.
    let quota = children.iter().find(|c| c.resource.kind == "ResourceQuota");
    let enforced = quota.is_some_and(|q| ctx.caches.is_enforced(&ns, q)) && storage_ready;
    let (phase, ready) = if expired {
        (
            SandboxPhase::Expired,
            cond(
                "Ready",
                ConditionStatus::False,
                "Expired",
                format!(
                    "Expired at {expires}: no pods may run. It will be deleted at {delete_at}; extend spec.expiresAt to keep it."
                ),
            ),
        )
    } else if suspended {
        (
            SandboxPhase::Suspended,
            cond(
                "Ready",
                ConditionStatus::False,
                "TenantSuspended",
                "The tenant is suspended: no pods may run until it is resumed.".into(),
            ),
        )
    } else if enforced {
        (
            SandboxPhase::Ready,
            cond(
                "Ready",
                ConditionStatus::True,
                "Provisioned",
                format!(
                    "Namespace {ns} is ready with its quota, network policies and access rights."
                ),
            ),
        )
    } else {
        (
            SandboxPhase::Provisioning,
            cond(
                "Ready",
                ConditionStatus::False,
                "Provisioning",
                format!("Waiting for namespace {ns} and its quota to be in force."),
            ),
        )
    };
    status.phase = phase;
    set_condition(&mut status.conditions, ready);
    let notice_at = expires - chrono_duration(ctx.config.expiry_notice);
    let expiring = now >= notice_at && !expired;
    if expiring || status.conditions.iter().any(|c| c.type_ == "ExpiringSoon") {
        let c = if expiring {
            cond(
                "ExpiringSoon",
                ConditionStatus::True,
                "ExpiryNear",
                format!(
                    "The sandbox expires at {expires}; extend spec.expiresAt or save your results."
                ),
            )
        } else {
            cond(
                "ExpiringSoon",
                ConditionStatus::False,
                if expired { "Expired" } else { "ExpiryExtended" },
                format!("Expiry is {expires}."),
            )
        };
        set_condition(&mut status.conditions, c);
    }

    if old_status.phase != status.phase {
        let (kind, reason, note) = match status.phase {
            SandboxPhase::Ready => (
                EventType::Normal,
                "Ready",
                format!("Namespace {ns} is ready."),
            ),
            SandboxPhase::Expired => (
                EventType::Warning,
                "Expired",
                format!("Expired at {expires}; pods stopped, deletion at {delete_at}."),
            ),
            SandboxPhase::Suspended => (
                EventType::Warning,
                "Suspended",
                "Tenant suspended; pods stopped.".to_owned(),
            ),
            _ => (
                EventType::Normal,
                "Provisioning",
                format!("Creating namespace {ns}."),
            ),
        };
        ctx.event(&sandbox, kind, reason, "Reconcile", note).await;
    }
    if expiring
        && !old_status
            .conditions
            .iter()
            .any(|c| c.type_ == "ExpiringSoon" && c.status == ConditionStatus::True)
    {
        ctx.event(
            &sandbox,
            EventType::Warning,
            "ExpiringSoon",
            "Reconcile",
            format!("The sandbox expires at {expires}."),
        )
        .await;
    }
    write_status(&ctx, &sandbox, &old_status, status).await?;

    // Come back at the next deadline (notice, expiry, deletion), or soon while provisioning.
    let next = [notice_at, expires, delete_at]
        .into_iter()
        .filter(|t| *t > now)
        .min();
    let mut wait = next.map_or(Duration::from_secs(3600), |t| {
        (t - now).to_std().unwrap_or_default() + Duration::from_secs(1)
    });
    if phase == SandboxPhase::Provisioning {
        wait = wait.min(Duration::from_secs(5));
    }
    Ok(Action::requeue(wait.min(Duration::from_secs(3600))))
}

/// Remove everything the sandbox owns, then let the object go.
#[instrument(skip_all, fields(sandbox = %sandbox.name_any()))]
async fn cleanup(sandbox: Arc<Sandbox>, ctx: Arc<Context>) -> Result<Action> {
    let name = sandbox.name_any();
    let old_status = sandbox.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let now = ctx.now();
    let generation = sandbox.metadata.generation;
    if old_status.phase != SandboxPhase::Terminating {
        status.phase = SandboxPhase::Terminating;
        set_condition(
            &mut status.conditions,
            Condition::new(
                "Ready",
                ConditionStatus::False,
                "Terminating",
                "The sandbox is being deleted with everything it holds.",
                generation,
                now,
            ),
        );
        write_status(&ctx, &sandbox, &old_status, status.clone()).await?;
    }
    let ns = namespace_name(&ctx.config, &name);

    // Storage first: empty, delete, shred the data key, certify.
    let destroyed = status
        .conditions
        .iter()
        .any(|c| c.type_ == "StorageReady" && c.reason == "Destroyed");
    if ctx.storage.is_some() && !destroyed {
        let uid = sandbox.uid().unwrap_or_default();
        let target = Target {
            sandbox: &name,
            uid: &uid,
            tenant: &sandbox.spec.tenant,
            namespace: &ns,
        };
        let before = status.clone();
        match storage::teardown(&ctx, &sandbox, &target, &mut status).await {
            Ok(()) => set_condition(
                &mut status.conditions,
                Condition::new(
                    "StorageReady",
                    ConditionStatus::False,
                    "Destroyed",
                    "Bucket and key deleted, data key destroyed, deletion certificate issued.",
                    generation,
                    now,
                ),
            ),
            Err(e) => {
                set_condition(
                    &mut status.conditions,
                    Condition::new(
                        "StorageReady",
                        ConditionStatus::False,
                        "TeardownPending",
                        format!(
                            "Storage could not be removed yet ({e}); retrying. The sandbox stays until it is."
                        ),
                        generation,
                        now,
                    ),
                );
                write_status(&ctx, &sandbox, &before, status).await?;
                return Err(e.into());
            }
        }
        write_status_now(&ctx, &sandbox, status).await?;
    }

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(&ns).await? {
        None => {
            info!(namespace = %ns, "namespace gone; releasing the sandbox");
            ctx.event(
                &sandbox,
                EventType::Normal,
                "Deleted",
                "Cleanup",
                format!("Namespace {ns} and everything in it were deleted."),
            )
            .await;
            Ok(Action::await_change())
        }
        Some(n) => {
            let owned = n
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == sandbox.uid().as_ref());
            if !owned {
                warn!(namespace = %ns, "namespace exists but is not owned by this sandbox; leaving it");
                return Ok(Action::await_change());
            }
            if n.metadata.deletion_timestamp.is_none() {
                namespaces.delete(&ns, &DeleteParams::background()).await?;
                ctx.metrics.write("Namespace", "delete");
            }
            Err(Error::NamespaceTerminating(ns))
        }
    }
}

/// Write the status with server-side apply, whatever it was.
pub(super) async fn write_status_now(
    ctx: &Context,
    sandbox: &Sandbox,
    new: SandboxStatus,
) -> Result<()> {
    let patch = json!({
        "apiVersion": "serre.metropolegrandparis.fr/v1alpha1",
        "kind": "Sandbox",
        "status": new,
    });
    Api::<Sandbox>::all(ctx.client.clone())
        .patch_status(
            &sandbox.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.write("Sandbox", "status");
    Ok(())
}

/// Write the status with server-side apply, only when it changed.
pub(super) async fn write_status(
    ctx: &Context,
    sandbox: &Sandbox,
    old: &SandboxStatus,
    new: SandboxStatus,
) -> Result<()> {
    if *old == new && sandbox.status.is_some() {
        return Ok(());
    }
    write_status_now(ctx, sandbox, new).await
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
