//! The web console over HTTP: datasets uploaded with the form and grants previewed,
//! created and revoked, each shown to its tenant only (helpers: `console.rs`).

mod support;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use support::groups::{EE_ADMIN, EE_DATA, MONTREUIL_ADMIN};
use support::{Backend, Gateway, local_gateway};

use crate::console::{client, get, post_form, session};

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
