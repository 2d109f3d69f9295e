//! Rule `platform-secrets`, pure: the Secrets of a sandbox namespace are the platform's
//! (the bucket's keys in `sandbox-storage`, each run's token in `<run>-token`); only Serre
//! (the operator's own identity) and the Kubernetes controllers that make pods from
//! templates Serre admitted may name them in a pod. Anyone else (a sandbox editor, a
//! vendor) who names one, in any way a container could read it, is refused.
//!
//! Editors have no right on Secrets through the API; this rule closes the other door:
//! mounting a Secret by name in a pod they create. It does not rest on ownerReferences
//! or labels, which the pod's author writes.
//!
//! The references read, from the object as sent (so nothing a typed copy drops is
//! missed): `volumes[].secret.secretName`, `volumes[].projected.sources[].secret.name`,
//! `volumes[].csi.nodePublishSecretRef.name`, and in every container, init container and
//! ephemeral container `env[].valueFrom.secretKeyRef.name` and `envFrom[].secretRef.name`.
//! `imagePullSecrets` are not references a container can read (the kubelet reads them as
//! registry credentials) and are left to the registries rule.

use serde_json::Value;

use super::policy::Violation;

pub const RULE_SECRETS: &str = "platform-secrets";

/// The Kubernetes controllers that create pods (and the workloads between) from a
/// template that was itself admitted: with `--use-service-account-credentials`, each
/// controller's ServiceAccount of `kube-system`; without, the controller manager's user.
pub const CONTROLLER_USERS: [&str; 8] = [
    "system:kube-controller-manager",
    "system:serviceaccount:kube-system:job-controller",
    "system:serviceaccount:kube-system:cronjob-controller",
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:serviceaccount:kube-system:deployment-controller",
    "system:serviceaccount:kube-system:statefulset-controller",
    "system:serviceaccount:kube-system:daemon-set-controller",
    "system:serviceaccount:kube-system:replication-controller",
];

/// Whether `username` may name the namespace's Secrets in a pod: one of `platform_users`
/// (the operator's identity) or a pod-making controller.
pub fn may_name_secrets(username: &str, platform_users: &[String]) -> bool {
    platform_users.iter().any(|u| u == username) || CONTROLLER_USERS.contains(&username)
}

/// Every Secret that pod spec `spec` (at path `at`, e.g. `spec.template.spec`) names,
/// each as a violation of `platform-secrets`.
pub fn secret_refs(spec: &Value, at: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |field: String, name: &Value| {
        let name = name.as_str().unwrap_or_default();
        out.push(Violation {
            rule: RULE_SECRETS,
            field,
            message: format!(
                "names Secret {name:?}: the Secrets of a sandbox namespace hold the platform's credentials (bucket keys, run tokens) and only Serre puts them in a pod"
            ),
        });
    };
    for (i, v) in items(spec, "volumes").iter().enumerate() {
        if let Some(n) = v.pointer("/secret/secretName") {
            push(format!("{at}.volumes[{i}].secret.secretName"), n);
        } else if v.get("secret").is_some() {
            // A secret volume without a name is refused by the API server; name it anyway.
            push(format!("{at}.volumes[{i}].secret"), &Value::Null);
        }
        if let Some(n) = v.pointer("/csi/nodePublishSecretRef/name") {
            push(
                format!("{at}.volumes[{i}].csi.nodePublishSecretRef.name"),
                n,
            );
        }
        let sources = v.pointer("/projected/sources").and_then(Value::as_array);
        for (j, s) in sources.into_iter().flatten().enumerate() {
            if let Some(secret) = s.get("secret") {
                let n = secret.get("name").unwrap_or(&Value::Null);
                push(
                    format!("{at}.volumes[{i}].projected.sources[{j}].secret.name"),
                    n,
                );
            }
        }
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for (c, container) in items(spec, key).iter().enumerate() {
            for (e, var) in items(container, "env").iter().enumerate() {
                if let Some(r) = var.pointer("/valueFrom/secretKeyRef") {
                    let n = r.get("name").unwrap_or(&Value::Null);
                    push(
                        format!("{at}.{key}[{c}].env[{e}].valueFrom.secretKeyRef.name"),
                        n,
                    );
                }
            }
            for (e, from) in items(container, "envFrom").iter().enumerate() {
                if let Some(r) = from.get("secretRef") {
                    let n = r.get("name").unwrap_or(&Value::Null);
                    push(format!("{at}.{key}[{c}].envFrom[{e}].secretRef.name"), n);
                }
            }
        }
    }
    out
}

fn items<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_way_a_container_can_read_a_secret_is_found() {
        let spec = json!({
            "volumes": [
                {"name": "a", "secret": {"secretName": "sandbox-storage"}},
                {"name": "b", "projected": {"sources": [
                    {"configMap": {"name": "c"}},
                    {"secret": {"name": "run-1-token"}}
                ]}},
                {"name": "c", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "k"}}},
                {"name": "d", "emptyDir": {}}
            ],
            "containers": [{"name": "m", "env": [
                {"name": "PLAIN", "value": "1"},
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "sandbox-storage", "key": "SERRE_DATA_KEY"}}}
            ]}],
            "initContainers": [{"name": "i", "envFrom": [
                {"configMapRef": {"name": "c"}},
                {"secretRef": {"name": "sandbox-storage"}}
            ]}],
            "ephemeralContainers": [{"name": "e", "envFrom": [{"secretRef": {"name": "x"}}]}],
            "imagePullSecrets": [{"name": "pull"}]
        });
        let fields: Vec<String> = secret_refs(&spec, "spec")
            .into_iter()
            .map(|v| {
                assert_eq!(v.rule, RULE_SECRETS);
                v.field
            })
            .collect();
        assert_eq!(
            fields,
            [
                "spec.volumes[0].secret.secretName",
                "spec.volumes[1].projected.sources[1].secret.name",
                "spec.volumes[2].csi.nodePublishSecretRef.name",
                "spec.containers[0].env[1].valueFrom.secretKeyRef.name",
                "spec.initContainers[0].envFrom[1].secretRef.name",
                "spec.ephemeralContainers[0].envFrom[0].secretRef.name",
            ]
        );
        let first = &secret_refs(&spec, "spec")[0];
        assert!(
            first
                .message
                .starts_with("names Secret \"sandbox-storage\""),
            "{}",
            first.message
        );
    }

    #[test]
    fn a_pod_without_secrets_has_nothing_to_say() {
        let spec = json!({
            "volumes": [{"name": "d", "emptyDir": {}}, {"name": "c", "configMap": {"name": "c"}}],
            "containers": [{"name": "m", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}]
        });
        assert!(secret_refs(&spec, "spec").is_empty());
    }

    #[test]
    fn only_the_operator_and_pod_making_controllers_may_name_secrets() {
        let operator = vec!["system:serviceaccount:serre-system:serre-operator".to_owned()];
        assert!(may_name_secrets(
            "system:serviceaccount:serre-system:serre-operator",
            &operator
        ));
        assert!(may_name_secrets(
            "system:serviceaccount:kube-system:job-controller",
            &operator
        ));
        assert!(may_name_secrets(
            "system:kube-controller-manager",
            &operator
        ));
        for other in [
            "alice",
            "system:serviceaccount:serre-lab:default",
            "system:serviceaccount:kube-system:namespace-controller",
            "system:serviceaccount:serre-system:serre-api",
            "",
        ] {
            assert!(!may_name_secrets(other, &operator), "{other}");
        }
    }
}
