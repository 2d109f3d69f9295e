//! Validation of a Sandbox spec that the API server cannot do itself (1.20 drops
//! CEL rules; quantities are strings). Pure: returns every problem at once.

use std::fmt;

use chrono::{DateTime, Utc};

use serre_resources::quantity::Quantity;
use serre_resources::{SandboxResources, SandboxSpec};

use crate::config::{BuildConfig, namespace_name};

/// One problem with a field, phrased for the person who wrote the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub(crate) fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Join errors into one human-readable message.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Check a sandbox's name and spec. `created` is the object's creation time.
pub fn validate_sandbox(
    name: &str,
    spec: &SandboxSpec,
    created: DateTime<Utc>,
    config: &BuildConfig,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let ns = namespace_name(config, name);
    if ns.len() > 63 || !is_dns_label(name) {
        errors.push(err(
            "metadata.name",
            format!(
                "must be lowercase letters, digits and '-', and at most {} characters (its namespace is {ns:?})",
                63usize.saturating_sub(config.namespace_prefix.len())
            ),
        ));
    }
    if spec.tenant.trim().is_empty() {
        errors.push(err("spec.tenant", "must name a Tenant"));
    }
    if spec.purpose.trim().is_empty() {
        errors.push(err(
            "spec.purpose",
            "must state why the sandbox exists (GDPR purpose limitation)",
        ));
    } else if spec.purpose.len() > 2000 {
        errors.push(err("spec.purpose", "must be at most 2000 characters"));
    }
    errors.extend(validate_resources(&spec.resources, config));
    if spec.expires_at <= created {
        errors.push(err(
            "spec.expiresAt",
            "must be after the sandbox's creation",
        ));
    } else {
        let lifetime = (spec.expires_at - created).to_std().unwrap_or_default();
        if lifetime > config.max_lifetime {
            errors.push(err(
                "spec.expiresAt",
                format!(
                    "is {} after creation, beyond the maximum of {}",
                    human(lifetime),
                    human(config.max_lifetime)
                ),
            ));
        }
    }
    for (i, cidr) in spec.extra_egress_cidrs.iter().enumerate() {
        if let Err(e) = config.egress.check(cidr) {
            errors.push(err(&format!("spec.extraEgressCidrs[{i}]"), e.message));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Check quantities and the GPU resource name.
pub fn validate_resources(r: &SandboxResources, config: &BuildConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, value, must_be_positive) in [
        ("spec.resources.cpu", &r.cpu, true),
        ("spec.resources.memory", &r.memory, true),
        ("spec.resources.storage", &r.storage, false),
    ] {
        match value.parse::<Quantity>() {
            Ok(q) if must_be_positive && q == Quantity::ZERO => {
                errors.push(err(field, "must be more than zero"))
            }
            Ok(_) => {}
            Err(e) => errors.push(err(field, e.to_string())),
        }
    }
    if r.max_pods == 0 {
        errors.push(err("spec.resources.maxPods", "must be at least 1"));
    }
    if let Some(gpu) = &r.gpu
        && !config.gpu_resources.iter().any(|g| g == &gpu.resource_name)
    {
        errors.push(err(
            "spec.resources.gpu.resourceName",
            format!(
                "{:?} is not a GPU resource this cluster offers (offered: {})",
                gpu.resource_name,
                config.gpu_resources.join(", ")
            ),
        ));
    }
    errors
}

/// `90d`, `36h`, `90d 3h 5m` — days rather than humantime's 30.44-day months.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (d, 0, 0) => format!("{d}d"),
        (d, h, m) => format!("{d}d {h}h {m}m"),
    }
}

/// A DNS label as Kubernetes names need it: lowercase letters, digits and `-`, not at
/// either end (the length is checked by callers, against their own limit).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_build_config;
    use chrono::{Duration, TimeZone};
    use serre_resources::fixtures::resources;

    fn spec(expires_in_days: i64) -> (SandboxSpec, DateTime<Utc>) {
        let created = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let spec = SandboxSpec {
            tenant: "est-ensemble".into(),
            purpose: "Forecast bus ridership".into(),
            owners: vec![],
            resources: resources(None),
            expires_at: created + Duration::days(expires_in_days),
            extra_egress_cidrs: vec!["192.0.2.0/24".into()],
        };
        (spec, created)
    }

    #[test]
    fn a_good_spec_passes() {
        let (s, created) = spec(30);
        assert_eq!(
            validate_sandbox("traffic", &s, created, &test_build_config()),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let (mut s, created) = spec(91);
        s.purpose = "  ".into();
        s.resources.cpu = "lots".into();
        s.resources.memory = "0".into();
        s.resources.max_pods = 0;
        s.resources.gpu = Some(serre_resources::GpuRequest {
            count: 1,
            resource_name: "amd.com/gpu".into(),
        });
        s.extra_egress_cidrs = vec!["10.0.0.0/8:443".into(), "bogus".into()];
        let errors = validate_sandbox("Bad_Name", &s, created, &test_build_config()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.purpose",
                "spec.resources.cpu",
                "spec.resources.memory",
                "spec.resources.maxPods",
                "spec.resources.gpu.resourceName",
                "spec.expiresAt",
                "spec.extraEgressCidrs[0]",
                "spec.extraEgressCidrs[1]",
            ]
        );
        let text = describe(&errors);
        assert!(
            text.contains("is 91d after creation, beyond the maximum of 90d"),
            "{text}"
        );
        assert!(text.contains("amd.com/gpu"), "{text}");
    }

    #[test]
    fn extra_egress_refuses_what_the_gateway_refuses_with_its_message() {
        let (mut s, created) = spec(10);
        s.extra_egress_cidrs = vec![
            "192.0.2.0/24".into(),
            "0.0.0.0/0".into(),
            "169.254.169.254/32".into(),
            "10.96.0.10/32".into(),
        ];
        let config = test_build_config();
        let errors = validate_sandbox("x", &s, created, &config).unwrap_err();
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        let message = |c: &str| config.egress.check(c).unwrap_err().message;
        assert_eq!(
            got,
            [
                ("spec.extraEgressCidrs[1]", message("0.0.0.0/0").as_str()),
                (
                    "spec.extraEgressCidrs[2]",
                    message("169.254.169.254/32").as_str()
                ),
                (
                    "spec.extraEgressCidrs[3]",
                    message("10.96.0.10/32").as_str()
                ),
            ]
        );
    }

    #[test]
    fn expiry_must_follow_creation_and_names_must_fit_a_namespace() {
        let (s, created) = spec(0);
        let e = validate_sandbox("x", &s, created, &test_build_config()).unwrap_err();
        assert_eq!(e[0].field, "spec.expiresAt");
        let (s, created) = spec(10);
        let long = "a".repeat(58);
        assert!(validate_sandbox(&long, &s, created, &test_build_config()).is_err());
        assert!(validate_sandbox(&"a".repeat(57), &s, created, &test_build_config()).is_ok());
    }
}
