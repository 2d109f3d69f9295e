//! Who sees which sandbox, over HTTP against SQLite and PostgreSQL: another tenant's
//! sandbox answers exactly like a missing one, and a vendor sees only the sandboxes it was
//! added to. No cluster here (`--no-cluster`, tenants from a file).

mod support;

use serde_json::{Value, json};
use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::local_gateway as gateway;
use support::{Backend, assert_error, issues, sandbox_body};

both_backends!(
    another_tenants_sandbox_answers_exactly_like_a_missing_one,
    vendors_see_only_the_sandbox_they_were_added_to,
);

async fn another_tenants_sandbox_answers_exactly_like_a_missing_one(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let mgp = gw.token("mgp-admin", MGP);
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 45)),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&mallory),
            Some(sandbox_body("montreuil", "parks", 5)),
        )
        .await;
    assert_eq!(status, 201);

    // Each action on the foreign sandbox answers like the same action on a missing one
    // (only the name in the message differs).
    let cases: [(&str, &str, Option<Value>); 6] = [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/approve", None),
        ("POST", "/reject", Some(json!({ "reason": "no" }))),
        ("POST", "/members", Some(json!({ "subject": "vera" }))),
        ("DELETE", "/members/vera", None),
    ];
    for (method, suffix, body) in cases {
        let foreign = gw
            .call(
                method,
                &format!("/v1/sandboxes/est-ensemble--traffic{suffix}"),
                Some(&mallory),
                body.clone(),
            )
            .await;
        let missing = gw
            .call(
                method,
                &format!("/v1/sandboxes/est-ensemble--nothing{suffix}"),
                Some(&mallory),
                body,
            )
            .await;
        assert_error(&foreign, 404, "not_found");
        assert_eq!(foreign.0, missing.0, "{method} {suffix}");
        assert_eq!(
            foreign.1.to_string().replace("traffic", "X"),
            missing.1.to_string().replace("nothing", "X"),
            "{method} {suffix}"
        );
    }
    // Lists: nothing foreign, and a foreign tenant answers like an unknown one.
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&mallory), None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["montreuil--parks"]);
    let foreign = gw
        .call(
            "GET",
            "/v1/sandboxes?tenant=est-ensemble",
            Some(&mallory),
            None,
        )
        .await;
    let missing = gw
        .call(
            "GET",
            "/v1/sandboxes?tenant=est-nowhere",
            Some(&mallory),
            None,
        )
        .await;
    assert_error(&foreign, 404, "not_found");
    assert_eq!(
        foreign.1.to_string().replace("est-ensemble", "X"),
        missing.1.to_string().replace("est-nowhere", "X")
    );
    // Inside the tenant, an action one may not take is a plain 403.
    assert_error(
        &gw.call(
            "POST",
            "/v1/sandboxes/est-ensemble--traffic/approve",
            Some(&bob),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    // Tenant admins see their tenant only; Métropole admins see everything.
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&alice), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&mgp), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, _) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--traffic",
            Some(&mgp),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // A Métropole admin may approve any tenant's request.
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes/est-ensemble--traffic/approve",
            Some(&mgp),
            None,
        )
        .await;
    assert_eq!(status, 200, "{sb}");
    gw.stop().await;
}

async fn vendors_see_only_the_sandbox_they_were_added_to(backend: Backend) {
    let gw = gateway(backend).await;
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let vera = gw.token("vera", &[]);
    for name in ["traffic", "air"] {
        let (status, _) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(&bob),
                Some(sandbox_body("est-ensemble", name, 5)),
            )
            .await;
        assert_eq!(status, 201);
    }
    let members = "/v1/sandboxes/est-ensemble--traffic/members";
    // Only tenant admins add vendors.
    assert_error(
        &gw.call(
            "POST",
            members,
            Some(&bob),
            Some(json!({ "subject": "vera" })),
        )
        .await,
        403,
        "forbidden",
    );
    let bad = gw
        .call(
            "POST",
            members,
            Some(&alice),
            Some(json!({ "subject": " " })),
        )
        .await;
    assert_eq!(issues(&bad), [("subject".into(), "required".into())]);
    let (status, sb) = gw
        .call(
            "POST",
            members,
            Some(&alice),
            Some(json!({ "subject": "vera" })),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    assert_eq!(sb["members"][0]["subject"], "vera");
    assert_eq!(sb["members"][0]["addedBy"], "alice");
    assert_error(
        &gw.call(
            "POST",
            members,
            Some(&alice),
            Some(json!({ "subject": "vera" })),
        )
        .await,
        409,
        "conflict",
    );

    let (status, _) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--traffic",
            Some(&vera),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_error(
        &gw.call("GET", "/v1/sandboxes/est-ensemble--air", Some(&vera), None)
            .await,
        404,
        "not_found",
    );
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&vera), None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["est-ensemble--traffic"]);
    // A vendor sees the sandbox but may not delete it, nor list the tenant.
    assert_error(
        &gw.call(
            "DELETE",
            "/v1/sandboxes/est-ensemble--traffic",
            Some(&vera),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &gw.call(
            "GET",
            "/v1/sandboxes?tenant=est-ensemble",
            Some(&vera),
            None,
        )
        .await,
        404,
        "not_found",
    );

    let (status, _) = gw
        .call("DELETE", &format!("{members}/vera"), Some(&alice), None)
        .await;
    assert_eq!(status, 204);
    assert_error(
        &gw.call("DELETE", &format!("{members}/vera"), Some(&alice), None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &gw.call(
            "GET",
            "/v1/sandboxes/est-ensemble--traffic",
            Some(&vera),
            None,
        )
        .await,
        404,
        "not_found",
    );
    gw.stop().await;
}
