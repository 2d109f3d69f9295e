//! The sandbox policy admission webhook on a real cluster (kube-apiserver 1.20, which has
//! no Pod Security admission) and a real node: the operator serves the webhook from this
//! process on the host address (`--webhook-url`), the API server calls it over TLS with
//! the CA the operator put in the configuration, and refuses violating Pods and workloads
//! where the user acts, naming each rule and field; compliant ones are admitted and run;
//! other namespaces are untouched. The policy is scoped to this binary's tenant
//! (`--webhook-namespace-selector`), so other test binaries sharing the cluster are not
//! affected, even after this one exits.

#[path = "support/mod.rs"]
mod support;

use std::sync::OnceLock;

use chrono::Duration;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{Value, json};
use serre_operator::resources::{LABEL_RUN, RunKind, RunResources, Tenant, TrialRun, TrialRunSpec};
use support::operator::shared_webhook_operator;
use support::*;

/// This binary's tenant: the only one the policy applies to here.
fn tenant() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique("policy"))
}

/// The webhook operator running, the tenant (allowing the test images' registry) and a
/// Ready sandbox of it; returns the sandbox's name and namespace.
async fn sandbox(client: &Client) -> (String, String) {
    shared_webhook_operator(tenant());
    let mut spec = tenant_spec("16", 10);
    spec.allowed_registries = vec![test_images()];
    match Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &Tenant::new(tenant(), spec))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create tenant: {e}"),
    }
    let name = unique("policy");
    create_sandbox(
        client,
        &name,
        sandbox_spec(tenant(), "2", Duration::days(30)),
    )
    .await;
    wait_phase(client, &name, "Ready", 120).await;
    let ns = format!("serre-{name}");
    (name, ns)
}

/// A pod spec that passes the policy: the example model, restricted, no token.
fn compliant_spec(args: &[&str]) -> Value {
    json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "containers": [{
            "name": "model",
            "image": test_image("serre-example-model"),
            "args": args,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"}
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}
            },
            "volumeMounts": [{"name": "grants", "mountPath": "/data/grants"}]
        }],
        "volumes": [{"name": "grants", "emptyDir": {}}]
    })
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod")
}

fn template(spec: Value) -> Value {
    json!({"metadata": {"labels": {"app": "model"}}, "spec": spec})
}

/// A long-running workload's template (Deployments and DaemonSets restart their pods).
fn restarting(mut spec: Value) -> Value {
    spec["restartPolicy"] = json!("Always");
    template(spec)
}

fn deployment(name: &str, replicas: i32, spec: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "model"}},
            "template": restarting(spec)
        }
    }))
    .expect("deployment")
}

fn job(name: &str, spec: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": template(spec)}
    }))
    .expect("job")
}

/// The message of a refusal by the webhook (fails the test if the object was admitted).
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains("admission webhook")
                    && s.message.contains("Serre's sandbox policy refuses"),
                "not the webhook's refusal: {}",
                s.message
            );
            s.message
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn has_all(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{p:?} missing from: {message}");
    }
}

#[tokio::test]
async fn violating_pods_and_workloads_are_refused_naming_each_rule_and_field() {
    let client = client().await;
    let (_, ns) = sandbox(&client).await;
    let create = PostParams::default();

    // A Pod breaking four rules at once: one refusal naming all four. (Not `privileged`:
    // the API server's own validation refuses that first, --allow-privileged being off.)
    let mut spec = compliant_spec(&[]);
    spec["containers"][0]["image"] = json!("python:3.12");
    spec["containers"][0]["securityContext"]["capabilities"] =
        json!({"drop": ["ALL"], "add": ["NET_RAW"]});
    spec["hostNetwork"] = json!(true);
    spec.as_object_mut()
        .unwrap()
        .remove("automountServiceAccountToken");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let m = refusal(pods.create(&create, &pod("bad", spec)).await);
    has_all(
        &m,
        &[
            "(4 problems)",
            "spec.containers[0].image: \"python:3.12\"",
            "[rule allowed-registries]",
            "spec.containers[0].securityContext.capabilities.add[0]: \"NET_RAW\" is not allowed",
            "[rule restricted/capabilities]",
            "spec.hostNetwork: must not be true",
            "[rule restricted/host-namespaces]",
            "spec.automountServiceAccountToken: must be false",
            "[rule service-account-token]",
        ],
    );

    // A path traversal under the allowed registry is not an image of it.
    let mut spec = compliant_spec(&[]);
    spec["containers"][0]["image"] = json!(format!("{}/../x:1", test_images()));
    let m = refusal(pods.create(&create, &pod("traversal", spec)).await);
    has_all(
        &m,
        &[
            "spec.containers[0].image:",
            "not a valid image reference",
            "[rule allowed-registries]",
        ],
    );

    // A Deployment: the error is on the Deployment, at its template's fields.
    let mut spec = compliant_spec(&[]);
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    spec["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "root", "mountPath": "/host"}]);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let m = refusal(
        deployments
            .create(&create, &deployment("bad", 1, spec))
            .await,
    );
    has_all(
        &m,
        &[
            "Deployment \"bad\"",
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: must be false [rule restricted/allow-privilege-escalation]",
            "spec.template.spec.volumes[0].hostPath: is not allowed",
            "[rule restricted/host-path]",
        ],
    );

    // A Job running as root with an added capability.
    let mut spec = compliant_spec(&[]);
    spec["securityContext"]["runAsUser"] = json!(0);
    spec["containers"][0]["securityContext"]["capabilities"] =
        json!({"drop": ["ALL"], "add": ["SYS_ADMIN"]});
    let m = refusal(
        Api::<Job>::namespaced(client.clone(), &ns)
            .create(&create, &job("bad", spec))
            .await,
    );
    has_all(
        &m,
        &[
            "spec.template.spec.securityContext.runAsUser: must not be 0 (root) [rule restricted/run-as-user]",
            "spec.template.spec.containers[0].securityContext.capabilities.add[0]: \"SYS_ADMIN\" is not allowed",
        ],
    );

    // A DaemonSet with a host port and no seccomp profile.
    let mut spec = compliant_spec(&[]);
    spec["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("seccompProfile");
    spec["containers"][0]["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "model"}}, "template": restarting(spec)}
    }))
    .unwrap();
    let m = refusal(
        Api::<DaemonSet>::namespaced(client.clone(), &ns)
            .create(&create, &ds)
            .await,
    );
    has_all(
        &m,
        &[
            "spec.template.spec.containers[0].ports[0].hostPort",
            "[rule restricted/host-ports]",
            "spec.template.spec.containers[0].securityContext.seccompProfile.type",
            "[rule restricted/seccomp]",
        ],
    );

    // A CronJob: batch/v1beta1 on Kubernetes 1.20, its template two levels down.
    let mut spec = compliant_spec(&[]);
    spec["volumes"] = json!([{"name": "grants", "nfs": {"server": "10.0.0.1", "path": "/"}}]);
    let gvk = GroupVersionKind::gvk("batch", "v1beta1", "CronJob");
    let cronjobs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let cronjob: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "batch/v1beta1", "kind": "CronJob",
        "metadata": {"name": "bad"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template(spec)}}}
    }))
    .unwrap();
    let m = refusal(cronjobs.create(&create, &cronjob).await);
    has_all(
        &m,
        &[
            "CronJob \"bad\"",
            "spec.jobTemplate.spec.template.spec.volumes[0].nfs: volume type \"nfs\" is not allowed",
            "[rule restricted/volume-types]",
        ],
    );

    // Nothing of it exists.
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn compliant_pods_run_and_compliant_workloads_are_admitted() {
    let client = client().await;
    let (_, ns) = sandbox(&client).await;
    let create = PostParams::default();

    // A compliant Pod is admitted and really runs on the node, to completion.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&create, &pod("model", compliant_spec(&[])))
        .await
        .expect("a compliant pod is admitted");
    let phase = eventually(180, "the compliant pod to succeed", || async {
        let p = pods.get("model").await.ok()?;
        let phase = p.status?.phase?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await;
    assert_eq!(phase, "Succeeded");

    // A compliant Deployment: admitted, and so are its ReplicaSet and its pod (created by
    // Kubernetes' controllers, checked by the webhook too).
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(
            &create,
            &deployment("model", 1, compliant_spec(&["--sleep-seconds", "600"])),
        )
        .await
        .expect("a compliant deployment is admitted");
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    eventually(60, "the Deployment's pod", || async {
        let rs = replicasets.list(&ListParams::default()).await.ok()?.items;
        let pods = pods
            .list(&ListParams::default().labels("app=model"))
            .await
            .ok()?
            .items;
        (!rs.is_empty() && !pods.is_empty()).then_some(())
    })
    .await;
    // Scaling keeps the template: allowed. Changing it to a violating one: refused.
    deployments
        .patch(
            "model",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scaling is allowed");
    let m = refusal(
        deployments
            .patch(
                "model",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": {"spec": {"hostPID": true}}}})),
            )
            .await,
    );
    has_all(
        &m,
        &[
            "Deployment \"model\"",
            "spec.template.spec.hostPID: must not be true",
            "[rule restricted/host-namespaces]",
        ],
    );

    // A compliant Job is admitted and its pod created.
    Api::<Job>::namespaced(client.clone(), &ns)
        .create(&create, &job("model", compliant_spec(&[])))
        .await
        .expect("a compliant job is admitted");
    eventually(60, "the Job's pod", || async {
        let pods = pods
            .list(&ListParams::default().labels("job-name=model"))
            .await
            .ok()?
            .items;
        (!pods.is_empty()).then_some(())
    })
    .await;
}

/// A client acting as `user` (impersonated by the test cluster's admin), in group
/// `system:masters`: RBAC lets it do anything, so what it is refused is the webhook's
/// doing.
async fn client_as(user: &str) -> Client {
    serre_operator::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(vec!["system:masters".to_owned()]);
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn only_serre_puts_the_sandbox_secrets_in_a_pod() {
    let client = client().await;
    let (_, ns) = sandbox(&client).await;
    let create = PostParams::default();
    // The Secrets a sandbox namespace holds: the bucket's keys and a run's token.
    for name in ["sandbox-storage", "stolen-run-token"] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {"token": "secret"}
        }))
        .expect("secret");
        match Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&create, &secret)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create secret {name}: {e}"),
        }
    }
    let alice = client_as("alice@est-ensemble.fr").await;

    // A Pod mounting the bucket's keys, as a sandbox editor would write it.
    let mut spec = compliant_spec(&[]);
    spec["volumes"] = json!([{"name": "keys", "secret": {"secretName": "sandbox-storage"}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "keys", "mountPath": "/keys"}]);
    let m = refusal(
        Api::<Pod>::namespaced(alice.clone(), &ns)
            .create(&create, &pod("steal", spec))
            .await,
    );
    has_all(
        &m,
        &[
            "Pod \"steal\"",
            "spec.volumes[0].secret.secretName: names Secret \"sandbox-storage\"",
            "[rule platform-secrets]",
        ],
    );
    // A Deployment reading a run's token through its environment: refused where the
    // user acts, before any controller makes a pod of it.
    let mut spec = compliant_spec(&["--sleep-seconds", "600"]);
    spec["containers"][0]["env"] = json!([{
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "stolen-run-token", "key": "token"}}
    }]);
    spec["initContainers"] = json!([{
        "name": "peek",
        "image": spec["containers"][0]["image"].clone(),
        "envFrom": [{"secretRef": {"name": "sandbox-storage"}}],
        "securityContext": spec["containers"][0]["securityContext"].clone()
    }]);
    let m = refusal(
        Api::<Deployment>::namespaced(alice.clone(), &ns)
            .create(&create, &deployment("steal", 1, spec))
            .await,
    );
    has_all(
        &m,
        &[
            "Deployment \"steal\"",
            "(2 problems)",
            "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name: names Secret \"stolen-run-token\"",
            "spec.template.spec.initContainers[0].envFrom[0].secretRef.name: names Secret \"sandbox-storage\"",
        ],
    );
    // Nothing of either was made.
    assert!(
        Api::<Pod>::namespaced(client.clone(), &ns)
            .get_opt("steal")
            .await
            .expect("read pod")
            .is_none()
    );
    // The same user may still run compliant pods.
    Api::<Pod>::namespaced(alice, &ns)
        .create(&create, &pod("honest", compliant_spec(&[])))
        .await
        .expect("a compliant pod of the same user is admitted");
}

/// What `curl` gets from this process's webhook, with the given extra arguments: the
/// HTTP status, or `curl: <exit code>` when no HTTP answer came.
fn curl_webhook(extra: &[&str]) -> String {
    let url = format!(
        "{}/validate",
        support::operator::WEBHOOK_URL
            .get()
            .expect("the webhook's address")
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-k", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["--data", "{}"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("run curl (deploy/dev/test.sh installs it)");
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        format!(
            "curl: {:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

#[tokio::test]
async fn the_webhook_answers_only_the_api_server() {
    let client = client().await;
    // The webhook serving (and the API server calling it: the other tests).
    sandbox(&client).await;
    // Without a client certificate: the handshake fails, no answer at all.
    let anonymous = curl_webhook(&[]);
    assert!(
        anonymous.starts_with("curl: "),
        "answered without a client certificate: {anonymous}"
    );
    // With a certificate of another CA (the cluster's own, which signs the node's
    // identity): refused too.
    let pki = support::operator::webhook_client_pki();
    let (node_crt, node_key) = (pki.join("node-client.crt"), pki.join("node-client.key"));
    let other = curl_webhook(&[
        "--cert",
        &node_crt.to_string_lossy(),
        "--key",
        &node_key.to_string_lossy(),
    ]);
    assert!(
        other.starts_with("curl: "),
        "answered a certificate of another CA: {other}"
    );
    // With the API server's webhook client certificate: answered (400: `{}` is no
    // AdmissionReview).
    let (crt, key) = (
        pki.join("webhook-client.crt"),
        pki.join("webhook-client.key"),
    );
    let api_server = curl_webhook(&[
        "--cert",
        &crt.to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
    ]);
    assert_eq!(api_server, "400");
}

#[tokio::test]
async fn serre_trial_runs_pass_the_policy() {
    let client = client().await;
    let (sandbox, ns) = sandbox(&client).await;
    // The second run's token Secret, as the gateway makes it: the operator's Job mounts
    // it and the Job controller makes the pod (both may name it).
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "policy-run-2-token"},
        "stringData": {"token": "serre_run_not_a_real_token"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("create the run's token Secret");
    let spec = |token_secret: Option<&str>| TrialRunSpec {
        sandbox: sandbox.clone(),
        image: test_image("serre-example-model"),
        command: vec![],
        args: vec![],
        resources: RunResources {
            cpu: "250m".into(),
            memory: "128Mi".into(),
            gpu: None,
        },
        grants: vec![],
        solution: None,
        kind: RunKind::Inference,
        timeout_seconds: 300,
        functional_unit: None,
        token_secret: token_secret.map(str::to_owned),
        requested_by: "alice@est-ensemble.fr".into(),
        cancelled: false,
    };
    let runs = Api::<TrialRun>::namespaced(client.clone(), &ns);
    runs.create(
        &PostParams::default(),
        &TrialRun::new("policy-run", spec(None)),
    )
    .await
    .expect("create trial run");
    runs.create(
        &PostParams::default(),
        &TrialRun::new("policy-run-2", spec(Some("policy-run-2-token"))),
    )
    .await
    .expect("create trial run with a token");
    let phase = eventually(180, "the run to end", || async {
        let st = runs.get("policy-run").await.ok()?.status?;
        let p = format!("{:?}", st.phase);
        (p == "Succeeded" || p == "Failed").then_some(format!("{p}: {:?}", st.exit_reason))
    })
    .await;
    assert!(phase.starts_with("Succeeded"), "{phase}");
    // The run holding its token Secret: its pod was admitted and its trial container ran
    // (it then fails to send results: no gateway listens at the shared operator's
    // --gateway-url, which is not what this test is about).
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let state = eventually(180, "the token run's trial container to run", || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("{LABEL_RUN}=policy-run-2")))
            .await
            .ok()?
            .items;
        let statuses = list.first()?.status.clone()?.container_statuses?;
        let trial = statuses.into_iter().find(|c| c.name == "trial")?;
        let state = trial.state?;
        (state.running.is_some() || state.terminated.is_some()).then_some(format!("{state:?}"))
    })
    .await;
    assert!(!state.is_empty());
}

#[tokio::test]
async fn other_namespaces_are_not_affected_and_the_configuration_fails_closed() {
    let client = client().await;
    sandbox(&client).await;
    // An ordinary namespace: a pod the policy would refuse is created (and never run).
    let ns = unique("not-a-sandbox");
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create namespace");
    let mut spec = compliant_spec(&[]);
    spec["containers"][0]["image"] = json!("images.invalid/python:3.12");
    spec["hostPID"] = json!(true);
    spec["securityContext"]["runAsUser"] = json!(0);
    spec["activeDeadlineSeconds"] = json!(1);
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod("free", spec))
        .await
        .expect("outside sandbox namespaces the policy does not apply");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();

    // The configuration the operator applied: fails closed, calls this process by URL,
    // trusts the CA of the certificate Secret, is scoped to sandbox namespaces (of this
    // binary's tenant).
    let name = format!("serre-test-policy-{}", std::process::id());
    let vwc = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&name)
        .await
        .expect("the webhook configuration");
    let w = &vwc.webhooks.as_ref().unwrap()[0];
    assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(w.side_effects, "None");
    assert!(w.timeout_seconds.unwrap() <= 10);
    assert!(
        w.client_config
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://")
    );
    let secret = Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .get("serre-test-webhook-tls")
        .await
        .expect("the certificate Secret");
    assert_eq!(
        w.client_config.ca_bundle.as_ref().unwrap().0,
        secret.data.unwrap()["ca.crt"].0
    );
    let selector = w.namespace_selector.as_ref().unwrap();
    let labels = selector.match_labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "serre-operator");
    assert_eq!(labels["serre.metropolegrandparis.fr/tenant"], tenant());
    assert_eq!(
        selector.match_expressions.as_ref().unwrap()[0].key,
        "serre.metropolegrandparis.fr/sandbox"
    );
}
