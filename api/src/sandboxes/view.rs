//! Views of a sandbox: the stored request joined with the operator's status.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serre_resources::{Condition, SandboxResources, SandboxSpec, SandboxStatus};
use utoipa::ToSchema;

use crate::store::{APPROVED, DELETING, PENDING_APPROVAL, REJECTED, SandboxRecord};

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuView {
    pub count: u32,
    pub resource_name: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesView {
    pub cpu: String,
    pub memory: String,
    pub storage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuView>,
    pub max_pods: u32,
}

impl From<&SandboxResources> for ResourcesView {
    fn from(r: &SandboxResources) -> Self {
        Self {
            cpu: r.cpu.clone(),
            memory: r.memory.clone(),
            storage: r.storage.clone(),
            gpu: r.gpu.as_ref().map(|g| GpuView {
                count: g.count,
                resource_name: g.resource_name.clone(),
            }),
            max_pods: r.max_pods,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// `PendingApproval`, `Approved`, `Rejected` or `Deleting`.
    pub state: String,
    /// Created at once under the tenant's self-service policy.
    pub self_service: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the request needs (or needed) a tenant admin's approval.
    pub approval_reasons: Vec<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

impl From<&Condition> for ConditionView {
    fn from(c: &Condition) -> Self {
        Self {
            type_: c.type_.clone(),
            status: format!("{:?}", c.status),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time,
        }
    }
}

/// What the cluster knows of the sandbox.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// `NotRequested` (pending or rejected), `WaitingForCluster` (approved, not applied
    /// yet), `Applied`, `ApplyFailed` or `Deleting`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The operator's phase (`Pending`, `Provisioning`, `Ready`, `Denied`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub conditions: Vec<ConditionView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub subject: String,
    pub added_by: String,
    pub added_at: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxView {
    pub name: String,
    pub tenant: String,
    pub purpose: String,
    pub owners: Vec<String>,
    pub resources: ResourcesView,
    pub expires_at: DateTime<Utc>,
    pub extra_egress_cidrs: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub request: RequestView,
    pub cluster: ClusterView,
    /// Vendor principals added to this sandbox.
    pub members: Vec<MemberView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxList {
    pub items: Vec<SandboxView>,
}

/// What the gateway knows about the cluster when building a view.
pub enum ClusterKnowledge<'a> {
    /// No cluster configured.
    Disabled,
    /// The object as last seen (None: not seen), and the last error talking to it.
    Seen {
        status: Option<&'a SandboxStatus>,
        last_error: Option<String>,
    },
}

pub fn spec_of(record: &SandboxRecord) -> Result<SandboxSpec, String> {
    serde_json::from_str(&record.row.spec)
        .map_err(|e| format!("sandbox {}: stored spec: {e}", record.row.name))
}

pub fn view(
    record: &SandboxRecord,
    spec: &SandboxSpec,
    cluster: ClusterKnowledge<'_>,
) -> SandboxView {
    let row = &record.row;
    let applied = row.applied_version == Some(row.version);
    let mut cv = ClusterView {
        state: String::new(),
        message: None,
        phase: None,
        namespace: None,
        conditions: Vec::new(),
    };
    match row.state.as_str() {
        PENDING_APPROVAL | REJECTED => cv.state = "NotRequested".into(),
        DELETING => cv.state = "Deleting".into(),
        APPROVED if applied => cv.state = "Applied".into(),
        APPROVED if row.push_failed_version == Some(row.version) => {
            cv.state = "ApplyFailed".into();
            cv.message = row.push_error.clone();
        }
        _ => {
            cv.state = "WaitingForCluster".into();
            cv.message = Some(match &cluster {
                ClusterKnowledge::Disabled => "no cluster is configured".into(),
                ClusterKnowledge::Seen {
                    last_error: Some(e),
                    ..
                } => format!("the cluster is unreachable: {e}"),
                ClusterKnowledge::Seen { .. } => "to be applied shortly".into(),
            });
        }
    }
    if let ClusterKnowledge::Seen {
        status: Some(st), ..
    } = cluster
        && (row.state == APPROVED || row.state == DELETING)
    {
        cv.phase = Some(format!("{:?}", st.phase));
        cv.namespace = st.namespace.clone();
        cv.conditions = st.conditions.iter().map(ConditionView::from).collect();
    }
    SandboxView {
        name: row.name.clone(),
        tenant: row.tenant.clone(),
        purpose: spec.purpose.clone(),
        owners: spec.owners.clone(),
        resources: ResourcesView::from(&spec.resources),
        expires_at: spec.expires_at,
        extra_egress_cidrs: spec.extra_egress_cidrs.clone(),
        created_by: row.created_by.clone(),
        created_at: row.created_at.clone(),
        request: RequestView {
            state: row.state.clone(),
            self_service: row.self_service,
            decided_by: row.decided_by.clone(),
            decided_at: row.decided_at.clone(),
            reason: row.decision_reason.clone(),
            approval_reasons: serde_json::from_str(&row.approval_reasons).unwrap_or_default(),
        },
        cluster: cv,
        members: record
            .members
            .iter()
            .map(|m| MemberView {
                subject: m.subject.clone(),
                added_by: m.added_by.clone(),
                added_at: m.added_at.clone(),
            })
            .collect(),
    }
}
