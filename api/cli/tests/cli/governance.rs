//! `serre grants preview|profile|create --from-file`, `serre catalogue …` and
//! `serre audit …` against the real gateway started in-process (`api/tests/support`, no
//! cluster): each command's happy path and its main refusals, with their exit codes.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Backend, Gateway, Setup, fresh_database, groups, new_dir};
use crate::support_cli::{Out, Serre};
use serde_json::{Value, json};

const CSV: &str =
    "id,age,postcode,income\n1,34,93100,2100\n2,41,93100,2500\n3,29,93170,1900\n4,52,93170,3100\n";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[track_caller]
fn refused(out: &Out, code: i32, wants: &[&str]) {
    assert_eq!(
        out.code, code,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    for w in wants {
        assert!(out.stderr.contains(w), "{w} missing: {}", out.stderr);
    }
}

/// A sandbox of est-ensemble and a dataset of `classification`; the dataset's id.
async fn sandbox_and_dataset(data: &Serre, classification: &str) -> String {
    data.run(&[
        "sandboxes",
        "request",
        "--tenant",
        "est-ensemble",
        "--name",
        "traffic",
        "--purpose",
        "Forecast bus ridership",
        "--cpu",
        "1",
        "--memory",
        "1Gi",
        "--storage",
        "1Gi",
        "--expires-in",
        "10d",
    ])
    .await
    .ok();
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
            classification,
            "--types",
            "postcode:string",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await;
    out.ok().json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_preview_from_file_and_profile() {
    let gw = Gateway::start(Setup::local(fresh_database(Backend::Sqlite).await)).await;
    let home = new_dir("cli-home");
    let data = Serre::new(&home, &gw.url).with_token(gw.token("alice", groups::EE_DATA));
    let admin = Serre::new(&home, &gw.url).with_token(gw.token("bob", groups::EE_ADMIN));
    let other = Serre::new(&home, &gw.url).with_token(gw.token("carol", groups::MONTREUIL_ADMIN));
    let id = sandbox_and_dataset(&data, "personal").await;

    // Preview to the sandbox (no vendor in it): ages in bins of 20 and postcodes cut to
    // "93" leave two classes of two rows.
    let flags = |grantee: &'static str, who: &'static str| {
        vec![
            "grants".to_owned(),
            "preview".into(),
            "--dataset".into(),
            id.clone(),
            format!("--{grantee}"),
            who.into(),
            "--columns".into(),
            "age,postcode".into(),
            "--generalise".into(),
            "age=bin:20".into(),
            "--generalise".into(),
            "postcode=prefix:2".into(),
            "--quasi-identifiers".into(),
            "age,postcode".into(),
            "--k".into(),
            "2".into(),
            "--purpose".into(),
            "Trial".into(),
            "--expires-in".into(),
            "7d".into(),
        ]
    };
    let args = flags("sandbox", "est-ensemble--traffic");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = admin.run(&args).await;
    let table = &out.ok().stdout;
    assert!(table.contains("smallest class:"), "{table}");
    assert!(table.contains("would be accepted"), "{table}");
    let mut json_args = args.clone();
    json_args.extend(["-o", "json"]);
    let p = admin.run(&json_args).await.ok().json();
    assert_eq!(p["smallestClass"], 2, "{p}");
    assert_eq!(p["classes"], 2, "{p}");
    assert_eq!(p["refusal"], Value::Null, "{p}");
    // A data-team member may not create grants, so may not preview one either.
    refused(&data.run(&args).await, 1, &["the gateway refused (403"]);
    // Personal data leaving towards a vendor must reach the tenant's minimum k (5 by
    // default): four rows cannot; the preview says why and exits 6.
    let args = flags("vendor", "acme");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = admin.run(&args).await;
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("would be refused"), "{}", out.stdout);
    assert!(
        out.stderr.contains("creating this grant would be refused"),
        "{}",
        out.stderr
    );

    // create --from-file: the API body's fields in YAML; a flag fills what it lacks.
    let dir = new_dir("cli-grant");
    let file = dir.join("grant.yaml");
    std::fs::write(
        &file,
        format!(
            "datasetId: {id}\ngrantee: {{sandbox: est-ensemble--traffic}}\n\
             columns: [id, age, postcode]\nrecipe:\n  columns: {{id: pseudonymise}}\n\
             purpose: Trial of a mobility model\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = admin
        .run(&[
            "grants",
            "create",
            "--from-file",
            f,
            "--expires-in",
            "7d",
            "-o",
            "json",
        ])
        .await;
    let grant = out.ok().json();
    assert_eq!(grant["state"], "active", "{grant}");
    assert_eq!(grant["recipe"]["columns"]["id"], "pseudonymise", "{grant}");
    let gid = grant["id"].as_str().unwrap().to_owned();
    // Without an expiry anywhere, a usage error naming what is missing.
    refused(
        &admin.run(&["grants", "create", "--from-file", f]).await,
        2,
        &["no expiresAt", "--expires-in"],
    );
    std::fs::write(dir.join("bad.yaml"), "- a list\n").unwrap();
    let bad = dir.join("bad.yaml");
    refused(
        &admin
            .run(&[
                "grants",
                "create",
                "--from-file",
                bad.to_str().unwrap(),
                "--expires-in",
                "1d",
            ])
            .await,
        2,
        &["must hold a mapping"],
    );

    // The Delta Sharing profile: owner-only, never replaced without --force.
    let share = dir.join("traffic.share");
    let s = share.to_str().unwrap();
    let out = data.run(&["grants", "profile", &gid, "--out", s]).await;
    assert!(out.ok().stdout.contains("delta-sharing"), "{}", out.stdout);
    assert_eq!(mode(&share), 0o600);
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(&share).unwrap()).unwrap();
    assert_eq!(profile["shareCredentialsVersion"], 1, "{profile}");
    assert!(
        profile["bearerToken"]
            .as_str()
            .is_some_and(|t| t.len() > 20)
    );
    assert!(
        !out.stdout
            .contains(profile["bearerToken"].as_str().unwrap())
    );
    refused(
        &data.run(&["grants", "profile", &gid, "--out", s]).await,
        2,
        &["exists: pass --force"],
    );
    let out = data
        .run(&[
            "grants", "profile", &gid, "--out", s, "--force", "-o", "json",
        ])
        .await;
    assert_eq!(out.ok().json()["file"], s);
    // Another tenant's admin does not see the grant.
    let elsewhere = dir.join("other.share");
    let out = other
        .run(&[
            "grants",
            "profile",
            &gid,
            "--out",
            elsewhere.to_str().unwrap(),
        ])
        .await;
    refused(&out, 1, &["the gateway refused (404 not_found)"]);
    assert!(!elsewhere.exists());
    gw.stop().await;
}

fn entry(name: &str) -> Value {
    json!({
        "vendor": "Acme", "name": name, "version": "2.1",
        "description": "Summarises council deliberations",
        "licence": {"spdx": "EUPL-1.2"},
        "hosting": {"provider": "Scaleway", "dataLocation": "FR", "extraEuTransfer": false},
        "aiActRiskClass": "limited",
        "gdprNotes": "No personal data leaves the sandbox",
        "criteria": {
            "innovation": {"score": 4, "evidence": [{"title": "Pilot report", "url": "https://example.org/pilot"}]},
            "fitToNeeds": {"score": 3, "evidence": [{"title": "Interviews", "text": "Five EPTs asked for it"}]}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_list_show_export() {
    let gw = Gateway::start(Setup::local(fresh_database(Backend::Sqlite).await)).await;
    let mgp = gw.token("mgp-admin", groups::MGP);
    let (s, created) = gw
        .call(
            "POST",
            "/v1/catalogue/solutions",
            Some(&mgp),
            Some(entry("Résumé")),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let sid = created["id"].as_str().unwrap().to_owned();
    let home = new_dir("cli-home");
    let data = Serre::new(&home, &gw.url).with_token(gw.token("alice", groups::EE_DATA));

    let out = data.run(&["catalogue", "list"]).await;
    let table = &out.ok().stdout;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("AI ACT"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&sid) && row.contains("Résumé"), "{table}");
    let list = data.run(&["catalogue", "list", "-o", "json"]).await;
    assert_eq!(list.ok().json()[0]["id"], sid.as_str());
    let show = data.run(&["catalogue", "show", &sid]).await;
    let text = &show.ok().stdout;
    assert!(
        text.contains("EUPL-1.2") && text.contains("environmental impact:"),
        "{text}"
    );
    let yaml = data.run(&["catalogue", "show", &sid, "-o", "yaml"]).await;
    assert!(
        yaml.ok().stdout.contains("aiActRiskClass: limited"),
        "{}",
        yaml.stdout
    );

    // Exports: DCAT-AP to a file (never replaced without --force), CSV to stdout.
    let dir = new_dir("cli-catalogue");
    let file = dir.join("catalogue.jsonld");
    let f = file.to_str().unwrap();
    data.run(&["catalogue", "export", "--format", "dcat-ap", "--out", f])
        .await
        .ok();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(doc.to_string().contains("dcat:"), "{doc}");
    assert!(doc.to_string().contains("Résumé"), "{doc}");
    refused(
        &data
            .run(&["catalogue", "export", "--format", "dcat-ap", "--out", f])
            .await,
        2,
        &["exists: pass --force"],
    );
    let csv = data.run(&["catalogue", "export", "--format", "csv"]).await;
    assert!(csv.ok().stdout.contains("Résumé"), "{}", csv.stdout);

    // Refusals: an unknown entry (404), a status the gateway does not know (422, its field),
    // a format `serre` does not know (usage).
    refused(
        &data
            .run(&["catalogue", "show", "00000000-0000-4000-8000-000000000000"])
            .await,
        1,
        &["the gateway refused (404 not_found)"],
    );
    refused(
        &data
            .run(&["catalogue", "list", "--status", "pending"])
            .await,
        1,
        &["422 validation_failed", "status:", "(one_of)"],
    );
    refused(
        &data.run(&["catalogue", "export", "--format", "xml"]).await,
        2,
        &["xml"],
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_and_verify() {
    let gw = Gateway::start(Setup::local(fresh_database(Backend::Sqlite).await)).await;
    let home = new_dir("cli-home");
    let data = Serre::new(&home, &gw.url).with_token(gw.token("alice", groups::EE_DATA));
    let admin = Serre::new(&home, &gw.url).with_token(gw.token("bob", groups::EE_ADMIN));
    let mgp = Serre::new(&home, &gw.url).with_token(gw.token("mgp-admin", groups::MGP));
    let _ = sandbox_and_dataset(&data, "internal").await;

    // A data-team member may not read the audit log.
    let dir = new_dir("cli-audit");
    let file = dir.join("audit.jsonl");
    let f = file.to_str().unwrap();
    refused(
        &data
            .run(&["audit", "export", "--tenant", "est-ensemble", "--out", f])
            .await,
        1,
        &["the gateway refused (403"],
    );
    assert!(!file.exists(), "no file is left behind a refusal");
    refused(
        &data.run(&["audit", "verify"]).await,
        1,
        &["the gateway refused (403"],
    );

    // The tenant's admin exports its entries: JSON lines, owner-only.
    admin
        .run(&["audit", "export", "--tenant", "est-ensemble", "--out", f])
        .await
        .ok();
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= 2, "{text}");
    assert!(
        entries.iter().all(|e| e["tenant"] == "est-ensemble"),
        "{text}"
    );
    let first = entries[0]["seq"].as_i64().unwrap();
    let tail = admin
        .run(&[
            "audit",
            "export",
            "--tenant",
            "est-ensemble",
            "--after",
            &first.to_string(),
        ])
        .await;
    let tail: Vec<Value> = tail
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tail[0]["seq"], entries[1]["seq"], "{tail:?}");
    assert!(tail.iter().all(|e| e["seq"].as_i64().unwrap() > first));

    // Verification: the tenant's entries by its admin, the whole log by the Métropole.
    let out = admin
        .run(&["audit", "verify", "--tenant", "est-ensemble"])
        .await;
    assert!(
        out.ok().stdout.contains("chain:             intact"),
        "{}",
        out.stdout
    );
    let v = mgp
        .run(&["audit", "verify", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() >= 2, "{v}");

    // Someone rewrites who did what in entry 2: exit 6, the entry named.
    let changed = gw
        .app()
        .store
        .execute_raw("UPDATE audit_log SET principal = 'mallory' WHERE seq = 2")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let out = mgp.run(&["audit", "verify"]).await;
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("BROKEN at entry 2"), "{}", out.stdout);
    assert!(
        out.stderr.contains("the audit chain is broken at entry 2"),
        "{}",
        out.stderr
    );
    gw.stop().await;
}
