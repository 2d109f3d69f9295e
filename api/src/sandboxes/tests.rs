//! Unit tests of request validation, the self-service policy and views.
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
