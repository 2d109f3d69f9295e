//! Policy tests for datasets, grants and the catalogue: a table of (principal, action,
//! resource) → expected decision and deciding policies, against the real `policies/`.

mod support;

use serre_api::authz::{Action, Authorizer, Resource};
use support::policy::{Row, caller, check_table, policies_dir};

#[test]
fn decision_table_of_datasets_grants_and_the_catalogue() {
    let authz = Authorizer::load(&policies_dir()).expect("the policies load and validate");

    let mgp = caller("mgp-admin", true, &["metropole"], &["metropole"]);
    let alice = caller("alice", false, &["est-ensemble"], &["est-ensemble"]); // tenant admin
    let bob = caller("bob", false, &[], &["est-ensemble"]); // member
    let mallory = caller("mallory", false, &["montreuil"], &["montreuil"]); // other tenant's admin
    let vera = caller("vera", false, &[], &[]); // vendor on bob's sandbox
    let nobody = caller("nobody", false, &[], &[]);

    let vendors = vec!["vera".to_string()];
    let ee = Resource::Tenant("est-ensemble");
    let platform = Resource::Platform;
    let residents = Resource::Dataset {
        id: "residents",
        tenant: "est-ensemble",
        classification: "personal",
    };
    let to_vera = Resource::Grant {
        id: "g-vera",
        tenant: "est-ensemble",
        readers: &vendors,
        to_sandbox: false,
    };
    let to_sandbox = Resource::Grant {
        id: "g-sandbox",
        tenant: "est-ensemble",
        readers: &[],
        to_sandbox: true,
    };

    let published = Resource::Solution {
        id: "s-published",
        status: "published",
        proposed_by: Some("vera"),
    };
    let proposal = Resource::Solution {
        id: "s-proposal",
        status: "proposed",
        proposed_by: Some("vera"),
    };
    let rejected = Resource::Solution {
        id: "s-rejected",
        status: "rejected",
        proposed_by: Some("vera"),
    };

    use Action::*;
    let table: Vec<Row> = vec![
        // Datasets and grants.
        (
            "member uploads",
            &bob,
            DatasetCreate,
            &ee,
            true,
            &["member-use-datasets"],
        ),
        (
            "member reads a dataset",
            &bob,
            DatasetRead,
            &residents,
            true,
            &["member-read-dataset"],
        ),
        (
            "member cannot grant",
            &bob,
            GrantCreate,
            &residents,
            false,
            &[],
        ),
        (
            "tenant admin grants",
            &alice,
            GrantCreate,
            &residents,
            true,
            &["tenant-admin-grants"],
        ),
        (
            "tenant admin deletes a version",
            &alice,
            DatasetVersionDelete,
            &residents,
            true,
            &["tenant-admin-grants"],
        ),
        (
            "other tenant's admin cannot see the dataset",
            &mallory,
            DatasetRead,
            &residents,
            false,
            &["tenant-isolation-dataset"],
        ),
        (
            "vendor cannot see the dataset",
            &vera,
            DatasetRead,
            &residents,
            false,
            &["tenant-isolation-dataset"],
        ),
        (
            "vendor reads its grant's data",
            &vera,
            GrantData,
            &to_vera,
            true,
            &["vendor-use-grant"],
        ),
        (
            "vendor cannot revoke",
            &vera,
            GrantRevoke,
            &to_vera,
            false,
            &[],
        ),
        (
            "another vendor does not see the grant",
            &nobody,
            GrantRead,
            &to_vera,
            false,
            &["tenant-isolation-grant"],
        ),
        (
            "member cannot read a vendor grant's data",
            &bob,
            GrantData,
            &to_vera,
            false,
            &[],
        ),
        (
            "member reads a sandbox grant's data",
            &bob,
            GrantData,
            &to_sandbox,
            true,
            &["member-read-sandbox-grant-data"],
        ),
        (
            "tenant admin reads and revokes",
            &alice,
            GrantRevoke,
            &to_vera,
            true,
            &["tenant-admin-manage-grant"],
        ),
        (
            "Métropole admin sees a grant",
            &mgp,
            GrantRead,
            &to_vera,
            true,
            &["metropole-admin"],
        ),
        (
            "Métropole admin may not read a tenant's data",
            &mgp,
            GrantData,
            &to_vera,
            false,
            &["grant-data-only-to-named-readers"],
        ),
        // The catalogue of AI solutions.
        (
            "member lists the catalogue",
            &bob,
            CatalogueList,
            &platform,
            true,
            &["everyone-read-catalogue"],
        ),
        (
            "vendor exports the catalogue",
            &vera,
            CatalogueExport,
            &platform,
            true,
            &["everyone-read-catalogue"],
        ),
        (
            "member reads a published solution",
            &bob,
            CatalogueRead,
            &published,
            true,
            &["everyone-read-published-solution"],
        ),
        (
            "member does not see a proposal",
            &bob,
            CatalogueRead,
            &proposal,
            false,
            &[],
        ),
        (
            "another vendor does not see a proposal",
            &nobody,
            CatalogueRead,
            &proposal,
            false,
            &[],
        ),
        (
            "vendor sees its proposal",
            &vera,
            CatalogueRead,
            &proposal,
            true,
            &["vendor-read-own-proposal"],
        ),
        (
            "vendor sees its rejected proposal",
            &vera,
            CatalogueRead,
            &rejected,
            true,
            &["vendor-read-own-proposal"],
        ),
        (
            "vendor proposes",
            &vera,
            CataloguePropose,
            &platform,
            true,
            &["vendor-propose-solution"],
        ),
        (
            "member does not propose",
            &bob,
            CataloguePropose,
            &platform,
            false,
            &[],
        ),
        (
            "member does not create",
            &bob,
            CatalogueCreate,
            &platform,
            false,
            &[],
        ),
        (
            "vendor does not create published entries",
            &vera,
            CatalogueCreate,
            &platform,
            false,
            &[],
        ),
        (
            "vendor edits its proposal",
            &vera,
            CatalogueUpdate,
            &proposal,
            true,
            &["vendor-edit-own-proposal"],
        ),
        (
            "vendor does not edit once published",
            &vera,
            CatalogueUpdate,
            &published,
            false,
            &[],
        ),
        (
            "another vendor does not edit a proposal",
            &nobody,
            CatalogueUpdate,
            &proposal,
            false,
            &[],
        ),
        (
            "vendor does not publish its proposal",
            &vera,
            CatalogueReview,
            &proposal,
            false,
            &[],
        ),
        (
            "member does not edit a published entry",
            &bob,
            CatalogueUpdate,
            &published,
            false,
            &[],
        ),
        (
            "vendor does not attach trial results",
            &vera,
            CatalogueResultsAttach,
            &proposal,
            false,
            &[],
        ),
        (
            "tenant admin does not attach trial results",
            &alice,
            CatalogueResultsAttach,
            &published,
            false,
            &[],
        ),
        (
            "Métropole admin creates",
            &mgp,
            CatalogueCreate,
            &platform,
            true,
            &["metropole-admin"],
        ),
        (
            "Métropole admin publishes",
            &mgp,
            CatalogueReview,
            &proposal,
            true,
            &["metropole-admin"],
        ),
        (
            "Métropole admin attaches trial results",
            &mgp,
            CatalogueResultsAttach,
            &published,
            true,
            &["metropole-admin"],
        ),
    ];
    check_table(&authz, &table);
}
