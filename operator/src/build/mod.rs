//! Pure builders: from a sandbox, its tenant and the operator configuration to the
//! exact Kubernetes objects the sandbox needs, and from a TrialRun to its Job ([`job`]).
//! Nothing here talks to the API server.

pub mod job;
mod limit_range;
mod namespace;
mod network;
mod quota;
mod rbac;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use rbac::editor_cluster_role;
use serre_validation::config::namespace_name;

use crate::config::BuildConfig;
use crate::resources::{
    ANNOTATION_HASH, LABEL_MANAGED_BY, LABEL_SANDBOX, LABEL_TENANT, MANAGER, Sandbox,
    SandboxResources, TenantSpec,
};

/// Whether the sandbox's workloads may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workloads {
    /// Normal operation: the quota allows `maxPods` pods.
    Running,
    /// Expired or suspended: the quota allows zero pods.
    Stopped,
}

/// Everything the builders need, already validated.
pub struct BuildInput<'a> {
    pub sandbox_name: &'a str,
    pub sandbox_uid: &'a str,
    pub tenant_name: &'a str,
    pub tenant: &'a TenantSpec,
    /// The admitted resources (what the quota enforces), not the requested ones.
    pub resources: &'a SandboxResources,
    pub extra_egress_cidrs: &'a [String],
    pub workloads: Workloads,
    pub config: &'a BuildConfig,
}

/// One object to apply, with the hash of its desired state.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    pub hash: String,
    pub object: DynamicObject,
}

impl Child {
    /// Stable key for comparisons: `Kind/namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.resource.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// All objects a sandbox needs, in the order they should be applied.
pub fn desired(input: &BuildInput<'_>) -> Vec<Child> {
    let ns = namespace_name(input.config, input.sandbox_name);
    let mut children = vec![
        finish(namespace::namespace(input, &ns), input),
        finish(quota::resource_quota(input, &ns), input),
        finish(limit_range::limit_range(input, &ns), input),
        finish(rbac::workload_service_account(input, &ns), input),
        finish(rbac::default_service_account(input, &ns), input),
        finish(rbac::editors_role_binding(input, &ns), input),
    ];
    if let Some(binding) = rbac::gateway_role_binding(input, &ns) {
        children.push(finish(binding, input));
    }
    for policy in network::network_policies(input, &ns) {
        children.push(finish(policy, input));
    }
    children
}

/// Labels every child carries: how the operator finds its objects and their owner.
pub fn child_labels(input: &BuildInput<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (LABEL_SANDBOX.to_owned(), input.sandbox_name.to_owned()),
        (LABEL_TENANT.to_owned(), input.tenant_name.to_owned()),
    ])
}

/// Base metadata for a child: name, namespace, labels, owner reference.
fn meta(input: &BuildInput<'_>, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(child_labels(input)),
        owner_references: Some(vec![OwnerReference {
            api_version: Sandbox::api_version(&()).into_owned(),
            kind: Sandbox::kind(&()).into_owned(),
            name: input.sandbox_name.to_owned(),
            uid: input.sandbox_uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    }
}

/// Turn a typed object into an applyable child carrying the hash of its content.
fn finish<K>(object: K, _input: &BuildInput<'_>) -> Child
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let resource = ApiResource::erase::<K>(&());
    let mut value = serde_json::to_value(&object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version.clone().into());
        map.insert("kind".into(), resource.kind.clone().into());
    }
    let hash = content_hash(&value);
    let mut dynamic: DynamicObject =
        serde_json::from_value(value).expect("a typed Kubernetes object is a valid DynamicObject");
    dynamic
        .annotations_mut()
        .insert(ANNOTATION_HASH.to_owned(), hash.clone());
    Child {
        namespace: dynamic.namespace(),
        name: dynamic.name_any(),
        resource,
        hash,
        object: dynamic,
    }
}

/// Short, stable hash of a JSON document (keys are sorted by serde_json's map).
pub fn content_hash(value: &serde_json::Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    pub use serre_resources::fixtures::{resources, tenant};

    pub fn input<'a>(
        tenant: &'a TenantSpec,
        resources: &'a SandboxResources,
        cidrs: &'a [String],
        workloads: Workloads,
        config: &'a BuildConfig,
    ) -> BuildInput<'a> {
        BuildInput {
            sandbox_name: "traffic-forecast",
            sandbox_uid: "4a1d0c52-0000-4000-8000-000000000001",
            tenant_name: "est-ensemble",
            tenant,
            resources,
            extra_egress_cidrs: cidrs,
            workloads,
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::config::test_build_config;

    #[test]
    fn every_child_is_labelled_owned_and_hashed() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let cidrs = vec!["192.0.2.0/24".to_owned()];
        let children = desired(&input(&t, &r, &cidrs, Workloads::Running, &c));
        let keys: Vec<_> = children.iter().map(Child::key).collect();
        assert_eq!(
            keys,
            [
                "Namespace//serre-traffic-forecast",
                "ResourceQuota/serre-traffic-forecast/sandbox-quota",
                "LimitRange/serre-traffic-forecast/sandbox-defaults",
                "ServiceAccount/serre-traffic-forecast/sandbox-workload",
                "ServiceAccount/serre-traffic-forecast/default",
                "RoleBinding/serre-traffic-forecast/sandbox-editors",
                "NetworkPolicy/serre-traffic-forecast/default-deny",
                "NetworkPolicy/serre-traffic-forecast/allow-serre-platform",
                "NetworkPolicy/serre-traffic-forecast/allow-extra-egress",
            ]
        );
        for child in &children {
            // Namespaced children live in the sandbox's own namespace, never elsewhere
            // (RoleBindings above all).
            if let Some(ns) = &child.namespace {
                assert_eq!(ns, "serre-traffic-forecast", "{}", child.key());
            }
            let labels = child.object.labels();
            assert_eq!(labels[LABEL_SANDBOX], "traffic-forecast");
            assert_eq!(labels[LABEL_TENANT], "est-ensemble");
            assert_eq!(labels[LABEL_MANAGED_BY], "serre-operator");
            let owner = &child.object.owner_references()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("Sandbox", Some(true))
            );
            assert_eq!(child.object.annotations()[ANNOTATION_HASH], child.hash);
        }
    }

    #[test]
    fn hash_changes_only_with_content() {
        let (t, c) = (tenant(), test_build_config());
        let (r1, r2) = (resources(None), resources(None));
        let a = desired(&input(&t, &r1, &[], Workloads::Running, &c));
        let b = desired(&input(&t, &r2, &[], Workloads::Running, &c));
        assert!(a.iter().zip(&b).all(|(x, y)| x.hash == y.hash));
        let mut r3 = resources(None);
        r3.cpu = "6".into();
        let d = desired(&input(&t, &r3, &[], Workloads::Running, &c));
        let changed: Vec<_> = a
            .iter()
            .zip(&d)
            .filter(|(x, y)| x.hash != y.hash)
            .map(|(x, _)| x.key())
            .collect();
        assert_eq!(
            changed,
            ["ResourceQuota/serre-traffic-forecast/sandbox-quota"]
        );
    }
}
