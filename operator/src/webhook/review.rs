//! `admission.k8s.io/v1` AdmissionReview: where the pod template of each kind of object
//! sits, and the decision for one request. Pure: the tenant's registries come from a
//! lookup the server gives.

use serde::Deserialize;
use serde_json::{Value, json};

use super::policy::{Paths, Policy, check_pod, describe};
use super::secret_refs::may_name_secrets;

/// The part of an AdmissionReview the webhook reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Who asks (as the API server authenticated them).
    #[serde(default)]
    pub user_info: UserInfo,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused, with the message the user sees (every problem of the object).
    Denied(String),
}

impl Decision {
    /// The AdmissionReview answering request `uid`.
    pub fn review(&self, uid: &str) -> Value {
        let response = match self {
            Decision::Allowed => json!({"uid": uid, "allowed": true}),
            Decision::Denied(message) => json!({
                "uid": uid,
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": message}
            }),
        };
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        })
    }
}

/// Where a kind keeps its pod template: JSON pointers to the template's metadata and spec,
/// and the paths the messages name.
pub struct TemplateAt {
    pub metadata: &'static str,
    pub spec: &'static str,
    pub paths: Paths<'static>,
}

/// The pod template of `kind`, for every kind the webhook configuration sends.
pub fn template_at(kind: &str) -> Option<TemplateAt> {
    match kind {
        "Pod" => Some(TemplateAt {
            metadata: "/metadata",
            spec: "/spec",
            paths: Paths {
                spec: "spec",
                metadata: "metadata",
            },
        }),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(TemplateAt {
            metadata: "/spec/template/metadata",
            spec: "/spec/template/spec",
            paths: Paths {
                spec: "spec.template.spec",
                metadata: "spec.template.metadata",
            },
        }),
        "CronJob" => Some(TemplateAt {
            metadata: "/spec/jobTemplate/spec/template/metadata",
            spec: "/spec/jobTemplate/spec/template/spec",
            paths: Paths {
                spec: "spec.jobTemplate.spec.template.spec",
                metadata: "spec.jobTemplate.spec.template.metadata",
            },
        }),
        _ => None,
    }
}

/// The parts of a pod template the rules read (annotations and spec), to tell whether
/// an update changed them.
fn template_parts<'a>(
    object: &'a Value,
    at: &TemplateAt,
) -> (Option<&'a Value>, Option<&'a Value>) {
    (
        object.pointer(&format!("{}/annotations", at.metadata)),
        object.pointer(at.spec),
    )
}

/// What the webhook knows of Serre itself.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// Images Serre runs in sandboxes (the trial runs' init step).
    pub images: Vec<String>,
    /// Usernames of the operator, which alone (with the pod-making controllers) may
    /// name the namespace's Secrets in a pod.
    pub users: Vec<String>,
}

/// Decide on one request. `registries` gives the allowed registries of a namespace's
/// tenant, or why they cannot be known (then the object is refused).
pub fn decide(
    request: &AdmissionRequest,
    registries: impl FnOnce(&str) -> Result<Vec<String>, String>,
    platform: &Platform,
) -> Decision {
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Decision::Allowed;
    }
    let kind = request.kind.kind.as_str();
    if kind == "EphemeralContainers" {
        // Kubernetes before 1.22 sends the ephemeralcontainers subresource as its own
        // kind, without the pod: no way to check it against the pod's settings.
        return Decision::Denied(
            "Serre's sandbox policy refuses ephemeral (debug) containers on this Kubernetes version [rule restricted]".into(),
        );
    }
    let Some(at) = template_at(kind) else {
        return Decision::Denied(format!(
            "Serre's sandbox policy cannot check a {kind} ({}/{}): it knows no pod template there",
            request.kind.group, request.kind.version
        ));
    };
    let Some(object) = &request.object else {
        return Decision::Denied(format!("the {kind} to check is missing from the review"));
    };
    // An object being deleted only loses finalizers: never stand in its way.
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Decision::Allowed;
    }
    // Updates that leave the pod template as it was (scaling, labels, finalizers,
    // a controller's bookkeeping) are not judged again, as Pod Security admission does.
    if request.operation == "UPDATE"
        && let Some(old) = &request.old_object
        && template_parts(old, &at) == template_parts(object, &at)
    {
        return Decision::Allowed;
    }
    let Some(spec) = object.pointer(at.spec) else {
        return Decision::Denied(format!(
            "the {kind} has no pod template at {}",
            at.paths.spec
        ));
    };
    let empty = json!({});
    let metadata = object.pointer(at.metadata).unwrap_or(&empty);
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let allowed = match registries(namespace) {
        Ok(list) => list,
        Err(reason) => {
            return Decision::Denied(format!(
                "Serre's sandbox policy cannot check this {kind} yet: {reason}"
            ));
        }
    };
    let violations = check_pod(
        metadata,
        spec,
        at.paths,
        &Policy {
            allowed_registries: &allowed,
            platform_images: &platform.images,
            may_name_secrets: may_name_secrets(&request.user_info.username, &platform.users),
        },
    );
    if violations.is_empty() {
        return Decision::Allowed;
    }
    let name = request
        .name
        .as_deref()
        .or_else(|| object.pointer("/metadata/name").and_then(Value::as_str))
        .or_else(|| {
            object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
        })
        .unwrap_or_default();
    Decision::Denied(format!(
        "Serre's sandbox policy refuses {kind} {name:?} in namespace {namespace} ({} problem{}): {}",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" },
        describe(&violations)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "registry.metropolegrandparis.fr/vendor/model:1";

    fn pod_spec(image: &str, escalation: bool) -> Value {
        json!({
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "model",
                "image": image,
                "securityContext": {"allowPrivilegeEscalation": escalation, "capabilities": {"drop": ["ALL"]}}
            }]
        })
    }

    fn request(kind: &str, operation: &str, object: Value, old: Option<Value>) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "serre-lab",
            "name": "forecast",
            "operation": operation,
            "object": object,
            "oldObject": old,
            "userInfo": {"username": "alice"}
        }))
        .unwrap()
    }

    fn deployment(spec: Value) -> Value {
        json!({"metadata": {"name": "forecast"}, "spec": {"replicas": 1, "template": {"metadata": {}, "spec": spec}}})
    }

    fn registries(ns: &str) -> Result<Vec<String>, String> {
        assert_eq!(ns, "serre-lab");
        Ok(vec!["registry.metropolegrandparis.fr/vendor".into()])
    }

    #[test]
    fn a_compliant_deployment_is_allowed() {
        let r = request(
            "Deployment",
            "CREATE",
            deployment(pod_spec(IMAGE, false)),
            None,
        );
        assert_eq!(
            decide(&r, registries, &Platform::default()),
            Decision::Allowed
        );
    }

    #[test]
    fn every_problem_is_named_in_one_refusal_with_its_rule_and_field() {
        let r = request(
            "Deployment",
            "CREATE",
            deployment(pod_spec("python:3", true)),
            None,
        );
        let Decision::Denied(message) = decide(&r, registries, &Platform::default()) else {
            panic!("allowed")
        };
        assert!(
            message.starts_with(
                "Serre's sandbox policy refuses Deployment \"forecast\" in namespace serre-lab (2 problems): "
            ),
            "{message}"
        );
        assert!(
            message.contains("spec.template.spec.containers[0].image: \"python:3\""),
            "{message}"
        );
        assert!(message.contains("[rule allowed-registries]"), "{message}");
        assert!(
            message.contains(
                "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: must be false [rule restricted/allow-privilege-escalation]"
            ),
            "{message}"
        );
        let review = Decision::Denied(message).review(&r.uid);
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["response"]["uid"], r.uid.as_str());
        assert_eq!(review["response"]["status"]["code"], 403);
    }

    #[test]
    fn each_kind_is_read_at_its_template() {
        let spec = pod_spec("python:3", false);
        for (kind, object, field) in [
            (
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": spec.clone()}),
                "spec.containers[0].image",
            ),
            (
                "Job",
                deployment(spec.clone()),
                "spec.template.spec.containers[0].image",
            ),
            (
                "StatefulSet",
                deployment(spec.clone()),
                "spec.template.spec.containers[0].image",
            ),
            (
                "DaemonSet",
                deployment(spec.clone()),
                "spec.template.spec.containers[0].image",
            ),
            (
                "ReplicaSet",
                deployment(spec.clone()),
                "spec.template.spec.containers[0].image",
            ),
            (
                "CronJob",
                json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec.clone()}}}}}),
                "spec.jobTemplate.spec.template.spec.containers[0].image",
            ),
        ] {
            let Decision::Denied(m) = decide(
                &request(kind, "CREATE", object, None),
                registries,
                &Platform::default(),
            ) else {
                panic!("{kind} allowed")
            };
            assert!(m.contains(&format!("{field}: ")), "{kind}: {m}");
        }
    }

    #[test]
    fn updates_that_keep_the_template_are_not_judged_again() {
        // A Deployment made before the policy, scaled: allowed; its template changed: judged.
        let old = deployment(pod_spec("python:3", true));
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["metadata"]["labels"] = json!({"team": "a"});
        let r = request("Deployment", "UPDATE", scaled, Some(old.clone()));
        assert_eq!(
            decide(&r, registries, &Platform::default()),
            Decision::Allowed
        );
        let mut changed = old.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("python:3.12");
        let r = request("Deployment", "UPDATE", changed, Some(old.clone()));
        assert!(matches!(
            decide(&r, registries, &Platform::default()),
            Decision::Denied(_)
        ));
        let mut annotated = old.clone();
        annotated["spec"]["template"]["metadata"]["annotations"] =
            json!({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"});
        let r = request("Deployment", "UPDATE", annotated, Some(old.clone()));
        assert!(matches!(
            decide(&r, registries, &Platform::default()),
            Decision::Denied(_)
        ));
        // Being deleted: allowed whatever it holds.
        let mut deleting = old.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        deleting["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        let r = request("Deployment", "UPDATE", deleting, Some(old));
        assert_eq!(
            decide(&r, registries, &Platform::default()),
            Decision::Allowed
        );
    }

    #[test]
    fn unknown_tenants_kinds_and_ephemeral_subresources_are_refused() {
        let r = request(
            "Deployment",
            "CREATE",
            deployment(pod_spec(IMAGE, false)),
            None,
        );
        let d = decide(
            &r,
            |_| Err("namespace serre-lab has no tenant".into()),
            &Platform::default(),
        );
        assert_eq!(
            d,
            Decision::Denied(
                "Serre's sandbox policy cannot check this Deployment yet: namespace serre-lab has no tenant".into()
            )
        );
        let r = request("Scale", "UPDATE", json!({}), None);
        assert!(matches!(
            decide(&r, registries, &Platform::default()),
            Decision::Denied(_)
        ));
        let r = request(
            "EphemeralContainers",
            "UPDATE",
            json!({"ephemeralContainers": []}),
            None,
        );
        assert!(matches!(
            decide(&r, registries, &Platform::default()),
            Decision::Denied(_)
        ));
        let r = request("Deployment", "DELETE", json!({}), None);
        assert_eq!(
            decide(&r, registries, &Platform::default()),
            Decision::Allowed
        );
        let r = request(
            "Deployment",
            "CREATE",
            json!({"metadata": {}, "spec": {}}),
            None,
        );
        let Decision::Denied(m) = decide(&r, registries, &Platform::default()) else {
            panic!()
        };
        assert!(m.contains("no pod template at spec.template.spec"), "{m}");
    }

    #[test]
    fn only_the_operator_and_controllers_may_name_the_namespaces_secrets() {
        let mut spec = pod_spec(IMAGE, false);
        spec["volumes"] = json!([{"name": "keys", "secret": {"secretName": "sandbox-storage"}}]);
        spec["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "run-1-token"}}]);
        let platform = Platform {
            images: vec![],
            users: vec!["system:serviceaccount:serre-system:serre-operator".into()],
        };
        let as_user = |user: &str| {
            let mut r = request("Job", "CREATE", deployment(spec.clone()), None);
            r.user_info.username = user.into();
            decide(&r, registries, &platform)
        };
        let Decision::Denied(m) = as_user("alice") else {
            panic!("alice may name the sandbox's Secrets")
        };
        assert!(m.contains("(2 problems)"), "{m}");
        assert!(
            m.contains(
                "spec.template.spec.volumes[0].secret.secretName: names Secret \"sandbox-storage\""
            ),
            "{m}"
        );
        assert!(
            m.contains("spec.template.spec.containers[0].envFrom[0].secretRef.name: names Secret \"run-1-token\""),
            "{m}"
        );
        assert!(m.contains("[rule platform-secrets]"), "{m}");
        assert_eq!(
            as_user("system:serviceaccount:serre-system:serre-operator"),
            Decision::Allowed
        );
        assert_eq!(
            as_user("system:serviceaccount:kube-system:job-controller"),
            Decision::Allowed
        );
        assert!(matches!(
            as_user("system:serviceaccount:serre-lab:default"),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn an_allowed_review_answers_its_uid() {
        let review = Decision::Allowed.review("abc");
        assert_eq!(
            review,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "abc", "allowed": true}})
        );
    }
}
