//! The web console over HTTP: sessions, CSRF, cookie flags, tenant isolation of its pages,
//! and the sign-in flow's state check and PKCE parameters against the real OpenID provider
//! (npm `oidc-provider`). The whole flow in a real browser: `console_browser.rs`.

mod support;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};
use support::{Backend, Gateway, Setup, local_gateway, oidc, sandbox_body};

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn session(gw: &Gateway, token: &str, csrf: &str) -> String {
    serre_api::console::session_cookie(&gw.app().console, token, csrf)
}

async fn get(gw: &Gateway, path: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
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

async fn post_form(
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
        &gw.app().console,
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
        &gw.app().console,
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

/// A `multipart/form-data` body, as a browser sends the upload form: text fields in
/// order, then the file (when given).
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----serre-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"fichier\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_multipart(
    gw: &Gateway,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (StatusCode, String, String) {
    let (content_type, body) = multipart(fields, file);
    let resp = client()
        .post(format!("{}{path}", gw.url))
        .header(COOKIE, cookie)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
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

/// 30 residents: id, age, postcode.
fn residents_csv() -> String {
    let mut csv = String::from("id,age,postcode\n");
    for i in 0..30 {
        let postcode = if i % 2 == 0 { "93100" } else { "94200" };
        csv.push_str(&format!("{i},{},{postcode}\n", 20 + i));
    }
    csv
}

#[tokio::test]
async fn datasets_are_uploaded_with_the_form_and_shown_only_to_their_tenant() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let cookie = session(&gw, &alice, "csrf-alice");
    let csv = residents_csv();
    let fields = |csrf: &'static str, name: &'static str| {
        vec![
            ("csrf", csrf),
            ("tenant", "est-ensemble"),
            ("name", name),
            ("classification", "personal"),
            ("description", "Résidents (test)"),
            ("format", "auto"),
            ("header", "oui"),
            ("delimiter", ","),
            ("types", ""),
        ]
    };

    // The page and its form.
    let (s, _, html) = get(&gw, "/console/donnees", Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"depot\"") && html.contains("enctype=\"multipart/form-data\""));

    // Without the session's CSRF token: refused, nothing stored.
    for csrf in ["", "wrong"] {
        let (s, _, html) = post_multipart(
            &gw,
            "/console/donnees",
            &cookie,
            &fields(csrf, "residents"),
            Some(("residents.csv", csv.as_bytes())),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    }
    let (_, list) = gw.call("GET", "/v1/datasets", Some(&alice), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // The API's validation, in French beside the field; what was typed is kept.
    let (s, _, html) = post_multipart(
        &gw,
        "/console/donnees",
        &cookie,
        &fields("csrf-alice", "Pas Un Nom"),
        Some(("residents.csv", csv.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"name-erreur\""), "{html}");
    assert!(html.contains("Le nom ne peut contenir"), "{html}");
    assert!(
        html.contains("Résidents (test)"),
        "description kept: {html}"
    );
    assert!(html.contains("id=\"fichier-erreur\""), "{html}");
    // A file the engine cannot read, and a file whose format its name does not say.
    let (s, _, html) = post_multipart(
        &gw,
        "/console/donnees",
        &cookie,
        &fields("csrf-alice", "residents"),
        Some(("residents.csv", b"id,age\n1,2,3,4\n")),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("pas pu être lu : invalid CSV"), "{html}");
    let (s, _, html) = post_multipart(
        &gw,
        "/console/donnees",
        &cookie,
        &fields("csrf-alice", "residents"),
        Some(("residents.txt", csv.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"format-erreur\""), "{html}");
    let (_, list) = gw.call("GET", "/v1/datasets", Some(&alice), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing stored: {list}");

    // Stored through the API's own upload: version 1, its schema, its classification.
    let (s, to, html) = post_multipart(
        &gw,
        "/console/donnees",
        &cookie,
        &fields("csrf-alice", "residents"),
        Some(("residents.csv", csv.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    let (_, list) = gw.call("GET", "/v1/datasets", Some(&alice), None).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(to, format!("/console/donnees/{id}?cree=1"));
    assert_eq!(list[0]["createdBy"], "alice");
    assert_eq!(list[0]["versions"][0]["rows"], 30);
    let (s, _, html) = get(&gw, &to, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for text in [
        "id=\"cree\"",
        "Personnelles",
        "id=\"schema\"",
        "<td>postcode</td>",
        "<code>int64</code>",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }

    // A new version through the dataset's form.
    let (s, to, html) = post_multipart(
        &gw,
        &format!("/console/donnees/{id}/versions"),
        &cookie,
        &[
            ("csrf", "csrf-alice"),
            ("format", "csv"),
            ("header", "oui"),
            ("delimiter", ";"),
        ],
        Some(("v2", b"id;age;postcode\n1;30;93100\n")),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(to, format!("/console/donnees/{id}?version=2&cree=1"));
    let (_, v) = gw
        .call("GET", &format!("/v1/datasets/{id}"), Some(&alice), None)
        .await;
    assert_eq!(v["latestVersion"], 2, "{v}");
    let (_, _, html) = get(&gw, "/console/donnees", Some(&cookie)).await;
    assert!(html.contains("residents"), "{html}");

    // Montreuil's admin sees none of it: not listed, 404 page, no version added.
    let bob_cookie = session(&gw, &bob, "csrf-bob");
    let (s, _, html) = get(&gw, "/console/donnees", Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(!html.contains("residents") && !html.contains(&id), "{html}");
    let (s, _, html) = get(&gw, &format!("/console/donnees/{id}"), Some(&bob_cookie)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");
    assert!(html.contains("Page introuvable") && !html.contains("postcode"));
    let (s, _, html) = post_multipart(
        &gw,
        &format!("/console/donnees/{id}/versions"),
        &bob_cookie,
        &[("csrf", "csrf-bob"), ("format", "csv")],
        Some(("x.csv", csv.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");
    // Nor can Bob file a dataset under Est Ensemble.
    let (s, _, html) = post_multipart(
        &gw,
        "/console/donnees",
        &bob_cookie,
        &[
            ("csrf", "csrf-bob"),
            ("tenant", "est-ensemble"),
            ("name", "intrus"),
            ("classification", "open"),
        ],
        Some(("x.csv", csv.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"tenant-erreur\""), "{html}");
    let (_, v) = gw
        .call("GET", &format!("/v1/datasets/{id}"), Some(&alice), None)
        .await;
    assert_eq!(v["latestVersion"], 2, "{v}");
    assert_eq!(
        gw.call("GET", "/v1/datasets", Some(&alice), None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting a version: offered to the tenant's admin only (Cedar's
    // dataset.version.delete), through the API's delete_version.
    let carol = gw.token("carol", EE_ADMIN);
    let carol_cookie = session(&gw, &carol, "csrf-carol");
    let page = format!("/console/donnees/{id}");
    let delete = format!("/console/donnees/{id}/versions/1/supprimer");
    let (_, _, html) = get(&gw, &page, Some(&cookie)).await;
    assert!(!html.contains("id=\"supprimer-"), "a member: {html}");
    let (s, _, _) = post_form(&gw, &delete, &cookie, &[("csrf", "csrf-alice")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post_form(&gw, &delete, &bob_cookie, &[("csrf", "csrf-bob")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, _, html) = get(&gw, &page, Some(&carol_cookie)).await;
    assert!(
        html.contains("id=\"supprimer-1\"") && html.contains("id=\"supprimer-2\""),
        "{html}"
    );
    let (s, _, _) = post_form(&gw, &delete, &carol_cookie, &[("csrf", "nope")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, to, _) = post_form(&gw, &delete, &carol_cookie, &[("csrf", "csrf-carol")]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("{page}?supprimee=1"));
    let (_, _, html) = get(&gw, &to, Some(&carol_cookie)).await;
    assert!(
        html.contains("id=\"supprimee\"") && html.contains("supprimée le"),
        "{html}"
    );
    assert!(!html.contains("id=\"supprimer-1\""), "{html}");
    let (_, v) = gw
        .call("GET", &format!("/v1/datasets/{id}"), Some(&alice), None)
        .await;
    assert!(v["versions"][0]["deletedAt"].is_string(), "{v}");
    gw.stop().await;
}

/// Upload the residents as a personal dataset of Est Ensemble through the API: its id.
async fn residents(gw: &Gateway, token: &str) -> String {
    let r = gw
        .http
        .post(format!(
            "{}/v1/datasets?tenant=est-ensemble&name=residents&classification=personal&types=postcode:string",
            gw.url
        ))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(residents_csv())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn grants_are_previewed_created_and_revoked_with_the_form_by_their_tenant_admin_only() {
    let gw = local_gateway(Backend::Sqlite).await;
    let carol = gw.token("carol", EE_ADMIN);
    let alice = gw.token("alice", EE_DATA);
    let bob = gw.token("bob", MONTREUIL_ADMIN);
    let id = residents(&gw, &alice).await;
    let cookie = session(&gw, &carol, "csrf-carol");
    let expires = (chrono::Utc::now() + chrono::Duration::days(20))
        .format("%Y-%m-%d")
        .to_string();

    // The list offers the dataset; the form shows its columns.
    let (s, _, html) = get(&gw, "/console/partages", Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("value=\"{id}\"")), "{html}");
    let (s, _, html) = get(
        &gw,
        &format!("/console/partages/nouveau?jeu={id}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("name=\"rule.postcode\"") && html.contains("id=\"previsualiser\""));

    let form = |csrf: &'static str, action: &'static str, age_param: &'static str| {
        let f: Vec<(String, String)> = [
            ("csrf", csrf),
            ("dataset", id.as_str()),
            ("version", "1"),
            ("grantee_kind", "vendor"),
            ("vendor", "vendor-x"),
            ("col.id", "oui"),
            ("rule.id", "pseudonymise"),
            ("col.age", "oui"),
            ("rule.age", "bin"),
            ("param.age", age_param),
            ("qi.age", "oui"),
            ("col.postcode", "oui"),
            ("rule.postcode", "prefix"),
            ("param.postcode", "2"),
            ("qi.postcode", "oui"),
            ("purpose", "Prévoir la fréquentation"),
            ("expires", expires.as_str()),
            ("action", action),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        f
    };
    let post = |f: Vec<(String, String)>, cookie: String, path: &'static str| {
        let gw_url = gw.url.clone();
        async move {
            let resp = client()
                .post(format!("{gw_url}{path}"))
                .header(COOKIE, cookie)
                .form(&f)
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
    };

    // The preview: ages by year are unique, so the smallest class is 1 row and the gate
    // (min k 5, personal data to a vendor) would refuse; by decades it reaches 5.
    let (s, _, html) = post(
        form("csrf-carol", "apercu", "1"),
        cookie.clone(),
        "/console/partages",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("La plus petite classe compte 1 ligne "),
        "{html}"
    );
    assert!(html.contains("Le partage serait refusé"), "{html}");
    let (s, _, html) = post(
        form("csrf-carol", "apercu", "10"),
        cookie.clone(),
        "/console/partages",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("La plus petite classe compte 5 lignes "),
        "{html}"
    );
    assert!(
        html.contains("k = 5") && !html.contains("Le partage serait refusé"),
        "{html}"
    );
    assert!(
        html.contains("value=\"10\""),
        "the form comes back as typed: {html}"
    );
    // The live preview (htmx, as the form changes): the same POST with `HX-Request`; the
    // preview zone carries the figures, or the refused fields (only that zone is swapped
    // into the page). A page load without htmx does not list them there.
    let live = |f: Vec<(String, String)>, hx: bool| {
        let req = client()
            .post(format!("{}/console/partages", gw.url))
            .header(COOKIE, cookie.clone())
            .form(&f);
        let req = if hx {
            req.header("HX-Request", "true")
        } else {
            req
        };
        async move {
            let resp = req.send().await.expect("request");
            (resp.status(), resp.text().await.expect("body"))
        }
    };
    let (s, html) = live(form("csrf-carol", "apercu", "10"), true).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"apercu-contenu\"")
            && html.contains("La plus petite classe compte 5 lignes "),
        "{html}"
    );
    let (s, html) = live(form("csrf-carol", "apercu", "dix"), true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"apercu-erreurs\"") && html.contains("largeur des tranches"),
        "{html}"
    );
    let (s, html) = live(form("csrf-carol", "apercu", "dix"), false).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(!html.contains("id=\"apercu-erreurs\""), "{html}");
    // The form carries the htmx trigger, and the page the vendored htmx, served by the
    // gateway (no CDN): the pinned file's very bytes.
    assert!(
        html.contains("id=\"apercu-direct\"")
            && html.contains("hx-post=\"/console/partages\"")
            && html.contains("<script src=\"/console/js/htmx.min.js\" defer></script>"),
        "{html}"
    );
    let resp = client()
        .get(format!("{}/console/js/htmx.min.js", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let vendored = std::fs::read(support::repo_root().join("api/console/assets/htmx/htmx.min.js"))
        .expect("the vendored htmx");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), vendored.as_slice());

    // The API's preview is the same function: the same smallest class.
    let body = serde_json::json!({
        "datasetId": id, "version": 1, "grantee": {"vendor": "vendor-x"},
        "columns": ["id", "age", "postcode"],
        "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 10.0}},
                               "postcode": {"generalise": {"prefix": 2}}},
                   "quasiIdentifiers": ["age", "postcode"]},
        "purpose": "Prévoir", "expiresAt": (chrono::Utc::now() + chrono::Duration::days(20)).to_rfc3339(),
    });
    let (s, p) = gw
        .call(
            "POST",
            "/v1/grants/preview",
            Some(&carol),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["smallestClass"].as_u64(), p["minK"].as_u64()),
        (Some(5), Some(5)),
        "{p}"
    );
    assert!(p["refusal"].is_null(), "{p}");
    let (s, _) = gw
        .call("POST", "/v1/grants/preview", Some(&bob), Some(body))
        .await;
    assert_eq!(s, 404, "another tenant's admin previews nothing");
    let (_, list) = gw.call("GET", "/v1/grants", Some(&carol), None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "a preview creates nothing: {list}"
    );

    // Bad input: French errors beside their field, nothing created, choices kept.
    let mut f = form("csrf-carol", "creer", "dix");
    let (s, _, html) = post(f.clone(), cookie.clone(), "/console/partages").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"param-1-erreur\"") && html.contains("largeur des tranches"),
        "{html}"
    );
    f.retain(|(k, _)| k != "purpose");
    f.iter_mut()
        .filter(|(k, _)| k == "param.age")
        .for_each(|(_, v)| *v = "10".into());
    let (s, _, html) = post(f, cookie.clone(), "/console/partages").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"purpose-erreur\"") && html.contains("Indiquez la finalité"),
        "{html}"
    );
    assert!(html.contains("value=\"vendor-x\""), "{html}");
    // The gate itself, on creation: refused with the reason.
    let (s, _, html) = post(
        form("csrf-carol", "creer", "1"),
        cookie.clone(),
        "/console/partages",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Le seuil de k-anonymat n"), "{html}");
    // Without the CSRF token: refused.
    let (s, _, _) = post(form("", "creer", "10"), cookie.clone(), "/console/partages").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, list) = gw.call("GET", "/v1/grants", Some(&carol), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // Created through the API's own creation.
    let (s, to, html) = post(
        form("csrf-carol", "creer", "10"),
        cookie.clone(),
        "/console/partages",
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    let (_, list) = gw.call("GET", "/v1/grants", Some(&carol), None).await;
    let grant = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(to, format!("/console/partages?cree={grant}"));
    assert_eq!(list[0]["kAnonymity"]["smallestClassOut"], 5, "{list}");
    let (_, _, html) = get(&gw, &to, Some(&cookie)).await;
    assert!(
        html.contains(&format!("id=\"revoquer-{grant}\"")) && html.contains("5 lignes"),
        "{html}"
    );

    // The version the grant reads cannot be deleted while the grant lives: said on the
    // dataset's page.
    let (s, _, html) = post_form(
        &gw,
        &format!("/console/donnees/{id}/versions/1/supprimer"),
        &cookie,
        &[("csrf", "csrf-carol")],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    assert!(
        html.contains("id=\"refus\"") && html.contains(&grant),
        "{html}"
    );

    // A member sees it, without the button, and cannot revoke it.
    let alice_cookie = session(&gw, &alice, "csrf-alice");
    let (_, _, html) = get(&gw, "/console/partages", Some(&alice_cookie)).await;
    assert!(
        html.contains(&format!("partage-{grant}")) && !html.contains("id=\"revoquer-"),
        "{html}"
    );
    let revoke_path = format!("/console/partages/{grant}/revoquer");
    let (s, _, _) = post_form(&gw, &revoke_path, &alice_cookie, &[("csrf", "csrf-alice")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Montreuil's admin sees none of it.
    let bob_cookie = session(&gw, &bob, "csrf-bob");
    let (_, _, html) = get(&gw, "/console/partages", Some(&bob_cookie)).await;
    assert!(!html.contains(&grant) && !html.contains(&id), "{html}");
    let (s, _, _) = get(
        &gw,
        &format!("/console/partages/nouveau?jeu={id}"),
        Some(&bob_cookie),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = post_form(&gw, &revoke_path, &bob_cookie, &[("csrf", "csrf-bob")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut f = form("csrf-bob", "creer", "10");
    f.iter_mut()
        .filter(|(k, _)| k == "csrf")
        .for_each(|(_, v)| *v = "csrf-bob".into());
    let (s, _, _) = post(f, bob_cookie.clone(), "/console/partages").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The grant's Delta Sharing profile: offered to whom Cedar lets read its data (the
    // tenant's admin; not a member, for a vendor's grant), as a file, with the token.
    let profile_path = format!("/console/partages/{grant}/profil");
    let (_, _, html) = get(&gw, "/console/partages", Some(&cookie)).await;
    assert!(html.contains(&format!("id=\"profil-{grant}\"")), "{html}");
    let (_, _, html) = get(&gw, "/console/partages", Some(&alice_cookie)).await;
    assert!(!html.contains("id=\"profil-"), "{html}");
    let (s, _, _) = post_form(&gw, &profile_path, &cookie, &[("csrf", "nope")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp = client()
        .post(format!("{}{profile_path}", gw.url))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "csrf-carol")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"serre-{grant}.share\"").as_str()
    );
    let p: serde_json::Value = resp.json().await.expect("a JSON profile");
    assert_eq!(p["shareCredentialsVersion"], 1, "{p}");
    assert!(
        p["endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with("/delta-sharing")),
        "{p}"
    );
    assert!(
        p["bearerToken"].as_str().is_some_and(|t| t.len() > 20),
        "{p}"
    );
    let (s, _, _) = post_form(&gw, &profile_path, &alice_cookie, &[("csrf", "csrf-alice")]).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a member reads no vendor's grant data"
    );
    let (s, _, _) = post_form(&gw, &profile_path, &bob_cookie, &[("csrf", "csrf-bob")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, audit) = gw
        .call(
            "GET",
            "/v1/audit?tenant=est-ensemble&limit=1000",
            Some(&carol),
            None,
        )
        .await;
    assert!(
        audit.to_string().contains("grant.profile.issued"),
        "{audit}"
    );

    let (_, g) = gw
        .call("GET", &format!("/v1/grants/{grant}"), Some(&carol), None)
        .await;
    assert_eq!(g["state"], "active", "{g}");

    // Revocation: CSRF needed, then revoked.
    let (s, _, _) = post_form(&gw, &revoke_path, &cookie, &[("csrf", "nope")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, to, _) = post_form(&gw, &revoke_path, &cookie, &[("csrf", "csrf-carol")]).await;
    assert_eq!(
        (s, to),
        (
            StatusCode::SEE_OTHER,
            format!("/console/partages?revoque={grant}")
        )
    );
    let (_, g) = gw
        .call("GET", &format!("/v1/grants/{grant}"), Some(&carol), None)
        .await;
    assert_eq!(g["state"], "revoked", "{g}");
    gw.stop().await;
}

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

fn ledger_row(
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
