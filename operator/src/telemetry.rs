//! Prometheus metrics of the operator (prometheus-client) and logging setup.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    pub kind: String,
    /// `allowed`, `denied` or `error` (the request could not be judged: refused too).
    pub result: &'static str,
}

/// The operator's metrics, shared by controllers and the HTTP endpoint.
pub struct Metrics {
    pub registry: Registry,
    pub reconciliations: Family<ControllerLabel, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    pub writes: Family<WriteLabels, Counter>,
    pub leader: Gauge,
    pub admissions: Family<AdmissionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("serre_operator");
        let reconciliations = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let leader = Gauge::default();
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations run",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciliations by error category",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests sent to the Kubernetes API",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "admission_reviews",
            "Admission reviews answered by the sandbox policy webhook, by kind and result",
            admissions.clone(),
        );
        Self {
            registry,
            reconciliations,
            failures,
            duration,
            writes,
            leader,
            admissions,
        }
    }
}

impl Metrics {
    pub fn write(&self, kind: &str, verb: &'static str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb,
            })
            .inc();
    }

    pub fn admission(&self, kind: &str, result: &'static str) {
        self.admissions
            .get_or_create(&AdmissionLabels {
                kind: kind.to_owned(),
                result,
            })
            .inc();
    }

    /// Time a reconciliation; the returned guard records when dropped.
    pub fn measure(self: &Arc<Self>, controller: &'static str) -> ReconcileTimer {
        self.reconciliations
            .get_or_create(&ControllerLabel { controller })
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            start: Instant::now(),
        }
    }

    pub fn failure(&self, controller: &'static str, category: &'static str) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller,
                category,
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&ControllerLabel {
                controller: self.controller,
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Structured logs on stderr (as the gateway's): JSON when `SERRE_LOG_FORMAT=json`, text
/// otherwise; level from `RUST_LOG`.
pub fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let json = std::env::var("SERRE_LOG_FORMAT").is_ok_and(|v| v == "json");
    if json {
        let _ = fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .json()
            .with_current_span(false)
            .try_init();
    } else {
        let _ = fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .try_init();
    }
}
