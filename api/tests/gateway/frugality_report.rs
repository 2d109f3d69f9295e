//! A run's frugality report over HTTP on a gateway without a cluster (issue 15 §1): runs
//! are seeded in the store with ledger rows from the real accounting (20 core-s of
//! measured CPU time in a run that held 1 core for 40 s), closed by the accounting pass,
//! and read as JSON, CSV and HTML; the requester answers the good-practice checklist;
//! comparisons say which runs are comparable. SQLite and PostgreSQL.

mod support;

use std::collections::BTreeMap;

use chrono::{Duration, DurationRound, Utc};
use serde_json::{Value, json};
use serre_api::energy::{AccountInputs, ResourceUsage, Window, account, ledger};
use serre_api::store::{RunRow, timestamp};
use support::groups::{EE_ADMIN, EE_DATA, MGP};
use support::{Backend, Gateway, assert_error};

const SB: &str = "est-ensemble--traffic";

fn run_row(name: &str, by: &str, solution: &str, unit: &str) -> RunRow {
    let spec = json!({
        "sandbox": SB, "image": "registry.example.fr/vendors/model:1",
        "resources": {"cpu": "1", "memory": "2Gi"}, "solution": solution,
        "kind": "inference", "timeoutSeconds": 600, "requestedBy": by,
        "functionalUnit": {"name": unit, "count": 1000},
    });
    let spec: serre_resources::TrialRunSpec = serde_json::from_value(spec).expect("spec");
    RunRow {
        name: name.into(),
        namespace: format!("serre-{SB}"),
        sandbox: SB.into(),
        tenant: "est-ensemble".into(),
        solution: Some(solution.into()),
        kind: "inference".into(),
        requested_by: by.into(),
        spec_json: serde_json::to_string(&spec).expect("spec json"),
        created_at: timestamp(Utc::now()),
        phase: "Pending".into(),
        started_at: None,
        finished_at: None,
        exit_reason: None,
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    }
}

/// Seed a run that ran 40 s an hour ago, with its ledger rows: 20 core-s of CPU time
/// measured (cAdvisor), 40 core-s requested, 80 GB-s of memory requested.
async fn seed(gw: &Gateway, row: &RunRow) {
    let store = &gw.app().store;
    store.insert_run(row).await.expect("run");
    let start = (Utc::now() - Duration::hours(1))
        .duration_trunc(Duration::minutes(1))
        .unwrap();
    let end = start + Duration::seconds(40);
    store
        .update_run_state(
            &row.name,
            "Succeeded",
            Some(&timestamp(start)),
            Some(&timestamp(end)),
            None,
        )
        .await
        .expect("run state");
    let inputs = AccountInputs {
        resources: BTreeMap::from([(
            row.name.clone(),
            ResourceUsage {
                cpu_requested_core_s: 40.0,
                cpu_used_core_s: 20.0,
                memory_requested_gb_s: 80.0,
                memory_used_gb_s: 40.0,
                source: "seeded by the test".into(),
                ..ResourceUsage::default()
            },
        )]),
        tenants: BTreeMap::from([(row.name.clone(), row.tenant.clone())]),
        ..AccountInputs::default()
    };
    let window = Window::new(start, end).unwrap();
    let mut rows = ledger::rows(&account(window, &inputs).unwrap());
    for r in &mut rows {
        r.run = row.name.clone();
        r.namespace = row.namespace.clone();
    }
    store.record_usage_window(end, &rows).await.expect("rows");
}

both_backends!(the_report_is_a_structured_document_with_views_of_the_same_data);

async fn the_report_is_a_structured_document_with_views_of_the_same_data(backend: Backend) {
    let gw = support::local_gateway(backend).await;
    let mgp = gw.token("mgp-admin", MGP);
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let victor = gw.token("victor", &[]);
    let (s, sol) = gw
        .call(
            "POST",
            "/v1/catalogue/solutions",
            Some(&mgp),
            Some(json!({
                "vendor": "Acme", "name": "Résumé", "version": "1.0",
                "licence": {"spdx": "EUPL-1.2"},
                "hosting": {"provider": "Scaleway", "dataLocation": "FR", "extraEuTransfer": false},
                "aiActRiskClass": "minimal", "criteria": {}
            })),
        )
        .await;
    assert_eq!(s, 201, "{sol}");
    let sol = sol["id"].as_str().unwrap().to_owned();
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = gw
        .call(
            "POST",
            &format!("/v1/sandboxes/{SB}/members"),
            Some(&alice),
            Some(json!({"subject": "victor"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let a = run_row("run-0000000000a1", "victor", &sol, "request");
    let b = run_row("run-0000000000b2", "bob", &sol, "request");
    let c = run_row("run-0000000000c3", "bob", &sol, "document");
    for r in [&a, &b, &c] {
        seed(&gw, r).await;
    }
    let runs = format!("/v1/sandboxes/{SB}/runs");

    // The requester answers the checklist before the run closes; nobody else does.
    let practices = format!("{runs}/{}/practices", a.name);
    let answers = json!({"answers": [
        {"id": "model.smallest", "answer": "yes", "comment": "3B rather than 70B"},
        {"id": "data.minimise", "answer": "partly"}
    ]});
    let (s, v) = gw
        .call("PUT", &practices, Some(&victor), Some(answers.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["method"], "declared");
    assert_eq!(v["answeredBy"], "victor");
    let got = gw
        .call("PUT", &practices, Some(&bob), Some(answers.clone()))
        .await;
    assert_eq!(got.0, 403, "{}", got.1);
    let got = gw
        .call(
            "PUT",
            &practices,
            Some(&victor),
            Some(json!({"answers": [{"id": "nope", "answer": "yes"}]})),
        )
        .await;
    assert_error(&got, 422, "validation_failed");

    let app = gw.app();
    app.accountant
        .pass(Utc::now(), &app.tenants)
        .await
        .expect("accounting pass");

    // JSON: the run's phase with each figure's value, method class and range.
    let report = format!("{runs}/{}/report", a.name);
    let (s, r) = gw.call("GET", &report, Some(&victor), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["finalFigures"], true, "{r}");
    let phase = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["observed"] == true)
        .expect("observed phase");
    assert_eq!(phase["phase"], "inference");
    let x = &phase["figures"];
    // 6.25 W × (0.25 × 40 + 0.75 × 20) core-s = 156.25 J; DRAM 0.392 W/GB × 80 GB-s.
    let cpu_kwh = 156.25 / 3.6e6;
    let it_kwh = (156.25 + 0.392 * 80.0) / 3.6e6;
    let cpu = &x["energy"]["cpu"];
    let close = |v: &Value, e: f64| (v.as_f64().unwrap() - e).abs() <= 1e-12;
    assert!(close(&cpu["value"], cpu_kwh), "{cpu}");
    assert_eq!(cpu["method"], "modelled");
    assert!(close(&cpu["low"], cpu_kwh * 0.45) && close(&cpu["high"], cpu_kwh * 2.2));
    assert!(close(&x["energy"]["meter"]["value"], it_kwh * 1.5));
    assert!(close(
        &x["emissions"]["operational"]["value"],
        it_kwh * 1.5 * 56.0
    ));
    assert_eq!(x["emissions"]["factor"]["year"], 2024);
    let used = &x["compute"]["cpuCoreHoursUsed"];
    assert_eq!(
        (&used["method"], &used["methodDetail"]),
        (&json!("measured"), &json!("cadvisor"))
    );
    assert!(close(&used["value"], 20.0 / 3600.0));
    assert_eq!(x["storageGbHours"]["value"], Value::Null);
    assert_eq!(x["dataReadBytes"]["value"], 0.0, "no grants: nothing read");
    assert_eq!(x["outputBytes"]["method"], "unknown", "no cluster here");
    let per_unit = &phase["perUnit"];
    assert_eq!(
        (&per_unit["functionalUnit"], &per_unit["count"]),
        (&json!("request"), &json!(1000))
    );
    assert!(close(&per_unit["kwh"]["value"], it_kwh * 1.5 / 1000.0));
    assert!(close(
        &r["sci"]["value"]["value"],
        it_kwh * 1.5 * 56.0 / 1000.0
    ));
    assert_eq!(r["sci"]["functionalUnitMethod"], "declared");
    // The checklist, declared, apart from the figures.
    assert_eq!(r["practices"]["answeredBy"], "victor");
    let items = r["practices"]["items"].as_array().unwrap();
    let smallest = items.iter().find(|i| i["id"] == "model.smallest").unwrap();
    assert_eq!(smallest["answer"], "yes");
    // Comparisons: b counts the same unit with the same method class; c does not.
    let (_, r_bob) = gw.call("GET", &report, Some(&bob), None).await;
    let by_run = |v: &Value, run: &str| -> Value {
        v["comparison"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["run"] == run)
            .cloned()
            .unwrap_or_else(|| panic!("{run} in {v}"))
    };
    assert_eq!(by_run(&r_bob, &b.name)["comparable"], true, "{r_bob}");
    let other = by_run(&r_bob, &c.name);
    assert_eq!(other["comparable"], false);
    assert!(
        other["notComparable"]
            .as_str()
            .unwrap()
            .contains("functional unit"),
        "{other}"
    );

    // CSV: the same figures, one row each.
    let csv = gw
        .get_text(&format!("{report}?format=csv"), Some(&victor), "text/csv")
        .await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let row = rows
        .iter()
        .find(|x| &x[0] == "figure" && &x[2] == "energy_cpu_kwh")
        .expect("cpu row");
    assert_eq!(row[3].parse::<f64>().ok(), cpu["value"].as_f64());
    assert_eq!(row[7].to_owned(), "modelled");
    let answered: Vec<_> = rows
        .iter()
        .filter(|x| &x[0] == "declared_practices" && !x[3].is_empty())
        .map(|x| (x[2].to_owned(), x[3].to_owned()))
        .collect();
    assert_eq!(
        answered,
        [
            ("data.minimise".to_owned(), "partly".to_owned()),
            ("model.smallest".to_owned(), "yes".to_owned())
        ]
    );
    // HTML: the same document as a page.
    let page = gw
        .get_text(&format!("{report}?format=html"), Some(&victor), "text/html")
        .await;
    assert!(page.contains("Good practices, as declared by the vendor"));
    assert!(page.contains("3B rather than 70B"));

    // Closed, and the run names a solution: the checklist no longer changes.
    let got = gw
        .call("PUT", &practices, Some(&victor), Some(answers))
        .await;
    assert_error(&got, 409, "conflict");
    gw.stop().await;
}
