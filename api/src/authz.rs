//! Authorization as code: Cedar policies and schema from the policies directory, loaded
//! at start and swapped atomically on reload. Every handler asks [`Authorizer::decide`]
//! before acting; the decision names the policies that produced it (for the audit log).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{
    Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::identity::Principal;
use crate::tenants::Roles;

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("could not build the authorization request: {0}")]
    Request(String),
}

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

/// An authenticated caller and the roles derived from their groups.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub roles: Roles,
}

/// The outcome of one authorization question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the policies that decided (the permits that allowed, or the forbids that
    /// denied; empty for a default deny).
    pub policies: Vec<String>,
}

struct Bundle {
    policies: PolicySet,
    schema: Schema,
    ids: Vec<String>,
}

struct Types {
    user: EntityTypeName,
    tenant: EntityTypeName,
    sandbox: EntityTypeName,
    dataset: EntityTypeName,
    grant: EntityTypeName,
    solution: EntityTypeName,
    run: EntityTypeName,
    platform: EntityTypeName,
    actions: HashMap<Action, EntityUid>,
}

pub struct Authorizer {
    dir: PathBuf,
    bundle: ArcSwap<Bundle>,
    types: Types,
    cedar: cedar_policy::Authorizer,
}

fn type_name(s: &str) -> EntityTypeName {
    // Constant, valid names: parsing cannot fail.
    EntityTypeName::from_str(s).unwrap_or_else(|e| panic!("entity type {s}: {e}"))
}

impl Authorizer {
    /// Load and validate the policies and schema in `dir`.
    pub fn load(dir: &Path) -> Result<Self, AuthzError> {
        let bundle = load_bundle(dir)?;
        let action_type = type_name("Serre::Action");
        let actions = Action::ALL
            .iter()
            .map(|a| {
                (
                    *a,
                    EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.name())),
                )
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            bundle: ArcSwap::from_pointee(bundle),
            types: Types {
                user: type_name("Serre::User"),
                tenant: type_name("Serre::Tenant"),
                sandbox: type_name("Serre::Sandbox"),
                dataset: type_name("Serre::Dataset"),
                grant: type_name("Serre::Grant"),
                solution: type_name("Serre::Solution"),
                run: type_name("Serre::Run"),
                platform: type_name("Serre::Platform"),
                actions,
            },
            cedar: cedar_policy::Authorizer::new(),
        })
    }

    /// Load the directory again; on any error the current policies stay in force.
    /// Returns the ids of the policies now in force.
    pub fn reload(&self) -> Result<Vec<String>, AuthzError> {
        let bundle = load_bundle(&self.dir)?;
        let ids = bundle.ids.clone();
        self.bundle.store(Arc::new(bundle));
        Ok(ids)
    }

    pub fn policy_ids(&self) -> Vec<String> {
        self.bundle.load().ids.clone()
    }

    fn uid(&self, t: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
    }

    fn tenant_set<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a String>,
    ) -> RestrictedExpression {
        RestrictedExpression::new_set(
            tenants
                .into_iter()
                .map(|t| RestrictedExpression::new_entity_uid(self.uid(&self.types.tenant, t))),
        )
    }

    /// May `caller` do `action` on `resource`?
    fn tenant_ref(&self, tenant: &str) -> RestrictedExpression {
        RestrictedExpression::new_entity_uid(self.uid(&self.types.tenant, tenant))
    }

    pub fn decide(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource<'_>,
    ) -> Result<Decision, AuthzError> {
        let err = |e: &dyn std::fmt::Display| AuthzError::Request(e.to_string());
        let principal_uid = self.uid(&self.types.user, &caller.principal.subject);
        let principal = Entity::new(
            principal_uid.clone(),
            HashMap::from([
                (
                    "metropoleAdmin".to_owned(),
                    RestrictedExpression::new_bool(caller.roles.metropole_admin),
                ),
                (
                    "adminOf".to_owned(),
                    self.tenant_set(&caller.roles.admin_of),
                ),
                (
                    "memberOf".to_owned(),
                    self.tenant_set(&caller.roles.member_of),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| err(&e))?;
        let mut entities = vec![principal];
        let resource_uid =
            match resource {
                Resource::Platform => self.uid(&self.types.platform, "serre"),
                Resource::Tenant(t) => self.uid(&self.types.tenant, t),
                Resource::Sandbox {
                    name,
                    tenant,
                    created_by,
                    vendors,
                } => {
                    let uid = self.uid(&self.types.sandbox, name);
                    let vendors = RestrictedExpression::new_set(vendors.iter().map(|v| {
                        RestrictedExpression::new_entity_uid(self.uid(&self.types.user, v))
                    }));
                    entities.push(
                        Entity::new(
                            uid.clone(),
                            HashMap::from([
                                (
                                    "tenant".to_owned(),
                                    RestrictedExpression::new_entity_uid(
                                        self.uid(&self.types.tenant, tenant),
                                    ),
                                ),
                                (
                                    "createdBy".to_owned(),
                                    RestrictedExpression::new_entity_uid(
                                        self.uid(&self.types.user, created_by),
                                    ),
                                ),
                                ("vendors".to_owned(), vendors),
                            ]),
                            HashSet::new(),
                        )
                        .map_err(|e| err(&e))?,
                    );
                    uid
                }
                Resource::Dataset {
                    id,
                    tenant,
                    classification,
                } => {
                    let uid = self.uid(&self.types.dataset, id);
                    entities.push(
                        Entity::new(
                            uid.clone(),
                            HashMap::from([
                                ("tenant".to_owned(), self.tenant_ref(tenant)),
                                (
                                    "classification".to_owned(),
                                    RestrictedExpression::new_string((*classification).to_owned()),
                                ),
                            ]),
                            HashSet::new(),
                        )
                        .map_err(|e| err(&e))?,
                    );
                    uid
                }
                Resource::Grant {
                    id,
                    tenant,
                    readers,
                    to_sandbox,
                } => {
                    let uid = self.uid(&self.types.grant, id);
                    let readers = RestrictedExpression::new_set(readers.iter().map(|v| {
                        RestrictedExpression::new_entity_uid(self.uid(&self.types.user, v))
                    }));
                    entities.push(
                        Entity::new(
                            uid.clone(),
                            HashMap::from([
                                ("tenant".to_owned(), self.tenant_ref(tenant)),
                                ("readers".to_owned(), readers),
                                (
                                    "toSandbox".to_owned(),
                                    RestrictedExpression::new_bool(*to_sandbox),
                                ),
                            ]),
                            HashSet::new(),
                        )
                        .map_err(|e| err(&e))?,
                    );
                    uid
                }
                Resource::Solution {
                    id,
                    status,
                    proposed_by,
                } => {
                    let uid = self.uid(&self.types.solution, id);
                    let proposers = RestrictedExpression::new_set(proposed_by.iter().map(|v| {
                        RestrictedExpression::new_entity_uid(self.uid(&self.types.user, v))
                    }));
                    entities.push(
                        Entity::new(
                            uid.clone(),
                            HashMap::from([
                                (
                                    "status".to_owned(),
                                    RestrictedExpression::new_string((*status).to_owned()),
                                ),
                                ("proposers".to_owned(), proposers),
                            ]),
                            HashSet::new(),
                        )
                        .map_err(|e| err(&e))?,
                    );
                    uid
                }
                Resource::Run {
                    id,
                    tenant,
                    vendors,
                    requested_by,
                } => {
                    let uid = self.uid(&self.types.run, id);
                    let vendors = RestrictedExpression::new_set(vendors.iter().map(|v| {
                        RestrictedExpression::new_entity_uid(self.uid(&self.types.user, v))
                    }));
                    entities.push(
                        Entity::new(
                            uid.clone(),
                            HashMap::from([
                                ("tenant".to_owned(), self.tenant_ref(tenant)),
                                ("vendors".to_owned(), vendors),
                                (
                                    "requestedBy".to_owned(),
                                    RestrictedExpression::new_entity_uid(
                                        self.uid(&self.types.user, requested_by),
                                    ),
                                ),
                            ]),
                            HashSet::new(),
                        )
                        .map_err(|e| err(&e))?,
                    );
                    uid
                }
            };
        let action_uid = self
            .types
            .actions
            .get(&action)
            .cloned()
            .ok_or_else(|| AuthzError::Request(format!("unknown action {}", action.name())))?;
        let bundle = self.bundle.load();
        let request = Request::new(
            principal_uid,
            action_uid,
            resource_uid,
            Context::empty(),
            Some(&bundle.schema),
        )
        .map_err(|e| err(&e))?;
        let entities = Entities::from_entities(entities, None).map_err(|e| err(&e))?;
        let response = self
            .cedar
            .is_authorized(&request, &bundle.policies, &entities);
        for e in response.diagnostics().errors() {
            tracing::warn!(action = action.name(), error = %e, "policy evaluation error");
        }
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(PolicyId::to_string)
            .collect();
        policies.sort();
        Ok(Decision {
            allowed: response.decision() == CedarDecision::Allow,
            policies,
        })
    }
}

fn read(path: &Path) -> Result<String, AuthzError> {
    std::fs::read_to_string(path).map_err(|source| AuthzError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn load_bundle(dir: &Path) -> Result<Bundle, AuthzError> {
    let entries = std::fs::read_dir(dir).map_err(|source| AuthzError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut schema_text = String::new();
    let mut schema_files = 0;
    let mut policies = PolicySet::new();
    let mut ids = Vec::new();
    for path in &files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => {
                schema_text.push_str(&read(path)?);
                schema_text.push('\n');
                schema_files += 1;
            }
            Some("cedar") => {
                let text = read(path)?;
                let parsed = PolicySet::from_str(&text).map_err(|e| AuthzError::Parse {
                    path: path.display().to_string(),
                    message: format!("{:?}", miette_text(&e)),
                })?;
                for policy in parsed.policies() {
                    let id = policy.annotation("id").ok_or_else(|| AuthzError::Parse {
                        path: path.display().to_string(),
                        message: format!(
                            "a policy has no @id(\"…\") annotation: {}",
                            first_line(&policy.to_string())
                        ),
                    })?;
                    policies
                        .add(policy.new_id(PolicyId::new(id)))
                        .map_err(|e| AuthzError::Parse {
                            path: path.display().to_string(),
                            message: format!("policy {id:?}: {e}"),
                        })?;
                    ids.push(id.to_owned());
                }
                if parsed.templates().next().is_some() {
                    return Err(AuthzError::Parse {
                        path: path.display().to_string(),
                        message: "policy templates are not supported".into(),
                    });
                }
            }
            _ => {}
        }
    }
    if schema_files == 0 {
        return Err(AuthzError::Invalid(format!(
            "{}: no *.cedarschema file",
            dir.display()
        )));
    }
    if ids.is_empty() {
        return Err(AuthzError::Invalid(format!(
            "{}: no policy (*.cedar)",
            dir.display()
        )));
    }
    let (schema, _warnings) =
        Schema::from_cedarschema_str(&schema_text).map_err(|e| AuthzError::Parse {
            path: dir.display().to_string(),
            message: format!("schema: {}", miette_text(&e)),
        })?;
    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !result.validation_passed() {
        let problems: Vec<String> = result.validation_errors().map(|e| miette_text(e)).collect();
        return Err(AuthzError::Invalid(format!(
            "policies do not match the schema: {}",
            problems.join("; ")
        )));
    }
    ids.sort();
    Ok(Bundle {
        policies,
        schema,
        ids,
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('@'))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// An error with its help text, on one line.
fn miette_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
