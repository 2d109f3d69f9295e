//! Sandbox requests, without I/O: the request and response bodies, validation (every
//! problem named with its field and rule), the per-tenant self-service policy, and the
//! view that joins the stored request with the operator's status.

use std::str::FromStr;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serre_resources::quantity::Quantity;
use serre_resources::{GpuRequest, SandboxResources, SandboxSpec, Tenant};
use serre_validation::validate::is_dns_label;
use utoipa::ToSchema;

use crate::config::SandboxConfig;
use crate::store::TenantPolicyRow;

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
            reasons.push(
                "extra egress destinations need approval (a Métropole admin's beyond the \
                 Métropole's egress allowlist)"
                    .into(),
            );
        }
        reasons
    }
}

/// What stands in the way of approving a sandbox's extra egress: `Err(issues)` when a
/// destination is never reachable (the rules of [`serre_validation::egress`], checked
/// again: a request may predate them), else the destinations beyond the Métropole's
/// allowlist as `(field, cidr)` — which only a Métropole admin may approve.
pub fn egress_beyond_allowlist(
    spec: &SandboxSpec,
    rules: &serre_validation::egress::EgressRules,
) -> Result<Vec<(String, String)>, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let mut beyond = Vec::new();
    for (i, cidr) in spec.extra_egress_cidrs.iter().enumerate() {
        let field = format!("extraEgressCidrs[{i}]");
        match rules.check(cidr) {
            Err(e) => issues.push(FieldIssue::new(&field, e.rule, e.message)),
            Ok(()) if !rules.allowlisted(cidr) => beyond.push((field, cidr.clone())),
            Ok(()) => {}
        }
    }
    if issues.is_empty() {
        Ok(beyond)
    } else {
        Err(issues)
    }
}

// ---- Validation -------------------------------------------------------------------------

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
        if let Err(e) = config.egress.check(cidr) {
            push(
                &mut issues,
                &format!("extraEgressCidrs[{i}]"),
                e.rule,
                e.message,
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

mod view;

pub use view::*;

#[cfg(test)]
mod tests;
