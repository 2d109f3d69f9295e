//! The web console over HTTP: sessions, CSRF, cookie flags, tenant isolation of its pages,
//! and the sign-in flow's state check and PKCE parameters against the real OpenID provider
//! (npm `oidc-provider`); the helpers the other console modules share. Datasets and grants:
//! `console_data.rs`; runs: `console_runs.rs`; policy, approvals, members, usage and the
//! audit log: `console_admin.rs`. The whole flow in a real browser: `console_browser.rs`.

mod support;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use support::groups::{EE_DATA, MONTREUIL_ADMIN};
use support::{Backend, Gateway, Setup, local_gateway, oidc, sandbox_body};

/// A client that shows redirects instead of following them.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) fn session(gw: &Gateway, token: &str, csrf: &str) -> String {
    serre_api::console::session_cookie(&gw.web().console, token, csrf)
}

pub(crate) async fn get(
    gw: &Gateway,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, String) {
    let mut req = client().get(format!("{}{path}", gw.url));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, resp.text().await.expect("body"))
}

pub(crate) async fn post_form(
    gw: &Gateway,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let resp = client()
        .post(format!("{}{path}", gw.url))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, resp.text().await.expect("body"))
}

pub(crate) fn ledger_row(
    at: chrono::DateTime<chrono::Utc>,
    tenant: &str,
    namespace: &str,
    kwh: f64,
    method: &str,
) -> serre_api::energy::LedgerRow {
    serre_api::energy::LedgerRow {
        window_start: at,
        window_end: at + chrono::Duration::minutes(5),
        tenant: tenant.into(),
        namespace: namespace.into(),
        run: String::new(),
        quantity: "meter_energy".into(),
        value: kwh,
        unit: "kwh".into(),
        method: method.into(),
        source: "console test".into(),
    }
}

#[tokio::test]
async fn pages_need_a_session_and_show_only_what_the_person_may_see() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let (s, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "bus", 10)),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("montreuil", "parcs", 10)),
        )
        .await;
    assert_eq!(s, 201);

    // No session, or a forged one: back to the sign-in page.
    let (s, to, _) = get(&gw, "/console/bacs-a-sable", None).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/console"));
    let (s, to, _) = get(
        &gw,
        "/console/bacs-a-sable",
        Some("serre_console=AAAAforged"),
    )
    .await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/console"));

    // Bob (Montreuil) sees Montreuil's sandbox and not Est Ensemble's.
    let bob_cookie = session(&gw, &bob, "csrf-bob");
    let (s, _, html) = get(&gw, "/console/bacs-a-sable", Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("montreuil--parcs"), "{html}");
    assert!(
        !html.contains("est-ensemble--bus"),
        "another tenant's sandbox listed:\n{html}"
    );
    assert!(html.contains("Mes bacs à sable") && html.contains("/console/dsfr/dsfr.min.css"));

    // …and another tenant's sandbox answers like a missing one, as a DSFR page.
    let (s, _, html) = get(
        &gw,
        "/console/bacs-a-sable/est-ensemble--bus",
        Some(&bob_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        html.contains("Page introuvable") && html.contains("fr-header"),
        "{html}"
    );
    let (s, _, html) = get(
        &gw,
        "/console/bacs-a-sable/montreuil--parcs",
        Some(&bob_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");

    // Alice sees hers; the catalogue page answers.
    let alice_cookie = session(&gw, &alice, "csrf-alice");
    let (_, _, html) = get(&gw, "/console/bacs-a-sable", Some(&alice_cookie)).await;
    assert!(html.contains("est-ensemble--bus") && !html.contains("montreuil--parcs"));
    let (s, _, html) = get(&gw, "/console/catalogue", Some(&alice_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Catalogue des solutions"));

    // The DSFR comes from the gateway itself.
    let resp = client()
        .get(format!("{}/console/dsfr/dsfr.min.css", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    let (s, _, html) = get(&gw, "/console/nulle-part", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("Page introuvable"));
    gw.stop().await;
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_show_the_api_validation_in_french() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let cookie = session(&gw, &alice, "the-csrf-token");
    let expires = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let form = |csrf: &'static str, name: &'static str| {
        vec![
            ("csrf", csrf),
            ("tenant", "est-ensemble"),
            ("name", name),
            ("purpose", "Prévoir la fréquentation des bus"),
            ("cpu", "2"),
            ("memory", "4Gi"),
            ("storage", "10Gi"),
        ]
    };

    for csrf in ["", "wrong-token"] {
        let mut f = form(csrf, "bus");
        f.push(("expires", &expires));
        let (s, _, html) = post_form(&gw, "/console/bacs-a-sable", &cookie, &f).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "csrf {csrf:?}: {html}");
        assert!(html.contains("Requête refusée"));
    }
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&alice), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing created: {list}"
    );

    // The API's validation, in French, next to the field.
    let mut f = form("the-csrf-token", "Pas_Un_Nom");
    f.push(("expires", &expires));
    let (s, _, html) = post_form(&gw, "/console/bacs-a-sable", &cookie, &f).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"name-erreur\""), "{html}");
    assert!(html.contains("Le nom ne peut contenir"), "{html}");

    // With the token: created (through the API's own logic and audit) and listed.
    let mut f = form("the-csrf-token", "bus");
    f.push(("expires", &expires));
    let (s, to, html) = post_form(&gw, "/console/bacs-a-sable", &cookie, &f).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(to, "/console/bacs-a-sable?cree=est-ensemble--bus");
    let (s, v) = gw
        .call("GET", "/v1/sandboxes/est-ensemble--bus", Some(&alice), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["createdBy"], "alice");

    // Sign-out needs the token too, and removes the cookie.
    let (s, _, _) = post_form(&gw, "/console/deconnexion", &cookie, &[("csrf", "nope")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp = client()
        .post(format!("{}/console/deconnexion", gw.url))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "the-csrf-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // No OpenID provider here (the development issuer): a local sign-out only.
    assert_eq!(resp.headers()[LOCATION], "/console?deconnecte=1");
    let cleared = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("serre_console=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn sign_in_sends_pkce_and_state_and_the_callback_checks_state() {
    let provider = oidc();
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.dev_issuer = false;
    setup.oidc_issuer = Some(provider.issuer.clone());
    // On loopback: without --console-url the console takes its URL from the Host header
    // there only (test.sh makes the tests' gateways listen on the node's host address).
    setup.listen_host = Some("127.0.0.1".into());
    let gw = Gateway::start(setup).await;

    let resp = client()
        .get(format!("{}/console/connexion", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = reqwest::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&provider.issuer), "{to}");
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "serre-console");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "SHA-256, base64url");
    assert!(q["state"].len() >= 43);
    assert_eq!(
        q["redirect_uri"],
        format!("{}/console/auth/callback", gw.url)
    );
    // The sign-in cookie: HttpOnly, SameSite=Lax, /console only, not Secure on loopback.
    let login = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(login.starts_with("serre_console_login="), "{login}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(login.contains(flag), "{flag} missing: {login}");
    }
    assert!(!login.contains("Secure"), "plain HTTP on loopback: {login}");
    let login_pair = login.split(';').next().unwrap().to_owned();

    // A callback whose state is not the one sealed in the cookie opens no session.
    for (cookie, query) in [
        (
            Some(login_pair.as_str()),
            "code=abc&state=not-the-state".to_owned(),
        ),
        (Some(login_pair.as_str()), "code=abc".to_owned()),
        (None, format!("code=abc&state={}", q["state"])),
    ] {
        let mut req = client().get(format!("{}/console/auth/callback?{query}", gw.url));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        let set: Vec<_> = resp.headers().get_all(SET_COOKIE).iter().collect();
        assert!(
            set.iter()
                .all(|c| !c.to_str().unwrap().starts_with("serre_console=")),
            "a session was opened: {set:?}"
        );
        assert!(resp.text().await.unwrap().contains("La connexion a échoué"));
    }
    // The right state with a code the provider never issued: refused by the provider.
    let resp = client()
        .get(format!(
            "{}/console/auth/callback?code=forged&state={}",
            gw.url, q["state"]
        ))
        .header(COOKIE, &login_pair)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    gw.stop().await;
}

/// A gateway on loopback whose console signs people in at `issuer`.
async fn gateway_with_provider(issuer: &str) -> Gateway {
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.dev_issuer = false;
    setup.oidc_issuer = Some(issuer.to_owned());
    setup.listen_host = Some("127.0.0.1".into());
    Gateway::start(setup).await
}

/// Sign out with the session's CSRF token: (status, Location, Set-Cookie values).
async fn sign_out(gw: &Gateway, cookie: &str) -> (StatusCode, String, Vec<String>) {
    let resp = client()
        .post(format!("{}/console/deconnexion", gw.url))
        .header(COOKIE, cookie)
        .form(&[("csrf", "the-csrf-token")])
        .send()
        .await
        .expect("sign-out");
    let cookies = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    (resp.status(), location, cookies)
}

#[tokio::test]
async fn sign_out_ends_the_provider_session_through_its_end_session_endpoint() {
    let provider = oidc();
    let gw = gateway_with_provider(&provider.issuer).await;
    let discovery: serde_json::Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let end_session = discovery["end_session_endpoint"]
        .as_str()
        .expect("the provider publishes an end_session_endpoint");
    let token = provider.token("est-ensemble-data", "urn:serre:api").await;
    let cookie = serre_api::console::session_cookie_with_id_token(
        &gw.web().console,
        &token,
        "the-csrf-token",
        "the.id.token",
    );
    // The pages let forms go to the provider (the sign-out form is redirected there).
    let resp = client()
        .get(format!("{}/console/bacs-a-sable", gw.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!("form-action 'self' {};", provider.issuer)),
        "{csp}"
    );

    let (s, to, cookies) = sign_out(&gw, &cookie).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("serre_console=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let to = reqwest::Url::parse(&to).expect("an absolute URL");
    assert!(to.as_str().starts_with(end_session), "{to}");
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["id_token_hint"], "the.id.token");
    assert_eq!(q["client_id"], "serre-console");
    let back = format!("{}/console?deconnecte=1", gw.url);
    assert_eq!(q["post_logout_redirect_uri"], back);
    // The provider accepts that return address for the console's client (an unregistered
    // one answers 400): without a session there, it goes on to confirm the sign-out.
    for (uri, want) in [
        (back.as_str(), StatusCode::OK),
        ("http://127.0.0.1:1/ailleurs", StatusCode::BAD_REQUEST),
    ] {
        let resp = client()
            .get(end_session)
            .query(&[
                ("client_id", "serre-console"),
                ("post_logout_redirect_uri", uri),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{uri}");
    }
    // The sign-out is in the audit log.
    let admin = provider.token("metropole-admin", "urn:serre:api").await;
    let (s, v) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&admin), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v.to_string().contains("console.signout"),
        "no console.signout entry: {v}"
    );

    // A session from before ID tokens were kept: signed out locally.
    let old = session(&gw, &token, "the-csrf-token");
    let (s, to, _) = sign_out(&gw, &old).await;
    assert_eq!(
        (s, to.as_str()),
        (StatusCode::SEE_OTHER, "/console?deconnecte=1")
    );
    gw.stop().await;

    // A provider without RP-Initiated Logout: the console signs out locally.
    let dir = support::new_dir("oidc-no-logout");
    let status =
        std::process::Command::new(support::repo_root().join("deploy/dev/oidc-provider.sh"))
            .args(["start", dir.to_str().expect("utf-8 path")])
            // Any free port (the provider writes its address to DIR/issuer): no collision
            // with a port another process took meanwhile.
            .env("SERRE_OIDC_PORT", "0")
            .env("SERRE_OIDC_RP_LOGOUT", "0")
            .env("SERRE_OIDC_PARENT_PID", std::process::id().to_string())
            .status()
            .expect("run deploy/dev/oidc-provider.sh");
    assert!(status.success(), "deploy/dev/oidc-provider.sh start failed");
    let issuer = std::fs::read_to_string(dir.join("issuer"))
        .expect("DIR/issuer")
        .trim()
        .to_owned();
    let gw = gateway_with_provider(&issuer).await;
    let token = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth("est-ensemble-data", Some("dev-secret-est-ensemble-data"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "urn:serre:api"),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let cookie = serre_api::console::session_cookie_with_id_token(
        &gw.web().console,
        &token,
        "the-csrf-token",
        "the.id.token",
    );
    let (s, to, cookies) = sign_out(&gw, &cookie).await;
    assert_eq!(
        (s, to.as_str()),
        (StatusCode::SEE_OTHER, "/console?deconnecte=1")
    );
    assert!(cookies.iter().any(|c| c.starts_with("serre_console=;")));
    gw.stop().await;
    let _ = std::process::Command::new(support::repo_root().join("deploy/dev/oidc-provider.sh"))
        .args(["stop", dir.to_str().expect("utf-8 path")])
        .status();
}
