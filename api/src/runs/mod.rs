//! Trial runs: what a caller may ask for (`POST /v1/sandboxes/{name}/runs`), the
//! `TrialRun` built from it, the run-scoped token its pod uses to fetch the granted views
//! and to send its results, and the run's figures once the accounting has covered it.

pub mod cluster;
pub mod fetch;
pub mod figures;
pub mod frugality;
pub mod outputs;
pub mod practices;
pub mod report;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serre_resources::{FunctionalUnit, GpuRequest, RunKind, RunResources, TrialRunSpec};
use utoipa::ToSchema;

use crate::sandboxes::FieldIssue;

pub use figures::RunFigures;

/// Longest timeout a run may ask for (the operator enforces the same bound).
pub const MAX_TIMEOUT_S: u32 = 7 * 24 * 3600;
/// At most this many grants mounted in one run.
pub const MAX_GRANTS: usize = 16;

/// `POST /v1/sandboxes/{name}/runs`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRun {
    /// Container image; its registry must be allowed for the tenant.
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub resources: RunResourcesBody,
    /// Grant ids whose views are fetched into `/data/grants/<id>/` before the run starts.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Catalogue solution id the run measures.
    pub solution: Option<String>,
    /// training, fineTuning, inference or evaluation.
    #[schema(value_type = String)]
    pub kind: RunKind,
    pub timeout_seconds: u32,
    pub functional_unit: Option<FunctionalUnitBody>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunResourcesBody {
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpu: Option<u32>,
    /// Extended resource name of the GPUs (default `nvidia.com/gpu`).
    pub gpu_resource: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionalUnitBody {
    /// What is counted, e.g. `inference`.
    pub name: String,
    pub count: u64,
}

/// Checks that need nothing but the request.
pub fn validate(req: &CreateRun) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    if req.image.trim().is_empty()
        || req.image.len() > 512
        || req.image.contains(char::is_whitespace)
    {
        issues.push(FieldIssue::new(
            "image",
            "image_reference",
            "must be an image reference such as registry.example.fr/team/model:1.0",
        ));
    }
    if req.timeout_seconds == 0 || req.timeout_seconds > MAX_TIMEOUT_S {
        issues.push(FieldIssue::new(
            "timeoutSeconds",
            "range",
            format!("must be between 1 and {MAX_TIMEOUT_S} (7 days)"),
        ));
    }
    if req.grants.len() > MAX_GRANTS {
        issues.push(FieldIssue::new(
            "grants",
            "max_items",
            format!("at most {MAX_GRANTS} grants per run"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, g) in req.grants.iter().enumerate() {
        if g.is_empty() || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            issues.push(FieldIssue::new(
                &format!("grants[{i}]"),
                "grant_id",
                format!("{g:?} is not a grant id"),
            ));
        } else if !seen.insert(g) {
            issues.push(FieldIssue::new(
                &format!("grants[{i}]"),
                "unique",
                format!("grant {g:?} is listed twice"),
            ));
        }
    }
    if let Some(u) = &req.functional_unit {
        if u.count == 0 {
            issues.push(FieldIssue::new(
                "functionalUnit.count",
                "minimum",
                "must be at least 1",
            ));
        }
        let name = u.name.trim();
        if name.is_empty() || name.len() > 64 {
            issues.push(FieldIssue::new(
                "functionalUnit.name",
                "length",
                "must be 1 to 64 characters, e.g. \"inference\"",
            ));
        }
    }
    if req.resources.gpu == Some(0) && req.resources.gpu_resource.is_some() {
        issues.push(FieldIssue::new(
            "resources.gpuResource",
            "requires_gpu",
            "gpuResource needs gpu ≥ 1",
        ));
    }
    issues
}

/// A fresh run name: `run-` and 12 hex digits (Job and pod names derive from it).
pub fn new_name() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("run-{}", &id[..12])
}

/// The Secret holding a run's token.
pub fn token_secret_name(run: &str) -> String {
    format!("{run}-token")
}

/// The `TrialRun` spec for a validated request.
pub fn spec(req: &CreateRun, sandbox: &str, run: &str, requested_by: &str) -> TrialRunSpec {
    TrialRunSpec {
        sandbox: sandbox.to_owned(),
        image: req.image.trim().to_owned(),
        command: req.command.clone(),
        args: req.args.clone(),
        resources: RunResources {
            cpu: req.resources.cpu.trim().to_owned(),
            memory: req.resources.memory.trim().to_owned(),
            gpu: req
                .resources
                .gpu
                .filter(|n| *n > 0)
                .map(|count| GpuRequest {
                    count,
                    resource_name: req
                        .resources
                        .gpu_resource
                        .clone()
                        .unwrap_or_else(|| "nvidia.com/gpu".into()),
                }),
        },
        grants: req.grants.clone(),
        solution: req.solution.clone(),
        kind: req.kind,
        timeout_seconds: req.timeout_seconds,
        functional_unit: req.functional_unit.as_ref().map(|u| FunctionalUnit {
            name: u.name.trim().to_owned(),
            count: u.count,
        }),
        // Every run gets a token: its init step fetches the grants with it, its trial
        // container sends its results to the gateway with it (no storage credential).
        token_secret: Some(token_secret_name(run)),
        requested_by: requested_by.to_owned(),
        cancelled: false,
    }
}

/// The catalogue's name for a run kind.
pub fn catalogue_phase(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Training => "training",
        RunKind::FineTuning => "fine-tuning",
        RunKind::Inference => "inference",
        RunKind::Evaluation => "evaluation",
    }
}

/// Phases after which a run never changes.
pub fn is_final(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "TimedOut" | "Cancelled")
}

/// How long a run's token lives: the run's timeout plus the time it may wait to start.
/// An upper bound only: the gateway refuses the token as soon as the run is over or
/// cancelled (`http/run_token.rs`), and deletes its Secret then (`cluster::delete_token`).
pub fn token_expiry(now: DateTime<Utc>, timeout_seconds: u32) -> DateTime<Utc> {
    now + chrono::Duration::seconds(i64::from(timeout_seconds)) + chrono::Duration::hours(1)
}

/// Whether a grant may feed a run of `requester` in `sandbox` (of `tenant`, with
/// `vendors`): a sandbox grant to this very sandbox, or a vendor grant to the requester
/// who is a vendor of this sandbox; active either way. The message never says more
/// about a grant than the requester may know.
pub fn grant_usable(
    g: &crate::store::GrantRow,
    sandbox: &str,
    tenant: &str,
    requester: &str,
    vendors: &[String],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let mismatch = || format!("no grant {:?} for this sandbox or for you", g.id);
    if g.tenant != tenant {
        return Err(mismatch());
    }
    let named = match g.grantee_kind.as_str() {
        crate::grants::SANDBOX => g.grantee == sandbox,
        crate::grants::VENDOR => g.grantee == requester && vendors.iter().any(|v| v == requester),
        _ => false,
    };
    if !named {
        return Err(mismatch());
    }
    if let Some(reason) = crate::grants::inactive_reason(g, now) {
        return Err(reason);
    }
    Ok(())
}

/// The operator's own checks of a run against its sandbox and tenant (registry allowlist,
/// resources within the sandbox's, …), phrased for the API's fields.
pub fn check_against(
    spec: &TrialRunSpec,
    namespace: &str,
    sandbox: &serre_resources::Sandbox,
    tenant: &serre_resources::TenantSpec,
) -> Vec<FieldIssue> {
    use clap::{CommandFactory, FromArgMatches, Parser};
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        build: serre_validation::config::BuildConfig,
    }
    // The namespace the operator gave the sandbox tells its prefix. The operator's other
    // settings keep their defaults: none of them may come from the gateway's own
    // environment (Kubernetes injects variables such as SERRE_GATEWAY_PORT=tcp://… for
    // a Service named serre-gateway), so every `env` of these flags is dropped.
    let prefix = namespace
        .strip_suffix(spec.sandbox.as_str())
        .unwrap_or_default();
    let parsed = Flags::command()
        .mut_args(|a| a.env(None::<&'static str>))
        .try_get_matches_from(["serre-api", "--namespace-prefix", prefix])
        .and_then(|m| Flags::from_arg_matches(&m));
    let Ok(flags) = parsed else {
        return vec![FieldIssue::new(
            "sandbox",
            "namespace",
            format!("the sandbox's namespace {namespace:?} is not one Serre made"),
        )];
    };
    match serre_validation::validate_run::validate_run(
        spec,
        namespace,
        sandbox,
        tenant,
        &flags.build,
    ) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| {
                let field = e.field.strip_prefix("spec.").unwrap_or(&e.field);
                FieldIssue::new(field, "run_policy", e.message)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateRun {
        serde_json::from_value(serde_json::json!({
            "image": "registry.example.fr/vendor/model:1",
            "resources": {"cpu": "2", "memory": "4Gi"},
            "grants": ["g-1"],
            "kind": "inference",
            "timeoutSeconds": 600,
            "functionalUnit": {"name": "inference", "count": 1000}
        }))
        .unwrap()
    }

    #[test]
    fn the_operators_checks_ignore_the_gateways_environment() {
        use serre_resources::fixtures::{resources, tenant};
        // What Kubernetes injects into a pod for a Service named serre-gateway: not a
        // setting of the gateway, and no reason to refuse a run.
        // SAFETY: no other code of this crate's tests reads this variable.
        unsafe { std::env::set_var("SERRE_GATEWAY_PORT", "tcp://10.96.0.80:80") };
        let mut sandbox = serre_resources::Sandbox::new(
            "lab",
            serre_resources::SandboxSpec {
                tenant: "est".into(),
                purpose: "p".into(),
                owners: vec![],
                resources: resources(None),
                expires_at: chrono::Utc::now(),
                extra_egress_cidrs: vec![],
            },
        );
        sandbox.status = Some(serre_resources::SandboxStatus {
            admitted: Some(resources(None)),
            ..Default::default()
        });
        let mut t = tenant();
        t.allowed_registries = vec!["registry.example.fr/vendor".into()];
        let s = spec(&req(), "lab", "run-0123456789ab", "vendor-a");
        let issues = check_against(&s, "serre-lab", &sandbox, &t);
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn a_good_request_passes_and_builds_its_spec() {
        let r = req();
        assert!(validate(&r).is_empty());
        let s = spec(&r, "est--lab", "run-0123456789ab", "vendor-a");
        assert_eq!(s.token_secret.as_deref(), Some("run-0123456789ab-token"));
        assert_eq!(s.kind, RunKind::Inference);
        assert_eq!(s.functional_unit.unwrap().count, 1000);
        assert!(s.resources.gpu.is_none());
        assert_eq!(catalogue_phase(RunKind::FineTuning), "fine-tuning");
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut r = req();
        r.image = "bad image".into();
        r.timeout_seconds = 0;
        r.grants = vec!["g-1".into(), "g-1".into(), "../x".into()];
        r.functional_unit = Some(FunctionalUnitBody {
            name: " ".into(),
            count: 0,
        });
        let fields: Vec<String> = validate(&r).into_iter().map(|i| i.field).collect();
        for f in [
            "image",
            "timeoutSeconds",
            "grants[1]",
            "grants[2]",
            "functionalUnit.count",
            "functionalUnit.name",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing in {fields:?}");
        }
        let unknown = serde_json::from_value::<CreateRun>(serde_json::json!({
            "image": "x", "resources": {"cpu": "1", "memory": "1Gi"}, "kind": "mining",
            "timeoutSeconds": 1
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn names_are_fresh_dns_labels() {
        let a = new_name();
        assert_eq!(a.len(), 16);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(a, new_name());
    }
}
