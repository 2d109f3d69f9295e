//! Around the API: health, readiness, metrics, the OpenAPI document, request ids, JSON
//! errors for unknown routes, policy reload (endpoint and SIGHUP), graceful shutdown of
//! the binary, and `serre-api dev-token`.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::{Backend, Gateway, Setup, assert_error, sandbox_body};

fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["serre.cedar", "serre.cedarschema"] {
        std::fs::copy(support::repo_root().join("policies").join(f), to.join(f)).unwrap();
    }
}

const ONLY_METROPOLE_ADMINS: &str = "@id(\"only-metropole-admins\")\npermit (principal, action, resource) when { principal.metropoleAdmin };\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints_and_errors() {
    let gw = Gateway::start(Setup::local(support::fresh_database(Backend::Sqlite).await)).await;
    let bob = gw.token("bob", &["est-ensemble-data"]);

    let (status, health) = gw.call("GET", "/healthz", None, None).await;
    assert_eq!((status, health), (200, json!({ "status": "ok" })));
    let (status, ready) = gw.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready,
        json!({ "status": "ready", "checks": { "database": "ok", "identity": "ok", "tenants": "ok", "cluster": "disabled" } })
    );

    // Traffic to count.
    let (s, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(s, 201);
    for _ in 0..3 {
        let (s, _) = gw
            .call(
                "GET",
                "/v1/sandboxes/est-ensemble--traffic",
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--nothing",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 404);

    let metrics = gw
        .get_text("/metrics", None, "application/openmetrics-text")
        .await;
    for needle in [
        "serre_api_http_requests_total{method=\"GET\",route=\"/v1/sandboxes/{name}\",status=\"200\"} 3",
        "serre_api_http_requests_total{method=\"GET\",route=\"/v1/sandboxes/{name}\",status=\"404\"} 1",
        "serre_api_http_requests_total{method=\"POST\",route=\"/v1/sandboxes\",status=\"201\"} 1",
        "serre_api_http_request_duration_seconds_count{route=\"/v1/sandboxes/{name}\"} 4",
        "serre_api_authz_decisions_total{action=\"sandbox.read\",decision=\"allow\"} 3",
        "serre_api_authz_decisions_total{action=\"sandbox.create\",decision=\"allow\"} 1",
        "serre_api_audit_entries_total",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }

    // The OpenAPI document describes the API.
    let (status, doc) = gw.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/sandboxes", "post"),
        ("/v1/sandboxes", "get"),
        ("/v1/sandboxes/{name}", "get"),
        ("/v1/sandboxes/{name}", "delete"),
        ("/v1/sandboxes/{name}/approve", "post"),
        ("/v1/sandboxes/{name}/reject", "post"),
        ("/v1/sandboxes/{name}/members", "post"),
        ("/v1/sandboxes/{name}/members/{subject}", "delete"),
        ("/v1/tenants/{tenant}/policy", "put"),
        ("/v1/audit", "get"),
        ("/v1/audit/verify", "get"),
        ("/v1/admin/policies/reload", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "CreateSandbox",
        "SandboxView",
        "ErrorBody",
        "FieldIssue",
        "SelfServicePolicy",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }

    // Request ids: generated when absent.
    let (_, headers, _) = gw.call_raw("GET", "/healthz", None, None).await;
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // Unknown routes and methods answer JSON too.
    assert_error(
        &gw.call("GET", "/v2/nothing", None, None).await,
        404,
        "route_not_found",
    );
    assert_error(
        &gw.call("PATCH", "/v1/sandboxes", Some(&bob), None).await,
        405,
        "method_not_allowed",
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_reload_from_the_admin_endpoint_and_a_broken_file_changes_nothing() {
    let policies = support::new_dir("policies");
    copy_policies(&policies);
    let gw = Gateway::start(Setup {
        policies_dir: Some(policies.clone()),
        ..Setup::local(support::fresh_database(Backend::Sqlite).await)
    })
    .await;
    let bob = gw.token("bob", &["est-ensemble-data"]);
    let alice = gw.token("alice", &["est-ensemble-admins"]);
    let mgp = gw.token("mgp-admin", &["mgp-admins"]);
    let reload = "/v1/admin/policies/reload";

    assert_error(
        &gw.call("POST", reload, Some(&alice), None).await,
        403,
        "forbidden",
    );
    let (status, r) = gw.call("POST", reload, Some(&mgp), None).await;
    assert_eq!(status, 200, "{r}");
    assert!(
        r["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("tenant-isolation-sandbox"))
    );

    // A broken file: refused, the policies in force stay.
    std::fs::write(
        policies.join("serre.cedar"),
        "@id(\"x\") permit (principal,",
    )
    .unwrap();
    let broken = gw.call("POST", reload, Some(&mgp), None).await;
    assert_error(&broken, 422, "invalid_policies");
    assert!(
        broken.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serre.cedar"),
        "{}",
        broken.1
    );
    let (s, _) = gw
        .call("GET", "/v1/sandboxes?tenant=est-ensemble", Some(&bob), None)
        .await;
    assert_eq!(s, 200);

    // A valid change takes effect at once.
    std::fs::write(policies.join("serre.cedar"), ONLY_METROPOLE_ADMINS).unwrap();
    let (status, r) = gw.call("POST", reload, Some(&mgp), None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["policies"], json!(["only-metropole-admins"]));
    assert_error(
        &gw.call("GET", "/v1/sandboxes?tenant=est-ensemble", Some(&bob), None)
            .await,
        404,
        "not_found",
    );

    // Each reload is recorded.
    let (_, page) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mgp), None)
        .await;
    let reloads: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "policy.reload" && e["decision"] == "change")
        .collect();
    assert_eq!(reloads.len(), 3);
    assert_eq!(reloads[1]["details"]["result"], "failed");
    gw.stop().await;
}

struct Process {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_serre-api"))
}

async fn spawn_binary(policies: &Path) -> Process {
    spawn_binary_env(policies, &[]).await
}

/// The binary with extra environment variables (e.g. `RUST_LOG`).
async fn spawn_binary_env(policies: &Path, env: &[(&str, &str)]) -> Process {
    let dir = support::new_dir("binary");
    let tenants = dir.join("tenants.yaml");
    std::fs::write(&tenants, support::TENANTS_YAML).unwrap();
    let port = support::free_ports(1);
    let child = bin()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--environment",
            "development",
            "--dev-issuer",
            "--no-cluster",
        ])
        .arg("--tenants-file")
        .arg(&tenants)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--policies-dir")
        .arg(policies)
        .args(["--log-format", "json"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    support::eventually(30, "the binary to listen", || async {
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Process {
        child,
        url,
        data_dir: dir.join("data"),
    }
}

fn dev_token(data_dir: &Path, sub: &str, groups: &str) -> String {
    let out = bin()
        .args(["dev-token", "--sub", sub, "--groups", groups])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn signal(p: &Process, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_sighup_and_stops_cleanly_on_sigterm() {
    let policies = support::new_dir("policies");
    copy_policies(&policies);
    let mut p = spawn_binary(&policies).await;
    let bob = dev_token(&p.data_dir, "bob", "est-ensemble-data");
    let http = reqwest::Client::new();
    let get = |token: String| {
        let http = http.clone();
        let url = format!("{}/v1/sandboxes?tenant=est-ensemble", p.url);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(bob.clone()).await, 200);

    std::fs::write(policies.join("serre.cedar"), ONLY_METROPOLE_ADMINS).unwrap();
    signal(&p, "HUP");
    support::eventually(10, "the SIGHUP reload", || {
        let bob = bob.clone();
        let get = &get;
        async move { (get(bob).await == 404).then_some(()) }
    })
    .await;

    signal(&p, "TERM");
    let status = support::eventually(15, "the binary to exit", || {
        let s = p.child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "exit status {status:?}");
    let mut log = String::new();
    use std::io::Read;
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("SIGHUP: policies reloaded"), "{log}");
    assert!(log.contains("\"stopped\""), "{log}");
    assert!(!log.contains(&bob), "a token was logged");
    // Everything it acknowledged is in the log, chain intact.
    let out = bin()
        .args(["audit", "verify", "--data-dir"])
        .arg(&p.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    // Checked against the checkpoint the gateway published when it stopped.
    assert!(text.contains("signature valid"), "{text}");
    // At least: the first list, the reload, the refused list.
    let entries: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("audit chain intact: "))
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(entries >= 3, "{text}");
}

/// Issue 13: a file link's token is the URL path itself (`/delta-sharing/files/<token>`),
/// and the request span carried the raw path into every log line of the request. Logged
/// at the most verbose level of the HTTP layer, the path shows `<redacted>`, never the
/// token (nor the query string).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_request_paths_never_reach_the_log() {
    serre_api::install_crypto_provider();
    let policies = support::new_dir("policies");
    copy_policies(&policies);
    let mut p = spawn_binary_env(&policies, &[("RUST_LOG", "info,tower_http=debug")]).await;
    let link = "serre-fl1.eyJnIjoiZy0xIiwic3ViIjoidmVyYSJ9.QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";
    let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLW9mLXRoZS1qd3Q";
    let http = reqwest::Client::new();
    for path in [
        format!("/delta-sharing/files/{link}"),
        format!("/delta-sharing/files/{link}?secret=query-value"),
        format!("/v1/grants/{jwt}"),
    ] {
        let status = http
            .get(format!("{}{path}", p.url))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_client_error(), "{path}: {status}");
    }
    signal(&p, "TERM");
    support::eventually(15, "the binary to exit", || {
        let s = p.child.try_wait().unwrap();
        async move { s }
    })
    .await;
    let mut log = String::new();
    use std::io::Read;
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // The request lines are there (so the check means something), redacted.
    assert!(
        log.contains("/delta-sharing/files/<redacted>"),
        "no request line for the file link: {log}"
    );
    assert!(log.contains("/v1/grants/<redacted>"), "{log}");
    for secret in [link, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", jwt, "query-value"] {
        assert!(!log.contains(secret), "{secret} was logged: {log}");
    }
}

#[test]
fn dev_tokens_carry_the_requested_claims() {
    let dir = support::new_dir("devtoken");
    let token = dev_token(&dir, "alice", "a,b");
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["groups"], json!(["a", "b"]));
    assert_eq!(claims["aud"], "serre-api");
    assert_eq!(claims["iss"], "urn:serre:dev-issuer");
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 3600);
}

/// With `--metrics-listen`, `/metrics` leaves the public API port for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_are_not_on_the_api_port() {
    let port = support::free_ports(1);
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.extra = vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")];
    let gw = Gateway::start(setup).await;
    let (s, _) = gw.call("GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    let got = gw.call("GET", "/metrics", None, None).await;
    assert_error(&got, 404, "route_not_found");

    let resp = gw
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics listener");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("body");
    assert!(
        text.contains(
            "serre_api_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    let (s, _) = gw.call("GET", "/v1/me", None, None).await;
    assert_eq!(s, 401, "the API stays on its port");
    gw.stop().await;
}
