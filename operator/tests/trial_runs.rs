//! Trial runs against a real kube-apiserver + etcd + kube-controller-manager.
//!
//! The control plane has no kubelet: the Job controller creates a run's pod, but nothing
//! ever runs it. Each test plays the kubelet's part itself, patching the pod's status
//! (phase Running, then Succeeded or Failed with the trial container's exit code), and
//! the real Job controller turns that into the Job's conditions the operator reads.

#[path = "support/mod.rs"]
mod support;

use chrono::Duration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use serre_operator::resources::{
    LABEL_RUN, RunKind, RunResources, TrialRun, TrialRunSpec, TrialRunStatus,
};
use support::operator::shared_operator;
use support::*;

const REGISTRY: &str = "registry.example.fr/vendors";

/// A tenant allowing [`REGISTRY`] and a Ready sandbox; returns the sandbox's name and
/// namespace.
async fn ready_sandbox(client: &Client) -> (String, String) {
    let tenant = unique("ept");
    let mut spec = tenant_spec("8", 2);
    spec.allowed_registries = vec![REGISTRY.into()];
    create_tenant(client, &tenant, spec).await;
    let name = unique("trials");
    create_sandbox(
        client,
        &name,
        sandbox_spec(&tenant, "2", Duration::days(30)),
    )
    .await;
    wait_phase(client, &name, "Ready", 120).await;
    let ns = format!("serre-{name}");
    (name, ns)
}

fn run_spec(sandbox: &str, grants: &[&str]) -> TrialRunSpec {
    TrialRunSpec {
        sandbox: sandbox.into(),
        image: format!("{REGISTRY}/bus-model:1.0"),
        command: vec!["python".into(), "forecast.py".into()],
        args: vec!["--days".into(), "7".into()],
        resources: RunResources {
            cpu: "500m".into(),
            memory: "1Gi".into(),
            gpu: None,
        },
        grants: grants.iter().map(|g| g.to_string()).collect(),
        solution: None,
        kind: RunKind::Inference,
        timeout_seconds: 600,
        functional_unit: None,
        token_secret: (!grants.is_empty()).then(|| "run-token".to_owned()),
        requested_by: "alice@est-ensemble.fr".into(),
        cancelled: false,
    }
}

async fn create_run(client: &Client, ns: &str, name: &str, spec: TrialRunSpec) {
    Api::<TrialRun>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &TrialRun::new(name, spec))
        .await
        .expect("create trial run");
}

/// Wait until the run reaches `phase` and return its status.
async fn wait_run(client: &Client, ns: &str, name: &str, phase: &str, secs: u64) -> TrialRunStatus {
    let api = Api::<TrialRun>::namespaced(client.clone(), ns);
    eventually(secs, &format!("run {name} to be {phase}"), || {
        let api = api.clone();
        async move {
            let st = api.get_opt(name).await.ok()??.status?;
            (format!("{:?}", st.phase) == phase).then_some(st)
        }
    })
    .await
}

/// The run's pod, once the Job controller has created it.
async fn wait_pod(client: &Client, ns: &str, run: &str) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = format!("{LABEL_RUN}={run}");
    eventually(60, &format!("the pod of run {run}"), || {
        let (pods, selector) = (pods.clone(), selector.clone());
        async move {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            list.items.first().map(ResourceExt::name_any)
        }
    })
    .await
}

/// Play the kubelet: set the pod's phase, and the trial's exit code once it ended.
async fn drive_pod(client: &Client, ns: &str, pod: &str, phase: &str, exit_code: Option<i32>) {
    let mut status = json!({"phase": phase});
    if let Some(code) = exit_code {
        status["containerStatuses"] = json!([{
            "name": "trial", "image": format!("{REGISTRY}/bus-model:1.0"), "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {
                "exitCode": code,
                "reason": if code == 0 { "Completed" } else { "Error" },
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"
            }}
        }]);
    }
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .expect("patch pod status");
}

fn condition_reason(st: &TrialRunStatus, type_: &str) -> String {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| panic!("no {type_} condition in {st:?}"))
}

#[tokio::test]
async fn a_run_with_grants_is_fetched_run_and_succeeds() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    create_run(&client, &ns, "happy", run_spec(&sandbox, &["g-1", "g-2"])).await;

    // The Job, exactly as the gateway's init step expects it.
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let job = eventually(60, "the Job", || async {
        jobs.get_opt("happy").await.ok()?
    })
    .await;
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(600));
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(job.owner_references()[0].kind, "TrialRun");
    let pod = spec.template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.command.as_ref().unwrap(),
        &[
            "serre-api",
            "fetch-grants",
            "--gateway",
            "http://127.0.0.1:13901",
            "--token-file",
            "/var/run/serre/token",
            "--out",
            "/data/grants",
            "--grant",
            "g-1",
            "--grant",
            "g-2",
        ]
    );
    let trial = &pod.containers[0];
    let mount = &trial.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/data/grants", Some(true))
    );

    let running = wait_run(&client, &ns, "happy", "Running", 60).await;
    assert!(running.started_at.is_some());
    assert_eq!(running.job.as_deref(), Some("happy"));
    assert_eq!(condition_reason(&running, "Accepted"), "JobCreated");

    let pod = wait_pod(&client, &ns, "happy").await;
    drive_pod(&client, &ns, &pod, "Running", None).await;
    drive_pod(&client, &ns, &pod, "Succeeded", Some(0)).await;
    let done = wait_run(&client, &ns, "happy", "Succeeded", 60).await;
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert!(done.finished_at >= done.started_at);
    assert_eq!(done.results_prefix.as_deref(), Some("runs/happy/"));
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(condition_reason(&done, "Complete"), "Succeeded");
}

#[tokio::test]
async fn a_non_zero_exit_code_fails_the_run_with_that_code() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    create_run(&client, &ns, "exit3", run_spec(&sandbox, &[])).await;
    let pod = wait_pod(&client, &ns, "exit3").await;
    drive_pod(&client, &ns, &pod, "Running", None).await;
    drive_pod(&client, &ns, &pod, "Failed", Some(3)).await;
    let st = wait_run(&client, &ns, "exit3", "Failed", 60).await;
    assert_eq!(st.exit_code, Some(3));
    let reason = st.exit_reason.unwrap_or_default();
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(st.finished_at.is_some());
}

#[tokio::test]
async fn the_job_deadline_times_the_run_out() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    let mut spec = run_spec(&sandbox, &[]);
    spec.timeout_seconds = 2;
    create_run(&client, &ns, "slow", spec).await;
    // Nobody drives the pod: the Job controller's activeDeadlineSeconds ends it.
    let st = wait_run(&client, &ns, "slow", "TimedOut", 90).await;
    assert_eq!(
        st.exit_reason.as_deref(),
        Some("exceeded its timeout of 2 s")
    );
    assert!(st.finished_at.is_some());
}

#[tokio::test]
async fn a_cancelled_run_loses_its_job() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    create_run(&client, &ns, "stopme", run_spec(&sandbox, &[])).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    eventually(60, "the Job", || async {
        jobs.get_opt("stopme").await.ok()?
    })
    .await;
    Api::<TrialRun>::namespaced(client.clone(), &ns)
        .patch(
            "stopme",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"cancelled": true}})),
        )
        .await
        .expect("cancel");
    let st = wait_run(&client, &ns, "stopme", "Cancelled", 60).await;
    assert_eq!(
        st.exit_reason.as_deref(),
        Some("cancelled by alice@est-ensemble.fr")
    );
    assert!(st.finished_at.is_some());
    wait_gone(&jobs, "stopme", 30).await;
}

#[tokio::test]
async fn an_image_from_a_registry_the_tenant_does_not_allow_is_refused() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    let mut spec = run_spec(&sandbox, &[]);
    spec.image = "registry.example.fr/vendorsx/bus-model:1.0".into();
    create_run(&client, &ns, "foreign", spec).await;
    let st = wait_run(&client, &ns, "foreign", "Failed", 60).await;
    assert_eq!(condition_reason(&st, "Accepted"), "InvalidSpec");
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .unwrap()
        .message;
    assert!(message.contains("spec.image"), "{message}");
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    assert!(jobs.get_opt("foreign").await.unwrap().is_none());
}

#[tokio::test]
async fn a_failed_init_step_says_the_datasets_could_not_be_fetched() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client).await;
    create_run(&client, &ns, "nofetch", run_spec(&sandbox, &["g-1"])).await;
    let pod = wait_pod(&client, &ns, "nofetch").await;
    // The kubelet's part: the init step exits 1, the trial never starts.
    let status = json!({"status": {
        "phase": "Failed",
        "initContainerStatuses": [{
            "name": "fetch-grants", "image": "registry.example.fr/serre/serre-api:test",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {
                "exitCode": 1, "reason": "Error", "message": "grant g-1: 403 Forbidden",
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:05Z"
            }}
        }]
    }});
    Api::<Pod>::namespaced(client.clone(), &ns)
        .patch_status(&pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch pod status");
    let st = wait_run(&client, &ns, "nofetch", "Failed", 60).await;
    assert_eq!(st.exit_code, Some(1));
    assert_eq!(
        st.exit_reason.as_deref(),
        Some("fetching the granted datasets failed: exit code 1 (Error): grant g-1: 403 Forbidden")
    );
}
