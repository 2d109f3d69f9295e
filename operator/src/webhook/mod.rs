//! The sandbox policy admission webhook (`--webhook`): a validating webhook the operator
//! serves on every replica, leader or not, that refuses in sandbox namespaces any Pod or
//! workload template that breaks the policy ([`policy`]: the tenant's registries, no
//! ServiceAccount token, Pod Security `restricted`). Kubernetes 1.20 has no Pod Security
//! admission; this holds on any version.
//!
//! - [`policy`]: the rules, pure; [`review`]: AdmissionReview and the pod template of each
//!   kind, pure; [`configuration`]: the ValidatingWebhookConfiguration, pure;
//! - [`tls`]: the CA and serving certificate in a Secret of the operator's namespace;
//! - [`server`]: the HTTPS server and the caches it reads (sandbox namespaces, tenants).
//!
//! At start: the certificate is read (or made), the caches are filled, the server
//! listens, then the configuration is applied (server-side apply, field manager
//! `serre-operator`) with the CA as `caBundle`. Every `--webhook-check-interval` the
//! Secret is read again (renewing the certificate when due), the server takes a new
//! certificate when there is one, and the configuration is applied again if it changed.

pub mod configuration;
pub mod policy;
pub mod review;
pub mod secret_refs;
pub mod server;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use tracing::{info, warn};

use serre_validation::config::{BuildConfig, parse_duration};
use serre_validation::net::parse_selector;

use crate::resources::MANAGER;
use crate::telemetry::Metrics;
use configuration::{ConfigurationInput, Target, configuration, url_host};

/// Settings of the webhook.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookConfig {
    /// Serve the sandbox policy admission webhook and apply its configuration.
    #[arg(
        long = "webhook",
        env = "SERRE_WEBHOOK",
        default_value_t = false,
        default_missing_value = "true",
        num_args = 0..=1,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,

    /// Listen address of the webhook (HTTPS).
    #[arg(long, env = "SERRE_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,

    /// Service of the operator's namespace through which the API server reaches the
    /// webhook (in a cluster). Either this or --webhook-url.
    #[arg(long, env = "SERRE_WEBHOOK_SERVICE")]
    pub webhook_service: Option<String>,

    /// Port of that Service.
    #[arg(long, env = "SERRE_WEBHOOK_SERVICE_PORT", default_value_t = 443)]
    pub webhook_service_port: u16,

    /// `https://host[:port]` where the API server reaches the webhook when the operator
    /// runs outside the cluster (e.g. `https://10.250.0.1:16750` on a development host).
    #[arg(long, env = "SERRE_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Name of the ValidatingWebhookConfiguration the operator applies.
    #[arg(
        long,
        env = "SERRE_WEBHOOK_CONFIGURATION",
        default_value = "serre-sandbox-policy"
    )]
    pub webhook_configuration: String,

    /// Secret of the operator's namespace holding the webhook's CA and certificate.
    #[arg(
        long,
        env = "SERRE_WEBHOOK_SECRET",
        default_value = "serre-webhook-tls"
    )]
    pub webhook_secret: String,

    /// How long the API server waits for an answer before refusing (1-10 s).
    #[arg(long, env = "SERRE_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 5)]
    pub webhook_timeout_seconds: i32,

    /// Labels (`key=value`, comma-separated) a sandbox namespace must also carry for the
    /// policy to apply there (a staged rollout, e.g. per tenant with
    /// `serre.metropolegrandparis.fr/tenant=<name>`). Empty: every sandbox namespace.
    #[arg(long, env = "SERRE_WEBHOOK_NAMESPACE_SELECTOR", value_delimiter = ',')]
    pub webhook_namespace_selector: Vec<String>,

    /// Usernames of the operator itself (comma-separated), as the API server names it in
    /// admission requests: in a cluster `system:serviceaccount:<namespace>:<its
    /// ServiceAccount>` (the chart sets it). Only these users, and the Kubernetes
    /// controllers that make pods from admitted templates, may name a sandbox
    /// namespace's Secrets in a pod (rule `platform-secrets`).
    #[arg(long, env = "SERRE_WEBHOOK_PLATFORM_USERS", value_delimiter = ',')]
    pub webhook_platform_users: Vec<String>,

    /// PEM file of the CA that signs the API server's client certificate for webhooks
    /// (the API server's `--admission-control-config-file`, `kubeConfigFile`). Set: the
    /// webhook requires a client certificate from that CA on every connection, so only
    /// the API server is answered. Unset: any client that reaches the port is answered
    /// (decisions only; nothing changes), as on clusters whose API server presents none.
    #[arg(long, env = "SERRE_WEBHOOK_CLIENT_CA")]
    pub webhook_client_ca: Option<std::path::PathBuf>,

    /// ClusterRole that owns the configuration, so that deleting it (`helm uninstall`)
    /// deletes the configuration too. Set by the chart to the operator's ClusterRole.
    #[arg(long, env = "SERRE_WEBHOOK_OWNER_CLUSTER_ROLE")]
    pub webhook_owner_cluster_role: Option<String>,

    /// How often the certificate Secret and the configuration are checked (renewal,
    /// another replica's renewal, a changed configuration).
    #[arg(long, env = "SERRE_WEBHOOK_CHECK_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub webhook_check_interval: Duration,
}

impl WebhookConfig {
    /// Check settings clap cannot check alone; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        match (&self.webhook_service, &self.webhook_url) {
            (Some(_), Some(_)) | (None, None) => {
                return Err("--webhook needs exactly one of --webhook-service (in a cluster) and --webhook-url (outside it)".into());
            }
            (Some(s), None) if !is_dns_label(s) => {
                return Err(format!("--webhook-service {s:?} is not a Service name"));
            }
            (None, Some(u)) if url_host(u).is_none() => {
                return Err(format!(
                    "--webhook-url {u:?} must be https://host[:port] (the API server only calls webhooks over HTTPS)"
                ));
            }
            _ => {}
        }
        if self
            .webhook_platform_users
            .iter()
            .all(|u| u.trim().is_empty())
        {
            return Err("--webhook needs --webhook-platform-users: the operator's own username (in a cluster system:serviceaccount:<namespace>:<ServiceAccount>), the one user besides Kubernetes' controllers that may put a sandbox namespace's Secrets in a pod".into());
        }
        if !(1..=10).contains(&self.webhook_timeout_seconds) {
            return Err("--webhook-timeout-seconds must be between 1 and 10".into());
        }
        for s in &self.webhook_namespace_selector {
            parse_selector(s).map_err(|e| format!("--webhook-namespace-selector: {e}"))?;
        }
        if self.webhook_check_interval.is_zero() {
            return Err("--webhook-check-interval must be more than zero".into());
        }
        Ok(())
    }

    /// Where the API server reaches the webhook; `namespace` is the operator's.
    pub fn target(&self, namespace: &str) -> Target {
        match (&self.webhook_service, &self.webhook_url) {
            (Some(name), _) => Target::Service {
                namespace: namespace.to_owned(),
                name: name.clone(),
                port: self.webhook_service_port,
            },
            (None, url) => Target::Url(url.clone().unwrap_or_default()),
        }
    }

    fn extra_selector(&self) -> BTreeMap<String, String> {
        self.webhook_namespace_selector
            .iter()
            .filter_map(|s| parse_selector(s).ok())
            .collect()
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Images Serre itself runs in sandbox namespaces whatever the tenant allows: the init
/// step of trial runs (`--run-fetch-image`).
pub fn platform_images(build: &BuildConfig) -> Vec<String> {
    build.run_fetch_image.iter().cloned().collect()
}

/// The webhook, running.
pub struct Webhook {
    /// Where it listens (the port given, or the one chosen for port 0).
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Start the webhook: certificate, caches, server, then the configuration; returns once
/// it serves and the configuration is applied. Errors stop the operator's start.
pub async fn start(
    client: Client,
    config: WebhookConfig,
    namespace: String,
    platform_images: Vec<String>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Webhook> {
    use anyhow::Context as _;
    let target = config.target(&namespace);
    let hosts = target.hosts();
    let cert = tls::ensure(
        &client,
        &namespace,
        &config.webhook_secret,
        &hosts,
        Utc::now(),
    )
    .await
    .context("--webhook-secret")?;
    let resolver = server::CertResolver::new(&cert).context("webhook certificate")?;
    let client_ca = match &config.webhook_client_ca {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--webhook-client-ca {}", path.display()))?,
        ),
        None => None,
    };
    let tls = server::tls_config(resolver.clone(), client_ca.as_deref())
        .context("--webhook-client-ca: the webhook's TLS configuration")?;
    let lookup = server::Lookup::start(&client).await.map_err(|e| {
        anyhow::anyhow!("the webhook's caches of sandbox namespaces and tenants: {e}")
    })?;
    let listener = tokio::net::TcpListener::bind(config.webhook_addr)
        .await
        .with_context(|| format!("--webhook-addr {}", config.webhook_addr))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(server::State {
        lookup,
        platform: review::Platform {
            images: platform_images,
            users: config
                .webhook_platform_users
                .iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
        },
        metrics: metrics.clone(),
    });
    let serving = tokio::spawn(server::serve(listener, tls, state));
    info!(%addr, configuration = %config.webhook_configuration, clients = if client_ca.is_some() { "the API server's certificate required" } else { "any" }, "admission webhook serving");

    let owner = match &config.webhook_owner_cluster_role {
        Some(name) => Some(
            owner_reference(&client, name)
                .await
                .context("--webhook-owner-cluster-role")?,
        ),
        None => None,
    };
    let extra = config.extra_selector();
    let (name, timeout_seconds) = (
        config.webhook_configuration.clone(),
        config.webhook_timeout_seconds,
    );
    let desired = move |ca: &str| {
        configuration(&ConfigurationInput {
            name: &name,
            target: &target,
            ca_pem: ca,
            extra_selector: &extra,
            timeout_seconds,
            owner: owner.clone(),
        })
    };
    apply_if_changed(&client, &metrics, &desired(&cert.ca_pem))
        .await
        .context("applying the ValidatingWebhookConfiguration")?;

    let task = tokio::spawn(async move {
        let mut current = cert;
        let mut tick = tokio::time::interval(config.webhook_check_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            match tls::ensure(
                &client,
                &namespace,
                &config.webhook_secret,
                &hosts,
                Utc::now(),
            )
            .await
            {
                Ok(cert) => {
                    if cert != current {
                        match resolver.replace(&cert) {
                            Ok(()) => {
                                info!(not_after = %cert.not_after, "webhook certificate reloaded")
                            }
                            Err(e) => {
                                warn!(error = %e, "webhook certificate unusable; keeping the previous one")
                            }
                        }
                        current = cert;
                    }
                }
                Err(e) => warn!(error = %e, "webhook certificate check failed; retrying"),
            }
            if let Err(e) = apply_if_changed(&client, &metrics, &desired(&current.ca_pem)).await {
                warn!(error = %e, "webhook configuration check failed; retrying");
            }
            if serving.is_finished() {
                warn!("the webhook server stopped");
                break;
            }
        }
    });
    Ok(Webhook { addr, task })
}

/// An owner reference to the ClusterRole `name` (not a controller reference).
async fn owner_reference(client: &Client, name: &str) -> Result<OwnerReference, kube::Error> {
    let role = Api::<ClusterRole>::all(client.clone()).get(name).await?;
    Ok(OwnerReference {
        api_version: ClusterRole::api_version(&()).into_owned(),
        kind: ClusterRole::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: role.metadata.uid.unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    })
}

/// Apply the configuration unless the cluster has it already (same webhooks and owner).
async fn apply_if_changed(
    client: &Client,
    metrics: &Metrics,
    desired: &ValidatingWebhookConfiguration,
) -> Result<(), kube::Error> {
    let api = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let name = desired.metadata.name.clone().unwrap_or_default();
    if let Some(live) = api.get_opt(&name).await?
        && same(&live, desired)
    {
        return Ok(());
    }
    let mut object = serde_json::to_value(desired).unwrap_or_default();
    object["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    object["kind"] = "ValidatingWebhookConfiguration".into();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    metrics.write("ValidatingWebhookConfiguration", "apply");
    info!(configuration = %name, "webhook configuration applied");
    Ok(())
}

/// Whether the live configuration already is the desired one (fields the API server
/// defaults, such as a Service port or an object selector, compared as desired).
fn same(live: &ValidatingWebhookConfiguration, desired: &ValidatingWebhookConfiguration) -> bool {
    let pick = |c: &ValidatingWebhookConfiguration| {
        let webhooks: Vec<_> = c
            .webhooks
            .iter()
            .flatten()
            .map(|w| {
                (
                    w.name.clone(),
                    w.client_config.clone(),
                    w.failure_policy.clone(),
                    w.timeout_seconds,
                    w.namespace_selector.clone(),
                    w.rules.clone(),
                    w.side_effects.clone(),
                )
            })
            .collect();
        let owners = c.metadata.owner_references.clone().unwrap_or_default();
        (webhooks, owners)
    };
    pick(live) == pick(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        w: WebhookConfig,
    }

    fn parse(args: &[&str]) -> WebhookConfig {
        Flags::parse_from(std::iter::once("test").chain(args.iter().copied())).w
    }

    #[test]
    fn off_by_default_and_one_target_when_on() {
        assert!(!parse(&[]).enabled);
        assert_eq!(parse(&[]).validate(), Ok(()));
        let e = parse(&["--webhook"]).validate().unwrap_err();
        assert!(e.contains("exactly one of --webhook-service"), "{e}");
        let c = parse(&["--webhook", "--webhook-service", "serre-operator-webhook"]);
        let e = c.validate().unwrap_err();
        assert!(
            e.starts_with("--webhook needs --webhook-platform-users"),
            "{e}"
        );
        let c = parse(&[
            "--webhook",
            "--webhook-service",
            "serre-operator-webhook",
            "--webhook-platform-users",
            "system:serviceaccount:serre-system:serre-operator",
        ]);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.target("serre-system"),
            Target::Service {
                namespace: "serre-system".into(),
                name: "serre-operator-webhook".into(),
                port: 443
            }
        );
        let c = parse(&[
            "--webhook=true",
            "--webhook-url",
            "https://10.250.0.1:16750",
            "--webhook-platform-users=serre-admin",
        ]);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.target("x"),
            Target::Url("https://10.250.0.1:16750".into())
        );
        let e = parse(&[
            "--webhook",
            "--webhook-url",
            "http://10.250.0.1:1",
            "--webhook-platform-users=a",
        ])
        .validate()
        .unwrap_err();
        assert!(e.starts_with("--webhook-url"), "{e}");
    }

    #[test]
    fn the_timeout_and_selector_are_checked() {
        let base = [
            "--webhook",
            "--webhook-service",
            "s",
            "--webhook-platform-users",
            "op",
        ];
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            parse(&a).validate()
        };
        assert!(with(&["--webhook-timeout-seconds", "11"]).is_err());
        assert!(with(&["--webhook-timeout-seconds", "10"]).is_ok());
        assert!(with(&["--webhook-namespace-selector", "nokey"]).is_err());
        let c = parse(&[
            "--webhook-namespace-selector",
            "serre.metropolegrandparis.fr/tenant=t1,team=a",
        ]);
        assert_eq!(c.extra_selector().len(), 2);
    }

    #[test]
    fn an_unchanged_configuration_is_not_written_again() {
        let target = Target::Url("https://10.250.0.1:1".into());
        let extra = BTreeMap::new();
        let input = |ca: &'static str| ConfigurationInput {
            name: "c",
            target: &target,
            ca_pem: ca,
            extra_selector: &extra,
            timeout_seconds: 5,
            owner: None,
        };
        let desired = configuration(&input("a"));
        let mut live = desired.clone();
        live.metadata.resource_version = Some("7".into());
        live.metadata.managed_fields = Some(vec![]);
        assert!(same(&live, &desired));
        assert!(!same(&configuration(&input("b")), &desired));
    }
}
