//! What handlers ask permission for: the actions and the resources they are about.

/// Everything a handler may ask permission for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    TenantRead,
    SandboxCreate,
    SandboxList,
    TenantPolicyRead,
    TenantPolicyWrite,
    SandboxRead,
    SandboxDelete,
    SandboxApprove,
    SandboxReject,
    SandboxMembersAdd,
    SandboxMembersRemove,
    AuditRead,
    PolicyReload,
    DatasetCreate,
    DatasetList,
    DatasetRead,
    DatasetVersionCreate,
    DatasetVersionDelete,
    GrantCreate,
    GrantRead,
    GrantRevoke,
    GrantData,
    CatalogueList,
    CatalogueCreate,
    CataloguePropose,
    CatalogueExport,
    CatalogueRead,
    CatalogueUpdate,
    CatalogueReview,
    CatalogueResultsAttach,
    RunCreate,
    RunList,
    RunRead,
    RunCancel,
    RunQuality,
    UsageRead,
}

impl Action {
    pub const ALL: [Action; 36] = [
        Action::TenantRead,
        Action::SandboxCreate,
        Action::SandboxList,
        Action::TenantPolicyRead,
        Action::TenantPolicyWrite,
        Action::SandboxRead,
        Action::SandboxDelete,
        Action::SandboxApprove,
        Action::SandboxReject,
        Action::SandboxMembersAdd,
        Action::SandboxMembersRemove,
        Action::AuditRead,
        Action::PolicyReload,
        Action::DatasetCreate,
        Action::DatasetList,
        Action::DatasetRead,
        Action::DatasetVersionCreate,
        Action::DatasetVersionDelete,
        Action::GrantCreate,
        Action::GrantRead,
        Action::GrantRevoke,
        Action::GrantData,
        Action::CatalogueList,
        Action::CatalogueCreate,
        Action::CataloguePropose,
        Action::CatalogueExport,
        Action::CatalogueRead,
        Action::CatalogueUpdate,
        Action::CatalogueReview,
        Action::CatalogueResultsAttach,
        Action::RunCreate,
        Action::RunList,
        Action::RunRead,
        Action::RunCancel,
        Action::RunQuality,
        Action::UsageRead,
    ];

    /// The Cedar action id, also the audit log's action name.
    pub fn name(self) -> &'static str {
        match self {
            Action::TenantRead => "tenant.read",
            Action::SandboxCreate => "sandbox.create",
            Action::SandboxList => "sandbox.list",
            Action::TenantPolicyRead => "tenant.policy.read",
            Action::TenantPolicyWrite => "tenant.policy.write",
            Action::SandboxRead => "sandbox.read",
            Action::SandboxDelete => "sandbox.delete",
            Action::SandboxApprove => "sandbox.approve",
            Action::SandboxReject => "sandbox.reject",
            Action::SandboxMembersAdd => "sandbox.members.add",
            Action::SandboxMembersRemove => "sandbox.members.remove",
            Action::AuditRead => "audit.read",
            Action::PolicyReload => "policy.reload",
            Action::DatasetCreate => "dataset.create",
            Action::DatasetList => "dataset.list",
            Action::DatasetRead => "dataset.read",
            Action::DatasetVersionCreate => "dataset.version.create",
            Action::DatasetVersionDelete => "dataset.version.delete",
            Action::GrantCreate => "grant.create",
            Action::GrantRead => "grant.read",
            Action::GrantRevoke => "grant.revoke",
            Action::GrantData => "grant.data",
            Action::CatalogueList => "catalogue.list",
            Action::CatalogueCreate => "catalogue.create",
            Action::CataloguePropose => "catalogue.propose",
            Action::CatalogueExport => "catalogue.export",
            Action::CatalogueRead => "catalogue.read",
            Action::CatalogueUpdate => "catalogue.update",
            Action::CatalogueReview => "catalogue.review",
            Action::CatalogueResultsAttach => "catalogue.results.attach",
            Action::RunCreate => "run.create",
            Action::RunList => "run.list",
            Action::RunRead => "run.read",
            Action::RunCancel => "run.cancel",
            Action::RunQuality => "run.quality",
            Action::UsageRead => "usage.read",
        }
    }
}

/// What an action is about.
#[derive(Clone, Debug)]
pub enum Resource<'a> {
    Platform,
    Tenant(&'a str),
    Sandbox {
        name: &'a str,
        tenant: &'a str,
        created_by: &'a str,
        vendors: &'a [String],
    },
    Dataset {
        id: &'a str,
        tenant: &'a str,
        classification: &'a str,
    },
    Grant {
        id: &'a str,
        tenant: &'a str,
        /// Principals the grant names (its vendor, or the vendors of its sandbox).
        readers: &'a [String],
        /// Granted to a sandbox (its tenant's members may read the view too).
        to_sandbox: bool,
    },
    /// An entry of the catalogue of AI solutions (not a tenant's: the Métropole's).
    Solution {
        id: &'a str,
        /// proposed, published or rejected.
        status: &'a str,
        /// The vendor principal who proposed it (none when a Métropole admin created it).
        proposed_by: Option<&'a str>,
    },
    /// A trial run in a sandbox.
    Run {
        id: &'a str,
        tenant: &'a str,
        /// Vendor principals of the run's sandbox.
        vendors: &'a [String],
        requested_by: &'a str,
    },
}

impl Resource<'_> {
    /// `Type::"id"` form for the audit log.
    pub fn describe(&self) -> String {
        match self {
            Resource::Platform => "Platform::\"serre\"".into(),
            Resource::Tenant(t) => format!("Tenant::{t:?}"),
            Resource::Sandbox { name, .. } => format!("Sandbox::{name:?}"),
            Resource::Dataset { id, .. } => format!("Dataset::{id:?}"),
            Resource::Grant { id, .. } => format!("Grant::{id:?}"),
            Resource::Solution { id, .. } => format!("Solution::{id:?}"),
            Resource::Run { id, .. } => format!("Run::{id:?}"),
        }
    }

    /// The tenant the resource belongs to (for audit scoping).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Resource::Platform | Resource::Solution { .. } => None,
            Resource::Tenant(t) => Some(t),
            Resource::Sandbox { tenant, .. }
            | Resource::Dataset { tenant, .. }
            | Resource::Grant { tenant, .. }
            | Resource::Run { tenant, .. } => Some(tenant),
        }
    }
}
