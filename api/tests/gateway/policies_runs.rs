//! Policy tests for trial runs and usage: a table of (principal, action, resource) →
//! expected decision and deciding policies, against the real `policies/`.

mod support;

use serre_api::authz::{Action, Authorizer, Resource};
use support::policy::{Row, caller, check_table, policies_dir};

#[test]
fn decision_table_of_trial_runs_and_usage() {
    let authz = Authorizer::load(&policies_dir()).expect("the policies load and validate");

    let mgp = caller("mgp-admin", true, &["metropole"], &["metropole"]);
    let alice = caller("alice", false, &["est-ensemble"], &["est-ensemble"]); // tenant admin
    let bob = caller("bob", false, &[], &["est-ensemble"]); // member
    let mallory = caller("mallory", false, &["montreuil"], &["montreuil"]); // other tenant's admin
    let vera = caller("vera", false, &[], &[]); // vendor on the sandbox
    let victor = caller("victor", false, &[], &[]); // another vendor on the same sandbox
    let nobody = caller("nobody", false, &[], &[]);

    let vendors = vec!["vera".to_string(), "victor".to_string()];
    let only_victor = vec!["victor".to_string()];
    let sandbox = Resource::Sandbox {
        name: "est-ensemble--trials",
        tenant: "est-ensemble",
        created_by: "bob",
        vendors: &vendors,
    };
    let veras_run = Resource::Run {
        id: "run-vera",
        tenant: "est-ensemble",
        vendors: &vendors,
        requested_by: "vera",
    };
    let bobs_run = Resource::Run {
        id: "run-bob",
        tenant: "est-ensemble",
        vendors: &vendors,
        requested_by: "bob",
    };
    // vera asked for it, then was removed from the sandbox.
    let removed = Resource::Run {
        id: "run-removed",
        tenant: "est-ensemble",
        vendors: &only_victor,
        requested_by: "vera",
    };
    let ee = Resource::Tenant("est-ensemble");
    let platform = Resource::Platform;

    use Action::*;
    let table: Vec<Row> = vec![
        (
            "member starts a run",
            &bob,
            RunCreate,
            &sandbox,
            true,
            &["member-runs"],
        ),
        (
            "vendor starts a run",
            &vera,
            RunCreate,
            &sandbox,
            true,
            &["vendor-runs"],
        ),
        (
            "vendor lists runs",
            &vera,
            RunList,
            &sandbox,
            true,
            &["vendor-runs"],
        ),
        (
            "stranger cannot start a run",
            &nobody,
            RunCreate,
            &sandbox,
            false,
            &["tenant-isolation-sandbox"],
        ),
        (
            "other tenant's admin cannot start a run",
            &mallory,
            RunCreate,
            &sandbox,
            false,
            &["tenant-isolation-sandbox"],
        ),
        (
            "vendor reads its run",
            &vera,
            RunRead,
            &veras_run,
            true,
            &["vendor-read-own-run"],
        ),
        (
            "vendor does not see another's run",
            &victor,
            RunRead,
            &veras_run,
            false,
            &["tenant-isolation-run"],
        ),
        (
            "vendor does not see a member's run",
            &vera,
            RunRead,
            &bobs_run,
            false,
            &["tenant-isolation-run"],
        ),
        (
            "vendor removed from the sandbox no longer reads its run",
            &vera,
            RunRead,
            &removed,
            false,
            &[],
        ),
        (
            "member reads every run",
            &bob,
            RunRead,
            &veras_run,
            true,
            &["member-read-run"],
        ),
        (
            "requester cancels",
            &vera,
            RunCancel,
            &veras_run,
            true,
            &["requester-cancel-run"],
        ),
        (
            "requester reports quality",
            &vera,
            RunQuality,
            &veras_run,
            true,
            &["requester-report-quality"],
        ),
        (
            "tenant admin does not report a vendor's quality",
            &alice,
            RunQuality,
            &veras_run,
            false,
            &[],
        ),
        (
            "member cannot cancel someone else's run",
            &bob,
            RunCancel,
            &veras_run,
            false,
            &[],
        ),
        (
            "tenant admin cancels any run",
            &alice,
            RunCancel,
            &veras_run,
            true,
            &["tenant-admin-cancel-run"],
        ),
        (
            "other tenant's admin cannot read a run",
            &mallory,
            RunRead,
            &bobs_run,
            false,
            &["tenant-isolation-run"],
        ),
        (
            "Métropole admin reads a run",
            &mgp,
            RunRead,
            &veras_run,
            true,
            &["metropole-admin"],
        ),
        (
            "member reads usage",
            &bob,
            UsageRead,
            &ee,
            true,
            &["member-read-usage"],
        ),
        (
            "vendor does not read a tenant's usage",
            &vera,
            UsageRead,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "other tenant's admin does not read usage",
            &mallory,
            UsageRead,
            &ee,
            false,
            &["tenant-isolation-tenant"],
        ),
        (
            "Métropole admin reads all usage",
            &mgp,
            UsageRead,
            &platform,
            true,
            &["metropole-admin"],
        ),
        (
            "member does not read all usage",
            &bob,
            UsageRead,
            &platform,
            false,
            &[],
        ),
    ];
    check_table(&authz, &table);
}
