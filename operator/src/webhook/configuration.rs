//! The ValidatingWebhookConfiguration the operator applies (pure): which requests the
//! API server sends to the webhook, where, and the CA it trusts for it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};

use crate::resources::{LABEL_MANAGED_BY, LABEL_SANDBOX, MANAGER};

/// Name of the one webhook of the configuration.
pub const WEBHOOK_NAME: &str = "sandbox-policy.serre.metropolegrandparis.fr";
/// Path the webhook serves.
pub const PATH: &str = "/validate";

/// How the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Service of the operator's namespace, in a cluster.
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
    /// An `https://` URL (the operator outside the cluster, e.g. tests on a host).
    Url(String),
}

impl Target {
    /// The names the serving certificate must cover: the Service's DNS names (the API
    /// server asks for `<name>.<namespace>.svc`), or the URL's host.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Target::Service {
                namespace, name, ..
            } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}"),
                name.clone(),
            ],
            Target::Url(url) => url_host(url).into_iter().collect(),
        }
    }
}

/// The host of an `https://host[:port][/path]` URL (IPv6 without brackets).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Everything the configuration depends on.
pub struct ConfigurationInput<'a> {
    pub name: &'a str,
    pub target: &'a Target,
    pub ca_pem: &'a str,
    /// Labels (beyond Serre's own) a namespace must carry for the policy to apply.
    pub extra_selector: &'a BTreeMap<String, String>,
    pub timeout_seconds: i32,
    /// The object whose deletion removes the configuration (the chart's ClusterRole).
    pub owner: Option<OwnerReference>,
}

/// The configuration: CREATE and UPDATE of Pods and of every workload with a pod
/// template, in namespaces Serre made for a sandbox only; refused when the webhook
/// cannot answer (`failurePolicy: Fail`).
pub fn configuration(input: &ConfigurationInput<'_>) -> ValidatingWebhookConfiguration {
    let rule = |groups: &[&str], versions: &[&str], resources: &[&str]| RuleWithOperations {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        api_versions: Some(versions.iter().map(|s| s.to_string()).collect()),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        scope: Some("Namespaced".into()),
    };
    let mut labels = input.extra_selector.clone();
    labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
    let client_config = match input.target {
        Target::Service {
            namespace,
            name,
            port,
        } => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(PATH.into()),
                port: Some(i32::from(*port)),
            }),
            ..WebhookClientConfig::default()
        },
        Target::Url(url) => WebhookClientConfig {
            url: Some(format!("{}{PATH}", url.trim_end_matches('/'))),
            ..WebhookClientConfig::default()
        },
    };
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(input.name.to_owned()),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED_BY.to_owned(),
                MANAGER.to_owned(),
            )])),
            owner_references: input.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: WebhookClientConfig {
                ca_bundle: Some(ByteString(input.ca_pem.as_bytes().to_vec())),
                ..client_config
            },
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(input.timeout_seconds),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_SANDBOX.into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
            }),
            rules: Some(vec![
                rule(
                    &[""],
                    &["v1"],
                    &["pods", "pods/ephemeralcontainers", "replicationcontrollers"],
                ),
                rule(
                    &["apps"],
                    &["v1"],
                    &["deployments", "statefulsets", "daemonsets", "replicasets"],
                ),
                // CronJobs are batch/v1beta1 on Kubernetes 1.20, batch/v1 from 1.21.
                rule(&["batch"], &["v1", "v1beta1"], &["jobs", "cronjobs"]),
            ]),
            ..ValidatingWebhook::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::review::template_at;
    use serde_json::json;

    fn input<'a>(
        target: &'a Target,
        extra: &'a BTreeMap<String, String>,
    ) -> ConfigurationInput<'a> {
        ConfigurationInput {
            name: "serre-sandbox-policy",
            target,
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            extra_selector: extra,
            timeout_seconds: 5,
            owner: None,
        }
    }

    #[test]
    fn it_fails_closed_on_sandbox_namespaces_only() {
        let target = Target::Service {
            namespace: "serre-system".into(),
            name: "serre-operator-webhook".into(),
            port: 443,
        };
        let c = serde_json::to_value(configuration(&input(&target, &BTreeMap::new()))).unwrap();
        let w = &c["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["timeoutSeconds"], 5);
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(
            w["namespaceSelector"],
            json!({
                "matchLabels": {"app.kubernetes.io/managed-by": "serre-operator"},
                "matchExpressions": [{"key": "serre.metropolegrandparis.fr/sandbox", "operator": "Exists"}]
            })
        );
        assert_eq!(
            w["clientConfig"]["service"],
            json!({"namespace": "serre-system", "name": "serre-operator-webhook", "path": "/validate", "port": 443})
        );
        assert!(w["clientConfig"].get("url").is_none());
        // caBundle is the CA's PEM, base64-encoded by the API types.
        assert_eq!(
            w["clientConfig"]["caBundle"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
        );
    }

    #[test]
    fn every_workload_with_a_pod_template_is_sent_and_understood() {
        let target = Target::Url("https://10.250.0.1:16750".into());
        let mut extra = BTreeMap::new();
        extra.insert(
            "serre.metropolegrandparis.fr/tenant".to_owned(),
            "t1".to_owned(),
        );
        let c = configuration(&input(&target, &extra));
        let w = &c.webhooks.unwrap()[0];
        assert_eq!(
            w.client_config.url.as_deref(),
            Some("https://10.250.0.1:16750/validate")
        );
        assert_eq!(
            w.namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["serre.metropolegrandparis.fr/tenant"],
            "t1"
        );
        let mut resources = Vec::new();
        for r in w.rules.as_ref().unwrap() {
            assert_eq!(r.operations.as_deref().unwrap(), ["CREATE", "UPDATE"]);
            resources.extend(r.resources.clone().unwrap());
        }
        for kind in [
            "pods",
            "deployments",
            "statefulsets",
            "daemonsets",
            "replicasets",
            "jobs",
            "cronjobs",
        ] {
            assert!(resources.iter().any(|r| r == kind), "{kind}");
        }
        // Each kind sent has a template the review knows.
        for kind in [
            "Pod",
            "ReplicationController",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
        ] {
            assert!(template_at(kind).is_some(), "{kind}");
        }
    }

    #[test]
    fn certificates_cover_the_names_the_api_server_asks_for() {
        let svc = Target::Service {
            namespace: "serre-system".into(),
            name: "serre-operator-webhook".into(),
            port: 443,
        };
        assert!(
            svc.hosts()
                .contains(&"serre-operator-webhook.serre-system.svc".to_owned())
        );
        assert_eq!(
            Target::Url("https://10.250.0.1:16750/".into()).hosts(),
            ["10.250.0.1"]
        );
        assert_eq!(url_host("https://[fd00::1]:9443"), Some("fd00::1".into()));
        assert_eq!(
            url_host("https://webhook.example.fr/x"),
            Some("webhook.example.fr".into())
        );
        assert_eq!(url_host("http://10.250.0.1:1"), None);
        assert_eq!(url_host("https://user@host"), None);
        assert_eq!(url_host("https://:443"), None);
    }
}
