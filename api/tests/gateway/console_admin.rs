//! The web console over HTTP: the Métropole's self-service policy, approvals and members,
//! usage charts and the audit log, each to whom the rules allow (helpers: `console.rs`).

mod support;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::{Backend, local_gateway, sandbox_body};

use crate::console::{client, get, ledger_row, post_form, session};

#[tokio::test]
async fn the_metropole_admins_set_a_tenant_self_service_policy_from_the_console() {
    let gw = local_gateway(Backend::Sqlite).await;
    let mia = gw.token("mia", MGP);
    let carol = gw.token("carol", EE_ADMIN);
    let alice = gw.token("alice", EE_DATA);
    let cookie = session(&gw, &mia, "csrf-mia");
    let (s, _, html) = get(&gw, "/console/libre-service", Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in [
        "href=\"/console/libre-service\"",
        "value=\"est-ensemble\"",
        "value=\"montreuil\"",
        "id=\"politique\"",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    let path = "/console/libre-service/est-ensemble";
    let form = |days: &'static str, memory: &'static str| {
        vec![
            ("csrf", "csrf-mia"),
            ("max_days", days),
            ("max_cpu", ""),
            ("max_memory", memory),
            ("max_storage", ""),
            ("allow_gpu", "oui"),
        ]
    };
    // CSRF first; then the form's own refusal and the API's, beside their fields.
    let mut f = form("10", "8Gi");
    f[0].1 = "nope";
    let (s, _, _) = post_form(&gw, path, &cookie, &f).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, html) = post_form(&gw, path, &cookie, &form("dix", "8Gi")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"max_days-erreur\""), "{html}");
    let (s, _, html) = post_form(&gw, path, &cookie, &form("9999", "beaucoup")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"max_days-erreur\"") && html.contains("durée de vie maximale"),
        "{html}"
    );
    assert!(
        html.contains("id=\"max_memory-erreur\"") && html.contains("value=\"beaucoup\""),
        "{html}"
    );
    // Saved through the API: the API and the request form's policy box say so.
    let (s, to, html) = post_form(&gw, path, &cookie, &form("10", "8Gi")).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(
        to,
        "/console/libre-service?collectivite=est-ensemble&enregistree=1"
    );
    let (_, _, html) = get(&gw, &to, Some(&cookie)).await;
    assert!(
        html.contains("id=\"enregistree\"") && html.contains("value=\"8Gi\""),
        "{html}"
    );
    let (s, v) = gw
        .call("GET", "/v1/tenants/est-ensemble/policy", Some(&carol), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["maxDays"], &v["allowGpu"], &v["maxMemory"]),
        (
            &serde_json::json!(10),
            &serde_json::json!(true),
            &serde_json::json!("8Gi")
        ),
        "{v}"
    );
    let (_, _, html) = get(
        &gw,
        "/console/bacs-a-sable",
        Some(&session(&gw, &alice, "c")),
    )
    .await;
    assert!(
        html.contains("jusqu&#x27;à 10 jours") || html.contains("jusqu&#39;à 10 jours"),
        "{html}"
    );
    // A tenant admin sets nothing: no menu entry, 403 on the page and the form; an
    // unknown tenant is 404.
    let carol_cookie = session(&gw, &carol, "csrf-carol");
    let (s, _, html) = get(&gw, "/console/libre-service", Some(&carol_cookie)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    let (_, _, html) = get(&gw, "/console/bacs-a-sable", Some(&carol_cookie)).await;
    assert!(!html.contains("href=\"/console/libre-service\""), "{html}");
    let mut f = form("30", "");
    f[0].1 = "csrf-carol";
    let (s, _, _) = post_form(&gw, path, &carol_cookie, &f).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, v) = gw
        .call("GET", "/v1/tenants/est-ensemble/policy", Some(&carol), None)
        .await;
    assert_eq!(v["maxDays"], 10, "{v}");
    let (s, _, _) = get(
        &gw,
        "/console/libre-service?collectivite=nulle-part",
        Some(&cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    gw.stop().await;
}

#[tokio::test]
async fn approvals_members_and_the_policy_follow_the_tenant_admin_rules() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let carol = gw.token("carol", EE_ADMIN);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    // 60 days: beyond the 30 days of self-service, so it waits for an admin.
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "long", 60)),
        )
        .await;
    assert_eq!(
        (s, v["request"]["state"].as_str()),
        (201, Some("PendingApproval")),
        "{v}"
    );
    let (s, v) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "court", 60)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let alice_cookie = session(&gw, &alice, "csrf-alice");
    let carol_cookie = session(&gw, &carol, "csrf-carol");
    let bob_cookie = session(&gw, &bob, "csrf-bob");

    // The tenant's self-service policy beside the request form.
    let (_, _, html) = get(&gw, "/console/bacs-a-sable", Some(&alice_cookie)).await;
    assert!(
        html.contains("Libre-service de Est Ensemble")
            && html.contains("30 jours sans approbation"),
        "{html}"
    );

    // Waiting for Carol (Est Ensemble's admin) only.
    let (s, _, html) = get(&gw, "/console/approbations", Some(&carol_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"approuver-est-ensemble--long\""),
        "{html}"
    );
    assert!(
        html.contains("/console/approbations\""),
        "admins see the menu entry: {html}"
    );
    for cookie in [&alice_cookie, &bob_cookie] {
        let (s, _, html) = get(&gw, "/console/approbations", Some(cookie)).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            !html.contains("est-ensemble--long") && html.contains("id=\"aucune\""),
            "{html}"
        );
    }
    let approve = "/console/approbations/est-ensemble--long/approuver";
    let reject = "/console/approbations/est-ensemble--court/refuser";
    let (s, _, _) = post_form(&gw, approve, &bob_cookie, &[("csrf", "csrf-bob")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = post_form(&gw, approve, &alice_cookie, &[("csrf", "csrf-alice")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post_form(&gw, approve, &carol_cookie, &[("csrf", "")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A rejection needs a reason: said beside the field.
    let (s, _, html) = post_form(
        &gw,
        reject,
        &carol_cookie,
        &[("csrf", "csrf-carol"), ("reason", " ")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"refuser-raison-est-ensemble--court-erreur\""),
        "{html}"
    );
    let (_, v) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--court",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(v["request"]["state"], "PendingApproval", "{v}");
    let (s, to, _) = post_form(
        &gw,
        reject,
        &carol_cookie,
        &[("csrf", "csrf-carol"), ("reason", "Trop long")],
    )
    .await;
    assert_eq!(
        (s, to.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/console/approbations?refuse=est-ensemble--court"
        )
    );
    let (s, to, _) = post_form(&gw, approve, &carol_cookie, &[("csrf", "csrf-carol")]).await;
    assert_eq!(
        (s, to.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/console/approbations?approuve=est-ensemble--long"
        )
    );
    let (_, v) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--long",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(
        (
            v["request"]["state"].as_str(),
            v["request"]["decidedBy"].as_str()
        ),
        (Some("Approved"), Some("carol")),
        "{v}"
    );
    let (_, v) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--court",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(v["request"]["state"], "Rejected", "{v}");

    // Members: Carol adds and removes a vendor; Alice sees them without the forms; Bob
    // sees nothing.
    let members = "/console/bacs-a-sable/est-ensemble--long/membres";
    let (s, _, html) = post_form(
        &gw,
        members,
        &carol_cookie,
        &[("csrf", "csrf-carol"), ("subject", "")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"subject-erreur\""), "{html}");
    let (s, _, _) = post_form(
        &gw,
        members,
        &carol_cookie,
        &[("csrf", "x"), ("subject", "vendor-v")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, to, _) = post_form(
        &gw,
        members,
        &carol_cookie,
        &[("csrf", "csrf-carol"), ("subject", "vendor-v")],
    )
    .await;
    assert_eq!(
        (s, to.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/console/bacs-a-sable/est-ensemble--long/membres?ajoute=vendor-v"
        )
    );
    let (s, _, html) = post_form(
        &gw,
        members,
        &carol_cookie,
        &[("csrf", "csrf-carol"), ("subject", "vendor-v")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("déjà membre"), "{html}");
    let (_, _, html) = get(&gw, members, Some(&alice_cookie)).await;
    assert!(
        html.contains("vendor-v")
            && !html.contains("id=\"ajout-membre\"")
            && !html.contains("retirer"),
        "{html}"
    );
    let (s, _, html) = get(&gw, members, Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!html.contains("vendor-v"));
    let remove = format!("{members}/vendor-v/retirer");
    let (s, _, _) = post_form(&gw, &remove, &alice_cookie, &[("csrf", "csrf-alice")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post_form(&gw, &remove, &bob_cookie, &[("csrf", "csrf-bob")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = post_form(&gw, &remove, &carol_cookie, &[("csrf", "csrf-carol")]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, v) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--long",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(v["members"].as_array().map(Vec::len), Some(0), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn usage_is_charted_per_month_sandbox_and_method_with_tables_for_the_tenant_only() {
    use chrono::{Datelike, TimeZone};
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let now = chrono::Utc::now();
    let month_start = chrono::Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("month start");
    let last_month = month_start - chrono::Duration::days(3);
    let this_month = month_start + (now - month_start) / 2;
    let rows = vec![
        ledger_row(
            last_month,
            "est-ensemble",
            "serre-est-ensemble--bus",
            2.0,
            "modelled",
        ),
        ledger_row(
            this_month,
            "est-ensemble",
            "serre-est-ensemble--bus",
            1.25,
            "modelled",
        ),
        ledger_row(
            this_month,
            "est-ensemble",
            "serre-est-ensemble--parcs",
            0.5,
            "kepler",
        ),
        ledger_row(
            this_month,
            "montreuil",
            "serre-montreuil--secret",
            9.875,
            "modelled",
        ),
    ];
    gw.app()
        .store
        .record_usage_window(now, &rows)
        .await
        .expect("ledger rows");

    let cookie = session(&gw, &alice, "csrf-alice");
    let (s, _, html) = get(&gw, "/console/consommation", Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in [
        "id=\"par-mois\"",
        "id=\"par-bac\"",
        "id=\"par-methode\"",
        "role=\"img\"",
        "2,000 kWh",
        "1,750 kWh",
        "serre-est-ensemble--parcs",
        "énergie modélisée",
        "énergie mesurée (kepler)",
        "(chiffres du graphique)",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    assert!(
        !html.contains("9,875") && !html.contains("secret"),
        "{html}"
    );
    assert!(!html.contains("<script"), "readable without JavaScript");
    // Another tenant's usage is not there at all.
    let bob_cookie = session(&gw, &bob, "csrf-bob");
    let (s, _, html) = get(
        &gw,
        "/console/consommation?collectivite=est-ensemble",
        Some(&bob_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");
    let (s, _, html) = get(&gw, "/console/consommation", Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("9,875 kWh") && !html.contains("est-ensemble--bus"),
        "{html}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_audit_log_page_shows_a_tenant_admin_their_tenant_entries_only() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let carol = gw.token("carol", EE_ADMIN);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let mgp = gw.token("mia", MGP);
    for (token, tenant, name) in [
        (&alice, "est-ensemble", "bus"),
        (&bob, "montreuil", "parcs"),
    ] {
        let (s, v) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(token),
                Some(sandbox_body(tenant, name, 10)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let carol_cookie = session(&gw, &carol, "c");
    let (s, _, html) = get(&gw, "/console/journal", Some(&carol_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"journal\"") && html.contains("est-ensemble--bus"),
        "{html}"
    );
    assert!(
        !html.contains("montreuil--parcs") && !html.contains(">bob<"),
        "{html}"
    );
    let (s, _, _) = get(
        &gw,
        "/console/journal?collectivite=montreuil",
        Some(&carol_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A member is not an auditor.
    let (s, _, html) = get(&gw, "/console/journal", Some(&session(&gw, &alice, "a"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    assert!(!html.contains("est-ensemble--bus"));
    // The Métropole's admin reads the whole log.
    let (s, _, html) = get(&gw, "/console/journal", Some(&session(&gw, &mgp, "m"))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("montreuil--parcs") && html.contains("est-ensemble--bus"),
        "{html}"
    );

    // The JSON-lines export: the tenant admin's has their tenant's entries only, each as
    // stored (with its hash), as a file.
    let resp = client()
        .get(format!("{}/console/journal/export", gw.url))
        .header(COOKIE, &carol_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"journal-audit-est-ensemble.jsonl\""
    );
    let body = resp.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON entry a line"))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|e| e["tenant"] == "est-ensemble" && e["hash"].is_string()),
        "{body}"
    );
    assert!(body.contains("est-ensemble--bus") && !body.contains("montreuil--parcs"));
    let (s, _, _) = get(
        &gw,
        "/console/journal/export?collectivite=montreuil",
        Some(&carol_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = get(
        &gw,
        "/console/journal/export",
        Some(&session(&gw, &alice, "a")),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // « Vérifier la chaîne »: CSRF first; the tenant's entries for its admin, the whole
    // chain for the Métropole's admin; a rewritten entry is found.
    let (s, _, _) = post_form(
        &gw,
        "/console/journal/verifier",
        &carol_cookie,
        &[("csrf", "nope")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, html) = post_form(
        &gw,
        "/console/journal/verifier",
        &carol_cookie,
        &[("csrf", "c"), ("collectivite", "est-ensemble")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"verification\"") && html.contains("Chaîne intacte"),
        "{html}"
    );
    let mgp_cookie = session(&gw, &mgp, "csrf-m");
    let (s, _, html) = post_form(
        &gw,
        "/console/journal/verifier",
        &mgp_cookie,
        &[("csrf", "csrf-m"), ("collectivite", "")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Chaîne intacte"), "{html}");
    assert!(
        html.contains("Aucun point de contrôle signé") || html.contains("signature valide"),
        "{html}"
    );
    // Rewrite an entry behind the gateway's back: the verification says where.
    gw.app()
        .store
        .execute_raw("UPDATE audit_log SET principal = 'mallory' WHERE seq = 2")
        .await
        .expect("tamper");
    let (_, _, html) = post_form(
        &gw,
        "/console/journal/verifier",
        &mgp_cookie,
        &[("csrf", "csrf-m"), ("collectivite", "")],
    )
    .await;
    assert!(
        html.contains("Chaîne ROMPUE à l&#x27;entrée 2")
            || html.contains("Chaîne ROMPUE à l&#39;entrée 2"),
        "{html}"
    );
    gw.stop().await;
}
