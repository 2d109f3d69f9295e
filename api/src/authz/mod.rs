//! Authorization as code: Cedar policies and schema from the policies directory, loaded
//! at start and swapped atomically on reload. Every handler asks [`Authorizer::decide`]
//! before acting; the decision names the policies that produced it (for the audit log).
//! The actions and resources are in `action`, the loading of the directory in `bundle`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{
    Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, Request, RestrictedExpression,
};

use crate::identity::Principal;
use crate::tenants::Roles;

mod action;
mod bundle;

pub use action::{Action, Resource};
use bundle::{Bundle, load_bundle};

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
        RestrictedExpression::new_set(tenants.into_iter().map(|t| self.tenant_ref(t)))
    }

    fn tenant_ref(&self, tenant: &str) -> RestrictedExpression {
        RestrictedExpression::new_entity_uid(self.uid(&self.types.tenant, tenant))
    }

    fn user_ref(&self, subject: &str) -> RestrictedExpression {
        RestrictedExpression::new_entity_uid(self.uid(&self.types.user, subject))
    }

    fn user_set<'a>(&self, subjects: impl IntoIterator<Item = &'a str>) -> RestrictedExpression {
        RestrictedExpression::new_set(subjects.into_iter().map(|s| self.user_ref(s)))
    }

    /// The resource's uid, and its entity when it has attributes the policies read.
    fn resource_entity(
        &self,
        resource: &Resource<'_>,
    ) -> Result<(EntityUid, Option<Entity>), AuthzError> {
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let (uid, attrs) = match resource {
            Resource::Platform => return Ok((self.uid(&self.types.platform, "serre"), None)),
            Resource::Tenant(t) => return Ok((self.uid(&self.types.tenant, t), None)),
            Resource::Sandbox {
                name,
                tenant,
                created_by,
                vendors,
            } => (
                self.uid(&self.types.sandbox, name),
                vec![
                    ("tenant", self.tenant_ref(tenant)),
                    ("createdBy", self.user_ref(created_by)),
                    ("vendors", self.user_set(vendors.iter().map(String::as_str))),
                ],
            ),
            Resource::Dataset {
                id,
                tenant,
                classification,
            } => (
                self.uid(&self.types.dataset, id),
                vec![
                    ("tenant", self.tenant_ref(tenant)),
                    ("classification", string(classification)),
                ],
            ),
            Resource::Grant {
                id,
                tenant,
                readers,
                to_sandbox,
            } => (
                self.uid(&self.types.grant, id),
                vec![
                    ("tenant", self.tenant_ref(tenant)),
                    ("readers", self.user_set(readers.iter().map(String::as_str))),
                    ("toSandbox", RestrictedExpression::new_bool(*to_sandbox)),
                ],
            ),
            Resource::Solution {
                id,
                status,
                proposed_by,
            } => (
                self.uid(&self.types.solution, id),
                vec![
                    ("status", string(status)),
                    ("proposers", self.user_set(*proposed_by)),
                ],
            ),
            Resource::Run {
                id,
                tenant,
                vendors,
                requested_by,
            } => (
                self.uid(&self.types.run, id),
                vec![
                    ("tenant", self.tenant_ref(tenant)),
                    ("vendors", self.user_set(vendors.iter().map(String::as_str))),
                    ("requestedBy", self.user_ref(requested_by)),
                ],
            ),
        };
        let attrs = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let entity = Entity::new(uid.clone(), attrs, HashSet::new())
            .map_err(|e| AuthzError::Request(e.to_string()))?;
        Ok((uid, Some(entity)))
    }

    /// May `caller` do `action` on `resource`?
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
        let (resource_uid, resource_entity) = self.resource_entity(resource)?;
        let entities = std::iter::once(principal).chain(resource_entity);
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
