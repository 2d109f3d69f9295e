//! Shared pieces of the policy decision tables (`policies.rs`, `policies_data.rs`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serre_api::authz::{Action, Authorizer, Caller, Resource};
use serre_api::identity::Principal;
use serre_api::tenants::Roles;

pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

pub fn caller(
    subject: &str,
    metropole_admin: bool,
    admin_of: &[&str],
    member_of: &[&str],
) -> Caller {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    Caller {
        principal: Principal {
            issuer: "https://idp.example".into(),
            subject: subject.into(),
            groups: vec![],
            organisation: None,
        },
        roles: Roles {
            metropole_admin,
            admin_of: set(admin_of),
            member_of: set(member_of),
        },
    }
}

/// (what, caller, action, resource, allowed, deciding policies)
pub type Row<'a> = (
    &'a str,
    &'a Caller,
    Action,
    &'a Resource<'a>,
    bool,
    &'a [&'a str],
);

/// Decide every row; fail with all the rows that decided otherwise.
pub fn check_table(authz: &Authorizer, table: &[Row<'_>]) {
    let mut failures = Vec::new();
    for (what, who, action, resource, allowed, policies) in table {
        let d = authz.decide(who, *action, resource).expect("decide");
        let expected: Vec<String> = policies.iter().map(|s| s.to_string()).collect();
        if d.allowed != *allowed || d.policies != expected {
            failures.push(format!(
                "{what}: {} {} on {}: got allowed={} by {:?}, expected allowed={allowed} by {expected:?}",
                who.principal.subject,
                action.name(),
                resource.describe(),
                d.allowed,
                d.policies
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
