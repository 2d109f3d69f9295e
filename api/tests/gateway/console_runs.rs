//! The web console over HTTP: a sandbox's runs, their status, log, results and report;
//! runs started, cancelled and followed from the console (helpers: `console.rs`).

mod support;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use support::groups::{EE_ADMIN, EE_DATA, MONTREUIL_ADMIN};
use support::{Backend, local_gateway, sandbox_body};

use crate::console::{client, get, ledger_row, post_form, session};

/// A finished run of `sandbox` as the gateway records it (no cluster in these tests: the
/// row is written to the gateway's store, as tests/trust_boundaries.rs does).
fn finished_run(name: &str, sandbox: &str, by: &str) -> serre_api::store::RunRow {
    let spec = serde_json::json!({
        "sandbox": sandbox, "image": "registry.example.fr/vendors/model:1",
        "resources": {"cpu": "1", "memory": "1Gi"},
        "kind": "inference", "timeoutSeconds": 600, "requestedBy": by,
    });
    let spec: serre_resources::TrialRunSpec = serde_json::from_value(spec).expect("spec");
    let now = chrono::Utc::now();
    let at = |d: i64| (now - chrono::Duration::minutes(d)).to_rfc3339();
    serre_api::store::RunRow {
        name: name.into(),
        namespace: format!("serre-{sandbox}"),
        sandbox: sandbox.into(),
        tenant: "est-ensemble".into(),
        solution: None,
        kind: "inference".into(),
        requested_by: by.into(),
        spec_json: serde_json::to_string(&spec).expect("spec json"),
        created_at: at(30),
        phase: "Succeeded".into(),
        started_at: Some(at(20)),
        finished_at: Some(at(10)),
        exit_reason: Some("Completed".into()),
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    }
}

#[tokio::test]
async fn a_sandbox_runs_their_status_log_results_and_report_show_to_its_tenant_only() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "bus", 10)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let sb = "est-ensemble--bus";
    let app = gw.app();
    app.store
        .insert_run(&finished_run("run-000000000042", sb, "alice"))
        .await
        .expect("run");
    // The run's own ledger rows (what the accounting records from the cluster's figures).
    let mut row = ledger_row(
        chrono::Utc::now() - chrono::Duration::minutes(15),
        "est-ensemble",
        &format!("serre-{sb}"),
        0.002,
        "modelled",
    );
    row.run = "run-000000000042".into();
    app.store
        .record_usage_window(chrono::Utc::now(), &[row])
        .await
        .expect("ledger");
    app.accountant
        .pass(chrono::Utc::now(), &app.tenants)
        .await
        .expect("accounting pass");

    let cookie = session(&gw, &alice, "csrf-alice");
    let base = format!("/console/bacs-a-sable/{sb}/executions");
    let (s, _, html) = get(&gw, &format!("/console/bacs-a-sable/{sb}"), Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&format!("href=\"{base}\"")), "{html}");
    let (s, _, html) = get(&gw, &base, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("run-000000000042") && html.contains("Réussie"),
        "{html}"
    );
    let run = format!("{base}/run-000000000042");
    let (s, _, html) = get(&gw, &run, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("registry.example.fr/vendors/model:1"),
        "{html}"
    );
    // Without a cluster the gateway has no logs or results: said in French, not a 409 page.
    assert!(
        html.contains("id=\"resultats-note\"") && html.contains("sans cluster"),
        "{html}"
    );
    let (s, _, html) = get(&gw, &format!("{run}/journal"), Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"journal-note\""), "{html}");
    let (s, _, html) = get(&gw, &format!("{run}/rapport"), Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in [
        "Rapport de frugalité",
        "id=\"energie\"",
        "modélisée",
        "id=\"mesures\"",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    assert!(
        !html.contains("id=\"provisoire\""),
        "the run was closed: {html}"
    );

    // Montreuil's admin: nothing, 404 everywhere (as the API answers).
    let bob_cookie = session(&gw, &bob, "csrf-bob");
    for path in [
        base.clone(),
        run.clone(),
        format!("{run}/journal"),
        format!("{run}/rapport"),
        format!("{run}/resultats/metrics.json"),
    ] {
        let (s, _, html) = get(&gw, &path, Some(&bob_cookie)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {html}");
        assert!(!html.contains("run-000000000042"), "{path}: {html}");
    }
    gw.stop().await;
}

/// A run of `sandbox` still going (started ten minutes ago), as the gateway records it.
fn running_run(name: &str, sandbox: &str, by: &str) -> serre_api::store::RunRow {
    serre_api::store::RunRow {
        phase: "Running".into(),
        finished_at: None,
        exit_reason: None,
        ..finished_run(name, sandbox, by)
    }
}

#[tokio::test]
async fn runs_are_started_cancelled_followed_and_their_quality_reported_from_the_console() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let carol = gw.token("carol", EE_DATA);
    let dave = gw.token("dave", EE_ADMIN);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "essais", 10)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let sb = "est-ensemble--essais";
    let app = gw.app();
    for r in [
        running_run("run-000000000051", sb, "alice"),
        finished_run("run-000000000052", sb, "alice"),
    ] {
        app.store.insert_run(&r).await.expect("run");
    }
    let cookie = session(&gw, &alice, "the-csrf-token");
    let base = format!("/console/bacs-a-sable/{sb}/executions");
    let api_runs = format!("/v1/sandboxes/{sb}/runs");
    let count = || async {
        let (s, v) = gw.call("GET", &api_runs, Some(&alice), None).await;
        assert_eq!(s, 200, "{v}");
        v.as_array().map_or(0, Vec::len)
    };

    // The start form, for a member of the tenant (Cedar's run.create).
    let (s, _, html) = get(&gw, &base, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in [
        "id=\"lancer\"",
        "name=\"image\"",
        "value=\"evaluation\"",
        "id=\"aucun-partage\"",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    let good = [
        ("csrf", "the-csrf-token"),
        ("image", "registry.example.fr/vendors/model:2"),
        ("kind", "evaluation"),
        ("cpu", "1"),
        ("memory", "2Gi"),
        ("gpu", ""),
        ("timeout", "30"),
        ("solution", ""),
        ("unit_name", ""),
        ("unit_count", ""),
    ];
    // No CSRF token: refused, nothing started.
    let mut no_csrf = good.to_vec();
    no_csrf[0].1 = "wrong";
    let (s, _, _) = post_form(&gw, &base, &cookie, &no_csrf).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The API's own validation, in French beside the fields, the form as typed.
    let mut bad = good.to_vec();
    bad[1].1 = "pas une image";
    bad[6].1 = "0";
    let (s, _, html) = post_form(&gw, &base, &cookie, &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"image-erreur\""), "{html}");
    assert!(html.contains("id=\"timeout-erreur\""), "{html}");
    assert!(html.contains("value=\"pas une image\""), "{html}");
    assert!(html.contains("nombre entier de minutes"), "{html}");
    let mut bad_image = good.to_vec();
    bad_image[1].1 = "pas une image";
    let (s, _, html) = post_form(&gw, &base, &cookie, &bad_image).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("Indiquez une référence d&#x27;image")
            || html.contains("Indiquez une référence d&#39;image"),
        "the API's image rule in French: {html}"
    );
    // A valid request reaches the API's create, which needs a cluster: said in French.
    let (s, _, html) = post_form(&gw, &base, &cookie, &good).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"erreurs\"") && html.contains("sans cluster"),
        "{html}"
    );
    assert_eq!(count().await, 2, "nothing was started");
    // Another tenant's admin: 404 on the page and on the form.
    let bob_cookie = session(&gw, &bob, "the-csrf-token");
    let (s, _, _) = get(&gw, &base, Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, html) = post_form(&gw, &base, &bob_cookie, &good).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");

    // The running run: its requester may cancel it and report its quality, and follow
    // its log.
    let run = format!("{base}/run-000000000051");
    let (s, _, html) = get(&gw, &run, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in ["id=\"annuler\"", "id=\"qualite\"", "journal?suivre=1"] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    // Following the log: the page asks the browser to reload it (no JavaScript), and
    // says how to stop; without ?suivre=1 it offers to follow.
    let resp = client()
        .get(format!("{}{run}/journal?suivre=1", gw.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["refresh"], "5");
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"arreter-suivi\""), "{html}");
    let resp = client()
        .get(format!("{}{run}/journal", gw.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("refresh").is_none());
    assert!(resp.text().await.unwrap().contains("id=\"suivre\""));
    // A finished run's log is not followed, even when asked.
    let resp = client()
        .get(format!(
            "{}{base}/run-000000000052/journal?suivre=1",
            gw.url
        ))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("refresh").is_none());
    assert!(!resp.text().await.unwrap().contains("id=\"suivre\""));

    // Quality: a value that is not a number, a metric the API refuses, then recorded.
    let q = format!("{run}/qualite");
    let (s, _, html) = post_form(
        &gw,
        &q,
        &cookie,
        &[
            ("csrf", "the-csrf-token"),
            ("metric", "rougeL"),
            ("value", "beaucoup"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"value-erreur\""), "{html}");
    let (s, _, html) = post_form(
        &gw,
        &q,
        &cookie,
        &[
            ("csrf", "the-csrf-token"),
            ("metric", "rouge{L}"),
            ("value", "0,41"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"metric-erreur\""), "{html}");
    let (s, to, _) = post_form(
        &gw,
        &q,
        &cookie,
        &[
            ("csrf", "the-csrf-token"),
            ("metric", "rougeL"),
            ("value", "0,41"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("{run}?qualite=1"));
    let (s, v) = gw
        .call(
            "GET",
            &format!("{api_runs}/run-000000000051"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["quality"]["metric"], "rougeL");
    assert_eq!(v["quality"]["value"], 0.41);
    let (_, _, html) = get(&gw, &to, Some(&cookie)).await;
    assert!(
        html.contains("id=\"avis\"") && html.contains("rougeL = 0.41"),
        "{html}"
    );

    // Another member of the tenant: neither form; refused as by the API (403: they see
    // the run).
    let carol_cookie = session(&gw, &carol, "the-csrf-token");
    let (s, _, html) = get(&gw, &run, Some(&carol_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        !html.contains("id=\"annuler\"") && !html.contains("id=\"qualite\""),
        "{html}"
    );
    let cancel = format!("{run}/annuler");
    let (s, _, _) = post_form(&gw, &cancel, &carol_cookie, &[("csrf", "the-csrf-token")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, html) = post_form(
        &gw,
        &q,
        &carol_cookie,
        &[("csrf", "the-csrf-token"), ("metric", "f1"), ("value", "1")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    // The tenant's admin may cancel (not report quality); Montreuil's admin: 404.
    let dave_cookie = session(&gw, &dave, "the-csrf-token");
    let (_, _, html) = get(&gw, &run, Some(&dave_cookie)).await;
    assert!(
        html.contains("id=\"annuler\"") && !html.contains("id=\"qualite\""),
        "{html}"
    );
    let (s, _, _) = post_form(&gw, &cancel, &bob_cookie, &[("csrf", "the-csrf-token")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The requester cancels: CSRF first, then cancelled, then nothing left to cancel.
    let (s, _, _) = post_form(&gw, &cancel, &cookie, &[("csrf", "nope")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, to, _) = post_form(&gw, &cancel, &cookie, &[("csrf", "the-csrf-token")]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("{run}?annulee=1"));
    let (_, v) = gw
        .call(
            "GET",
            &format!("{api_runs}/run-000000000051"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(v["phase"], "Cancelled", "{v}");
    let (_, _, html) = get(&gw, &to, Some(&cookie)).await;
    assert!(
        html.contains("id=\"avis\"") && html.contains("Annulée"),
        "{html}"
    );
    assert!(!html.contains("id=\"annuler\""), "{html}");
    let (s, _, html) = post_form(&gw, &cancel, &cookie, &[("csrf", "the-csrf-token")]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("id=\"refus\""), "{html}");
    gw.stop().await;
}
