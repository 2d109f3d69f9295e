use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use serre_validation::config::EDITOR_CLUSTER_ROLE;

use super::{BuildInput, meta};

/// Service account for workloads; its token is never mounted unless a pod asks.
pub(super) fn workload_service_account(input: &BuildInput<'_>, ns: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(input, "sandbox-workload", Some(ns)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The namespace's `default` ServiceAccount (made by Kubernetes), which every pod that
/// names no other one runs as: no token automount either. The admission webhook also
/// requires each sandbox pod to say `automountServiceAccountToken: false` itself.
pub(super) fn default_service_account(input: &BuildInput<'_>, ns: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(input, "default", Some(ns)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// Binds the tenant's member groups (admins and members) to the editor role in
/// this namespace.
pub(super) fn editors_role_binding(input: &BuildInput<'_>, ns: &str) -> RoleBinding {
    let mut groups: Vec<&str> = input
        .tenant
        .members
        .iter()
        .map(|m| m.group.as_str())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    RoleBinding {
        metadata: meta(input, "sandbox-editors", Some(ns)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: input.config.editor_cluster_role.clone(),
        },
        subjects: Some(
            groups
                .into_iter()
                .map(|g| Subject {
                    kind: "Group".into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    name: g.to_owned(),
                    namespace: None,
                })
                .collect(),
        ),
    }
}

/// Binds the gateway's ServiceAccount to the gateway-runs role in this namespace, when
/// the operator knows that account.
pub(super) fn gateway_role_binding(input: &BuildInput<'_>, ns: &str) -> Option<RoleBinding> {
    let (sa_namespace, sa_name) = input.config.gateway_service_account.as_ref()?;
    Some(RoleBinding {
        metadata: meta(input, "serre-gateway-runs", Some(ns)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: input.config.gateway_runs_cluster_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            api_group: None,
            name: sa_name.clone(),
            namespace: Some(sa_namespace.clone()),
        }]),
    })
}

/// The editor ClusterRole: run and inspect workloads, nothing that changes the
/// sandbox's limits (no quotas, limit ranges, network policies or RBAC), and nothing on
/// Secrets: a sandbox namespace holds the bucket's keys (`sandbox-storage`, read by the
/// gateway and written by the operator only) and the run tokens (made by the gateway,
/// mounted into their run's pod only), and editors need neither.
pub fn editor_cluster_role() -> ClusterRole {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    };
    let edit = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let read = ["get", "list", "watch"];
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(EDITOR_CLUSTER_ROLE.into()),
            labels: Some(
                [
                    ("app.kubernetes.io/managed-by".to_owned(), "Helm".to_owned()),
                    ("app.kubernetes.io/part-of".to_owned(), "serre".to_owned()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                &[""],
                &["pods", "services", "configmaps", "persistentvolumeclaims"],
                &edit,
            ),
            rule(
                &[""],
                &[
                    "pods/log",
                    "events",
                    "resourcequotas",
                    "limitranges",
                    "serviceaccounts",
                ],
                &read,
            ),
            rule(
                &["apps"],
                &["deployments", "statefulsets", "replicasets"],
                &edit,
            ),
            rule(&["batch"], &["jobs", "cronjobs"], &edit),
            rule(&["networking.k8s.io"], &["networkpolicies"], &read),
        ]),
        ..ClusterRole::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Workloads;
    use super::super::fixtures::*;
    use super::*;
    use crate::config::test_build_config;
    use serre_validation::config::GATEWAY_RUNS_CLUSTER_ROLE;

    #[test]
    fn tenant_groups_are_bound_in_the_namespace_only() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let rb = editors_role_binding(&input(&t, &r, &[], Workloads::Running, &c), "serre-x");
        assert_eq!(rb.metadata.namespace.as_deref(), Some("serre-x"));
        assert_eq!(rb.role_ref.kind, "ClusterRole");
        assert_eq!(rb.role_ref.name, EDITOR_CLUSTER_ROLE);
        let names: Vec<_> = rb
            .subjects
            .unwrap()
            .into_iter()
            .map(|s| (s.kind, s.name))
            .collect();
        assert_eq!(
            names,
            [
                ("Group".to_owned(), "ept-est-ensemble-admins".to_owned()),
                ("Group".to_owned(), "ept-est-ensemble-data".to_owned())
            ]
        );
    }

    #[test]
    fn the_gateway_is_bound_per_namespace_only_when_known() {
        let (t, r) = (tenant(), resources(None));
        let mut c = test_build_config();
        assert!(
            gateway_role_binding(&input(&t, &r, &[], Workloads::Running, &c), "serre-x").is_none()
        );
        c.gateway_service_account = Some(("serre-system".into(), "serre-gateway".into()));
        let rb = gateway_role_binding(&input(&t, &r, &[], Workloads::Running, &c), "serre-x")
            .expect("binding");
        assert_eq!(rb.metadata.namespace.as_deref(), Some("serre-x"));
        assert_eq!(
            (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
            ("ClusterRole", GATEWAY_RUNS_CLUSTER_ROLE)
        );
        let s = &rb.subjects.unwrap()[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", "serre-gateway", Some("serre-system"))
        );
    }

    #[test]
    fn no_account_mounts_a_token() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let i = input(&t, &r, &[], Workloads::Running, &c);
        for sa in [
            workload_service_account(&i, "ns"),
            default_service_account(&i, "ns"),
        ] {
            assert_eq!(sa.automount_service_account_token, Some(false));
        }
        assert_eq!(
            default_service_account(&i, "ns").metadata.name.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn editors_cannot_touch_limits_or_rbac() {
        let role = editor_cluster_role();
        for rule in role.rules.unwrap() {
            let resources = rule.resources.unwrap();
            let writes = rule
                .verbs
                .iter()
                .any(|v| v != "get" && v != "list" && v != "watch");
            for forbidden in [
                "resourcequotas",
                "limitranges",
                "networkpolicies",
                "rolebindings",
                "roles",
            ] {
                assert!(
                    !(writes && resources.iter().any(|r| r == forbidden)),
                    "{forbidden} writable"
                );
            }
        }
    }

    /// Issue 13: editors could read (and rewrite) every Secret of their sandbox
    /// namespaces, the bucket's data key in `sandbox-storage` and the run tokens included.
    #[test]
    fn editors_have_no_right_on_secrets() {
        let role = editor_cluster_role();
        for rule in role.rules.unwrap() {
            let resources = rule.resources.unwrap_or_default();
            assert!(
                !resources
                    .iter()
                    .any(|r| r == "secrets" || r == "*" || r.starts_with("secrets/")),
                "{resources:?}: {:?}",
                rule.verbs
            );
            assert!(rule.resource_names.is_none());
        }
    }
}
