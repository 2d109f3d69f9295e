//! The catalogue of AI solutions over HTTP, against SQLite and PostgreSQL: create,
//! propose, publish and who sees what; the environmental criterion refused on input and
//! derived from trial results recorded from runs (hand-entered ones are declared, never
//! counted); prohibited systems never published; the JSON, CSV
//! and DCAT-AP exports.

mod support;

use serde_json::{Value, json};
use support::groups::{EE_DATA, MGP};
use support::local_gateway as gateway;
use support::{Backend, Gateway, assert_error};

async fn post(gw: &Gateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    gw.call("POST", path, Some(token), Some(body)).await
}

async fn get(gw: &Gateway, path: &str, token: &str) -> (u16, Value) {
    gw.call("GET", path, Some(token), None).await
}

async fn patch(gw: &Gateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    gw.call("PATCH", path, Some(token), Some(body)).await
}

const SOLUTIONS: &str = "/v1/catalogue/solutions";

fn entry(vendor: &str, name: &str, risk: &str) -> Value {
    json!({
        "vendor": vendor,
        "name": name,
        "version": "2.1",
        "description": "Summarises council deliberations",
        "licence": {"spdx": "EUPL-1.2"},
        "hosting": {"provider": "Scaleway", "dataLocation": "FR", "extraEuTransfer": false},
        "aiActRiskClass": risk,
        "gdprNotes": "No personal data leaves the sandbox",
        "criteria": {
            "innovation": {"score": 4, "evidence": [{"title": "Pilot report", "url": "https://example.org/pilot"}]},
            "fitToNeeds": {"score": 3, "evidence": [{"title": "Interviews", "text": "Five EPTs asked for it"}]}
        }
    })
}

/// Assert a 422 naming `field` with `rule`.
#[track_caller]
fn assert_issue(got: &(u16, Value), field: &str, rule: &str) {
    assert_error(got, 422, "validation_failed");
    let details = got.1["error"]["details"].as_array().expect("details");
    assert!(
        details
            .iter()
            .any(|d| d["field"] == field && d["rule"] == rule),
        "expected {field}/{rule} in {}",
        got.1
    );
}

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn result(run: &str, phase: &str, kwh: f64, gco2e: f64, units: Option<f64>) -> Value {
    let mut r = json!({
        "runId": run, "tenant": "est-ensemble", "sandbox": "est-ensemble--trial",
        "phase": phase, "kwh": kwh, "gco2e": gco2e, "durationS": 3600.0,
        "measuredAt": "2026-05-01T10:00:00Z",
        "method": {"estimated": false, "meter": "nvml+rapl"}
    });
    if let Some(u) = units {
        r["functionalUnits"] = json!(u);
        r["quality"] = json!({"metric": "rougeL", "value": 0.41});
    }
    r
}

/// A result recorded from a trial run by the gateway's accounting (the only kind that
/// counts as measured), written to the store as the accounting does when a run closes:
/// signed with the gateway's key.
#[allow(clippy::too_many_arguments)]
async fn measured(
    gw: &Gateway,
    solution: &str,
    run: &str,
    phase: &str,
    kwh: f64,
    gco2e: f64,
    units: Option<f64>,
    estimated: bool,
) {
    let mut row = from_run(solution, run, phase, kwh, gco2e, units, estimated);
    serre_api::catalogue::attestation::sign(&gw.app().data.audit_signer, &mut row);
    gw.app()
        .store
        .attach_trial_result(&row)
        .await
        .expect("result recorded");
}

/// A result as a run would attach it, unsigned.
fn from_run(
    solution: &str,
    run: &str,
    phase: &str,
    kwh: f64,
    gco2e: f64,
    units: Option<f64>,
    estimated: bool,
) -> serre_api::store::TrialResultRow {
    let now = serre_api::store::timestamp(chrono::Utc::now());
    serre_api::store::TrialResultRow {
        id: uuid::Uuid::new_v4().to_string(),
        solution_id: solution.into(),
        run_id: run.into(),
        tenant: "est-ensemble".into(),
        sandbox: "est-ensemble--trial".into(),
        phase: phase.into(),
        kwh,
        gco2e,
        duration_s: 3600.0,
        functional_units: units,
        quality_metric: None,
        quality_value: None,
        measured_at: "2026-05-01T10:00:00Z".into(),
        method_json: json!({"estimated": estimated, "meter": "nvml+rapl"}).to_string(),
        recorded_by: serre_api::catalogue::RUN_RECORDER.into(),
        recorded_at: now,
        resources_json: None,
        signature: None,
        key_id: None,
    }
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-9)
}

both_backends!(
    propose_publish_and_who_sees_what,
    the_environmental_criterion_is_derived_from_measured_runs,
    a_prohibited_system_is_never_published,
    exports_hold_the_published_entries,
);

async fn propose_publish_and_who_sees_what(backend: Backend) {
    let gw = gateway(backend).await;
    let mgp = gw.token("mgp-admin", MGP);
    let vera = gw.token("vera", &[]); // a vendor: no tenant
    let victor = gw.token("victor", &[]); // another vendor
    let bob = gw.token("bob", EE_DATA); // a tenant member

    // A Métropole admin's entry is published at once; derived facts are shown.
    let (s, published) = post(&gw, SOLUTIONS, &mgp, entry("Acme", "Résumé", "limited")).await;
    assert_eq!(s, 201, "{published}");
    assert_eq!(published["status"], "published");
    assert_eq!(published["proposedBy"], Value::Null);
    assert_eq!(
        published["licence"],
        json!({"spdx": "EUPL-1.2", "free": true})
    );
    assert_eq!(published["hosting"]["sovereign"], true);
    assert_eq!(published["criteria"]["innovation"]["score"], 4);
    assert_eq!(
        published["criteria"]["dataSovereignty"]["score"],
        Value::Null
    );
    assert_eq!(
        published["criteria"]["environmentalImpact"]["score"],
        Value::Null
    );
    assert_eq!(
        published["criteria"]["environmentalImpact"]["assessment"]["runs"],
        0
    );
    assert!(published["publishedAt"].as_str().is_some());
    let pub_id = published["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&pub_id).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(published["createdAt"].as_str().unwrap()).is_ok());

    // A vendor proposes; not free, not sovereign.
    let mut body = entry("Vera SAS", "Traduction", "minimal");
    body["licence"] = json!({"spdx": "LicenseRef-Proprietary"});
    body["hosting"] =
        json!({"provider": "Big Cloud", "dataLocation": "US", "extraEuTransfer": true});
    let (s, proposal) = post(&gw, SOLUTIONS, &vera, body).await;
    assert_eq!(s, 201, "{proposal}");
    assert_eq!(proposal["status"], "proposed");
    assert_eq!(proposal["proposedBy"], "vera");
    assert_eq!(proposal["licence"]["free"], false);
    assert_eq!(proposal["hosting"]["sovereign"], false);
    assert_eq!(proposal["publishedAt"], Value::Null);
    let prop_id = proposal["id"].as_str().unwrap().to_owned();
    let prop_path = format!("{SOLUTIONS}/{prop_id}");

    // Tenant members read but do not write.
    let got = post(&gw, SOLUTIONS, &bob, entry("Bob", "X", "minimal")).await;
    assert_error(&got, 403, "forbidden");
    let got = patch(
        &gw,
        &format!("{SOLUTIONS}/{pub_id}"),
        &bob,
        json!({"description": "mine"}),
    )
    .await;
    assert_error(&got, 403, "forbidden");

    // Who sees what.
    let list = |t: String| {
        let gw = &gw;
        async move { get(gw, SOLUTIONS, &t).await }
    };
    let (s, l) = list(bob.clone()).await;
    assert_eq!((s, ids(&l)), (200, vec![pub_id.clone()]));
    let (_, l) = list(victor.clone()).await;
    assert_eq!(ids(&l), vec![pub_id.clone()]);
    let (_, l) = list(vera.clone()).await;
    assert_eq!(ids(&l), sorted(vec![pub_id.clone(), prop_id.clone()]));
    let (_, l) = list(mgp.clone()).await;
    assert_eq!(ids(&l), sorted(vec![pub_id.clone(), prop_id.clone()]));
    let (_, l) = get(&gw, &format!("{SOLUTIONS}?status=proposed"), &mgp).await;
    assert_eq!(ids(&l), vec![prop_id.clone()]);
    let (s, one) = get(&gw, &format!("{SOLUTIONS}/{pub_id}"), &bob).await;
    assert_eq!((s, one["id"].as_str()), (200, Some(pub_id.as_str())));
    // Others' proposals answer as if they did not exist.
    assert_error(&get(&gw, &prop_path, &victor).await, 404, "not_found");
    assert_error(&get(&gw, &prop_path, &bob).await, 404, "not_found");
    let got = patch(&gw, &prop_path, &victor, json!({"name": "Mine"})).await;
    assert_error(&got, 404, "not_found");
    assert_error(
        &get(&gw, &format!("{SOLUTIONS}/not-a-uuid"), &mgp).await,
        404,
        "not_found",
    );
    assert_error(
        &get(&gw, &format!("{SOLUTIONS}/{}", uuid::Uuid::new_v4()), &mgp).await,
        404,
        "not_found",
    );

    // The vendor edits its proposal, but not its status.
    let (s, edited) = patch(
        &gw,
        &prop_path,
        &vera,
        json!({"description": "Translates, now with glossary",
                        "criteria": {"dataSovereignty": {"score": 1, "evidence": []}}}),
    )
    .await;
    assert_eq!(s, 200, "{edited}");
    assert_eq!(edited["description"], "Translates, now with glossary");
    assert_eq!(edited["criteria"]["dataSovereignty"]["score"], 1);
    assert_eq!(edited["criteria"]["innovation"]["score"], 4, "others kept");
    let got = patch(&gw, &prop_path, &vera, json!({"status": "published"})).await;
    assert_error(&got, 403, "forbidden");

    // A Métropole admin publishes; the vendor may no longer edit it; everyone sees it.
    let (s, done) = patch(&gw, &prop_path, &mgp, json!({"status": "published"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "published");
    assert!(done["publishedAt"].as_str().is_some());
    assert_eq!(done["updatedBy"], "mgp-admin");
    let got = patch(&gw, &prop_path, &vera, json!({"description": "late"})).await;
    assert_error(&got, 403, "forbidden");
    let (_, l) = list(bob.clone()).await;
    assert_eq!(ids(&l), sorted(vec![pub_id.clone(), prop_id.clone()]));
    let (s, _) = get(&gw, &prop_path, &victor).await;
    assert_eq!(s, 200);

    // Every change is in the audit log.
    let (s, page) = get(&gw, "/v1/audit?limit=1000", &mgp).await;
    assert_eq!(s, 200, "{page}");
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "change")
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("catalogue."))
        .collect();
    assert_eq!(
        actions,
        vec![
            "catalogue.solution.created",
            "catalogue.solution.proposed",
            "catalogue.solution.updated",
            "catalogue.solution.published",
        ],
        "{page}"
    );
    gw.stop().await;
}

async fn the_environmental_criterion_is_derived_from_measured_runs(backend: Backend) {
    let gw = gateway(backend).await;
    let mgp = gw.token("mgp-admin", MGP);
    let vera = gw.token("vera", &[]);
    let bob = gw.token("bob", EE_DATA);

    // Never typed in, on creation or change.
    let mut body = entry("Acme", "Résumé", "limited");
    body["criteria"]["environmentalImpact"] = json!({"score": 5, "evidence": []});
    let got = post(&gw, SOLUTIONS, &mgp, body).await;
    assert_issue(&got, "criteria.environmentalImpact", "derived");
    let mut body = entry("Vera SAS", "Résumé", "limited");
    body["criteria"]["environmentalImpact"] = Value::Null;
    let got = post(&gw, SOLUTIONS, &vera, body).await;
    assert_issue(&got, "criteria.environmentalImpact", "derived");
    let (s, created) = post(&gw, SOLUTIONS, &mgp, entry("Acme", "Résumé", "limited")).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("{SOLUTIONS}/{id}");
    let got = patch(
        &gw,
        &path,
        &mgp,
        json!({"criteria": {"environmentalImpact": {"score": 5}}}),
    )
    .await;
    assert_issue(&got, "criteria.environmentalImpact", "derived");
    let got = patch(
        &gw,
        &path,
        &mgp,
        json!({"licence": {"spdx": "MIT", "free": true}}),
    )
    .await;
    assert_issue(&got, "licence.free", "derived");

    // Only Métropole admins attach results.
    let results = format!("{path}/results");
    let r1 = result("run-1", "training", 12.0, 600.0, None);
    assert_error(
        &post(&gw, &results, &vera, r1.clone()).await,
        403,
        "forbidden",
    );
    assert_error(
        &post(&gw, &results, &bob, r1.clone()).await,
        403,
        "forbidden",
    );
    let bad = json!({
        "runId": "run-9", "tenant": "nowhere", "sandbox": "x", "phase": "serving",
        "kwh": -1.0, "gco2e": 1.0, "durationS": 1.0, "functionalUnits": 0.0,
        "measuredAt": "yesterday"
    });
    let got = post(&gw, &results, &mgp, bad).await;
    for (field, rule) in [
        ("tenant", "unknown_tenant"),
        ("phase", "one_of"),
        ("kwh", "non_negative"),
        ("functionalUnits", "positive"),
        ("measuredAt", "timestamp_syntax"),
    ] {
        assert_issue(&got, field, rule);
    }

    // Entered by hand: declared, kept and shown, never counted — even with
    // `estimated: false`.
    let mut r1 = r1;
    r1["runId"] = json!("outside-1");
    let (s, v) = post(&gw, &results, &mgp, r1).await;
    assert_eq!(s, 201, "{v}");
    let env = &v["criteria"]["environmentalImpact"];
    assert_eq!(env["score"], Value::Null, "{env}");
    assert_eq!(env["assessment"]["runs"], 0);
    assert_eq!(env["assessment"]["declaredResults"], 1);
    assert_eq!(v["results"][0]["method"]["declared"], true);

    // Recorded from trial runs by the gateway's accounting: run 1 trains (12 kWh, 600 g,
    // no units) and serves 1000 requests (0.6 kWh, 30 g); run 2 serves 2000 requests
    // (0.9 kWh, 45 g). Per unit: 1.5 kWh / 3000 = 0.0005 kWh = 0.5 Wh → score 4
    // (0.3 < 0.5 ≤ 1); 75 g / 3000 = 0.025 g.
    measured(&gw, &id, "run-1", "training", 12.0, 600.0, None, false).await;
    let (_, v) = get(&gw, &path, &bob).await;
    let env = &v["criteria"]["environmentalImpact"];
    assert_eq!(env["score"], Value::Null, "no units yet: {env}");
    assert_eq!(env["assessment"]["runs"], 1);
    measured(
        &gw,
        &id,
        "run-1",
        "inference",
        0.6,
        30.0,
        Some(1000.0),
        false,
    )
    .await;
    measured(
        &gw,
        &id,
        "run-2",
        "inference",
        0.9,
        45.0,
        Some(2000.0),
        false,
    )
    .await;
    // An estimate is kept but not counted.
    measured(
        &gw,
        &id,
        "run-3",
        "inference",
        100.0,
        5000.0,
        Some(10.0),
        true,
    )
    .await;
    // Same run and phase twice: a conflict.
    let got = post(
        &gw,
        &results,
        &mgp,
        result("run-2", "inference", 1.0, 1.0, Some(1.0)),
    )
    .await;
    assert_error(&got, 409, "conflict");

    // Shown on every view, to everyone.
    let (s, v) = get(&gw, &path, &bob).await;
    assert_eq!(s, 200);
    let env = &v["criteria"]["environmentalImpact"];
    let a = &env["assessment"];
    assert_eq!(env["score"], 4, "{env}");
    assert_eq!(a["score"], 4);
    assert_eq!(a["runs"], 2);
    assert_eq!(a["results"], 3);
    assert_eq!(a["estimatedResults"], 1);
    assert_eq!(a["declaredResults"], 1);
    assert!(close(&a["totalKwh"], 13.5), "{a}");
    assert!(close(&a["totalGco2e"], 675.0), "{a}");
    assert!(close(&a["functionalUnits"], 3000.0), "{a}");
    assert!(close(&a["kwhPerUnit"], 0.0005), "{a}");
    assert!(close(&a["whPerUnit"], 0.5), "{a}");
    assert!(close(&a["gco2ePerUnit"], 0.025), "{a}");
    let (_, l) = get(&gw, SOLUTIONS, &vera).await;
    assert_eq!(l[0]["criteria"]["environmentalImpact"]["score"], 4);
    let counted: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["countedAs"].as_str().unwrap())
        .collect();
    assert_eq!(
        sorted(counted.iter().map(|s| s.to_string()).collect()),
        ["declared", "measured", "measured", "measured", "modelled"]
    );

    // Written to the database as if from a run, without the gateway's signature: shown
    // as unverified, never scored (an absurdly good figure changes nothing).
    let forged = from_run(&id, "run-4", "inference", 0.000_001, 0.0, Some(1e6), false);
    gw.app()
        .store
        .attach_trial_result(&forged)
        .await
        .expect("row written");
    let (_, v) = get(&gw, &path, &bob).await;
    let a = &v["criteria"]["environmentalImpact"]["assessment"];
    assert_eq!(
        (a["unverifiedResults"].as_u64(), a["score"].as_i64()),
        (Some(1), Some(4)),
        "{a}"
    );
    assert!(close(&a["whPerUnit"], 0.5), "{a}");
    // An attached result is immutable in the database itself.
    let edit = gw
        .app()
        .store
        .execute_raw("UPDATE catalogue_trial_results SET kwh = 0.000001")
        .await;
    assert!(edit.is_err(), "{edit:?}");
    // Each signed result checks with the gateway's published public key, offline.
    let (s, key) = get(&gw, "/v1/catalogue/signing-key", &bob).await;
    assert_eq!(s, 200, "{key}");
    let verifier = serre_crypto::CertificateVerifier::from_public_key_pem(
        key["publicKeyPem"].as_str().unwrap(),
    )
    .expect("public key");
    let mut checked = 0;
    for r in v["results"].as_array().unwrap() {
        let Some(att) = r.get("attestation").filter(|a| !a.is_null()) else {
            let unsigned = [json!("declared"), json!("unverified")];
            assert!(unsigned.contains(&r["countedAs"]), "{r}");
            continue;
        };
        assert_eq!(att["keyId"], key["keyId"]);
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            att["payload"].as_str().unwrap(),
        )
        .unwrap();
        verifier
            .verify_bytes(
                &payload,
                att["signature"].as_str().unwrap(),
                att["keyId"].as_str().unwrap(),
            )
            .expect("signature verifies");
        let signed: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(signed["runId"], r["runId"]);
        assert_eq!(signed["kwh"], r["kwh"]);
        assert_eq!(signed["solutionId"], json!(id));
        checked += 1;
    }
    assert_eq!(checked, 4);

    // The hand attachment is audited, in the tenant the run belonged to, as declared.
    let (_, page) = get(&gw, "/v1/audit?limit=1000", &mgp).await;
    let attached: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "catalogue.result.attached")
        .collect();
    assert_eq!(attached.len(), 1, "{page}");
    assert_eq!(attached[0]["tenant"], "est-ensemble");
    assert_eq!(attached[0]["details"]["method"]["declared"], true);
    gw.stop().await;
}

async fn a_prohibited_system_is_never_published(backend: Backend) {
    let gw = gateway(backend).await;
    let mgp = gw.token("mgp-admin", MGP);
    let vera = gw.token("vera", &[]);

    let got = post(
        &gw,
        SOLUTIONS,
        &mgp,
        entry("Acme", "Notation", "prohibited"),
    )
    .await;
    assert_issue(&got, "aiActRiskClass", "not_publishable");

    let (s, p) = post(
        &gw,
        SOLUTIONS,
        &vera,
        entry("Vera SAS", "Notation", "prohibited"),
    )
    .await;
    assert_eq!((s, &p["status"]), (201, &json!("proposed")), "{p}");
    let path = format!("{SOLUTIONS}/{}", p["id"].as_str().unwrap());
    let got = patch(&gw, &path, &mgp, json!({"status": "published"})).await;
    assert_issue(&got, "status", "not_publishable");
    let (s, r) = patch(&gw, &path, &mgp, json!({"status": "rejected"})).await;
    assert_eq!((s, &r["status"]), (200, &json!("rejected")), "{r}");
    // The vendor still sees its rejected proposal but may not change it.
    let (s, _) = get(&gw, &path, &vera).await;
    assert_eq!(s, 200);
    let got = patch(&gw, &path, &vera, json!({"aiActRiskClass": "high"})).await;
    assert_error(&got, 403, "forbidden");

    // A published entry cannot become prohibited.
    let (_, ok) = post(&gw, SOLUTIONS, &mgp, entry("Acme", "Tri", "high")).await;
    let got = gw
        .call(
            "PATCH",
            &format!("{SOLUTIONS}/{}", ok["id"].as_str().unwrap()),
            Some(&mgp),
            Some(json!({"aiActRiskClass": "prohibited"})),
        )
        .await;
    assert_issue(&got, "aiActRiskClass", "not_publishable");

    // Other rules name the field.
    let mut bad = entry("", "X", "unacceptable");
    bad["hosting"]["dataLocation"] = json!("France");
    bad["criteria"]["innovation"]["score"] = json!(9);
    let got = post(&gw, SOLUTIONS, &mgp, bad).await;
    for (field, rule) in [
        ("vendor", "required"),
        ("aiActRiskClass", "one_of"),
        ("hosting.dataLocation", "country_code"),
        ("criteria.innovation.score", "range"),
    ] {
        assert_issue(&got, field, rule);
    }
    let got = post(&gw, SOLUTIONS, &mgp, json!({"vendor": "Acme"})).await;
    assert_issue(&got, "name", "required");
    gw.stop().await;
}

async fn exports_hold_the_published_entries(backend: Backend) {
    let gw = gateway(backend).await;
    let mgp = gw.token("mgp-admin", MGP);
    let vera = gw.token("vera", &[]);
    let bob = gw.token("bob", EE_DATA);

    let mut a = entry("Acme, \"the\" vendor", "Résumé", "limited");
    a["description"] = json!("Line one, with a comma\nand \"quotes\" on line two");
    let (_, a) = post(&gw, SOLUTIONS, &mgp, a).await;
    let mut b = entry("Beta", "Tri", "minimal");
    b["licence"] = json!({"spdx": "LicenseRef-Proprietary"});
    let (_, b) = post(&gw, SOLUTIONS, &mgp, b).await;
    let (s, _) = post(
        &gw,
        SOLUTIONS,
        &vera,
        entry("Vera SAS", "Hidden", "minimal"),
    )
    .await;
    assert_eq!(s, 201);
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_id = b["id"].as_str().unwrap().to_owned();
    // 2 Wh per unit: score 3.
    measured(
        &gw,
        &a_id,
        "run-1",
        "inference",
        2.0,
        100.0,
        Some(1000.0),
        false,
    )
    .await;

    // JSON: the published entries only.
    let (s, json_export) = get(&gw, "/v1/catalogue/export?format=json", &bob).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&json_export), sorted(vec![a_id.clone(), b_id.clone()]));
    let (_, default) = get(&gw, "/v1/catalogue/export", &bob).await;
    assert_eq!(ids(&default), ids(&json_export));

    // CSV: one row per solution, read back with the csv crate.
    let body = gw
        .get_text("/v1/catalogue/export?format=csv", Some(&bob), "text/csv")
        .await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    for col in [
        "id",
        "vendor",
        "licence_free",
        "hosting_sovereign",
        "ai_act_risk_class",
        "score_technological_added_value",
        "score_innovation",
        "score_fit_to_needs",
        "score_data_sovereignty",
        "score_legal_framework",
        "score_environmental_impact",
        "environmental_wh_per_unit",
    ] {
        assert!(header.contains(&col.to_owned()), "{col} in {header:?}");
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    let row_a = rows
        .iter()
        .find(|r| r[col("id")] == *a_id)
        .expect("a's row");
    let row_b = rows
        .iter()
        .find(|r| r[col("id")] == *b_id)
        .expect("b's row");
    assert_eq!(&row_a[col("vendor")], "Acme, \"the\" vendor");
    assert_eq!(
        &row_a[col("description")],
        "Line one, with a comma\nand \"quotes\" on line two"
    );
    assert_eq!(&row_a[col("score_innovation")], "4");
    assert_eq!(&row_a[col("score_data_sovereignty")], "", "not assessed");
    assert_eq!(&row_a[col("score_environmental_impact")], "3");
    assert_eq!(&row_a[col("environmental_wh_per_unit")], "2");
    assert_eq!(&row_a[col("licence_free")], "true");
    assert_eq!(&row_b[col("licence_free")], "false");
    assert_eq!(&row_b[col("score_environmental_impact")], "");

    // DCAT-AP JSON-LD.
    let (s, headers, body) = gw
        .call_raw("GET", "/v1/catalogue/export?format=dcat", Some(&bob), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(headers["content-type"], "application/ld+json");
    let doc: Value = serde_json::from_slice(&body).expect("JSON-LD is JSON");
    let ctx = &doc["@context"];
    assert_eq!(ctx["dcat"], "http://www.w3.org/ns/dcat#");
    assert_eq!(ctx["dct"], "http://purl.org/dc/terms/");
    assert_eq!(ctx["foaf"], "http://xmlns.com/foaf/0.1/");
    assert_eq!(ctx["adms"], "http://www.w3.org/ns/adms#");
    assert_eq!(doc["@type"], "dcat:Catalog");
    let services = doc["dcat:service"].as_array().expect("dcat:service");
    assert_eq!(services.len(), 2);
    let sa = services
        .iter()
        .find(|s| s["dct:identifier"] == *a_id)
        .expect("a in DCAT");
    assert_eq!(sa["@id"], format!("urn:uuid:{a_id}"));
    assert_eq!(sa["@type"], "dcat:DataService");
    assert_eq!(sa["dct:title"], "Résumé");
    assert_eq!(
        sa["dct:publisher"]["@type"],
        json!(["foaf:Agent", "foaf:Organization"])
    );
    assert_eq!(sa["dct:publisher"]["foaf:name"], "Acme, \"the\" vendor");
    assert_eq!(
        sa["dct:license"]["@id"],
        "http://spdx.org/licenses/EUPL-1.2"
    );
    assert_eq!(sa["owl:versionInfo"], "2.1");
    assert_eq!(sa["dct:issued"]["@value"], a["publishedAt"]);
    assert_eq!(sa["dct:issued"]["@type"], "xsd:dateTime");
    // Modified when the trial result moved the environmental score.
    let modified = sa["dct:modified"]["@value"].as_str().unwrap();
    assert!(modified > a["updatedAt"].as_str().unwrap(), "{sa}");
    assert!(chrono::DateTime::parse_from_rfc3339(modified).is_ok());
    let sb = services
        .iter()
        .find(|s| s["dct:identifier"] == *b_id)
        .expect("b in DCAT");
    assert_eq!(sb["dct:modified"]["@value"], b["updatedAt"]);
    assert!(
        sa["dcat:keyword"]
            .as_array()
            .unwrap()
            .contains(&json!("ai-act:limited"))
    );
    assert_eq!(sa["serre:scores"]["serre:environmentalImpact"], 3);

    // The official DCAT-AP 3.0.1 SHACL shapes accept it (pySHACL), and data.gouv.fr's
    // harvester finds what it reads for a dcat:DataService.
    let checked = dcat_ap_check(&body);
    assert_eq!(
        checked["conforms"],
        true,
        "{}",
        checked["report"].as_str().unwrap_or_default()
    );
    assert_eq!(
        checked["mutantConforms"], false,
        "the shapes are not vacuous"
    );
    let harvested = checked["services"].as_array().expect("services");
    assert_eq!(harvested.len(), 2);
    let ha = harvested
        .iter()
        .find(|s| s["identifier"] == *a_id)
        .expect("a harvested");
    assert_eq!(ha["uri"], format!("urn:uuid:{a_id}"));
    assert_eq!(ha["title"], "Résumé");
    assert_eq!(
        ha["description"],
        "Line one, with a comma\nand \"quotes\" on line two"
    );
    assert!(
        ha["endpointURL"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/catalogue/solutions/{a_id}")),
        "{ha}"
    );
    assert!(
        ha["endpointDescription"]
            .as_str()
            .unwrap()
            .ends_with("/openapi.json")
    );
    assert_eq!(ha["license"], "http://spdx.org/licenses/EUPL-1.2");
    assert_eq!(
        (
            ha["issuedIsDateTime"].as_bool(),
            ha["modifiedIsDateTime"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert!(
        ha["keywords"]
            .as_array()
            .unwrap()
            .contains(&json!("ai-act:limited"))
    );

    // The structured documents are in the OpenAPI document.
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    for schema in [
        "RunReport",
        "Frugality",
        "PhaseReport",
        "ReportFigure",
        "Sci",
        "PracticeChecklist",
        "Attestation",
        "SigningKey",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    for (path, method) in [
        ("/v1/catalogue/signing-key", "get"),
        ("/v1/sandboxes/{name}/runs/{id}/practices", "put"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }

    let got = get(&gw, "/v1/catalogue/export?format=xml", &bob).await;
    assert_issue(&got, "format", "one_of");
    gw.stop().await;
}

/// Validate a DCAT-AP export with pySHACL against the official shapes kept in
/// api/tests/fixtures/dcat-ap/, and read it as data.gouv.fr's harvester does
/// (api/tests/dcat_ap_check.py). The Python with pySHACL: `SERRE_PYSHACL_PYTHON`
/// (deploy/dev/test.sh sets it to its cached venv), else that venv's usual place. Its
/// absence is a failure, never a skip.
fn dcat_ap_check(export: &[u8]) -> Value {
    let root = support::repo_root();
    let python = std::env::var_os("SERRE_PYSHACL_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/serre/python-pyshacl-0.40.1/bin/python3")
        });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.jsonld");
    std::fs::write(&file, export).expect("write export");
    let shapes = root.join("api/tests/fixtures/dcat-ap");
    let out = std::process::Command::new(&python)
        .arg(root.join("api/tests/dcat_ap_check.py"))
        .arg(&file)
        .arg(shapes.join("dcat-ap-SHACL.ttl"))
        .arg(shapes.join("ranges.ttl"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (a Python with pyshacl 0.40.1: deploy/dev/test.sh installs it, or set SERRE_PYSHACL_PYTHON): {e}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "dcat_ap_check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dcat_ap_check.py prints JSON")
}
