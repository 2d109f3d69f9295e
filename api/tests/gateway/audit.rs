//! The audit log over HTTP and with `serre-api audit verify`, against SQLite and
//! PostgreSQL: what is recorded, who may read it, tamper detection, concurrent writers.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use serre_api::store::Store;
use support::{Backend, Gateway, Setup, assert_error, sandbox_body};

use support::groups::{EE_ADMIN, EE_DATA, MGP, MONTREUIL_ADMIN};

both_backends!(
    decisions_and_changes_are_recorded_with_principal_policies_and_request_id,
    tenant_admins_read_only_their_tenants_entries,
    verify_names_the_first_tampered_entry,
    concurrent_requests_and_two_replicas_keep_one_chain,
);

async fn all_entries(gw: &Gateway, token: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = gw
            .call(
                "GET",
                &format!("/v1/audit?after={after}&limit=1000{query}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

async fn decisions_and_changes_are_recorded_with_principal_policies_and_request_id(
    backend: Backend,
) {
    let gw = Gateway::start(Setup::local(support::fresh_database(backend).await)).await;
    let bob = gw.token("bob", EE_DATA);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let mgp = gw.token("mgp-admin", MGP);

    let (status, headers, _) = gw
        .call_raw(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 10)),
        )
        .await;
    assert_eq!(status, 201);
    let create_id = headers["x-request-id"].to_str().unwrap().to_owned();
    // A request id sent by the client is kept.
    let r = gw
        .http
        .get(format!("{}/v1/sandboxes/est-ensemble--traffic", gw.url))
        .bearer_auth(&mallory)
        .header("x-request-id", "probe-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "probe-42");
    let (status, _) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--nothing",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let entries = all_entries(&gw, &mgp, "").await;
    let find = |pred: &dyn Fn(&Value) -> bool| {
        entries
            .iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no such entry in {entries:#?}"))
            .clone()
    };
    let allowed = find(&|e| e["action"] == "sandbox.create");
    assert_eq!(allowed["principal"], "bob");
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["resource"], "Tenant::\"est-ensemble\"");
    assert_eq!(allowed["tenant"], "est-ensemble");
    assert_eq!(allowed["policies"], json!(["member-use-tenant"]));
    assert_eq!(allowed["requestId"], create_id.as_str());
    let change = find(&|e| e["action"] == "sandbox.requested");
    assert_eq!(change["decision"], "change");
    assert_eq!(change["requestId"], create_id.as_str());
    assert_eq!(change["details"]["state"], "Approved");
    assert_eq!(change["details"]["selfService"], true);
    assert_eq!(change["resource"], "Sandbox::\"est-ensemble--traffic\"");

    let denied = find(&|e| e["requestId"] == "probe-42");
    assert_eq!(denied["principal"], "mallory");
    assert_eq!(denied["action"], "sandbox.read");
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["policies"], json!(["tenant-isolation-sandbox"]));
    let missing = find(&|e| e["resource"] == "Sandbox::\"est-ensemble--nothing\"");
    assert_eq!(missing["decision"], "not_found");
    // The audit read itself is recorded.
    let (_, page) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mgp), None)
        .await;
    let last = page["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "audit.read");
    assert_eq!(last["principal"], "mgp-admin");
    assert_eq!(last["policies"], json!(["metropole-admin"]));

    // Each entry holds its predecessor's hash.
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prevHash"], pair[0]["hash"]);
        assert_eq!(
            pair[1]["seq"].as_i64(),
            pair[0]["seq"].as_i64().map(|s| s + 1)
        );
    }
    assert_eq!(entries[0]["seq"], 1);
    assert_eq!(entries[0]["prevHash"], "0".repeat(64));

    let store = Store::connect(&gw.database_url, 1).await.unwrap();
    let report = serre_api::audit::verify(&store, &[]).await.unwrap();
    assert_eq!(report.broken, None);
    assert!(report.entries as usize >= entries.len());
    gw.stop().await;
}

async fn tenant_admins_read_only_their_tenants_entries(backend: Backend) {
    let gw = Gateway::start(Setup::local(support::fresh_database(backend).await)).await;
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let (s1, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 10)),
        )
        .await;
    let (s2, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&mallory),
            Some(sandbox_body("montreuil", "parks", 10)),
        )
        .await;
    assert_eq!((s1, s2), (201, 201));

    let entries = all_entries(&gw, &alice, "&tenant=est-ensemble").await;
    assert!(entries.len() >= 3, "{entries:#?}");
    assert!(
        entries.iter().all(|e| e["tenant"] == "est-ensemble"),
        "{entries:#?}"
    );
    // Everything, other tenants, members: no.
    assert_error(
        &gw.call("GET", "/v1/audit", Some(&alice), None).await,
        403,
        "forbidden",
    );
    assert_error(
        &gw.call("GET", "/v1/audit?tenant=montreuil", Some(&alice), None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &gw.call("GET", "/v1/audit?tenant=est-ensemble", Some(&bob), None)
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &gw.call("GET", "/v1/audit?limit=0", Some(&alice), None)
            .await,
        422,
        "validation_failed",
    );

    // JSON lines, as stored.
    let (status, headers, body) = gw
        .call_raw(
            "GET",
            "/v1/audit?tenant=est-ensemble&format=jsonl",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= entries.len());
    assert!(lines.iter().all(|l| l["tenant"] == "est-ensemble"));
    assert!(
        lines[0]["policies"].is_string(),
        "stored form: {}",
        lines[0]
    );
    gw.stop().await;
}

fn verify_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serre-api"))
        .args(["audit", "verify"])
        .args(args)
        .output()
        .expect("run serre-api audit verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn verify_names_the_first_tampered_entry(backend: Backend) {
    let gw = Gateway::start(Setup::local(support::fresh_database(backend).await)).await;
    let bob = gw.token("bob", EE_DATA);
    let mgp = gw.token("mgp-admin", MGP);
    for name in ["a", "b", "c"] {
        let (s, _) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(&bob),
                Some(sandbox_body("est-ensemble", name, 10)),
            )
            .await;
        assert_eq!(s, 201);
    }
    // An export verifies on its own.
    let (status, _, export) = gw
        .call_raw("GET", "/v1/audit?format=jsonl", Some(&mgp), None)
        .await;
    assert_eq!(status, 200);
    let file = support::new_dir("export").join("audit.jsonl");
    std::fs::write(&file, &export).unwrap();
    let (ok, out) = verify_cli(&["--file", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    let url = gw.database_url.clone();
    let dir = gw.data_dir.display().to_string();
    gw.stop().await;

    let (ok, out) = verify_cli(&["--data-dir", &dir, "--database-url", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("audit chain intact: 7 entries"), "{out}");
    let head = out
        .split("--anchor ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_owned();
    let (ok, out) = verify_cli(&[
        "--data-dir",
        &dir,
        "--database-url",
        &url,
        "--anchor",
        &head,
    ]);
    assert!(ok, "{out}");

    // Someone rewrites who did what in entry 4.
    let store = Store::connect(&url, 1).await.unwrap();
    let changed = store
        .execute_raw("UPDATE audit_log SET principal = 'alice' WHERE seq = 4")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let (ok, out) = verify_cli(&["--data-dir", &dir, "--database-url", &url]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("audit chain BROKEN at entry 4: hash does not match the entry's content"),
        "{out}"
    );
    // Recomputing that entry's hash moves the break to the next entry.
    let row = store.audit_page(None, 3, 1).await.unwrap().remove(0);
    let rehashed = serre_api::audit::entry_hash(&row);
    store
        .execute_raw(&format!(
            "UPDATE audit_log SET hash = '{rehashed}' WHERE seq = 4"
        ))
        .await
        .unwrap();
    let (ok, out) = verify_cli(&["--data-dir", &dir, "--database-url", &url]);
    assert!(!ok);
    assert!(
        out.contains("BROKEN at entry 5: prev_hash does not match"),
        "{out}"
    );
    // Deleting an entry is found too.
    store
        .execute_raw("DELETE FROM audit_log WHERE seq = 6")
        .await
        .unwrap();
    store
        .execute_raw(&format!(
            "UPDATE audit_log SET principal = 'bob', hash = '{}' WHERE seq = 4",
            row.hash
        ))
        .await
        .unwrap();
    let (ok, out) = verify_cli(&["--data-dir", &dir, "--database-url", &url]);
    assert!(!ok);
    assert!(
        out.contains("BROKEN at entry 7: sequence jumps from 5 to 7"),
        "{out}"
    );
    // The untouched export still verifies; the anchor still matches up to 5.
    let (ok, _) = verify_cli(&["--file", file.to_str().unwrap()]);
    assert!(ok);
    store.close().await;
}

async fn concurrent_requests_and_two_replicas_keep_one_chain(backend: Backend) {
    let url = support::fresh_database(backend).await;
    let gw = Gateway::start(Setup::local(url.clone())).await;
    let bob = gw.token("bob", EE_DATA);
    let (s, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 10)),
        )
        .await;
    assert_eq!(s, 201);
    // SQLite is one file for one process; PostgreSQL is shared by replicas.
    let second = match backend {
        Backend::Postgres => Some(Gateway::start(Setup::local(url.clone())).await),
        Backend::Sqlite => None,
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let target = match (&second, i % 2) {
            (Some(g2), 1) => (g2.url.clone(), g2.token("bob", EE_DATA)),
            _ => (gw.url.clone(), bob.clone()),
        };
        let http = gw.http.clone();
        tasks.push(tokio::spawn(async move {
            http.get(format!("{}/v1/sandboxes/est-ensemble--traffic", target.0))
                .bearer_auth(target.1)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    if let Some(g2) = second {
        g2.stop().await;
    }
    gw.stop().await;
    let store = Store::connect(&url, 1).await.unwrap();
    let report = serre_api::audit::verify(&store, &[]).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 202);
    store.close().await;
}

/// A SQLite database written before the audit log moved to its own file: the gateway
/// copies the entries once, unchanged, drops the old table, and the chain goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_log_moves_to_its_own_file_with_its_chain() {
    use serre_api::audit::{AuditLog, Draft, GENESIS, Outcome, entry_hash};
    use serre_api::store::AuditRow;
    use sqlx::Connection;

    let url = support::fresh_database(Backend::Sqlite).await;
    let main = std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
    let audit_file = main.with_file_name("serre-api-audit.db");
    // The old layout: migrated, with three chained entries in the main database.
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&main)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        serre_api::store::migrations::sqlite()
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=3i64 {
            let mut row = AuditRow {
                seq,
                time: format!("2026-01-0{seq}T00:00:00.000000Z"),
                principal: "alice".into(),
                tenant: (seq != 2).then(|| "est-ensemble".into()),
                action: "sandbox.read".into(),
                resource: "Sandbox::\"x\"".into(),
                decision: "allow".into(),
                policies: "[\"p\"]".into(),
                request_id: format!("r{seq}"),
                details: "{\"é\":\"ü\"}".into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = entry_hash(&row);
            prev.clone_from(&row.hash);
            sqlx::query(
                "INSERT INTO audit_log VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(row.seq)
            .bind(&row.time)
            .bind(&row.principal)
            .bind(&row.tenant)
            .bind(&row.action)
            .bind(&row.resource)
            .bind(&row.decision)
            .bind(&row.policies)
            .bind(&row.request_id)
            .bind(&row.details)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
    assert!(!audit_file.exists());
    // Inspection without migrating reads the log where it is.
    let (ok, out) = verify_cli(&["--no-checkpoint", "--database-url", &url]);
    assert!(ok && out.contains("audit chain intact: 3 entries"), "{out}");

    for _ in 0..2 {
        // Opening moves the entries (the second time there is nothing left to move).
        let store = Store::connect(&url, 2).await.unwrap();
        assert_eq!(store.audit_file(), Some(audit_file.as_path()));
        let report = serre_api::audit::verify(&store, &[]).await.unwrap();
        assert_eq!(report.broken, None);
        assert_eq!(report.entries, 3);
        assert_eq!(
            store
                .audit_page(Some("est-ensemble"), 0, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        store.close().await;
    }
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let old: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'",
    )
    .fetch_optional(&mut conn)
    .await
    .unwrap();
    assert_eq!(old, None, "the main database keeps no audit table");
    conn.close().await.unwrap();

    // New entries chain after the moved ones.
    let store = Store::connect(&url, 2).await.unwrap();
    let (log, writer) = AuditLog::start(
        store.clone(),
        std::sync::Arc::new(serre_api::metrics::Metrics::default()),
    );
    log.append(vec![
        Draft::new(
            "bob",
            "sandbox.read",
            "Sandbox::\"x\"".into(),
            Outcome::Deny,
        ),
        Draft::new(
            "bob",
            "sandbox.read",
            "Sandbox::\"y\"".into(),
            Outcome::NotFound,
        ),
    ])
    .await
    .unwrap();
    drop(log);
    writer.await.unwrap();
    let rows = store.audit_page(None, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3].prev_hash, rows[2].hash);
    store.close().await;
    let (ok, out) = verify_cli(&["--no-checkpoint", "--database-url", &url]);
    assert!(ok && out.contains("audit chain intact: 5 entries"), "{out}");
}

/// In-memory SQLite keeps the log in its one database.
#[tokio::test]
async fn in_memory_sqlite_keeps_the_audit_table() {
    use serre_api::audit::{AuditLog, Draft, Outcome};
    let store = Store::connect("sqlite::memory:", 1).await.unwrap();
    assert_eq!(store.audit_file(), None);
    let (log, writer) = AuditLog::start(
        store.clone(),
        std::sync::Arc::new(serre_api::metrics::Metrics::default()),
    );
    for _ in 0..3 {
        log.append(vec![Draft::new(
            "bob",
            "sandbox.read",
            "Sandbox::\"x\"".into(),
            Outcome::Allow,
        )])
        .await
        .unwrap();
    }
    drop(log);
    writer.await.unwrap();
    let report = serre_api::audit::verify(&store, &[]).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 3);
}
