use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{BuildInput, meta};
use crate::quantity::Quantity;

/// Defaults for containers that set no requests or limits, so the quota admits and
/// counts them instead of rejecting them.
pub(super) fn limit_range(input: &BuildInput<'_>, ns: &str) -> LimitRange {
    let c = input.config;
    // Never default above the sandbox's own total, or such pods could never be admitted.
    let cap = |default: Quantity, total: &str| {
        total
            .parse::<Quantity>()
            .map_or(default, |t| default.min(t))
    };
    let cpu_limit = cap(c.default_cpu_limit, &input.resources.cpu);
    let mem_limit = cap(c.default_memory_limit, &input.resources.memory);
    let cpu_request = c.default_cpu_request.min(cpu_limit);
    let mem_request = c.default_memory_request.min(mem_limit);
    let pair = |cpu: String, mem: String| {
        BTreeMap::from([
            ("cpu".to_owned(), K8sQuantity(cpu)),
            ("memory".to_owned(), K8sQuantity(mem)),
        ])
    };
    LimitRange {
        metadata: meta(input, "sandbox-defaults", Some(ns)),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(pair(cpu_limit.to_cpu_string(), mem_limit.to_bytes_string())),
                default_request: Some(pair(
                    cpu_request.to_cpu_string(),
                    mem_request.to_bytes_string(),
                )),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Workloads;
    use super::super::fixtures::*;
    use super::*;
    use crate::config::test_build_config;

    #[test]
    fn containers_get_default_requests_and_limits() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let lr = limit_range(&input(&t, &r, &[], Workloads::Running, &c), "ns");
        let item = &lr.spec.unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        let d = item.default.as_ref().unwrap();
        let dr = item.default_request.as_ref().unwrap();
        assert_eq!(
            (d["cpu"].0.as_str(), d["memory"].0.as_str()),
            ("1", "512Mi")
        );
        assert_eq!(
            (dr["cpu"].0.as_str(), dr["memory"].0.as_str()),
            ("100m", "128Mi")
        );
    }
}
