//! The console in English over HTTP: the language comes from `?lang=` (remembered in the
//! `serre_lang` cookie), else `Accept-Language`, else French; `<html lang>` follows; pages,
//! refusals and error pages read in English, with English numbers and dates, and the API's
//! own words for its validation issues. The catalogue itself: `console_i18n_catalogue.rs`.

mod support;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_LANGUAGE, COOKIE, SET_COOKIE};
use support::groups::EE_DATA;
use support::{Backend, Gateway, local_gateway, sandbox_body};

struct Answer {
    status: StatusCode,
    set_cookie: Vec<String>,
    content_language: String,
    html: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request");
    let header = |name| {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let set_cookie = header(SET_COOKIE);
    let content_language = header(CONTENT_LANGUAGE).join(",");
    Answer {
        status: resp.status(),
        set_cookie,
        content_language,
        html: resp.text().await.expect("body"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `GET path` with these `Cookie` and `Accept-Language` headers.
async fn get(gw: &Gateway, path: &str, cookie: &str, accept: Option<&str>) -> Answer {
    let mut req = client().get(format!("{}{path}", gw.url));
    if !cookie.is_empty() {
        req = req.header(COOKIE, cookie);
    }
    if let Some(a) = accept {
        req = req.header(ACCEPT_LANGUAGE, a);
    }
    send(req).await
}

fn html_lang(html: &str) -> &str {
    html.split("<html lang=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_language_comes_from_the_query_the_cookie_or_accept_language() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let session = serre_api::console::session_cookie(&gw.web().console, &alice, "csrf-a");

    // Nothing asked: French, with the switch to English.
    let a = get(&gw, "/console/bacs-a-sable", &session, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.html);
    assert_eq!(html_lang(&a.html), "fr");
    assert_eq!(a.content_language, "fr");
    assert!(a.html.contains("Mes bacs à sable") && a.html.contains("Se déconnecter"));
    assert!(
        a.html.contains(r#"hreflang="en""#)
            && a.html.contains(r#"href="/console/bacs-a-sable?lang=en""#),
        "the language switch: {}",
        a.html
    );

    // Accept-Language: English preferred.
    let a = get(
        &gw,
        "/console/bacs-a-sable",
        &session,
        Some("en-GB,en;q=0.9"),
    )
    .await;
    assert_eq!(html_lang(&a.html), "en");
    assert!(
        a.html.contains("My sandboxes") && a.html.contains("Sign out"),
        "{}",
        a.html
    );
    assert!(!a.html.contains("Mes bacs à sable"), "{}", a.html);
    assert!(a.set_cookie.iter().all(|c| !c.starts_with("serre_lang=")));

    // A language the console does not have: French. Preferences are weighed by q.
    for (accept, lang) in [
        ("de", "fr"),
        ("de-DE, fr;q=0.3, en;q=0.2", "fr"),
        ("fr;q=0.2, en;q=0.8", "en"),
        ("en;q=0, fr;q=0.1", "fr"),
    ] {
        let a = get(&gw, "/console/bacs-a-sable", &session, Some(accept)).await;
        assert_eq!(html_lang(&a.html), lang, "Accept-Language: {accept}");
    }

    // ?lang=en wins over Accept-Language and is remembered in a cookie…
    let a = get(&gw, "/console/bacs-a-sable?lang=en", &session, Some("fr")).await;
    assert_eq!(html_lang(&a.html), "en");
    assert!(a.html.contains("Request a sandbox"), "{}", a.html);
    let remembered = a
        .set_cookie
        .iter()
        .find(|c| c.starts_with("serre_lang=en;"))
        .unwrap_or_else(|| panic!("no serre_lang cookie: {:?}", a.set_cookie));
    assert!(
        remembered.contains("SameSite=Lax") && remembered.contains("Path=/console"),
        "{remembered}"
    );
    // …which the next pages follow, even against the browser's Accept-Language.
    let cookies = format!("{session}; serre_lang=en");
    for (path, words) in [
        ("/console/donnees", "Upload a dataset"),
        ("/console/partages", "No grant you can see."),
        ("/console/catalogue", "Solution catalogue"),
        ("/console/consommation", "Usage and energy budget"),
    ] {
        let a = get(&gw, path, &cookies, Some("fr-FR,fr;q=0.9")).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.html);
        assert_eq!(html_lang(&a.html), "en", "{path}");
        assert!(a.html.contains(words), "{path}: {}", a.html);
        assert!(
            a.html.contains(&format!(r#"href="{path}?lang=fr""#)),
            "{path}: the switch back to French"
        );
    }
    // Back to French with ?lang=fr, remembered too.
    let a = get(&gw, "/console/donnees?lang=fr", &cookies, None).await;
    assert_eq!(html_lang(&a.html), "fr");
    assert!(a.html.contains("Déposer un jeu de données"));
    assert!(a.set_cookie.iter().any(|c| c.starts_with("serre_lang=fr;")));

    // The sign-in page, without a session, follows too.
    let a = get(&gw, "/console?lang=en", "", None).await;
    assert_eq!(html_lang(&a.html), "en");
    assert!(a.html.contains("You will be sent") || a.html.contains("Sign-in is not configured"));
}

#[tokio::test]
async fn dates_refusals_and_error_pages_read_in_english() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let (s, created) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&alice),
            Some(sandbox_body("est-ensemble", "bus", 10)),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expiresAt"].as_str().expect("expiresAt"))
            .expect("a time");
    let session = serre_api::console::session_cookie(&gw.web().console, &alice, "csrf-a");
    let english = format!("{session}; serre_lang=en");

    // Dates per language; the countdown too.
    let a = get(
        &gw,
        "/console/bacs-a-sable/est-ensemble--bus",
        &english,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.html);
    assert!(
        a.html.contains(&expires.format("%-d %b %Y").to_string()),
        "an English date: {}",
        a.html
    );
    assert!(a.html.contains("in 9 days") || a.html.contains("in 10 days"));
    let a = get(
        &gw,
        "/console/bacs-a-sable/est-ensemble--bus",
        &session,
        None,
    )
    .await;
    assert!(
        a.html.contains(&expires.format("%d/%m/%Y").to_string()),
        "a French date: {}",
        a.html
    );

    // A missing page: the DSFR problem page, in English.
    let a = get(&gw, "/console/bacs-a-sable/nope--nothing", &english, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(html_lang(&a.html), "en");
    assert!(
        a.html.contains("Page not found")
            && a.html.contains("Error 404")
            && a.html.contains("Back to the console"),
        "{}",
        a.html
    );
    let a = get(&gw, "/console/no-such-page?lang=en", &session, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.html.contains("Page not found"), "{}", a.html);

    // A form without its CSRF token: refused, in English.
    let form = |csrf: &'static str, name: &'static str| {
        vec![
            ("csrf", csrf),
            ("tenant", "est-ensemble"),
            ("name", name),
            ("purpose", "Forecast ridership"),
            ("cpu", "2"),
            ("memory", "4Gi"),
            ("storage", "10Gi"),
            ("expires", "2099-01-01"),
        ]
    };
    let a = send(
        client()
            .post(format!("{}/console/bacs-a-sable", gw.url))
            .header(COOKIE, &english)
            .form(&form("wrong", "tram")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.content_language, "en");
    assert!(
        a.html.contains("Request refused") && a.html.contains("This form has expired"),
        "{}",
        a.html
    );
    assert!(!a.html.contains("Requête refusée"));

    // The API's validation issue: its own English words beside the field, in English;
    // the console's French wording in French.
    let a = send(
        client()
            .post(format!("{}/console/bacs-a-sable", gw.url))
            .header(COOKIE, &english)
            .form(&form("csrf-a", "Not_A_Name")),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.html);
    assert!(a.html.contains("id=\"name-erreur\""), "{}", a.html);
    assert!(
        a.html.contains("must be lowercase letters, digits and"),
        "the API's message: {}",
        a.html
    );
    assert!(a.html.contains("Request a sandbox"), "{}", a.html);
    assert!(!a.html.contains("Le nom ne peut contenir"), "{}", a.html);
    let a = send(
        client()
            .post(format!("{}/console/bacs-a-sable", gw.url))
            .header(COOKIE, &session)
            .form(&form("csrf-a", "Not_A_Name")),
    )
    .await;
    assert!(a.html.contains("Le nom ne peut contenir"), "{}", a.html);

    // Nothing was created by these refusals.
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&alice), None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}
