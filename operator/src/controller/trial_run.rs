//! TrialRun reconciliation: fetch → validate → build → apply (the Job, once) → status.
//!
//! No finalizer: the Job is owned by the run and its pods by the Job, so deleting the run
//! deletes both. A run in a final phase is never touched again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument};

use super::Context;
use super::error::{Error, Result};
use super::run_pods::{blocked, failure, observe};
use crate::build::job::{JobInput, missing_setting, results_prefix, trial_run_job};
use crate::resources::{
    Condition, ConditionStatus, MANAGER, RunPhase, SandboxPhase, TrialRun, TrialRunStatus,
    set_condition,
};
use serre_validation::validate::describe;
use serre_validation::validate_run::validate_run;

/// How long past its timeout a run may still be running before the operator stops it
/// itself (the Job controller's own deadline should have fired long before).
const SAFETY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Entry point used by the controller.
#[instrument(skip_all, fields(run = %run.name_any(), namespace = run.namespace().unwrap_or_default()))]
pub async fn reconcile(run: Arc<TrialRun>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.measure("trial_run");
    let old = run.status.clone().unwrap_or_default();
    if old.phase.is_final() || run.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = run.name_any();
    let ns = run
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let uid = run.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let now = ctx.now();
    let generation = run.metadata.generation;
    let mut status = old.clone();
    status.observed_generation = generation;
    status.results_prefix = Some(results_prefix(&name));
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);

    // Cancellation (the gateway sets spec.cancelled on DELETE).
    if run.spec.cancelled {
        if jobs.get_opt(&name).await?.is_some() {
            jobs.delete(&name, &DeleteParams::background()).await?;
            ctx.metrics.write("Job", "delete");
        }
        let by = if run.spec.requested_by.is_empty() {
            "a user"
        } else {
            run.spec.requested_by.as_str()
        };
        finish(
            &mut status,
            RunPhase::Cancelled,
            now,
            format!("cancelled by {by}"),
        );
        return end(&ctx, &run, &old, status, generation, now).await;
    }

    let job = match jobs.get_opt(&name).await? {
        Some(job) => job,
        None => {
            // Dereference the sandbox and its tenant, validate, build, apply.
            let refuse = |status: &mut TrialRunStatus, phase, reason: &str, message: String| {
                status.phase = phase;
                if phase.is_final() {
                    status.finished_at = Some(now);
                    status.exit_reason = Some(message.clone());
                }
                set_condition(
                    &mut status.conditions,
                    Condition::new(
                        "Accepted",
                        ConditionStatus::False,
                        reason,
                        message,
                        generation,
                        now,
                    ),
                );
            };
            let sandbox = ctx
                .sandboxes
                .get(&ObjectRef::new(&run.spec.sandbox))
                .filter(|s| s.meta().deletion_timestamp.is_none());
            let Some(sandbox) = sandbox else {
                let message = format!(
                    "Sandbox {:?} does not exist or is being deleted.",
                    run.spec.sandbox
                );
                refuse(&mut status, RunPhase::Failed, "SandboxNotFound", message);
                return end(&ctx, &run, &old, status, generation, now).await;
            };
            let phase = sandbox.status.as_ref().map(|s| s.phase).unwrap_or_default();
            match phase {
                SandboxPhase::Ready => {}
                SandboxPhase::Denied | SandboxPhase::Expired | SandboxPhase::Terminating => {
                    let message = format!(
                        "Sandbox {:?} is {phase:?}: no run can start in it.",
                        run.spec.sandbox
                    );
                    refuse(&mut status, RunPhase::Failed, "SandboxNotReady", message);
                    return end(&ctx, &run, &old, status, generation, now).await;
                }
                _ => {
                    let message = format!(
                        "Sandbox {:?} is {phase:?}; the run starts when it is Ready.",
                        run.spec.sandbox
                    );
                    refuse(&mut status, RunPhase::Pending, "SandboxNotReady", message);
                    write_status(&ctx, &run, &old, &status).await?;
                    return Ok(Action::requeue(Duration::from_secs(10)));
                }
            }
            let tenant = ctx
                .tenants
                .get(&ObjectRef::new(&sandbox.spec.tenant))
                .filter(|t| t.meta().deletion_timestamp.is_none());
            let Some(tenant) = tenant else {
                let message = format!(
                    "Tenant {:?} of sandbox {:?} does not exist or is being deleted.",
                    sandbox.spec.tenant, run.spec.sandbox
                );
                refuse(&mut status, RunPhase::Failed, "TenantNotFound", message);
                return end(&ctx, &run, &old, status, generation, now).await;
            };
            if let Err(errors) = validate_run(&run.spec, &ns, &sandbox, &tenant.spec, &ctx.config) {
                let message = format!("The spec is invalid: {}", describe(&errors));
                refuse(&mut status, RunPhase::Failed, "InvalidSpec", message);
                return end(&ctx, &run, &old, status, generation, now).await;
            }
            let tenant_name = tenant.name_any();
            let input = JobInput {
                gateway_url: ctx.config.gateway_url.as_deref(),
                fetch_image: ctx.config.run_fetch_image.as_deref(),
                run_name: &name,
                run_uid: &uid,
                namespace: &ns,
                sandbox: &run.spec.sandbox,
                tenant: &tenant_name,
            };
            if let Some(setting) = missing_setting(&run, &input) {
                // An operator setting, not the run's fault: wait for a restart with it.
                let message = format!(
                    "The operator is not configured for runs with grants or a run token \
                     (results through the gateway): set {setting}."
                );
                refuse(&mut status, RunPhase::Pending, "NotConfigured", message);
                write_status(&ctx, &run, &old, &status).await?;
                return Ok(Action::await_change());
            }
            // Jobs are immutable in most fields: applied once, then only read.
            let desired = trial_run_job(&run, &input);
            let job = jobs
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await?;
            ctx.metrics.write("Job", "apply");
            info!(job = %name, "job created");
            ctx.publish(
                run.object_ref(&()),
                EventType::Normal,
                "JobCreated",
                "Create",
                format!("Created Job {name} in {ns}."),
            )
            .await;
            job
        }
    };
    status.job = Some(name.clone());
    set_condition(
        &mut status.conditions,
        Condition::new(
            "Accepted",
            ConditionStatus::True,
            "JobCreated",
            format!("Job {name} runs the trial."),
            generation,
            now,
        ),
    );

    // Status from the Job.
    let job_status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        job_status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .cloned()
    };
    if let Some(start) = &job_status.start_time {
        status.started_at.get_or_insert(timestamp(start));
        if status.phase == RunPhase::Pending {
            status.phase = RunPhase::Running;
        }
    }
    let timeout = run.spec.timeout_seconds;
    if let Some(done) = condition("Complete") {
        let at = job_status
            .completion_time
            .as_ref()
            .map(timestamp)
            .or(done.last_transition_time.as_ref().map(timestamp))
            .unwrap_or(now);
        status.exit_code = Some(0);
        finish(&mut status, RunPhase::Succeeded, at, "completed".into());
    } else if let Some(failed) = condition("Failed") {
        let at = failed
            .last_transition_time
            .as_ref()
            .map(timestamp)
            .unwrap_or(now);
        if failed.reason.as_deref() == Some("DeadlineExceeded") {
            let reason = format!("exceeded its timeout of {timeout} s");
            finish(&mut status, RunPhase::TimedOut, at, reason);
        } else {
            let seen = observe(&ctx.client, &ns, &name, "").await?;
            let (code, reason) = failure(&seen.pods).unwrap_or_else(|| {
                let why = [failed.reason, failed.message]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                (None, format!("the Job failed: {why}"))
            });
            status.exit_code = code;
            finish(&mut status, RunPhase::Failed, at, reason);
        }
    } else if let Some(started) = status.started_at
        && now > started + chrono::Duration::seconds(i64::from(timeout)) + SAFETY_MARGIN
    {
        // The Job's own deadline did not stop it: stop it here.
        jobs.delete(&name, &DeleteParams::background()).await?;
        ctx.metrics.write("Job", "delete");
        let reason = format!("exceeded its timeout of {timeout} s (stopped by the operator)");
        finish(&mut status, RunPhase::TimedOut, now, reason);
    }
    let mut no_pod = false;
    if !status.phase.is_final() {
        // A pod that will never start (its image cannot be pulled) or that the sandbox
        // refuses (quota, limits) would keep the Job waiting until its deadline.
        let job_uid = job.uid().unwrap_or_default();
        let seen = observe(&ctx.client, &ns, &name, &job_uid).await?;
        no_pod = seen.pods.is_empty();
        if let Some(b) = blocked(&seen) {
            jobs.delete(&name, &DeleteParams::background()).await?;
            ctx.metrics.write("Job", "delete");
            info!(job = %name, reason = b.reason, "run blocked: job deleted");
            finish(&mut status, RunPhase::Failed, now, b.message);
        }
    }
    if status.phase.is_final() {
        return end(&ctx, &run, &old, status, generation, now).await;
    }

    set_condition(
        &mut status.conditions,
        Condition::new(
            "Complete",
            ConditionStatus::False,
            phase_str(status.phase),
            match status.phase {
                RunPhase::Running => format!("Running, for at most {timeout} s."),
                _ => "Waiting for the Job to start.".to_owned(),
            },
            generation,
            now,
        ),
    );
    if old.phase != RunPhase::Running && status.phase == RunPhase::Running {
        ctx.publish(
            run.object_ref(&()),
            EventType::Normal,
            "Started",
            "Run",
            format!("The trial started; it may run for {timeout} s."),
        )
        .await;
    }
    write_status(&ctx, &run, &old, &status).await?;
    // Come back for the safety timeout (Job and pod changes wake the controller
    // earlier), or soon while the Job has no pod: a refusal shows only in its Events.
    let wait = status.started_at.map_or(Duration::from_secs(300), |s| {
        let at = s + chrono::Duration::seconds(i64::from(timeout)) + SAFETY_MARGIN;
        (at - now).to_std().unwrap_or_default() + Duration::from_secs(1)
    });
    let wait = if no_pod {
        wait.min(Duration::from_secs(5))
    } else {
        wait
    };
    Ok(Action::requeue(wait.min(Duration::from_secs(3600))))
}

/// Move to a final phase.
fn finish(status: &mut TrialRunStatus, phase: RunPhase, at: DateTime<Utc>, reason: String) {
    status.phase = phase;
    status.finished_at.get_or_insert(at);
    status.exit_reason = Some(reason);
}

/// Write a final status, with its `Complete` condition and an Event.
async fn end(
    ctx: &Context,
    run: &TrialRun,
    old: &TrialRunStatus,
    mut status: TrialRunStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Action> {
    let reason = status.exit_reason.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        Condition::new(
            "Complete",
            ConditionStatus::True,
            phase_str(status.phase),
            format!("The run ended: {reason}."),
            generation,
            now,
        ),
    );
    let kind = if status.phase == RunPhase::Succeeded {
        EventType::Normal
    } else {
        EventType::Warning
    };
    ctx.publish(
        run.object_ref(&()),
        kind,
        phase_str(status.phase),
        "Run",
        format!("The run ended ({:?}): {reason}.", status.phase),
    )
    .await;
    write_status(ctx, run, old, &status).await?;
    Ok(Action::await_change())
}

fn phase_str(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Pending => "Pending",
        RunPhase::Running => "Running",
        RunPhase::Succeeded => "Succeeded",
        RunPhase::Failed => "Failed",
        RunPhase::TimedOut => "TimedOut",
        RunPhase::Cancelled => "Cancelled",
    }
}

fn timestamp(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// Write the operator's fields of the status (a merge patch on the status subresource),
/// only when they changed. `usage` belongs to the gateway and is never sent.
async fn write_status(
    ctx: &Context,
    run: &TrialRun,
    old: &TrialRunStatus,
    new: &TrialRunStatus,
) -> Result<()> {
    if old == new && run.status.is_some() {
        return Ok(());
    }
    let mut value = serde_json::to_value(new).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("usage");
    }
    let patch = json!({ "status": value });
    Api::<TrialRun>::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default())
        .patch_status(
            &run.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.metrics.write("TrialRun", "status");
    Ok(())
}
