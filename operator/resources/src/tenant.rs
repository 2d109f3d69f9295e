use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A commune, an EPT (territorial body) or the Métropole itself.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serre.metropolegrandparis.fr",
    version = "v1alpha1",
    kind = "Tenant",
    status = "TenantStatus",
    shortname = "stn",
    printcolumn = r#"{"name":"Display name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"Sandboxes","type":"integer","jsonPath":".status.reserved.sandboxes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Human-readable name, e.g. "Est Ensemble" or "Commune de Montreuil".
    pub display_name: String,
    pub kind: TenantKind,
    /// OIDC groups whose members act for this tenant, with their role.
    #[serde(default)]
    pub members: Vec<MemberGroup>,
    /// Upper bound on what all the tenant's sandboxes may reserve together.
    pub allowance: Allowance,
    /// Image registries (host or host/path prefixes) the tenant's workloads may pull from.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    /// A suspended tenant's sandboxes are scaled to zero pods until it is resumed.
    #[serde(default)]
    pub suspended: bool,
    /// Monthly energy budget in kWh at the meter (IT energy × PUE), all sandboxes
    /// together. At 80 % tenant admins are warned; at 100 % new trial runs are refused
    /// until the next calendar month (UTC) or a raised budget. None: no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub energy_budget_kwh: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TenantKind {
    Commune,
    #[serde(rename = "EPT")]
    Ept,
    Metropole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberGroup {
    /// Group name exactly as the identity provider puts it in tokens.
    pub group: String,
    pub role: MemberRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Admin,
    Member,
}

/// Aggregate allowance over all of a tenant's sandboxes. Quantities use Kubernetes
/// syntax (`500m`, `4`, `16Gi`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allowance {
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub cpu: String,
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub memory: String,
    /// GPUs of any resource name (a MIG slice counts as one).
    #[serde(default)]
    pub gpus: u32,
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub storage: String,
    /// Number of sandboxes that may exist at once.
    pub sandboxes: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// What the tenant's admitted sandboxes currently reserve.
    #[serde(default)]
    pub reserved: Reserved,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The month's energy against `spec.energyBudgetKwh`, written by the gateway's
    /// accounting (its own field manager); the operator turns it into the `EnergyBudget`
    /// condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyBudgetStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnergyBudgetStatus {
    /// First instant of the month (UTC) the figures are about.
    pub month: DateTime<Utc>,
    /// kWh at the meter used this month.
    pub used_kwh: f64,
    pub budget_kwh: f64,
    /// `ok`, `warning` (≥ 80 %) or `exhausted` (≥ 100 %: new runs are refused).
    pub level: String,
    pub updated_at: DateTime<Utc>,
}

/// Reserved quantities, in canonical Kubernetes syntax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reserved {
    pub cpu: String,
    pub memory: String,
    pub gpus: u32,
    pub storage: String,
    pub sandboxes: u32,
}

impl Default for Reserved {
    fn default() -> Self {
        Self {
            cpu: "0".into(),
            memory: "0".into(),
            gpus: 0,
            storage: "0".into(),
            sandboxes: 0,
        }
    }
}
