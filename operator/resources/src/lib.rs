//! Serre's custom resources. Group `serre.metropolegrandparis.fr`, version `v1alpha1`.
//! The CRD YAML in `charts/serre/crds/` is generated from these types
//! (`serre-operator manifests`).
//!
//! Shared by the operator and the gateway: the types, their [`quantity`] strings, their
//! conditions and the labels the operator puts on what it creates; [`fixtures`] for unit
//! tests. Nothing here talks to the API server.

mod condition;
pub mod fixtures;
pub mod quantity;
mod sandbox;
mod tenant;
mod trial_run;

pub use condition::{Condition, ConditionStatus, set_condition};
pub use sandbox::{
    GpuRequest, RemovedData, Sandbox, SandboxPhase, SandboxResources, SandboxSpec, SandboxStatus,
    StorageStatus, StorageUsed,
};
pub use tenant::{
    Allowance, EnergyBudgetStatus, MemberGroup, MemberRole, Reserved, Tenant, TenantKind,
    TenantSpec, TenantStatus,
};
pub use trial_run::{
    FunctionalUnit, RunKind, RunPhase, RunResources, RunUsageSummary, TrialRun, TrialRunSpec,
    TrialRunStatus,
};

/// API group of every Serre resource.
pub const GROUP: &str = "serre.metropolegrandparis.fr";
/// Label carried by every object the operator creates for a sandbox.
pub const LABEL_SANDBOX: &str = "serre.metropolegrandparis.fr/sandbox";
/// Label naming the TrialRun a Job and its pods belong to.
pub const LABEL_RUN: &str = "serre.metropolegrandparis.fr/run";
/// Label naming the tenant a sandbox's objects belong to.
pub const LABEL_TENANT: &str = "serre.metropolegrandparis.fr/tenant";
/// Standard label marking objects managed by the operator (used to select its caches).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "serre-operator";
/// Annotation holding the hash of the desired state last applied to a child object.
pub const ANNOTATION_HASH: &str = "serre.metropolegrandparis.fr/applied-hash";
