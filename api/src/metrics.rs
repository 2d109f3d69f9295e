//! Prometheus metrics: requests by route and status, latency, authorization decisions,
//! audit appends, authentication failures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub action: String,
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub auth_failures: Family<CodeLabels, Counter>,
    pub audit_entries: Counter,
    pub audit_batches: Counter,
    pub cluster_pushes: Family<CodeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("serre_api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "authz_decisions",
            "Authorization decisions by action and outcome",
            decisions.clone(),
        );
        let auth_failures = Family::<CodeLabels, Counter>::default();
        registry.register(
            "authn_failures",
            "Refused bearer tokens by reason",
            auth_failures.clone(),
        );
        let audit_entries = Counter::default();
        registry.register(
            "audit_entries",
            "Entries appended to the audit log",
            audit_entries.clone(),
        );
        let audit_batches = Counter::default();
        registry.register(
            "audit_batches",
            "Transactions that appended audit entries",
            audit_batches.clone(),
        );
        let cluster_pushes = Family::<CodeLabels, Counter>::default();
        registry.register(
            "cluster_pushes",
            "Sandbox applies and deletes sent to the cluster, by outcome",
            cluster_pushes.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            decisions,
            auth_failures,
            audit_entries,
            audit_batches,
            cluster_pushes,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
