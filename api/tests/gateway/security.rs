//! The security suite (issue 13 §4, docs/security.md): the attack classes run over HTTP
//! against one world, on SQLite and PostgreSQL. Two tenants (Est Ensemble, Montreuil), a
//! vendor with grants, a vendor without, a vendor removed from the sandbox after taking a
//! sharing profile, a Métropole admin, no token, and tokens that are not what they claim.
//! Each case says who asks what and what must come back; the suite reports every case that
//! answered otherwise, not only the first.
//!
//! Other attack classes have their own files, run by the same `cargo test`: k-anonymity and
//! sharing tokens in depth (`datasets.rs`), the JWT attack set against a real OpenID
//! provider (`identity.rs`), catalogue poisoning, run reports and egress (`trust_boundaries.rs`),
//! ingest bombs (`ingest_limits.rs`), audit tampering (`audit.rs`, `audit_checkpoints.rs`),
//! run tokens on the real node (`runs.rs`).

mod support;

use serde_json::{Value, json};
use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::{Backend, Gateway, Setup, fresh_database, sandbox_body};

both_backends!(the_attack_matrix_is_refused_where_it_must_be);

const MONTREUIL_DATA: &[&str] = &["montreuil-data"];

/// 60 residents; ages and postcodes generalise into classes of 10.
fn residents_csv() -> String {
    let mut csv = String::from("id,name,age,postcode,income\n");
    for i in 0..60 {
        let postcode = if i % 2 == 0 { "93100" } else { "94200" };
        csv.push_str(&format!(
            "{i},Person {i},{},{postcode},{}\n",
            20 + i,
            1000 + i * 10
        ));
    }
    csv
}

async fn upload(gw: &Gateway, token: &str, query: &str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/datasets?{query}", gw.url))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(residents_csv())
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn created(gw: &Gateway, token: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, v) = gw.call(method, path, Some(token), Some(body)).await;
    assert!(
        status == 200 || status == 201,
        "{method} {path}: {status} {v}"
    );
    v
}

/// One request and the statuses that may answer it.
struct Case {
    who: &'static str,
    token: Option<String>,
    method: &'static str,
    path: String,
    body: Option<Value>,
    expect: &'static [u16],
    why: &'static str,
}

async fn the_attack_matrix_is_refused_where_it_must_be(backend: Backend) {
    let gw = Gateway::start(Setup::local(fresh_database(backend).await)).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let paula = gw.token("paula", MONTREUIL_DATA);
    let marc = gw.token("marc", MONTREUIL_ADMIN);
    let mia = gw.token("mia", MGP);
    let acme = gw.token("acme", &[]);
    let globex = gw.token("globex", &[]);
    let initech = gw.token("initech", &[]);

    // -- The world: an Est Ensemble sandbox with two vendors, an open and a personal
    //    dataset, a sandbox grant, an anonymised vendor grant; Montreuil's own sandbox.
    created(
        &gw,
        &bob,
        "POST",
        "/v1/sandboxes",
        sandbox_body("est-ensemble", "lab", 10),
    )
    .await;
    created(
        &gw,
        &paula,
        "POST",
        "/v1/sandboxes",
        sandbox_body("montreuil", "own", 10),
    )
    .await;
    let members = "/v1/sandboxes/est-ensemble--lab/members";
    for vendor in ["acme", "initech"] {
        created(&gw, &alice, "POST", members, json!({"subject": vendor})).await;
    }
    let (s, stops) = upload(
        &gw,
        &bob,
        "tenant=est-ensemble&name=stops&classification=open",
    )
    .await;
    assert_eq!(s, 201, "{stops}");
    let q = "tenant=est-ensemble&name=residents&classification=personal&types=postcode:string";
    let (s, residents) = upload(&gw, &bob, q).await;
    assert_eq!(s, 201, "{residents}");
    let expires = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let sandbox_grant = created(
        &gw,
        &alice,
        "POST",
        "/v1/grants",
        json!({"datasetId": stops["id"], "grantee": {"sandbox": "est-ensemble--lab"},
               "columns": ["id", "age"], "purpose": "Trial", "expiresAt": expires}),
    )
    .await["id"]
        .as_str()
        .expect("grant id")
        .to_owned();
    let vendor_grant = created(
        &gw,
        &alice,
        "POST",
        "/v1/grants",
        json!({"datasetId": residents["id"], "grantee": {"vendor": "acme"},
               "columns": ["id", "age", "postcode"],
               "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}},
                                      "postcode": {"generalise": {"prefix": 2}}},
                          "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true},
               "purpose": "Trial", "expiresAt": expires}),
    )
    .await["id"]
        .as_str()
        .expect("grant id")
        .to_owned();
    // initech takes a sharing profile of the sandbox grant, then leaves the sandbox.
    let (s, profile) = gw
        .call(
            "GET",
            &format!("/v1/grants/{sandbox_grant}/profile"),
            Some(&initech),
            None,
        )
        .await;
    assert_eq!(s, 200, "{profile}");
    let removed_profile = profile["bearerToken"].as_str().expect("token").to_owned();
    let (s, v) = gw
        .call("DELETE", &format!("{members}/initech"), Some(&alice), None)
        .await;
    assert!(s == 200 || s == 204, "{v}");

    // -- Tokens that are not what they claim.
    let tampered = {
        // Same signature, the payload's groups changed to the admins'.
        let mut parts: Vec<String> = bob.split('.').map(str::to_owned).collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        claims["groups"] = json!(["est-ensemble-admins", "mgp-admins"]);
        parts[1] = b64.encode(claims.to_string());
        parts.join(".")
    };
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = bob.split('.').nth(1).unwrap().to_owned();
        format!("{header}.{payload}.")
    };
    let other_issuer = {
        // A development issuer of another installation: same claims, another key.
        let dir = support::new_dir("other-issuer");
        serre_api::identity::dev::DevIssuer::load_or_create(&dir)
            .expect("issuer")
            .mint(
                &serre_api::identity::dev::DevClaims {
                    subject: "bob".into(),
                    groups: vec!["est-ensemble-admins".into()],
                    organisation: None,
                    ttl: std::time::Duration::from_secs(600),
                },
                "serre-api",
            )
            .expect("mint")
    };

    let ee_sandbox = "/v1/sandboxes/est-ensemble--lab".to_owned();
    let sg = format!("/v1/grants/{sandbox_grant}");
    let vg = format!("/v1/grants/{vendor_grant}");
    let residents_path = format!("/v1/datasets/{}", residents["id"].as_str().unwrap());
    let share_query =
        format!("/delta-sharing/shares/est-ensemble/schemas/stops/tables/{sandbox_grant}/query");
    let case = |who: &'static str,
                token: Option<&String>,
                method: &'static str,
                path: &str,
                body: Option<Value>,
                expect: &'static [u16],
                why: &'static str| Case {
        who,
        token: token.cloned(),
        method,
        path: path.to_owned(),
        body,
        expect,
        why,
    };
    #[rustfmt::skip]
    let cases = vec![
        // No token, and forged ones: 401 everywhere.
        case("no token", None, "GET", "/v1/sandboxes", None, &[401], "authentication"),
        case("no token", None, "GET", &residents_path, None, &[401], "authentication"),
        case("no token", None, "GET", &format!("{vg}/data"), None, &[401], "authentication"),
        case("no token", None, "GET", "/v1/audit", None, &[401], "authentication"),
        case("tampered JWT", Some(&tampered), "GET", "/v1/audit", None, &[401], "the signature covers the claims"),
        case("alg=none JWT", Some(&unsigned), "GET", "/v1/sandboxes", None, &[401], "unsigned tokens refused"),
        case("other issuer's key", Some(&other_issuer), "GET", &ee_sandbox, None, &[401], "only trusted keys"),
        case("garbage", Some(&"not-a-token".to_owned()), "GET", "/v1/me", None, &[401], "authentication"),
        // Another tenant's member and admin: nothing of Est Ensemble exists for them.
        case("montreuil member", Some(&paula), "GET", &ee_sandbox, None, &[404], "tenant isolation"),
        case("montreuil member", Some(&paula), "GET", &residents_path, None, &[404], "tenant isolation"),
        case("montreuil member", Some(&paula), "GET", &sg, None, &[404], "tenant isolation"),
        case("montreuil member", Some(&paula), "GET", &format!("{sg}/data"), None, &[404], "tenant isolation"),
        case("montreuil member", Some(&paula), "GET", "/v1/audit?tenant=est-ensemble", None, &[404], "tenant isolation (its existence hidden)"),
        case("montreuil member", Some(&paula), "GET", "/v1/tenants/est-ensemble/usage", None, &[403, 404], "tenant isolation"),
        case("montreuil member", Some(&paula), "POST", "/v1/grants",
             Some(json!({"datasetId": residents["id"], "grantee": {"vendor": "globex"},
                         "columns": ["id"], "purpose": "x", "expiresAt": expires})), &[403, 404], "tenant isolation"),
        case("montreuil admin", Some(&marc), "POST", &format!("{ee_sandbox}/members"),
             Some(json!({"subject": "globex"})), &[403, 404], "tenant isolation"),
        case("montreuil admin", Some(&marc), "DELETE", &sg, None, &[403, 404], "tenant isolation"),
        case("montreuil admin", Some(&marc), "GET", "/v1/audit?tenant=est-ensemble", None, &[404], "tenant isolation (its existence hidden)"),
        case("montreuil admin", Some(&marc), "POST", "/v1/sandboxes",
             Some(sandbox_body("est-ensemble", "intrusion", 10)), &[422], "tenant isolation (no tenant the caller belongs to)"),
        // A member who is not an admin: no grants, no vendors.
        case("est-ensemble member", Some(&bob), "POST", &format!("{ee_sandbox}/members"),
             Some(json!({"subject": "globex"})), &[403], "least privilege"),
        case("est-ensemble member", Some(&bob), "POST", "/v1/grants",
             Some(json!({"datasetId": stops["id"], "grantee": {"vendor": "globex"},
                         "columns": ["id"], "purpose": "x", "expiresAt": expires})), &[403], "least privilege"),
        // The vendor with grants: its grants, nothing else.
        case("vendor acme", Some(&acme), "GET", &format!("{vg}/data"), None, &[200], "its own grant"),
        case("vendor acme", Some(&acme), "GET", &format!("{sg}/data"), None, &[200], "its sandbox's grant"),
        case("vendor acme", Some(&acme), "GET", &residents_path, None, &[404], "never the raw dataset"),
        case("vendor acme", Some(&acme), "POST", "/v1/datasets?tenant=est-ensemble&name=x&classification=open&format=csv",
             Some(json!("id\n1\n")), &[403, 404], "vendors do not upload"),
        case("vendor acme", Some(&acme), "DELETE", &vg, None, &[403], "vendors do not revoke"),
        case("vendor acme", Some(&acme), "POST", &format!("{ee_sandbox}/members"),
             Some(json!({"subject": "globex"})), &[403], "vendors do not invite"),
        case("vendor acme", Some(&acme), "GET", "/v1/audit?tenant=est-ensemble", None, &[404], "no audit for vendors (the tenant hidden)"),
        case("vendor acme", Some(&acme), "GET", "/v1/sandboxes/montreuil--own", None, &[404], "other tenants' sandboxes"),
        // A vendor without grants.
        case("vendor globex", Some(&globex), "GET", &format!("{vg}/data"), None, &[404], "another vendor's grant"),
        case("vendor globex", Some(&globex), "GET", &format!("{sg}/data"), None, &[404], "a sandbox it is not in"),
        case("vendor globex", Some(&globex), "GET", &format!("{sg}/profile"), None, &[404], "a sandbox it is not in"),
        case("vendor globex", Some(&globex), "GET", &ee_sandbox, None, &[404], "a sandbox it is not in"),
        // A vendor removed from the sandbox, with the profile it took before.
        case("removed vendor", Some(&initech), "GET", &format!("{sg}/data"), None, &[404], "membership is checked on use"),
        case("removed vendor's profile", Some(&removed_profile), "POST", &share_query,
             Some(json!({})), &[403], "sharing tokens end with the holder's right"),
        // The Métropole admin runs the platform but reads no tenant's data.
        case("métropole admin", Some(&mia), "GET", &format!("{vg}/data"), None, &[403], "grant-data-only-to-named-readers"),
        case("métropole admin", Some(&mia), "GET", &format!("{sg}/data"), None, &[403], "grant-data-only-to-named-readers"),
        case("métropole admin", Some(&mia), "GET", &format!("{sg}/profile"), None, &[403], "grant-data-only-to-named-readers"),
        // Data governance: a raw personal view towards a sandbox with vendors; egress to
        // the cloud metadata endpoint, and to everywhere.
        case("est-ensemble admin", Some(&alice), "POST", "/v1/grants",
             Some(json!({"datasetId": residents["id"], "grantee": {"sandbox": "est-ensemble--lab"},
                         "columns": ["id", "name", "age", "postcode", "income"],
                         "purpose": "raw", "expiresAt": expires})), &[422], "k-anonymity towards vendors"),
        case("est-ensemble member", Some(&bob), "POST", "/v1/sandboxes",
             Some(json!({"tenant": "est-ensemble", "name": "meta", "purpose": "x",
                         "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
                         "expiresAt": expires, "extraEgressCidrs": ["169.254.169.254/32"]})),
             &[422], "no link-local egress"),
        case("est-ensemble member", Some(&bob), "POST", "/v1/sandboxes",
             Some(json!({"tenant": "est-ensemble", "name": "world", "purpose": "x",
                         "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
                         "expiresAt": expires, "extraEgressCidrs": ["0.0.0.0/0"]})),
             &[422], "no catch-all egress"),
    ];

    let mut wrong = Vec::new();
    for c in &cases {
        let (status, body) = if c.path.starts_with("/delta-sharing") {
            let mut req = gw.http.post(format!("{}{}", gw.url, c.path));
            if let Some(t) = &c.token {
                req = req.bearer_auth(t);
            }
            let r = req.json(&c.body).send().await.expect("request");
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        } else {
            let (s, _, b) = gw
                .call_raw(c.method, &c.path, c.token.as_deref(), c.body.clone())
                .await;
            (s, String::from_utf8_lossy(&b).chars().take(300).collect())
        };
        if !c.expect.contains(&status) {
            wrong.push(format!(
                "{} {} {} ({}): {status}, expected {:?}: {body}",
                c.who, c.method, c.path, c.why, c.expect
            ));
        }
        // A refusal says why, in the API's error shape (or Delta Sharing's).
        if status >= 400 && !(body.contains("\"message\"") || body.contains("\"errorCode\"")) {
            wrong.push(format!(
                "{} {} {}: {status} without a message: {body}",
                c.who, c.method, c.path
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // Every refusal of an authenticated caller is in the audit log as a denial.
    let (s, audit) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mia), None)
        .await;
    assert_eq!(s, 200, "{audit}");
    let denied = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["decision"] == "deny")
        .count();
    assert!(denied >= 20, "only {denied} denials audited: {audit}");
    gw.stop().await;
}
