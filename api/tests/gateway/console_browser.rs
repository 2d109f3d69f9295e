//! The console in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`, Debian `chromium` + `chromium-driver`) signs in on the real
//! `oidc-provider` login page with development accounts and goes through the journeys: a
//! data-team member requests a sandbox and uploads a CSV; a tenant admin previews and
//! creates a grant, reads a run's report, the usage charts, the members, approvals and
//! audit pages; a person of another tenant sees none of it. On every console page the
//! real axe-core (npm, pinned, installed by deploy/dev/axe-core.sh — never a CDN) runs in
//! the page and the test fails on any serious or critical violation. A screenshot of each
//! page is saved under the test's scratch directory (its path is printed; set
//! SERRE_TEST_SCREENSHOTS=DIR to keep them). Without Chromium this test fails; it never
//! skips.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use support::{Backend, Gateway, Setup, free_ports, new_dir, oidc};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"]
            .iter()
            .map(|d| format!("{d}/{n}"))
            .find(|p| std::path::Path::new(p).exists())
    })
}

async fn shot(browser: &Client, dir: &std::path::Path, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
}

/// The pages visited: screenshots, and axe-core's serious and critical violations.
struct Visit {
    shots: std::path::PathBuf,
    axe: String,
    violations: Vec<String>,
    n: usize,
}

impl Visit {
    /// Screenshot the page and run axe-core in it.
    async fn check(&mut self, b: &Client, name: &str) {
        self.n += 1;
        shot(b, &self.shots, &format!("{:02}-{name}", self.n)).await;
        for v in self.serious(b).await {
            self.violations.push(format!("{name}: {v}"));
        }
    }

    /// The page's serious and critical violations, as axe-core reports them.
    async fn serious(&self, b: &Client) -> Vec<String> {
        b.execute(&self.axe, vec![])
            .await
            .expect("load axe-core in the page");
        let found = b
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document, { resultTypes: ['violations'] })
                     .then(r => done(r.violations
                        .filter(v => v.impact === 'serious' || v.impact === 'critical')
                        .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' — '
                             + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))
                     .catch(e => done(['axe failed: ' + e]));"#,
                vec![],
            )
            .await
            .expect("axe.run");
        found
            .as_array()
            .unwrap_or_else(|| panic!("axe-core gave no list of violations: {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The check can fail: an image without a text alternative (a critical violation)
    /// added to the page is reported, and is gone once removed.
    async fn prove(&self, b: &Client) {
        b.execute(
            "const i = document.createElement('img'); i.id = 'axe-probe'; \
             i.src = '/console/dsfr/none.png'; document.body.appendChild(i);",
            vec![],
        )
        .await
        .expect("add the probe");
        let found = self.serious(b).await;
        assert!(
            found.iter().any(|v| v.contains("image-alt")),
            "axe-core missed an image without alt: {found:?}"
        );
        b.execute("document.getElementById('axe-probe').remove();", vec![])
            .await
            .expect("remove the probe");
    }
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_in(b: &Client, css: &str, text: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn choose(b: &Client, css: &str, value: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
}

async fn wait_for(b: &Client, css: &str) {
    b.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"));
}

async fn text_of(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// From the console's home page, through the provider's sign-in page, as `account`.
async fn sign_in(b: &Client, gw: &Gateway, account: &str) {
    b.goto(&format!("{}/console", gw.url)).await.expect("goto");
    click(b, "#connexion").await;
    wait_for(b, "input[name=login]").await;
    type_in(b, "input[name=login]", account).await;
    type_in(b, "input[name=password]", &format!("dev-secret-{account}")).await;
    click(b, "button[type=submit]").await;
    wait_for(b, "#utilisateur").await;
    assert_eq!(text_of(b, "#utilisateur").await, account);
}

/// Sign out: the console sends the browser to the provider's end-session page
/// (RP-Initiated Logout), where the person confirms, and the provider sends it back to
/// the console. The provider's session is over: the next « Se connecter » asks for an
/// account and password again (`sign_in` waits for that form), with no cookie removed by
/// the test.
async fn sign_out(b: &Client) {
    click(b, "#deconnexion").await;
    // oidc-provider's confirmation page (`logoutSource`): « Yes, sign me out ».
    wait_for(b, "button[name=logout][value=yes]").await;
    let at = b.current_url().await.expect("url");
    assert!(
        at.path().ends_with("/session/end"),
        "not the provider's end-session page: {at}"
    );
    click(b, "button[name=logout][value=yes]").await;
    wait_for(b, "#deconnecte").await;
    assert!(
        b.get_named_cookie("serre_console").await.is_err(),
        "the session cookie is still there"
    );
}

/// Chromium through chromedriver, headless, French, 1280 px wide.
async fn start_browser() -> (Driver, Client) {
    let driver_bin = find(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "chromedriver not found: this test needs a real browser. Install Debian's \
             `chromium` and `chromium-driver` (deploy/dev/test.sh does)"
        )
    });
    let chrome_bin = find(&["chromium"]).unwrap_or_else(|| {
        panic!("chromium not found: install Debian's `chromium` and `chromium-driver`")
    });
    let port = free_ports(1);
    let driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver_bin}: {e}")),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome_bin,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1600", "--lang=fr-FR"],
            // What a French browser asks for (`--lang` alone does not set Accept-Language
            // in headless Chromium, which would then ask for English).
            "prefs": { "intl.accept_languages": "fr-FR,fr" },
        }),
    );
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("chromedriver on port {port} did not answer");
}

#[tokio::test]
async fn people_sign_in_and_go_through_the_journeys_in_a_real_browser_with_no_serious_accessibility_violation()
 {
    let axe_path = Command::new(support::repo_root().join("deploy/dev/axe-core.sh"))
        .arg("path")
        .output()
        .expect("run deploy/dev/axe-core.sh");
    assert!(
        axe_path.status.success(),
        "deploy/dev/axe-core.sh path failed"
    );
    let axe_path = String::from_utf8_lossy(&axe_path.stdout).trim().to_owned();
    let axe = std::fs::read_to_string(&axe_path).unwrap_or_else(|e| panic!("{axe_path}: {e}"));
    let provider = oidc();
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.dev_issuer = false;
    setup.oidc_issuer = Some(provider.issuer.clone());
    // On loopback: without --console-url the console takes its URL from the Host header
    // there only (test.sh makes the tests' gateways listen on the node's host address).
    setup.listen_host = Some("127.0.0.1".into());
    let gw = Gateway::start(setup).await;
    // The scratch directory goes with the test binary; SERRE_TEST_SCREENSHOTS keeps them.
    let shots = match std::env::var_os("SERRE_TEST_SCREENSHOTS") {
        Some(d) => {
            std::fs::create_dir_all(&d).expect("SERRE_TEST_SCREENSHOTS");
            std::path::PathBuf::from(d)
        }
        None => new_dir("console-screenshots"),
    };
    println!("screenshots in {}", shots.display());
    let mut visit = Visit {
        shots: shots.clone(),
        axe,
        violations: Vec::new(),
        n: 0,
    };

    let (_driver, b) = start_browser().await;

    // ---- A data-team member of Est Ensemble.
    b.goto(&format!("{}/console", gw.url)).await.expect("goto");
    visit.prove(&b).await;
    visit.check(&b, "accueil").await;
    click(&b, "#connexion").await;
    wait_for(&b, "input[name=login]").await;
    shot(&b, &shots, "00-fournisseur").await;
    type_in(&b, "input[name=login]", "est-ensemble-data").await;
    type_in(&b, "input[name=password]", "dev-secret-est-ensemble-data").await;
    click(&b, "button[type=submit]").await;
    wait_for(&b, "#demande").await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/bacs-a-sable")
    );
    assert_eq!(text_of(&b, "#utilisateur").await, "est-ensemble-data");
    visit.check(&b, "mes-bacs").await;

    // Request a sandbox through the form.
    type_in(&b, "#name", "navigateur").await;
    type_in(
        &b,
        "#purpose",
        "Essai de la console dans un vrai navigateur",
    )
    .await;
    click(&b, "#demander").await;
    wait_for(&b, "#cree").await;
    assert!(
        text_of(&b, "#bacs")
            .await
            .contains("est-ensemble--navigateur")
    );
    visit.check(&b, "demande-enregistree").await;

    // Upload a CSV: 30 residents, ages 20 to 49, two postcodes.
    let mut csv = String::from("id,age,postcode\n");
    for i in 0..30 {
        let postcode = if i % 2 == 0 { "93100" } else { "94200" };
        csv.push_str(&format!("{i},{},{postcode}\n", 20 + i));
    }
    let file = new_dir("upload").join("residents.csv");
    std::fs::write(&file, csv).expect("write CSV");
    b.goto(&format!("{}/console/donnees", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#depot").await;
    visit.check(&b, "jeux-de-donnees").await;
    // The DSFR language selector (a <details>, no script): English, checked by axe-core
    // in English, then back to French.
    click(&b, "#langue summary").await;
    click(&b, "#langue-en").await;
    wait_for(&b, "html[lang=en] #depot").await;
    assert_eq!(text_of(&b, "h1").await, "Datasets");
    visit.check(&b, "datasets-in-english").await;
    click(&b, "#langue summary").await;
    click(&b, "#langue-fr").await;
    wait_for(&b, "html[lang=fr] #depot").await;
    assert_eq!(text_of(&b, "h1").await, "Jeux de données");
    // A name the API refuses: the form comes back with the error beside the field (and is
    // checked by axe-core in that state), what was typed kept.
    type_in(&b, "#name", "Pas Un Nom").await;
    choose(&b, "#classification", "personal").await;
    type_in(&b, "#types", "postcode:string").await;
    type_in(&b, "#fichier", &file.display().to_string()).await;
    // Our progress bar (api/console/js/televersement.js): the form goes by XMLHttpRequest
    // and the refusal replaces the page's body in place, so what the bar showed can be
    // recorded from here to the refusal.
    b.execute(
        "window.serreProgression = []; \
         new MutationObserver(function () { \
           var zone = document.getElementById('progression'); \
           var bar = document.getElementById('progression-barre'); \
           var state = document.getElementById('progression-etat'); \
           if (zone && bar && state && !zone.hidden) { \
             window.serreProgression.push([bar.value, state.textContent]); \
           } \
         }).observe(document.documentElement, \
           {subtree: true, childList: true, attributes: true, characterData: true});",
        vec![],
    )
    .await
    .expect("observe the progress bar");
    click(&b, "#deposer").await;
    wait_for(&b, "#name-erreur").await;
    let seen = b
        .execute("return window.serreProgression;", vec![])
        .await
        .expect("the progress recorded");
    let seen: Vec<(f64, String)> = serde_json::from_value(seen).expect("[value, text] pairs");
    assert!(
        seen.iter()
            .any(|(v, t)| *v == 100.0 && t.starts_with("100 % — ") && t.contains(" envoyés sur ")),
        "the progress bar shown and reaching 100 %: {seen:?}"
    );
    assert!(
        b.execute("return window.serreProgression !== undefined;", vec![])
            .await
            .expect("script")
            .as_bool()
            == Some(true),
        "the refusal was shown without a page load"
    );
    assert!(
        text_of(&b, "#name-erreur")
            .await
            .starts_with("Le nom ne peut contenir")
    );
    visit.check(&b, "depot-refuse").await;
    b.find(Locator::Css("#name"))
        .await
        .expect("name")
        .clear()
        .await
        .expect("clear");
    type_in(&b, "#name", "residents").await;
    type_in(&b, "#fichier", &file.display().to_string()).await;
    click(&b, "#deposer").await;
    wait_for(&b, "#cree").await;
    assert!(text_of(&b, "#schema").await.contains("postcode"));
    // (DSFR badges are upper case on screen.)
    assert_eq!(
        text_of(&b, "#classification").await.to_lowercase(),
        "personnelles"
    );
    visit.check(&b, "jeu-depose").await;
    sign_out(&b).await;
    visit.check(&b, "deconnecte").await;

    // ---- Est Ensemble's admin: a grant, a run's report, usage, members, audit.
    sign_in(&b, &gw, "est-ensemble-admin").await;
    b.goto(&format!("{}/console/approbations", gw.url))
        .await
        .expect("goto");
    visit.check(&b, "approbations").await;
    b.goto(&format!("{}/console/partages", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#choisir-jeu").await;
    visit.check(&b, "partages").await;
    click(&b, "#continuer").await;
    wait_for(&b, "#partage").await;
    click(&b, "label[for=grantee-vendor]").await;
    type_in(&b, "#vendor", "vendor").await;
    choose(&b, "#rule-0", "pseudonymise").await;
    choose(&b, "#rule-1", "bin").await;
    type_in(&b, "#param-1", "10").await;
    click(&b, "label[for=qi-1]").await;
    choose(&b, "#rule-2", "prefix").await;
    type_in(&b, "#param-2", "2").await;
    click(&b, "label[for=qi-2]").await;
    type_in(&b, "#purpose", "Prévoir la fréquentation des équipements").await;
    // With JavaScript (htmx, vendored), the preview follows the form: no button pressed,
    // no page loaded, the preview zone shows the k-anonymity of the form as it now is.
    let mut live = String::new();
    for _ in 0..100 {
        live = b
            .find(Locator::Css("#apercu-zone"))
            .await
            .expect("the preview zone")
            .text()
            .await
            .unwrap_or_default();
        if live.contains("La plus petite classe compte 5 lignes") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        live.contains("La plus petite classe compte 5 lignes"),
        "the preview did not follow the form: {live:?}"
    );
    assert!(
        b.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/partages/nouveau"),
        "a page was loaded: the preview was not live"
    );
    // (Without JavaScript the « Prévisualiser » button gives the same box: console.rs.)
    b.execute(
        "document.getElementById('apercu-zone').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll");
    visit.check(&b, "apercu-k-anonymat").await;
    click(&b, "#creer").await;
    wait_for(&b, "#avis").await;
    assert!(
        text_of(&b, "#partages")
            .await
            .contains("prestataire vendor")
    );
    visit.check(&b, "partage-cree").await;

    // A run of the sandbox, finished and closed by the accounting (no cluster here: the
    // row is written to the gateway's store, as the HTTP tests do), and some usage.
    let sb = "est-ensemble--navigateur";
    let app = gw.app();
    let now = chrono::Utc::now();
    let at = |m: i64| (now - chrono::Duration::minutes(m)).to_rfc3339();
    let spec: serre_resources::TrialRunSpec = serde_json::from_value(serde_json::json!({
        "sandbox": sb, "image": "registry.example.fr/vendors/model:1",
        "resources": {"cpu": "1", "memory": "1Gi"},
        "kind": "inference", "timeoutSeconds": 600, "requestedBy": "est-ensemble-admin",
    }))
    .expect("spec");
    app.store
        .insert_run(&serre_api::store::RunRow {
            name: "run-000000000042".into(),
            namespace: format!("serre-{sb}"),
            sandbox: sb.into(),
            tenant: "est-ensemble".into(),
            solution: None,
            kind: "inference".into(),
            requested_by: "est-ensemble-admin".into(),
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
        })
        .await
        .expect("run");
    let row = |ns: &str, kwh: f64, method: &str| serre_api::energy::LedgerRow {
        window_start: now - chrono::Duration::minutes(10),
        window_end: now - chrono::Duration::minutes(5),
        tenant: "est-ensemble".into(),
        namespace: ns.into(),
        run: String::new(),
        quantity: "meter_energy".into(),
        value: kwh,
        unit: "kwh".into(),
        method: method.into(),
        source: "browser test".into(),
    };
    app.store
        .record_usage_window(
            now,
            &[
                row(&format!("serre-{sb}"), 1.25, "modelled"),
                row("serre-est-ensemble--autre", 0.5, "kepler"),
                serre_api::energy::LedgerRow {
                    run: "run-000000000042".into(),
                    ..row(&format!("serre-{sb}"), 0.002, "modelled")
                },
            ],
        )
        .await
        .expect("usage");
    app.accountant
        .pass(now, &app.tenants)
        .await
        .expect("accounting pass");

    b.goto(&format!("{}/console/bacs-a-sable/{sb}", gw.url))
        .await
        .expect("goto");
    visit.check(&b, "bac-a-sable").await;
    click(&b, "#lien-executions").await;
    wait_for(&b, "#executions").await;
    visit.check(&b, "executions").await;
    b.goto(&format!(
        "{}/console/bacs-a-sable/{sb}/executions/run-000000000042",
        gw.url
    ))
    .await
    .expect("goto");
    wait_for(&b, "#etat").await;
    visit.check(&b, "execution").await;
    click(&b, "#lien-journal").await;
    wait_for(&b, "#journal-note").await;
    visit.check(&b, "journal-execution").await;
    b.back().await.expect("back");
    click(&b, "#lien-rapport").await;
    wait_for(&b, "#bilan").await;
    assert!(text_of(&b, "#methode").await.contains("modélisée"));
    visit.check(&b, "rapport-frugalite").await;
    b.goto(&format!("{}/console/consommation", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "svg#par-methode").await;
    visit.check(&b, "consommation").await;
    b.goto(&format!("{}/console/bacs-a-sable/{sb}/membres", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#ajout-membre").await;
    visit.check(&b, "membres").await;
    b.goto(&format!("{}/console/journal", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#journal").await;
    visit.check(&b, "journal-audit").await;
    // The chain's verification, from the page.
    click(&b, "#verifier-bouton").await;
    wait_for(&b, "#verification").await;
    assert!(
        text_of(&b, "#verification")
            .await
            .contains("Chaîne intacte")
    );
    visit.check(&b, "journal-verifie").await;
    b.goto(&format!("{}/console/catalogue", gw.url))
        .await
        .expect("goto");
    visit.check(&b, "catalogue").await;
    let dataset_page = {
        b.goto(&format!("{}/console/donnees", gw.url))
            .await
            .expect("goto");
        b.find(Locator::Css("#jeux a"))
            .await
            .expect("the dataset's link")
            .attr("href")
            .await
            .expect("href")
            .expect("an href")
    };
    // The tenant admin's dataset page offers to delete its versions.
    b.goto(&format!("{}{dataset_page}", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#supprimer-1").await;
    visit.check(&b, "jeu-de-donnees-admin").await;
    sign_out(&b).await;

    // ---- The vendor sees the grant that names it, and nothing else of Est Ensemble's.
    sign_in(&b, &gw, "vendor").await;
    b.goto(&format!("{}/console/partages", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#partages").await;
    assert!(
        text_of(&b, "#partages")
            .await
            .contains("prestataire vendor")
    );
    visit.check(&b, "partages-prestataire").await;
    b.goto(&format!("{}/console/donnees", gw.url))
        .await
        .expect("goto");
    assert!(!b.source().await.expect("source").contains("residents"));
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .expect("goto");
    assert!(
        !b.source()
            .await
            .expect("source")
            .contains("est-ensemble--navigateur")
    );
    sign_out(&b).await;

    // ---- Montreuil's admin sees none of it.
    sign_in(&b, &gw, "montreuil-admin").await;
    b.goto(&format!("{}/console/donnees", gw.url))
        .await
        .expect("goto");
    let html = b.source().await.expect("source");
    assert!(
        !html.contains("residents"),
        "another tenant's dataset listed"
    );
    b.goto(&format!("{}/console/partages", gw.url))
        .await
        .expect("goto");
    let html = b.source().await.expect("source");
    assert!(
        !html.contains("prestataire vendor"),
        "another tenant's grant listed"
    );
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .expect("goto");
    let html = b.source().await.expect("source");
    assert!(
        !html.contains("est-ensemble--navigateur"),
        "another tenant's sandbox listed"
    );
    b.goto(&format!("{}{dataset_page}", gw.url))
        .await
        .expect("goto");
    assert!(
        b.source()
            .await
            .expect("source")
            .contains("Page introuvable")
    );
    visit.check(&b, "autre-collectivite-introuvable").await;
    b.goto(&format!(
        "{}/console/consommation?collectivite=est-ensemble",
        gw.url
    ))
    .await
    .expect("goto");
    assert!(
        b.source()
            .await
            .expect("source")
            .contains("Page introuvable")
    );
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .expect("goto");
    sign_out(&b).await;

    // ---- The Métropole's admin sets Est Ensemble's self-service policy.
    sign_in(&b, &gw, "metropole-admin").await;
    b.goto(&format!(
        "{}/console/libre-service?collectivite=est-ensemble",
        gw.url
    ))
    .await
    .expect("goto");
    wait_for(&b, "#politique").await;
    visit.check(&b, "libre-service").await;
    let days = b.find(Locator::Css("#max_days")).await.expect("#max_days");
    days.clear().await.expect("clear");
    days.send_keys("45").await.expect("type");
    click(&b, "#enregistrer").await;
    wait_for(&b, "#enregistree").await;
    visit.check(&b, "libre-service-enregistre").await;
    sign_out(&b).await;
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .unwrap();
    wait_for(&b, "#connexion").await;

    b.close().await.unwrap();
    gw.stop().await;
    assert!(
        visit.violations.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        visit.violations.join("\n")
    );
}

/// A provider of its own whose access tokens last `ttl_s` seconds (the shared one's last
/// ten minutes).
fn short_lived_provider(ttl_s: u32) -> String {
    let dir = new_dir("oidc-short");
    let status = Command::new(support::repo_root().join("deploy/dev/oidc-provider.sh"))
        .args(["start", dir.to_str().expect("utf-8 path")])
        .env("SERRE_OIDC_PORT", free_ports(1).to_string())
        .env("SERRE_OIDC_TOKEN_TTL", ttl_s.to_string())
        .env("SERRE_OIDC_PARENT_PID", std::process::id().to_string())
        .status()
        .expect("run deploy/dev/oidc-provider.sh");
    assert!(status.success(), "deploy/dev/oidc-provider.sh start failed");
    std::fs::read_to_string(dir.join("issuer"))
        .expect("DIR/issuer")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn a_session_outlives_its_access_token_through_the_refresh_token() {
    // Access tokens of 4 s, no clock skew tolerated: every page after a few seconds needs
    // a renewed token.
    let issuer = short_lived_provider(4);
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.dev_issuer = false;
    setup.oidc_issuer = Some(issuer);
    setup.listen_host = Some("127.0.0.1".into());
    setup.extra = vec!["--oidc-clock-skew".into(), "0s".into()];
    let gw = Gateway::start(setup).await;
    let (_driver, b) = start_browser().await;

    sign_in(&b, &gw, "est-ensemble-data").await;
    let first = b
        .get_named_cookie("serre_console")
        .await
        .expect("session cookie")
        .value()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The access token has lapsed: the page still opens, with a renewed cookie.
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .expect("goto");
    wait_for(&b, "#demande").await;
    assert_eq!(text_of(&b, "#utilisateur").await, "est-ensemble-data");
    let renewed = b
        .get_named_cookie("serre_console")
        .await
        .expect("session cookie")
        .value()
        .to_owned();
    assert_ne!(first, renewed, "the session cookie was not renewed");
    // A form sent after the renewed token lapsed too is not lost: renewed again, created.
    type_in(&b, "#name", "renouvelee").await;
    type_in(&b, "#purpose", "Une session qui dure plus que son jeton").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    click(&b, "#demander").await;
    wait_for(&b, "#cree").await;
    assert!(
        text_of(&b, "#bacs")
            .await
            .contains("est-ensemble--renouvelee")
    );
    b.close().await.expect("close");
    gw.stop().await;
}
