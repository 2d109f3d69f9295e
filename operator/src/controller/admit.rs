//! Admission of a sandbox by its tenant's allowance (the arithmetic is in
//! [`crate::admission`]; this is the part that reads the cluster and writes status).

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::error::Result;
use super::sandbox::write_status;
use crate::admission::{self, Usage};
use crate::resources::{
    Condition, ConditionStatus, Sandbox, SandboxPhase, SandboxResources, SandboxStatus, Tenant,
    set_condition,
};

/// Outcome of the admission step.
pub(super) enum Admission {
    /// Build with these resources (the admitted ones).
    Admitted(SandboxResources),
    /// Nothing may be created; the status says why.
    Denied,
    /// Another admission of the same tenant is under way: try again shortly
    /// (without holding a controller slot while waiting).
    Busy,
}

/// Admission by the tenant's allowance. The tenant's other sandboxes are counted from
/// the controller's cache plus the admissions written but not yet cached
/// ([`super::reservations`]), under a per-tenant lock, so two sandboxes cannot both take
/// the last share of an allowance.
pub(super) async fn admit(
    ctx: &Context,
    sandbox: &Sandbox,
    tenant: &Tenant,
    status: &mut SandboxStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Admission> {
    let requested = &sandbox.spec.resources;
    if status.admitted.as_ref() == Some(requested) {
        return Ok(Admission::Admitted(requested.clone()));
    }
    let cond = |s: ConditionStatus, reason: &str, msg: String| {
        Condition::new("Admitted", s, reason, msg, generation, now)
    };
    let request = match Usage::of(requested) {
        Ok(u) => u,
        Err(e) => {
            return deny(
                ctx,
                sandbox,
                status,
                cond(ConditionStatus::False, "InvalidSpec", e.to_string()),
            )
            .await;
        }
    };
    let limit = match admission::limits(&tenant.spec.allowance) {
        Ok(l) => l,
        Err(e) => {
            let message = format!(
                "Tenant {} has an invalid allowance ({e}); a Métropole admin must fix it.",
                tenant.name_any()
            );
            return deny(
                ctx,
                sandbox,
                status,
                cond(ConditionStatus::False, "TenantAllowanceInvalid", message),
            )
            .await;
        }
    };
    let lock = ctx.tenant_lock(&tenant.name_any());
    let Ok(_guard) = lock.try_lock() else {
        return Ok(Admission::Busy);
    };
    // The cache is complete once its initial list is in (immediate after that).
    ctx.sandboxes
        .wait_until_ready()
        .await
        .map_err(|_| super::error::Error::CacheStopped)?;
    let name = sandbox.name_any();
    let reserved = ctx
        .admissions
        .reserved(&ctx.sandboxes.state(), &sandbox.spec.tenant, &name);
    // Growing from an earlier admission only needs room for the difference.
    let previous = status.admitted.as_ref().and_then(|r| Usage::of(r).ok());
    let counted = previous.map_or(request, |_| Usage {
        sandboxes: 0,
        ..request
    });
    let shrinking = previous.is_some_and(|p| {
        request.cpu <= p.cpu
            && request.memory <= p.memory
            && request.gpus <= p.gpus
            && request.storage <= p.storage
    });
    match admission::check(limit, reserved, counted) {
        Ok(()) => {}
        Err(_) if shrinking => {}
        Err(excess) => {
            let detail = excess
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let message = format!(
                "Over tenant {}'s allowance: {detail}. Ask for less, free resources, or ask a Métropole admin to raise the allowance.",
                tenant.name_any()
            );
            return deny(
                ctx,
                sandbox,
                status,
                cond(ConditionStatus::False, "OverAllowance", message),
            )
            .await;
        }
    }
    status.admitted = Some(requested.clone());
    set_condition(
        &mut status.conditions,
        cond(
            ConditionStatus::True,
            "WithinAllowance",
            format!("Admitted within tenant {}'s allowance.", tenant.name_any()),
        ),
    );
    if status.phase == SandboxPhase::Denied || status.phase == SandboxPhase::Pending {
        status.phase = SandboxPhase::Provisioning;
    }
    // Record the admission before releasing the lock, so the next count sees it.
    let old = sandbox.status.clone().unwrap_or_default();
    write_status(ctx, sandbox, &old, status.clone()).await?;
    ctx.admissions
        .record(&sandbox.spec.tenant, &name, requested);
    Ok(Admission::Admitted(requested.clone()))
}

async fn deny(
    ctx: &Context,
    sandbox: &Sandbox,
    status: &mut SandboxStatus,
    condition: Condition,
) -> Result<Admission> {
    let message = condition.message.clone();
    let reason = condition.reason.clone();
    set_condition(&mut status.conditions, condition.clone());
    let old = sandbox.status.clone().unwrap_or_default();
    if let Some(admitted) = status.admitted.clone() {
        // Already running: keep the admitted size and say the change was refused.
        write_status(ctx, sandbox, &old, status.clone()).await?;
        return Ok(Admission::Admitted(admitted));
    }
    status.phase = SandboxPhase::Denied;
    let ready = Condition {
        type_: "Ready".into(),
        reason: "Denied".into(),
        ..condition
    };
    set_condition(&mut status.conditions, ready);
    if old.phase != SandboxPhase::Denied {
        ctx.event(sandbox, EventType::Warning, &reason, "Admit", message)
            .await;
    }
    write_status(ctx, sandbox, &old, status.clone()).await?;
    Ok(Admission::Denied)
}
