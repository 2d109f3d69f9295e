//! Trust boundaries found in review (issue 13 §2), on a gateway without a cluster (SQLite,
//! tenants from a file; runs are seeded in the store and closed by the accounting pass):
//!
//! - only runs of solutions their requester may test feed a catalogue solution; a result
//!   attached from a run is immutable; hand-entered results are declared, never measured;
//! - a run report compares only with runs the reader may read;
//! - extra egress refuses link-local, loopback, cluster-internal and catch-all ranges, and
//!   egress beyond the Métropole's allowlist needs a Métropole admin's approval.

mod support;

use serde_json::{Value, json};
use serre_api::store::RunRow;
use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::{Backend, Gateway, Setup, assert_error, fresh_database, issues, sandbox_body};

const SOLUTIONS: &str = "/v1/catalogue/solutions";

fn solution(vendor: &str, name: &str) -> Value {
    json!({
        "vendor": vendor, "name": name, "version": "1.0",
        "licence": {"spdx": "EUPL-1.2"},
        "hosting": {"provider": "Scaleway", "dataLocation": "FR", "extraEuTransfer": false},
        "aiActRiskClass": "minimal", "criteria": {}
    })
}

/// A finished run (never started: it closes at the next accounting pass).
fn run(name: &str, sandbox: &str, tenant: &str, solution: &str, by: &str) -> RunRow {
    let spec = json!({
        "sandbox": sandbox, "image": "registry.example.fr/vendors/model:1",
        "resources": {"cpu": "1", "memory": "1Gi"}, "solution": solution,
        "kind": "inference", "timeoutSeconds": 600, "requestedBy": by,
    });
    let spec: serre_resources::TrialRunSpec = serde_json::from_value(spec).expect("spec");
    RunRow {
        name: name.into(),
        namespace: format!("serre-{sandbox}"),
        sandbox: sandbox.into(),
        tenant: tenant.into(),
        solution: Some(solution.into()),
        kind: "inference".into(),
        requested_by: by.into(),
        spec_json: serde_json::to_string(&spec).expect("spec json"),
        created_at: "2026-05-01T00:00:00.000000Z".into(),
        phase: "Succeeded".into(),
        started_at: None,
        finished_at: None,
        exit_reason: None,
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    }
}

async fn close_runs(gw: &Gateway) {
    let app = gw.app();
    app.accountant
        .pass(chrono::Utc::now(), &app.tenants)
        .await
        .expect("accounting pass");
}

/// A sandbox of `tenant` requested by `by`, with `vendors` added by `admin`.
async fn sandbox(gw: &Gateway, tenant: &str, name: &str, by: &str, admin: &str, vendors: &[&str]) {
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(by),
            Some(sandbox_body(tenant, name, 5)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    for vendor in vendors {
        let (s, v) = gw
            .call(
                "POST",
                &format!("/v1/sandboxes/{tenant}--{name}/members"),
                Some(admin),
                Some(json!({ "subject": vendor })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_a_requester_may_test_feed_the_catalogue_and_stay_as_attached() {
    let gw = support::local_gateway(Backend::Sqlite).await;
    let mgp = gw.token("mgp-admin", MGP);
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let vera = gw.token("vera", &[]);
    let victor = gw.token("victor", &[]);

    // Vera's proposal (unpublished) and a published entry.
    let (s, proposal) = gw
        .call(
            "POST",
            SOLUTIONS,
            Some(&vera),
            Some(solution("Vera SAS", "Tri")),
        )
        .await;
    assert_eq!((s, proposal["status"].as_str()), (201, Some("proposed")));
    let proposal = proposal["id"].as_str().unwrap().to_owned();
    let (s, published) = gw
        .call(
            "POST",
            SOLUTIONS,
            Some(&mgp),
            Some(solution("Acme", "Résumé")),
        )
        .await;
    assert_eq!(s, 201, "{published}");
    let published = published["id"].as_str().unwrap().to_owned();
    sandbox(
        &gw,
        "est-ensemble",
        "traffic",
        &bob,
        &alice,
        &["victor", "vera"],
    )
    .await;
    let sb = "est-ensemble--traffic";

    // Victor's run names Vera's proposal; Vera's own run names it too; Victor's second run
    // names the published entry, with a quality reported before it closes.
    let store = &gw.app().store;
    store
        .insert_run(&run(
            "run-000000000001",
            sb,
            "est-ensemble",
            &proposal,
            "victor",
        ))
        .await
        .unwrap();
    store
        .insert_run(&run(
            "run-000000000002",
            sb,
            "est-ensemble",
            &proposal,
            "vera",
        ))
        .await
        .unwrap();
    store
        .insert_run(&run(
            "run-000000000003",
            sb,
            "est-ensemble",
            &published,
            "victor",
        ))
        .await
        .unwrap();
    let (s, v) = gw
        .call(
            "PUT",
            &format!("/v1/sandboxes/{sb}/runs/run-000000000003/quality"),
            Some(&victor),
            Some(json!({"metric": "rougeL", "value": 0.38})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    close_runs(&gw).await;

    // Only Vera's run feeds her proposal; the published entry takes Victor's.
    let on_proposal: Vec<String> = store
        .list_trial_results(&proposal)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(on_proposal, ["run-000000000002"]);
    let on_published = store.list_trial_results(&published).await.unwrap();
    assert_eq!(on_published.len(), 1);
    assert_eq!(on_published[0].quality_value, Some(0.38));
    // The refusal is in the audit log, with the rule.
    let (_, page) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mgp), None)
        .await;
    let closed = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "run.closed" && e["resource"] == "Run::\"run-000000000001\"")
        .cloned()
        .unwrap_or_default();
    assert_eq!(closed["details"]["catalogue"], false, "{closed}");
    assert_eq!(
        closed["details"]["catalogueRefused"]["rule"], "open_for_trials",
        "{closed}"
    );

    // The attached result is immutable: a later quality is refused (409), nothing changes.
    let quality = format!("/v1/sandboxes/{sb}/runs/run-000000000003/quality");
    let got = gw
        .call(
            "PUT",
            &quality,
            Some(&victor),
            Some(json!({"metric": "rougeL", "value": 0.99})),
        )
        .await;
    assert_error(&got, 409, "conflict");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("attached"),
        "{}",
        got.1
    );
    let on_published = store.list_trial_results(&published).await.unwrap();
    assert_eq!(on_published[0].quality_value, Some(0.38));
    let (_, v) = gw
        .call(
            "GET",
            &format!("/v1/sandboxes/{sb}/runs/run-000000000003"),
            Some(&victor),
            None,
        )
        .await;
    assert_eq!(v["quality"]["value"], 0.38, "{v}");

    // A hand-entered result is declared: kept and shown, never counted as measured.
    let (s, v) = gw
        .call(
            "POST",
            &format!("{SOLUTIONS}/{published}/results"),
            Some(&mgp),
            Some(json!({
                "runId": "outside-1", "tenant": "est-ensemble", "sandbox": "lab",
                "phase": "inference", "kwh": 0.1, "gco2e": 5.0, "durationS": 60.0,
                "functionalUnits": 1000.0, "measuredAt": "2026-05-01T00:00:00Z",
                "method": {"estimated": false, "meter": "wattmeter"}
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let a = &v["criteria"]["environmentalImpact"]["assessment"];
    // Counted: Victor's run only (no units); the declared 0.1 Wh per unit would score 5.
    assert_eq!(a["results"], 1, "{a}");
    assert_eq!(a["declaredResults"], 1, "{a}");
    assert_eq!(a["whPerUnit"], Value::Null, "{a}");
    assert_eq!(v["criteria"]["environmentalImpact"]["score"], Value::Null);
    let hand = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runId"] == "outside-1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(hand["method"]["declared"], true, "{hand}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_report_compares_only_with_runs_its_reader_may_read() {
    let gw = support::local_gateway(Backend::Sqlite).await;
    let mgp = gw.token("mgp-admin", MGP);
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let victor = gw.token("victor", &[]);
    let (s, sol) = gw
        .call(
            "POST",
            SOLUTIONS,
            Some(&mgp),
            Some(solution("Acme", "Résumé")),
        )
        .await;
    assert_eq!(s, 201, "{sol}");
    let sol = sol["id"].as_str().unwrap().to_owned();
    sandbox(&gw, "est-ensemble", "traffic", &bob, &alice, &["victor"]).await;
    sandbox(&gw, "montreuil", "parks", &mallory, &mallory, &[]).await;
    let store = &gw.app().store;
    for r in [
        run(
            "run-00000000000a",
            "est-ensemble--traffic",
            "est-ensemble",
            &sol,
            "victor",
        ),
        run(
            "run-00000000000b",
            "est-ensemble--traffic",
            "est-ensemble",
            &sol,
            "bob",
        ),
        run(
            "run-00000000000c",
            "montreuil--parks",
            "montreuil",
            &sol,
            "mallory",
        ),
    ] {
        store.insert_run(&r).await.unwrap();
    }
    close_runs(&gw).await;

    let report = "/v1/sandboxes/est-ensemble--traffic/runs/run-00000000000a/report";
    let compared = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v["comparison"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .filter_map(|c| c["run"].as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    };
    // A member of the tenant: the tenant's other run, never Montreuil's.
    let (s, v) = gw.call("GET", report, Some(&bob), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(compared(&v), ["run-00000000000b"], "{v}");
    assert!(!v.to_string().contains("montreuil"), "{v}");
    // The vendor reads its own runs only: nothing to compare with.
    let (s, v) = gw.call("GET", report, Some(&victor), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(compared(&v), Vec::<String>::new(), "{v}");
    // A Métropole admin reads every run.
    let (_, v) = gw.call("GET", report, Some(&mgp), None).await;
    assert_eq!(compared(&v), ["run-00000000000b", "run-00000000000c"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_egress_refuses_internal_and_catch_all_ranges_and_needs_the_metropole_beyond_its_allowlist()
 {
    let mut setup = Setup::local(fresh_database(Backend::Sqlite).await);
    setup.extra = ["--egress-allowlist", "192.0.2.0/24"]
        .map(String::from)
        .to_vec();
    let gw = Gateway::start(setup).await;
    let mgp = gw.token("mgp-admin", MGP);
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);

    // Never requested: catch-alls, the metadata service, loopback, the cluster's own
    // ranges, a private range whole.
    for (cidr, rule) in [
        ("0.0.0.0/0", "egress_too_broad"),
        ("::/0", "egress_too_broad"),
        ("10.0.0.0/8", "egress_too_broad"),
        ("169.254.169.254/32", "egress_reserved"),
        ("127.0.0.1/32", "egress_reserved"),
        ("::ffff:169.254.169.254/128", "egress_reserved"),
        ("10.96.0.1/32", "egress_cluster_internal"),
        ("10.244.3.0/24", "egress_cluster_internal"),
        ("192.168.0.0/16", "egress_private_catch_all"),
    ] {
        let mut body = sandbox_body("est-ensemble", "egress", 5);
        body["extraEgressCidrs"] = json!(["192.0.2.0/28", cidr]);
        let got = gw
            .call("POST", "/v1/sandboxes", Some(&bob), Some(body))
            .await;
        assert_error(&got, 422, "validation_failed");
        assert_eq!(
            issues(&got),
            [("extraEgressCidrs[1]".to_owned(), rule.to_owned())],
            "{cidr}: {}",
            got.1
        );
    }

    // Inside the Métropole's allowlist: a tenant admin approves.
    let mut body = sandbox_body("est-ensemble", "inside", 5);
    body["extraEgressCidrs"] = json!(["192.0.2.0/28"]);
    let (s, v) = gw
        .call("POST", "/v1/sandboxes", Some(&bob), Some(body))
        .await;
    assert_eq!(
        (s, v["request"]["state"].as_str()),
        (201, Some("PendingApproval")),
        "{v}"
    );
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes/est-ensemble--inside/approve",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Beyond it: the tenant admin is refused (403 naming the field and the rule), audited;
    // a Métropole admin approves.
    let mut body = sandbox_body("est-ensemble", "beyond", 5);
    body["extraEgressCidrs"] = json!(["192.0.2.0/28", "198.51.100.0/24"]);
    let (s, v) = gw
        .call("POST", "/v1/sandboxes", Some(&bob), Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    let approve = "/v1/sandboxes/est-ensemble--beyond/approve";
    let got = gw.call("POST", approve, Some(&alice), None).await;
    assert_error(&got, 403, "egress_needs_metropole");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("extraEgressCidrs[1]") && message.contains("198.51.100.0/24"),
        "{message}"
    );
    let (_, v) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--beyond",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(v["request"]["state"], "PendingApproval", "{v}");
    let (s, v) = gw.call("POST", approve, Some(&mgp), None).await;
    assert_eq!(s, 200, "{v}");
    let (_, page) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mgp), None)
        .await;
    let refused = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "sandbox.approval.refused")
        .cloned()
        .unwrap_or_default();
    assert_eq!(refused["details"]["rule"], "egress_allowlist", "{refused}");
    assert_eq!(refused["principal"], "alice", "{refused}");
    gw.stop().await;
}
