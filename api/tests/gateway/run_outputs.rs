//! A run's logs and results over HTTP, without a cluster (SQLite, tenants from a file):
//! the query and path checks name their parameter (422), only those who may read the run
//! get further than 404, and a gateway without a cluster says so (409); a run's results
//! endpoint (`PUT /v1/runs/{run}/results/{path}`) takes only that run's own token, while
//! the run goes. The real reads and writes (pod logs, the SSE-C bucket) are exercised
//! against a cluster and Garage by `tests/runs.rs`.

mod support;

use serde_json::json;
use serre_api::grants::tokens::{self, Claims, Kind};
use serre_api::store::RunRow;
use support::groups::{EE_ADMIN, EE_DATA, MONTREUIL_ADMIN};
use support::local_gateway as gateway;
use support::{Backend, assert_error, issues, sandbox_body};

const SANDBOX: &str = "est-ensemble--traffic";
const RUN: &str = "run-0123456789ab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_results_check_their_input_and_who_asks() {
    let gw = gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let vera = gw.token("vera", &[]);
    let victor = gw.token("victor", &[]);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let (status, body) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for vendor in ["vera", "victor"] {
        let (status, body) = gw
            .call(
                "POST",
                &format!("/v1/sandboxes/{SANDBOX}/members"),
                Some(&alice),
                Some(json!({ "subject": vendor })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    gw.app()
        .store
        .insert_run(&run_row(RUN, "vera", "Pending", "{}"))
        .await
        .unwrap();
    let base = format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}");

    // Bad parameters: 422, each naming its parameter.
    let bad = gw
        .call(
            "GET",
            &format!(
                "{base}/logs?container=sidecar&tailLines=0&limitBytes=99999999&follow=yes&since=1h"
            ),
            Some(&vera),
            None,
        )
        .await;
    assert_error(&bad, 422, "validation_failed");
    let mut got = issues(&bad);
    got.sort();
    assert_eq!(
        got,
        [
            ("container".to_owned(), "one_of".to_owned()),
            ("follow".into(), "boolean".into()),
            ("limitBytes".into(), "range".into()),
            ("since".into(), "unknown_parameter".into()),
            ("tailLines".into(), "range".into()),
        ]
    );
    for path in ["a%2F..%2Fb", "a%2F%2Fb", "%2Fetc"] {
        let bad = gw
            .call("GET", &format!("{base}/results/{path}"), Some(&vera), None)
            .await;
        assert_eq!(
            issues(&bad),
            [("path".to_owned(), "result_path".to_owned())],
            "{path}"
        );
    }

    // Who: another vendor of the sandbox and another tenant get 404, as for no run at all.
    for (who, token) in [("victor", &victor), ("mallory", &mallory)] {
        for suffix in ["/logs", "/results", "/results/metrics.json"] {
            let got = gw
                .call("GET", &format!("{base}{suffix}"), Some(token), None)
                .await;
            assert_error(&got, 404, "not_found");
            let missing = gw
                .call(
                    "GET",
                    &format!("/v1/sandboxes/{SANDBOX}/runs/run-ffffffffffff{suffix}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(got.0, missing.0, "{who} {suffix}");
        }
    }
    assert_eq!(
        gw.call("GET", &format!("{base}/logs"), None, None).await.0,
        401
    );

    // The requester and the tenant's members get through to the cluster, which this
    // gateway lacks: 409 saying so.
    for token in [&vera, &bob, &alice] {
        for suffix in [
            "/logs?tailLines=10&follow=true",
            "/results",
            "/results/preds/part-0.csv",
        ] {
            let got = gw
                .call("GET", &format!("{base}{suffix}"), Some(token), None)
                .await;
            assert_error(&got, 409, "conflict");
            assert!(
                got.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("without a cluster"),
                "{}",
                got.1
            );
        }
    }

    // The OpenAPI document lists the three routes.
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    for path in [
        "/v1/sandboxes/{name}/runs/{id}/logs",
        "/v1/sandboxes/{name}/runs/{id}/results",
        "/v1/sandboxes/{name}/runs/{id}/results/{path}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    gw.stop().await;
}

fn run_row(name: &str, requested_by: &str, phase: &str, spec_json: &str) -> RunRow {
    RunRow {
        name: name.into(),
        namespace: "serre-est-ensemble--traffic".into(),
        sandbox: SANDBOX.into(),
        tenant: "est-ensemble".into(),
        solution: None,
        kind: "inference".into(),
        requested_by: requested_by.into(),
        spec_json: spec_json.into(),
        created_at: "2026-09-21T00:00:00.000000Z".into(),
        phase: phase.into(),
        started_at: None,
        finished_at: None,
        exit_reason: None,
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    }
}

/// A run token as the gateway signs it when it creates the run.
fn run_token(gw: &support::Gateway, run: &str, requested_by: &str) -> String {
    tokens::sign(
        gw.app().data.secret(),
        Kind::Run,
        &Claims {
            g: run.into(),
            sub: requested_by.into(),
            exp: chrono::Utc::now().timestamp() + 3600,
            grp: Vec::new(),
        },
    )
}

/// Issue 13: a run's container used to hold the sandbox's bucket credentials, so one
/// vendor's run could read and overwrite another's results. Now a run sends its results to
/// the gateway with its own token, which writes only that run's results, only while it
/// goes, and opens nothing else: not another run's grants, not the OIDC routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_token_writes_only_its_own_results_while_the_run_goes() {
    let gw = gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let vera = gw.token("vera", &[]);
    let (status, body) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for vendor in ["vera", "victor"] {
        let (status, body) = gw
            .call(
                "POST",
                &format!("/v1/sandboxes/{SANDBOX}/members"),
                Some(&alice),
                Some(json!({ "subject": vendor })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    const OTHER: &str = "run-fedcba987654";
    const DONE: &str = "run-00000000d0e5";
    let store = &gw.app().store;
    store
        .insert_run(&run_row(RUN, "vera", "Running", r#"{"grants":["g-vera"]}"#))
        .await
        .unwrap();
    store
        .insert_run(&run_row(
            OTHER,
            "victor",
            "Running",
            r#"{"grants":["g-victor"]}"#,
        ))
        .await
        .unwrap();
    store
        .insert_run(&run_row(DONE, "vera", "Succeeded", "{}"))
        .await
        .unwrap();
    let mine = run_token(&gw, RUN, "vera");
    let other = run_token(&gw, OTHER, "victor");
    let done = run_token(&gw, DONE, "vera");
    let put = |run: &str, path: &str, token: Option<String>| {
        let mut req = gw
            .http
            .put(format!("{}/v1/runs/{run}/results/{path}", gw.url))
            .body("{\"slope\": 2}");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.expect("PUT");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }
    };

    // Its own token gets through to the bucket, which this gateway (no cluster) lacks.
    let got = put(RUN, "results.json", Some(mine.clone())).await;
    assert_error(&got, 409, "conflict");
    // Another run's token, a finished run's, an OIDC token, none: refused.
    let got = put(RUN, "results.json", Some(other.clone())).await;
    assert_error(&got, 403, "forbidden");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another run"),
        "{}",
        got.1
    );
    assert_error(
        &put(OTHER, "results.json", Some(mine.clone())).await,
        403,
        "forbidden",
    );
    let got = put(DONE, "results.json", Some(done)).await;
    assert_error(&got, 403, "forbidden");
    assert!(
        got.1.to_string().contains("is over (Succeeded)"),
        "{}",
        got.1
    );
    assert_eq!(put(RUN, "results.json", Some(vera.clone())).await.0, 401);
    assert_eq!(put(RUN, "results.json", None).await.0, 401);
    // A path that would leave the run's prefix: 422 naming it.
    for path in ["a%2F..%2F..%2Frun-fedcba987654%2Fx", "%2Fetc", "a%2F%2Fb"] {
        let got = put(RUN, path, Some(mine.clone())).await;
        assert_eq!(
            issues(&got),
            [("path".to_owned(), "result_path".to_owned())],
            "{path}"
        );
    }

    // The token opens nothing else: another run's grants, its own run's results listing
    // and logs (OIDC routes), the sandbox.
    let (s, _, _) = gw
        .call_raw(
            "GET",
            &format!("/v1/runs/{OTHER}/grants/g-victor/data"),
            Some(&mine),
            None,
        )
        .await;
    assert_eq!(s, 403, "another run's grant");
    for path in [
        format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}/results"),
        format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}/results/results.json"),
        format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}/logs"),
        format!("/v1/sandboxes/{SANDBOX}"),
    ] {
        assert_eq!(
            gw.call("GET", &path, Some(&mine), None).await.0,
            401,
            "{path}"
        );
    }

    // Cancelled by its requester: the token writes no more.
    let (s, v) = gw
        .call(
            "DELETE",
            &format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}"),
            Some(&vera),
            None,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let got = put(RUN, "results.json", Some(mine.clone())).await;
    assert_error(&got, 403, "forbidden");
    assert!(
        got.1.to_string().contains("is over (Cancelled)"),
        "{}",
        got.1
    );

    // Every answer is audited under the run's name, refusals with their reason.
    let mgp = gw.token("mia", support::groups::MGP);
    let (_, page) = gw
        .call("GET", "/v1/audit?limit=1000", Some(&mgp), None)
        .await;
    let writes: Vec<&serde_json::Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "run.results.write")
        .collect();
    assert!(
        writes
            .iter()
            .any(|e| e["principal"] == format!("run:{RUN}") && e["decision"] == "allow"),
        "{writes:?}"
    );
    assert!(
        writes.iter().any(|e| e["decision"] == "deny"
            && e["details"]["refused"]
                .as_str()
                .is_some_and(|r| r.contains("another run"))),
        "{writes:?}"
    );

    // The OpenAPI document lists the route.
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    assert!(doc["paths"]["/v1/runs/{run}/results/{path}"]["put"].is_object());
    gw.stop().await;
}
