//! The upload forms' progress bar over HTTP: the forms carry the (hidden) progress zone
//! and still post as plain forms; the page loads our script with its SRI hash, and the
//! gateway serves exactly the bytes of `api/console/js/televersement.js`, whose hash that
//! is. The bar itself, in a real browser reaching 100 %: `console_browser.rs`.

mod support;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sha2::{Digest, Sha384};
use support::groups::EE_DATA;
use support::{Backend, local_gateway};

fn attribute<'a>(html: &'a str, before: &str, name: &str) -> &'a str {
    let from = html
        .find(before)
        .unwrap_or_else(|| panic!("no {before}: {html}"));
    let tag = &html[from..from + html[from..].find('>').unwrap_or(0)];
    tag.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
}

#[tokio::test]
async fn the_upload_forms_carry_the_progress_bar_and_its_script_as_pinned() {
    let gw = local_gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_DATA);
    let session = serre_api::console::session_cookie(&gw.web().console, &alice, "csrf-a");
    let http = reqwest::Client::new();

    let html = http
        .get(format!("{}/console/donnees", gw.url))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    // The form still posts by itself (multipart, to the same address) and names its zone.
    assert!(
        html.contains(r#"action="/console/donnees" enctype="multipart/form-data" id="depot" data-progression="progression""#),
        "{html}"
    );
    // The zone: hidden without the script, a labelled <progress>, a status read aloud.
    assert!(html.contains(r#"id="progression" hidden"#), "{html}");
    assert!(
        html.contains(
            r#"<label class="fr-label" for="progression-barre">Envoi du fichier</label>"#
        ) && html
            .contains(r#"<progress class="fr-mt-1w" id="progression-barre" max="100" value="0">"#)
            && html.contains(r#"role="status" aria-live="polite""#),
        "{html}"
    );
    assert_eq!(
        attribute(&html, r#"id="progression""#, "data-modele"),
        "{} % — {} envoyés sur {}"
    );
    // No inline script: the page loads ours, with its hash, deferred.
    assert!(
        !html.contains("<script>") && !html.contains("onclick"),
        "{html}"
    );
    let integrity =
        attribute(&html, r#"src="/console/js/televersement.js""#, "integrity").to_owned();

    // The gateway serves the file's own bytes, and the hash is theirs.
    let resp = http
        .get(format!("{}/console/js/televersement.js", gw.url))
        .send()
        .await
        .expect("script");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/javascript")
    );
    let served = resp.bytes().await.expect("bytes");
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/console/js/televersement.js"
    ))
    .expect("the script's source");
    assert_eq!(served.as_ref(), file.as_slice(), "served as written");
    let expected = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&file))
    );
    assert_eq!(integrity, expected);
    // What the script relies on: the page's words and its structure; no eval.
    let source = String::from_utf8(file).expect("UTF-8");
    for needle in [
        "data-progression",
        "data-modele",
        "aria-live",
        "xhr.upload.addEventListener('progress'",
    ] {
        assert!(source.contains(needle), "the script uses {needle}");
    }
    assert!(!source.contains("eval(") && !source.contains("innerHTML"));

    // In English, the bar's words are English; a dataset's page has it for new versions.
    let html = http
        .get(format!("{}/console/donnees?lang=en", gw.url))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert_eq!(
        attribute(&html, r#"id="progression""#, "data-modele"),
        "{} % — {} of {} sent"
    );
    assert_eq!(
        attribute(&html, r#"id="progression""#, "data-unites"),
        "bytes,kB,MB,GB,TB"
    );
    assert!(html.contains(">Sending the file</label>"), "{html}");
}
