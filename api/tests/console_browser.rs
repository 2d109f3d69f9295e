//! The console in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`, Debian `chromium` + `chromium-driver`) signs in on the real
//! `oidc-provider` login page with a development account, requests a sandbox through the
//! form, sees it listed and signs out. A screenshot of each page is saved under the test's
//! scratch directory (its path is printed; set SERRE_TEST_SCREENSHOTS=DIR to keep them). Without Chromium this test fails; it never skips.

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

#[tokio::test]
async fn a_data_team_member_signs_in_requests_a_sandbox_sees_it_and_signs_out() {
    let driver_bin = find(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "chromedriver not found: this test needs a real browser. Install Debian's \
             `chromium` and `chromium-driver` (deploy/dev/test.sh does)"
        )
    });
    let chrome_bin = find(&["chromium"]).unwrap_or_else(|| {
        panic!("chromium not found: install Debian's `chromium` and `chromium-driver`")
    });
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

    let port = free_ports(1);
    let _driver = Driver(
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
        }),
    );
    let mut browser = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                browser = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let b = browser.unwrap_or_else(|| panic!("chromedriver on port {port} did not answer"));

    // The console's sign-in page, then the provider's.
    b.goto(&format!("{}/console", gw.url)).await.expect("goto");
    shot(&b, &shots, "1-accueil").await;
    b.find(Locator::Id("connexion"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("input[name=login]"))
        .await
        .expect("the provider's sign-in page");
    shot(&b, &shots, "2-fournisseur").await;
    b.find(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys("est-ensemble-data")
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("dev-secret-est-ensemble-data")
        .await
        .unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Signed in: « Mes bacs à sable ».
    b.wait()
        .for_element(Locator::Id("demande"))
        .await
        .expect("the sandboxes page");
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/bacs-a-sable")
    );
    let user = b
        .find(Locator::Id("utilisateur"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(user, "est-ensemble-data");
    shot(&b, &shots, "3-mes-bacs").await;

    // Request a sandbox through the form.
    b.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("navigateur")
        .await
        .unwrap();
    b.find(Locator::Id("purpose"))
        .await
        .unwrap()
        .send_keys("Essai de la console dans un vrai navigateur")
        .await
        .unwrap();
    b.find(Locator::Id("demander"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("cree"))
        .await
        .expect("the confirmation");
    let table = b
        .find(Locator::Id("bacs"))
        .await
        .expect("the list")
        .text()
        .await
        .unwrap();
    assert!(table.contains("est-ensemble--navigateur"), "{table}");
    shot(&b, &shots, "4-demande-enregistree").await;

    // Sign out.
    b.find(Locator::Id("deconnexion"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("deconnecte"))
        .await
        .expect("signed out");
    shot(&b, &shots, "5-deconnecte").await;
    b.goto(&format!("{}/console/bacs-a-sable", gw.url))
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("connexion"))
        .await
        .expect("back to sign-in");

    b.close().await.unwrap();
    gw.stop().await;
}
