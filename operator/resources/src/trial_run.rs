use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, GpuRequest};

/// A vendor's or a tenant's measured trial of an AI solution inside a sandbox: one Job
/// in the sandbox's namespace, fed read-only with the granted dataset views, writing its
/// results to the sandbox bucket. Created by the gateway (`POST /v1/sandboxes/{name}/runs`).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serre.metropolegrandparis.fr",
    version = "v1alpha1",
    kind = "TrialRun",
    namespaced,
    status = "TrialRunStatus",
    shortname = "str",
    printcolumn = r#"{"name":"Sandbox","type":"string","jsonPath":".spec.sandbox"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrialRunSpec {
    /// The Sandbox this run belongs to; the run must live in that sandbox's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub sandbox: String,
    /// Container image, from a registry the tenant allows (`Tenant.spec.allowedRegistries`).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Entrypoint override (the image's own when empty).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Requests and limits of the workload container (within the sandbox's quota).
    pub resources: RunResources,
    /// Grant ids whose views the init step fetches into `/data/grants/<grant id>/`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Catalogue solution the run measures; completed runs attach their figures to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    pub kind: RunKind,
    /// Wall-clock limit of the run (the Job's `activeDeadlineSeconds`).
    #[schemars(range(min = 1, max = 604800))]
    pub timeout_seconds: u32,
    /// What one unit of useful work is, for per-unit figures (e.g. 10 000 inferences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functional_unit: Option<FunctionalUnit>,
    /// Secret in this namespace holding the run-scoped gateway token (key `token`),
    /// created by the gateway with the run; read only by the init step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// Who asked for the run (OIDC subject).
    #[serde(default)]
    #[schemars(transform = without_default)]
    pub requested_by: String,
    /// Set to stop the run: the Job is deleted and the run ends as `Cancelled`.
    #[serde(default)]
    pub cancelled: bool,
}

/// Kubernetes 1.20 rejects a CRD whose schema defaults a string to `""` (it reads the
/// default as null), so such a field carries no default in the schema; serde still
/// fills it in when absent.
fn without_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunResources {
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub cpu: String,
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub memory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
}

/// The AI life-cycle phase a run measures (AFNOR SPEC 2314 separates them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunKind {
    Training,
    FineTuning,
    Inference,
    Evaluation,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Training => "training",
            RunKind::FineTuning => "fineTuning",
            RunKind::Inference => "inference",
            RunKind::Evaluation => "evaluation",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionalUnit {
    /// What is counted, e.g. `inference`, `document`, `epoch`.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    #[schemars(range(min = 1))]
    pub count: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

impl RunPhase {
    /// The run is over and will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunPhase::Succeeded | RunPhase::Failed | RunPhase::TimedOut | RunPhase::Cancelled
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialRunStatus {
    #[serde(default)]
    pub phase: RunPhase,
    /// The Job running the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run ended (exit code, deadline, cancellation, eviction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Object prefix in the sandbox bucket where the run writes its results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_prefix: Option<String>,
    /// Summary of the measured usage, written by the gateway's accounting (its own
    /// field manager) once the run has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RunUsageSummary>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunUsageSummary {
    pub duration_seconds: f64,
    pub cpu_core_seconds: f64,
    pub gpu_seconds: f64,
    pub energy_kwh: f64,
    pub emissions_gco2e: f64,
    /// Weakest method behind the energy figure (`kepler`, `dcgm`, `rapl`, `modelled`).
    pub method: String,
}
