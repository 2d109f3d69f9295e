use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use serre_validation::net::{parse_egress, parse_selector};

use super::{BuildInput, meta};

/// Deny everything, then allow what every sandbox needs — DNS, the Serre platform (object
/// store) and the gateway — in one policy, `allow-serre-platform`, and the sandbox's own
/// approved CIDRs in another, `allow-extra-egress`, made only when there are some.
///
/// One policy for the common rules rather than one per destination: NetworkPolicies add
/// up (an egress is allowed if any policy selecting the pod allows it), so the result is
/// the same, with half the objects to apply, watch and store per sandbox (up to Serre
/// 0.1 they were `allow-dns`, `allow-serre-platform` and `allow-serre-gateway`; an
/// upgrade deletes the two others as orphans once this one is applied).
pub(super) fn network_policies(input: &BuildInput<'_>, ns: &str) -> Vec<NetworkPolicy> {
    let mut common = vec![dns_rule(input)];
    common.extend(
        input
            .config
            .platform_egress
            .iter()
            .filter_map(|e| parse_egress(e).ok())
            .map(|(cidr, port)| egress_to(&cidr, port)),
    );
    common.extend(gateway_rule(input));
    let mut policies = vec![
        policy(input, ns, "default-deny", vec!["Ingress", "Egress"], vec![]),
        policy(input, ns, PLATFORM_POLICY, vec!["Egress"], common),
    ];
    if !input.extra_egress_cidrs.is_empty() {
        let rules = input
            .extra_egress_cidrs
            .iter()
            .map(|c| egress_to(c, None))
            .collect();
        policies.push(policy(
            input,
            ns,
            "allow-extra-egress",
            vec!["Egress"],
            rules,
        ));
    }
    policies
}

/// The policy allowing DNS, the platform's endpoints and the gateway.
pub const PLATFORM_POLICY: &str = "allow-serre-platform";

fn policy(
    input: &BuildInput<'_>,
    ns: &str,
    name: &str,
    types: Vec<&str>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(input, name, Some(ns)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(types.into_iter().map(str::to_owned).collect()),
            egress: if egress.is_empty() {
                None
            } else {
                Some(egress)
            },
            ingress: None,
        }),
    }
}

fn dns_rule(input: &BuildInput<'_>) -> NetworkPolicyEgressRule {
    let selector = |s: &str| LabelSelector {
        match_labels: parse_selector(s)
            .ok()
            .map(|(k, v)| BTreeMap::from([(k, v)])),
        ..LabelSelector::default()
    };
    let port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    };
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(selector(&input.config.dns_namespace_selector)),
            pod_selector: Some(selector(&input.config.dns_pod_selector)),
            ip_block: None,
        }]),
        ports: Some(vec![port("UDP"), port("TCP")]),
    }
}

/// TCP to Serre's gateway pods, chosen by labels as the chart deploys them (a Service
/// name cannot appear in a NetworkPolicy, and its ClusterIP is rewritten before policies
/// apply). `None` unless the gateway's selectors and port are configured.
fn gateway_rule(input: &BuildInput<'_>) -> Option<NetworkPolicyEgressRule> {
    let c = input.config;
    let port = c.gateway_port?;
    let (ns_key, ns_value) = parse_selector(c.gateway_namespace_selector.as_deref()?).ok()?;
    let pods: BTreeMap<String, String> = c
        .gateway_pod_selector
        .iter()
        .filter_map(|l| parse_selector(l).ok())
        .collect();
    if pods.is_empty() {
        return None;
    }
    Some(NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(ns_key, ns_value)])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(pods),
                ..LabelSelector::default()
            }),
            ip_block: None,
        }]),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(port))),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        }]),
    })
}

fn egress_to(cidr: &str, port: Option<u16>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_owned(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: port.map(|p| {
            vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(p))),
                protocol: Some("TCP".into()),
                ..NetworkPolicyPort::default()
            }]
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
    fn deny_by_default_then_explicit_allows() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let cidrs = vec!["192.0.2.0/24".to_owned()];
        let ps = network_policies(&input(&t, &r, &cidrs, Workloads::Running, &c), "ns");
        let deny = ps[0].spec.as_ref().unwrap();
        assert_eq!(deny.pod_selector, Some(LabelSelector::default()));
        assert_eq!(
            deny.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        assert!(deny.ingress.is_none() && deny.egress.is_none());

        let common = ps[1].spec.as_ref().unwrap().egress.as_ref().unwrap();
        let dns = &common[..1];
        let ports = dns[0].ports.as_ref().unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| p.port == Some(IntOrString::Int(53))));
        let peer = &dns[0].to.as_ref().unwrap()[0];
        assert_eq!(
            peer.pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["k8s-app"],
            "kube-dns"
        );

        let platform = &common[1..];
        assert_eq!(platform.len(), 2);
        assert_eq!(
            platform[0].to.as_ref().unwrap()[0]
                .ip_block
                .as_ref()
                .unwrap()
                .cidr,
            "10.0.0.10/32"
        );
        assert_eq!(
            platform[0].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(3900))
        );

        let extra = ps[2].spec.as_ref().unwrap().egress.as_ref().unwrap();
        assert_eq!(
            extra[0].to.as_ref().unwrap()[0]
                .ip_block
                .as_ref()
                .unwrap()
                .cidr,
            "192.0.2.0/24"
        );
        assert!(extra[0].ports.is_none());
        assert!(
            ps.iter()
                .all(|p| p.spec.as_ref().unwrap().ingress.is_none()),
            "no ingress is ever allowed"
        );
    }

    #[test]
    fn no_extra_policy_without_cidrs() {
        let (t, r, c) = (tenant(), resources(None), test_build_config());
        let ps = network_policies(&input(&t, &r, &[], Workloads::Running, &c), "ns");
        let names: Vec<_> = ps
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["default-deny", "allow-serre-platform"]);
    }

    #[test]
    fn the_gateway_is_reached_by_its_pods_labels_on_its_container_port() {
        let (t, r) = (tenant(), resources(None));
        let mut c = test_build_config();
        c.gateway_namespace_selector = Some("kubernetes.io/metadata.name=serre-system".into());
        c.gateway_pod_selector = vec![
            "app.kubernetes.io/component=gateway".into(),
            "app.kubernetes.io/instance=serre".into(),
        ];
        c.gateway_port = Some(8080);
        assert_eq!(c.validate(), Ok(()));
        let ps = network_policies(&input(&t, &r, &[], Workloads::Running, &c), "ns");
        assert_eq!(ps.len(), 2, "no policy of its own");
        let spec = ps[1].spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Egress".to_owned()][..])
        );
        // After DNS and the two platform endpoints.
        let rules = spec.egress.as_ref().unwrap();
        assert_eq!(rules.len(), 4);
        let rule = &rules[3];
        let peer = &rule.to.as_ref().unwrap()[0];
        assert!(peer.ip_block.is_none());
        let labels = |s: &Option<LabelSelector>| s.as_ref().unwrap().match_labels.clone().unwrap();
        assert_eq!(
            labels(&peer.namespace_selector),
            BTreeMap::from([("kubernetes.io/metadata.name".into(), "serre-system".into())])
        );
        assert_eq!(
            labels(&peer.pod_selector),
            BTreeMap::from([
                ("app.kubernetes.io/component".into(), "gateway".into()),
                ("app.kubernetes.io/instance".into(), "serre".into()),
            ])
        );
        let port = &rule.ports.as_ref().unwrap()[0];
        assert_eq!(port.port, Some(IntOrString::Int(8080)));
        assert_eq!(port.protocol.as_deref(), Some("TCP"));

        c.gateway_port = None;
        assert!(c.validate().unwrap_err().contains("go together"));
        c.gateway_port = Some(8080);
        c.gateway_pod_selector = vec!["no-equals".into()];
        assert!(c.validate().unwrap_err().contains("--gateway-pod-selector"));
    }
}
