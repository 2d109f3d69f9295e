use k8s_openapi::api::core::v1::Namespace;

use super::{BuildInput, meta};

/// The sandbox namespace, with Pod Security `restricted` enforced.
pub(super) fn namespace(input: &BuildInput<'_>, ns: &str) -> Namespace {
    let mut metadata = meta(input, ns, None);
    let labels = metadata.labels.get_or_insert_with(Default::default);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".into(),
        );
    }
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Workloads, namespace_name};
    use super::*;
    use crate::config::test_build_config;

    #[test]
    fn restricted_pod_security_is_enforced() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let input = input(&t, &r, &[], Workloads::Running, &c);
        let ns = namespace(&input, &namespace_name(&c, "traffic-forecast"));
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("serre-traffic-forecast"));
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(
            labels["pod-security.kubernetes.io/enforce-version"],
            "latest"
        );
        assert_eq!(
            labels["serre.metropolegrandparis.fr/tenant"],
            "est-ensemble"
        );
    }
}
