//! Trial runs against a real kube-apiserver + etcd + kube-controller-manager and a real
//! node (kubelet, containerd): the run's Job is created by the operator, its pod pulled
//! from the node's registry and run by the kubelet, and the run ends on what really
//! happened. The trial is Serre's example model (deploy/examples/model), whose test
//! flags make it fail, sleep or allocate; the init step is the real `serre-api
//! fetch-grants` (with no gateway listening here, it fails).

#[path = "support/mod.rs"]
mod support;

use chrono::Duration;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serre_operator::resources::{
    LABEL_RUN, RunKind, RunResources, TrialRun, TrialRunSpec, TrialRunStatus,
};
use support::operator::shared_operator;
use support::*;

/// A tenant allowing the test images' registry and a Ready sandbox with `cpu` CPUs;
/// returns the sandbox's name and namespace.
async fn ready_sandbox(client: &Client, cpu: &str) -> (String, String) {
    let tenant = unique("ept");
    let mut spec = tenant_spec("8", 2);
    spec.allowed_registries = vec![test_images()];
    create_tenant(client, &tenant, spec).await;
    let name = unique("trials");
    create_sandbox(
        client,
        &name,
        sandbox_spec(&tenant, cpu, Duration::days(30)),
    )
    .await;
    wait_phase(client, &name, "Ready", 120).await;
    let ns = format!("serre-{name}");
    (name, ns)
}

/// The example model with `args`, 500m CPU and 128Mi.
fn run_spec(sandbox: &str, grants: &[&str], args: &[&str]) -> TrialRunSpec {
    TrialRunSpec {
        sandbox: sandbox.into(),
        image: test_image("serre-example-model"),
        command: vec![],
        args: args.iter().map(|a| a.to_string()).collect(),
        resources: RunResources {
            cpu: "500m".into(),
            memory: "128Mi".into(),
            gpu: None,
        },
        grants: grants.iter().map(|g| g.to_string()).collect(),
        solution: None,
        kind: RunKind::Inference,
        timeout_seconds: 300,
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

/// The run's pods (by its label).
async fn run_pods(client: &Client, ns: &str, run: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{LABEL_RUN}={run}")))
        .await
        .expect("list pods")
        .items
}

fn condition_reason(st: &TrialRunStatus, type_: &str) -> String {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| panic!("no {type_} condition in {st:?}"))
}

#[tokio::test]
async fn the_model_runs_on_the_node_and_succeeds() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    create_run(&client, &ns, "happy", run_spec(&sandbox, &[], &[])).await;

    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let job = eventually(60, "the Job", || async {
        jobs.get_opt("happy").await.ok()?
    })
    .await;
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(300));
    assert_eq!(spec.backoff_limit, Some(0));
    let trial = &spec.template.spec.as_ref().unwrap().containers[0];
    let mount = &trial.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/data/grants", Some(true))
    );

    let done = wait_run(&client, &ns, "happy", "Succeeded", 180).await;
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert!(done.finished_at >= done.started_at);
    assert_eq!(done.results_prefix.as_deref(), Some("runs/happy/"));
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(condition_reason(&done, "Accepted"), "JobCreated");
    assert_eq!(condition_reason(&done, "Complete"), "Succeeded");
    // The kubelet ran it: the trial container really started and exited 0, as user
    // 65532, and printed what the model prints first.
    let pods = run_pods(&client, &ns, "happy").await;
    let status = pods[0].status.as_ref().expect("pod status");
    let trial = &status.container_statuses.as_ref().expect("statuses")[0];
    let ended = trial.state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(ended.map(|t| t.exit_code), Some(0), "{trial:?}");
    assert!(!trial.image_id.is_empty(), "pulled: {trial:?}");
    let pod_name = pods[0].metadata.name.clone().expect("pod name");
    let logs = Api::<Pod>::namespaced(client.clone(), &ns)
        .logs(&pod_name, &Default::default())
        .await
        .expect("logs");
    assert!(
        logs.lines()
            .next()
            .unwrap_or_default()
            .starts_with("serre-example-model started at"),
        "{logs}"
    );
    assert!(logs.contains("run=happy"), "{logs}");
}

#[tokio::test]
async fn a_non_zero_exit_code_fails_the_run_with_that_code_and_its_last_words() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    create_run(
        &client,
        &ns,
        "exit3",
        run_spec(&sandbox, &[], &["--exit-code", "3"]),
    )
    .await;
    let st = wait_run(&client, &ns, "exit3", "Failed", 180).await;
    assert_eq!(st.exit_code, Some(3));
    let reason = st.exit_reason.unwrap_or_default();
    assert!(
        reason.starts_with("the trial exited with code 3 (Error): "),
        "{reason}"
    );
    assert!(st.finished_at.is_some());
}

#[tokio::test]
async fn the_job_deadline_times_the_run_out() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    let mut spec = run_spec(&sandbox, &[], &["--sleep-seconds", "600"]);
    spec.timeout_seconds = 8;
    create_run(&client, &ns, "slow", spec).await;
    // The model sleeps: the Job controller's activeDeadlineSeconds stops it.
    let st = wait_run(&client, &ns, "slow", "TimedOut", 120).await;
    assert_eq!(
        st.exit_reason.as_deref(),
        Some("exceeded its timeout of 8 s")
    );
    assert!(st.finished_at.is_some());
    eventually(60, "the pod to be stopped", || async {
        let pods = run_pods(&client, &ns, "slow").await;
        pods.iter()
            .all(|p| {
                p.metadata.deletion_timestamp.is_some()
                    || p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_run_loses_its_job_and_pod() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    create_run(
        &client,
        &ns,
        "stopme",
        run_spec(&sandbox, &[], &["--sleep-seconds", "600"]),
    )
    .await;
    eventually(120, "the model to be running", || async {
        let pods = run_pods(&client, &ns, "stopme").await;
        let phase = pods.first()?.status.as_ref()?.phase.clone()?;
        (phase == "Running").then_some(())
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
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    wait_gone(&jobs, "stopme", 30).await;
    // The example model, PID 1 without a SIGTERM handler, is killed only at the end of
    // the pod's 30 s grace period; on a loaded CI machine the kubelet and the garbage
    // collector take a while more (once over 90 s while the whole suite ran).
    eventually(180, "the pod to be gone", || async {
        run_pods(&client, &ns, "stopme")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_image_from_a_registry_the_tenant_does_not_allow_is_refused() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    let mut spec = run_spec(&sandbox, &[], &[]);
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
async fn an_image_that_cannot_be_pulled_fails_the_run() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    let mut spec = run_spec(&sandbox, &[], &[]);
    spec.image = format!("{}/no-such-model:1", test_images());
    create_run(&client, &ns, "nopull", spec).await;
    let st = wait_run(&client, &ns, "nopull", "Failed", 180).await;
    let reason = st.exit_reason.unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "the image \"{}/no-such-model:1\" of container trial could not be pulled",
            test_images()
        )),
        "{reason}"
    );
    assert_eq!(st.exit_code, None);
    // The pod stops retrying: the Job is gone.
    wait_gone(&Api::<Job>::namespaced(client.clone(), &ns), "nopull", 30).await;
}

#[tokio::test]
async fn a_model_over_its_memory_limit_is_oom_killed() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    let mut spec = run_spec(&sandbox, &[], &["--allocate-mib", "512"]);
    spec.resources.memory = "64Mi".into();
    create_run(&client, &ns, "greedy", spec).await;
    let st = wait_run(&client, &ns, "greedy", "Failed", 180).await;
    assert_eq!(st.exit_code, Some(137));
    assert_eq!(
        st.exit_reason.as_deref(),
        Some(
            "the trial was killed for using more memory than its limit of 64Mi \
             (OOMKilled, exit code 137)"
        )
    );
}

#[tokio::test]
async fn a_run_the_quota_has_no_room_for_is_refused_with_the_quota_message() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "1").await;
    // The first run takes the sandbox's whole CPU and keeps it.
    let mut first = run_spec(&sandbox, &[], &["--sleep-seconds", "600"]);
    first.resources.cpu = "1".into();
    create_run(&client, &ns, "first", first.clone()).await;
    wait_run(&client, &ns, "first", "Running", 120).await;
    eventually(120, "the first run's pod", || async {
        (!run_pods(&client, &ns, "first").await.is_empty()).then_some(())
    })
    .await;
    create_run(&client, &ns, "second", first).await;
    let st = wait_run(&client, &ns, "second", "Failed", 120).await;
    let reason = st.exit_reason.unwrap_or_default();
    assert!(
        reason.starts_with("the sandbox refused the run's pod: ")
            && reason.contains("exceeded quota"),
        "{reason}"
    );
    wait_gone(&Api::<Job>::namespaced(client.clone(), &ns), "second", 30).await;
    // The first one is untouched.
    let first = Api::<TrialRun>::namespaced(client.clone(), &ns)
        .get("first")
        .await
        .expect("first run");
    assert_eq!(format!("{:?}", first.status.unwrap().phase), "Running");
}

#[tokio::test]
async fn a_failed_init_step_says_the_datasets_could_not_be_fetched() {
    shared_operator();
    let client = client().await;
    let (sandbox, ns) = ready_sandbox(&client, "2").await;
    // The token the gateway would have made; no gateway listens at the operator's URL.
    let secret = Secret {
        metadata: kube::core::ObjectMeta {
            name: Some("run-token".into()),
            ..Default::default()
        },
        data: Some([("token".to_owned(), ByteString(b"serre-rt1.x.y".to_vec()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("token secret");
    create_run(&client, &ns, "nofetch", run_spec(&sandbox, &["g-1"], &[])).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let job = eventually(60, "the Job", || async {
        jobs.get_opt("nofetch").await.ok()?
    })
    .await;
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
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
        ]
    );
    let st = wait_run(&client, &ns, "nofetch", "Failed", 180).await;
    assert!(st.exit_code.is_some_and(|c| c != 0), "{st:?}");
    let reason = st.exit_reason.unwrap_or_default();
    assert!(
        reason.starts_with("fetching the granted datasets failed: exit code "),
        "{reason}"
    );
    // The tail of fetch-grants' own error, from the pod's log.
    assert!(reason.contains("127.0.0.1:13901"), "{reason}");
    // The trial never started.
    let pods = run_pods(&client, &ns, "nofetch").await;
    let trial = &pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(
        trial
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_none()
            && trial
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_none(),
        "{trial:?}"
    );
}
