//! Validation of a TrialRun spec against its sandbox, its tenant and the operator
//! configuration. Pure: the operator calls it before building the Job, and the gateway
//! calls the same function before creating a run, so both refuse the same specs with
//! the same messages. Returns every problem at once.

use serre_resources::quantity::Quantity;
use serre_resources::{Sandbox, TenantSpec, TrialRunSpec};

use crate::config::{BuildConfig, namespace_name};
pub use crate::image::registry_allowed;
use crate::validate::{FieldError, err};

/// Most grants one run may fetch.
pub const MAX_GRANTS: usize = 16;
/// Longest timeout a run may ask for (7 days), in seconds.
pub const MAX_TIMEOUT_SECONDS: u32 = 604_800;

/// Check a run's spec. `namespace` is the run's own namespace; `sandbox` is the
/// Sandbox named by `spec.sandbox` (the caller checks that it exists).
pub fn validate_run(
    spec: &TrialRunSpec,
    namespace: &str,
    sandbox: &Sandbox,
    tenant: &TenantSpec,
    config: &BuildConfig,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();

    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or(&spec.sandbox);
    let expected = namespace_name(config, sandbox_name);
    if namespace != expected {
        errors.push(err(
            "metadata.namespace",
            format!(
                "must be the namespace of sandbox {sandbox_name:?}, {expected:?} (not {namespace:?})"
            ),
        ));
    }

    if let Err(message) = registry_allowed(&spec.image, &tenant.allowed_registries) {
        errors.push(err("spec.image", message));
    }

    // Resources: within what the sandbox was admitted with (what its quota enforces).
    let limits = sandbox
        .status
        .as_ref()
        .and_then(|s| s.admitted.as_ref())
        .unwrap_or(&sandbox.spec.resources);
    for (field, value, bound) in [
        ("spec.resources.cpu", &spec.resources.cpu, &limits.cpu),
        (
            "spec.resources.memory",
            &spec.resources.memory,
            &limits.memory,
        ),
    ] {
        match value.parse::<Quantity>() {
            Ok(q) if q == Quantity::ZERO => errors.push(err(field, "must be more than zero")),
            Ok(q) => {
                if let Ok(max) = bound.parse::<Quantity>()
                    && q > max
                {
                    errors.push(err(
                        field,
                        format!("{value} is more than the sandbox's {bound}"),
                    ));
                }
            }
            Err(e) => errors.push(err(field, e.to_string())),
        }
    }
    if let Some(gpu) = spec.resources.gpu.as_ref().filter(|g| g.count > 0) {
        match Sandbox::gpu(limits) {
            None => errors.push(err(
                "spec.resources.gpu",
                "the sandbox has no GPU: ask for one on the sandbox first",
            )),
            Some((name, count)) => {
                if gpu.resource_name != name {
                    errors.push(err(
                        "spec.resources.gpu.resourceName",
                        format!(
                            "{:?} is not the sandbox's GPU resource {name:?}",
                            gpu.resource_name
                        ),
                    ));
                }
                if gpu.count > count {
                    errors.push(err(
                        "spec.resources.gpu.count",
                        format!("{} is more than the sandbox's {count}", gpu.count),
                    ));
                }
            }
        }
    }

    // Grants: fetched with the run's token, so one is needed.
    if !spec.grants.is_empty()
        && spec
            .token_secret
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    {
        errors.push(err(
            "spec.tokenSecret",
            "is required when the run has grants (the init step fetches them with it)",
        ));
    }
    if spec.grants.len() > MAX_GRANTS {
        errors.push(err(
            "spec.grants",
            format!(
                "has {} grants, more than the maximum of {MAX_GRANTS}",
                spec.grants.len()
            ),
        ));
    }
    for (i, id) in spec.grants.iter().enumerate() {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            errors.push(err(
                &format!("spec.grants[{i}]"),
                format!("{id:?} is not a grant id (ASCII letters, digits and '-', not empty)"),
            ));
        }
    }

    if !(1..=MAX_TIMEOUT_SECONDS).contains(&spec.timeout_seconds) {
        errors.push(err(
            "spec.timeoutSeconds",
            format!(
                "must be between 1 and {MAX_TIMEOUT_SECONDS} (7 days), not {}",
                spec.timeout_seconds
            ),
        ));
    }
    if let Some(unit) = &spec.functional_unit
        && unit.count < 1
    {
        errors.push(err("spec.functionalUnit.count", "must be at least 1"));
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_build_config;
    use crate::validate::describe;
    use serre_resources::fixtures::{resources, tenant};
    use serre_resources::{
        FunctionalUnit, GpuRequest, RunKind, RunResources, SandboxSpec, SandboxStatus,
    };

    fn sandbox(gpu: Option<(&str, u32)>) -> Sandbox {
        let mut s = Sandbox::new(
            "traffic-forecast",
            SandboxSpec {
                tenant: "est-ensemble".into(),
                purpose: "Forecast bus ridership".into(),
                owners: vec![],
                resources: resources(gpu),
                expires_at: chrono::Utc::now(),
                extra_egress_cidrs: vec![],
            },
        );
        s.status = Some(SandboxStatus {
            admitted: Some(resources(gpu)),
            ..SandboxStatus::default()
        });
        s
    }

    fn spec() -> TrialRunSpec {
        TrialRunSpec {
            sandbox: "traffic-forecast".into(),
            image: "registry.metropolegrandparis.fr/vendor/model:1.2".into(),
            command: vec!["python".into(), "run.py".into()],
            args: vec![],
            resources: RunResources {
                cpu: "2".into(),
                memory: "8Gi".into(),
                gpu: None,
            },
            grants: vec!["g-1".into()],
            solution: None,
            kind: RunKind::Inference,
            timeout_seconds: 3600,
            functional_unit: Some(FunctionalUnit {
                name: "inference".into(),
                count: 10_000,
            }),
            token_secret: Some("run-token".into()),
            requested_by: "alice".into(),
            cancelled: false,
        }
    }

    const NS: &str = "serre-traffic-forecast";

    fn fields(s: &TrialRunSpec, sb: &Sandbox, ns: &str) -> Vec<String> {
        validate_run(s, ns, sb, &tenant(), &test_build_config())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_good_spec_passes() {
        let t = tenant();
        let c = test_build_config();
        assert_eq!(validate_run(&spec(), NS, &sandbox(None), &t, &c), Ok(()));
    }

    #[test]
    fn the_run_lives_in_its_sandbox_namespace() {
        let e = validate_run(
            &spec(),
            "default",
            &sandbox(None),
            &tenant(),
            &test_build_config(),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "metadata.namespace");
        assert!(e[0].message.contains("serre-traffic-forecast"), "{e:?}");
    }

    #[test]
    fn the_image_is_checked_by_the_shared_parser() {
        // registry_allowed is image::registry_allowed (tested there); a traversal in the
        // path, accepted before, is refused with the field.
        let mut s = spec();
        s.image = "registry.metropolegrandparis.fr/../x:1".into();
        let e = validate_run(&s, NS, &sandbox(None), &tenant(), &test_build_config()).unwrap_err();
        assert_eq!(e[0].field, "spec.image");
        assert!(
            e[0].message.contains("not a valid image reference"),
            "{e:?}"
        );
        s.image = "registry.metropolegrandparis.fr.evil.com/x:1".into();
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.image"]);
    }

    #[test]
    fn an_empty_allowlist_refuses_every_image_and_says_so() {
        let e = registry_allowed("registry.example.fr/team/model:1", &[]).unwrap_err();
        assert!(e.contains("allows no registry"), "{e}");
        let mut s = spec();
        s.image = "docker.io/library/python:3".into();
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.image"]);
    }

    #[test]
    fn resources_must_parse_be_positive_and_fit_the_sandbox() {
        let mut s = spec();
        s.resources.cpu = "lots".into();
        s.resources.memory = "0".into();
        assert_eq!(
            fields(&s, &sandbox(None), NS),
            ["spec.resources.cpu", "spec.resources.memory"]
        );
        s.resources.cpu = "4500m".into();
        s.resources.memory = "17Gi".into();
        let e = validate_run(&s, NS, &sandbox(None), &tenant(), &test_build_config()).unwrap_err();
        assert_eq!(
            describe(&e).matches("is more than the sandbox's").count(),
            2
        );
        // Exactly the sandbox's resources is fine.
        s.resources.cpu = "4".into();
        s.resources.memory = "16Gi".into();
        assert!(fields(&s, &sandbox(None), NS).is_empty());
    }

    #[test]
    fn admitted_resources_bound_the_run_rather_than_the_requested_ones() {
        let mut sb = sandbox(None);
        sb.spec.resources.cpu = "32".into();
        let mut s = spec();
        s.resources.cpu = "8".into();
        assert_eq!(fields(&s, &sb, NS), ["spec.resources.cpu"]);
        sb.status = None;
        assert!(fields(&s, &sb, NS).is_empty());
    }

    #[test]
    fn gpus_must_match_the_sandbox() {
        let mut s = spec();
        s.resources.gpu = Some(GpuRequest {
            count: 1,
            resource_name: "nvidia.com/gpu".into(),
        });
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.resources.gpu"]);
        assert!(fields(&s, &sandbox(Some(("nvidia.com/gpu", 1))), NS).is_empty());
        s.resources.gpu = Some(GpuRequest {
            count: 2,
            resource_name: "nvidia.com/mig-1g.10gb".into(),
        });
        assert_eq!(
            fields(&s, &sandbox(Some(("nvidia.com/gpu", 1))), NS),
            [
                "spec.resources.gpu.resourceName",
                "spec.resources.gpu.count"
            ]
        );
    }

    #[test]
    fn grants_need_a_token_valid_ids_and_a_bound() {
        let mut s = spec();
        s.token_secret = None;
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.tokenSecret"]);
        s.grants.clear();
        assert!(fields(&s, &sandbox(None), NS).is_empty());
        s.token_secret = Some("run-token".into());
        s.grants = vec!["ok-1".into(), "".into(), "../x".into(), "é".into()];
        assert_eq!(
            fields(&s, &sandbox(None), NS),
            ["spec.grants[1]", "spec.grants[2]", "spec.grants[3]"]
        );
        s.grants = (0..17).map(|i| format!("g{i}")).collect();
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.grants"]);
        s.grants.pop();
        assert!(fields(&s, &sandbox(None), NS).is_empty());
    }

    #[test]
    fn timeout_and_functional_unit_are_bounded() {
        let mut s = spec();
        s.timeout_seconds = 0;
        s.functional_unit.as_mut().unwrap().count = 0;
        assert_eq!(
            fields(&s, &sandbox(None), NS),
            ["spec.timeoutSeconds", "spec.functionalUnit.count"]
        );
        s.timeout_seconds = MAX_TIMEOUT_SECONDS + 1;
        s.functional_unit = None;
        assert_eq!(fields(&s, &sandbox(None), NS), ["spec.timeoutSeconds"]);
        s.timeout_seconds = MAX_TIMEOUT_SECONDS;
        assert!(fields(&s, &sandbox(None), NS).is_empty());
    }
}
