use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{BuildInput, Workloads, meta};
use crate::resources::Sandbox;

/// Name of the quota in every sandbox namespace.
pub const QUOTA_NAME: &str = "sandbox-quota";

/// The hard limits of a sandbox. Values come from admitted resources that were
/// validated before, so they are copied as written.
pub(super) fn resource_quota(input: &BuildInput<'_>, ns: &str) -> ResourceQuota {
    let r = input.resources;
    let q = |s: &str| K8sQuantity(s.to_owned());
    let pods = match input.workloads {
        Workloads::Running => r.max_pods,
        Workloads::Stopped => 0,
    };
    let mut hard = BTreeMap::from([
        ("requests.cpu".to_owned(), q(&r.cpu)),
        ("limits.cpu".to_owned(), q(&r.cpu)),
        ("requests.memory".to_owned(), q(&r.memory)),
        ("limits.memory".to_owned(), q(&r.memory)),
        ("requests.storage".to_owned(), q(&r.storage)),
        ("pods".to_owned(), q(&pods.to_string())),
        ("services.loadbalancers".to_owned(), q("0")),
        ("services.nodeports".to_owned(), q("0")),
    ]);
    // Every GPU resource the cluster offers is zero unless granted, so a sandbox
    // without GPUs cannot schedule on one.
    for name in &input.config.gpu_resources {
        hard.insert(format!("requests.{name}"), q("0"));
    }
    if let Some((name, count)) = Sandbox::gpu(r) {
        hard.insert(format!("requests.{name}"), q(&count.to_string()));
    }
    ResourceQuota {
        metadata: meta(input, QUOTA_NAME, Some(ns)),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::config::test_build_config;

    fn hard(q: &ResourceQuota) -> BTreeMap<String, String> {
        q.spec
            .as_ref()
            .unwrap()
            .hard
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }

    #[test]
    fn quota_matches_resources_and_forbids_gpus_by_default() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let q = resource_quota(&input(&t, &r, &[], Workloads::Running, &c), "ns");
        let h = hard(&q);
        assert_eq!(h["requests.cpu"], "4");
        assert_eq!(h["limits.cpu"], "4");
        assert_eq!(h["requests.memory"], "16Gi");
        assert_eq!(h["limits.memory"], "16Gi");
        assert_eq!(h["requests.storage"], "50Gi");
        assert_eq!(h["pods"], "8");
        assert_eq!(h["services.loadbalancers"], "0");
        assert_eq!(h["services.nodeports"], "0");
        assert_eq!(h["requests.nvidia.com/gpu"], "0");
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn mig_profile_is_granted_and_whole_gpus_stay_zero() {
        let (t, c) = (tenant(), test_build_config());
        let r = resources(Some(("nvidia.com/mig-1g.10gb", 2)));
        let h = hard(&resource_quota(
            &input(&t, &r, &[], Workloads::Running, &c),
            "ns",
        ));
        assert_eq!(h["requests.nvidia.com/mig-1g.10gb"], "2");
        assert_eq!(h["requests.nvidia.com/gpu"], "0");
    }

    #[test]
    fn stopped_sandbox_allows_no_pods() {
        let (t, c) = (tenant(), test_build_config());
        let r = resources(Some(("nvidia.com/gpu", 1)));
        let h = hard(&resource_quota(
            &input(&t, &r, &[], Workloads::Stopped, &c),
            "ns",
        ));
        assert_eq!(h["pods"], "0");
        assert_eq!(h["requests.nvidia.com/gpu"], "1");
    }
}
