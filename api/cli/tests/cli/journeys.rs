//! `serre` against the real gateway (in-process, `api/tests/support`) and the real OpenID
//! provider (npm `oidc-provider`, `deploy/dev/oidc-provider.sh`): the device sign-in and
//! its refusals, the token cache and its refresh, and the journeys of a data team and a
//! tenant admin on a gateway without a cluster. Runs need a cluster and a node: their
//! request bodies are unit-tested in `src/commands/runs.rs`.

use std::os::unix::fs::PermissionsExt;

use crate::support::{
    Backend, Gateway, Setup, TENANTS_YAML, fresh_database, groups, new_dir, oidc,
};
use crate::support_cli::{Serre, approve, start_login};
use serde_json::Value;

/// A gateway without a cluster that trusts the real provider.
async fn gateway_with_provider() -> Gateway {
    let mut setup = Setup::local(fresh_database(Backend::Sqlite).await);
    setup.dev_issuer = false;
    setup.oidc_issuer = Some(oidc().issuer.clone());
    setup.tenants_yaml = Some(TENANTS_YAML.to_owned());
    Gateway::start(setup).await
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_whoami_refresh_logout() {
    let gw = gateway_with_provider().await;
    let home = new_dir("cli-home");
    let serre = Serre::new(&home, &gw.url);
    let issuer = oidc().issuer.clone();

    let (child, uri) = start_login(&serre, &["login", "--issuer", &issuer]).await;
    let page = approve(
        &uri,
        "est-ensemble-data",
        "dev-secret-est-ensemble-data",
        false,
    )
    .await;
    assert!(page.contains("Sign-in Success"), "{page}");
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "serre login: {stdout}");
    // With a gateway known, login ends with whoami.
    assert!(
        stdout.contains("subject:") && stdout.contains("est-ensemble-data"),
        "{stdout}"
    );

    // Owner-only files; one token file per issuer.
    let dir = home.join("serre");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("settings.json")), 0o600);
    let tokens: Vec<_> = std::fs::read_dir(dir.join("tokens")).unwrap().collect();
    assert_eq!(tokens.len(), 1);
    let token_file = tokens[0].as_ref().unwrap().path();
    assert_eq!(mode(&token_file), 0o600);

    // The gateway sees the account's groups as clients.json gives them.
    let me = serre.run(&["whoami", "-o", "json"]).await;
    let me = me.ok().json();
    assert_eq!(me["subject"], "est-ensemble-data");
    assert_eq!(me["issuer"], issuer.as_str());
    assert_eq!(me["groups"], serde_json::json!(["est-ensemble-data"]));
    assert_eq!(me["memberOf"], serde_json::json!(["est-ensemble"]));

    // An expired access token is refreshed with the refresh token, and the new one kept.
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    let old = saved["accessToken"].as_str().unwrap().to_owned();
    assert!(
        saved["refreshToken"].is_string(),
        "no refresh token: {saved}"
    );
    saved["expiresAt"] = serde_json::json!(0);
    std::fs::write(&token_file, serde_json::to_vec(&saved).unwrap()).unwrap();
    serre.run(&["sandboxes", "list"]).await.ok();
    let renewed: Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    assert_ne!(renewed["accessToken"], old.as_str());
    assert!(renewed["expiresAt"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    assert_eq!(mode(&token_file), 0o600);

    // A refresh token the provider refuses: sign in again (exit 3).
    saved["expiresAt"] = serde_json::json!(0);
    saved["refreshToken"] = serde_json::json!("not-a-refresh-token");
    std::fs::write(&token_file, serde_json::to_vec(&saved).unwrap()).unwrap();
    let out = serre.run(&["whoami"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("serre login"), "{}", out.stderr);

    // logout forgets the tokens; then commands ask to sign in.
    serre.run(&["logout"]).await.ok();
    assert!(!token_file.exists());
    let out = serre.run(&["whoami"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("serre login"), "{}", out.stderr);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_refusals() {
    let home = new_dir("cli-home");
    let serre = Serre::new(&home, "http://127.0.0.1:9");
    let issuer = oidc().issuer.clone();

    // Aborted in the browser: access_denied, exit 3, nothing kept.
    let (child, uri) = start_login(&serre, &["login", "--issuer", &issuer]).await;
    approve(&uri, "est-ensemble-data", "", true).await;
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!home.join("serre/tokens").exists());

    // A client the provider does not know: refused before any code is shown.
    let out = serre
        .run(&[
            "login",
            "--issuer",
            &issuer,
            "--client-id",
            "no-such-client",
        ])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("invalid_client"), "{}", out.stderr);

    // A confidential client without the device grant is refused too.
    let out = serre
        .run(&[
            "login",
            "--issuer",
            &issuer,
            "--client-id",
            "est-ensemble-data",
        ])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);

    // Not an OpenID provider / nothing listening: exit 3 and 4.
    let out = serre
        .run(&["login", "--issuer", "http://127.0.0.1:9"])
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let out = serre.run(&["login"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_provider_works_and_a_bad_one_asks_to_sign_in() {
    let gw = gateway_with_provider().await;
    let home = new_dir("cli-home");
    let token = oidc().token("est-ensemble-admin", "urn:serre:api").await;
    let serre = Serre::new(&home, &gw.url).with_token(token);
    let me = serre.run(&["whoami", "-o", "yaml"]).await;
    assert!(
        me.ok().stdout.contains("subject: est-ensemble-admin"),
        "{}",
        me.stdout
    );

    let bad = Serre::new(&home, &gw.url).with_token("not.a.token".into());
    let out = bad.run(&["sandboxes", "list"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("malformed_token") && out.stderr.contains("serre login"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sign_in_no_gateway_no_network() {
    let home = new_dir("cli-home");
    let out = Serre::new(&home, "http://127.0.0.1:9")
        .run(&["sandboxes", "list"])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("not signed in") && out.stderr.contains("serre login"));

    let out = Serre::new(&home, "").run(&["sandboxes", "list"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("SERRE_GATEWAY"), "{}", out.stderr);

    let out = Serre::new(&home, "http://127.0.0.1:9")
        .with_token("t".into())
        .run(&["sandboxes", "list"])
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);

    let out = Serre::new(&home, "http://127.0.0.1:9")
        .run(&["sandboxes", "request"])
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
}

const CSV: &str =
    "id,age,postcode,income\n1,34,93100,2100\n2,41,93100,2500\n3,29,93170,1900\n4,52,93170,3100\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_team_and_admin_journeys_without_a_cluster() {
    let gw = Gateway::start(Setup::local(fresh_database(Backend::Sqlite).await)).await;
    let home = new_dir("cli-home");
    let data = Serre::new(&home, &gw.url).with_token(gw.token("alice", groups::EE_DATA));
    let admin = Serre::new(&home, &gw.url).with_token(gw.token("bob", groups::EE_ADMIN));

    // A data team asks for a sandbox; within the self-service policy it is approved.
    let out = data
        .run(&[
            "sandboxes",
            "request",
            "--tenant",
            "est-ensemble",
            "--name",
            "traffic",
            "--purpose",
            "Forecast bus ridership",
            "--cpu",
            "2",
            "--memory",
            "4Gi",
            "--storage",
            "10Gi",
            "--expires-in",
            "10d",
            "-o",
            "json",
        ])
        .await;
    let sb = out.ok().json();
    assert_eq!(sb["name"], "est-ensemble--traffic");
    assert_eq!(sb["request"]["state"], "Approved");
    assert_eq!(sb["cluster"]["state"], "WaitingForCluster");

    let list = data.run(&["sandboxes", "list"]).await;
    let table = &list.ok().stdout;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("REQUEST"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("est-ensemble--traffic") && row.contains("Approved"),
        "{table}"
    );
    // Columns line up: every cell starts where its header does.
    assert_eq!(header.find("TENANT"), row.find("est-ensemble "));

    let list = data.run(&["sandboxes", "list", "-o", "json"]).await;
    assert_eq!(
        list.ok().json()["items"][0]["name"],
        "est-ensemble--traffic"
    );
    let show = data
        .run(&["sandboxes", "show", "est-ensemble--traffic"])
        .await;
    assert!(
        show.ok().stdout.contains("no cluster is configured"),
        "{}",
        show.stdout
    );

    // A refusal: the gateway's code, message and each field's problem; exit 1.
    let out = data
        .run(&[
            "sandboxes",
            "request",
            "--tenant",
            "est-ensemble",
            "--name",
            "Bad--Name",
            "--purpose",
            "x",
            "--cpu",
            "lots",
            "--memory",
            "4Gi",
            "--storage",
            "10Gi",
            "--expires-in",
            "400d",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("422 validation_failed"),
        "{}",
        out.stderr
    );
    for want in [
        "name:",
        "resources.cpu:",
        "(quantity_syntax)",
        "expiresAt:",
        "(max_lifetime)",
    ] {
        assert!(out.stderr.contains(want), "{want} missing: {}", out.stderr);
    }
    // Someone else's tenant is not found (404), exit 1.
    let out = data.run(&["sandboxes", "show", "montreuil--x"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("404 not_found"), "{}", out.stderr);

    // Members: a tenant admin adds a vendor.
    let out = admin
        .run(&[
            "sandboxes",
            "members",
            "add",
            "est-ensemble--traffic",
            "acme",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(out.ok().json()["members"][0]["subject"], "acme");
    let vendor = Serre::new(&home, &gw.url).with_token(gw.token("acme", &[]));
    let seen = vendor.run(&["sandboxes", "list", "-o", "json"]).await;
    assert_eq!(seen.ok().json()["items"].as_array().unwrap().len(), 1);

    // Datasets: upload a CSV, list, show.
    let file = new_dir("cli-data").join("residents.csv");
    std::fs::write(&file, CSV).unwrap();
    let out = data
        .run(&[
            "datasets",
            "upload",
            "--tenant",
            "est-ensemble",
            "--name",
            "residents",
            "--classification",
            "internal",
            "--types",
            "postcode:string",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await;
    let ds = out.ok().json();
    assert_eq!(ds["versions"][0]["rows"], 4);
    let id = ds["id"].as_str().unwrap().to_owned();
    let list = data.run(&["datasets", "list"]).await;
    assert!(list.ok().stdout.contains(&id), "{}", list.stdout);
    let show = data.run(&["datasets", "show", &id]).await;
    assert!(show.ok().stdout.contains("postcode"), "{}", show.stdout);
    // A new version.
    let out = data
        .run(&[
            "datasets",
            "upload",
            "--version-of",
            &id,
            "--types",
            "postcode:string",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await;
    assert_eq!(out.ok().json()["latestVersion"], 2);

    // Grants: only tenant admins grant; create, list, revoke.
    let grant_args = [
        "grants",
        "create",
        "--dataset",
        &id,
        "--sandbox",
        "est-ensemble--traffic",
        "--columns",
        "id,age,postcode",
        "--pseudonymise",
        "id",
        "--generalise",
        "postcode=prefix:2",
        "--purpose",
        "Trial of a mobility model",
        "--expires-in",
        "7d",
        "-o",
        "json",
    ];
    let out = data.run(&grant_args).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let out = admin.run(&grant_args).await;
    let grant = out.ok().json();
    assert_eq!(grant["state"], "active", "{grant}");
    let gid = grant["id"].as_str().unwrap().to_owned();
    let list = vendor.run(&["grants", "list", "-o", "json"]).await;
    assert_eq!(list.ok().json()[0]["id"], gid.as_str());
    admin.run(&["grants", "revoke", &gid]).await.ok();
    let show = admin.run(&["grants", "show", &gid, "-o", "json"]).await;
    assert_eq!(show.ok().json()["state"], "revoked");

    // Usage of the tenant (no runs yet).
    let usage = admin.run(&["usage", "est-ensemble", "-o", "json"]).await;
    assert_eq!(usage.ok().json()["tenant"], "est-ensemble");

    // Runs' listing works without a cluster; starting one needs the real node.
    let runs = data
        .run(&["runs", "list", "est-ensemble--traffic", "-o", "json"])
        .await;
    assert_eq!(runs.ok().json(), serde_json::json!([]));

    // Withdraw the sandbox.
    admin
        .run(&[
            "sandboxes",
            "members",
            "remove",
            "est-ensemble--traffic",
            "acme",
        ])
        .await
        .ok();
    data.run(&["sandboxes", "delete", "est-ensemble--traffic"])
        .await
        .ok();
    let list = data.run(&["sandboxes", "list", "-o", "json"]).await;
    assert_eq!(list.ok().json()["items"], serde_json::json!([]));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_has_an_example_per_command() {
    let home = new_dir("cli-home");
    let serre = Serre::new(&home, "");
    let top = serre.run(&["--help"]).await;
    assert!(top.ok().stdout.contains("Exit codes:"));
    for cmd in [
        vec!["login"],
        vec!["whoami"],
        vec!["sandboxes", "request"],
        vec!["sandboxes", "list"],
        vec!["sandboxes", "members", "add"],
        vec!["datasets", "upload"],
        vec!["grants", "create"],
        vec!["grants", "preview"],
        vec!["grants", "profile"],
        vec!["catalogue", "list"],
        vec!["catalogue", "show"],
        vec!["catalogue", "export"],
        vec!["audit", "export"],
        vec!["audit", "verify"],
        vec!["runs", "start"],
        vec!["runs", "watch"],
        vec!["runs", "logs"],
        vec!["runs", "results"],
        vec!["runs", "report"],
        vec!["usage"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = serre.run(&args).await;
        assert!(
            out.ok().stdout.contains("Example"),
            "{cmd:?}: {}",
            out.stdout
        );
    }
}

/// Shell completions name every command and its flags, for each shell.
#[test]
fn completions_cover_the_commands() {
    let run = |shell: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_serre"))
            .args(["completions", shell])
            .output()
            .expect("run serre completions");
        assert!(out.status.success(), "{shell}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let bash = run("bash");
    assert!(bash.contains("_serre()"), "{bash}");
    for word in [
        "sandboxes",
        "datasets",
        "grants",
        "runs",
        "usage",
        "catalogue",
        "audit",
        "login",
        "--gateway",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    assert!(run("zsh").contains("#compdef serre"));
    assert!(run("fish").contains("complete -c serre"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_serre"))
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
