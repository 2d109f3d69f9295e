//! Self-service sandbox requests over HTTP, against SQLite and PostgreSQL: approval,
//! validation, deletion, per-tenant policies. No cluster here (`--no-cluster`, tenants
//! from a file); see `cluster.rs` for the cluster path and `sandbox_visibility.rs` for
//! tenant isolation and vendors.

mod support;

use serde_json::{Value, json};
use support::{Backend, assert_error, issues, sandbox_body};

use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::local_gateway as gateway;

both_backends!(
    a_request_within_policy_is_approved_at_once,
    a_request_beyond_policy_waits_for_another_tenant_admin,
    validation_errors_name_the_field_and_the_rule,
    deleting_withdraws_a_request,
    self_service_policy_is_per_tenant,
);

async fn a_request_within_policy_is_approved_at_once(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 10)),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    assert_eq!(sb["name"], "est-ensemble--traffic");
    assert_eq!(sb["tenant"], "est-ensemble");
    assert_eq!(sb["owners"], json!(["bob"]));
    assert_eq!(sb["createdBy"], "bob");
    assert_eq!(sb["request"]["state"], "Approved");
    assert_eq!(sb["request"]["selfService"], true);
    assert_eq!(sb["request"]["approvalReasons"], json!([]));
    assert_eq!(sb["resources"]["maxPods"], 10);
    // No cluster: stored and shown as waiting for one.
    assert_eq!(sb["cluster"]["state"], "WaitingForCluster");
    assert_eq!(sb["cluster"]["message"], "no cluster is configured");

    let (status, got) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--traffic",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(got, sb);

    let (status, list) = gw.call("GET", "/v1/sandboxes", Some(&bob), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["name"], "est-ensemble--traffic");

    // The same short name again in the same tenant is a conflict.
    let again = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_error(&again, 409, "conflict");
    gw.stop().await;
}

async fn a_request_beyond_policy_waits_for_another_tenant_admin(backend: Backend) {
    let gw = gateway(backend).await;
    let alice = gw.token("alice", EE_ADMIN);
    let dave = gw.token("dave", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);

    // 45 days and a GPU: beyond the default self-service policy (30 days, no GPU).
    let mut body = sandbox_body("est-ensemble", "llm", 45);
    body["resources"]["gpu"] = json!({ "count": 1 });
    let (status, sb) = gw
        .call("POST", "/v1/sandboxes", Some(&alice), Some(body))
        .await;
    assert_eq!(status, 201, "{sb}");
    assert_eq!(sb["request"]["state"], "PendingApproval");
    assert_eq!(sb["request"]["selfService"], false);
    let reasons = sb["request"]["approvalReasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(sb["cluster"]["state"], "NotRequested");
    assert_eq!(
        sb["resources"]["gpu"],
        json!({"count": 1, "resourceName": "nvidia.com/gpu"})
    );

    let path = "/v1/sandboxes/est-ensemble--llm/approve";
    // A member may see it but not approve it.
    assert_error(
        &gw.call("POST", path, Some(&bob), None).await,
        403,
        "forbidden",
    );
    // Nobody approves their own request (four eyes), not even a tenant admin.
    assert_error(
        &gw.call("POST", path, Some(&alice), None).await,
        403,
        "forbidden",
    );
    // Another tenant admin does.
    let (status, approved) = gw
        .call(
            "POST",
            path,
            Some(&dave),
            Some(json!({ "reason": "GPU budget available in March" })),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["request"]["state"], "Approved");
    assert_eq!(approved["request"]["decidedBy"], "dave");
    assert_eq!(
        approved["request"]["reason"],
        "GPU budget available in March"
    );
    assert_eq!(approved["cluster"]["state"], "WaitingForCluster");
    // Only pending requests can be decided.
    assert_error(
        &gw.call("POST", path, Some(&dave), None).await,
        409,
        "conflict",
    );

    // Rejection needs a reason.
    let (_, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "long", 60)),
        )
        .await;
    let reject = "/v1/sandboxes/est-ensemble--long/reject";
    let no_reason = gw.call("POST", reject, Some(&alice), Some(json!({}))).await;
    assert_error(&no_reason, 422, "validation_failed");
    assert_eq!(no_reason.1["error"]["details"][0]["field"], "reason");
    assert_eq!(no_reason.1["error"]["details"][0]["rule"], "required");
    let (status, rejected) = gw
        .call(
            "POST",
            reject,
            Some(&alice),
            Some(json!({ "reason": "Use the shared cluster" })),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["request"]["state"], "Rejected");
    assert_eq!(rejected["request"]["reason"], "Use the shared cluster");
    assert_eq!(rejected["cluster"]["state"], "NotRequested");

    // Lists filter by state.
    let (_, pending) = gw
        .call("GET", "/v1/sandboxes?state=Rejected", Some(&bob), None)
        .await;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(1));
    assert_error(
        &gw.call("GET", "/v1/sandboxes?state=Bogus", Some(&bob), None)
            .await,
        422,
        "validation_failed",
    );
    gw.stop().await;
}

async fn validation_errors_name_the_field_and_the_rule(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let post = |body: Value| {
        let gw = &gw;
        let bob = bob.clone();
        async move {
            gw.call("POST", "/v1/sandboxes", Some(&bob), Some(body))
                .await
        }
    };

    let unknown = post(sandbox_body("nowhere", "x", 5)).await;
    assert_error(&unknown, 422, "validation_failed");
    assert_eq!(
        issues(&unknown),
        [("tenant".into(), "unknown_tenant".into())]
    );
    // A tenant the caller does not belong to answers exactly like an unknown one.
    let foreign = post(sandbox_body("montreuil", "x", 5)).await;
    assert_eq!(foreign.0, 422);
    assert_eq!(
        foreign.1["error"]["details"][0]["message"],
        "no tenant \"montreuil\" that you belong to"
    );
    assert_eq!(issues(&foreign), issues(&unknown));

    let beyond = post(sandbox_body("est-ensemble", "x", 120)).await;
    assert_eq!(
        issues(&beyond),
        [("expiresAt".into(), "max_lifetime".into())]
    );
    assert!(
        beyond.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expiresAt: is beyond the maximum lifetime of 90 days (max_lifetime)"),
        "{}",
        beyond.1
    );

    let mut body = sandbox_body("est-ensemble", "Bad Name", 5);
    body["resources"]["cpu"] = json!("two");
    body["resources"]["memory"] = json!("4Gigs");
    body["resources"]["storage"] = json!("10Ti");
    body["purpose"] = json!("");
    let many = post(body).await;
    assert_eq!(
        issues(&many),
        [
            ("name".into(), "dns_label".into()),
            ("purpose".into(), "required".into()),
            ("resources.cpu".into(), "quantity_syntax".into()),
            ("resources.memory".into(), "quantity_syntax".into()),
            ("resources.storage".into(), "within_allowance".into()),
        ]
    );

    // Shape errors name the field too.
    let mut body = sandbox_body("est-ensemble", "x", 5);
    body.as_object_mut().unwrap().remove("purpose");
    assert_eq!(
        issues(&post(body).await),
        [("purpose".into(), "required".into())]
    );
    let mut body = sandbox_body("est-ensemble", "x", 5);
    body["resources"]["cpu"] = json!(2);
    assert_eq!(
        issues(&post(body).await),
        [("resources.cpu".into(), "type".into())]
    );
    let mut body = sandbox_body("est-ensemble", "x", 5);
    body["colour"] = json!("green");
    assert_eq!(
        issues(&post(body).await),
        [("colour".into(), "unknown_field".into())]
    );

    // Not JSON, not declared as JSON, too large.
    let (status, _, raw) = {
        let r = gw
            .http
            .post(format!("{}/v1/sandboxes", gw.url))
            .bearer_auth(&bob)
            .header("content-type", "application/json")
            .body("{\"tenant\": ")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), (), r.bytes().await.unwrap())
    };
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_error(&(status, v), 400, "invalid_json");
    let r = gw
        .http
        .post(format!("{}/v1/sandboxes", gw.url))
        .bearer_auth(&bob)
        .body("tenant=est-ensemble")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_error(&(s, r.json().await.unwrap()), 415, "unsupported_media_type");
    let mut big = sandbox_body("est-ensemble", "x", 5);
    big["purpose"] = json!("x".repeat(70_000));
    assert_error(&post(big).await, 413, "payload_too_large");
    gw.stop().await;
}

async fn deleting_withdraws_a_request(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let carol = gw.token("carol", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    for (name, days) in [("pending", 60), ("approved", 5)] {
        let (status, _) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(&bob),
                Some(sandbox_body("est-ensemble", name, days)),
            )
            .await;
        assert_eq!(status, 201);
    }
    // A colleague may not delete bob's request; bob and tenant admins may.
    assert_error(
        &gw.call(
            "DELETE",
            "/v1/sandboxes/est-ensemble--pending",
            Some(&carol),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    let (status, _) = gw
        .call(
            "DELETE",
            "/v1/sandboxes/est-ensemble--pending",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_error(
        &gw.call(
            "GET",
            "/v1/sandboxes/est-ensemble--pending",
            Some(&bob),
            None,
        )
        .await,
        404,
        "not_found",
    );
    // Without a cluster, an approved one is removed at once.
    let (status, _) = gw
        .call(
            "DELETE",
            "/v1/sandboxes/est-ensemble--approved",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&bob), None).await;
    assert_eq!(list["items"], json!([]));
    gw.stop().await;
}

async fn self_service_policy_is_per_tenant(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let mgp = gw.token("mgp-admin", MGP);
    let path = "/v1/tenants/est-ensemble/policy";

    let (status, p) = gw.call("GET", path, Some(&bob), None).await;
    assert_eq!(status, 200);
    assert_eq!(p, json!({ "maxDays": 30, "allowGpu": false }));
    assert_error(
        &gw.call("GET", path, Some(&mallory), None).await,
        404,
        "not_found",
    );
    assert_error(
        &gw.call("GET", "/v1/tenants/nowhere/policy", Some(&mgp), None)
            .await,
        404,
        "not_found",
    );

    let generous = json!({ "maxDays": 60, "allowGpu": true, "maxCpu": "8" });
    assert_error(
        &gw.call("PUT", path, Some(&alice), Some(generous.clone()))
            .await,
        403,
        "forbidden",
    );
    let invalid = gw
        .call(
            "PUT",
            path,
            Some(&mgp),
            Some(json!({ "maxDays": 120, "allowGpu": true, "maxCpu": "eight" })),
        )
        .await;
    assert_eq!(
        issues(&invalid),
        [
            ("maxDays".into(), "max_lifetime".into()),
            ("maxCpu".into(), "quantity_syntax".into())
        ]
    );
    let (status, saved) = gw
        .call("PUT", path, Some(&mgp), Some(generous.clone()))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(gw.call("GET", path, Some(&bob), None).await.1, generous);

    // 45 days with a GPU is now self-service for Est Ensemble…
    let mut body = sandbox_body("est-ensemble", "llm", 45);
    body["resources"]["gpu"] = json!({ "count": 1 });
    let (status, sb) = gw
        .call("POST", "/v1/sandboxes", Some(&bob), Some(body))
        .await;
    assert_eq!(status, 201);
    assert_eq!(sb["request"]["state"], "Approved", "{sb}");
    // …but more CPU than its maximum still needs approval…
    let mut body = sandbox_body("est-ensemble", "big", 5);
    body["resources"]["cpu"] = json!("12");
    let (_, sb) = gw
        .call("POST", "/v1/sandboxes", Some(&bob), Some(body))
        .await;
    assert_eq!(sb["request"]["state"], "PendingApproval", "{sb}");
    assert_eq!(
        sb["request"]["approvalReasons"],
        json!(["cpu 12 is above the self-service maximum of 8"])
    );
    // …and other tenants keep the default.
    let (_, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&mallory),
            Some(sandbox_body("montreuil", "long", 45)),
        )
        .await;
    assert_eq!(sb["request"]["state"], "PendingApproval", "{sb}");
    gw.stop().await;
}
