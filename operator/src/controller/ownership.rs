//! Serre never adopts a namespace it did not create: before anything is applied for a
//! sandbox, its namespace must be absent (Serre creates it) or carry the labels Serre
//! puts on the namespace it made for that sandbox. Otherwise (a namespace made by hand,
//! by another tool, or Serre's own release namespace for a sandbox named `system`),
//! nothing is applied there: no quota, no policies, and above all no RoleBinding.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use super::error::Result;
use crate::resources::{LABEL_MANAGED_BY, LABEL_SANDBOX, MANAGER};

/// What the sandbox's namespace is to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Does not exist: Serre creates it.
    Absent,
    /// Serre made it for this sandbox.
    Ours,
    /// Serre made it for this sandbox and it is being deleted: wait until it is gone.
    Terminating,
    /// Someone else's: the reason, as a sentence's end.
    Foreign(String),
}

/// Judge a namespace by its labels (only the operator and cluster administrators can set
/// a namespace's labels).
pub fn ownership(namespace: &Namespace, sandbox: &str) -> Ownership {
    let labels = namespace.labels();
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGER) {
        return Ownership::Foreign(format!(
            "was not created by Serre (it has no {LABEL_MANAGED_BY}={MANAGER} label)"
        ));
    }
    match labels.get(LABEL_SANDBOX) {
        Some(s) if s == sandbox => {}
        Some(other) => {
            return Ownership::Foreign(format!("belongs to Serre's sandbox {other:?}"));
        }
        None => {
            return Ownership::Foreign(format!(
                "was not created by Serre for a sandbox (it has no {LABEL_SANDBOX} label)"
            ));
        }
    }
    if namespace.metadata.deletion_timestamp.is_some() {
        Ownership::Terminating
    } else {
        Ownership::Ours
    }
}

/// The ownership of namespace `ns` for `sandbox`: from the cache of Serre's namespaces,
/// or, when it is not there (absent, or not labelled as Serre's), from the API server.
pub async fn namespace_ownership(ctx: &Context, ns: &str, sandbox: &str) -> Result<Ownership> {
    let namespace = match ctx.caches.namespaces.get(&ObjectRef::new(ns)) {
        Some(n) => Some(n),
        None => Api::<Namespace>::all(ctx.client.clone())
            .get_opt(ns)
            .await?
            .map(Arc::new),
    };
    Ok(match namespace {
        None => Ownership::Absent,
        Some(n) => ownership(&n, sandbox),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn namespace(labels: &[(&str, &str)]) -> Namespace {
        let mut n = Namespace::default();
        n.metadata.name = Some("serre-lab".into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    #[test]
    fn only_the_namespace_serre_made_for_this_sandbox_is_its_own() {
        let ours = namespace(&[(LABEL_MANAGED_BY, MANAGER), (LABEL_SANDBOX, "lab")]);
        assert_eq!(ownership(&ours, "lab"), Ownership::Ours);
        let mut going = ours.clone();
        going.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(ownership(&going, "lab"), Ownership::Terminating);
        for (labels, why) in [
            (vec![], "was not created by Serre"),
            (vec![(LABEL_MANAGED_BY, "Helm")], "was not created by Serre"),
            (
                vec![(LABEL_MANAGED_BY, MANAGER)],
                "was not created by Serre for a sandbox",
            ),
            (
                vec![(LABEL_MANAGED_BY, MANAGER), (LABEL_SANDBOX, "other")],
                "belongs to Serre's sandbox \"other\"",
            ),
            // The sandbox label alone proves nothing.
            (vec![(LABEL_SANDBOX, "lab")], "was not created by Serre"),
        ] {
            match ownership(&namespace(&labels), "lab") {
                Ownership::Foreign(reason) => assert!(reason.starts_with(why), "{reason}"),
                other => panic!("{labels:?}: {other:?}"),
            }
        }
    }
}
