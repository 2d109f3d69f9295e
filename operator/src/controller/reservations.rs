//! What a tenant's other sandboxes reserve, counted without asking the API server.
//!
//! Admission used to list the tenant's sandboxes on every admission; with hundreds of
//! sandboxes arriving at once that was one large LIST each, serialised by the tenant's
//! lock. Now the count comes from the controller's own sandbox cache (complete once its
//! initial list is in) plus the admissions this operator wrote that the cache may not
//! show yet. The operator leader is the only writer of `status.admitted`, so the two
//! together are what a fresh LIST would say, or more (a sandbox being deleted still
//! counts until it is gone, as it did with the LIST).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use crate::admission::Usage;
use crate::resources::{Sandbox, SandboxResources};

/// How long a written admission is kept for a cache that never shows it (the sandbox
/// was deleted first): long past any watch delay.
const KEEP: Duration = Duration::from_secs(300);

/// Admissions written by this operator, by sandbox name.
#[derive(Default)]
pub struct Written {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Debug)]
struct Entry {
    tenant: String,
    admitted: SandboxResources,
    at: Instant,
}

impl Written {
    /// Remember an admission once its status write succeeded.
    pub fn record(&self, tenant: &str, sandbox: &str, admitted: &SandboxResources) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            sandbox.to_owned(),
            Entry {
                tenant: tenant.to_owned(),
                admitted: admitted.clone(),
                at: Instant::now(),
            },
        );
    }

    /// What `tenant`'s sandboxes other than `except` reserve, from the cached sandboxes
    /// and the written admissions. Forgets the writes the cache now shows.
    pub fn reserved(
        &self,
        cached: &[std::sync::Arc<Sandbox>],
        tenant: &str,
        except: &str,
    ) -> Usage {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        entries.retain(|name, e| {
            let seen = cached
                .iter()
                .any(|s| s.name_any() == *name && admitted(s) == Some(&e.admitted));
            !seen && now.duration_since(e.at) < KEEP
        });
        let pending: HashMap<&str, &SandboxResources> = entries
            .iter()
            .filter(|(_, e)| e.tenant == tenant)
            .map(|(name, e)| (name.as_str(), &e.admitted))
            .collect();
        reserved(cached, &pending, tenant, except)
    }
}

fn admitted(s: &Sandbox) -> Option<&SandboxResources> {
    s.status.as_ref()?.admitted.as_ref()
}

/// Pure: the sum of the admitted sizes of `tenant`'s sandboxes but `except`, a written
/// admission replacing what the cache says of the same sandbox.
fn reserved(
    cached: &[std::sync::Arc<Sandbox>],
    pending: &HashMap<&str, &SandboxResources>,
    tenant: &str,
    except: &str,
) -> Usage {
    let mut by_name: HashMap<String, &SandboxResources> = cached
        .iter()
        .filter(|s| s.spec.tenant == tenant)
        .filter_map(|s| Some((s.name_any(), admitted(s)?)))
        .collect();
    for (name, r) in pending {
        by_name.insert((*name).to_owned(), r);
    }
    by_name
        .into_iter()
        .filter(|(name, _)| name != except)
        .filter_map(|(_, r)| Usage::of(r).ok())
        .fold(Usage::default(), std::ops::Add::add)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use serde_json::json;

    fn sandbox(name: &str, tenant: &str, cpu: Option<&str>) -> Arc<Sandbox> {
        let res = |cpu: &str| json!({"cpu": cpu, "memory": "1Gi", "storage": "1Gi"});
        let mut value = json!({
            "apiVersion": "serre.metropolegrandparis.fr/v1alpha1", "kind": "Sandbox",
            "metadata": {"name": name},
            "spec": {"tenant": tenant, "purpose": "p", "resources": res("1"),
                     "expiresAt": "2030-01-01T00:00:00Z"}
        });
        if let Some(cpu) = cpu {
            value["status"] = json!({"admitted": res(cpu)});
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn resources(cpu: &str) -> SandboxResources {
        serde_json::from_value(json!({"cpu": cpu, "memory": "1Gi", "storage": "1Gi"})).unwrap()
    }

    fn cpu(u: Usage) -> String {
        u.cpu.to_cpu_string()
    }

    #[test]
    fn the_cache_counts_the_tenants_admitted_sandboxes_but_the_one_asking() {
        let cached = vec![
            sandbox("a", "t", Some("1")),
            sandbox("b", "t", Some("2")),
            sandbox("c", "t", None),
            sandbox("d", "other", Some("8")),
        ];
        let w = Written::default();
        let u = w.reserved(&cached, "t", "a");
        assert_eq!((cpu(u), u.sandboxes), ("2".into(), 1));
        let u = w.reserved(&cached, "t", "c");
        assert_eq!((cpu(u), u.sandboxes), ("3".into(), 2));
    }

    #[test]
    fn a_written_admission_counts_until_the_cache_shows_it() {
        let w = Written::default();
        w.record("t", "new", &resources("4"));
        // Not in the cache yet: counted from the write.
        let cached = vec![sandbox("a", "t", Some("1"))];
        assert_eq!(cpu(w.reserved(&cached, "t", "a")), "4");
        assert_eq!(cpu(w.reserved(&cached, "other", "a")), "0");
        // A resize written, the cache still has the old size: the write wins.
        w.record("t", "a", &resources("3"));
        assert_eq!(cpu(w.reserved(&cached, "t", "x")), "7");
        // The cache caught up with both: nothing pending any more.
        let cached = vec![sandbox("a", "t", Some("3")), sandbox("new", "t", Some("4"))];
        assert_eq!(cpu(w.reserved(&cached, "t", "x")), "7");
        assert!(w.entries.lock().unwrap().is_empty());
    }
}
