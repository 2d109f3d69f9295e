use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// An isolated AI test workspace for one tenant: a namespace with hard limits,
/// deny-by-default networking and an expiry date.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serre.metropolegrandparis.fr",
    version = "v1alpha1",
    kind = "Sandbox",
    status = "SandboxStatus",
    shortname = "ssb",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expiresAt"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Name of the Tenant this sandbox belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub tenant: String,
    /// Why the sandbox exists (GDPR purpose limitation). Required, non-empty.
    #[schemars(length(min = 1, max = 2000))]
    pub purpose: String,
    /// People responsible for the sandbox (OIDC subjects or e-mail addresses).
    #[serde(default)]
    pub owners: Vec<String>,
    pub resources: SandboxResources,
    /// When the sandbox expires; at most the operator's maximum lifetime after creation.
    pub expires_at: DateTime<Utc>,
    /// Extra egress destinations (CIDR notation) beyond DNS, the object store and the gateway.
    #[serde(default)]
    pub extra_egress_cidrs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxResources {
    /// CPU for all pods together (requests and limits), e.g. `4` or `1500m`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub cpu: String,
    /// Memory for all pods together, e.g. `16Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub memory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
    /// Persistent volume and bucket storage, e.g. `50Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub storage: String,
    /// Maximum number of pods at once.
    #[serde(default = "default_max_pods")]
    pub max_pods: u32,
}

fn default_max_pods() -> u32 {
    10
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    pub count: u32,
    /// Extended resource name: `nvidia.com/gpu` or a MIG profile such as `nvidia.com/mig-1g.10gb`.
    #[serde(default = "default_gpu_resource")]
    pub resource_name: String,
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".to_owned()
}

/// Lifecycle of a sandbox as shown to people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SandboxPhase {
    #[default]
    Pending,
    Provisioning,
    Ready,
    Denied,
    Suspended,
    Expired,
    Terminating,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    #[serde(default)]
    pub phase: SandboxPhase,
    /// Namespace holding the sandbox's workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Resources admitted against the tenant's allowance (what the quota enforces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted: Option<SandboxResources>,
    /// Storage provisioned for the sandbox (never contains secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// Bucket on the object store.
    pub bucket: String,
    /// S3 endpoint of the store.
    pub endpoint: String,
    /// S3 access key id of the sandbox's key (the secret is only in the namespace Secret).
    pub key_id: String,
    /// Fingerprint of the sandbox's wrapped data key (derived from the wrapped blob).
    pub data_key_id: String,
    /// Size quota set on the bucket.
    pub max_size: String,
    /// Teardown progress: objects and bytes removed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<RemovedData>,
    /// What the bucket holds, from the store's admin API at each reconcile (the gateway
    /// turns it into storage GB-hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<StorageUsed>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageUsed {
    pub bytes: u64,
    pub objects: u64,
    /// When these figures were first seen (they are rewritten only when they change).
    pub since: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemovedData {
    pub objects: u64,
    pub bytes: u64,
    pub started_at: DateTime<Utc>,
}

impl Sandbox {
    /// The sandbox's GPU request as (resource name, count), if any GPU was asked for.
    pub fn gpu(resources: &SandboxResources) -> Option<(&str, u32)> {
        resources
            .gpu
            .as_ref()
            .filter(|g| g.count > 0)
            .map(|g| (g.resource_name.as_str(), g.count))
    }
}
