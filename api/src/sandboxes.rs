//! Sandbox requests, without I/O: the request and response bodies, validation (every
//! problem named with its field and rule), the per-tenant self-service policy, and the
//! view that joins the stored request with the operator's status.

use std::str::FromStr;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serre_operator::quantity::Quantity;
use serre_operator::resources::{
    Condition, GpuRequest, SandboxResources, SandboxSpec, SandboxStatus, Tenant,
};
use utoipa::ToSchema;

use crate::config::SandboxConfig;
use crate::store::{
    APPROVED, DELETING, PENDING_APPROVAL, REJECTED, SandboxRecord, TenantPolicyRow,
};

/// Longest sandbox resource name: the operator's namespace is `serre-<name>` (≤ 63).
pub const MAX_NAME_LEN: usize = 57;
/// Separator between the tenant and the short name in a sandbox's resource name.
pub const NAME_SEPARATOR: &str = "--";

/// One problem with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldIssue {
    /// Path of the field in the request body, e.g. `resources.cpu`.
    pub field: String,
    /// Machine-readable rule, e.g. `quantity_syntax`, `max_lifetime`, `unknown_tenant`.
    pub rule: String,
    pub message: String,
}

impl FieldIssue {
    pub fn new(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}

// ---- Request bodies ---------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuBody {
    pub count: u32,
    /// e.g. `nvidia.com/gpu` or a MIG profile; default `nvidia.com/gpu`.
    #[serde(default)]
    pub resource_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcesBody {
    /// CPU for all pods together, Kubernetes syntax (`4`, `1500m`).
    pub cpu: String,
    /// Memory, e.g. `16Gi`.
    pub memory: String,
    /// Volume and bucket storage, e.g. `50Gi`.
    pub storage: String,
    #[serde(default)]
    pub gpu: Option<GpuBody>,
    /// Maximum number of pods at once (default 10).
    #[serde(default)]
    pub max_pods: Option<u32>,
}

/// `POST /v1/sandboxes`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSandbox {
    /// Tenant the sandbox is for.
    pub tenant: String,
    /// Short name, unique within the tenant; the sandbox is named `<tenant>--<name>`.
    pub name: String,
    /// Why the sandbox exists (GDPR purpose limitation).
    pub purpose: String,
    pub resources: ResourcesBody,
    /// Expiry, RFC 3339 (e.g. `2026-06-30T18:00:00Z`).
    pub expires_at: String,
    /// Extra egress destinations (CIDR) beyond the platform's.
    #[serde(default)]
    pub extra_egress_cidrs: Vec<String>,
}

/// `POST /v1/sandboxes/{name}/reject` (reason required) and `/approve` (optional).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decide {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/sandboxes/{name}/members`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    /// The vendor principal's subject, as in its tokens.
    pub subject: String,
}

/// Self-service policy of a tenant: requests within it are created at once, others
/// wait for a tenant admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfServicePolicy {
    /// Longest lifetime, in days, granted without approval.
    pub max_days: u32,
    /// Whether GPUs are granted without approval.
    pub allow_gpu: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage: Option<String>,
}

impl SelfServicePolicy {
    pub fn default_from(config: &SandboxConfig) -> Self {
        Self {
            max_days: config.self_service_max_days,
            allow_gpu: config.self_service_allow_gpu,
            max_cpu: None,
            max_memory: None,
            max_storage: None,
        }
    }

    pub fn from_row(row: &TenantPolicyRow) -> Self {
        Self {
            max_days: u32::try_from(row.max_days).unwrap_or(0),
            allow_gpu: row.allow_gpu,
            max_cpu: row.max_cpu.clone(),
            max_memory: row.max_memory.clone(),
            max_storage: row.max_storage.clone(),
        }
    }

    pub fn validate(&self, config: &SandboxConfig) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        let max = config.max_lifetime.as_secs() / 86_400;
        if u64::from(self.max_days) > max {
            issues.push(FieldIssue::new(
                "maxDays",
                "max_lifetime",
                format!("must be at most {max} (the maximum lifetime of a sandbox)"),
            ));
        }
        for (field, value) in [
            ("maxCpu", &self.max_cpu),
            ("maxMemory", &self.max_memory),
            ("maxStorage", &self.max_storage),
        ] {
            if let Some(v) = value
                && let Err(e) = Quantity::from_str(v)
            {
                issues.push(FieldIssue::new(field, "quantity_syntax", e.to_string()));
            }
        }
        issues
    }

    /// Why a request needs approval under this policy (empty: self-service).
    pub fn approval_reasons(&self, spec: &SandboxSpec, now: DateTime<Utc>) -> Vec<String> {
        let mut reasons = Vec::new();
        if spec.expires_at > now + ChronoDuration::days(i64::from(self.max_days)) {
            reasons.push(format!(
                "lifetime beyond the tenant's self-service maximum of {} days",
                self.max_days
            ));
        }
        if spec.resources.gpu.as_ref().is_some_and(|g| g.count > 0) && !self.allow_gpu {
            reasons.push("GPUs are not granted without approval".into());
        }
        for (what, asked, limit) in [
            ("cpu", &spec.resources.cpu, &self.max_cpu),
            ("memory", &spec.resources.memory, &self.max_memory),
            ("storage", &spec.resources.storage, &self.max_storage),
        ] {
            let (Some(limit), Ok(asked_q)) = (limit, Quantity::from_str(asked)) else {
                continue;
            };
            match Quantity::from_str(limit) {
                Ok(l) if asked_q <= l => {}
                _ => reasons.push(format!(
                    "{what} {asked} is above the self-service maximum of {limit}"
                )),
            }
        }
        if !spec.extra_egress_cidrs.is_empty() {
            reasons.push("extra egress destinations need approval".into());
        }
        reasons
    }
}

// ---- Validation -------------------------------------------------------------------------

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The sandbox's resource name for a tenant and a short name.
pub fn resource_name(tenant: &str, name: &str) -> String {
    format!("{tenant}{NAME_SEPARATOR}{name}")
}

/// Check a request body against the syntax rules, the maximum lifetime and the
/// tenant's allowance; returns the spec to apply. `tenant` is `None` when the tenant
/// does not exist or the caller may not see it (both answer `unknown_tenant`).
pub fn validate_create(
    body: &CreateSandbox,
    tenant: Option<&Tenant>,
    owner: &str,
    config: &SandboxConfig,
    now: DateTime<Utc>,
) -> Result<(String, SandboxSpec), Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let push = |issues: &mut Vec<FieldIssue>, f: &str, r: &str, m: String| {
        issues.push(FieldIssue::new(f, r, m))
    };

    if body.tenant.trim().is_empty() {
        push(
            &mut issues,
            "tenant",
            "required",
            "must name a tenant".into(),
        );
    } else if tenant.is_none() {
        push(
            &mut issues,
            "tenant",
            "unknown_tenant",
            format!("no tenant {:?} that you belong to", body.tenant),
        );
    }

    if !is_dns_label(&body.name) {
        push(
            &mut issues,
            "name",
            "dns_label",
            "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
                .into(),
        );
    } else if body.name.contains(NAME_SEPARATOR) {
        push(
            &mut issues,
            "name",
            "no_double_dash",
            "must not contain \"--\"".into(),
        );
    } else {
        let full = resource_name(&body.tenant, &body.name);
        if full.len() > MAX_NAME_LEN {
            push(
                &mut issues,
                "name",
                "max_length",
                format!(
                    "is too long: the sandbox name {full:?} has {} characters, at most {MAX_NAME_LEN} are allowed",
                    full.len()
                ),
            );
        }
    }

    if body.purpose.trim().is_empty() {
        push(
            &mut issues,
            "purpose",
            "required",
            "must state why the sandbox exists (GDPR purpose limitation)".into(),
        );
    } else if body.purpose.chars().count() > 2000 {
        push(
            &mut issues,
            "purpose",
            "max_length",
            "must be at most 2000 characters".into(),
        );
    }

    let r = &body.resources;
    let mut quantities = [None, None, None];
    for (i, (field, value, positive)) in [
        ("resources.cpu", &r.cpu, true),
        ("resources.memory", &r.memory, true),
        ("resources.storage", &r.storage, false),
    ]
    .into_iter()
    .enumerate()
    {
        match Quantity::from_str(value) {
            Ok(q) if positive && q == Quantity::ZERO => push(
                &mut issues,
                field,
                "positive",
                "must be more than zero".into(),
            ),
            Ok(q) => quantities[i] = Some(q),
            Err(e) => push(&mut issues, field, "quantity_syntax", e.to_string()),
        }
    }
    if r.max_pods == Some(0) {
        push(
            &mut issues,
            "resources.maxPods",
            "minimum",
            "must be at least 1".into(),
        );
    }
    let gpu = match &r.gpu {
        None => None,
        Some(g) => {
            let resource_name = g
                .resource_name
                .clone()
                .unwrap_or_else(|| "nvidia.com/gpu".to_owned());
            if g.count == 0 {
                push(
                    &mut issues,
                    "resources.gpu.count",
                    "minimum",
                    "must be at least 1 (omit gpu for none)".into(),
                );
            }
            if !config.gpu_resources.contains(&resource_name) {
                push(
                    &mut issues,
                    "resources.gpu.resourceName",
                    "gpu_resource",
                    format!(
                        "{resource_name:?} is not offered (offered: {})",
                        config.gpu_resources.join(", ")
                    ),
                );
            }
            Some(GpuRequest {
                count: g.count,
                resource_name,
            })
        }
    };

    let expires_at = match DateTime::parse_from_rfc3339(&body.expires_at) {
        Err(e) => {
            push(
                &mut issues,
                "expiresAt",
                "timestamp_syntax",
                format!("{:?} is not an RFC 3339 time ({e})", body.expires_at),
            );
            None
        }
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            let max = ChronoDuration::from_std(config.max_lifetime)
                .unwrap_or_else(|_| ChronoDuration::days(90));
            if t <= now {
                push(
                    &mut issues,
                    "expiresAt",
                    "in_future",
                    "must be in the future".into(),
                );
            } else if t > now + max {
                push(
                    &mut issues,
                    "expiresAt",
                    "max_lifetime",
                    format!("is beyond the maximum lifetime of {} days", max.num_days()),
                );
            }
            Some(t)
        }
    };

    for (i, cidr) in body.extra_egress_cidrs.iter().enumerate() {
        if let Err(e) = serre_operator::build::parse_cidr(cidr) {
            push(
                &mut issues,
                &format!("extraEgressCidrs[{i}]"),
                "cidr_syntax",
                e,
            );
        }
    }

    // A request beyond the tenant's whole allowance can never be admitted.
    if let Some(t) = tenant {
        let a = &t.spec.allowance;
        for (i, (field, limit)) in [
            ("resources.cpu", &a.cpu),
            ("resources.memory", &a.memory),
            ("resources.storage", &a.storage),
        ]
        .into_iter()
        .enumerate()
        {
            if let (Some(q), Ok(l)) = (quantities[i], Quantity::from_str(limit))
                && q > l
            {
                push(
                    &mut issues,
                    field,
                    "within_allowance",
                    format!("is above the tenant's whole allowance of {limit}"),
                );
            }
        }
        if let Some(g) = &gpu
            && g.count > a.gpus
        {
            push(
                &mut issues,
                "resources.gpu.count",
                "within_allowance",
                format!("is above the tenant's allowance of {} GPUs", a.gpus),
            );
        }
    }

    match (issues.is_empty(), expires_at) {
        (true, Some(expires_at)) => Ok((
            resource_name(&body.tenant, &body.name),
            SandboxSpec {
                tenant: body.tenant.clone(),
                purpose: body.purpose.trim().to_owned(),
                owners: vec![owner.to_owned()],
                resources: SandboxResources {
                    cpu: r.cpu.clone(),
                    memory: r.memory.clone(),
                    gpu,
                    storage: r.storage.clone(),
                    max_pods: r.max_pods.unwrap_or(10),
                },
                expires_at,
                extra_egress_cidrs: body.extra_egress_cidrs.clone(),
            },
        )),
        _ => Err(issues),
    }
}

/// A vendor subject: non-empty, printable, bounded.
pub fn validate_subject(subject: &str) -> Vec<FieldIssue> {
    if subject.trim().is_empty() {
        vec![FieldIssue::new(
            "subject",
            "required",
            "must name a principal",
        )]
    } else if subject.len() > 255 || subject.chars().any(char::is_control) {
        vec![FieldIssue::new(
            "subject",
            "subject_syntax",
            "must be at most 255 printable characters",
        )]
    } else {
        Vec::new()
    }
}

// ---- Views ------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        s: SandboxConfig,
    }

    fn config() -> SandboxConfig {
        P::parse_from(["t"]).s
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn tenant() -> Tenant {
        crate::tenants::parse_manifests(
            "kind: Tenant\nmetadata: {name: est-ensemble}\nspec:\n  displayName: EE\n  kind: EPT\n  allowance: {cpu: '16', memory: 64Gi, storage: 500Gi, sandboxes: 5, gpus: 1}\n",
        )
        .unwrap()
        .remove(0)
    }

    fn body(days: i64) -> CreateSandbox {
        CreateSandbox {
            tenant: "est-ensemble".into(),
            name: "traffic".into(),
            purpose: "Forecast bus ridership".into(),
            resources: ResourcesBody {
                cpu: "4".into(),
                memory: "16Gi".into(),
                storage: "50Gi".into(),
                gpu: None,
                max_pods: None,
            },
            expires_at: (now() + ChronoDuration::days(days)).to_rfc3339(),
            extra_egress_cidrs: vec![],
        }
    }

    #[test]
    fn a_good_request_becomes_a_spec() {
        let t = tenant();
        let (name, spec) = validate_create(&body(10), Some(&t), "alice", &config(), now()).unwrap();
        assert_eq!(name, "est-ensemble--traffic");
        assert_eq!(spec.owners, ["alice"]);
        assert_eq!(spec.resources.max_pods, 10);
        let policy = SelfServicePolicy::default_from(&config());
        assert!(policy.approval_reasons(&spec, now()).is_empty());
    }

    #[test]
    fn every_problem_names_its_field_and_rule() {
        let t = tenant();
        let mut b = body(91);
        b.name = "Bad_Name".into();
        b.purpose = " ".into();
        b.resources.cpu = "lots".into();
        b.resources.memory = "0".into();
        b.resources.storage = "1Ti".into();
        b.resources.max_pods = Some(0);
        b.resources.gpu = Some(GpuBody {
            count: 2,
            resource_name: Some("amd.com/gpu".into()),
        });
        b.extra_egress_cidrs = vec!["bogus".into()];
        let issues = validate_create(&b, Some(&t), "alice", &config(), now()).unwrap_err();
        let got: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.field.as_str(), i.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("name", "dns_label"),
                ("purpose", "required"),
                ("resources.cpu", "quantity_syntax"),
                ("resources.memory", "positive"),
                ("resources.maxPods", "minimum"),
                ("resources.gpu.resourceName", "gpu_resource"),
                ("expiresAt", "max_lifetime"),
                ("extraEgressCidrs[0]", "cidr_syntax"),
                ("resources.storage", "within_allowance"),
                ("resources.gpu.count", "within_allowance"),
            ]
        );
        let mut b = body(10);
        b.expires_at = "next tuesday".into();
        b.name = "a--b".into();
        let issues = validate_create(&b, None, "alice", &config(), now()).unwrap_err();
        let got: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.field.as_str(), i.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("tenant", "unknown_tenant"),
                ("name", "no_double_dash"),
                ("expiresAt", "timestamp_syntax")
            ]
        );
        let mut b = body(-1);
        b.name = "x".repeat(44);
        let issues = validate_create(&b, Some(&t), "alice", &config(), now()).unwrap_err();
        assert_eq!(issues[0].rule, "max_length");
        assert_eq!(issues[1].rule, "in_future");
    }

    #[test]
    fn self_service_policy_decides_what_needs_approval() {
        let t = tenant();
        let mut b = body(45);
        b.resources.gpu = Some(GpuBody {
            count: 1,
            resource_name: None,
        });
        let (_, spec) = validate_create(&b, Some(&t), "alice", &config(), now()).unwrap();
        let default = SelfServicePolicy::default_from(&config());
        let reasons = default.approval_reasons(&spec, now());
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        let generous = SelfServicePolicy {
            max_days: 60,
            allow_gpu: true,
            max_cpu: Some("2".into()),
            max_memory: None,
            max_storage: None,
        };
        let reasons = generous.approval_reasons(&spec, now());
        assert_eq!(reasons, ["cpu 4 is above the self-service maximum of 2"]);
        let enough = SelfServicePolicy {
            max_cpu: Some("4".into()),
            ..generous
        };
        assert!(enough.approval_reasons(&spec, now()).is_empty());
    }
}
