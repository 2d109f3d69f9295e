//! Policy tests: a table of (principal, action, resource) → expected decision and the
//! policies that decide it, run against the real files in `policies/`.

mod support;

use serre_api::authz::{Action, Authorizer, AuthzError, Resource};
use support::policy::{Row, caller, check_table, policies_dir};

#[test]
fn decision_table() {
    let authz = Authorizer::load(&policies_dir()).expect("the policies load and validate");

    let mgp = caller("mgp-admin", true, &["metropole"], &["metropole"]);
    let alice = caller("alice", false, &["est-ensemble"], &["est-ensemble"]); // tenant admin
    let dave = caller("dave", false, &["est-ensemble"], &["est-ensemble"]); // second admin
    let bob = caller("bob", false, &[], &["est-ensemble"]); // member
    let carol = caller("carol", false, &[], &["est-ensemble"]); // member
    let mallory = caller("mallory", false, &["montreuil"], &["montreuil"]); // other tenant's admin
    let vera = caller("vera", false, &[], &[]); // vendor on bob's sandbox
    let nobody = caller("nobody", false, &[], &[]);

    let vendors = vec!["vera".to_string()];
    let bobs = Resource::Sandbox {
        name: "est-ensemble--traffic",
        tenant: "est-ensemble",
        created_by: "bob",
        vendors: &vendors,
    };
    let alices = Resource::Sandbox {
        name: "est-ensemble--air",
        tenant: "est-ensemble",
        created_by: "alice",
        vendors: &[],
    };
    let ee = Resource::Tenant("est-ensemble");
    let platform = Resource::Platform;
    use Action::*;
    let table: Vec<Row> = vec![
        // Members of the tenant.
        (
            "member reads",
            &bob,
            SandboxRead,
            &bobs,
            true,
            &["member-read-sandbox"],
        ),
        (
            "member reads a colleague's",
            &carol,
            SandboxRead,
            &bobs,
            true,
            &["member-read-sandbox"],
        ),
        (
            "member requests",
            &bob,
            SandboxCreate,
            &ee,
            true,
            &["member-use-tenant"],
        ),
        (
            "member lists",
            &bob,
            SandboxList,
            &ee,
            true,
            &["member-use-tenant"],
        ),
        (
            "member sees tenant",
            &bob,
            TenantRead,
            &ee,
            true,
            &["member-use-tenant"],
        ),
        (
            "member reads policy",
            &bob,
            TenantPolicyRead,
            &ee,
            true,
            &["member-use-tenant"],
        ),
        (
            "creator deletes",
            &bob,
            SandboxDelete,
            &bobs,
            true,
            &["creator-delete-sandbox"],
        ),
        (
            "member deletes another's",
            &carol,
            SandboxDelete,
            &bobs,
            false,
            &[],
        ),
        ("member approves", &bob, SandboxApprove, &alices, false, &[]),
        ("member rejects", &carol, SandboxReject, &bobs, false, &[]),
        (
            "member adds vendor",
            &bob,
            SandboxMembersAdd,
            &bobs,
            false,
            &[],
        ),
        ("member reads audit", &bob, AuditRead, &ee, false, &[]),
        (
            "member writes policy",
            &bob,
            TenantPolicyWrite,
            &ee,
            false,
            &[],
        ),
        ("member lists all", &bob, SandboxList, &platform, false, &[]),
        // Tenant admins.
        (
            "admin approves",
            &alice,
            SandboxApprove,
            &bobs,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin rejects",
            &alice,
            SandboxReject,
            &bobs,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin approves own",
            &alice,
            SandboxApprove,
            &alices,
            false,
            &["four-eyes-approval"],
        ),
        (
            "other admin approves it",
            &dave,
            SandboxApprove,
            &alices,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin rejects own",
            &alice,
            SandboxReject,
            &alices,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin deletes",
            &alice,
            SandboxDelete,
            &bobs,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin adds vendor",
            &alice,
            SandboxMembersAdd,
            &bobs,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin removes vendor",
            &alice,
            SandboxMembersRemove,
            &bobs,
            true,
            &["tenant-admin-manage-sandbox"],
        ),
        (
            "admin reads audit",
            &alice,
            AuditRead,
            &ee,
            true,
            &["tenant-admin-read-audit"],
        ),
        (
            "admin reads all audit",
            &alice,
            AuditRead,
            &platform,
            false,
            &[],
        ),
        (
            "admin writes policy",
            &alice,
            TenantPolicyWrite,
            &ee,
            false,
            &[],
        ),
        (
            "admin reloads policies",
            &alice,
            PolicyReload,
            &platform,
            false,
            &[],
        ),
        // Tenant isolation: another tenant's admin learns nothing.
        (
            "outsider reads",
            &mallory,
            SandboxRead,
            &bobs,
            false,
            &["tenant-isolation-sandbox"],
        ),
        (
            "outsider deletes",
            &mallory,
            SandboxDelete,
            &bobs,
            false,
            &["tenant-isolation-sandbox"],
        ),
        (
            "outsider approves",
            &mallory,
            SandboxApprove,
            &bobs,
            false,
            &["tenant-isolation-sandbox"],
        ),
        (
            "outsider requests",
            &mallory,
            SandboxCreate,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "outsider lists",
            &mallory,
            SandboxList,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "outsider sees tenant",
            &mallory,
            TenantRead,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "outsider reads audit",
            &mallory,
            AuditRead,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "nobody reads",
            &nobody,
            SandboxRead,
            &alices,
            false,
            &["tenant-isolation-sandbox"],
        ),
        // Vendors see their sandbox, nothing else.
        (
            "vendor reads",
            &vera,
            SandboxRead,
            &bobs,
            true,
            &["vendor-read-sandbox"],
        ),
        (
            "vendor reads another",
            &vera,
            SandboxRead,
            &alices,
            false,
            &["tenant-isolation-sandbox"],
        ),
        ("vendor deletes", &vera, SandboxDelete, &bobs, false, &[]),
        (
            "vendor adds vendor",
            &vera,
            SandboxMembersAdd,
            &bobs,
            false,
            &[],
        ),
        (
            "vendor lists tenant",
            &vera,
            SandboxList,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        // Métropole admins.
        (
            "mgp reads",
            &mgp,
            SandboxRead,
            &bobs,
            true,
            &["metropole-admin"],
        ),
        (
            "mgp approves",
            &mgp,
            SandboxApprove,
            &bobs,
            true,
            &["metropole-admin"],
        ),
        (
            "mgp lists all",
            &mgp,
            SandboxList,
            &platform,
            true,
            &["metropole-admin"],
        ),
        (
            "mgp reads all audit",
            &mgp,
            AuditRead,
            &platform,
            true,
            &["metropole-admin"],
        ),
        (
            "mgp writes policy",
            &mgp,
            TenantPolicyWrite,
            &ee,
            true,
            &["metropole-admin"],
        ),
        (
            "mgp reloads",
            &mgp,
            PolicyReload,
            &platform,
            true,
            &["metropole-admin"],
        ),
    ];
    check_table(&authz, &table);
}

#[test]
fn every_action_is_in_the_schema() {
    let authz = Authorizer::load(&policies_dir()).unwrap();
    let mgp = caller("mgp", true, &[], &[]);
    let vendors = vec![];
    for action in Action::ALL {
        let resource = match action {
            Action::PolicyReload => Resource::Platform,
            Action::SandboxRead
            | Action::SandboxDelete
            | Action::SandboxApprove
            | Action::SandboxReject
            | Action::SandboxMembersAdd
            | Action::SandboxMembersRemove
            | Action::RunCreate
            | Action::RunList => Resource::Sandbox {
                name: "s",
                tenant: "t",
                created_by: "u",
                vendors: &vendors,
            },
            Action::DatasetRead
            | Action::DatasetVersionCreate
            | Action::DatasetVersionDelete
            | Action::GrantCreate => Resource::Dataset {
                id: "d",
                tenant: "t",
                classification: "personal",
            },
            Action::GrantRead | Action::GrantRevoke | Action::GrantData => Resource::Grant {
                id: "g",
                tenant: "t",
                readers: &vendors,
                to_sandbox: false,
            },
            Action::CatalogueList
            | Action::CatalogueCreate
            | Action::CataloguePropose
            | Action::CatalogueExport => Resource::Platform,
            Action::CatalogueRead
            | Action::CatalogueUpdate
            | Action::CatalogueReview
            | Action::CatalogueResultsAttach => Resource::Solution {
                id: "s",
                status: "proposed",
                proposed_by: Some("u"),
            },
            Action::RunRead | Action::RunCancel | Action::RunQuality => Resource::Run {
                id: "r",
                tenant: "t",
                vendors: &vendors,
                requested_by: "u",
            },
            _ => Resource::Tenant("t"),
        };
        // A request the schema does not allow is an error, not a decision.
        authz
            .decide(&mgp, action, &resource)
            .unwrap_or_else(|e| panic!("{}: {e}", action.name()));
    }
    // And a resource type the schema does not allow for the action is refused.
    let e = authz
        .decide(&mgp, Action::PolicyReload, &Resource::Tenant("t"))
        .unwrap_err();
    assert!(matches!(e, AuthzError::Request(_)), "{e}");
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn broken_policy_directories_are_refused_and_reload_keeps_the_old_ones() {
    let schema = std::fs::read_to_string(policies_dir().join("serre.cedarschema")).unwrap();
    let good = std::fs::read_to_string(policies_dir().join("serre.cedar")).unwrap();

    let no_id = dir_with(&[
        ("s.cedarschema", &schema),
        ("p.cedar", "permit(principal, action, resource);"),
    ]);
    let e = Authorizer::load(no_id.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("@id"), "{e}");

    let bad_attr = dir_with(&[
        ("s.cedarschema", &schema),
        (
            "p.cedar",
            "@id(\"x\") permit(principal, action, resource is Serre::Sandbox) when { resource.colour == \"red\" };",
        ),
    ]);
    let e = Authorizer::load(bad_attr.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("do not match the schema"), "{e}");

    let syntax = dir_with(&[
        ("s.cedarschema", &schema),
        ("p.cedar", "@id(\"x\") permit("),
    ]);
    let e = Authorizer::load(syntax.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("p.cedar"), "{e}");

    let no_schema = dir_with(&[("p.cedar", &good)]);
    assert!(Authorizer::load(no_schema.path()).is_err());

    // Reload: a broken file leaves the policies in force.
    let dir = dir_with(&[("s.cedarschema", &schema), ("p.cedar", &good)]);
    let authz = Authorizer::load(dir.path()).unwrap();
    let before = authz.policy_ids();
    std::fs::write(dir.path().join("p.cedar"), "@id(\"x\") permit(").unwrap();
    assert!(authz.reload().is_err());
    assert_eq!(authz.policy_ids(), before);
    // A valid change takes effect.
    std::fs::write(
        dir.path().join("p.cedar"),
        "@id(\"only-admins\") permit(principal, action, resource) when { principal.metropoleAdmin };",
    )
    .unwrap();
    assert_eq!(authz.reload().unwrap(), ["only-admins"]);
    let bob = caller("bob", false, &[], &["est-ensemble"]);
    let d = authz
        .decide(&bob, Action::SandboxList, &Resource::Tenant("est-ensemble"))
        .unwrap();
    assert!(!d.allowed);
}
