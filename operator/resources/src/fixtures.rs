//! A tenant and sandbox resources for unit tests, shared by the operator's builders and
//! `serre-validation`. Always compiled rather than behind a feature: a feature enabled
//! only by dev-dependencies would build this crate, and every crate above it, twice
//! (once for `cargo build`, once for `cargo test`).

use crate::{
    Allowance, GpuRequest, MemberGroup, MemberRole, SandboxResources, TenantKind, TenantSpec,
};

pub fn tenant() -> TenantSpec {
    TenantSpec {
        display_name: "Est Ensemble".into(),
        kind: TenantKind::Ept,
        members: vec![
            MemberGroup {
                group: "ept-est-ensemble-admins".into(),
                role: MemberRole::Admin,
            },
            MemberGroup {
                group: "ept-est-ensemble-data".into(),
                role: MemberRole::Member,
            },
        ],
        allowance: Allowance {
            cpu: "16".into(),
            memory: "64Gi".into(),
            gpus: 2,
            storage: "1Ti".into(),
            sandboxes: 5,
        },
        allowed_registries: vec!["registry.metropolegrandparis.fr".into()],
        suspended: false,
        energy_budget_kwh: None,
    }
}

pub fn resources(gpu: Option<(&str, u32)>) -> SandboxResources {
    SandboxResources {
        cpu: "4".into(),
        memory: "16Gi".into(),
        gpu: gpu.map(|(n, c)| GpuRequest {
            count: c,
            resource_name: n.into(),
        }),
        storage: "50Gi".into(),
        max_pods: 8,
    }
}
