//! Tenant reconciliation: report what its sandboxes reserve, and refuse deletion
//! while sandboxes still exist.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Context;
use super::error::{Error, Result};
use crate::admission::{self, Usage};
use crate::resources::{
    Condition, ConditionStatus, MANAGER, Sandbox, Tenant, TenantStatus, set_condition,
};

pub const FINALIZER: &str = "serre.metropolegrandparis.fr/sandboxes-gone";

pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.measure("tenant");
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Finalizer::Apply(t) => apply(t, ctx.clone()).await,
            Finalizer::Cleanup(t) => cleanup(t, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    let name = tenant.name_any();
    let now = ctx.now();
    let generation = tenant.metadata.generation;
    let old = tenant.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;

    let reserved = ctx
        .sandboxes
        .state()
        .iter()
        .filter(|s| s.spec.tenant == name)
        .filter_map(|s| s.status.as_ref()?.admitted.as_ref())
        .filter_map(|r| Usage::of(r).ok())
        .fold(Usage::default(), std::ops::Add::add);
    status.reserved = reserved.to_reserved();

    let ready = match admission::limits(&tenant.spec.allowance) {
        Err(e) => Condition::new(
            "Ready",
            ConditionStatus::False,
            "InvalidAllowance",
            format!("spec.allowance: {e}; no new sandbox can be admitted until it is fixed."),
            generation,
            now,
        ),
        Ok(limit) => match admission::check(limit, Usage::default(), reserved) {
            Ok(()) => Condition::new(
                "Ready",
                ConditionStatus::True,
                "WithinAllowance",
                format!(
                    "{} sandbox(es) reserve {} CPU, {} memory, {} GPU(s), {} storage.",
                    status.reserved.sandboxes,
                    status.reserved.cpu,
                    status.reserved.memory,
                    status.reserved.gpus,
                    status.reserved.storage
                ),
                generation,
                now,
            ),
            Err(excess) => Condition::new(
                "Ready",
                ConditionStatus::False,
                "OverAllowance",
                format!(
                    "Sandboxes reserve more than the allowance (it was lowered?): {}. New sandboxes are refused until they fit.",
                    excess
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                generation,
                now,
            ),
        },
    };
    set_condition(&mut status.conditions, ready);
    if let Some(c) = energy_condition(&tenant, generation, now) {
        set_condition(&mut status.conditions, c);
    } else {
        status.conditions.retain(|c| c.type_ != ENERGY_BUDGET);
    }
    write_status(&ctx, &tenant, &old, status).await?;
    Ok(Action::requeue(Duration::from_secs(3600)))
}

const ENERGY_BUDGET: &str = "EnergyBudget";

/// `EnergyBudget` from what the gateway's accounting wrote in `status.energy` (only for a
/// tenant with a budget, and only for the current month's figures).
fn energy_condition(
    tenant: &Tenant,
    generation: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Condition> {
    let budget = tenant.spec.energy_budget_kwh?;
    let e = tenant.status.as_ref()?.energy.as_ref()?;
    let current = e.month.format("%Y-%m").to_string() == now.format("%Y-%m").to_string();
    let level = if current { e.level.as_str() } else { "ok" };
    let share = |used: f64| {
        if budget > 0.0 {
            used / budget * 100.0
        } else {
            100.0
        }
    };
    let (status, reason, message) = match level {
        "exhausted" => (
            ConditionStatus::False,
            "Exhausted",
            format!(
                "{:.3} kWh of the {budget} kWh monthly energy budget used ({:.0} %): new trial runs are refused until next month or a raised budget.",
                e.used_kwh,
                share(e.used_kwh)
            ),
        ),
        "warning" => (
            ConditionStatus::False,
            "NearlyExhausted",
            format!(
                "{:.3} kWh of the {budget} kWh monthly energy budget used ({:.0} %, warning at 80 %).",
                e.used_kwh,
                share(e.used_kwh)
            ),
        ),
        _ => (
            ConditionStatus::True,
            "WithinBudget",
            if current {
                format!(
                    "{:.3} kWh of the {budget} kWh monthly energy budget used ({:.0} %).",
                    e.used_kwh,
                    share(e.used_kwh)
                )
            } else {
                format!("No energy recorded yet this month (budget {budget} kWh).")
            },
        ),
    };
    Some(Condition::new(
        ENERGY_BUDGET,
        status,
        reason,
        message,
        generation,
        now,
    ))
}

async fn cleanup(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    let name = tenant.name_any();
    let all = Api::<Sandbox>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut live: Vec<String> = all
        .items
        .iter()
        .filter(|s| s.spec.tenant == name)
        .map(|s| s.name_any())
        .collect();
    if live.is_empty() {
        return Ok(Action::await_change());
    }
    live.sort();
    let listed = live.join(", ");
    let old = tenant.status.clone().unwrap_or_default();
    let mut status = old.clone();
    set_condition(
        &mut status.conditions,
        Condition::new(
            "DeletionBlocked",
            ConditionStatus::True,
            "SandboxesExist",
            format!(
                "The tenant still has {} sandbox(es): {listed}. Delete them first; the tenant goes once they are gone.",
                live.len()
            ),
            tenant.metadata.generation,
            ctx.now(),
        ),
    );
    write_status(&ctx, &tenant, &old, status).await?;
    Err(Error::TenantHasSandboxes {
        tenant: name,
        sandboxes: listed,
    })
}

async fn write_status(
    ctx: &Context,
    tenant: &Tenant,
    old: &TenantStatus,
    new: TenantStatus,
) -> Result<()> {
    // `energy` belongs to the gateway (another field manager): never applied from here.
    let mut new = new;
    new.energy = None;
    let mut old = old.clone();
    old.energy = None;
    if old == new && tenant.status.is_some() {
        return Ok(());
    }
    let patch = json!({"apiVersion": "serre.metropolegrandparis.fr/v1alpha1", "kind": "Tenant", "status": new});
    Api::<Tenant>::all(ctx.client.clone())
        .patch_status(
            &tenant.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.write("Tenant", "status");
    Ok(())
}
