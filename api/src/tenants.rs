//! The tenant directory: which Tenants exist and which groups act for them, read from
//! the cluster's `Tenant` resources (a kube reflector cache) or, for development and
//! tests without a cluster, from a YAML file of `Tenant` manifests. Roles are derived
//! from the caller's groups here.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::ResourceExt;
use kube::runtime::reflector;
use serre_resources::{MemberRole, Tenant, TenantKind};

use crate::identity::Principal;

#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Parse {
        path: String,
        index: usize,
        message: String,
    },
}

enum Source {
    File(Vec<Arc<Tenant>>),
    Cluster {
        store: reflector::Store<Tenant>,
        synced: Arc<AtomicBool>,
    },
}

/// What a caller may act as, derived from their groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    pub metropole_admin: bool,
    /// Tenants where the caller is an admin.
    pub admin_of: BTreeSet<String>,
    /// Tenants where the caller is a member or an admin.
    pub member_of: BTreeSet<String>,
}

pub struct Directory {
    source: Source,
    metropole_admin_groups: HashSet<String>,
}

impl Directory {
    /// Tenants from a multi-document YAML file of `Tenant` manifests.
    pub fn from_file(path: &Path, metropole_admin_groups: &[String]) -> Result<Self, TenantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let tenants = parse_manifests(&text).map_err(|(index, message)| TenantsError::Parse {
            path: path.display().to_string(),
            index,
            message,
        })?;
        Ok(Self::from_tenants(tenants, metropole_admin_groups))
    }

    pub fn from_tenants(tenants: Vec<Tenant>, metropole_admin_groups: &[String]) -> Self {
        Self {
            source: Source::File(tenants.into_iter().map(Arc::new).collect()),
            metropole_admin_groups: metropole_admin_groups.iter().cloned().collect(),
        }
    }

    /// Tenants from a reflector cache; `synced` turns true after the first full list.
    pub fn from_cluster(
        store: reflector::Store<Tenant>,
        synced: Arc<AtomicBool>,
        metropole_admin_groups: &[String],
    ) -> Self {
        Self {
            source: Source::Cluster { store, synced },
            metropole_admin_groups: metropole_admin_groups.iter().cloned().collect(),
        }
    }

    /// Whether the directory can answer (file loaded, or the cache has synced once).
    pub fn ready(&self) -> bool {
        match &self.source {
            Source::File(_) => true,
            Source::Cluster { synced, .. } => synced.load(Ordering::Relaxed),
        }
    }

    pub fn all(&self) -> Vec<Arc<Tenant>> {
        match &self.source {
            Source::File(t) => t.clone(),
            Source::Cluster { store, .. } => store.state(),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        match &self.source {
            Source::File(t) => t.iter().find(|t| t.name_any() == name).cloned(),
            Source::Cluster { store, .. } => store.get(&reflector::ObjectRef::new(name)),
        }
    }

    /// The caller's roles: Métropole admin through a configured group or the admin
    /// groups of a `Metropole` tenant; tenant admin/member through the tenant's groups.
    pub fn roles(&self, principal: &Principal) -> Roles {
        let groups: HashSet<&str> = principal.groups.iter().map(String::as_str).collect();
        let mut roles = Roles {
            metropole_admin: principal
                .groups
                .iter()
                .any(|g| self.metropole_admin_groups.contains(g)),
            ..Roles::default()
        };
        for tenant in self.all() {
            let name = tenant.name_any();
            for m in &tenant.spec.members {
                if !groups.contains(m.group.as_str()) {
                    continue;
                }
                roles.member_of.insert(name.clone());
                if m.role == MemberRole::Admin {
                    roles.admin_of.insert(name.clone());
                    if tenant.spec.kind == TenantKind::Metropole {
                        roles.metropole_admin = true;
                    }
                }
            }
        }
        roles
    }
}

/// Parse `Tenant` manifests; errors carry the document index (from 0).
pub fn parse_manifests(text: &str) -> Result<Vec<Tenant>, (usize, String)> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| (index, e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != "Tenant" {
            return Err((index, format!("kind is {kind:?}, expected \"Tenant\"")));
        }
        let tenant: Tenant = serde_yaml::from_value(value).map_err(|e| (index, e.to_string()))?;
        if tenant
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err((index, "metadata.name is missing".into()));
        }
        out.push(tenant);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: metropole}
spec:
  displayName: Métropole du Grand Paris
  kind: Metropole
  members: [{group: mgp-admins, role: admin}, {group: mgp-staff, role: member}]
  allowance: {cpu: "64", memory: 256Gi, storage: 2Ti, sandboxes: 20}
---
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: est-ensemble}
spec:
  displayName: Est Ensemble
  kind: EPT
  members: [{group: ee-admins, role: admin}, {group: ee-data, role: member}]
  allowance: {cpu: "16", memory: 64Gi, storage: 500Gi, sandboxes: 5}
"#;

    fn principal(groups: &[&str]) -> Principal {
        Principal {
            issuer: "i".into(),
            subject: "s".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            organisation: None,
        }
    }

    #[test]
    fn roles_come_from_groups() {
        let d = Directory::from_tenants(parse_manifests(FILE).unwrap(), &["platform-ops".into()]);
        let r = d.roles(&principal(&["ee-data"]));
        assert!(!r.metropole_admin);
        assert_eq!(r.member_of, BTreeSet::from(["est-ensemble".to_string()]));
        assert!(r.admin_of.is_empty());

        let r = d.roles(&principal(&["ee-admins", "unrelated"]));
        assert_eq!(r.admin_of, BTreeSet::from(["est-ensemble".to_string()]));
        assert!(r.member_of.contains("est-ensemble"));

        assert!(d.roles(&principal(&["mgp-admins"])).metropole_admin);
        assert!(!d.roles(&principal(&["mgp-staff"])).metropole_admin);
        assert!(d.roles(&principal(&["platform-ops"])).metropole_admin);
        assert_eq!(d.roles(&principal(&[])), Roles::default());
    }

    #[test]
    fn manifests_must_be_tenants() {
        let e = parse_manifests("kind: Sandbox\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(e.0, 0);
        assert!(e.1.contains("expected \"Tenant\""));
        let e = parse_manifests(&format!("{FILE}---\nkind: Tenant\nspec: {{}}\n")).unwrap_err();
        assert_eq!(e.0, 2);
    }
}
