use serde_json::{Value, json};

use super::*;

const REGISTRY: &str = "registry.metropolegrandparis.fr/vendor";
const IMAGE: &str = "registry.metropolegrandparis.fr/vendor/model:1.2";
const FETCH: &str = "registry.metropolegrandparis.fr/serre/serre-api:0.1.0";

fn allowed() -> Vec<String> {
    vec![REGISTRY.to_owned()]
}

/// A pod spec that passes every rule.
fn good() -> Value {
    json!({
        "automountServiceAccountToken": false,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "containers": [{
            "name": "model",
            "image": IMAGE,
            "ports": [{"containerPort": 8080}],
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}
            }
        }],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "c"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            {"name": "token", "secret": {"secretName": "s"}},
            {"name": "info", "downwardAPI": {"items": []}},
            {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "c"}}]}},
            {"name": "csi", "csi": {"driver": "d"}},
            {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
        ]
    })
}

const POD: Paths<'static> = Paths {
    spec: "spec",
    metadata: "metadata",
};
const DEPLOYMENT: Paths<'static> = Paths {
    spec: "spec.template.spec",
    metadata: "spec.template.metadata",
};

/// The checks as for the operator (which may name Secrets: the `restricted` rules alone).
fn check_with(metadata: &Value, spec: &Value, paths: Paths<'_>) -> Vec<Violation> {
    check_as(metadata, spec, paths, true)
}

fn check_as(
    metadata: &Value,
    spec: &Value,
    paths: Paths<'_>,
    may_name_secrets: bool,
) -> Vec<Violation> {
    let registries = allowed();
    let platform = vec![FETCH.to_owned()];
    check_pod(
        metadata,
        spec,
        paths,
        &Policy {
            allowed_registries: &registries,
            platform_images: &platform,
            may_name_secrets,
        },
    )
}

#[test]
fn secret_volumes_are_restricted_types_yet_only_serre_names_the_namespaces_secrets() {
    let found: Vec<_> = check_as(&json!({}), &good(), POD, false)
        .into_iter()
        .map(|v| (v.rule, v.field))
        .collect();
    assert_eq!(
        found,
        [(
            "platform-secrets",
            "spec.volumes[3].secret.secretName".to_owned()
        )]
    );
}

fn check(spec: &Value) -> Vec<Violation> {
    check_with(&json!({}), spec, POD)
}

/// (rule, field) of each violation.
fn found(spec: &Value) -> Vec<(&'static str, String)> {
    check(spec).into_iter().map(|v| (v.rule, v.field)).collect()
}

fn one(rule: &'static str, field: &str) -> Vec<(&'static str, String)> {
    vec![(rule, field.to_owned())]
}

/// `good()` with the JSON value at `pointer` replaced (objects created on the way).
fn with(pointer: &str, value: Value) -> Value {
    let mut spec = good();
    set(&mut spec, pointer, value);
    spec
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut at = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if let Ok(index) = part.parse::<usize>() {
            let list = at.as_array_mut().expect("array");
            if last {
                if index == list.len() {
                    list.push(value);
                } else {
                    list[index] = value;
                }
                return;
            }
            at = &mut list[index];
        } else {
            let map = at.as_object_mut().expect("object");
            if last {
                map.insert((*part).to_owned(), value);
                return;
            }
            at = map.entry(*part).or_insert_with(|| json!({}));
        }
    }
}

#[test]
fn a_compliant_pod_passes() {
    assert_eq!(check(&good()), vec![]);
    // Container-level settings instead of pod-level ones pass too.
    let mut spec = good();
    set(&mut spec, "/securityContext", json!({}));
    set(
        &mut spec,
        "/containers/0/securityContext",
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "runAsNonRoot": true,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
            "procMount": "Default",
            "appArmorProfile": {"type": "RuntimeDefault"}
        }),
    );
    assert_eq!(check(&spec), vec![]);
}

#[test]
fn images_come_from_the_tenant_registries_or_the_platform() {
    assert_eq!(
        found(&with("/containers/0/image", json!("python:3.12"))),
        one(RULE_REGISTRIES, "spec.containers[0].image")
    );
    assert_eq!(
        found(&with(
            "/containers/0/image",
            json!("registry.metropolegrandparis.fr/vendor/../x:1")
        )),
        one(RULE_REGISTRIES, "spec.containers[0].image")
    );
    assert_eq!(
        found(&with(
            "/containers/0/image",
            json!("registry.metropolegrandparis.fr.evil.com/vendor/x:1")
        )),
        one(RULE_REGISTRIES, "spec.containers[0].image")
    );
    // Serre's init step image is allowed by exact reference only.
    let mut spec = good();
    let init = spec["containers"][0].clone();
    set(&mut spec, "/initContainers", json!([init]));
    set(&mut spec, "/initContainers/0/image", json!(FETCH));
    assert_eq!(check(&spec), vec![]);
    set(
        &mut spec,
        "/initContainers/0/image",
        json!("registry.metropolegrandparis.fr/serre/serre-api:0.2.0"),
    );
    assert_eq!(
        found(&spec),
        one(RULE_REGISTRIES, "spec.initContainers[0].image")
    );
    // A container without image is refused with a reason.
    let mut spec = good();
    spec["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let v = check(&spec);
    assert_eq!(v[0].rule, RULE_REGISTRIES);
    assert!(v[0].message.contains("must name an image"), "{v:?}");
}

#[test]
fn the_pod_must_refuse_the_service_account_token() {
    let mut spec = good();
    spec.as_object_mut()
        .unwrap()
        .remove("automountServiceAccountToken");
    assert_eq!(
        found(&spec),
        one(RULE_TOKEN, "spec.automountServiceAccountToken")
    );
    assert_eq!(
        found(&with("/automountServiceAccountToken", json!(true))),
        one(RULE_TOKEN, "spec.automountServiceAccountToken")
    );
    let spec = with(
        "/volumes/5/projected/sources/1",
        json!({"serviceAccountToken": {"path": "token", "audience": "x"}}),
    );
    assert_eq!(
        found(&spec),
        one(
            RULE_TOKEN,
            "spec.volumes[5].projected.sources[1].serviceAccountToken"
        )
    );
}

#[test]
fn host_namespaces_paths_and_ports_are_refused() {
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_eq!(
            found(&with(&format!("/{field}"), json!(true))),
            one(RULE_HOST_NAMESPACES, &format!("spec.{field}"))
        );
        assert_eq!(check(&with(&format!("/{field}"), json!(false))), vec![]);
    }
    assert_eq!(
        found(&with(
            "/volumes/8",
            json!({"name": "root", "hostPath": {"path": "/"}})
        )),
        one(RULE_HOST_PATH, "spec.volumes[8].hostPath")
    );
    assert_eq!(
        found(&with("/containers/0/ports/0/hostPort", json!(80))),
        one(RULE_HOST_PORTS, "spec.containers[0].ports[0].hostPort")
    );
    assert_eq!(
        check(&with("/containers/0/ports/0/hostPort", json!(0))),
        vec![]
    );
}

#[test]
fn only_the_restricted_volume_types_are_allowed() {
    for (source, value) in [
        ("nfs", json!({"server": "10.0.0.1", "path": "/"})),
        ("gitRepo", json!({"repository": "https://x"})),
        ("iscsi", json!({"targetPortal": "t", "iqn": "i", "lun": 0})),
        ("image", json!({"reference": IMAGE})),
        // A source this build does not know is seen too (read from the raw object).
        ("somethingNew", json!({})),
    ] {
        let spec = with("/volumes/8", json!({"name": "v", source: value}));
        assert_eq!(
            found(&spec),
            one(RULE_VOLUME_TYPES, &format!("spec.volumes[8].{source}")),
            "{source}"
        );
    }
}

#[test]
fn privilege_capabilities_and_escalation_are_refused() {
    let sc = "/containers/0/securityContext";
    assert_eq!(
        found(&with(&format!("{sc}/privileged"), json!(true))),
        one(
            RULE_PRIVILEGED,
            "spec.containers[0].securityContext.privileged"
        )
    );
    assert_eq!(
        found(&with(
            &format!("{sc}/allowPrivilegeEscalation"),
            json!(true)
        )),
        one(
            RULE_PRIVILEGE_ESCALATION,
            "spec.containers[0].securityContext.allowPrivilegeEscalation"
        )
    );
    let mut spec = good();
    spec["containers"][0]["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("allowPrivilegeEscalation");
    assert_eq!(
        found(&spec),
        one(
            RULE_PRIVILEGE_ESCALATION,
            "spec.containers[0].securityContext.allowPrivilegeEscalation"
        )
    );
    assert_eq!(
        found(&with(
            &format!("{sc}/capabilities"),
            json!({"drop": ["NET_RAW"]})
        )),
        one(
            RULE_CAPABILITIES,
            "spec.containers[0].securityContext.capabilities.drop"
        )
    );
    assert_eq!(
        found(&with(
            &format!("{sc}/capabilities"),
            json!({"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_ADMIN"]})
        )),
        one(
            RULE_CAPABILITIES,
            "spec.containers[0].securityContext.capabilities.add[1]"
        )
    );
}

#[test]
fn run_as_non_root_and_non_zero_user_are_required() {
    let mut spec = good();
    set(&mut spec, "/securityContext/runAsNonRoot", json!(null));
    let v = check(&spec);
    assert_eq!(
        v.iter()
            .map(|v| (v.rule, v.field.as_str()))
            .collect::<Vec<_>>(),
        [(RULE_RUN_AS_NON_ROOT, "spec.securityContext.runAsNonRoot")]
    );
    assert!(v[0].message.contains("\"model\""), "{v:?}");
    assert_eq!(
        found(&with("/securityContext/runAsNonRoot", json!(false))),
        one(RULE_RUN_AS_NON_ROOT, "spec.securityContext.runAsNonRoot")
    );
    // Every container sets it: the pod must still not say false.
    let mut spec = with("/securityContext/runAsNonRoot", json!(false));
    set(
        &mut spec,
        "/containers/0/securityContext/runAsNonRoot",
        json!(true),
    );
    let v = check(&spec);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].message, "must not be false");
    assert_eq!(
        found(&with(
            "/containers/0/securityContext/runAsNonRoot",
            json!(false)
        )),
        one(
            RULE_RUN_AS_NON_ROOT,
            "spec.containers[0].securityContext.runAsNonRoot"
        )
    );
    assert_eq!(
        found(&with("/securityContext/runAsUser", json!(0))),
        one(RULE_RUN_AS_USER, "spec.securityContext.runAsUser")
    );
    assert_eq!(
        found(&with("/containers/0/securityContext/runAsUser", json!(0))),
        one(
            RULE_RUN_AS_USER,
            "spec.containers[0].securityContext.runAsUser"
        )
    );
}

#[test]
fn seccomp_must_be_runtime_default_or_localhost() {
    assert_eq!(
        found(&with(
            "/securityContext/seccompProfile",
            json!({"type": "Unconfined"})
        )),
        one(RULE_SECCOMP, "spec.securityContext.seccompProfile.type")
    );
    assert_eq!(
        found(&with(
            "/containers/0/securityContext/seccompProfile",
            json!({"type": "Unconfined"})
        )),
        one(
            RULE_SECCOMP,
            "spec.containers[0].securityContext.seccompProfile.type"
        )
    );
    // Neither the pod nor the container sets one.
    assert_eq!(
        found(&with("/securityContext/seccompProfile", json!(null))),
        one(
            RULE_SECCOMP,
            "spec.containers[0].securityContext.seccompProfile.type"
        )
    );
    let annotated =
        json!({"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}});
    let v: Vec<_> = check_with(&annotated, &good(), POD)
        .into_iter()
        .map(|v| (v.rule, v.field))
        .collect();
    assert_eq!(
        v,
        one(
            RULE_SECCOMP,
            "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]"
        )
    );
}

#[test]
fn selinux_proc_mount_apparmor_sysctls_and_host_process_are_restricted() {
    assert_eq!(
        found(&with(
            "/securityContext/seLinuxOptions",
            json!({"type": "spc_t"})
        )),
        one(RULE_SELINUX, "spec.securityContext.seLinuxOptions.type")
    );
    assert_eq!(
        found(&with(
            "/containers/0/securityContext/seLinuxOptions",
            json!({"user": "system_u", "role": "system_r"})
        )),
        [
            (
                RULE_SELINUX,
                "spec.containers[0].securityContext.seLinuxOptions.user".to_owned()
            ),
            (
                RULE_SELINUX,
                "spec.containers[0].securityContext.seLinuxOptions.role".to_owned()
            )
        ]
    );
    assert_eq!(
        found(&with(
            "/containers/0/securityContext/procMount",
            json!("Unmasked")
        )),
        one(
            RULE_PROC_MOUNT,
            "spec.containers[0].securityContext.procMount"
        )
    );
    assert_eq!(
        found(&with(
            "/securityContext/appArmorProfile",
            json!({"type": "Unconfined"})
        )),
        one(RULE_APPARMOR, "spec.securityContext.appArmorProfile.type")
    );
    let annotated = json!({"annotations": {
        "container.apparmor.security.beta.kubernetes.io/model": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/other": "localhost/p"
    }});
    let v: Vec<_> = check_with(&annotated, &good(), DEPLOYMENT)
        .into_iter()
        .map(|v| (v.rule, v.field))
        .collect();
    assert_eq!(
        v,
        one(
            RULE_APPARMOR,
            "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/model]"
        )
    );
    assert_eq!(
        found(&with(
            "/securityContext/sysctls",
            json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}])
        )),
        one(RULE_SYSCTLS, "spec.securityContext.sysctls[1].name")
    );
    assert_eq!(
        found(&with(
            "/containers/0/securityContext/windowsOptions",
            json!({"hostProcess": true})
        )),
        one(
            RULE_HOST_PROCESS,
            "spec.containers[0].securityContext.windowsOptions.hostProcess"
        )
    );
}

#[test]
fn every_kind_of_container_is_checked_and_every_problem_reported_at_once() {
    let bad = json!({"name": "x", "image": "python:3"});
    let mut spec = good();
    set(&mut spec, "/initContainers", json!([bad.clone()]));
    set(&mut spec, "/ephemeralContainers", json!([bad]));
    set(&mut spec, "/hostNetwork", json!(true));
    let v = check_with(&json!({}), &spec, DEPLOYMENT);
    let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
    for expected in [
        "spec.template.spec.initContainers[0].image",
        "spec.template.spec.ephemeralContainers[0].image",
        "spec.template.spec.hostNetwork",
        "spec.template.spec.initContainers[0].securityContext.allowPrivilegeEscalation",
        "spec.template.spec.ephemeralContainers[0].securityContext.capabilities.drop",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing in {fields:?}"
        );
    }
    let message = describe(&v);
    assert!(
        message.contains(
            "spec.template.spec.initContainers[0].securityContext.allowPrivilegeEscalation: must be false [rule restricted/allow-privilege-escalation]"
        ),
        "{message}"
    );
    assert_eq!(message.matches("; ").count(), v.len() - 1);
}

#[test]
fn an_unreadable_spec_is_refused() {
    let v = check(&json!({"containers": "not a list"}));
    assert_eq!(v[0].field, "spec");
    assert!(v[0].message.starts_with("could not be read"), "{v:?}");
}

#[test]
fn serre_trial_run_jobs_pass() {
    use crate::build::job::{JobInput, trial_run_job};
    use crate::resources::{RunKind, RunResources, TrialRun, TrialRunSpec};
    let mut run = TrialRun::new(
        "bus-forecast-1",
        TrialRunSpec {
            sandbox: "traffic-forecast".into(),
            image: IMAGE.into(),
            command: vec![],
            args: vec![],
            resources: RunResources {
                cpu: "1".into(),
                memory: "1Gi".into(),
                gpu: None,
            },
            grants: vec!["g-1".into()],
            solution: None,
            kind: RunKind::Inference,
            timeout_seconds: 60,
            functional_unit: None,
            token_secret: Some("t".into()),
            requested_by: "alice".into(),
            cancelled: false,
        },
    );
    run.metadata.namespace = Some("serre-traffic-forecast".into());
    let job = trial_run_job(
        &run,
        &JobInput {
            gateway_url: Some("http://10.96.0.80"),
            fetch_image: Some(FETCH),
            run_name: "bus-forecast-1",
            run_uid: "u",
            namespace: "serre-traffic-forecast",
            sandbox: "traffic-forecast",
            tenant: "est-ensemble",
        },
    );
    let job = serde_json::to_value(&job).unwrap();
    let v = check_with(
        &job["spec"]["template"]["metadata"],
        &job["spec"]["template"]["spec"],
        DEPLOYMENT,
    );
    assert_eq!(v, vec![]);
}
